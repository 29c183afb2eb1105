"""The memory a training process asks Ray for, from the model, the rows it reads and its
batch (the rows themselves are shared pages, not part of it)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ser_ray import models
from ser_ray.experiment import TrainConfig
from ser_ray.features.arrays import ARRAYS_DIR, SLABS_FILE
from ser_ray.train import ModelChoice, TrainJob
from ser_ray.train.data import FoldData
from ser_ray.train.memory import (
    BATCH_COPIES,
    CUDA_RUNTIME_BYTES,
    PROCESS_BYTES,
    ROW_INDEX_BYTES,
    estimate_memory,
)

TINY_ECA_CNN = ModelChoice(name="eca_cnn", options={"scale": 1, "base_width": 4})
NOISE = "noise:snr=20"


def job_of(tiny_study, **train) -> TrainJob:
    return TrainJob(manifest=tiny_study.selected_manifest, folds=tiny_study.folds,
                    cache=tiny_study.cache, model=TINY_ECA_CNN,
                    train=TrainConfig(**{"test_version": 8, "batch_size": 16, **train}))


def slab_rows(tiny_study, versions: set[int], augmentations: set[str]) -> int:
    slabs = json.loads((tiny_study.cache / ARRAYS_DIR / SLABS_FILE).read_text())
    return sum(slab["rows"] for slab in slabs
               if slab["stft_version"] in versions and slab["augmentation"] in augmentations)


def parameter_bytes(job: TrainJob) -> int:
    data = FoldData(job)
    module = models.resolve(job.model.name, data.feature_shape, **job.model.options) \
        .build(len(data.label_names))
    return sum(p.numel() * p.element_size() for p in module.parameters())


def test_the_estimate_adds_the_process_the_row_index_every_fold_s_model_and_a_batch(
        tiny_study) -> None:
    job = job_of(tiny_study, train_versions=(2, 8), augmentations=(NOISE,))
    estimate = estimate_memory(job)
    folds = len(FoldData(job).job_folds)
    assert estimate.process == PROCESS_BYTES
    # Weights, gradients, Adam's two moments and the selected epoch's copy, for each fold.
    assert estimate.models == folds * 5 * parameter_bytes(job)
    assert estimate.row_index == ROW_INDEX_BYTES * slab_rows(tiny_study, {2, 8},
                                                             {"none", NOISE})
    row_bytes = int(np.prod(FoldData(job).feature_shape)) * 4
    assert estimate.batch > 256 * BATCH_COPIES * row_bytes  # scoring batches of 256 rows
    assert estimate.total == sum((estimate.process, estimate.row_index, estimate.models,
                                  estimate.batch))
    assert estimate.describe().startswith(f"{estimate.total / 2**30:.2f} GiB (process ")


@pytest.mark.parametrize(("settings", "states"), [
    ({"optimizer": "sgd", "momentum": 0.0}, 0), ({"optimizer": "sgd"}, 1),
    ({"optimizer": "adamw"}, 2)])
def test_optimiser_state_and_folds_scale_the_model_part(tiny_study, settings: dict,
                                                        states: int) -> None:
    job = job_of(tiny_study, **settings)
    assert estimate_memory(job, folds=1).models == (3 + states) * parameter_bytes(job)


def test_fewer_rows_and_larger_batches_move_the_estimate_their_way(tiny_study) -> None:
    originals = estimate_memory(job_of(tiny_study))
    assert originals.row_index == ROW_INDEX_BYTES * slab_rows(tiny_study, {8}, {"none"})
    # Training batches beyond the scoring batch's size hold activations for backward too.
    small, large = (estimate_memory(job_of(tiny_study, batch_size=size, eval_batch_size=1))
                    for size in (16, 64))
    assert large.batch > 4 * small.batch * 0.99 > 0


def test_on_a_gpu_the_host_keeps_the_selected_weights_and_the_batches_on_their_way(
        tiny_study) -> None:
    job = job_of(tiny_study)
    estimate = estimate_memory(job, folds=2, on_gpu=True)
    row_bytes = int(np.prod(FoldData(job).feature_shape)) * 4
    assert estimate.process == PROCESS_BYTES + CUDA_RUNTIME_BYTES
    assert estimate.models == 2 * parameter_bytes(job)
    assert estimate.batch == 256 * BATCH_COPIES * row_bytes
    assert estimate.batch < estimate_memory(job, folds=2).batch
