"""The one ranking of a study's configurations: the report's tables, its "best so far" and
the exported best model all read it, so they name the same configuration.

A configuration is ranked by the mean of the objective over its finished units; a pruned or
failed unit has no final score and never enters. An ablation variant is ranked once it has a
finished unit; a search trial only when every unit of it finished (a trial pruned on one fold
stopped early on all of them). Ties keep `variant_order`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ser_ray.experiment.folder import Experiment
from ser_ray.experiment.ledger import STATUSES, Status


@dataclass(frozen=True)
class RankedConfiguration:
    """A configuration's objective as a fraction: mean and sample sd over finished units."""

    variant: str
    mean: float
    sd: float
    units: int


def variant_order(experiment: Experiment) -> list[str]:
    """Baseline, then planned variants, then any other ledger variant; trials by name."""
    seen = [row.variant for row in experiment.rows]
    if experiment.design == "search":
        return sorted(set(seen))
    planned = [variant.name for variant in experiment.study.variants]
    leading = [experiment.baseline] if experiment.baseline else []
    return list(dict.fromkeys([*leading, *planned, *seen]))


def trial_status(experiment: Experiment, variant: str) -> Status:
    """A configuration's status over its units: failed, else pruned, else finished."""
    statuses = {row.status for row in experiment.rows_of(variant)}
    return next(status for status in reversed(STATUSES) if status in statuses)


def ranking(experiment: Experiment) -> list[RankedConfiguration]:
    """Every rankable configuration, best first."""
    ranked = []
    for variant in variant_order(experiment):
        if experiment.design == "search" and trial_status(experiment, variant) != "finished":
            continue
        scores = [row.objective_score(experiment.objective)
                  for row in experiment.rows_of(variant, "finished")]
        finite = np.asarray([score for score in scores
                             if score is not None and math.isfinite(score)], float)
        if finite.size == 0:
            continue
        sd = float(np.std(finite, ddof=1)) if finite.size > 1 else math.nan
        ranked.append(RankedConfiguration(variant, float(np.mean(finite)), sd, len(scores)))
    sign = -1.0 if experiment.maximise else 1.0
    return sorted(ranked, key=lambda entry: sign * entry.mean)


def best(experiment: Experiment) -> RankedConfiguration | None:
    """The best configuration so far; None before any configuration can be ranked."""
    ranked = ranking(experiment)
    return ranked[0] if ranked else None
