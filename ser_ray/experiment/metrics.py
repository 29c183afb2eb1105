"""The metrics a study records: their names, and the scores of one split at one epoch.

The training stage computes them (`ser_ray.train.metrics`); the ledger stores them and the
report reads them under these names only.
"""

from __future__ import annotations

from typing import Literal, get_args

from ser_ray.schema import StrictModel

MetricName = Literal["unweighted_accuracy", "weighted_accuracy", "ua_wa_mean", "macro_f1"]
METRIC_NAMES: tuple[MetricName, ...] = get_args(MetricName)
Split = Literal["test", "validation"]
# A metric on the validation split is named with this prefix (`validation_unweighted_accuracy`).
VALIDATION_PREFIX = "validation_"
VALIDATION_METRIC_NAMES: tuple[str, ...] = tuple(VALIDATION_PREFIX + name for name in METRIC_NAMES)
ObjectiveMetric = Literal[METRIC_NAMES + VALIDATION_METRIC_NAMES]  # type: ignore[valid-type]


def objective_split(metric: str) -> tuple[Split, MetricName]:
    """The split an objective metric is measured on, and the metric's own name.

    >>> objective_split("validation_unweighted_accuracy"), objective_split("macro_f1")
    (('validation', 'unweighted_accuracy'), ('test', 'macro_f1'))
    """
    if metric.startswith(VALIDATION_PREFIX):
        return "validation", metric.removeprefix(VALIDATION_PREFIX)  # type: ignore[return-value]
    return "test", metric  # type: ignore[return-value]


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
