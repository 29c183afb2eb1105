"""The study record (study.json) of a run, built in one place before any trial starts: the
design and its configurations, the data as prepared, and the provenance of the numbers
(hardware, git commit, package versions)."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata as package_metadata
from pathlib import Path

from optuna.distributions import distribution_to_json

from ser_ray import models
from ser_ray.experiment import OPTUNA_FILE, config_hash, paper_training
from ser_ray.experiment.study_record import (
    Hardware,
    Reproduces,
    SearchedParameter,
    SearchRecord,
    StudyRecord,
    VariantRecord,
)
from ser_ray.study.design import Variant, selection_rule
from ser_ray.study.prepare import PreparedStudy
from ser_ray.study.schema import StudyConfig

PACKAGES = ("ser-ray", "ray", "torch", "optuna", "numpy", "pandas", "pyarrow", "librosa",
            "soundfile", "soxr", "scipy")


def study_record(study: StudyConfig, prepared: PreparedStudy, variants: list[Variant],
                 trial_storage: str) -> StudyRecord:
    """What study.json holds for this run of `study` on `prepared` data."""
    configurations = len(variants) if study.ablation is not None else study.planned_trials
    return StudyRecord(
        name=study.name, description=study.description, design=study.design,  # type: ignore
        objective=study.objective,
        # A factorial's baseline is its cell with every factor at the baseline level.
        baseline=variants[0].name if study.ablation is not None else None,
        factors={name: list(factor.levels) for name, factor in study.ablation.factors.items()}
        if study.ablation is not None else {},
        variants=tuple(VariantRecord(name=variant.name, factors=variant.factors,
                                     config_hash=config_hash(variant.configuration,
                                                             prepared.data),
                                     configuration=variant.configuration)
                       for variant in variants),
        search=_search_record(study, prepared.experiment_dir),
        seeds=tuple(range(study.seeds)), folds=prepared.fold_indices,
        epochs=study.budget.epochs,
        planned_units=configurations * len(prepared.fold_indices) * study.seeds,
        corpus=prepared.corpus, protocol=prepared.protocol,
        model=study.model.model_dump(mode="json"), training=study.train,
        paper_training={family: paper_training(family) for family in _families(study)},
        selection_rule=selection_rule(study), data=prepared.data,
        features=prepared.features, skipped=prepared.skipped,
        hardware=_hardware(), git_commit=_git_commit(), packages=_packages(),
        reproduces=Reproduces(**study.reproduces.model_dump()) if study.reproduces else None,
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        trial_storage=trial_storage)


def _search_record(study: StudyConfig, experiment_dir: Path) -> SearchRecord | None:
    if study.search is None:
        return None
    return SearchRecord(
        trials=study.planned_trials, sampler=study.search.sampler,
        scheduler=study.search.scheduler.settings(),
        space={name: SearchedParameter(distribution=distribution_to_json(
            parameter.distribution()), when=parameter.when)
            for name, parameter in study.search.parameters.items()},
        optuna_storage=f"sqlite:///{experiment_dir / OPTUNA_FILE}", optuna_study=study.name)


def _families(study: StudyConfig) -> list[str]:
    """Every model family the study's configurations can train."""
    names = {study.model.name}
    if study.search is not None and "model.name" in study.search.parameters:
        names |= set(study.search.parameters["model.name"].choices or ())
    if study.ablation is not None:
        names |= {changes["model.name"] for factor in study.ablation.factors.values()
                  for changes in factor.levels.values() if "model.name" in changes}
        names |= {changes["model.name"] for changes in study.ablation.variants.values()
                  if "model.name" in changes}
    return sorted({models.family(name) for name in names})


def _hardware() -> Hardware:
    import torch

    gpus = tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return Hardware(cpus=os.cpu_count(), gpus=gpus,
                    platform=f"{platform.system()} {platform.machine()}, Python "
                             f"{platform.python_version()}")


def _git_commit() -> str | None:
    """HEAD of the checkout ser_ray runs from, marked when tracked files differ from it (the
    numbers then come from code no commit holds)."""
    head = _git("rev-parse", "HEAD")
    if head is None or head.returncode != 0 or not head.stdout.strip():
        return None
    changed = _git("diff", "--quiet", "HEAD")
    dirty = changed is not None and changed.returncode == 1
    return head.stdout.strip() + (" + uncommitted changes" if dirty else "")


def _git(*arguments: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(["git", *arguments], cwd=Path(__file__).parent,
                              capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None


def _packages() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            continue
    return versions
