"""The ledger file on its own: torn lines from a killed writer, damage, one row per unit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ser_ray.errors import UserError
from ser_ray.experiment import (
    LEDGER_FILE,
    CheckpointRow,
    UnitRow,
    append_checkpoints,
    append_units,
    latest_checkpoints,
    ledger_frame,
    read_ledger,
    unit_rows,
)
from tests.experiment.builders import unit_row


def unit(fold: int, status: str = "finished", trial_id: str = "t1",
         ua: float = 50.0) -> UnitRow:
    row = unit_row("baseline", fold, 0, None if status == "failed" else ua, status=status)
    return row.model_copy(update={"trial_id": trial_id})


def test_a_torn_last_line_is_skipped_and_cut_before_the_next_append(tmp_path: Path) -> None:
    append_units(tmp_path, [unit(0)])
    ledger = tmp_path / LEDGER_FILE
    with ledger.open("a") as file:  # a writer killed mid-line
        file.write(unit(1).model_dump_json()[:25])
    assert [row.fold for row in read_ledger(tmp_path)] == [0]

    append_units(tmp_path, [unit(1), unit(2)])
    assert [row.fold for row in read_ledger(tmp_path)] == [0, 1, 2]
    assert ledger.read_text().count("\n") == 3


def test_a_complete_row_without_its_newline_is_torn_too(tmp_path: Path) -> None:
    (tmp_path / LEDGER_FILE).write_text(unit(0).model_dump_json())
    assert read_ledger(tmp_path) == []
    append_units(tmp_path, [unit(1)])
    assert [row.fold for row in read_ledger(tmp_path)] == [1]


def test_a_damaged_line_before_the_last_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / LEDGER_FILE).write_text(
        f"{unit(0).model_dump_json()}\n{{\"variant\": \n{unit(1).model_dump_json()}\n")
    with pytest.raises(UserError, match="line 2 is not valid JSON"):
        read_ledger(tmp_path)


def test_a_units_first_finished_row_is_authoritative() -> None:
    rows = [unit(0, "failed", trial_id="a"), unit(0, "failed", trial_id="b"),
            unit(1, "pruned", trial_id="a", ua=20.0), unit(1, "finished", trial_id="b"),
            unit(1, "finished", trial_id="c", ua=90.0), unit(2, "finished", trial_id="a")]
    chosen = {row.fold: row.trial_id for row in unit_rows(rows)}
    assert chosen == {0: "b", 1: "b", 2: "a"}
    frame = ledger_frame(rows)
    assert len(frame) == 3 and list(frame["trial_id"]) == ["b", "b", "a"]
    assert math.isnan(frame["unweighted_accuracy"][0])  # a failed unit has no score
    assert list(frame["unweighted_accuracy"][1:]) == [0.5, 0.5]


def test_a_row_round_trips_whole_nan_scores_included(tmp_path: Path) -> None:
    diverged = unit(0)
    history = list(diverged.history)
    history[0] = history[0].model_copy(update={"train_loss": math.nan})
    diverged = diverged.model_copy(update={"history": tuple(history)})
    append_units(tmp_path, [diverged])
    (read,) = read_ledger(tmp_path)
    assert math.isnan(read.history[0].train_loss)
    assert read.model_dump(exclude={"history"}) == diverged.model_dump(exclude={"history"})
    assert read.configuration == diverged.configuration
    assert read.metrics.unweighted_accuracy == pytest.approx(0.5)


def test_a_row_that_breaks_the_record_is_refused_with_its_line(tmp_path: Path) -> None:
    broken = json.loads(unit(0).model_dump_json())
    broken["status"] = "done"
    (tmp_path / LEDGER_FILE).write_text(json.dumps(broken) + "\n")
    with pytest.raises(UserError, match=r"line 1 is not a valid UnitRow.*status"):
        read_ledger(tmp_path)
    with pytest.raises(ValueError, match="selected epoch"):
        UnitRow.model_validate({**unit(0).model_dump(), "selected_epoch": 9})


def test_only_checkpoints_of_trials_that_never_ended_are_continued(tmp_path: Path) -> None:
    recorded, failing = unit(0, trial_id="done"), unit(1, status="failed", trial_id="t3")

    def saved(trial_id: str, config: str, epoch: int) -> CheckpointRow:
        return CheckpointRow(config_hash=config, seed=0, folds=(0, 1), epoch=epoch,
                             checkpoint=f"tune/run-1/{trial_id}/checkpoint_{epoch}",
                             trial_id=trial_id)

    append_units(tmp_path, [recorded, failing])
    append_checkpoints(tmp_path, [
        saved("done", "finished-config", 1),  # its trial ended: its units are recorded
        saved("t1", "interrupted", 1), saved("t1", "interrupted", 2),  # the last one counts
        saved("t2", failing.config_hash, 4)])  # a unit of it failed later: start over
    assert latest_checkpoints(tmp_path) == {
        ("interrupted", 0, (0, 1)): "tune/run-1/t1/checkpoint_2"}
