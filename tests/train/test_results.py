"""Epoch selection and run summaries over hand-made fold histories."""

from __future__ import annotations

import numpy as np
import pytest

from ser_ray.train.metrics import report
from ser_ray.train.results import run_summary

LABELS = ("a", "b")


def history(fold: int, matrices: list[list[list[int]]]) -> list[dict]:
    return [{"fold": fold, "epoch": epoch, "test": report(np.asarray(matrix), LABELS),
             "validation": None} for epoch, matrix in enumerate(matrices, start=1)]


# (UA + WA) / 2 per epoch — fold 0: 0.75, 1.0, 0.5 (best epoch 2); fold 1: 1.0, 0.5, 0.5 (best 1)
HISTORIES = {
    0: history(0, [[[2, 0], [1, 1]], [[2, 0], [0, 2]], [[1, 1], [1, 1]]]),
    1: history(1, [[[1, 0], [0, 1]], [[1, 0], [1, 0]], [[0, 1], [0, 1]]]),
}


def test_the_last_epoch_summary_also_logs_the_best_test_epoch_as_optimistic() -> None:
    summary = run_summary(HISTORIES, "last", LABELS)
    assert (summary["selection"], summary["optimistic"]) == ("last", False)
    assert [fold["selected_epoch"] for fold in summary["folds"].values()] == [3, 3]
    assert summary["pooled"]["confusion_matrix"] == [[1, 2], [1, 2]]
    assert summary["pooled"]["unweighted_accuracy"] == pytest.approx(0.5)
    best = summary["optimistic_best_epoch"]
    assert (best["selection"], best["optimistic"]) == ("best-test", True)
    assert [fold["selected_epoch"] for fold in best["folds"].values()] == [2, 1]
    assert best["folds"]["0"]["unweighted_accuracy"] == pytest.approx(1.0)
    assert best["fold_mean"]["ua_wa_mean"] == pytest.approx(1.0)
    assert best["fold_sd"]["ua_wa_mean"] == pytest.approx(0.0)
    assert best["pooled"]["confusion_matrix"] == [[3, 0], [0, 3]]
    assert best["pooled"]["per_class_precision"] == {"a": 1.0, "b": 1.0}


def test_the_optimistic_block_is_what_the_best_test_rule_reports() -> None:
    chosen = run_summary(HISTORIES, "best-test", LABELS)
    assert chosen["optimistic"] and "optimistic_best_epoch" not in chosen
    logged = run_summary(HISTORIES, "last", LABELS)["optimistic_best_epoch"]
    assert {key: chosen[key] for key in logged} == logged
