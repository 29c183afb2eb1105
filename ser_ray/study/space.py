"""A search's Optuna side, without Ray: the define-by-run space, the sampler and the storage.

Every searched parameter is an Optuna distribution (`Parameter.distribution`); a conditional
parameter (`when`) is sampled only when its parents took one of the values it names. List
choices travel through Optuna as `encode_choice` text and are decoded into the configuration's
changes by `sampled_changes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from ser_ray.experiment import decode_choice, encode_choice
from ser_ray.study.schema import Parameter, SearchSpec


class DefineByRun:
    """Optuna define-by-run space (picklable, as Tune saves its searcher)."""

    def __init__(self, parameters: dict[str, Parameter]) -> None:
        self.parameters = parameters

    def __call__(self, trial: optuna.Trial) -> None:
        values: dict[str, Any] = {}
        for name, parameter in self.parameters.items():
            conditions = parameter.when or {}
            if all(_matches(values.get(parent), allowed)
                   for parent, allowed in conditions.items()):
                values[name] = suggest(trial, name, parameter.distribution())


def suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    """Sample `name` from `distribution` through the trial's public suggest API."""
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high,
                                 step=distribution.step, log=distribution.log)
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(name, distribution.low, distribution.high,
                                   step=distribution.step, log=distribution.log)
    raise TypeError(f"no suggest call for {type(distribution).__name__}")


def _matches(value: Any, allowed: Any) -> bool:
    choices = allowed if isinstance(allowed, list) else [allowed]
    return any(value == encode_choice(choice) or value == choice for choice in choices)


def sampled_changes(sampled: dict[str, Any]) -> dict[str, Any]:
    """The dotted changes a sampled trial makes, list choices decoded.

    >>> sampled_changes({"train.lr": 0.01, "model.options.eca_blocks": "json:[5, 6]"})
    {'train.lr': 0.01, 'model.options.eca_blocks': [5, 6]}
    """
    return {name: decode_choice(value) for name, value in sampled.items()}


def make_sampler(search: SearchSpec) -> optuna.samplers.BaseSampler:
    if search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=search.sampler_seed,
                                          n_startup_trials=search.n_startup_trials)
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=search.sampler_seed)
    return optuna.samplers.GridSampler(
        {name: [encode_choice(value) for value in parameter.grid_values() or ()]
         for name, parameter in search.parameters.items()}, seed=search.sampler_seed)


def open_storage(optuna_file: Path, study_name: str,
                 continue_interrupted: bool = False) -> optuna.storages.RDBStorage:
    """The study's Optuna storage; trials a killed driver left RUNNING are marked failed,
    as they would never finish. With `continue_interrupted` (a search) each is queued again
    with its parameters, so the sampler proposes it first and its trial continues from the
    checkpoint its units left (`CheckpointRow`)."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{optuna_file}")
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return storage
    interrupted = [trial for trial in storage.get_all_trials(study_id, deepcopy=False)
                   if trial.state == optuna.trial.TrialState.RUNNING]
    for trial in interrupted:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
    if continue_interrupted and interrupted:
        study = optuna.load_study(study_name=study_name, storage=storage)
        for trial in interrupted:
            study.enqueue_trial(trial.params, user_attrs={"continues_trial": trial.number})
    return storage
