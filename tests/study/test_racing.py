"""Fold racing on constructed per-fold vectors: the rule, and the Tune scheduler around it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from ray.tune.schedulers import TrialScheduler
from scipy import stats

from ser_ray.study.racing import FoldRacingScheduler, Verdict, race_verdict, rung_epochs
from ser_ray.study.schema import Scheduler
from ser_ray.study.tune_replay import epoch_result

FOLDS = ("0", "1", "2", "3", "4")


def scores(*values: float) -> dict[str, float]:
    return dict(zip(FOLDS, values))


INCUMBENT = scores(0.60, 0.62, 0.58, 0.66, 0.61)


@pytest.mark.parametrize(("candidate", "alpha", "min_worse", "stop"), [
    # Worse on all five: the exact one-sided p is 1/32.
    (scores(0.50, 0.60, 0.50, 0.60, 0.60), 0.05, 5, True),
    (scores(0.50, 0.60, 0.50, 0.60, 0.60), 0.03, 1, False),
    # Better on the fold of the smallest difference: p = 2/32.
    (scores(0.50, 0.60, 0.50, 0.60, 0.62), 0.05, 1, False),
    (scores(0.50, 0.60, 0.50, 0.60, 0.62), 0.07, 4, True),
    (scores(0.50, 0.60, 0.50, 0.60, 0.62), 0.07, 5, False),  # only 4 folds worse
    # Better on a fold by a lot: no evidence.
    (scores(0.50, 0.90, 0.50, 0.60, 0.60), 0.2, 1, False),
])
def test_a_trial_stops_exactly_when_the_paired_test_says_it_is_worse(
        candidate, alpha, min_worse, stop) -> None:
    verdict = race_verdict(candidate, INCUMBENT, "max", alpha, min_worse)
    differences = [candidate[fold] - INCUMBENT[fold] for fold in FOLDS]
    expected = stats.wilcoxon(differences, alternative="less",
                              method=stats.PermutationMethod()).pvalue
    assert verdict.p_value == pytest.approx(expected)
    assert verdict.paired_folds == 5
    assert verdict.worse_folds == sum(difference < 0 for difference in differences)
    assert verdict.stop is stop


def test_ties_and_missing_folds_are_left_out_of_the_test() -> None:
    # Equal on two folds: the test runs over the three that differ (p = 1/8).
    tied = scores(0.60, 0.62, 0.50, 0.60, 0.55)
    verdict = race_verdict(tied, INCUMBENT, "max", 0.125, 3)
    assert (verdict.paired_folds, verdict.worse_folds, verdict.stop) == (5, 3, True)
    assert verdict.p_value == pytest.approx(1 / 8)
    # Tied everywhere: nothing says it is worse.
    assert race_verdict(INCUMBENT, INCUMBENT, "max", 0.99, 1) == Verdict(
        stop=False, paired_folds=5, worse_folds=0, p_value=1.0)
    # A fold the candidate lacks, or a NaN score, is not paired.
    partial = {"0": 0.5, "1": 0.5, "2": float("nan")}
    verdict = race_verdict(partial, INCUMBENT, "max", 0.3, 2)
    assert (verdict.paired_folds, verdict.worse_folds) == (2, 2)
    assert verdict.p_value == pytest.approx(1 / 4) and verdict.stop


def test_the_p_value_is_exact_beyond_the_resampling_default() -> None:
    many = {str(fold): 0.5 for fold in range(14)}
    worse = {fold: 0.4 for fold in many}
    verdict = race_verdict(worse, many, "max", 0.05, 1)
    assert verdict.p_value == 2.0 ** -14  # every one of the 2^14 sign flips, not a sample
    # Better on the folds of the two smallest differences: W+ = 1 + 2 = 3, and of the 2^14
    # sign flips 5 give W+ <= 3 ({}, {1}, {2}, {3}, {1, 2}).
    mixed = {fold: 0.5 + (0.001 if int(fold) < 2 else -1) * (int(fold) + 1) / 100
             for fold in many}
    assert race_verdict(mixed, many, "max", 0.05, 1).p_value == pytest.approx(5 / 2 ** 14)


def test_under_mode_min_higher_is_worse() -> None:
    higher = {fold: value + 0.1 for fold, value in INCUMBENT.items()}
    assert race_verdict(higher, INCUMBENT, "min", 0.05, 5).stop
    assert not race_verdict(higher, INCUMBENT, "max", 0.05, 5).stop


@dataclass(frozen=True)
class Trial:
    trial_id: str


def racer(**options) -> FoldRacingScheduler:
    settings = {"metric": "unweighted_accuracy", "mode": "max", "max_epochs": 12,
                "grace_period": 1, "reduction_factor": 3, "alpha": 0.05,
                "min_folds_worse": 5, "asha": False, **options}
    return FoldRacingScheduler(**settings)


def report(scheduler: FoldRacingScheduler, trial: str, epoch: int,
           folds: dict[str, float]) -> str:
    return scheduler.on_trial_result(None, Trial(trial),
                                     epoch_result(epoch, folds, "unweighted_accuracy"))


def test_the_scheduler_races_at_rungs_only_and_never_stops_the_incumbent() -> None:
    scheduler = racer()
    assert scheduler.rungs == [1, 3, 9]
    worse = {fold: value - 0.1 for fold, value in INCUMBENT.items()}
    for name in ("a", "b"):
        scheduler.on_trial_add(None, Trial(name))
    # The first trial at a rung has nothing to race against.
    assert report(scheduler, "a", 1, worse) == TrialScheduler.CONTINUE
    # Better than the incumbent: it leads, and a leader is never stopped.
    assert report(scheduler, "b", 1, INCUMBENT) == TrialScheduler.CONTINUE
    # Between rungs nothing is decided, however bad the scores.
    assert report(scheduler, "b", 2, worse) == TrialScheduler.CONTINUE
    # Rung 3: "b" is recorded first; "a" is worse on every fold and stops.
    assert report(scheduler, "b", 3, INCUMBENT) == TrialScheduler.CONTINUE
    assert report(scheduler, "a", 3, worse) == TrialScheduler.STOP
    # A rung judges the first report at or past it, once.
    scheduler.on_trial_add(None, Trial("c"))
    assert report(scheduler, "c", 4, worse) == TrialScheduler.STOP
    assert report(scheduler, "c", 5, worse) == TrialScheduler.CONTINUE
    assert set(scheduler.recorded[3]) == {"a", "b", "c"}


def test_a_trial_without_a_fold_mean_never_leads() -> None:
    scheduler = racer()
    for name in ("nan", "good", "bad"):
        scheduler.on_trial_add(None, Trial(name))
    assert report(scheduler, "nan", 1, scores(*[float("nan")] * 5)) == TrialScheduler.CONTINUE
    assert report(scheduler, "good", 1, INCUMBENT) == TrialScheduler.CONTINUE
    worse = {fold: value - 0.1 for fold, value in INCUMBENT.items()}
    assert report(scheduler, "bad", 1, worse) == TrialScheduler.STOP


def test_racing_with_asha_also_stops_below_the_rung_cut() -> None:
    alone, combined = racer(), racer(asha=True)
    # Three trials at rung 1, each better than the last on some folds only: racing alone
    # stops none; ASHA keeps the top third, so a trial below the cut stops.
    trials = [scores(0.60, 0.50, 0.50, 0.50, 0.50), scores(0.50, 0.60, 0.60, 0.60, 0.60),
              scores(0.55, 0.52, 0.50, 0.50, 0.50)]
    decisions = {}
    for scheduler, name in ((alone, "alone"), (combined, "combined")):
        for number, folds in enumerate(trials):
            scheduler.on_trial_add(None, Trial(str(number)))
            decisions[name, number] = report(scheduler, str(number), 1, folds)
    assert [decisions["alone", number] for number in range(3)] == [TrialScheduler.CONTINUE] * 3
    assert decisions["combined", 2] == TrialScheduler.STOP


def test_rungs_are_ashas_milestones_below_the_last_epoch() -> None:
    assert rung_epochs(1, 3, 12) == [1, 3, 9]
    assert rung_epochs(4, 2, 12) == [4, 8]
    assert rung_epochs(12, 2, 12) == []


def test_racing_settings_belong_to_racing() -> None:
    with pytest.raises(ValueError, match="alpha apply to kind 'racing' only, not 'asha'"):
        Scheduler(kind="asha", alpha=0.1)
    # A saved study spells every field out, defaults included: it loads again.
    assert Scheduler(**Scheduler(kind="asha").model_dump()).kind == "asha"
    assert Scheduler(kind="asha").settings() == {"kind": "asha", "grace_period": 1,
                                                 "reduction_factor": 2.0}
    assert Scheduler(kind="racing", asha=True).settings()["asha"] is True
    with pytest.raises(ValueError, match="alpha"):
        Scheduler(kind="racing", alpha=1.5)
