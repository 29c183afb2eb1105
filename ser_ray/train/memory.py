"""The private memory one training process needs, computed before it starts, so that Ray
schedules no more trials (or Train workers) on a node than it can hold.

Checked on CPU against the peak RSS growth of one step of the papers' ECA-CNN on 64×601
log-Mels: training at batch 32, 1.66 GB estimated for 1.41 GB measured; scoring at batch 256,
5.16 GB for 5.03 GB.

The feature rows are not part of it: they are pages of the cache's memory-mapped arrays, held
once per node by the page cache whatever the number of trials, and evictable under pressure.
What each process holds alone is its interpreter and libraries, the table locating its rows,
every fold's model state, and one batch in flight with the activations kept for backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ser_ray import models
from ser_ray.experiment import TrainConfig
from ser_ray.features.arrays import slab_table
from ser_ray.train.config import ModelChoice, TrainJob
from ser_ray.train.data import FoldData
from ser_ray.train.loop import MIN_TRAIN_BATCH

GIB = 2**30
# A Ray worker with the trial code (torch, numpy, pandas, pyarrow) imported: 0.33 GB USS,
# 0.40 GB RSS measured on Linux x86-64 with CPU torch; the rest is room for what the allocator
# keeps after the first epochs and the libraries' thread pools and buffers.
PROCESS_BYTES = 640 * 2**20
# Host memory the CUDA runtime and torch's CUDA libraries hold once initialised: not measured
# here (no GPU on the machines this is developed on); the size commonly reported for them.
CUDA_RUNTIME_BYTES = 2**30
# pandas/Arrow ids of one feature row (three strings, a version, a target, its slab place),
# an upper bound for ids of up to 40 characters.
ROW_INDEX_BYTES = 512
# Feature bytes of a batch held at once: gathered from the slabs, standardised, as a tensor.
BATCH_COPIES = 3
# Optimiser state per parameter, in parameter-sized tensors.
OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 1}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one process privately needs, by part."""

    process: int
    row_index: int
    models: int
    batch: int

    @property
    def total(self) -> int:
        return self.process + self.row_index + self.models + self.batch

    def describe(self) -> str:
        parts = {"process": self.process, "row index": self.row_index,
                 "fold models": self.models, "batch": self.batch}
        return f"{self.total / GIB:.2f} GiB (" + ", ".join(
            f"{name} {value / GIB:.2f}" for name, value in parts.items()) + ")"


def trains_on_gpu(job: TrainJob, gpus: float) -> bool:
    """Whether a process given `gpus` GPUs trains `job` on one."""
    return bool(gpus) and job.train.device != "cpu"


def estimate_memory(job: TrainJob, folds: int | None = None, *,
                    on_gpu: bool = False) -> MemoryEstimate:
    """What a process training `folds` folds of `job` (None: every fold it names) holds
    privately in host memory at its peak; `on_gpu`: it trains on a GPU it was given."""
    data = FoldData(job)
    return memory_needed(job.model, data.feature_shape, len(data.label_names), job.train,
                         rows=_rows_used(data),
                         folds=len(data.job_folds) if folds is None else folds, on_gpu=on_gpu)


def memory_needed(model_choice: ModelChoice, feature_shape: tuple[int, ...], classes: int,
                  config: TrainConfig, *, rows: int, folds: int,
                  on_gpu: bool = False) -> MemoryEstimate:
    """The estimate for a model on features of `feature_shape`, `rows` feature rows used.

    On a GPU, weights, gradients, optimiser state and activations live in GPU memory; the host
    keeps the selected epoch's weights, the batches on their way, and the CUDA runtime.
    """
    model = models.resolve(model_choice.name, feature_shape, **model_choice.options)
    module = model.build(classes)
    parameter_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    states = OPTIMIZER_STATES[config.optimizer] if config.optimizer != "sgd" or config.momentum \
        else 0
    row_bytes = int(np.prod(feature_shape)) * 4
    if on_gpu:
        return MemoryEstimate(
            process=PROCESS_BYTES + CUDA_RUNTIME_BYTES, row_index=rows * ROW_INDEX_BYTES,
            models=folds * parameter_bytes,
            batch=max(config.batch_size, config.eval_batch_size) * BATCH_COPIES * row_bytes)
    kept, largest = _activation_bytes_per_example(module, model.input_shape)
    # Training holds every activation kept for backward, plus the gradients being formed;
    # scoring (no autograd) holds a layer's input and output at a time.
    training = config.batch_size * (BATCH_COPIES * row_bytes + kept + 2 * largest)
    evaluation = config.eval_batch_size * (BATCH_COPIES * row_bytes + 2 * largest)
    # Weights, gradients, optimiser state, and the copy of the selected epoch's weights.
    return MemoryEstimate(process=PROCESS_BYTES, row_index=rows * ROW_INDEX_BYTES,
                          models=folds * parameter_bytes * (3 + states),
                          batch=max(training, evaluation))


def _rows_used(data: FoldData) -> int:
    """Rows of the slabs a job reads (every utterance of the cache: an upper bound)."""
    slabs = slab_table(data.cache.path)
    versions = {data.test_version, *(data.train_versions or ())}
    return sum(slab["rows"] for slab in slabs
               if (data.test_version is None or slab["stft_version"] in versions)
               and (data.augmentations is None or slab["augmentation"] in data.augmentations))


def _activation_bytes_per_example(module: torch.nn.Module, input_shape: tuple[int, ...]
                                  ) -> tuple[int, int]:
    """(all, the largest) of the tensors autograd keeps for backward, in bytes per example,
    from one training-mode forward pass on the smallest batch the model trains on
    (parameters excluded: they are counted apart)."""
    parameters = {p.data_ptr() for p in module.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.data_ptr() not in parameters:
            saved[tensor.data_ptr()] = tensor.numel() * tensor.element_size()
        return tensor

    module.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        module(torch.zeros(MIN_TRAIN_BATCH, *input_shape))
    return (sum(saved.values()) // MIN_TRAIN_BATCH,
            max(saved.values(), default=0) // MIN_TRAIN_BATCH)
