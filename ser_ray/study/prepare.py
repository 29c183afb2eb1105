"""Everything a study's trials read, made once before any trial: the corpus (or the offline
synthetic one), its manifest and class selection, the leak-checked folds and every feature
set in the content cache. Re-preparing an experiment directory (resume) reuses all of it.

The synthetic corpus is generated once per configuration (and synthesizer version) under
`<cache root>/corpora/synthetic-<hash>/`, beside the feature caches. Layout under the
experiment directory:
    data/manifest.parquet          the scan (+ manifest_skipped.csv)
    data/manifest_selected.parquet the study's classes
    data/folds.parquet             the protocol's folds, leakage-checked
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ser_ray.corpus import Selection, scan_corpus, select_manifest, write_scan
from ser_ray.corpus.manifest import read_skipped
from ser_ray.experiment import STUDY_FILE, DataIdentity, FeatureIdentity, read_study_record
from ser_ray.experiment.study_record import (
    CorpusRecord,
    FeatureSetRecord,
    ProtocolRecord,
    SkippedInput,
)
from ser_ray.features import parse_augmentation, parse_recipe
from ser_ray.features.pipeline import build_features
from ser_ray.folds import FoldCheck, FoldProtocol, check_folds, make_folds, write_folds
from ser_ray.study.schema import StudyConfig
from ser_ray.synth import SYNTH_CODE_VERSION, SynthConfig, write_synthetic_iemocap

UTTERANCE_IDENTITY = ("utterance_id", "label", "speaker", "duration_s", "sample_rate",
                      "channels")


@dataclass(frozen=True)
class PreparedStudy:
    """The study's data, made: its files, the content its configurations hash, and what the
    study record says about it."""

    experiment_dir: Path
    manifest: Path
    folds: Path
    fold_indices: tuple[int, ...]
    caches: dict[str, Path]
    data: DataIdentity
    corpus: CorpusRecord
    protocol: ProtocolRecord
    features: tuple[FeatureSetRecord, ...]
    skipped: tuple[SkippedInput, ...]


def default_cache_root() -> Path:
    return Path(os.environ.get("SER_RAY_CACHE", "~/.cache/ser-ray/features")).expanduser()


def study_cache_root(study: StudyConfig, cache_root: Path | None = None) -> Path:
    """The feature cache a study uses: `--cache`, else the study's cache_dir, else the
    default (node-local: on a cluster, pass one on the shared mount)."""
    return (cache_root or study.cache_dir or default_cache_root()).expanduser().resolve()


def prepare_study(study: StudyConfig, experiment_dir: Path, cache_root: Path | None = None,
                  log: Any = print) -> PreparedStudy:
    experiment_dir = experiment_dir.resolve()
    data_dir = experiment_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    cache_root = study_cache_root(study, cache_root)
    corpus_root = _corpus_root(study, cache_root, log)
    selection = Selection(labels=study.selection.labels, merge=dict(study.selection.merge),
                          improvised_only=study.selection.improvised_only)
    protocol = FoldProtocol(kind=study.protocol.kind, k=study.protocol.k,
                            seed=study.protocol.seed, repeats=study.protocol.repeats)
    selected, folds, check = manifest_and_folds(study.corpus.reader, corpus_root, selection,
                                                protocol, data_dir, study.corpus.min_duration_s,
                                                log)
    manifest = data_dir / "manifest_selected.parquet"
    features, feature_skips = _features(study, manifest, cache_root, log,
                                        _caches_used_before(experiment_dir))
    skipped = tuple(SkippedInput(stage="scan", **row) for row in
                    read_skipped(data_dir / "manifest.parquet").to_dict("records"))
    # Contents, not locations: the same corpus cached elsewhere is the same data.
    data = DataIdentity(manifest=_content_hash(selected.loc[:, list(UTTERANCE_IDENTITY)]),
                        folds=_content_hash(folds),
                        features={record.name: record.identity for record in features})
    return PreparedStudy(
        experiment_dir=experiment_dir, manifest=manifest, folds=data_dir / "folds.parquet",
        fold_indices=tuple(sorted(int(fold) for fold in folds["fold"].unique())),
        caches={record.name: Path(record.path) for record in features}, data=data,
        corpus=_corpus_record(study, corpus_root, selected, manifest),
        protocol=_protocol_record(study, check), features=features,
        skipped=skipped + feature_skips)


def manifest_and_folds(reader: str, corpus_root: Path, selection: Selection,
                       protocol: FoldProtocol, data_dir: Path, min_duration_s: float = 0.1,
                       log: Any = print) -> tuple[pd.DataFrame, pd.DataFrame, FoldCheck]:
    """Scan → `manifest.parquet`, select → `manifest_selected.parquet`, leak-checked folds →
    `folds.parquet`, all in `data_dir`; returns the selection, its folds and their check."""
    data_dir.mkdir(parents=True, exist_ok=True)
    scan = scan_corpus(reader, corpus_root, min_duration_s, progress=True)
    write_scan(scan, data_dir / "manifest.parquet")
    log(f"scan: {len(scan.manifest)} utterances, {len(scan.skipped)} skipped")
    selected = select_manifest(data_dir / "manifest.parquet", selection,
                               data_dir / "manifest_selected.parquet")
    folds = make_folds(selected, protocol)
    check = check_folds(selected, folds, protocol)
    write_folds(folds, protocol, check, data_dir / "folds.parquet")
    log(f"folds: {check.describe()}")
    return selected, folds, check


def _content_hash(frame: pd.DataFrame) -> str:
    # Every column: a repeated k-fold table names each utterance once per repeat.
    ordered = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    return hashlib.sha256(ordered.to_csv(index=False).encode()).hexdigest()


def _corpus_root(study: StudyConfig, cache_root: Path, log: Any) -> Path:
    """The corpus on disk, or the synthetic one, generated once per configuration beside the
    feature caches so every study of the same corpus shares its features."""
    if study.corpus.synthetic is None:
        assert study.corpus.root is not None
        return study.corpus.root
    wanted = study.corpus.synthetic.model_dump()
    identity = {**wanted, "synth_code_version": SYNTH_CODE_VERSION}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    root = cache_root / "corpora" / f"synthetic-{digest}"
    if root.is_dir():
        return root
    partial = root.with_name(f"{root.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    summary = write_synthetic_iemocap(partial, SynthConfig(**wanted), progress=True)
    try:
        partial.rename(root)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)  # another process made it first
    log(f"synthetic corpus: {len(summary.records)} utterances in {root}")
    return root


def _caches_used_before(experiment_dir: Path) -> dict[str, Path]:
    """The feature caches an earlier run of this study recorded, by feature set."""
    if not (experiment_dir / STUDY_FILE).is_file():
        return {}
    return {record.name: Path(record.path)
            for record in read_study_record(experiment_dir).features}


def _features(study: StudyConfig, manifest: Path, cache_root: Path, log: Any,
              used_before: dict[str, Path]
              ) -> tuple[tuple[FeatureSetRecord, ...], tuple[SkippedInput, ...]]:
    records: list[FeatureSetRecord] = []
    skipped: list[SkippedInput] = []
    for name, spec in study.features.items():
        recipe = parse_recipe(spec.recipe)
        feature_cache, hit = build_features(
            manifest, recipe, cache_root, [parse_augmentation(text) for text in
                                           spec.augmentations], seed=spec.seed,
            unpublished=used_before.get(name))
        metadata = feature_cache.metadata
        log(f"features {name}: {'cache hit' if hit else 'computed'} {feature_cache.path} "
            f"({metadata['rows']} rows)")
        records.append(FeatureSetRecord(
            name=name, cache_key=metadata["key"], path=str(feature_cache.path),
            identity=FeatureIdentity(recipe=metadata["recipe"],
                                     augmentations=metadata["augmentations"],
                                     seed=metadata["seed"],
                                     feature_code_version=metadata["feature_code_version"]),
            rows=metadata["rows"]))
        skipped += [SkippedInput(stage="features", path=row["path"],
                                 reason_code=row["reason_code"], reason=row["reason"])
                    for row in feature_cache.skipped().to_dict("records")]
    return tuple(records), tuple(skipped)


def _corpus_record(study: StudyConfig, corpus_root: Path, selected: pd.DataFrame,
                   manifest: Path) -> CorpusRecord:
    return CorpusRecord(
        reader=study.corpus.reader, root=str(corpus_root),
        synthetic=study.corpus.synthetic.model_dump() if study.corpus.synthetic else None,
        manifest=str(manifest), selection=study.selection.model_dump(mode="json"),
        utterances=len(selected), speakers=int(selected["speaker"].nunique()),
        class_counts={str(label): int(count) for label, count in
                      selected["label"].value_counts().sort_index().items()})


def _protocol_record(study: StudyConfig, check: FoldCheck) -> ProtocolRecord:
    return ProtocolRecord(kind=study.protocol.kind, k=study.protocol.k,
                          repeats=study.protocol.repeats, seed=study.protocol.seed,
                          speaker_independent=check.speaker_independent,
                          description=check.describe())
