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

Search trials that repeat a recorded configuration train nothing and add no ledger row; they
are listed in `replays.jsonl` (`ReplayRow`), so the trial budget counts them.

Trials still training list each checkpoint they save in `checkpoints.jsonl`
(`CheckpointRow`): a driver that dies mid-study leaves units without rows, and `resume`
continues each from the last checkpoint of its trial instead of from epoch 0.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import pandas as pd
import pydantic

from ser_ray.errors import UserError
from ser_ray.experiment.configuration import Configuration
from ser_ray.experiment.format import Record, check_format
from ser_ray.experiment.metrics import (
    METRIC_NAMES,
    HeadlineScores,
    Split,
    SplitScores,
    objective_split,
)
from ser_ray.schema import StrictModel, validate

LEDGER_FILE = "ledger.jsonl"
REPLAYS_FILE = "replays.jsonl"
CHECKPOINTS_FILE = "checkpoints.jsonl"
Status = Literal["finished", "pruned", "failed"]
STATUSES: tuple[Status, ...] = get_args(Status)
UnitKey = tuple[str, int, int]
Row = TypeVar("Row", bound=Record)


class EpochRecord(StrictModel):
    """One fold's epoch: training loss, learning rate, time, and the scores of each split."""

    epoch: int
    train_loss: float
    lr: float
    seconds: float
    test: SplitScores
    validation: SplitScores | None = None


class UnitRow(Record):
    """One unit: a configuration trained on one fold at one seed, and how it ended.

    Attributes:
        variant: the ablation variant, or the search trial (trial_NNNN).
        config_hash: the configuration's hash on the study's data (`config_hash`).
        configuration: the configuration, whole; None only for a failed unit whose sampled
            configuration could not be resolved (its error says why).
        unresolved_changes: the sampled changes of such a configuration (else None).
        factors: the variant's factor levels (ablations).
        status: finished (every planned epoch), pruned (stopped by the scheduler), failed.
        error: the traceback of a failed unit.
        selected_epoch: the epoch the configuration's selection rule picked (1-based).
        history: every epoch trained, in order.
        parameters: trainable parameters of the model.
        checkpoint: the trial's last checkpoint relative to the study's trial storage.
    """

    study: str
    variant: str
    config_hash: str
    configuration: Configuration | None
    unresolved_changes: dict[str, Any] | None = None
    factors: dict[str, str] = pydantic.Field(default_factory=dict)
    seed: int
    fold: int
    status: Status
    error: str | None = None
    epochs_run: int
    epochs_planned: int
    selected_epoch: int | None = None
    history: tuple[EpochRecord, ...] = ()
    parameters: int | None = None
    wall_time_s: float = 0.0
    trial_id: str | None = None
    checkpoint: str | None = None
    finished_at: str

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> UnitRow:
        if self.status == "failed" and self.error is None:
            raise ValueError("a failed unit records its error")
        if self.configuration is None and self.status != "failed":
            raise ValueError(f"a {self.status} unit records its configuration")
        if (self.configuration is None) != (self.unresolved_changes is not None):
            raise ValueError("a unit records its configuration or, when that could not be "
                             "resolved, the changes that were asked for: one of the two")
        trained = {record.epoch for record in self.history}
        if self.status != "failed" and self.selected_epoch not in trained:
            raise ValueError(f"a {self.status} unit's selected epoch ({self.selected_epoch}) "
                             f"must be one of its epochs {sorted(trained)}")
        return self

    @property
    def key(self) -> UnitKey:
        return self.config_hash, self.fold, self.seed

    @property
    def changes(self) -> dict[str, Any]:
        """The dotted overrides that make (or were to make) the unit's configuration."""
        if self.configuration is not None:
            return self.configuration.changes
        return self.unresolved_changes or {}

    @property
    def selected(self) -> SplitScores | None:
        """The test scores at the selected epoch; None when the unit has none (failed)."""
        return self.selected_on("test")

    def selected_on(self, split: Split) -> SplitScores | None:
        """A split's scores at the selected epoch; None when the unit has none."""
        if self.selected_epoch is None:
            return None
        return next((getattr(record, split) for record in self.history
                     if record.epoch == self.selected_epoch), None)

    def objective_score(self, metric: str) -> float | None:
        """An objective metric (`objective_split`) at the selected epoch; None without one."""
        split, name = objective_split(metric)
        scores = self.selected_on(split)
        return scores.score(name) if scores is not None else None

    @property
    def metrics(self) -> HeadlineScores | None:
        selected = self.selected
        return selected.headline() if selected is not None else None

    @property
    def label_names(self) -> list[str]:
        return list(self.history[0].test.per_class_recall) if self.history else []


class ReplayRow(Record):
    """A search trial that proposed a recorded configuration again and trained nothing."""

    variant: str
    trial_id: str
    config_hash: str
    seed: int
    replay_of: str
    error: str | None = None
    finished_at: str


class CheckpointRow(Record):
    """A checkpoint a running trial saved: its plan's configuration, seed and folds, the
    epoch it holds, and its path relative to the trial storage."""

    config_hash: str
    seed: int
    folds: tuple[int, ...]
    epoch: int
    checkpoint: str
    trial_id: str


