"""The study's pure search and planning logic, without Ray: the define-by-run space, choice
encoding, sample → plan resolution, the units still to run, and the Optuna storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from ser_ray.experiment import (
    DataIdentity,
    FeatureIdentity,
    config_hash,
    decode_choice,
    encode_choice,
)
from ser_ray.experiment.study_record import VariantRecord
from ser_ray.study.design import ablation_variants, resolve
from ser_ray.study.schema import Parameter, SearchSpec, StudyConfig
from ser_ray.study.space import DefineByRun, make_sampler, open_storage, sampled_changes
from ser_ray.study.units import SearchPlans, missing_ablation_plans, remaining_trials
from tests.study.test_schema import BASE

DATA = DataIdentity(manifest="m", folds="f", features={"logmel": FeatureIdentity(
    recipe={"kind": "logmel"}, augmentations=(), seed=0, feature_code_version=2)})
SPACE: dict[str, Any] = {
    "model.options.eca_blocks": {"type": "categorical", "choices": [[], [5, 6]]},
    "model.options.eca_kernel": {"type": "categorical", "choices": [3, 7],
                                 "when": {"model.options.eca_blocks": [[5, 6]]}},
    "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
}


def search_study(**search: Any) -> StudyConfig:
    return StudyConfig.model_validate({**BASE, "search": {"parameters": SPACE, **search}})


@pytest.mark.parametrize("value", [None, 3, 0.5, "text", True, [5, 6], [], {"a": [1]}])
def test_choices_round_trip_through_their_optuna_encoding(value: Any) -> None:
    encoded = encode_choice(value)
    assert encoded is None or isinstance(encoded, (bool, int, float, str))
    assert decode_choice(encoded) == value


def test_a_conditional_parameter_is_sampled_only_under_its_parents_values() -> None:
    study = search_study()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    sampler.optimize(lambda trial: DefineByRun(study.search.parameters)(trial) or 0.0,
                     n_trials=30)
    blocks = set()
    for trial in sampler.trials:
        changes = sampled_changes(trial.params)
        blocks.add(tuple(changes["model.options.eca_blocks"]))
        assert ("model.options.eca_kernel" in changes) == \
            (changes["model.options.eca_blocks"] == [5, 6])
        assert 1e-4 <= changes["train.lr"] <= 1e-2
    assert blocks == {(), (5, 6)}
    assert sampler.trials[0].distributions["model.options.eca_blocks"] == \
        Parameter(**SPACE["model.options.eca_blocks"]).distribution()


def test_a_grid_sampler_covers_every_encoded_combination() -> None:
    grid = SearchSpec.model_validate({"sampler": "grid", "parameters": {
        "model.options.eca_blocks": SPACE["model.options.eca_blocks"],
        "model.options.scale": {"type": "int", "low": 1, "high": 2}}})
    study = optuna.create_study(sampler=make_sampler(grid))
    study.optimize(lambda trial: DefineByRun(grid.parameters)(trial) or 0.0, n_trials=4)
    assert sorted((t.params["model.options.eca_blocks"], t.params["model.options.scale"])
                  for t in study.trials) == [("json:[5, 6]", 1), ("json:[5, 6]", 2),
                                             ("json:[]", 1), ("json:[]", 2)]


def test_a_sample_resolves_to_a_plan_with_its_configuration_and_hash() -> None:
    study = search_study()
    plan = SearchPlans(study, DATA, (0, 1))({"model.options.eca_blocks": "json:[5, 6]",
                                            "model.options.eca_kernel": 7, "train.lr": 0.002})
    assert plan.error is None and plan.variant is None and plan.folds == (0, 1)
    configuration = plan.configuration
    assert configuration.changes == {"model.options.eca_blocks": [5, 6],
                                     "model.options.eca_kernel": 7, "train.lr": 0.002}
    assert configuration.model_options["eca_blocks"] == [5, 6]
    assert configuration.model_options["n_frames"] == 601  # sized to the 6 s log-Mels
    assert configuration.train.lr == 0.002 and configuration.train.epochs == 2
    assert plan.config_hash == config_hash(configuration, DATA)
    assert configuration == resolve(study, configuration.changes)


def test_a_sample_that_does_not_resolve_becomes_a_plan_that_fails_with_the_reason() -> None:
    study = search_study()
    plan = SearchPlans(study, DATA, (0, 1))({"model.options.eca_blocks": "json:[]",
                                            "train.lr": 0.002,
                                            "train.selection": "best-validation",
                                            "train.validation": "none"})
    assert plan.configuration is None
    assert "is invalid" in plan.error and "validation split" in plan.error
    assert plan.config_hash.startswith("unresolved-")


def test_an_ablation_runs_only_the_folds_and_seeds_the_ledger_lacks() -> None:
    study = StudyConfig.model_validate({
        **{key: value for key, value in BASE.items() if key != "search"},
        "ablation": {"design": "one-factor", "factors": {"eca": {"levels": {
            "off": {}, "on": {"model.options.eca_blocks": [5, 6]}}}}}})
    variants = [VariantRecord(name=variant.name, factors=variant.factors,
                              config_hash=config_hash(variant.configuration, DATA),
                              configuration=variant.configuration)
                for variant in ablation_variants(study)]
    baseline, eca = (variant.config_hash for variant in variants)
    done = {(baseline, 0, 0), (baseline, 1, 0), (eca, 1, 1)}
    plans = missing_ablation_plans(variants, seeds=(0, 1), fold_indices=(0, 1), done=done)
    assert [(plan.variant, plan.seed, plan.folds) for plan in plans] == [
        ("baseline", 1, (0, 1)), ("eca=on", 0, (0, 1)), ("eca=on", 1, (0,))]
    assert all(plan.configuration.changes == plan.changes for plan in plans)
    assert plans[1].factors == {"eca": "on"}
    assert remaining_trials(4, 1) == 3 and remaining_trials(4, 6) == 0


def test_trials_a_killed_driver_left_running_are_failed_when_the_storage_opens(
        tmp_path: Path) -> None:
    storage_file = tmp_path / "optuna.db"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{storage_file}")
    running = study.ask()
    study.tell(study.ask(), 1.0)
    open_storage(storage_file, "s")
    states = [trial.state for trial in optuna.load_study(
        study_name="s", storage=f"sqlite:///{storage_file}").trials]
    assert states[running.number] == optuna.trial.TrialState.FAIL
    assert optuna.trial.TrialState.COMPLETE in states


def test_the_tune_searcher_hands_each_trial_its_resolved_plan(tmp_path: Path) -> None:
    from ser_ray.study.optuna_trials import OPTUNA_TRIAL_KEY
    from ser_ray.study.tune_run import ResolvingSearch, optuna_search
    from ser_ray.study.units import PLAN_KEY, trial_plan

    study = search_study(n_startup_trials=1)
    searcher = optuna_search(study, tmp_path / "optuna.db", SearchPlans(study, DATA, (0, 1)))
    config = searcher.suggest("first")
    plan = trial_plan(config)
    sampled = {key: value for key, value in config.items()
               if key not in (PLAN_KEY, OPTUNA_TRIAL_KEY)}
    assert plan.changes == sampled_changes(sampled)
    assert config[OPTUNA_TRIAL_KEY] == 0  # the Optuna trial the driver annotates
    assert plan.configuration == resolve(study, plan.changes)
    report_epochs(searcher, "first", [0.4, 0.5])
    searcher.save(str(tmp_path / "searcher.pkl"))  # Tune pickles its searcher
    restored = ResolvingSearch(plan=SearchPlans(study, DATA, (0, 1)), epochs=2)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert trial_plan(restored.suggest("second")).config_hash.isalnum()
    stored = optuna.load_study(study_name=study.name, storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [trial.state.name for trial in stored.trials][0] == "COMPLETE"


def report_epochs(searcher: Any, trial_id: str, values: list[float], error: bool = False,
                  first_iteration: int = 1) -> None:
    """Tune's calls for a trial that reported `values` (one per epoch), then ended: a trial
    that ends normally (finished, or stopped by its scheduler) hands its last result to
    `on_trial_complete` only; a failed one ends without a result."""
    from ray.tune.result import TRAINING_ITERATION

    results = [{searcher.metric: value, "epoch": epoch,
                TRAINING_ITERATION: first_iteration + index}
               for index, (epoch, value) in enumerate(enumerate(values, start=1))]
    for result in results if error else results[:-1]:
        searcher.on_trial_result(trial_id, result)
    searcher.on_trial_complete(trial_id, None if error else results[-1], error=error)


def test_optuna_records_what_each_trial_reached_with_a_value_per_epoch(tmp_path: Path) -> None:
    """A trial the scheduler stopped is PRUNED (not COMPLETE with its early score), a failed
    one FAIL even after reporting, a finished one COMPLETE; each has one intermediate value
    per epoch, indexed by epoch even when Tune's iteration count restarted (a retry)."""
    from ser_ray.study.tune_run import optuna_search

    study = StudyConfig.model_validate({**BASE, "budget": {"epochs": 4, "trials": 4},
                                        "search": {"parameters": SPACE}})
    assert study.objective.metric == "validation_unweighted_accuracy"
    searcher = optuna_search(study, tmp_path / "optuna.db", SearchPlans(study, DATA, (0, 1)))
    assert searcher.metric == "selected_validation_unweighted_accuracy"
    for trial_id in ("finished", "stopped", "failed"):
        searcher.suggest(trial_id)
    report_epochs(searcher, "finished", [0.3, 0.4, 0.5, 0.6], first_iteration=3)
    report_epochs(searcher, "stopped", [0.3, 0.35])
    report_epochs(searcher, "failed", [0.3, 0.2, 0.25], error=True)
    searcher.suggest("silent")  # ends before its first epoch: failed, as in the ledger
    searcher.on_trial_complete("silent", None)
    stored = optuna.load_study(study_name=study.name, storage=f"sqlite:///{tmp_path}/optuna.db")
    trials = sorted(stored.trials, key=lambda trial: trial.number)
    assert [trial.state.name for trial in trials] == ["COMPLETE", "PRUNED", "FAIL", "FAIL"]
    # Optuna keeps a pruned trial's last intermediate value as its value, marked PRUNED.
    assert trials[0].value == 0.6 and trials[1].value == 0.35
    assert [trial.intermediate_values for trial in trials] == [
        {1: 0.3, 2: 0.4, 3: 0.5, 4: 0.6}, {1: 0.3, 2: 0.35}, {1: 0.3, 2: 0.2, 3: 0.25}, {}]
