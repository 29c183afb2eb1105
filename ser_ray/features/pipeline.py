"""Ray Data feature pipeline: manifest → decode → mono/resample → augment → featurize → Parquet.

Each Ray task decodes a file once, derives its augmented copies, and computes every variant
the recipe asks for (all STFT versions, all segments) from that one waveform. Rows stream
straight to Parquet; the driver never holds features. A finished request is a cache hit that
returns without starting Ray.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import ray

from ser_ray.corpus.manifest import read_manifest
from ser_ray.errors import UserError
from ser_ray.features import cache
from ser_ray.features.audio import BadAudio, load_waveform
from ser_ray.features.augment import AugmentationSpec, apply_augmentation
from ser_ray.features.leakage import derived_utterance_id
from ser_ray.features.recipes import FeatureItem, FeatureRecipe
from ser_ray.ray_session import ensure_ray

ORIGINAL = "none"
FEATURIZE_FAILED = "featurize_failed"
SKIPPED_PARTS_DIR = "skipped_parts"
MAX_UTTERANCES_PER_TASK = 64
Device = Literal["cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(Device)


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


class DecodedUtterance(NamedTuple):
    """A manifest row with its waveform at the recipe's rate."""

    utterance_id: str
    path: str
    label: str
    waveform: np.ndarray


Provenance = tuple[str, str, str, str, str]
"""(utterance_id, source_utterance_id, augmentation, augmentation_params, label) of a row."""


class Featurizer:
    """The Ray Data UDF: one pandas batch of manifest rows → one Arrow table of feature rows.

    An utterance that cannot be decoded, augmented or featurized is recorded in the skipped
    list with its reason, and the rest of the batch goes on.
    """

    def __init__(self, recipe: FeatureRecipe, augmentations: Sequence[AugmentationSpec],
                 seed: int, skipped_dir: str, device: Device) -> None:
        self.recipe = recipe
        self.augmentations = list(augmentations)
        self.seed = seed
        self.skipped_dir = skipped_dir
        self.device = device

    def __call__(self, batch: pd.DataFrame) -> pa.Table:
        import torch

        torch.set_num_threads(1)
        decoded: list[DecodedUtterance] = []
        skipped: list[dict[str, str]] = []
        for utterance_id, path, label in zip(batch["utterance_id"], batch["path"], batch["label"]):
            try:
                waveform = load_waveform(path, self.recipe.sample_rate)
            except BadAudio as bad:
                skipped.append(_skipped_item(utterance_id, path, bad.reason_code, bad.reason))
                continue
            decoded.append(DecodedUtterance(utterance_id, path, label, waveform))
        provenance, items = self._featurize(decoded, skipped)
        if skipped:
            pd.DataFrame(skipped).to_csv(
                Path(self.skipped_dir, f"{uuid.uuid4().hex}.csv"), index=False)
        return _rows_table(provenance, items)

    def _featurize(self, decoded: list[DecodedUtterance], skipped: list[dict[str, str]]
                   ) -> tuple[list[Provenance], list[list[FeatureItem]]]:
        """Rows of the whole batch in one recipe call; when that raises, the batch again one
        utterance at a time, so that only the utterances at fault are skipped."""
        try:
            return self._augment_and_featurize(decoded)
        except Exception:  # any failure: the per-utterance pass below names the culprit
            return self._featurize_one_by_one(decoded, skipped)

    def _featurize_one_by_one(self, decoded: list[DecodedUtterance],
                              skipped: list[dict[str, str]]
                              ) -> tuple[list[Provenance], list[list[FeatureItem]]]:
        provenance: list[Provenance] = []
        items: list[list[FeatureItem]] = []
        for utterance in decoded:
            try:
                utterance_provenance, utterance_items = self._augment_and_featurize([utterance])
            except Exception as error:  # whatever it is, it must not cost the other utterances
                skipped.append(_skipped_item(utterance.utterance_id, utterance.path,
                                             FEATURIZE_FAILED, f"{type(error).__name__}: {error}"))
                continue
            provenance += utterance_provenance
            items += utterance_items
        return provenance, items

    def _augment_and_featurize(self, decoded: list[DecodedUtterance]
                               ) -> tuple[list[Provenance], list[list[FeatureItem]]]:
        """Each utterance and its augmented copies, featurized in one recipe call."""
        waveforms: list[np.ndarray] = []
        provenance: list[Provenance] = []
        for utterance_id, _, label, waveform in decoded:
            waveforms.append(waveform)
            provenance.append((utterance_id, utterance_id, ORIGINAL, "{}", label))
            for spec in self.augmentations:
                waveforms.append(apply_augmentation(
                    waveform, self.recipe.sample_rate, spec, (self.seed, utterance_id)))
                provenance.append((derived_utterance_id(utterance_id, spec.name), utterance_id,
                                   spec.name, json.dumps(spec.params(), sort_keys=True), label))
        return provenance, self.recipe.featurize_batch(waveforms, self.device)


