"""The metrics a study records: their names, and the scores of one split at one epoch.

The training stage computes them (`ser_ray.train.metrics`); the ledger stores them and the
report reads them under these names only.
"""

from __future__ import annotations

from typing import Literal, get_args

from ser_ray.schema import StrictModel

MetricName = Literal["unweighted_accuracy", "weighted_accuracy", "ua_wa_mean", "macro_f1"]
METRIC_NAMES: tuple[MetricName, ...] = get_args(MetricName)


class HeadlineScores(StrictModel):
    """UA, WA, ACC = (UA + WA) / 2 and macro-F1, as fractions."""

    unweighted_accuracy: float
    weighted_accuracy: float
    ua_wa_mean: float
    macro_f1: float

    def score(self, metric: MetricName) -> float:
        return float(getattr(self, metric))


class SplitScores(HeadlineScores):
    """Everything measured on one split (test or validation) at one epoch.

    `per_class_recall` is None for a class without a true example in the split;
    `confusion_matrix` rows are the true class, columns the predicted one, in label order.
    """

    per_class_recall: dict[str, float | None]
    per_class_precision: dict[str, float]
    confusion_matrix: list[list[int]]
    support: int
    loss: float | None = None

    def headline(self) -> HeadlineScores:
        return HeadlineScores(**{name: getattr(self, name) for name in METRIC_NAMES})
