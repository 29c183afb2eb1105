"""Paired statistics over matched (fold, seed) units: numpy and scipy only.

A variant and its baseline are trained on the same folds with the same seeds, so each
(fold, seed) gives one paired difference. The report tests those differences with the
Wilcoxon signed-rank test (no normality assumption, the primary test) and the paired t-test,
then Holm-corrects the Wilcoxon p-values over all comparisons of a study. A test that cannot
run returns NaN with the reason, never a made-up p.

>>> result = paired_test([0.75, 0.80, 0.78, 0.77, 0.79, 0.81], [0.70, 0.74, 0.73, 0.71, 0.75,
...                      0.76])
>>> result.n_pairs, round(result.mean_difference, 4), round(result.wilcoxon_p, 4)
(6, 0.0517, 0.0312)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

SIGNIFICANCE_LEVEL = 0.05


@dataclass(frozen=True)
class PairedTest:
    """Candidate − baseline over matched units; `reason` says why a p-value is NaN."""

    n_pairs: int
    mean_difference: float
    ci_low: float
    ci_high: float
    wilcoxon_p: float
    t_p: float
    reason: str | None = None


def mean_sd(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and sample sd (ddof 1) of the finite values; sd is NaN below two values.

    >>> [round(value, 4) for value in mean_sd([0.70, 0.72, 0.74])]
    [0.72, 0.02]
    >>> mean_sd([0.5])
    (0.5, nan)
    """
    finite = _finite(values)
    if finite.size == 0:
        return math.nan, math.nan
    sd = float(np.std(finite, ddof=1)) if finite.size > 1 else math.nan
    return float(np.mean(finite)), sd


def smallest_wilcoxon_p(n_pairs: int) -> float:
    """The smallest two-sided exact Wilcoxon p that n pairs can reach: 2 / 2^n.

    Five folds and one seed can never reach p < 0.05, whatever the differences are:

    >>> smallest_wilcoxon_p(5), smallest_wilcoxon_p(6)
    (0.0625, 0.03125)
    """
    return 2.0 / 2.0 ** n_pairs if n_pairs > 0 else math.nan


def wilcoxon_p(differences: Sequence[float] | np.ndarray) -> tuple[float, str | None]:
    """Two-sided Wilcoxon signed-rank p of paired differences, zero differences dropped.

    >>> wilcoxon_p([0.0, 0.0, 0.0])
    (nan, 'all paired differences are zero')
    >>> wilcoxon_p([0.01])
    (nan, 'fewer than 2 pairs')
    """
    finite = _finite(differences)
    if finite.size < 2:
        return math.nan, "fewer than 2 pairs"
    if not np.any(finite != 0):
        return math.nan, "all paired differences are zero"
    if np.count_nonzero(finite) < 2:
        return math.nan, "fewer than 2 non-zero differences"
    return float(stats.wilcoxon(finite, zero_method="wilcox").pvalue), None


def paired_t_p(differences: Sequence[float] | np.ndarray) -> tuple[float, str | None]:
    """Two-sided one-sample t-test p of paired differences against 0.

    >>> paired_t_p([0.02, 0.02, 0.02])
    (nan, 'paired differences have no spread')
    """
    finite = _finite(differences)
    if finite.size < 2:
        return math.nan, "fewer than 2 pairs"
    if np.ptp(finite) == 0:
        return math.nan, "paired differences have no spread"
    return float(stats.ttest_1samp(finite, 0.0).pvalue), None


def mean_difference_ci(differences: Sequence[float] | np.ndarray,
                       level: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean paired difference; NaN below two pairs.

    >>> low, high = mean_difference_ci([1.0, 2.0, 3.0])
    >>> round(low, 3), round(high, 3)
    (-0.484, 4.484)
    """
    finite = _finite(differences)
    if finite.size < 2:
        return math.nan, math.nan
    half_width = stats.t.ppf(0.5 + level / 2, finite.size - 1) * stats.sem(finite)
    centre = float(np.mean(finite))
    return centre - float(half_width), centre + float(half_width)


def paired_test(candidate: Sequence[float] | np.ndarray,
                baseline: Sequence[float] | np.ndarray) -> PairedTest:
    """Both tests and the 95 % CI on candidate − baseline; the inputs are aligned pairs."""
    candidate_values = np.asarray(candidate, dtype=float)
    baseline_values = np.asarray(baseline, dtype=float)
    if candidate_values.shape != baseline_values.shape:
        raise ValueError(f"paired samples differ in length: {candidate_values.shape} vs "
                         f"{baseline_values.shape}")
    differences = _finite(candidate_values - baseline_values)
    wilcoxon, wilcoxon_reason = wilcoxon_p(differences)
    t, t_reason = paired_t_p(differences)
    low, high = mean_difference_ci(differences)
    mean_difference = float(np.mean(differences)) if differences.size else math.nan
    return PairedTest(n_pairs=int(differences.size), mean_difference=mean_difference,
                      ci_low=low, ci_high=high, wilcoxon_p=wilcoxon, t_p=t,
                      reason=wilcoxon_reason or t_reason)


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN entries stay NaN and are not counted in m.

    >>> holm([0.01, 0.04, 0.03, 0.005]).round(4).tolist()
    [0.03, 0.06, 0.06, 0.02]
    >>> holm([0.2, float("nan")]).tolist()
    [0.2, nan]
    """
    values = np.asarray(p_values, dtype=float)
    adjusted = np.full(values.shape, math.nan)
    present = np.flatnonzero(~np.isnan(values))
    order = present[np.argsort(values[present], kind="stable")]
    m = order.size
    running_max = 0.0
    for rank, index in enumerate(order):
        running_max = max(running_max, min(1.0, (m - rank) * values[index]))
        adjusted[index] = running_max
    return adjusted


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]
