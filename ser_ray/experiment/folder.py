"""An experiment folder read once: its study record and the authoritative row of each unit.

The study stage writes study.json through `write_study_record` and the ledger through
`ser_ray.experiment.ledger`; the report and the best-model export read both through
`load_experiment`. A folder written in another record format is refused (`check_format`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ser_ray.errors import UserError
from ser_ray.experiment.format import check_format
from ser_ray.experiment.ledger import ReplayRow, UnitRow, read_ledger, read_replays, unit_rows
from ser_ray.experiment.metrics import MetricName, ObjectiveMetric, objective_split
from ser_ray.experiment.study_record import StudyRecord
from ser_ray.experiment.training import OPTIMISTIC_RULE
from ser_ray.schema import validate

STUDY_FILE = "study.json"
# The study's Optuna storage: every study's trials, for optuna-dashboard (`ser-ray monitor`).
OPTUNA_FILE = "optuna.db"


@dataclass(frozen=True)
class Experiment:
    """One experiment directory: the study record and each unit's authoritative row.

    `retried_failures` counts failed rows a later row of the same unit superseded;
    `replays` are the search trials that proposed a recorded configuration again.
    """

    directory: Path
    study: StudyRecord
    rows: tuple[UnitRow, ...]
    retried_failures: int
    replays: tuple[ReplayRow, ...] = ()

    @property
    def objective(self) -> ObjectiveMetric:
        return self.study.objective.metric

    @property
    def test_metric(self) -> MetricName:
        """The objective's metric on the test folds: what a chosen configuration scores."""
        return objective_split(self.objective)[1]

    @property
    def selects_on_test(self) -> bool:
        """Whether configurations are chosen by a test-set metric: a search (or the best
        variant of an ablation) ranked this way is OPTIMISTIC."""
        return self.study.objective.split == "test"

    @property
    def selects_epochs_on_test(self) -> bool:
        """Whether any configuration picks its folds' epochs on their test splits (OPTIMISTIC
        as well): the study's rule, or one a search sampled (`train.selection`)."""
        return self.study.selection_rule == OPTIMISTIC_RULE or any(
            row.configuration is not None
            and row.configuration.train.selection == OPTIMISTIC_RULE for row in self.rows)

    @property
    def maximise(self) -> bool:
        return self.study.objective.maximise

    @property
    def design(self) -> str:
        return self.study.design

    @property
    def baseline(self) -> str | None:
        return self.study.baseline

    def rows_of(self, variant: str, status: str | None = None) -> list[UnitRow]:
        """A variant's units, of one status when given."""
        return [row for row in self.rows
                if row.variant == variant and (status is None or row.status == status)]


def write_study_record(experiment_dir: Path, record: StudyRecord) -> None:
    """Write study.json; a study that started earlier keeps its first start time."""
    path = Path(experiment_dir) / STUDY_FILE
    if path.is_file():
        record = record.model_copy(update={"started_at": read_study_record(
            Path(experiment_dir)).started_at})
    path.write_text(record.model_dump_json(indent=2), encoding="utf-8")


def read_study_record(experiment_dir: Path) -> StudyRecord:
    path = Path(experiment_dir) / STUDY_FILE
    if not path.is_file():
        raise UserError(f"{path} does not exist: not an experiment directory")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON ({error})") from error
    check_format(raw, path)
    return validate(StudyRecord, raw, f"{path} is not a valid study record")


def load_experiment(experiment_dir: Path) -> Experiment:
    """Read study.json and the ledger: each unit's authoritative row (`ledger.unit_rows`)."""
    directory = Path(experiment_dir)
    study = read_study_record(directory)
    raw_rows = read_ledger(directory)
    rows = unit_rows(raw_rows)
    reported = {id(row) for row in rows}
    retried = sum(1 for row in raw_rows if row.status == "failed" and id(row) not in reported)
    return Experiment(directory=directory, study=study, rows=tuple(rows),
                      retried_failures=retried, replays=tuple(read_replays(directory)))