def _skipped_item(utterance_id: str, path: str, reason_code: str, reason: str
                  ) -> dict[str, str]:
    return {"utterance_id": utterance_id, "path": path, "reason_code": reason_code,
            "reason": reason}


def _rows_table(provenance: list[Provenance],
                items: list[list[FeatureItem]]) -> pa.Table:
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
            columns["features"].append(item.features)
    features = _features_column(columns.pop("features"))
    return pa.table({**columns, "features": features}, schema=feature_schema())


def _features_column(arrays: list[np.ndarray]) -> pa.Array:
    """Equal-shape arrays as one list column over a single float32 buffer: one copy, where a
    list of per-row arrays would make pyarrow convert row by row."""
    if not arrays:
        return pa.array([], pa.large_list(pa.float32()))
    values = np.stack(arrays).astype(np.float32, copy=False).reshape(-1)
    offsets = np.arange(len(arrays) + 1, dtype=np.int64) * arrays[0].size
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))


FEATURE_VALUES_COLUMN = "features.list.element"


def _parquet_options() -> dict[str, Any]:
    """Dictionaries and min/max statistics for the id columns only: on the float features
    they cost half the write time and serve nothing (every value differs, no one filters on
    them). The features are stored byte-stream-split (each float's exponent bytes side by
    side, where a compressor finds them alike) and LZ4-compressed: a log-Mel cache is then
    ~23 % smaller than with plain Snappy and reads faster, for the same write time."""
    ids = [name for name in feature_schema().names if name != "features"]
    return {"use_dictionary": ids, "write_statistics": ids,
            "use_byte_stream_split": [FEATURE_VALUES_COLUMN],
            "compression": {**dict.fromkeys(ids, "snappy"), FEATURE_VALUES_COLUMN: "lz4"}}


def build_features(
    manifest_path: Path,
    recipe: FeatureRecipe,
    cache_root: Path,
    augmentations: Sequence[AugmentationSpec] = (),
    *,
    seed: int = 0,
    batch_size: int = 8,
    concurrency: int | None = None,
    device: Device = "cpu",
) -> tuple[cache.FeatureCache, bool]:
    """Features for every utterance of the manifest; returns (cache, whether it was a hit).

    Args:
        batch_size: manifest rows per featurizer call (decoded, augmented and featurized
            together).
        concurrency: featurizer tasks running at once, the size of the Ray Data
            `TaskPoolStrategy`; None = the cluster's CPUs, or its GPUs on cuda.
        device: where the transforms run, "cpu" or "cuda" (each featurizer task then holds
            one GPU). Devices agree to float rounding, so the device is not part of the cache
            key and a hit returns whatever the device.

    Raises:
        UserError: an empty manifest, an unknown device, or cuda on a cluster without GPUs.
    """
    if device not in DEVICES:
        raise UserError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    manifest = read_manifest(manifest_path)
    if manifest.empty:
        raise UserError(f"manifest {manifest_path} lists no utterances")
    request = cache.feature_request(recipe, augmentations, seed, manifest)
    key = cache.cache_key(request)
    cache_root.mkdir(parents=True, exist_ok=True)
    hit = cache.find_complete(cache_root, key)
    if hit is not None:
        return hit, True
    ensure_ray()
    _require_gpus_for(device)
    staging = cache.staging_dir(cache_root, key)
    (staging / SKIPPED_PARTS_DIR).mkdir()
    featurizer = Featurizer(recipe, augmentations, seed, str(staging / SKIPPED_PARTS_DIR), device)
    _run(manifest, featurizer, staging, batch_size, concurrency)
    skipped = _collect_skipped(staging)
    _refuse_if_nothing_featurized(skipped, len(manifest), staging)
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


