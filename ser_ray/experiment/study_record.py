"""study.json: what a study is and where its numbers come from, written once per run.

The study stage builds one `StudyRecord` before any trial runs; the report reads nothing else
about the study. Sections that echo the study YAML as written (the corpus selection, the
base model options, the `train` overrides) are kept as the YAML gives them; the scheduler as
the settings its kind uses, defaults included.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from ser_ray.experiment.configuration import Configuration, DataIdentity, FeatureIdentity
from ser_ray.experiment.format import Record
from ser_ray.experiment.metrics import ObjectiveMetric, Split, objective_split
from ser_ray.experiment.training import TrainConfig
from ser_ray.schema import StrictModel

Design = Literal["search", "one-factor", "factorial", "leave-one-out"]


class Objective(StrictModel):
    """What configurations are ranked, pruned and searched by: a metric of the test split
    (`unweighted_accuracy`) or of the validation split (`validation_unweighted_accuracy`),
    each fold at its selected epoch, averaged over folds."""

    metric: ObjectiveMetric = Field("unweighted_accuracy", description="a test metric, or "
                                    "the same on the validation split with 'validation_'")
    mode: Literal["max", "min"] = "max"

    @property
    def maximise(self) -> bool:
        return self.mode == "max"

    @property
    def split(self) -> Split:
        return objective_split(self.metric)[0]


class VariantRecord(StrictModel):
    """A planned configuration of an ablation: its name, factor levels and configuration."""

    name: str
    factors: dict[str, str]
    config_hash: str
    configuration: Configuration


class SearchedParameter(StrictModel):
    """A searched parameter: its Optuna distribution (`optuna.distributions.
    distribution_to_json`; list choices encoded by `encode_choice`) and its condition."""

    distribution: str
    when: dict[str, Any] | None = None


class SearchRecord(StrictModel):
    trials: int
    sampler: str
    scheduler: dict[str, Any]
    space: dict[str, SearchedParameter]
    optuna_storage: str
    optuna_study: str


def scheduler_text(settings: dict[str, Any]) -> str:
    """A scheduler's kind and the settings it runs with, as the dry run and the report say it.

    >>> scheduler_text({"kind": "racing", "alpha": 0.05})
    'racing (alpha 0.05)'
    """
    kind = settings.get("kind")
    # Records written before schedulers saved only their kind's settings hold every field.
    rest = "" if kind == "none" else ", ".join(
        f"{name} {json.dumps(value)}" for name, value in settings.items() if name != "kind")
    return f"{kind}" + (f" ({rest})" if rest else "")


class CorpusRecord(StrictModel):
    reader: str
    root: str
    synthetic: dict[str, Any] | None
    manifest: str
    selection: dict[str, Any]
    utterances: int
    speakers: int
    class_counts: dict[str, int]


class ProtocolRecord(StrictModel):
    """How the folds were made. With `repeats` > 1 (stratified k-fold repeated with other
    seeds), fold index f is fold f % k of repeat f // k."""

    kind: str
    k: int | None
    repeats: int = 1
    seed: int
    speaker_independent: bool
    description: str


class FeatureSetRecord(StrictModel):
    """A feature set the study read: its cache and what its numbers depend on."""

    name: str
    cache_key: str
    path: str
    identity: FeatureIdentity
    rows: int


class SkippedInput(StrictModel):
    """An input the scan or the feature stage could not use, and why."""

    stage: Literal["scan", "features"]
    path: str
    reason_code: str
    reason: str


class Hardware(StrictModel):
    cpus: int | None
    gpus: tuple[str, ...]
    platform: str


class Reproduces(StrictModel):
    paper: str
    rows: dict[str, str]


class StudyRecord(Record):
    """The whole of study.json.

    Attributes:
        baseline: the variant every other is compared with (ablations).
        factors: each factor's levels, in order (ablations).
        variants: every planned configuration of an ablation; empty for a search, whose
            configurations are the ledger's trials.
        planned_units: configurations × folds × seeds.
        model: the study's base model as written (`name`, `options`).
        training: the study's `train` section as written.
        paper_training: the paper training of every model family the study can train, which
            its configurations' settings are compared with.
        selection_rule: the epoch-selection rule every configuration uses.
        data: the content the configuration hashes cover.
        trial_storage: where trial results and checkpoints live (a path or a URI).
    """

    name: str
    description: str
    design: Design
    objective: Objective
    baseline: str | None
    factors: dict[str, list[str]]
    variants: tuple[VariantRecord, ...]
    search: SearchRecord | None
    seeds: tuple[int, ...]
    folds: tuple[int, ...]
    epochs: int
    planned_units: int
    corpus: CorpusRecord
    protocol: ProtocolRecord
    model: dict[str, Any]
    training: dict[str, Any]
    paper_training: dict[str, TrainConfig]
    selection_rule: str
    data: DataIdentity
    features: tuple[FeatureSetRecord, ...]
    skipped: tuple[SkippedInput, ...]
    hardware: Hardware
    git_commit: str | None
    packages: dict[str, str]
    reproduces: Reproduces | None
    started_at: str
    trial_storage: str
