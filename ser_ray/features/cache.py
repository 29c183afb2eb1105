"""Content-addressed feature cache: one directory per (recipe, augmentations, manifest, code).

Layout of `<cache_root>/`:
    <key>/                    a published cache, found by every later request of the same key:
        data/*.parquet        feature rows (readable with pyarrow or pandas alone), one part
                              per featurizer block, named by the block's utterances
        arrays/               the same rows as uncompressed memory-mapped slabs, one per (STFT
                              version, augmentation): what training reads
                              (`ser_ray.features.arrays`)
        skipped.csv           utterances left out: utterance_id, path, reason_code, reason
        metadata.json         recipe, parameters, manifest hash, library versions, row count,
                              shape
    .staging-<key>-<id>/      a cache being written (same layout, no metadata.json yet);
                              featurizer tasks on every node write their Parquet parts into
                              its data/ (as hidden `.part-….writing` files until complete), so
                              the cache root must be one file system shared by every node.
                              Nothing else is written there by a task: the skipped
                              utterances come back to the driver through Ray as data.
    .unshared-<key>-<id>/     a complete cache (same layout, with metadata.json) that one run
                              keeps for itself and no request finds by key: some of its
                              utterances were skipped for reasons other than their audio (an
                              unreadable or missing file), so a later run must compute it again
    .removing-<name>/         a stale folder being deleted
    corpora/                  synthetic corpora generated for studies (`ser_ray.study.prepare`)

A directory is written under a temporary name and renamed into place as the last step, so a
killed extraction never leaves a cache that reads as complete. Staging a new request removes
the staging and run-private folders that nothing has touched for a long time
(`remove_stale`): those of runs that crashed or ended long ago.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
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
STAGING_PREFIX = ".staging-"
UNSHARED_PREFIX = ".unshared-"
REMOVING_PREFIX = ".removing-"
# A staging folder untouched this long belongs to a run that died. Not sooner: the cache root
# is shared by every machine of a cluster (and by other clusters or users mounting it), so a
# folder can be another run's, alive elsewhere, in the middle of writing; a live run adds
# parts to it every few minutes at most, which renews its age (see `_touched_since`).
STALE_STAGING_S = 24 * 3600
# A run-private cache is read, not written, by the run that made it, for as long as that run
# lasts (a study can train for days); each trial that opens it renews its age (`open_cache`).
STALE_UNSHARED_S = 7 * 24 * 3600
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
    if path.name.startswith(UNSHARED_PREFIX):
        # A run still uses it: renew its age so that `remove_stale` leaves it alone.
        try:
            os.utime(path)
        except OSError:
            pass  # a read-only mount: it can then not be removed by age either
    return FeatureCache(path)


def staging_dir(cache_root: Path, key: str) -> Path:
    """A fresh staging directory for `key` (with its empty data/), after removing the stale
    folders of other runs from the cache root."""
    remove_stale(cache_root)
    staging = cache_root / f"{STAGING_PREFIX}{key}-{uuid.uuid4().hex[:8]}"
    (staging / DATA_DIR).mkdir(parents=True)
    return staging


def remove_stale(cache_root: Path, now: float | None = None) -> list[Path]:
    """Remove the staging folders untouched for STALE_STAGING_S, the run-private caches
    untouched for STALE_UNSHARED_S and any half-removed folder; returns what was removed.

    A folder is first renamed out of the way (atomic: of two processes cleaning at once, one
    gets it, and no reader mistakes a half-deleted folder for its own), then deleted.
    """
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = sorted(cache_root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(REMOVING_PREFIX):
            shutil.rmtree(entry, ignore_errors=True)  # a removal that was cut short
            removed.append(entry)
            continue
        if entry.name.startswith(STAGING_PREFIX):
            threshold = STALE_STAGING_S
        elif entry.name.startswith(UNSHARED_PREFIX):
            threshold = STALE_UNSHARED_S
        else:
            continue
        if not entry.is_dir() or _touched_since(entry, now - threshold):
            continue
        doomed = entry.with_name(f"{REMOVING_PREFIX}{entry.name}")
        try:
            entry.rename(doomed)
        except OSError:
            continue  # gone already, or another process is removing it
        shutil.rmtree(doomed, ignore_errors=True)
        removed.append(entry)
    return removed


def _touched_since(folder: Path, since: float) -> bool:
    """Whether anything in the folder's tree changed after `since`: a file written, or an
    entry added, removed or renamed in one of its directories (which renews that directory's
    mtime). Something vanishing while this looks is a change too."""
    for directory, _, files in os.walk(folder, onerror=lambda error: None):
        for path in (directory, *(os.path.join(directory, name) for name in files)):
            try:
                if os.lstat(path).st_mtime > since:
                    return True
            except FileNotFoundError:
                return True
    return False


def keep_unpublished(staging: Path, cache_root: Path, key: str, metadata: dict[str, Any]
                     ) -> FeatureCache:
    """A complete cache this run keeps for itself: the metadata written, the staging folder
    renamed to a run-private name that `find_complete` never returns for `key`."""
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    private = cache_root / f"{UNSHARED_PREFIX}{key}-{uuid.uuid4().hex[:8]}"
    staging.rename(private)
    return FeatureCache(private)


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