def _refuse_if_nothing_featurized(skipped: pd.DataFrame, utterances: int,
                                  staging: Path) -> None:
    """A recipe that fails on every utterance that decoded is broken (or its device is), not
    the data: caching that would skip the whole corpus for good, so nothing is published and
    the next request tries again."""
    failed = skipped[skipped["reason_code"] == FEATURIZE_FAILED]
    decoded = utterances - (len(skipped) - len(failed))
    if failed.empty or len(failed) < decoded:
        return
    shutil.rmtree(staging, ignore_errors=True)
    examples = "; ".join(f"{row.path}: {row.reason}" for row in failed.head(3).itertuples())
    raise UserError(f"featurizing failed for every one of the {decoded} decodable utterances, "
                    f"so no feature cache was written (first failures: {examples}); check the "
                    f"recipe's parameters and the device")


def _require_gpus_for(device: Device) -> None:
    """Featurizer tasks that ask for a GPU the cluster does not have would wait forever."""
    if device == "cuda" and not ray.cluster_resources().get("GPU"):
        raise UserError("device 'cuda' (--device cuda) needs GPUs, but the Ray cluster has "
                        "none; use device 'cpu' (--device cpu) or a cluster with GPU nodes")


def _run(manifest: pd.DataFrame, featurizer: Featurizer, staging: Path, batch_size: int,
         concurrency: int | None) -> None:
    on_gpu = featurizer.device == "cuda"
    tasks = concurrency or max(1, int(ray.cluster_resources().get("GPU" if on_gpu else "CPU", 1)))
    inputs = manifest.loc[:, ["utterance_id", "path", "label"]]
    dataset = ray.data.from_pandas(_task_blocks(inputs, tasks))
    dataset.context.enable_progress_bars = sys.stderr.isatty()
    # Ray 2.60's resource allocator learns the cluster size from an actor it does not wait
    # for (ray-project/ray#62725): for the first second of every run it sees no CPUs and
    # admits one task at a time. This plan is one fused decode-featurize-write operator
    # whose outputs are write receipts, so the allocator has nothing to protect here.
    dataset.context.op_resource_reservation_enabled = False
    # Tasks, not an actor pool: the pool's worker processes (torch and librosa imported)
    # stay warm from one request to the next instead of starting per request, and a
    # task-pool map fuses with a write of the same size and resources, so feature blocks go
    # from the featurizer straight to Parquet without passing through the object store.
    resources = {"num_gpus": 1} if on_gpu else {}
    featurized = dataset.map_batches(featurizer, batch_size=batch_size, batch_format="pandas",
                                     compute=ray.data.TaskPoolStrategy(size=tasks), **resources)
    featurized.write_parquet(str(staging / cache.DATA_DIR), concurrency=tasks,
                             ray_remote_args=resources, **_parquet_options())


def _task_blocks(inputs: pd.DataFrame, tasks: int) -> list[pd.DataFrame]:
    """Equal blocks of manifest rows, a multiple of `tasks` of them (so no worker idles at
    the end), none over MAX_UTTERANCES_PER_TASK rows.

    A block is one task, and the fused write holds a task's rows until it writes them as
    one file, so the cap bounds a worker's memory whatever the corpus size.
    """
    rounds = math.ceil(len(inputs) / (tasks * MAX_UTTERANCES_PER_TASK))
    size = math.ceil(len(inputs) / min(len(inputs), tasks * rounds))
    return [inputs.iloc[start:start + size] for start in range(0, len(inputs), size)]


def _collect_skipped(staging: Path) -> pd.DataFrame:
    parts = sorted((staging / SKIPPED_PARTS_DIR).glob("*.csv"))
    columns = ["utterance_id", "path", "reason_code", "reason"]
    # keep_default_na=False: an utterance id such as "NA" or "nan" is text, not a missing value.
    tables = [pd.read_csv(part, dtype=str, keep_default_na=False) for part in parts]
    skipped = pd.concat(tables, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    skipped.sort_values("utterance_id").to_csv(staging / cache.SKIPPED_FILE, index=False)
    for part in parts:
        part.unlink()
    (staging / SKIPPED_PARTS_DIR).rmdir()
    return skipped
