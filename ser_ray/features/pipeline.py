"""Ray Data feature pipeline: manifest → decode → mono/resample → augment → featurize → Parquet.

Each Ray task runs the `Featurizer` (`ser_ray.features.featurize`) on a block of manifest
rows; rows stream straight to Parquet and the driver never holds features. A finished request
is a cache hit that returns without starting Ray.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import ray

from ser_ray.errors import UserError
from ser_ray.features import cache
from ser_ray.features.augment import AugmentationSpec
from ser_ray.features.featurize import (
    DEVICES,
    Device,
    Featurizer,
    feature_request,
    parquet_options,
)
from ser_ray.features.recipes import FeatureRecipe
from ser_ray.ray_session import ensure_ray

MAX_UTTERANCES_PER_TASK = 64


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
    wanted = feature_request(manifest_path, recipe, cache_root, augmentations, seed)
    hit = wanted.published()
    if hit is not None:
        return hit, True
    ensure_ray()
    _require_gpus_for(device)
    staging, featurizer = wanted.stage(device)
    _run(wanted.manifest, featurizer, staging, batch_size, concurrency)
    return wanted.publish(staging), False


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
                             ray_remote_args=resources, **parquet_options())


def _task_blocks(inputs: pd.DataFrame, tasks: int) -> list[pd.DataFrame]:
    """Equal blocks of manifest rows, a multiple of `tasks` of them (so no worker idles at
    the end), none over MAX_UTTERANCES_PER_TASK rows.

    A block is one task, and the fused write holds a task's rows until it writes them as
    one file, so the cap bounds a worker's memory whatever the corpus size.
    """
    rounds = math.ceil(len(inputs) / (tasks * MAX_UTTERANCES_PER_TASK))
    size = math.ceil(len(inputs) / min(len(inputs), tasks * rounds))
    return [inputs.iloc[start:start + size] for start in range(0, len(inputs), size)]
