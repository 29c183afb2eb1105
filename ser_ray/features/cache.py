"""Content-addressed feature cache: one directory per (recipe, augmentations, manifest, code).

Layout of `<cache_root>/<key>/`:
    data/*.parquet     feature rows (readable with pyarrow or pandas alone)
    arrays/            the same rows as uncompressed memory-mapped slabs, one per (STFT
                       version, augmentation): what training reads (`ser_ray.features.arrays`)
    skipped.csv        utterances whose audio was unusable: utterance_id, path, reason_code, reason
    metadata.json      recipe, parameters, manifest hash, library versions, row count, shape

A directory is written under a temporary name and renamed into place as the last step, so a
killed extraction never leaves a cache that reads as complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ser_ray.errors import UserError

if TYPE_CHECKING:
    from ser_ray.features.augment import AugmentationSpec
    from ser_ray.features.recipes import RecipeBase

# Bump when a change to feature code alters the numbers a recipe produces, even by float
# rounding: a trained model follows its inputs' last bits. 2: banded Mel projection.
FEATURE_CODE_VERSION = 2
METADATA_FILE = "metadata.json"
SKIPPED_FILE = "skipped.csv"
DATA_DIR = "data"
MANIFEST_HASH_COLUMNS = ("utterance_id", "path", "label", "duration_s", "sample_rate", "channels")
LIBRARIES = ("numpy", "torch", "librosa", "soundfile", "soxr", "pyarrow", "ray")


def manifest_hash(manifest: pd.DataFrame) -> str:
    """Hash of what the features depend on: ids, files, labels and the audio headers."""
    canonical = manifest.loc[:, list(MANIFEST_HASH_COLUMNS)].sort_values("utterance_id")
    return hashlib.sha256(canonical.to_csv(index=False).encode()).hexdigest()


def feature_request(recipe: RecipeBase, augmentations: Sequence[AugmentationSpec], seed: int,
                    manifest: pd.DataFrame) -> dict[str, Any]:
    """Everything a feature set depends on besides the code; `cache_key` hashes it."""
    return {
        "recipe": recipe.model_dump(mode="json"),
        "augmentations": [spec.name for spec in augmentations],
        "seed": seed,
        "manifest_sha256": manifest_hash(manifest),
    }


def cache_key(request: dict[str, Any]) -> str:
    payload = json.dumps({**request, "feature_code_version": FEATURE_CODE_VERSION},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@dataclass(frozen=True)
class FeatureCache:
    """A complete cache directory."""

    path: Path

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads((self.path / METADATA_FILE).read_text())

    @property
    def data_dir(self) -> Path:
        return self.path / DATA_DIR

    def skipped(self) -> pd.DataFrame:
        return pd.read_csv(self.path / SKIPPED_FILE, dtype=str, keep_default_na=False)


def find_complete(cache_root: Path, key: str) -> FeatureCache | None:
    candidate = cache_root / key
    return FeatureCache(candidate) if (candidate / METADATA_FILE).is_file() else None


def open_cache(path: Path) -> FeatureCache:
    if not (path / METADATA_FILE).is_file():
        raise UserError(f"{path} is not a complete feature cache (no {METADATA_FILE})")
    return FeatureCache(path)


def staging_dir(cache_root: Path, key: str) -> Path:
    staging = cache_root / f".staging-{key}-{uuid.uuid4().hex[:8]}"
    (staging / DATA_DIR).mkdir(parents=True)
    return staging


def publish(staging: Path, cache_root: Path, key: str, metadata: dict[str, Any]) -> FeatureCache:
    """Write the metadata last and rename the directory into place (atomic on one filesystem)."""
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    final = cache_root / key
    if final.exists() and not (final / METADATA_FILE).is_file():
        shutil.rmtree(final)  # not a cache: a complete one always has its metadata
    try:
        staging.rename(final)
    except OSError:
        # Another process published the same key first; its content is identical by key.
        shutil.rmtree(staging, ignore_errors=True)
    return FeatureCache(final)
