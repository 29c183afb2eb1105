"""Paired statistics over folds: numpy and scipy only.

A variant and its baseline are trained on the same folds with the same seeds. All seeds of a
fold share its test speakers, so their differences are not independent: each fold's matched
differences are averaged over seeds first (`fold_differences`), and the tests run over the
fold differences, n = the number of folds. Seeds make each fold's difference less noisy; they
add no observation, and their spread is reported apart (`within_fold_sd`).

Two tests run on the fold differences: the Wilcoxon signed-rank test and a t-test, the
plain paired t over folds whose training sets are fixed (sessions, speakers), or the corrected
resampled t of Nadeau & Bengio (2003) over stratified k-fold splits, whose training sets
overlap (`resampled_t_p`). A test that cannot run returns NaN with the reason, never a
made-up p; Holm's correction counts it with p = 1.

>>> result = paired_test([5.05, 5.05, 4.95, 4.95, 5.0, 5.1])
>>> result.n_folds, round(result.mean_difference, 4), round(result.wilcoxon_p, 4)
(6, 5.0167, 0.0312)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

SIGNIFICANCE_LEVEL = 0.05
# Far below any real difference: a score moves by 1/support, at least 1e-4 of it.
DIFFERENCE_DECIMALS = 9
Values = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class PairedTest:
    """Candidate − baseline over folds; `reason` says why a p-value is NaN.

    `t_p` is the plain paired t-test's p, or the corrected resampled t's when the test was
    given a test/train size ratio.
    """

    n_folds: int
    mean_difference: float
    ci_low: float
    ci_high: float
    wilcoxon_p: float
    t_p: float
    reason: str | None = None


def mean_sd(values: Values) -> tuple[float, float]:
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


def fold_differences(folds: Sequence[int] | np.ndarray, differences: Values) -> np.ndarray:
    """One difference per fold: the mean of its seeds' matched differences, in fold order.

    Rounded to DIFFERENCE_DECIMALS: subtracting and averaging scores leaves float noise
    (1e-14) that would turn equal differences into ones with a spread, and a zero into a
    signed one, for the tests.

    >>> fold_differences([0, 0, 1, 1, 2], [1.0, 3.0, -1.0, -1.0, 4.0]).tolist()
    [2.0, -1.0, 4.0]
    >>> 0.57 * 100 - 0.51 * 100, fold_differences([0, 1], [0.57 * 100 - 0.51 * 100, 6.0])
    (5.999999999999993, array([6., 6.]))
    """
    means = [np.mean(group) for group in _by_fold(folds, differences)]
    return np.round(np.asarray(means, dtype=float), DIFFERENCE_DECIMALS)


def within_fold_sd(folds: Sequence[int] | np.ndarray, values: Values) -> float:
    """The sample sd of the values across seeds within each fold, averaged over the folds
    that have two or more; NaN when none has.

    >>> round(within_fold_sd([0, 0, 1, 1, 2], [70.0, 72.0, 80.0, 81.0, 90.0]), 4)
    1.0607
    """
    spreads = [float(np.std(group, ddof=1)) for group in _by_fold(folds, values)
               if group.size > 1]
    return float(np.mean(spreads)) if spreads else math.nan


def smallest_wilcoxon_p(n: int) -> float:
    """The smallest two-sided exact Wilcoxon p that n differences can reach: 2 / 2^n.

    Five folds can never reach p < 0.05, whatever their differences are:

    >>> smallest_wilcoxon_p(5), smallest_wilcoxon_p(6)
    (0.0625, 0.03125)
    """
    return 2.0 / 2.0 ** n if n > 0 else math.nan


def wilcoxon_p(differences: Values) -> tuple[float, str | None]:
    """Two-sided Wilcoxon signed-rank p of paired differences, zero differences dropped:
    scipy's default, exact for a few folds (by permutation when differences tie; its
    `method="exact"` ignores ties and would understate p: 0.047 instead of 0.0625 for
    [1, 1, 2, 3, 4, 5, -1]), the normal approximation beyond (more than 13 tied, or more
    than 50, differences).

    >>> round(wilcoxon_p([1, 1, 2, 3, 4, 5, -1])[0], 4)
    0.0625
    >>> wilcoxon_p([0.0, 0.0, 0.0])
    (nan, 'all paired differences are zero')
    >>> wilcoxon_p([0.01])
    (nan, 'fewer than 2 folds')
    """
    finite = _finite(differences)
    if finite.size < 2:
        return math.nan, "fewer than 2 folds"
    if not np.any(finite != 0):
        return math.nan, "all paired differences are zero"
    if np.count_nonzero(finite) < 2:
        return math.nan, "fewer than 2 non-zero differences"
    return float(stats.wilcoxon(finite, zero_method="wilcox").pvalue), None


def resampled_t_p(differences: Values,
                  test_train_ratio: float = 0.0) -> tuple[float, str | None]:
    """Two-sided p of t = mean(d) / sqrt((1/J + n_test/n_train) · s²), df = J − 1, over the
    J paired differences d.

    With `test_train_ratio` 0 this is the plain paired t-test. With n_test/n_train of
    resampled splits (1/(k − 1) for k-fold) it is the corrected resampled t-test of Nadeau &
    Bengio (2003): the training sets the splits share make their differences correlated, and
    the extra variance term keeps that from passing for evidence.

    >>> round(resampled_t_p([1.0, 2.0, 3.0, 4.0, 5.0], 0.25)[0], 4)
    0.0474

    Equal differences on every fold have no spread to weigh the mean against: t is
    undefined, and the comparison is left untested rather than called certain from a
    handful of folds.

    >>> resampled_t_p([0.02, 0.02, 0.02])
    (nan, 'the fold differences are all equal: no spread to test against')
    """
    finite = _finite(differences)
    if finite.size < 2:
        return math.nan, "fewer than 2 folds"
    if np.ptp(finite) == 0:
        return math.nan, "the fold differences are all equal: no spread to test against"
    t = float(np.mean(finite)) / _standard_error(finite, test_train_ratio)
    return float(2.0 * stats.t.sf(abs(t), finite.size - 1)), None


def mean_difference_ci(differences: Values, test_train_ratio: float = 0.0,
                       level: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean difference with the standard error of
    `resampled_t_p`; NaN below two differences.

    >>> low, high = mean_difference_ci([1.0, 2.0, 3.0])
    >>> round(low, 3), round(high, 3)
    (-0.484, 4.484)
    """
    finite = _finite(differences)
    if finite.size < 2:
        return math.nan, math.nan
    half_width = (stats.t.ppf(0.5 + level / 2, finite.size - 1)
                  * _standard_error(finite, test_train_ratio))
    centre = float(np.mean(finite))
    return centre - float(half_width), centre + float(half_width)


