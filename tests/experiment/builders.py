"""Constructed experiment directories: ledger rows and study records with known numbers,
built through the same typed records (`ser_ray.experiment`) a study writes.

Scores are given in percent (as the report shows them) and stored as fractions (as the
training stage records them). Each class's recall is the unit's UA ± a fixed offset, so UA is
exactly the value asked for; a unit given a validation UA has validation scores built alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ser_ray.experiment import (
    Configuration,
    DataIdentity,
    EpochRecord,
    FeatureIdentity,
    ReplayRow,
    SplitScores,
    StudyRecord,
    UnitRow,
    append_replays,
    append_units,
    paper_training,
    write_study_record,
)
from ser_ray.experiment.study_record import (
    CorpusRecord,
    FeatureSetRecord,
    Hardware,
    ProtocolRecord,
    SearchedParameter,
    SearchRecord,
    SkippedInput,
    VariantRecord,
)
from ser_ray.schema import set_dotted

LABELS = ("angry", "happy", "neutral", "sad")
RECALL_OFFSETS = (0.05, -0.05, 0.02, -0.02)
SUPPORT = 100
TRACEBACK = ("Traceback (most recent call last):\n  File \"loop.py\", line 1, in fit\n"
             "FloatingPointError: loss is NaN at epoch 2")
FEATURES = FeatureIdentity(recipe={"kind": "logmel"}, augmentations=(), seed=0,
                           feature_code_version=2)


def config_hash(variant: str) -> str:
    return f"hash-{variant}"


def configuration(changes: dict[str, Any] | None = None, selection: str = "last",
                  family: str = "eca_cnn") -> Configuration:
    """A configuration over the family's paper training (3 epochs) with the `train.*` changes
    applied."""
    train: dict[str, Any] = {"epochs": 3, "selection": selection}
    for key, value in (changes or {}).items():
        if key.startswith("train."):
            set_dotted(train, key.removeprefix("train."), value)
    return Configuration(changes=changes or {}, model=family, family=family,
                         model_options={"scale": 1}, feature_set="logmel",
                         train=paper_training(family, train))


def unit_row(variant: str, fold: int, seed: int, ua_percent: float | None, *,
             status: str = "finished", config: dict[str, Any] | None = None,
             factors: dict[str, str] | None = None, epochs_run: int = 3, epochs_planned: int = 3,
             parameters: int = 1000, study: str = "study", selection: str = "last",
             validation_percent: float | None = None) -> UnitRow:
    """One ledger row; `ua_percent=None` with status 'failed' gives a failed unit;
    `validation_percent` adds validation scores with that UA at the last epoch."""
    failed = status == "failed"
    return UnitRow(
        study=study, variant=variant, config_hash=config_hash(variant),
        configuration=configuration(config, selection), factors=factors or {}, seed=seed,
        fold=fold, status=status, error=TRACEBACK if failed else None, epochs_run=epochs_run,
        epochs_planned=epochs_planned, selected_epoch=None if failed else epochs_run,
        history=() if failed else history(
            ua_percent / 100, epochs_run,  # type: ignore[operator]
            None if validation_percent is None else validation_percent / 100),
        parameters=parameters, wall_time_s=1.0, trial_id=None,
        finished_at="2025-01-01T00:00:00")


def scores(ua: float) -> SplitScores:
    """Scores whose UA, WA and ACC are `ua`, macro-F1 `ua` − 0.01."""
    recalls = [ua + offset for offset in RECALL_OFFSETS]
    return SplitScores(unweighted_accuracy=ua, weighted_accuracy=ua, ua_wa_mean=ua,
                       macro_f1=ua - 0.01, per_class_recall=dict(zip(LABELS, recalls)),
                       per_class_precision=dict(zip(LABELS, recalls)),
                       confusion_matrix=confusion(recalls), support=SUPPORT * len(LABELS),
                       loss=1.0)


def confusion(recalls: Sequence[float]) -> list[list[int]]:
    """SUPPORT utterances per class; the misses all go to the next class."""
    matrix = [[0] * len(recalls) for _ in recalls]
    for index, recall in enumerate(recalls):
        hits = round(recall * SUPPORT)
        matrix[index][index] = hits
        matrix[index][(index + 1) % len(recalls)] = SUPPORT - hits
    return matrix


def history(ua: float, epochs: int,
            validation_ua: float | None = None) -> tuple[EpochRecord, ...]:
    """Test (and validation) UA rising linearly to exactly `ua` (`validation_ua`) at the
    last epoch."""
    def rising(last: float, epoch: int) -> float:
        return last if epoch == epochs else last * epoch / epochs

    return tuple(EpochRecord(epoch=epoch, train_loss=1.0 / epoch, lr=1e-3, seconds=0.5,
                             test=scores(rising(ua, epoch)),
                             validation=None if validation_ua is None
                             else scores(rising(validation_ua, epoch)))
                 for epoch in range(1, epochs + 1))


def replay_row(variant: str, replay_of: str, error: str | None = None) -> ReplayRow:
    """A search trial that proposed `replay_of`'s configuration again."""
    return ReplayRow(variant=variant, trial_id=f"id-{variant}", config_hash=config_hash(replay_of),
                     seed=0, replay_of=replay_of, error=error,
                     finished_at="2025-01-01T00:00:00")


