"""SER metrics from a confusion matrix: UA, WA, ACC, macro-F1, per-class recall and precision.

Every metric is computed from the confusion matrix, so per-fold and pooled numbers come from
one code path: pooling over folds sums the folds' matrices and scores the sum.

Conventions (spec models.md §0): WA = correct / all test utterances; UA = mean over classes of
per-class recall; ACC = (UA + WA) / 2. A class with no test utterance has no recall, so UA
averages over the classes present in the truth (scikit-learn's `recall_score(average="macro",
labels=present)`); macro-F1 averages F1 over the same classes, with F1 = 0 for a present class
that is never predicted. Per-class precision TP / (TP + FP) is what the ctmam paper calls
"per-class accuracy" (its Eq. 25, spec §2.6 item 5); a class that is never predicted has
precision 0, scikit-learn's `precision_score(average=None, zero_division=0)`, the same
convention that gives it F1 = 0.

>>> matrix = confusion_matrix([0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 0, 2], num_classes=3)
>>> matrix.tolist()
[[1, 1, 0], [1, 2, 0], [0, 0, 1]]
>>> round(weighted_accuracy(matrix), 4), round(unweighted_accuracy(matrix), 4)
(0.6667, 0.7222)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                     num_classes: int) -> np.ndarray:
    """(K, K) int64 counts; rows are the true class, columns the predicted class."""
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if true.shape != pred.shape or true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of one length, got {true.shape} and "
                         f"{pred.shape}")
    for name, values in (("y_true", true), ("y_pred", pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} holds a class outside 0..{num_classes - 1}")
    return np.bincount(true * num_classes + pred, minlength=num_classes * num_classes) \
        .reshape(num_classes, num_classes)


def per_class_recall(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class; NaN for a class with no true example."""
    support = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / support, np.nan)


def per_class_precision(matrix: np.ndarray) -> np.ndarray:
    """TP / (TP + FP) of each class (the ctmam paper's "per-class accuracy", Eq. 25); 0 for a
    class that is never predicted.

    >>> per_class_precision(np.array([[2, 1, 0], [0, 1, 0], [0, 0, 0]])).tolist()
    [1.0, 0.5, 0.0]
    """
    predicted = matrix.sum(axis=0)
    return np.divide(np.diag(matrix), predicted, out=np.zeros(len(predicted)),
                     where=predicted > 0)


def weighted_accuracy(matrix: np.ndarray) -> float:
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else float("nan")


def unweighted_accuracy(matrix: np.ndarray) -> float:
    recall = per_class_recall(matrix)
    present = ~np.isnan(recall)
    return float(recall[present].mean()) if present.any() else float("nan")


def macro_f1(matrix: np.ndarray) -> float:
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    correct = np.diag(matrix)
    present = support > 0
    if not present.any():
        return float("nan")
    denominator = support + predicted
    f1 = np.divide(2 * correct, denominator, out=np.zeros(len(correct)), where=denominator > 0)
    return float(f1[present].mean())


def scores(matrix: np.ndarray) -> dict[str, float]:
    """The headline metrics of one confusion matrix.

    >>> scores(np.array([[3, 1], [0, 4]]))["ua_wa_mean"]
    0.875
    """
    ua, wa = unweighted_accuracy(matrix), weighted_accuracy(matrix)
    return {"unweighted_accuracy": ua, "weighted_accuracy": wa, "ua_wa_mean": (ua + wa) / 2,
            "macro_f1": macro_f1(matrix)}


def report(matrix: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
    """Metrics, per-class recall and precision by name, and the matrix itself (JSON-ready)."""
    recall = per_class_recall(matrix)
    return {
        **scores(matrix),
        "per_class_recall": {name: (None if np.isnan(value) else float(value))
                             for name, value in zip(label_names, recall)},
        "per_class_precision": {name: float(value) for name, value
                                in zip(label_names, per_class_precision(matrix))},
        "confusion_matrix": np.asarray(matrix).astype(int).tolist(),
        "support": int(matrix.sum()),
    }


def pooled(matrices: Iterable[np.ndarray]) -> np.ndarray:
    """Sum of per-fold confusion matrices: the metrics of all test utterances at once."""
    stacked = [np.asarray(matrix, dtype=np.int64) for matrix in matrices]
    if not stacked:
        raise ValueError("no confusion matrices to pool")
    return np.sum(stacked, axis=0)
