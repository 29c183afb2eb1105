"""SER metrics against hand-computed confusion matrices and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

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


def test_per_class_precision_is_the_ctmam_papers_per_class_accuracy() -> None:
    # true:  a a a b b c c    pred: a b a b a b b — c is never predicted
    matrix = metrics.confusion_matrix([0, 0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1, 1], 3)
    assert matrix.tolist() == [[2, 1, 0], [1, 1, 0], [0, 2, 0]]
    # TP / (TP + FP) down each column: a 2/3, b 1/4, c 0 (no prediction, zero_division=0)
    assert metrics.per_class_precision(matrix).tolist() == pytest.approx([2 / 3, 1 / 4, 0.0])
    report = metrics.report(matrix, ["a", "b", "c"])
    assert report["per_class_precision"] == pytest.approx({"a": 2 / 3, "b": 1 / 4, "c": 0.0})


def test_pooled_precision_comes_from_the_summed_matrix() -> None:
    first = metrics.confusion_matrix([0, 1], [0, 0], 2)  # a: 1 of 2 predictions right
    second = metrics.confusion_matrix([0, 1, 1], [0, 0, 0], 2)  # a: 1 of 3 right
    pooled = metrics.report(metrics.pooled([first, second]), ["a", "b"])
    # 2 of 5, not the mean of 1/2 and 1/3
    assert pooled["per_class_precision"] == pytest.approx({"a": 2 / 5, "b": 0.0})


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
    matrix = metrics.confusion_matrix(y_true, y_pred, 4)
    scores = metrics.scores(matrix)
    present = sorted(set(y_true.tolist()))
    assert scores["weighted_accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert scores["unweighted_accuracy"] == pytest.approx(
        recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0))
    assert scores["macro_f1"] == pytest.approx(
        f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))
    assert metrics.per_class_precision(matrix).tolist() == pytest.approx(precision_score(
        y_true, y_pred, labels=[0, 1, 2, 3], average=None, zero_division=0).tolist())
