"""The driver's ledger writer on its own (no Ray): trial events as Tune hands them over
become ledger rows, replays and trial names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ser_ray.experiment import read_ledger, read_replays
from ser_ray.study.ledger_writer import LedgerWriter
from ser_ray.study.units import REPLAY_KEY, TrialPlan, error_file
from tests.experiment.builders import configuration, scores

EPOCHS = 3


def plan(variant: str | None = None, selection: str = "last", folds=(0, 1)) -> TrialPlan:
    return TrialPlan(variant=variant, configuration=configuration(selection=selection),
                     config_hash=f"hash-{variant}", seed=0, folds=folds)


def epoch(fold: int, number: int, ua: float) -> dict[str, Any]:
    """One fold's record of one epoch, as the training loop reports it."""
    return {"fold": fold, "epoch": number, "train_loss": 1.0 / number, "lr": 1e-3,
            "seconds": 0.5, "train_rows": 10, "finished_at": 0.0,
            "test": scores(ua).model_dump(mode="json"), "validation": None}


def report(writer: LedgerWriter, trial_id: str, uas: list[float], folds=(0, 1),
           **extra: Any) -> None:
    for number, ua in enumerate(uas, start=1):
        writer.reported(trial_id, {"fold_records": [epoch(fold, number, ua) for fold in folds],
                                   "parameters": 1234, **extra})


@pytest.fixture
def writer(tmp_path: Path) -> LedgerWriter:
    return LedgerWriter(tmp_path, "study", "unweighted_accuracy", EPOCHS, planned=8,
                        storage=str(tmp_path))


def test_finished_and_pruned_trials_record_their_units_once(writer: LedgerWriter,
                                                            tmp_path: Path) -> None:
    best_test = plan("a", selection="best-test")
    writer.started("t1", best_test)
    report(writer, "t1", [0.5, 0.7, 0.6])
    writer.ended("t1", best_test, error=None, checkpoint=str(tmp_path / "tune" / "ckpt"))
    writer.ended("t1", best_test, error="called again", checkpoint=None)  # ignored
    pruned = plan("b")
    writer.started("t2", pruned)
    report(writer, "t2", [0.4])
    writer.ended("t2", pruned, error=None, checkpoint=None)
    rows = read_ledger(tmp_path)
    assert [(row.variant, row.fold, row.status) for row in rows] == [
        ("a", 0, "finished"), ("a", 1, "finished"), ("b", 0, "pruned"), ("b", 1, "pruned")]
    assert rows[0].selected_epoch == 2  # the configuration's rule: best test epoch
    assert rows[0].metrics.unweighted_accuracy == pytest.approx(0.7)
    assert rows[0].checkpoint == "tune/ckpt" and rows[2].checkpoint is None
    assert rows[0].configuration == best_test.configuration and rows[0].parameters == 1234
    assert rows[2].selected_epoch == 1 and rows[2].epochs_run == 1
    assert writer.recorded == 4 and writer.written == 4


def test_a_failed_trial_records_its_traceback_and_a_silent_end_says_why(
        writer: LedgerWriter, tmp_path: Path) -> None:
    failing = plan("c")
    error_file(tmp_path, "t3").parent.mkdir(parents=True)
    error_file(tmp_path, "t3").write_text("Traceback ...\nValueError: bad")
    writer.started("t3", failing)
    report(writer, "t3", [0.3])
    writer.ended("t3", failing, error=writer.trial_error("t3"), checkpoint=None)
    silent = plan("d")
    writer.ended("t4", silent, error=None, checkpoint=None)
    rows = read_ledger(tmp_path)
    assert {row.variant: row.status for row in rows} == {"c": "failed", "d": "failed"}
    assert rows[0].error.endswith("ValueError: bad") and rows[0].epochs_run == 1
    assert "ended before it finished an epoch" in rows[-1].error
    assert "no traceback reached the driver" in writer.trial_error("t9")


def test_search_trials_are_named_in_turn_and_a_replay_adds_no_row(writer: LedgerWriter,
                                                                  tmp_path: Path) -> None:
    first, second = plan(), plan()
    writer.started("x", first)
    writer.started("y", second)
    writer.started("x", first)  # a retried trial keeps its name
    assert (writer.names["x"], writer.names["y"]) == ("trial_0001", "trial_0002")
    report(writer, "y", [0.5, 0.6, 0.7], **{REPLAY_KEY: "trial_0001"})
    writer.ended("y", second, error=None, checkpoint=None)
    assert read_ledger(tmp_path) == []
    (replay,) = read_replays(tmp_path)
    assert (replay.variant, replay.replay_of, replay.error) == ("trial_0002", "trial_0001", None)
