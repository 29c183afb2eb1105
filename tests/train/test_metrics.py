"""SER metrics against hand-computed confusion matrices and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, recall_score

from ser_ray.train import metrics


def test_hand_computed_three_class_example() -> None:
    # true:  a a a b b c      pred: a b a b c c
    matrix = metrics.confusion_matrix([0, 0, 0, 1, 1, 2], [0, 1, 0, 1, 2, 2], num_classes=3)
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    recall = metrics.per_class_recall(matrix)
    assert recall.tolist() == pytest.approx([2 / 3, 1 / 2, 1.0])
    scores = metrics.scores(matrix)
    assert scores["weighted_accuracy"] == pytest.approx(4 / 6)
    assert scores["unweighted_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert scores["ua_wa_mean"] == pytest.approx((4 / 6 + (2 / 3 + 1 / 2 + 1) / 3) / 2)
    # F1 per class: a 2·2/(3+2)=0.8, b 2·1/(2+2)=0.5, c 2·1/(1+2)=2/3
    assert scores["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_a_class_absent_from_the_truth_does_not_count_in_ua() -> None:
    matrix = metrics.confusion_matrix([0, 0, 1], [0, 2, 1], num_classes=3)
    assert np.isnan(metrics.per_class_recall(matrix)[2])
    assert metrics.unweighted_accuracy(matrix) == pytest.approx((0.5 + 1.0) / 2)
    report = metrics.report(matrix, ["a", "b", "c"])
    assert report["per_class_recall"] == {"a": 0.5, "b": 1.0, "c": None}
    assert report["support"] == 3


def test_pooling_sums_fold_matrices() -> None:
    first = metrics.confusion_matrix([0, 1], [0, 0], 2)
    second = metrics.confusion_matrix([1, 1, 0], [1, 1, 1], 2)
    pooled = metrics.pooled([first, second])
    assert pooled.tolist() == [[1, 1], [1, 2]]
    assert metrics.weighted_accuracy(pooled) == pytest.approx(3 / 5)


def test_labels_outside_the_classes_are_refused() -> None:
    with pytest.raises(ValueError, match="outside 0..1"):
        metrics.confusion_matrix([0, 2], [0, 1], num_classes=2)


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60))
def test_metrics_agree_with_scikit_learn(pairs: list[tuple[int, int]]) -> None:
    y_true, y_pred = map(np.asarray, zip(*pairs))
    scores = metrics.scores(metrics.confusion_matrix(y_true, y_pred, 4))
    present = sorted(set(y_true.tolist()))
    assert scores["weighted_accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert scores["unweighted_accuracy"] == pytest.approx(
        recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0))
    assert scores["macro_f1"] == pytest.approx(
        f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))
