"""Ray Data feature pipeline: manifest → decode → mono/resample → augment → featurize → Parquet.

Each Ray task runs the `Featurizer` (`ser_ray.features.featurize`) on a block of manifest
rows; rows stream straight to the block's Parquet part in the shared staging directory and
the driver never holds features. What the driver needs besides — the skipped utterances, the
parts written — is each task's output, gathered through Ray. A finished request is a cache hit
that returns without starting Ray.
"""

from __future__ import annotations

import math
import shutil
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
    Outcome,
    feature_request,
    gather_outcome,
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
    unpublished: Path | None = None,
) -> tuple[cache.FeatureCache, bool]:
    """Features for every utterance of the manifest; returns (cache, whether it was a hit).

    The cache is published under its content key for every later request, unless some
    utterances were skipped because their files could not be read (not because of their
    audio): it is then this run's only, under a run-private name, and a warning says so
    (`ser_ray.features.featurize.FeatureRequest.publish`).

    Args:
        batch_size: manifest rows per recipe call (decoded, augmented and featurized
            together).
        concurrency: featurizer tasks running at once, the size of the Ray Data
            `TaskPoolStrategy`; None = the cluster's CPUs, or its GPUs on cuda.
        unpublished: a run-private cache (`.unshared-…`) an earlier run of the same study
            used: a hit when it answers this request, so that a resumed study trains on the
            rows its recorded units trained on.
        device: where the transforms run, "cpu" or "cuda" (each featurizer task then holds
            one GPU). Devices agree to float rounding, so the device is not part of the cache
            key and a hit returns whatever the device.

    Raises:
        UserError: an empty manifest, an unknown device, cuda on a cluster without GPUs, a
            cache root that is not shared by every node, no utterance featurized (a broken
            recipe, or no file readable), a hit whose arrays are damaged or cannot be
            completed where it is.
    """
    if device not in DEVICES:
        raise UserError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    wanted = feature_request(manifest_path, recipe, cache_root, augmentations, seed)
    hit = wanted.published() or wanted.earlier_unpublished(unpublished)
    if hit is not None:
        return hit, True
    ensure_ray()
    _require_gpus_for(device)
    staging, featurizer = wanted.stage(device, batch_size)
    try:
        outcome = _run(wanted.manifest, featurizer, concurrency)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # no half-written cache for 24 h
        raise
    return wanted.publish(staging, outcome), False


def _require_gpus_for(device: Device) -> None:
    """Featurizer tasks that ask for a GPU the cluster does not have would wait forever."""
    if device == "cuda" and not ray.cluster_resources().get("GPU"):
        raise UserError("device 'cuda' (--device cuda) needs GPUs, but the Ray cluster has "
                        "none; use device 'cpu' (--device cpu) or a cluster with GPU nodes")


def _run(manifest: pd.DataFrame, featurizer: Featurizer, concurrency: int | None) -> Outcome:
    on_gpu = featurizer.device == "cuda"
    tasks = concurrency or max(1, int(ray.cluster_resources().get("GPU" if on_gpu else "CPU", 1)))
    inputs = manifest.loc[:, ["utterance_id", "path", "label"]]
    blocks = _task_blocks(inputs, tasks)
    dataset = ray.data.from_pandas(blocks)
    dataset.context.enable_progress_bars = sys.stderr.isatty()
    # Ray 2.60's resource allocator learns the cluster size from an actor it does not wait
    # for (ray-project/ray#62725): for the first second of every run it sees no CPUs and
    # admits one task at a time. This plan is one decode-featurize-write operator whose
    # outputs are a few records per block, so the allocator has nothing to protect here.
    dataset.context.op_resource_reservation_enabled = False
    # Tasks, not an actor pool: the pool's worker processes (torch and librosa imported)
    # stay warm from one request to the next instead of starting per request. Each task
    # takes one whole block (a batch the size of the largest block: Ray refuses an unsized
    # batch for GPU tasks, and a block that size is ready on its own) and writes it as one
    # Parquet part itself, a batch at a time, so feature rows never pass through the object
    # store; its output is the block's outcome table, which comes back here.
    resources = {"num_gpus": 1} if on_gpu else {}
    featurized = dataset.map_batches(featurizer, batch_size=len(blocks[0]),
                                     batch_format="pandas",
                                     compute=ray.data.TaskPoolStrategy(size=tasks), **resources)
    return gather_outcome(ray.get(featurized.to_arrow_refs()))


def _task_blocks(inputs: pd.DataFrame, tasks: int) -> list[pd.DataFrame]:
    """Equal blocks of manifest rows, a multiple of `tasks` of them (so no worker idles at
    the end), none over MAX_UTTERANCES_PER_TASK rows.

    A block is one task and one Parquet part; the cap bounds how much work a lost task
    costs and keeps the parts of a large corpus many, whatever its size.
    """
    rounds = math.ceil(len(inputs) / (tasks * MAX_UTTERANCES_PER_TASK))
    size = math.ceil(len(inputs) / min(len(inputs), tasks * rounds))
    return [inputs.iloc[start:start + size] for start in range(0, len(inputs), size)]