def paired_test(differences: Values, test_train_ratio: float = 0.0) -> PairedTest:
    """Both tests and the 95 % CI on the fold differences (candidate − baseline)."""
    finite = _finite(differences)
    wilcoxon, wilcoxon_reason = wilcoxon_p(finite)
    t, t_reason = resampled_t_p(finite, test_train_ratio)
    low, high = mean_difference_ci(finite, test_train_ratio)
    mean_difference = float(np.mean(finite)) if finite.size else math.nan
    return PairedTest(n_folds=int(finite.size), mean_difference=mean_difference,
                      ci_low=low, ci_high=high, wilcoxon_p=wilcoxon, t_p=t,
                      reason=wilcoxon_reason or t_reason)


def holm(p_values: Values) -> np.ndarray:
    """Holm step-down adjusted p-values over every comparison. A NaN (a comparison that
    could not be tested) counts in m with p = 1: dropping it would make the others' bar lower.

    >>> holm([0.01, 0.04, 0.03, 0.005]).round(4).tolist()
    [0.03, 0.06, 0.06, 0.02]
    >>> holm([0.02, float("nan")]).tolist()
    [0.04, 1.0]
    """
    values = np.nan_to_num(np.asarray(p_values, dtype=float), nan=1.0)
    adjusted = np.empty(values.shape)
    m = values.size
    running_max = 0.0
    for rank, index in enumerate(np.argsort(values, kind="stable")):
        running_max = max(running_max, min(1.0, (m - rank) * values[index]))
        adjusted[index] = running_max
    return adjusted


def _standard_error(finite: np.ndarray, test_train_ratio: float) -> float:
    return math.sqrt((1.0 / finite.size + test_train_ratio) * float(np.var(finite, ddof=1)))


def _by_fold(folds: Sequence[int] | np.ndarray, values: Values) -> list[np.ndarray]:
    """The finite values of each fold, in fold order."""
    fold_array = np.asarray(folds)
    value_array = np.asarray(values, dtype=float)
    if fold_array.shape != value_array.shape:
        raise ValueError(f"folds and values differ in length: {fold_array.shape} vs "
                         f"{value_array.shape}")
    groups = [value_array[(fold_array == fold) & np.isfinite(value_array)]
              for fold in np.unique(fold_array)]
    return [group for group in groups if group.size]


def _finite(values: Values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]
