"""The study ledger: one JSON line per finished unit (configuration, fold, seed), append-only.

A unit is written once its fold's training ends — finished, pruned by the scheduler, or
failed with its error — and the file is flushed and fsynced line by line, so a driver killed
with SIGKILL loses at most the line it was writing, which `read_ledger` ignores. Resuming or
extending a study skips every unit the ledger holds; the report is rebuilt from it alone.

Row fields (all JSON):
    study, variant, config_hash, config, factors, seed, fold, status ("finished" | "pruned"
    | "failed"), error, epochs_run, epochs_planned, selection, selected_epoch, metrics
    (test metrics at the selected epoch), per_class_recall, confusion_matrix, label_names,
    history (per epoch: epoch, train_loss, test, validation), parameters, wall_time_s,
    trial_id, reused_from (the trial whose recorded epochs a search trial of the same
    configuration reported instead of training again, else null), finished_at.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

LEDGER_FILE = "ledger.jsonl"
STATUSES = ("finished", "pruned", "failed")
UNIT_KEY = ("config_hash", "fold", "seed")


def append_units(experiment_dir: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows durably: each line is written whole, flushed and fsynced."""
    path = Path(experiment_dir) / LEDGER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as ledger:
        for row in rows:
            if row.get("status") not in STATUSES:
                raise ValueError(f"ledger status must be one of {STATUSES}, got "
                                 f"{row.get('status')!r}")
            ledger.write(json.dumps(row, sort_keys=True, default=_plain) + "\n")
            ledger.flush()
            os.fsync(ledger.fileno())


def read_ledger(experiment_dir: Path) -> list[dict[str, Any]]:
    """Every complete row; a torn last line (a killed writer) is ignored."""
    path = Path(experiment_dir) / LEDGER_FILE
    if not path.is_file():
        return []
    rows = []
    with path.open(encoding="utf-8") as ledger:
        for line in ledger:
            if not line.endswith("\n"):
                break
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


def unit_key(row: dict[str, Any]) -> tuple[str, int, int]:
    return str(row["config_hash"]), int(row["fold"]), int(row["seed"])


def recorded_units(rows: Iterable[dict[str, Any]],
                   statuses: Iterable[str] = ("finished", "pruned")) -> set[tuple[str, int, int]]:
    """Units that need no rerun: finished or pruned (a failed unit may be retried)."""
    wanted = set(statuses)
    return {unit_key(row) for row in rows if row["status"] in wanted}


def ledger_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per unit with the headline metrics as columns (the latest row of a unit wins:
    a failed unit retried later is reported by its retry)."""
    records = []
    for row in rows:
        metrics = row.get("metrics") or {}
        records.append({
            "variant": row["variant"], "config_hash": row["config_hash"], "seed": row["seed"],
            "fold": row["fold"], "status": row["status"], "error": row.get("error"),
            "epochs_run": row.get("epochs_run"), "selected_epoch": row.get("selected_epoch"),
            "parameters": row.get("parameters"), "wall_time_s": row.get("wall_time_s"),
            "trial_id": row.get("trial_id"), "reused_from": row.get("reused_from"),
            **{name: metrics.get(name) for name in
               ("unweighted_accuracy", "weighted_accuracy", "ua_wa_mean", "macro_f1")},
        })
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return frame
    return frame.drop_duplicates(list(UNIT_KEY), keep="last").reset_index(drop=True)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
