"""The study ledger: one JSON line per finished unit (configuration, fold, seed), append-only.

A unit is written once its fold's training ends — finished, pruned by the scheduler, or
failed with its error — and the file is flushed and fsynced line by line, so a driver killed
with SIGKILL loses at most the line it was writing. That torn last line (no newline) is
skipped when read and cut off before the next append, so its unit runs again; an unreadable
line anywhere else is a damaged ledger and an error. Resuming or extending a study
skips every unit the ledger holds; the report is rebuilt from it alone.

A unit has one authoritative row: its first finished row, else its first pruned row, else its
latest failed row (a failed unit is retried). Rows a unit gets beyond that (two concurrent
trials sampling the same configuration) stay in the file but are not reported.

Row fields (all JSON):
    study, variant, config_hash, config, factors, seed, fold, status ("finished" | "pruned"
    | "failed"), error, epochs_run, epochs_planned, selection, selected_epoch, metrics
    (test metrics at the selected epoch), per_class_recall, confusion_matrix, label_names,
    history (per epoch: epoch, train_loss, test, validation), parameters, wall_time_s,
    trial_id, checkpoint (the trial's last checkpoint, relative to the study's trial storage;
    null when the trial saved none), finished_at.

Search trials that repeat a recorded configuration train nothing and add no ledger row; they
are listed in `replays.jsonl` (variant, trial_id, config_hash, seed, replay_of, error,
finished_at), so the trial budget counts them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ser_ray.errors import UserError

LEDGER_FILE = "ledger.jsonl"
REPLAYS_FILE = "replays.jsonl"
STATUSES = ("finished", "pruned", "failed")
UNIT_KEY = ("config_hash", "fold", "seed")


def append_units(experiment_dir: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append unit rows durably: each line is written whole, flushed and fsynced."""
    rows = list(rows)
    for row in rows:
        if row.get("status") not in STATUSES:
            raise ValueError(f"ledger status must be one of {STATUSES}, got "
                             f"{row.get('status')!r}")
    append_lines(Path(experiment_dir) / LEDGER_FILE, rows)


def read_ledger(experiment_dir: Path) -> list[dict[str, Any]]:
    """Every complete unit row, in the order written."""
    return read_lines(Path(experiment_dir) / LEDGER_FILE)


def append_replays(experiment_dir: Path, rows: Iterable[dict[str, Any]]) -> None:
    append_lines(Path(experiment_dir) / REPLAYS_FILE, rows)


def read_replays(experiment_dir: Path) -> list[dict[str, Any]]:
    return read_lines(Path(experiment_dir) / REPLAYS_FILE)


def trials_run(experiment_dir: Path,
               ledger: Sequence[dict[str, Any]] | None = None) -> set[str]:
    """The names of the trials run so far: those that recorded units and those that replayed
    (what a search's trial budget counts). `ledger`: its rows, when the caller has read them."""
    rows = read_ledger(experiment_dir) if ledger is None else ledger
    return {row["variant"] for row in [*rows, *read_replays(experiment_dir)]}


def append_lines(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append JSON lines, each flushed and fsynced, after cutting off a torn last line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _cut_torn_tail(path)
    with path.open("a", encoding="utf-8") as lines:
        for row in rows:
            lines.write(json.dumps(row, sort_keys=True, default=_plain) + "\n")
            lines.flush()
            os.fsync(lines.fileno())


def _cut_torn_tail(path: Path) -> None:
    """A writer killed mid-line leaves a fragment without its newline; the next line would
    glue onto it and become unreadable."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb+") as lines:
        lines.seek(-1, os.SEEK_END)
        if lines.read(1) == b"\n":
            return
        lines.seek(0)
        lines.truncate(lines.read().rfind(b"\n") + 1)
        lines.flush()
        os.fsync(lines.fileno())


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line. A last line without its newline is a killed writer's torn
    line: skipped here, cut off by the next append."""
    if not path.is_file():
        return []
    complete = path.read_text(encoding="utf-8").split("\n")[:-1]
    rows = []
    for number, line in enumerate(complete, start=1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise UserError(f"{path} line {number} is not valid JSON ({error}); the file is "
                            f"damaged: delete that line (what it recorded then runs again)"
                            ) from error
    return rows


def unit_key(row: dict[str, Any]) -> tuple[str, int, int]:
    return str(row["config_hash"]), int(row["fold"]), int(row["seed"])


def recorded_units(rows: Iterable[dict[str, Any]],
                   statuses: Iterable[str] = ("finished", "pruned")) -> set[tuple[str, int, int]]:
    """Units that need no rerun: finished or pruned (a failed unit may be retried)."""
    wanted = set(statuses)
    return {unit_key(row) for row in rows if row["status"] in wanted}


def unit_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The authoritative row of each unit (see the module docstring), in first-seen order."""
    chosen: dict[tuple[str, int, int], dict[str, Any]] = {}
    for row in rows:
        key = unit_key(row)
        if key not in chosen or _replaces(row, chosen[key]):
            chosen[key] = row
    return list(chosen.values())


def _replaces(row: dict[str, Any], held: dict[str, Any]) -> bool:
    """finished beats pruned beats failed; among failed rows the latest (a retry) wins."""
    if row["status"] == held["status"]:
        return row["status"] == "failed"
    return STATUSES.index(row["status"]) < STATUSES.index(held["status"])


def ledger_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per unit (its authoritative row) with the headline metrics as columns."""
    records = []
    for row in unit_rows(rows):
        metrics = row.get("metrics") or {}
        records.append({
            "variant": row["variant"], "config_hash": row["config_hash"], "seed": row["seed"],
            "fold": row["fold"], "status": row["status"], "error": row.get("error"),
            "epochs_run": row.get("epochs_run"), "selected_epoch": row.get("selected_epoch"),
            "parameters": row.get("parameters"), "wall_time_s": row.get("wall_time_s"),
            "trial_id": row.get("trial_id"), "checkpoint": row.get("checkpoint"),
            **{name: metrics.get(name) for name in
               ("unweighted_accuracy", "weighted_accuracy", "ua_wa_mean", "macro_f1")},
        })
    return pd.DataFrame.from_records(records)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
