"""The Tune function trainable: one trial plan (a configuration × seed), its folds trained in
lock-step.

With one worker the folds train inside the trial process (no Train start-up toll, the same
loop); with more workers the trial launches a TorchTrainer whose rank 0 reports through
`TuneReportCallback`. Either way Tune receives, once per epoch, the fold-mean metrics the
scheduler prunes on plus every fold's record, and a checkpoint a retried trial resumes from.
"""

from __future__ import annotations

import logging
import os
import posixpath
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray.train
import torch
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from ser_ray.errors import UserError
from ser_ray.experiment import read_ledger, unit_rows
from ser_ray.study.cluster import require_visible
from ser_ray.study.schema import Resources, TrialMemory
from ser_ray.study.storage import TRAIN_DIR, checkpoint_directory, filesystem, storage_child
from ser_ray.study.units import REPLAY_KEY, TrialPlan, error_file, trial_plan
from ser_ray.train.config import ModelChoice, TrainJob
from ser_ray.train.loop import LockstepRun, outcome_from_checkpoint
from ser_ray.train.memory import PROCESS_BYTES, estimate_memory, trains_on_gpu
from ser_ray.train.ray_train import quiet_report_logs, train_folds_on_ray, worker_memory
from ser_ray.train.results import Record, epoch_summary, selected_so_far

