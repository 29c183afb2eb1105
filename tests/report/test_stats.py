"""Paired tests, Holm correction and spreads on literal numbers."""

from __future__ import annotations

import math
import statistics

import pytest

from ser_ray.report.stats import holm, mean_sd, paired_t_p, paired_test, wilcoxon_p


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


def test_holm_matches_a_hand_computation() -> None:
    # sorted: 0.005·4 = 0.02; 0.01·3 = 0.03; 0.03·2 = 0.06; 0.04·1 = 0.04 → max(0.06, 0.04).
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted.tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_skips_missing_p_values() -> None:
    adjusted = holm([0.6, float("nan"), 0.3])
    # m = 2 (the NaN is not a comparison): 0.3·2 = 0.6; 0.6·1 → max(0.6, 0.6).
    assert adjusted[0] == pytest.approx(0.6)
    assert math.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.6)
    assert holm([0.9, 0.8]).tolist() == pytest.approx([1.0, 1.0])


def test_consistent_improvement_is_significant() -> None:
    baseline = [70.0 + 2 * fold for fold in range(5) for _ in range(2)]
    jitter = [0.0, 0.1, -0.1, 0.2, -0.2, 0.1, 0.0, -0.1, 0.2, -0.2]
    result = paired_test([b + 5 + j for b, j in zip(baseline, jitter)], baseline)
    assert result.n_pairs == 10
    assert result.mean_difference == pytest.approx(5.0)
    # Every one of 10 differences positive: the exact two-sided p is 2 / 2^10.
    assert result.wilcoxon_p == pytest.approx(2 / 1024)
    assert result.t_p < 1e-6
    assert result.ci_low < 5.0 < result.ci_high
    assert result.reason is None


def test_noise_is_not_significant() -> None:
    noise = [0.5, -0.7, 0.3, -0.2, 0.8, -0.6, 0.1, -0.4, 0.6, -0.5]
    result = paired_test([70 + n for n in noise], [70.0] * 10)
    assert result.wilcoxon_p > 0.5
    assert result.t_p > 0.5
    assert result.ci_low < 0 < result.ci_high


def test_paired_t_matches_a_hand_computation() -> None:
    # d = 1, 2, 3: t = 2 / (1 / √3) = 3.464 with 2 degrees of freedom → p = 0.0742.
    p, reason = paired_t_p([1.0, 2.0, 3.0])
    assert p == pytest.approx(0.0742, abs=1e-4)
    assert reason is None


@pytest.mark.parametrize(("differences", "reason"), [
    ([0.0, 0.0, 0.0, 0.0], "all paired differences are zero"),
    ([1.0], "fewer than 2 pairs"),
    ([], "fewer than 2 pairs"),
    ([0.0, 0.0, 2.0], "fewer than 2 non-zero differences"),
])
def test_wilcoxon_returns_nan_with_a_reason(differences: list[float], reason: str) -> None:
    p, why = wilcoxon_p(differences)
    assert math.isnan(p)
    assert why == reason


def test_identical_runs_give_no_p_value_and_say_why() -> None:
    result = paired_test([0.7, 0.8, 0.75], [0.7, 0.8, 0.75])
    assert result.mean_difference == 0.0
    assert math.isnan(result.wilcoxon_p) and math.isnan(result.t_p)
    assert result.reason == "all paired differences are zero"


def test_unequal_samples_are_rejected() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        paired_test([0.1, 0.2], [0.1])
