"""`ser-ray search --dry-run`: what a study would run, checked and counted, running nothing."""

from __future__ import annotations

import os

import torch

from ser_ray import models
from ser_ray.errors import UserError
from ser_ray.experiment import scheduler_text
from ser_ray.study.design import check_study
from ser_ray.study.schema import ResourceAmounts, Scheduler, StudyConfig, TrialMemory
from ser_ray.study.storage import storage_child

IEMOCAP_SESSIONS = 5


def fold_count(study: StudyConfig) -> int | None:
    """Folds the protocol will make, when knowable before the scan."""
    protocol, synthetic = study.protocol, study.corpus.synthetic
    if protocol.k is not None:
        return protocol.k * protocol.repeats
    if protocol.kind == "session":
        return synthetic.sessions if synthetic else (
            IEMOCAP_SESSIONS if study.corpus.reader == "iemocap" else None)
    if protocol.kind == "speaker" and synthetic is not None:
        return synthetic.sessions * synthetic.speakers_per_session
    return None


def _unreachable_racing(scheduler: Scheduler, folds: int) -> list[str]:
    """What keeps fold racing from ever stopping a trial with this many folds."""
    lines = []
    if 2.0 ** -folds > scheduler.alpha:
        lines.append(f"  racing stops no trial: with {folds} folds the smallest one-sided "
                     f"p-value is {2.0 ** -folds:.3g}, above alpha {scheduler.alpha:g}")
    if scheduler.min_folds_worse > folds:
        lines.append(f"  racing stops no trial: min_folds_worse {scheduler.min_folds_worse} "
                     f"exceeds the {folds} folds")
    return lines


def describe_plan(study: StudyConfig) -> str:
    variants = check_study(study)
    folds = fold_count(study)
    if study.search is not None:
        configurations = study.planned_trials
        scheduler = study.search.scheduler
        what = [f"search: {configurations} trials, sampler {study.search.sampler}, scheduler "
                f"{scheduler_text(scheduler.settings())}"]
        if scheduler.kind == "racing" and folds is not None:
            what += _unreachable_racing(scheduler, folds)
        what += [f"  {name}: {parameter.model_dump(exclude_defaults=True)}"
                 for name, parameter in study.search.parameters.items()]
    else:
        assert study.ablation is not None
        configurations = len(variants)
        what = [f"ablation ({study.ablation.design}): {configurations} variants"]
        for variant in variants:
            configuration = variant.configuration
            parameters = models.count_parameters(models.build(
                configuration.family, len(study.selection.labels),
                **configuration.model_options))
            what.append(f"  {variant.name}: {configuration.changes or '(the baseline)'} — "
                        f"{parameters:,} parameters")
    resources = study.resources
    cpus, gpus = os.cpu_count() or 1, torch.cuda.device_count()
    try:
        # Memory is left out: what a trial needs is known once its features are.
        machine = ResourceAmounts(cpus=cpus, gpus=gpus, memory=0)
        here = (f"{resources.concurrent_trials([machine], TrialMemory())} trial(s) at once on "
                f"this machine's {cpus} CPUs and {gpus} GPUs, memory permitting")
    except UserError:
        here = f"too big for this machine ({cpus} CPUs, {gpus} GPUs): run it on a cluster"
    lines = [f"study {study.name!r}: valid", *what,
             f"corpus: {study.corpus.reader}"
             f" ({'synthetic' if study.corpus.synthetic else study.corpus.root}); classes "
             f"{', '.join(study.selection.labels)}; protocol {study.protocol.kind}"]
    if folds is None:
        lines.append(f"units: {configurations} configurations × folds (one per "
                     f"{study.protocol.kind}, known after the scan) × {study.seeds} seeds")
    else:
        units = configurations * folds * study.seeds
        lines += [f"units: {configurations} configurations × {folds} folds × {study.seeds} "
                  f"seeds = {units}",
                  f"budget: at most {units * study.budget.epochs:,} fold-epochs "
                  f"({study.budget.epochs} epochs per unit)"
                  + (f", wall time ≤ {study.budget.wall_time_s:g} s"
                     if study.budget.wall_time_s else "")]
    lines.append(f"resources per trial: {resources.workers} worker(s) × {resources.cpus:g} CPU, "
                 f"{resources.gpus:g} GPU; {here}")
    storage = storage_child(study.storage_path, study.name) if study.storage_path else "--out DIR"
    lines.append(f"trial results and checkpoints: {storage}")
    return "\n".join(lines)