def study_record(name: str, design: str, variants: Sequence[str], *, folds: Sequence[int],
                 seeds: Sequence[int], baseline: str | None = None,
                 factors: dict[str, list[str]] | None = None,
                 variant_factors: dict[str, dict[str, str]] | None = None,
                 changes: dict[str, dict[str, Any]] | None = None,
                 space: dict[str, SearchedParameter] | None = None, trials: int | None = None,
                 speaker_independent: bool = False, selection_rule: str = "last",
                 selections: dict[str, str] | None = None,
                 reproduces: dict[str, Any] | None = None,
                 skipped: Sequence[SkippedInput] = (),
                 objective: str = "unweighted_accuracy",
                 protocol: ProtocolRecord | None = None) -> StudyRecord:
    """A study record as the study stage writes it; `selections` gives variants another
    epoch-selection rule than `selection_rule`. The protocol is speaker folds when
    `speaker_independent`, else stratified 5-fold, unless `protocol` is given."""
    planned_configs = trials if design == "search" else len(variants)
    search = SearchRecord(trials=trials or 0, sampler="tpe", scheduler={"kind": "asha"},
                          space=space or {}, optuna_storage="sqlite:////tmp/optuna.db",
                          optuna_study=name) if design == "search" else None
    return StudyRecord(
        name=name, description=f"Constructed {design} study for the report tests.",
        design=design, objective={"metric": objective, "mode": "max"},
        baseline=baseline, factors=factors or {},
        variants=() if design == "search" else tuple(
            VariantRecord(name=variant, factors=(variant_factors or {}).get(variant, {}),
                          config_hash=config_hash(variant),
                          configuration=configuration(
                              (changes or {}).get(variant),
                              (selections or {}).get(variant, selection_rule)))
            for variant in variants),
        search=search, seeds=tuple(seeds), folds=tuple(folds), epochs=3,
        planned_units=(planned_configs or 0) * len(folds) * len(seeds),
        corpus=CorpusRecord(reader="iemocap", root="/data/synth", synthetic=None,
                            manifest="/data/manifest.pq", selection={"labels": list(LABELS)},
                            utterances=400, speakers=4,
                            class_counts=dict.fromkeys(LABELS, SUPPORT)),
        protocol=protocol or ProtocolRecord(
            kind="speaker" if speaker_independent else "stratified",
            k=None if speaker_independent else 5, seed=0,
            speaker_independent=speaker_independent, description="constructed folds"),
        model={"name": "eca_cnn", "options": {"scale": 1}},
        training={"lr": 0.001, "batch_size": 32},
        paper_training={"eca_cnn": paper_training("eca_cnn")},
        selection_rule=selection_rule,
        data=DataIdentity(manifest="m0", folds="f0", features={"logmel": FEATURES}),
        features=(FeatureSetRecord(name="logmel", cache_key="0123456789abcdef",
                                   path="/cache/logmel/0123456789abcdef", identity=FEATURES,
                                   rows=3200),),
        skipped=tuple(skipped),
        hardware=Hardware(cpus=2, gpus=(), platform="Linux-x86_64"),
        git_commit="d98d739", packages={"numpy": "2.2.0", "optuna": "5.0.0"},
        reproduces=reproduces, started_at="2025-01-01T00:00:00", trial_storage="/tmp/trials")


def write_experiment(directory: Path, study: StudyRecord, rows: Sequence[UnitRow],
                     replays: Sequence[ReplayRow] = ()) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_study_record(directory, study)
    append_units(directory, rows)
    if replays:
        append_replays(directory, replays)
    return directory
