"""The tabulated search benchmark: every per-fold, per-epoch score of a real grid, recorded once.

`ser-ray bench search --record` trains the grid study `search_spaces/bench/grid64.yaml` whole
(every configuration, every fold, every epoch; an interrupted recording continues from its
ledger) and writes `search_spaces/bench/grid64.parquet`, one row per (configuration, fold,
epoch): the configuration's dotted changes as canonical JSON (`configuration_key`), the fold,
the epoch, the test scores and the epoch's training seconds. The file's metadata names the
study, its objective and its epochs. Search strategies are then replayed on it
(`CurveTable.curve`) instead of training again, as tabulated HPO benchmarks do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ser_ray.errors import UserError
from ser_ray.experiment import UnitRow, read_ledger, unit_rows
from ser_ray.experiment.metrics import METRIC_NAMES, objective_split
from ser_ray.study.schema import StudyConfig, load_study

BENCH_DIR = Path(__file__).resolve().parents[2] / "search_spaces" / "bench"
GRID_STUDY = BENCH_DIR / "grid64.yaml"
GRID_TABLE = BENCH_DIR / "grid64.parquet"
METADATA_KEY = b"ser_ray_search_table"


def configuration_key(changes: dict[str, Any]) -> str:
    """One text per configuration: its changes as canonical JSON.

    >>> configuration_key({"train.lr": 0.001, "model.options.eca_blocks": [5, 6]})
    '{"model.options.eca_blocks": [5, 6], "train.lr": 0.001}'
    """
    return json.dumps(changes, sort_keys=True)


def record_table(experiment_dir: Path, cache_root: Path | None, study_path: Path = GRID_STUDY,
                 table_path: Path = GRID_TABLE) -> Path:
    """Train the grid whole (continuing a recording the ledger holds part of) and write its
    table."""
    from ser_ray.study.run import run_study

    study = load_study(study_path)
    if study.search is None or study.search.sampler != "grid":
        raise UserError(f"{study_path}: a search table records a grid search")
    run_study(study_path, experiment_dir, cache_root, study=study)
    write_table(study, unit_rows(read_ledger(experiment_dir)), table_path)
    return table_path


def write_table(study: StudyConfig, units: list[UnitRow], table_path: Path) -> None:
    """The table of a finished grid's units; refused unless every unit trained every epoch
    (a replay must never meet a curve cut short)."""
    if study.train.get("selection", "last") != "last":
        raise UserError("a search table records each epoch's own score: the grid's "
                        "`train.selection` must be 'last'")
    short = [f"{unit.variant} fold {unit.fold}: {unit.status}, {unit.epochs_run} epochs"
             for unit in units if unit.status != "finished"
             or unit.epochs_run != study.budget.epochs]
    if short:
        raise UserError(f"{len(short)} unit(s) of the grid did not train every epoch; rerun "
                        f"`ser-ray bench search --record` to finish them: {short[:5]}")
    rows = [{"configuration": configuration_key(unit.changes), "fold": unit.fold,
             "epoch": record.epoch, "seconds": record.seconds,
             **{name: record.test.score(name) for name in METRIC_NAMES}}
            for unit in units for record in unit.history]
    table = pa.Table.from_pandas(pd.DataFrame(rows).sort_values(
        ["configuration", "fold", "epoch"], kind="stable"), preserve_index=False)
    metadata = {"study": study.name, "metric": study.objective.metric,
                "mode": study.objective.mode, "epochs": study.budget.epochs}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           METADATA_KEY: json.dumps(metadata).encode()})
    table_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, table_path)


@dataclass(frozen=True)
class CurveTable:
    """A recorded grid: each configuration's objective per fold and epoch."""

    study: str
    metric: str
    mode: str
    epochs: int
    folds: tuple[str, ...]
    # configuration key → per epoch {fold: objective}
    curves: dict[str, tuple[dict[str, float], ...]]
    seconds_per_fold_epoch: float

    @classmethod
    def read(cls, path: Path = GRID_TABLE) -> CurveTable:
        if not path.is_file():
            raise UserError(f"no search table at {path}; record one with "
                            f"`ser-ray bench search --record`")
        table = pq.read_table(path)
        metadata = json.loads(table.schema.metadata[METADATA_KEY])
        split, name = objective_split(metadata["metric"])
        if split != "test":
            raise UserError(f"the table records test scores, not {metadata['metric']}")
        frame = table.to_pandas()
        curves = {}
        for key, rows in frame.groupby("configuration", sort=True):
            by_epoch = rows.pivot(index="epoch", columns="fold", values=name).sort_index()
            curves[str(key)] = tuple({str(fold): float(value) for fold, value in row.items()}
                                     for _, row in by_epoch.iterrows())
        folds = tuple(str(fold) for fold in sorted(frame["fold"].unique()))
        return cls(study=metadata["study"], metric=metadata["metric"], mode=metadata["mode"],
                   epochs=int(metadata["epochs"]), folds=folds, curves=curves,
                   seconds_per_fold_epoch=float(frame["seconds"].mean()))

    def curve(self, changes: dict[str, Any]) -> tuple[dict[str, float], ...]:
        key = configuration_key(changes)
        if key not in self.curves:
            raise UserError(f"configuration {key} is not in the table (the search space "
                            f"differs from the recorded grid's)")
        return self.curves[key]

    def final(self, key: str) -> float:
        """A configuration's fold-mean objective at the last epoch."""
        last = self.curves[key][-1]
        return sum(last.values()) / len(last)

    @property
    def best(self) -> float:
        sign = 1.0 if self.mode == "max" else -1.0
        return max(sign * self.final(key) for key in self.curves) * sign

    @property
    def fold_epochs(self) -> int:
        """What the whole grid trains."""
        return len(self.curves) * len(self.folds) * self.epochs
