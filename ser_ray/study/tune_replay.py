"""A search's Tune searcher and scheduler driven by recorded learning curves, one trial at a
time: what `ser-ray bench search` replays each strategy with.

The objects are the live ones (`EpochOptunaSearch` on the study's space and sampler,
`study_scheduler`), and they hear the calls Ray 2.60's `TuneController` makes, in its order:
each epoch's flattened result goes to the scheduler and, unless it stops the trial, to the
searcher; when the scheduler stops the trial or its function returns (Tune's duplicate last
result, marked done, reaches neither), the scheduler and then the searcher hear
`on_trial_complete` with the last result. A configuration the search proposes again trains
nothing and reports the epochs it was recorded with (`study.trial`'s replay of recorded
units), as it does live.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ray.tune.schedulers import TrialScheduler

from ser_ray.study.schema import StudyConfig
from ser_ray.study.space import DefineByRun, make_sampler, sampled_changes
from ser_ray.study.tune_run import EpochOptunaSearch, study_scheduler
from ser_ray.train.results import selected_by_fold, selected_metric

# Per epoch (1-based, in order): each fold's objective at that epoch, {fold: value}.
Curve = Sequence[dict[str, float]]


@dataclass(frozen=True)
class ReplayedTrial:
    """One trial of a replayed search.

    Attributes:
        changes: the sampled configuration's dotted changes.
        epochs: epochs it reported before it ended (stopped, or its last).
        trained: False when it repeated a configuration the search had run (no training).
        complete: it reported every epoch of the budget.
    """

    changes: dict[str, Any]
    epochs: int
    trained: bool
    complete: bool


@dataclass(frozen=True)
class _Trial:
    """What Tune's schedulers read of a trial."""

    trial_id: str


def replay_search(study: StudyConfig, curve: Callable[[dict[str, Any]], Curve],
                  trials: int) -> list[ReplayedTrial]:
    """`trials` trials of the study's search, sequentially, each trained on `curve(changes)`."""
    assert study.search is not None
    metric = study.objective.metric
    searcher = EpochOptunaSearch(space=DefineByRun(study.search.parameters),
                                 metric=selected_metric(metric), mode=study.objective.mode,
                                 sampler=make_sampler(study.search), epochs=study.budget.epochs)
    scheduler = study_scheduler(study)
    recorded: dict[str, int] = {}  # configuration → epochs its first trial reported
    replayed = []
    for number in range(trials):
        trial = _Trial(f"replay_{number:05d}")
        changes = sampled_changes(searcher.suggest(trial.trial_id))
        key = json.dumps(changes, sort_keys=True)
        scores = curve(changes)[:recorded.get(key, study.budget.epochs)]
        if not scores:
            raise ValueError(f"no recorded epochs for configuration {key}")
        scheduler.on_trial_add(None, trial)
        for epoch, folds in enumerate(scores, start=1):
            last = epoch_result(epoch, folds, metric)
            if scheduler.on_trial_result(None, trial, last) == TrialScheduler.STOP:
                break
            searcher.on_trial_result(trial.trial_id, last)
        scheduler.on_trial_complete(None, trial, last)
        searcher.on_trial_complete(trial.trial_id, result=last)
        replayed.append(ReplayedTrial(changes=changes, epochs=last["epoch"],
                                      trained=key not in recorded,
                                      complete=last["epoch"] == study.budget.epochs))
        recorded.setdefault(key, last["epoch"])
    return replayed


def epoch_result(epoch: int, folds: dict[str, float], metric: str) -> dict[str, Any]:
    """The flattened keys of a trial's epoch summary that searchers and schedulers read:
    the fold mean (`epoch_summary` takes it over the folds in order) and each fold's score."""
    ordered = sorted(folds.items(), key=lambda item: int(item[0]))
    return {"epoch": epoch,
            selected_metric(metric): float(np.mean([value for _, value in ordered])),
            **{f"{selected_by_fold(metric)}/{fold}": value for fold, value in ordered}}