def append_units(experiment_dir: Path, rows: Iterable[UnitRow]) -> None:
    """Append unit rows durably: each line is written whole, flushed and fsynced."""
    append_lines(Path(experiment_dir) / LEDGER_FILE, rows)


def read_ledger(experiment_dir: Path) -> list[UnitRow]:
    """Every complete unit row, in the order written."""
    return read_lines(Path(experiment_dir) / LEDGER_FILE, UnitRow)


def append_replays(experiment_dir: Path, rows: Iterable[ReplayRow]) -> None:
    append_lines(Path(experiment_dir) / REPLAYS_FILE, rows)


def read_replays(experiment_dir: Path) -> list[ReplayRow]:
    return read_lines(Path(experiment_dir) / REPLAYS_FILE, ReplayRow)


def append_checkpoints(experiment_dir: Path, rows: Iterable[CheckpointRow]) -> None:
    append_lines(Path(experiment_dir) / CHECKPOINTS_FILE, rows)


def latest_checkpoints(experiment_dir: Path) -> dict[tuple[str, int, tuple[int, ...]], str]:
    """The last checkpoint saved for each (configuration, seed, folds), where the trial that
    saved it never ended (one that did has its units in the ledger) and no unit of it ever
    failed: a failed unit is retried from its first epoch, not from a state that failed."""
    ledger = read_ledger(experiment_dir)
    ended = {row.trial_id for row in ledger}
    failed = {(row.config_hash, row.seed) for row in ledger if row.status == "failed"}
    last = {(row.config_hash, row.seed, row.folds): row
            for row in read_lines(Path(experiment_dir) / CHECKPOINTS_FILE, CheckpointRow)}
    return {key: row.checkpoint for key, row in last.items()
            if row.trial_id not in ended and key[:2] not in failed}


def trials_run(experiment_dir: Path, ledger: Sequence[UnitRow] | None = None) -> set[str]:
    """The names of the trials run so far: those that recorded units and those that replayed
    (what a search's trial budget counts). `ledger`: its rows, when the caller has read them."""
    rows = read_ledger(experiment_dir) if ledger is None else ledger
    return {row.variant for row in rows} | {row.variant for row in read_replays(experiment_dir)}


def append_lines(path: Path, rows: Iterable[Record]) -> None:
    """Append JSON lines, each flushed and fsynced, after cutting off a torn last line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _cut_torn_tail(path)
    with path.open("a", encoding="utf-8") as lines:
        for row in rows:
            lines.write(row.model_dump_json() + "\n")
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


def read_lines(path: Path, row_type: type[Row]) -> list[Row]:
    """Every complete line as `row_type`. A last line without its newline is a killed
    writer's torn line: skipped here, cut off by the next append."""
    if not path.is_file():
        return []
    complete = path.read_text(encoding="utf-8").split("\n")[:-1]
    rows = []
    for number, line in enumerate(complete, start=1):
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{path} line {number} is not valid JSON ({error}); the file is "
                            f"damaged: delete that line (what it recorded then runs again)"
                            ) from error
        check_format(raw, path, f" line {number}")
        rows.append(validate(row_type, raw, f"{path} line {number} is not a valid "
                                            f"{row_type.__name__}"))
    return rows


def recorded_units(rows: Iterable[UnitRow],
                   statuses: Iterable[str] = ("finished", "pruned")) -> set[UnitKey]:
    """Units that need no rerun: finished or pruned (a failed unit may be retried)."""
    wanted = set(statuses)
    return {row.key for row in rows if row.status in wanted}


def unit_rows(rows: Iterable[UnitRow]) -> list[UnitRow]:
    """The authoritative row of each unit (see the module docstring), in first-seen order."""
    chosen: dict[UnitKey, UnitRow] = {}
    for row in rows:
        if row.key not in chosen or _replaces(row, chosen[row.key]):
            chosen[row.key] = row
    return list(chosen.values())


def _replaces(row: UnitRow, held: UnitRow) -> bool:
    """finished beats pruned beats failed; among failed rows the latest (a retry) wins."""
    if row.status == held.status:
        return row.status == "failed"
    return STATUSES.index(row.status) < STATUSES.index(held.status)


def ledger_frame(rows: Iterable[UnitRow]) -> pd.DataFrame:
    """One row per unit (its authoritative row) with the headline metrics as columns."""
    records = []
    for row in unit_rows(rows):
        metrics = row.metrics
        records.append({
            "variant": row.variant, "config_hash": row.config_hash, "seed": row.seed,
            "fold": row.fold, "status": row.status, "error": row.error,
            "epochs_run": row.epochs_run, "selected_epoch": row.selected_epoch,
            "parameters": row.parameters, "wall_time_s": row.wall_time_s,
            "trial_id": row.trial_id, "checkpoint": row.checkpoint,
            **{name: metrics.score(name) if metrics is not None else None
               for name in METRIC_NAMES},
        })
    return pd.DataFrame.from_records(records, columns=[
        "variant", "config_hash", "seed", "fold", "status", "error", "epochs_run",
        "selected_epoch", "parameters", "wall_time_s", "trial_id", "checkpoint",
        *METRIC_NAMES])
