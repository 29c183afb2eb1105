"""The experiment folder's typed contract, below the study and report stages.

A study writes, and a report reads, only these records: `StudyRecord` (study.json) and
`UnitRow` / `ReplayRow` (ledger.jsonl, replays.jsonl), each carrying the record format
version; `Configuration` is one variant or trial resolved once, with its `TrainConfig`.
`ranking` is the one order of configurations the report and the best-model export share.
Imports neither Ray nor torch, nor any pipeline stage.
"""

from ser_ray.experiment.configuration import (
    Configuration,
    DataIdentity,
    FeatureIdentity,
    config_hash,
    decode_choice,
    encode_choice,
)
from ser_ray.experiment.folder import (
    OPTUNA_FILE,
    STUDY_FILE,
    Experiment,
    load_experiment,
    read_study_record,
    write_study_record,
)
from ser_ray.experiment.format import SCHEMA_VERSION
from ser_ray.experiment.ledger import (
    LEDGER_FILE,
    REPLAYS_FILE,
    CheckpointRow,
    EpochRecord,
    ReplayRow,
    UnitRow,
    append_checkpoints,
    append_replays,
    append_units,
    latest_checkpoints,
    ledger_frame,
    read_ledger,
    read_replays,
    recorded_units,
    trials_run,
    unit_rows,
)
from ser_ray.experiment.metrics import (
    METRIC_NAMES,
    VALIDATION_METRIC_NAMES,
    VALIDATION_PREFIX,
    HeadlineScores,
    MetricName,
    ObjectiveMetric,
    Split,
    SplitScores,
    objective_split,
)
from ser_ray.experiment.ranking import RankedConfiguration, best, ranking, variant_order
from ser_ray.experiment.study_record import StudyRecord, scheduler_text
from ser_ray.experiment.training import (
    PAPER_TRAINING,
    SELECTION_RULES,
    LossOptions,
    TrainConfig,
    paper_training,
)

__all__ = [
    "LEDGER_FILE",
    "METRIC_NAMES",
    "PAPER_TRAINING",
    "REPLAYS_FILE",
    "SCHEMA_VERSION",
    "SELECTION_RULES",
    "OPTUNA_FILE",
    "STUDY_FILE",
    "Configuration",
    "DataIdentity",
    "CheckpointRow",
    "EpochRecord",
    "Experiment",
    "FeatureIdentity",
    "HeadlineScores",
    "LossOptions",
    "MetricName",
    "ObjectiveMetric",
    "Split",
    "VALIDATION_METRIC_NAMES",
    "VALIDATION_PREFIX",
    "objective_split",
    "RankedConfiguration",
    "ReplayRow",
    "SplitScores",
    "StudyRecord",
    "TrainConfig",
    "UnitRow",
    "append_checkpoints",
    "append_replays",
    "append_units",
    "best",
    "config_hash",
    "decode_choice",
    "encode_choice",
    "latest_checkpoints",
    "ledger_frame",
    "load_experiment",
    "paper_training",
    "ranking",
    "read_ledger",
    "read_replays",
    "read_study_record",
    "recorded_units",
    "scheduler_text",
    "trials_run",
    "unit_rows",
    "variant_order",
    "write_study_record",
]
