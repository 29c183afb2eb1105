"""`ser-ray search --dry-run`: what a study would run, checked and counted, running nothing."""

from __future__ import annotations

import math
import os

from ser_ray import models
from ser_ray.study.design import check_study, resolve
from ser_ray.study.schema import StudyConfig

IEMOCAP_SESSIONS = 5


def fold_count(study: StudyConfig) -> int | None:
    """Folds the protocol will make, when knowable before the scan."""
    protocol, synthetic = study.protocol, study.corpus.synthetic
    if protocol.k is not None:
        return protocol.k
    if protocol.kind == "session":
        return synthetic.sessions if synthetic else (
            IEMOCAP_SESSIONS if study.corpus.reader == "iemocap" else None)
    if protocol.kind == "speaker" and synthetic is not None:
        return synthetic.sessions * synthetic.speakers_per_session
    return None


def describe_plan(study: StudyConfig) -> str:
    variants = check_study(study)
    folds = fold_count(study)
    if study.search is not None:
        configurations = study.budget.trials or study.search.grid_size()
        what = [f"search: {configurations} trials, sampler {study.search.sampler}, scheduler "
                f"{study.search.scheduler.kind}"]
        what += [f"  {name}: {parameter.model_dump(exclude_defaults=True)}"
                 for name, parameter in study.search.parameters.items()]
    else:
        assert study.ablation is not None
        configurations = len(variants)
        what = [f"ablation ({study.ablation.design}): {configurations} variants"]
        for variant in variants:
            configuration = resolve(study, variant.changes)
            parameters = models.count_parameters(models.build(
                models.family(configuration.model), len(study.selection.labels),
                **{**_preset_options(configuration.model), **configuration.model_options}))
            what.append(f"  {variant.name}: {variant.changes or '(the baseline)'} — "
                        f"{parameters:,} parameters")
    resources = study.resources
    cpus = os.cpu_count() or 1
    per_trial = resources.cpus * resources.workers
    concurrency = resources.max_concurrent_trials or max(math.floor(cpus / per_trial), 1)
    lines = [f"study {study.name!r}: valid", *what,
             f"corpus: {study.corpus.reader}"
             f" ({'synthetic' if study.corpus.synthetic else study.corpus.root}); classes "
             f"{', '.join(study.selection.labels)}; protocol {study.protocol.kind}"]
    if folds is None:
        lines.append(f"units: {configurations} configurations × folds (one per speaker, "
                     f"known after the scan) × {study.seeds} seeds")
    else:
        units = configurations * folds * study.seeds
        lines += [f"units: {configurations} configurations × {folds} folds × {study.seeds} "
                  f"seeds = {units}",
                  f"budget: at most {units * study.budget.epochs:,} fold-epochs "
                  f"({study.budget.epochs} epochs per unit)"
                  + (f", wall time ≤ {study.budget.wall_time_s:g} s"
                     if study.budget.wall_time_s else "")]
    lines.append(f"resources per trial: {resources.workers} worker(s) × {resources.cpus:g} CPU, "
                 f"{resources.gpus:g} GPU; {concurrency} trial(s) at once on {cpus} CPUs here")
    return "\n".join(lines)


def _preset_options(model_name: str) -> dict:
    return models.get_preset(model_name).options if model_name in models.preset_names() else {}
