"""Fold differences, paired tests, Holm correction and spreads on literal numbers."""

from __future__ import annotations

import math
import statistics

import pytest
from scipy import stats

from ser_ray.report.stats import (
    fold_differences,
    holm,
    mean_sd,
    paired_test,
    resampled_t_p,
    smallest_wilcoxon_p,
    wilcoxon_p,
    within_fold_sd,
)


def test_mean_sd_is_the_sample_sd_over_every_value() -> None:
    values = [70.0, 72.0, 74.0, 76.0, 78.0] * 2
    mean, sd = mean_sd(values)
    assert mean == pytest.approx(74.0)
    assert sd == pytest.approx(statistics.stdev(values))
    assert sd == pytest.approx(math.sqrt(80 / 9))


def test_mean_sd_ignores_missing_values_and_has_no_sd_for_one_value() -> None:
    mean, sd = mean_sd([0.6, float("nan")])
    assert mean == pytest.approx(0.6)
    assert math.isnan(sd)
    assert all(math.isnan(value) for value in mean_sd([]))


def test_seeds_are_averaged_within_each_fold() -> None:
    # Fold 2's seeds are 1 and 3, fold 0's 5 alone; a missing seed does not enter.
    differences = fold_differences([2, 0, 2, 1, 1], [1.0, 5.0, 3.0, -2.0, float("nan")])
    assert differences.tolist() == [5.0, -2.0, 2.0]


def test_seed_spread_is_the_mean_within_fold_sd() -> None:
    # Fold 0: sd(70, 74) = 2√2; fold 1: sd(80, 81, 82) = 1; fold 2 has one seed: no sd.
    spread = within_fold_sd([0, 0, 1, 1, 1, 2], [70.0, 74.0, 80.0, 81.0, 82.0, 90.0])
    assert spread == pytest.approx((2 * math.sqrt(2) + 1.0) / 2)
    assert math.isnan(within_fold_sd([0, 1], [70.0, 80.0]))


def test_holm_matches_a_hand_computation() -> None:
    # sorted: 0.005·4 = 0.02; 0.01·3 = 0.03; 0.03·2 = 0.06; 0.04·1 = 0.04 → max(0.06, 0.04).
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted.tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_counts_an_untested_comparison_at_p_one() -> None:
    # m = 3, the NaN entering as 1: 0.01·3 = 0.03; 0.3·2 = 0.6; 1·1 → 1.
    adjusted = holm([0.3, float("nan"), 0.01])
    assert adjusted.tolist() == pytest.approx([0.6, 1.0, 0.03])
    assert holm([0.9, 0.8]).tolist() == pytest.approx([1.0, 1.0])


def test_consistent_improvement_over_six_folds_is_significant() -> None:
    result = paired_test([5.0, 5.1, 4.9, 5.2, 4.8, 5.0])
    assert result.n_folds == 6
    assert result.mean_difference == pytest.approx(5.0)
    # Every one of 6 differences positive: the exact two-sided p is 2 / 2^6.
    assert result.wilcoxon_p == pytest.approx(2 / 64)
    assert result.t_p < 1e-6
    assert result.ci_low < 5.0 < result.ci_high
    assert result.reason is None


def test_five_folds_cannot_reach_significance_with_the_wilcoxon() -> None:
    assert smallest_wilcoxon_p(5) == pytest.approx(0.0625)
    assert paired_test([5.0, 5.1, 4.9, 5.2, 4.8]).wilcoxon_p == pytest.approx(0.0625)


def test_noise_is_not_significant() -> None:
    result = paired_test([0.5, -0.7, 0.3, -0.2, 0.8, -0.6, 0.1, -0.4, 0.6, -0.5])
    assert result.wilcoxon_p > 0.5
    assert result.t_p > 0.5
    assert result.ci_low < 0 < result.ci_high


def test_plain_t_is_the_one_sample_t_test() -> None:
    # d = 1, 2, 3: t = 2 / (1 / √3) = 3.464 with 2 degrees of freedom → p = 0.0742.
    p, reason = resampled_t_p([1.0, 2.0, 3.0])
    assert p == pytest.approx(0.0742, abs=1e-4)
    assert p == pytest.approx(stats.ttest_1samp([1.0, 2.0, 3.0], 0.0).pvalue)
    assert reason is None


def test_corrected_resampled_t_matches_a_hand_computation() -> None:
    # d = 1..5 over J = 5 stratified folds (k = 5: n_test/n_train = 1/4): mean 3, s² = 2.5,
    # variance (1/5 + 1/4) · 2.5 = 1.125, t = 3 / √1.125 = 2√2 = 2.828 with 4 degrees of
    # freedom → two-sided p = 0.0474 (the plain t, 3 / √0.5 = 4.243, gives 0.0132).
    p, reason = resampled_t_p([1.0, 2.0, 3.0, 4.0, 5.0], test_train_ratio=0.25)
    assert p == pytest.approx(0.04742, abs=1e-5)
    assert p == pytest.approx(2 * stats.t.sf(2 * math.sqrt(2), 4))
    assert resampled_t_p([1.0, 2.0, 3.0, 4.0, 5.0])[0] == pytest.approx(0.0132, abs=1e-4)
    assert reason is None
    # The CI uses the same corrected standard error: 3 ± t(0.975, 4) · √1.125.
    result = paired_test([1.0, 2.0, 3.0, 4.0, 5.0], test_train_ratio=0.25)
    half_width = stats.t.ppf(0.975, 4) * math.sqrt(1.125)
    assert (result.ci_low, result.ci_high) == pytest.approx((3 - half_width, 3 + half_width))
    assert result.t_p == pytest.approx(p)


@pytest.mark.parametrize(("differences", "reason"), [
    ([0.0, 0.0, 0.0, 0.0], "all paired differences are zero"),
    ([1.0], "fewer than 2 folds"),
    ([], "fewer than 2 folds"),
    ([0.0, 0.0, 2.0], "fewer than 2 non-zero differences"),
])
def test_wilcoxon_returns_nan_with_a_reason(differences: list[float], reason: str) -> None:
    p, why = wilcoxon_p(differences)
    assert math.isnan(p)
    assert why == reason


def test_identical_runs_give_no_p_value_and_say_why() -> None:
    result = paired_test([0.0, 0.0, 0.0])
    assert result.mean_difference == 0.0
    assert math.isnan(result.wilcoxon_p) and math.isnan(result.t_p)
    assert result.reason == "all paired differences are zero"


def test_folds_and_values_must_align() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        fold_differences([0, 1], [0.1])
