"""The ledger file on its own: torn lines from a killed writer, damage, one row per unit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ser_ray.errors import UserError
from ser_ray.study.ledger import LEDGER_FILE, append_units, ledger_frame, read_ledger, unit_rows


def unit(fold: int, status: str = "finished", variant: str = "baseline",
         trial_id: str = "t1", ua: float = 0.5) -> dict[str, Any]:
    return {"variant": variant, "config_hash": "c0", "fold": fold, "seed": 0, "status": status,
            "trial_id": trial_id, "metrics": {"unweighted_accuracy": ua}}


def test_a_torn_last_line_is_skipped_and_cut_before_the_next_append(tmp_path: Path) -> None:
    append_units(tmp_path, [unit(0)])
    ledger = tmp_path / LEDGER_FILE
    with ledger.open("a") as file:  # a writer killed mid-line
        file.write(json.dumps(unit(1))[:25])
    assert [row["fold"] for row in read_ledger(tmp_path)] == [0]

    append_units(tmp_path, [unit(1), unit(2)])
    assert [row["fold"] for row in read_ledger(tmp_path)] == [0, 1, 2]
    assert ledger.read_text().count("\n") == 3


def test_a_complete_row_without_its_newline_is_torn_too(tmp_path: Path) -> None:
    (tmp_path / LEDGER_FILE).write_text(json.dumps(unit(0)))
    assert read_ledger(tmp_path) == []
    append_units(tmp_path, [unit(1)])
    assert [row["fold"] for row in read_ledger(tmp_path)] == [1]


def test_a_damaged_line_before_the_last_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / LEDGER_FILE).write_text(
        f"{json.dumps(unit(0))}\n{{\"variant\": \n{json.dumps(unit(1))}\n")
    with pytest.raises(UserError, match="line 2 is not valid JSON"):
        read_ledger(tmp_path)


def test_a_units_first_finished_row_is_authoritative() -> None:
    rows = [unit(0, "failed", trial_id="a"), unit(0, "failed", trial_id="b"),
            unit(1, "pruned", trial_id="a", ua=0.2), unit(1, "finished", trial_id="b"),
            unit(1, "finished", trial_id="c", ua=0.9), unit(2, "finished", trial_id="a")]
    chosen = {row["fold"]: row["trial_id"] for row in unit_rows(rows)}
    assert chosen == {0: "b", 1: "b", 2: "a"}
    frame = ledger_frame(rows)
    assert len(frame) == 3 and list(frame["trial_id"]) == ["b", "b", "a"]
    assert list(frame["unweighted_accuracy"]) == [0.5, 0.5, 0.5]
