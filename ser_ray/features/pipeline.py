"""Ray Data feature pipeline: manifest → decode → mono/resample → augment → featurize → Parquet.

Each Ray task decodes a file once, derives its augmented copies, and computes every variant
the recipe asks for (all STFT versions, all segments) from that one waveform. Rows stream
straight to Parquet; the driver never holds features. A finished request is a cache hit that
returns without starting Ray.
"""

from __future__ import annotations

import json
import math
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import ray

from ser_ray.corpus.manifest import read_manifest
from ser_ray.features import cache
from ser_ray.features.audio import BadAudio, load_waveform
from ser_ray.features.augment import AugmentationSpec, apply_augmentation
from ser_ray.features.leakage import derived_utterance_id
from ser_ray.features.recipes import FeatureRecipe

ORIGINAL = "none"
SKIPPED_PARTS_DIR = "skipped_parts"
# A local cluster started by ser-ray: quiet, no token file, torch threads not oversubscribed.
LOCAL_RAY_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "OMP_NUM_THREADS": "1",
}


def feature_schema() -> pa.Schema:
    return pa.schema([
        ("utterance_id", pa.string()),
        ("source_utterance_id", pa.string()),
        ("augmentation", pa.string()),
        ("augmentation_params", pa.string()),
        ("stft_version", pa.int32()),
        ("segment_index", pa.int32()),
        ("label", pa.string()),
        ("features", pa.large_list(pa.float32())),
    ])


class Featurizer:
    """The Ray Data UDF: one pandas batch of manifest rows → one Arrow table of feature rows."""

    def __init__(self, recipe: FeatureRecipe, augmentations: Sequence[AugmentationSpec],
                 seed: int, skipped_dir: str) -> None:
        self.recipe = recipe
        self.augmentations = list(augmentations)
        self.seed = seed
        self.skipped_dir = skipped_dir

    def __call__(self, batch: pd.DataFrame) -> pa.Table:
        import torch

        torch.set_num_threads(1)
        waveforms: list[np.ndarray] = []
        provenance: list[tuple[str, str, str, str, str]] = []
        skipped: list[dict[str, str]] = []
        for utterance_id, path, label in zip(batch["utterance_id"], batch["path"], batch["label"]):
            try:
                waveform = load_waveform(path, self.recipe.sample_rate)
            except BadAudio as bad:
                skipped.append({"utterance_id": utterance_id, "path": path,
                                "reason_code": bad.reason_code, "reason": bad.reason})
                continue
            waveforms.append(waveform)
            provenance.append((utterance_id, utterance_id, ORIGINAL, "{}", label))
            for spec in self.augmentations:
                waveforms.append(apply_augmentation(
                    waveform, self.recipe.sample_rate, spec, (self.seed, utterance_id)))
                provenance.append((derived_utterance_id(utterance_id, spec.name), utterance_id,
                                   spec.name, json.dumps(spec.params(), sort_keys=True), label))
        if skipped:
            pd.DataFrame(skipped).to_csv(
                Path(self.skipped_dir, f"{uuid.uuid4().hex}.csv"), index=False)
        items = self.recipe.featurize_batch(waveforms) if waveforms else []
        return _rows_table(provenance, items)


def _rows_table(provenance: list[tuple[str, str, str, str, str]], items: list) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in feature_schema().names}
    for (utterance_id, source_id, augmentation, params, label), waveform_items in zip(
        provenance, items
    ):
        for item in waveform_items:
            columns["utterance_id"].append(utterance_id)
            columns["source_utterance_id"].append(source_id)
            columns["augmentation"].append(augmentation)
            columns["augmentation_params"].append(params)
            columns["stft_version"].append(item.stft_version)
            columns["segment_index"].append(item.segment_index)
            columns["label"].append(label)
            columns["features"].append(np.ascontiguousarray(item.features, np.float32).ravel())
    return pa.table(columns, schema=feature_schema())


def ensure_ray() -> None:
    """Join the cluster a job runs in (RAY_ADDRESS), or start a quiet local one."""
    if ray.is_initialized():
        return
    if not os.environ.get("RAY_ADDRESS"):
        for name, value in LOCAL_RAY_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        ray.init(include_dashboard=False, logging_level="ERROR")
    else:
        ray.init()


def build_features(
    manifest_path: Path,
    recipe: FeatureRecipe,
    cache_root: Path,
    augmentations: Sequence[AugmentationSpec] = (),
    *,
    seed: int = 0,
    batch_size: int = 8,
    concurrency: int | None = None,
) -> tuple[cache.FeatureCache, bool]:
    """Features for every utterance of the manifest; returns (cache, whether it was a hit)."""
    manifest = read_manifest(manifest_path)
    request = {
        "recipe": recipe.model_dump(mode="json"),
        "augmentations": [spec.name for spec in augmentations],
        "seed": seed,
        "manifest_sha256": cache.manifest_hash(manifest),
    }
    key = cache.cache_key(request)
    cache_root.mkdir(parents=True, exist_ok=True)
    hit = cache.find_complete(cache_root, key)
    if hit is not None:
        return hit, True
    staging = cache.staging_dir(cache_root, key)
    (staging / SKIPPED_PARTS_DIR).mkdir()
    _run(manifest, recipe, augmentations, seed, staging, batch_size, concurrency)
    skipped = _collect_skipped(staging)
    rows = pads.dataset(staging / cache.DATA_DIR, format="parquet").count_rows()
    metadata = {
        **request,
        "key": key,
        "feature_code_version": cache.FEATURE_CODE_VERSION,
        "feature_shape": list(recipe.feature_shape()),
        "variants": recipe.variant_values(),
        "rows": rows,
        "utterances": len(manifest) - len(skipped),
        "skipped": len(skipped),
        "manifest_path": str(manifest_path),
        "libraries": cache.library_versions(),
    }
    return cache.publish(staging, cache_root, key, metadata), False


def _run(manifest: pd.DataFrame, recipe: FeatureRecipe,
         augmentations: Sequence[AugmentationSpec], seed: int, staging: Path,
         batch_size: int, concurrency: int | None) -> None:
    ensure_ray()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = sys.stderr.isatty()
    tasks = concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))
    inputs = manifest.loc[:, ["utterance_id", "path", "label"]]
    # One block per few batches, so that `tasks` workers share the corpus.
    blocks = max(1, min(len(inputs), math.ceil(len(inputs) / batch_size)))
    dataset = ray.data.from_pandas(np.array_split(inputs, blocks))
    featurized = dataset.map_batches(
        Featurizer,
        fn_constructor_args=(recipe, list(augmentations), seed,
                             str(staging / SKIPPED_PARTS_DIR)),
        batch_size=batch_size,
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=tasks),
    )
    featurized.write_parquet(str(staging / cache.DATA_DIR))


def _collect_skipped(staging: Path) -> pd.DataFrame:
    parts = sorted((staging / SKIPPED_PARTS_DIR).glob("*.csv"))
    columns = ["utterance_id", "path", "reason_code", "reason"]
    skipped = (pd.concat([pd.read_csv(p, dtype=str) for p in parts], ignore_index=True)
               if parts else pd.DataFrame(columns=columns))
    skipped.sort_values("utterance_id").to_csv(staging / cache.SKIPPED_FILE, index=False)
    for part in parts:
        part.unlink()
    (staging / SKIPPED_PARTS_DIR).rmdir()
    return skipped
