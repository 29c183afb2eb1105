"""k-fold training on Ray Train (V2 `TorchTrainer`): fold-parallel workers, DDP inside folds.

With W workers and K folds, worker i trains folds i, i+W, ... when W ≤ K; when W is a
multiple of K, each fold is trained by W/K workers with DistributedDataParallel on their own
process group. Every worker runs the same lock-step loop as `train_folds`; after each epoch
the workers' fold records are gathered, so rank 0 reports the fold-mean metrics of the epoch
(what Tune's scheduler prunes on) and every worker adds its folds' state to the epoch's
checkpoint. Re-running with the same storage path and name resumes from the last epoch.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray.train
import torch
import torch.distributed as dist
from ray.train.torch import TorchTrainer

from ser_ray import models
from ser_ray.errors import UserError
from ser_ray.ray_session import ensure_ray
from ser_ray.train.config import TrainJob
from ser_ray.train.data import FoldData
from ser_ray.train.loop import (
    DdpGroup,
    LockstepRun,
    RunOutcome,
    outcome_from_checkpoint,
    resolve_device,
)
from ser_ray.train.memory import estimate_memory, trains_on_gpu
from ser_ray.train.results import Record, epoch_summary, format_epoch

REPORT_LOGGERS = ("ray.train._internal.storage", "ray.train.v2._internal.execution.storage")
REPORT_CONTEXT_MODULE = "ray.train.v2._internal.execution.context"


@dataclass(frozen=True)
class WorkerPlan:
    """The folds one worker trains, and the ranks it shares each fold with under DDP."""

    folds: tuple[int, ...]
    fold_ranks: tuple[int, ...] = ()


def plan_workers(fold_indices: Sequence[int], workers: int) -> list[WorkerPlan]:
    """Fold-parallel when workers ≤ folds, DDP groups of workers/folds otherwise.

    >>> [plan.folds for plan in plan_workers([0, 1, 2, 3, 4], 2)]
    [(0, 2, 4), (1, 3)]
    >>> [(plan.folds, plan.fold_ranks) for plan in plan_workers([0, 1], 4)]
    [((0,), (0, 1)), ((0,), (0, 1)), ((1,), (2, 3)), ((1,), (2, 3))]
    """
    folds = tuple(fold_indices)
    if workers <= len(folds):
        return [WorkerPlan(folds[rank::workers]) for rank in range(workers)]
    if workers % len(folds):
        raise UserError(f"{workers} workers cannot share {len(folds)} folds evenly: use at "
                        f"most {len(folds)} workers (one or more folds each) or a multiple of "
                        f"{len(folds)} (DDP inside each fold)")
    group = workers // len(folds)
    return [WorkerPlan((folds[rank // group],),
                       tuple(range(rank // group * group, (rank // group + 1) * group)))
            for rank in range(workers)]


def _ddp_groups(plans: list[WorkerPlan], rank: int) -> dict[int, DdpGroup]:
    """Every rank creates every group, in the same order, as torch.distributed requires."""
    groups: dict[int, DdpGroup] = {}
    seen: set[tuple[int, ...]] = set()
    for plan in plans:
        if not plan.fold_ranks or plan.fold_ranks in seen:
            continue
        seen.add(plan.fold_ranks)
        process_group = dist.new_group(list(plan.fold_ranks))
        if rank in plan.fold_ranks:
            groups[plan.folds[0]] = DdpGroup(process_group, plan.fold_ranks.index(rank),
                                             len(plan.fold_ranks))
    return groups


def report_logger_names() -> list[str]:
    """The loggers through which Ray Train logs every report with its whole metrics dict (all
    fold records) and every checkpoint at INFO. They live in Ray's private modules, whose
    layout the pinned Ray range fixes; found by name, nothing private is imported, and a test
    fails when a Ray release moves them. The execution context names its logger by its file
    path, not its module name."""
    context = importlib.util.find_spec(REPORT_CONTEXT_MODULE)
    return [*REPORT_LOGGERS, *([context.origin] if context and context.origin else [])]


def quiet_report_logs() -> None:
    """One line per epoch and fold would bury the progress lines: reports log at WARNING."""
    for name in report_logger_names():
        logging.getLogger(name).setLevel(logging.WARNING)


def _train_worker(config: dict[str, Any]) -> None:
    quiet_report_logs()
    if not config["use_gpu"]:
        # Ray no longer hides the node's GPUs from a worker that asked for none; `device:
        # auto` would otherwise put it on a GPU Ray has given to someone else.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    # Ray pins OMP_NUM_THREADS to 1 in workers; use the CPUs this worker was given.
    torch.set_num_threads(max(1, int(config["cpus_per_worker"])))
    job = TrainJob.model_validate_json(config["job"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    plans = plan_workers(config["folds"], world)
    device = ray.train.torch.get_device() if config["use_gpu"] else resolve_device(job.train)
    run = LockstepRun(job, plans[rank].folds, device, _ddp_groups(plans, rank))
    # The run's own checkpoint (a restarted worker group), else an interrupted run's.
    checkpoint = ray.train.get_checkpoint() or config["resume_from"]
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            run.restore(Path(directory))

    def report(records: list[Record], directory: Path) -> None:
        own = [(record, selected) for record, selected, trainer
               in zip(records, run.selected_so_far(), run.trainers)
               if trainer.ddp is None or trainer.ddp.leader]
        gathered: list[Any] = [own]
        if dist.is_initialized():
            gathered = [None] * world
            dist.all_gather_object(gathered, own)
        pairs = sorted(itertools.chain.from_iterable(gathered), key=lambda pair: pair[0]["fold"])
        every_fold = [record for record, _ in pairs]
        summary = epoch_summary(every_fold, selected=[selected for _, selected in pairs])
        if rank == 0 and config["verbose"]:
            print(format_epoch(summary, job.train.epochs), flush=True)
        ray.train.report({**summary, "parameters": run.trainers[0].parameters,
                          "fold_records": every_fold},
                         checkpoint=ray.train.Checkpoint.from_directory(directory))

    run.train(report)


def check_job(job: TrainJob, workers: int) -> tuple[int, ...]:
    """What a worker would refuse, refused here first (cheaply: no features are loaded), so a
    bad setting is a clear user error rather than a failed worker group."""
    data = FoldData(job)
    folds = data.job_folds
    for fold in folds:
        data.held_out(fold)
    models.resolve(job.model.name, data.feature_shape, **job.model.options)
    plan_workers(folds, workers)
    return folds


def worker_memory(job: TrainJob, fold_indices: Sequence[int], workers: int, *,
                  on_gpu: bool) -> int:
    """Bytes each Train worker asks Ray for: what the worker with the most folds holds."""
    folds = max(len(plan.folds) for plan in plan_workers(fold_indices, workers))
    return estimate_memory(job, folds, on_gpu=on_gpu).total


def user_error_in(error: BaseException) -> UserError | None:
    """The UserError a worker raised, if that is what failed the run."""
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None:
            continue
        if isinstance(current, UserError):
            return current
        pending += [current.__cause__, current.__context__,
                    *getattr(current, "worker_failures", {}).values(),
                    getattr(current, "controller_failure", None)]
    return None


def train_folds_on_ray(job: TrainJob, *, storage_path: Path | str, name: str, workers: int = 1,
                       gpus: float = 0, cpus_per_worker: float = 1, max_failures: int = 0,
                       request_memory: bool = True,
                       resume_from: ray.train.Checkpoint | None = None,
                       callbacks: Sequence[Any] = (), verbose: bool = False) -> RunOutcome:
    """Run `job` on a TorchTrainer; returns the same outcome as the in-process loop.

    A worker (or its node) lost mid-run restarts the worker group from the run's last
    checkpoint, up to `max_failures` times; `resume_from` is where a run with no checkpoint
    of its own starts (the same folds' checkpoint of an earlier, interrupted run).
    """
    fold_indices = check_job(job, workers)
    ensure_ray()
    resources: dict[str, float] = {"CPU": cpus_per_worker}
    if request_memory:
        resources["memory"] = worker_memory(job, fold_indices, workers,
                                            on_gpu=trains_on_gpu(job, gpus))
    if gpus:
        resources["GPU"] = gpus / workers
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"job": job.model_dump_json(), "folds": list(fold_indices),
                           "use_gpu": bool(gpus), "verbose": verbose,
                           "resume_from": resume_from,
                           "cpus_per_worker": cpus_per_worker},
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=bool(gpus),
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            # A URI (s3://, gs://, file://) goes to Ray as it is; a local path made absolute.
            name=name, storage_path=(str(storage_path) if "://" in str(storage_path)
                                     else str(Path(storage_path).resolve())),
            callbacks=list(callbacks),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            failure_config=ray.train.FailureConfig(max_failures=max_failures)),
    )
    try:
        result = trainer.fit()
    except Exception as error:
        raise (user_error_in(error) or error) from error
    if result.error is not None:
        raise user_error_in(result.error) or result.error
    with result.checkpoint.as_directory() as directory:
        return outcome_from_checkpoint(Path(directory))