logger = logging.getLogger(__name__)
# Marks the unraisable-exception hook that drops a stopped trial's SystemExit.
IGNORES_EXIT = "ser_ray_ignores_exit"


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a study needs besides its plan, shipped once with
    `tune.with_parameters`."""

    manifest: str
    folds: str
    caches: dict[str, str]
    experiment_dir: str
    storage: str
    resources: Resources
    replay_recorded: bool
    # False where the autoscaler could never start a node for a request with memory.
    request_memory: bool = True
    # Times a Train worker group is restarted from its last checkpoint after losing a worker.
    retries: int = 0
    # The last checkpoint (relative to the trial storage) of plans a dead driver left running.
    resume_from: dict[tuple[str, int, tuple[int, ...]], str] = field(default_factory=dict)


def build_job(context: TrialContext, plan: TrialPlan) -> TrainJob:
    configuration = plan.configuration
    if configuration is None:
        raise UserError(plan.error or "the trial's configuration could not be resolved")
    require_visible(Path(context.caches[configuration.feature_set]), "feature cache")
    return TrainJob(manifest=Path(context.manifest), folds=Path(context.folds),
                    cache=Path(context.caches[configuration.feature_set]),
                    model=ModelChoice(name=configuration.family,
                                      options=configuration.model_options),
                    train=configuration.train, seed=plan.seed, fold_indices=plan.folds)


def trial_memory(context: TrialContext, plan: TrialPlan) -> TrialMemory:
    """The memory a trial of this plan asks Ray for, for its own process and (with Train
    workers) each worker's. A plan that cannot be resolved, or whose estimate fails (a model
    that cannot run on its features), asks for a bare process: it fails at once, with its
    reason, as one trial of the study."""
    resources = context.resources
    if not context.request_memory:
        return TrialMemory()
    try:
        job = build_job(context, plan)
        on_gpu = trains_on_gpu(job, resources.gpus)
        if resources.workers == 1:
            return TrialMemory(trial=estimate_memory(job, on_gpu=on_gpu).total)
        return TrialMemory(trial=PROCESS_BYTES,
                           worker=worker_memory(job, plan.folds, resources.workers,
                                                on_gpu=on_gpu))
    except Exception:  # noqa: BLE001  (the trial itself says what is wrong)
        logger.warning("no memory estimate for configuration %s; its trial asks for a bare "
                       "process", plan.changes, exc_info=True)
        return TrialMemory(trial=PROCESS_BYTES)


def _replay_recorded(context: TrialContext, plan: TrialPlan) -> bool:
    """A configuration the sampler proposes again (TPE repeats itself on small categorical
    spaces) is not trained again: its recorded epochs are reported as they were, so the
    search and the scheduler see its value, and the driver records no unit for it."""
    recorded = {row.fold: row for row in unit_rows(read_ledger(Path(context.experiment_dir)))
                if row.config_hash == plan.config_hash and row.seed == plan.seed
                and row.status in ("finished", "pruned")}
    if set(plan.folds) - set(recorded):
        return False
    rows = [recorded[fold] for fold in plan.folds]
    histories = [[{**record.model_dump(mode="json"), "fold": row.fold} for record in row.history]
                 for row in rows]
    rule = plan.configuration.train.selection  # type: ignore[union-attr]  (built by build_job)
    report_history(histories, rule, {"parameters": rows[0].parameters,
                                      REPLAY_KEY: rows[0].variant})
    return True


def report_history(histories: list[list[Record]], rule: str, extra: dict[str, Any]) -> None:
    """Epochs trained before, reported to Tune as they were (no checkpoint), so that the
    scheduler, the searcher and the ledger see every epoch of the units."""
    for epoch_index in range(min(len(history) for history in histories)):
        records = [history[epoch_index] for history in histories]
        selected = [selected_so_far(history[:epoch_index + 1], rule) for history in histories]
        tune.report({**epoch_summary(records, selected), "fold_records": records, **extra})


def _continue_interrupted(context: TrialContext, job: TrainJob, relative: str,
                          run: LockstepRun | None) -> bool:
    """The units' epochs an interrupted run trained, reported again for this new trial, and
    (in-process) its state restored, so training goes on after its last checkpoint. False,
    with nothing reported, when that checkpoint is gone or unreadable: the trial starts over
    (with a fresh `run`, as a failed restore may have loaded some folds)."""
    try:
        with checkpoint_directory(context.storage, relative) as directory:
            outcome = outcome_from_checkpoint(directory)
            if run is not None:
                run.restore(directory)
    except Exception:  # noqa: BLE001  (the units are trained again from their first epoch)
        logger.warning("the checkpoint %s of an interrupted run cannot be read; its units "
                       "start over", relative, exc_info=True)
        return False
    report_history([outcome.histories[fold] for fold in sorted(outcome.histories)],
                   job.train.selection, {"parameters": outcome.description["parameters"]})
    return True


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    ignore_exit_while_collecting()
    # A node the autoscaler added after the study checked its nodes: refused with its name
    # before anything is written to a folder that would be its own.
    require_visible(Path(context.manifest).parent, "experiment folder")
    path = error_file(Path(context.experiment_dir), tune.get_context().get_trial_id())
    path.unlink(missing_ok=True)  # an earlier attempt's error is not this attempt's
    try:
        _train(trial_plan(config), context)
    except Exception:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(traceback.format_exc())
        raise


def ignore_exit_while_collecting() -> None:
    """The scheduler stops a pruned trial's process with SIGTERM, and Ray's handler raises
    SystemExit wherever the interpreter happens to be. Where Python cannot raise it (in a
    finalizer or a garbage-collection callback) it hands it to `sys.unraisablehook`, which
    printed an "Exception ignored ... SystemExit: 1" traceback on the study's console for
    pruned trials, reading like a failure. An unraisable SystemExit is dropped; every other
    unraisable exception goes to the hook installed before. Installing twice adds nothing."""
    previous = sys.unraisablehook
    if getattr(previous, IGNORES_EXIT, False):
        return

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, SystemExit):
            previous(unraisable)

    setattr(hook, IGNORES_EXIT, True)
    sys.unraisablehook = hook


def hide_gpus_without_request(gpus: float, device: str) -> None:
    """A process that asked Ray for no GPU sees none: Ray no longer hides them from it, and
    `device: auto` would otherwise train every such trial on the node's first GPU, which Ray
    has given to another trial. Called before anything initialises CUDA."""
    if gpus:
        return
    if device == "cuda":
        raise UserError("train.device is 'cuda' but resources.gpus is 0: ask for GPUs "
                        "(resources.gpus) or use device 'auto' or 'cpu'")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""


def _train(plan: TrialPlan, context: TrialContext) -> None:
    quiet_report_logs()
    job = build_job(context, plan)
    if context.replay_recorded and _replay_recorded(context, plan):
        return
    resources = context.resources
    hide_gpus_without_request(resources.gpus, job.train.device)
    earlier = context.resume_from.get(plan.unit_group)
    if resources.workers > 1:
        if earlier is not None and not _continue_interrupted(context, job, earlier, run=None):
            earlier = None
        train_folds_on_ray(
            job, storage_path=storage_child(context.storage, TRAIN_DIR),
            name=f"train-{tune.get_context().get_trial_id()}", workers=resources.workers,
            gpus=resources.gpus, cpus_per_worker=resources.cpus,
            max_failures=context.retries, request_memory=context.request_memory,
            resume_from=_stored_checkpoint(context.storage, earlier) if earlier else None,
            callbacks=[TuneReportCallback()])
        return
    torch.set_num_threads(max(1, int(resources.cpus)))
    run = LockstepRun(job)
    retried = tune.get_checkpoint()  # this trial's own, when Tune retries it
    if retried is not None:
        with retried.as_directory() as directory:
            run.restore(Path(directory))
    elif earlier is not None and not _continue_interrupted(context, job, earlier, run):
        run = LockstepRun(job)  # the units' trial of a run whose driver died, unreadable

    def report(records: list[Record], directory: Path) -> None:
        tune.report({**epoch_summary(records, run.selected_so_far()),
                     "parameters": run.trainers[0].parameters,
                     "fold_records": records},
                    checkpoint=tune.Checkpoint.from_directory(directory))

    run.train(report)


def _stored_checkpoint(storage: str, relative: str) -> ray.train.Checkpoint:
    store, root = filesystem(storage)
    return ray.train.Checkpoint(path=posixpath.join(root, relative), filesystem=store)
