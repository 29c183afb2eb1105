"""Fold racing: stop a trial once its folds say it is worse than the incumbent's.

k-fold studies pay k times for every configuration, and each trial reports a score per fold.
A configuration worse than the best one on every fold so far is almost surely worse, long
before its fold mean says so with ASHA's rank cut. At each rung (the epochs ASHA would use:
grace_period × reduction_factor^k below the last epoch) a trial's per-fold objective is
paired by fold with the incumbent's at the same rung — the trial with the best fold mean
there — and the trial stops when a one-sided Wilcoxon signed-rank test says it is worse at
level `alpha` and it is worse on at least `min_folds_worse` folds. The p-value is the exact
permutation p over the 2^n sign flips of the n non-zero differences (scipy's
`PermutationMethod`, every flip enumerated), valid with tied differences, up to 16 folds;
beyond, scipy's normal approximation. With n folds the smallest p attainable is 2^-n, so 5
folds stop a trial at α = 0.05 only when it is worse on all five.

`FoldRacingScheduler` is the Tune scheduler; `race_verdict` the rule alone. Both serve the
live study and `ser-ray bench search`'s replay, so a replayed decision is the live one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from scipy import stats

from ser_ray.train.results import selected_by_fold, selected_metric

FoldScores = Mapping[str, float]
logger = logging.getLogger(__name__)
# Up to this many non-zero differences the p-value enumerates every sign flip (2^16 = 65,536);
# beyond, the normal approximation with tie correction, deterministic as well.
EXACT_FOLDS = 16


@dataclass(frozen=True)
class Verdict:
    """One comparison of a trial with the incumbent at a rung."""

    stop: bool
    paired_folds: int
    worse_folds: int
    p_value: float


def race_verdict(candidate: FoldScores, incumbent: FoldScores, mode: str, alpha: float,
                 min_folds_worse: int) -> Verdict:
    """Whether `candidate` is worse than `incumbent`, paired over the folds both have a
    finite score for (a fold either lacks is left out of the test, not counted against it).

    >>> race_verdict({"0": .5, "1": .4, "2": .3}, {"0": .6, "1": .5, "2": .4}, "max", .2, 3)
    Verdict(stop=True, paired_folds=3, worse_folds=3, p_value=0.125)
    >>> race_verdict({"0": .5, "1": .4}, {"0": .6, "1": .5, "2": .4}, "max", .2, 3).stop
    False
    """
    folds = sorted(fold for fold in set(candidate) & set(incumbent)
                   if math.isfinite(candidate[fold]) and math.isfinite(incumbent[fold]))
    sign = 1.0 if mode == "max" else -1.0
    # Negative: the candidate is worse on that fold.
    differences = np.array([sign * (candidate[fold] - incumbent[fold]) for fold in folds])
    worse = int(np.sum(differences < 0))
    if not np.any(differences != 0):
        return Verdict(stop=False, paired_folds=len(folds), worse_folds=worse, p_value=1.0)
    nonzero = int(np.sum(differences != 0))
    method = stats.PermutationMethod(n_resamples=np.inf) if nonzero <= EXACT_FOLDS else "approx"
    p_value = float(stats.wilcoxon(differences, alternative="less", zero_method="wilcox",
                                   method=method).pvalue)
    return Verdict(stop=worse >= min_folds_worse and p_value <= alpha,
                   paired_folds=len(folds), worse_folds=worse, p_value=p_value)


def rung_epochs(grace_period: int, reduction_factor: float, max_epochs: int) -> list[int]:
    """The epochs a trial is judged at: ASHA's milestones below the last epoch, rounded up
    (ASHA judges a trial at the first report at or past a milestone).

    >>> rung_epochs(1, 3, 12), rung_epochs(2, 2, 12), rung_epochs(1, 1.5, 4)
    ([1, 3, 9], [2, 4, 8], [1, 2, 3])
    """
    rungs, milestone = set(), float(grace_period)
    while milestone < max_epochs:
        rungs.add(math.ceil(milestone))
        milestone *= reduction_factor
    return sorted(rung for rung in rungs if rung < max_epochs)


class FoldRacingScheduler(FIFOScheduler):
    """Tune scheduler: fold racing at each rung, optionally with ASHA's cut at the same rungs
    (Ray's own `ASHAScheduler`; a trial stops when either says so). It reads the fold mean and
    the per-fold scores of `metric` at the selected epochs (`selected_metric`,
    `selected_by_fold`) from the trial's epoch summaries, which lock-step trials and Ray
    Train workers report alike. Decisions are by arrival: the incumbent at a rung is the best
    trial recorded there before this one."""

    def __init__(self, metric: str, mode: str, max_epochs: int, grace_period: int,
                 reduction_factor: float, alpha: float, min_folds_worse: int,
                 asha: bool) -> None:
        super().__init__()
        self.mean_key, self.folds_key = selected_metric(metric), selected_by_fold(metric)
        self.mode, self.alpha, self.min_folds_worse = mode, alpha, min_folds_worse
        self.rungs = rung_epochs(grace_period, reduction_factor, max_epochs)
        # rung → trial id → (fold mean, fold scores) at the first report at or past the rung
        self.recorded: dict[int, dict[str, tuple[float, dict[str, float]]]] = {
            rung: {} for rung in self.rungs}
        self.warned = False
        self.cut = ASHAScheduler(time_attr="epoch", metric=self.mean_key, mode=mode,
                                 max_t=max_epochs, grace_period=grace_period,
                                 reduction_factor=reduction_factor) if asha else None

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        if self.cut is not None:
            self.cut.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = TrialScheduler.CONTINUE
        if self.cut is not None:
            decision = self.cut.on_trial_result(tune_controller, trial, result)
        # Tune hands schedulers flattened results: the fold scores arrive as `key/fold`.
        prefix = self.folds_key + "/"
        folds = {key[len(prefix):]: float(value) for key, value in result.items()
                 if key.startswith(prefix)}
        if folds and self.mean_key in result and self._raced(
                trial.trial_id, int(result["epoch"]), float(result[self.mean_key]), folds):
            decision = TrialScheduler.STOP
        return decision

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if self.cut is not None:
            self.cut.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        if self.cut is not None:
            self.cut.on_trial_remove(tune_controller, trial)

    def _raced(self, trial_id: str, epoch: int, mean: float, folds: dict[str, float]) -> bool:
        """Record the trial at the rung this epoch reaches first; True when the incumbent
        there beats it."""
        rung = next((rung for rung in reversed(self.rungs) if epoch >= rung), None)
        if rung is None or trial_id in self.recorded[rung]:
            return False
        # A trial whose fold mean is not a number cannot lead.
        rivals = [seen for seen in self.recorded[rung].values() if math.isfinite(seen[0])]
        self.recorded[rung][trial_id] = (mean, folds)
        if not rivals:
            return False
        if not self.warned and (2.0 ** -len(folds) > self.alpha
                                or self.min_folds_worse > len(folds)):
            self.warned = True
            logger.warning("fold racing can stop no trial with %d folds: the smallest one-sided "
                           "p-value is %.3g (alpha %g), and min_folds_worse is %d", len(folds),
                           2.0 ** -len(folds), self.alpha, self.min_folds_worse)
        sign = 1.0 if self.mode == "max" else -1.0
        # The first of equal bests leads; a trial that leads is never stopped.
        incumbent_mean, incumbent_folds = max(rivals, key=lambda seen: sign * seen[0])
        if sign * mean >= sign * incumbent_mean:
            return False
        return race_verdict(folds, incumbent_folds, self.mode, self.alpha,
                            self.min_folds_worse).stop

    def debug_string(self) -> str:
        reached = ", ".join(f"epoch {rung}: {len(seen)}" for rung, seen in self.recorded.items())
        return f"FoldRacing (trials recorded per rung: {reached})"
