"""What a study still has to train: the trials to launch, as plans a trial receives whole.

Pure planning (no Ray): an ablation runs, for every variant and seed, the folds the ledger
lacks; a search runs the trials its budget has left, each sample resolved by `SearchPlans`. A
`TrialPlan` carries one trial's configuration, resolved once by the driver, with its hash,
seed and folds.
"""

from __future__ import annotations

import hashlib
import json
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ser_ray.errors import UserError
from ser_ray.experiment import Configuration, DataIdentity, config_hash
from ser_ray.experiment.ledger import UnitKey
from ser_ray.experiment.study_record import VariantRecord
from ser_ray.schema import StrictModel
from ser_ray.study.design import resolve
from ser_ray.study.schema import StudyConfig
from ser_ray.study.space import sampled_changes

# The Tune config key of a trial's plan, as JSON text (one flat value in Tune's logs).
PLAN_KEY = "plan"
# The result key a replaying trial reports: the variant whose recorded epochs it reports.
REPLAY_KEY = "replay_of"


class TrialPlan(StrictModel):
    """One trial: a configuration trained at one seed on some folds, in lock-step.

    Attributes:
        variant: the ablation variant; None for a search trial (the driver names it).
        configuration: the resolved configuration; None when it could not be resolved, and
            `error` says why (a search sampled an invalid combination): the trial then fails
            and its units are recorded failed with that error.
        unresolved_changes: the sampled changes of such a configuration (else None).
        config_hash: the configuration's hash on the study's data.
    """

    variant: str | None
    factors: dict[str, str] = {}
    configuration: Configuration | None
    unresolved_changes: dict[str, Any] | None = None
    config_hash: str
    seed: int
    folds: tuple[int, ...]
    error: str | None = None

    @property
    def unit_group(self) -> tuple[str, int, tuple[int, ...]]:
        """What a checkpoint of this plan's trial holds: its configuration, seed and folds."""
        return self.config_hash, self.seed, self.folds

    @property
    def changes(self) -> dict[str, Any]:
        """The dotted overrides that make (or were to make) the configuration."""
        if self.configuration is not None:
            return self.configuration.changes
        return self.unresolved_changes or {}


class SearchPlans:
    """A search sample → its trial plan, resolved in the driver (picklable, as Tune saves
    its searcher). A sample that does not resolve becomes a plan that fails with the reason."""

    def __init__(self, study: StudyConfig, data: DataIdentity, folds: tuple[int, ...]) -> None:
        self.study = study
        self.data = data
        self.folds = folds

    def __call__(self, sampled: dict[str, Any]) -> TrialPlan:
        changes = sampled_changes(sampled)
        try:
            configuration = resolve(self.study, changes)
        except UserError as error:
            return self._failing(changes, f"the sampled configuration {changes} is invalid: "
                                          f"{error}")
        except Exception:  # noqa: BLE001  (a bug must fail this trial, not the search)
            return self._failing(changes, f"resolving the sampled configuration {changes} "
                                          f"failed:\n{traceback.format_exc()}")
        return TrialPlan(variant=None, configuration=configuration,
                         config_hash=config_hash(configuration, self.data), seed=0,
                         folds=self.folds)

    def _failing(self, changes: dict[str, Any], error: str) -> TrialPlan:
        return TrialPlan(variant=None, configuration=None, unresolved_changes=changes,
                         config_hash=unresolved_hash(changes), seed=0, folds=self.folds,
                         error=error)


def trial_plan(config: dict[str, Any]) -> TrialPlan:
    """The plan a trial's Tune config carries."""
    return TrialPlan.model_validate_json(config[PLAN_KEY])


def error_file(experiment_dir: Path, trial_id: str) -> Path:
    """Where a failing trial leaves its traceback for the ledger (Tune writes its own error
    file only after its callbacks have run)."""
    return Path(experiment_dir) / "errors" / f"{trial_id}.txt"


def unresolved_hash(changes: dict[str, Any]) -> str:
    """A unit key for a configuration that could not be resolved: its changes, hashed."""
    text = json.dumps(changes, sort_keys=True, default=str)
    return "unresolved-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def missing_ablation_plans(variants: Sequence[VariantRecord], seeds: Sequence[int],
                           fold_indices: Sequence[int], done: set[UnitKey]) -> list[TrialPlan]:
    """One trial per (variant, seed) with folds the ledger lacks, holding only those folds.

    >>> from ser_ray.experiment import paper_training
    >>> configuration = Configuration(changes={}, model="eca_cnn", family="eca_cnn",
    ...     model_options={}, feature_set="logmel", train=paper_training("eca_cnn"))
    >>> variant = VariantRecord(name="baseline", factors={}, config_hash="c1",
    ...                         configuration=configuration)
    >>> [(plan.seed, plan.folds) for plan in
    ...  missing_ablation_plans([variant], [0, 1], [0, 1, 2], {("c1", 1, 0), ("c1", 0, 1)})]
    [(0, (0, 2)), (1, (1, 2))]
    """
    plans = []
    for variant in variants:
        for seed in seeds:
            folds = tuple(fold for fold in fold_indices
                          if (variant.config_hash, fold, seed) not in done)
            if folds:
                plans.append(TrialPlan(
                    variant=variant.name, factors=variant.factors,
                    configuration=variant.configuration, config_hash=variant.config_hash,
                    seed=seed, folds=folds))
    return plans


def remaining_trials(planned: int, trials_done: int) -> int:
    """Trials a search's budget has left: replays count, as they used a trial.

    >>> remaining_trials(8, 3), remaining_trials(8, 9)
    (5, 0)
    """
    return max(planned - trials_done, 0)
