"""Everything a study's trials read, made once before any trial: the corpus (or the offline
synthetic one), its manifest and class selection, the leak-checked folds and every feature
set in the content cache. Re-preparing an experiment directory (resume) reuses all of it.

The synthetic corpus is generated once per configuration (and synthesizer version) under
`<cache root>/corpora/synthetic-<hash>/`, beside the feature caches. Layout under the
experiment directory:
    data/manifest.parquet          the scan (+ manifest_skipped.csv)
    data/manifest_selected.parquet the study's classes
    data/folds.parquet             the protocol's folds, leakage-checked
    study.json                     what the study is and where its numbers come from
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import pandas as pd

from ser_ray.corpus import Selection, scan_corpus, select_manifest, write_scan
from ser_ray.corpus.manifest import read_skipped
from ser_ray.features import parse_augmentation, parse_recipe
from ser_ray.features.pipeline import build_features
from ser_ray.folds import FoldCheck, FoldProtocol, check_folds, make_folds, write_folds
from ser_ray.study.design import Variant
from ser_ray.study.schema import StudyConfig
from ser_ray.synth import SYNTH_CODE_VERSION, SynthConfig, write_synthetic_iemocap

STUDY_FILE = "study.json"
STUDY_YAML = "study.yaml"
UTTERANCE_IDENTITY = ("utterance_id", "label", "speaker", "duration_s", "sample_rate",
                      "channels")
FEATURE_IDENTITY = ("recipe", "augmentations", "seed", "feature_code_version")
PACKAGES = ("ser-ray", "ray", "torch", "optuna", "numpy", "pandas", "pyarrow", "librosa",
            "soundfile", "soxr", "scikit-learn", "scipy")


@dataclass(frozen=True)
class PreparedStudy:
    experiment_dir: Path
    manifest: Path
    folds: Path
    fold_indices: tuple[int, ...]
    caches: dict[str, Path]
    data_identity: dict[str, Any]
    description: dict[str, Any]


def default_cache_root() -> Path:
    return Path(os.environ.get("SER_RAY_CACHE", "~/.cache/ser-ray/features")).expanduser()


def prepare_study(study: StudyConfig, experiment_dir: Path, variants: list[Variant],
                  cache_root: Path | None = None, log: Any = print) -> PreparedStudy:
    experiment_dir = experiment_dir.resolve()
    data_dir = experiment_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    cache_root = (cache_root or study.cache_dir or default_cache_root()).expanduser().resolve()
    corpus_root = _corpus_root(study, cache_root, log)
    selection = Selection(labels=study.selection.labels, merge=dict(study.selection.merge),
                          improvised_only=study.selection.improvised_only)
    protocol = FoldProtocol(kind=study.protocol.kind, k=study.protocol.k,
                            seed=study.protocol.seed)
    selected, folds, check = manifest_and_folds(study.corpus.reader, corpus_root, selection,
                                                protocol, data_dir, study.corpus.min_duration_s,
                                                log)
    caches, feature_records, feature_skips = _features(
        study, data_dir / "manifest_selected.parquet", cache_root, log)
    fold_indices = tuple(sorted(int(fold) for fold in folds["fold"].unique()))
    # Contents, not locations: the same corpus cached elsewhere is the same data.
    data_identity = {
        "manifest": _content_hash(selected.loc[:, list(UTTERANCE_IDENTITY)]),
        "folds": _content_hash(folds),
        "features": {record["name"]: {key: record[key] for key in FEATURE_IDENTITY}
                     for record in feature_records},
    }
    skipped = [{"stage": "scan", **row} for row in
               read_skipped(data_dir / "manifest.parquet").to_dict("records")] + feature_skips
    description = _description(study, corpus_root, selected, check, feature_records, skipped,
                               fold_indices, variants, data_dir)
    return PreparedStudy(experiment_dir, data_dir / "manifest_selected.parquet",
                         data_dir / "folds.parquet", fold_indices, caches, data_identity,
                         description)


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
    ordered = frame.sort_values("utterance_id").reset_index(drop=True)
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


def _features(study: StudyConfig, manifest: Path, cache_root: Path, log: Any
              ) -> tuple[dict[str, Path], list[dict[str, Any]], list[dict[str, Any]]]:
    caches: dict[str, Path] = {}
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for name, spec in study.features.items():
        recipe = parse_recipe(spec.recipe)
        feature_cache, hit = build_features(
            manifest, recipe, cache_root, [parse_augmentation(text) for text in
                                           spec.augmentations], seed=spec.seed)
        metadata = feature_cache.metadata
        log(f"features {name}: {'cache hit' if hit else 'computed'} {feature_cache.path} "
            f"({metadata['rows']} rows)")
        caches[name] = feature_cache.path
        records.append({"name": name, "cache_key": feature_cache.path.name,
                        "path": str(feature_cache.path), "recipe": metadata["recipe"],
                        "augmentations": metadata["augmentations"], "seed": metadata["seed"],
                        "feature_code_version": metadata["feature_code_version"],
                        "rows": metadata["rows"]})
        skipped += [{"stage": "features", "path": row["path"], "reason_code": row["reason_code"],
                     "reason": row["reason"]}
                    for row in feature_cache.skipped().to_dict("records")]
    return caches, records, skipped


def _description(study: StudyConfig, corpus_root: Path, selected: pd.DataFrame,
                 check: FoldCheck,
                 feature_records: list[dict[str, Any]], skipped: list[dict[str, Any]],
                 fold_indices: tuple[int, ...], variants: list[Variant],
                 data_dir: Path) -> dict[str, Any]:
    ablation = study.ablation
    configurations = len(variants) if ablation is not None else (
        study.budget.trials or study.search.grid_size())  # type: ignore[union-attr]
    return {
        "name": study.name, "description": study.description, "design": study.design,
        "objective": study.objective.model_dump(),
        # A factorial's baseline is its cell with every factor at the baseline level.
        "baseline": variants[0].name if ablation is not None else None,
        "factors": {name: list(factor.levels) for name, factor in ablation.factors.items()}
        if ablation is not None else {},
        "seeds": list(range(study.seeds)), "folds": list(fold_indices),
        "epochs": study.budget.epochs,
        "planned_units": configurations * len(fold_indices) * study.seeds,
        "search": None,
        "corpus": {"name": study.corpus.reader, "root": str(corpus_root),
                   "synthetic": study.corpus.synthetic.model_dump()
                   if study.corpus.synthetic else None,
                   "manifest": str(data_dir / "manifest_selected.parquet"),
                   "selection": study.selection.model_dump(mode="json"),
                   "utterances": len(selected), "speakers": int(selected["speaker"].nunique()),
                   "class_counts": {str(k): int(v) for k, v in
                                    selected["label"].value_counts().sort_index().items()}},
        "protocol": {**study.protocol.model_dump(),
                     "speaker_independent": check.speaker_independent,
                     "description": check.describe()},
        "model": study.model.model_dump(mode="json"), "training": study.train,
        "features": feature_records, "skipped": skipped,
        "hardware": _hardware(), "git_commit": _git_commit(), "packages": _packages(),
        "reproduces": study.reproduces.model_dump() if study.reproduces else None,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _hardware() -> dict[str, Any]:
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"cpus": os.cpu_count(), "gpus": gpus,
            "platform": f"{platform.system()} {platform.machine()}, Python "
                        f"{platform.python_version()}"}


def _git_commit() -> str | None:
    """HEAD of the checkout ser_ray runs from, marked when tracked files differ from it (the
    numbers then come from code no commit holds)."""
    head = _git("rev-parse", "HEAD")
    if head is None or head.returncode != 0 or not head.stdout.strip():
        return None
    changed = _git("diff", "--quiet", "HEAD")
    dirty = changed is not None and changed.returncode == 1
    return head.stdout.strip() + (" + uncommitted changes" if dirty else "")


def _git(*arguments: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(["git", *arguments], cwd=Path(__file__).parent,
                              capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None


def _packages() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            continue
    return versions
