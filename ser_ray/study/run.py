"""Running a study: one driver per experiment directory, data prepared once, the study record
written, and only the units the ledger lacks sent to Ray Tune.

The ledger is the study's memory: `ser-ray resume DIR` and an extended study run only the
units it lacks. The Optuna study lives in `DIR/optuna.db` (open it with `optuna-dashboard
sqlite:///DIR/optuna.db`), Tune's results, TensorBoard logs and checkpoints in the trial
storage (`DIR/tune/` unless the study sets `storage_path`; see `ser_ray.study.storage`).
Rendering is the caller's: the study stage writes the folder's records only, calls
`on_progress` (e.g. the report's progress page) as units are recorded and `on_finish` (e.g.
the report) once every unit of the run is, before the best model is exported.
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ser_ray.errors import UserError
from ser_ray.experiment import (
    OPTUNA_FILE,
    STUDY_FILE,
    latest_checkpoints,
    read_ledger,
    read_replays,
    read_study_record,
    write_study_record,
)
from ser_ray.study.best import MissingCheckpoint, export_best_model
from ser_ray.study.cluster import check_cluster_storage, join_cluster
from ser_ray.study.cluster_shape import ClusterShape
from ser_ray.study.design import Variant, check_study
from ser_ray.study.ledger_writer import FolderHook, LedgerWriter
from ser_ray.study.optuna_trials import OptunaTrials
from ser_ray.study.prepare import prepare_study, study_cache_root
from ser_ray.study.record import study_record
from ser_ray.study.schema import StudyConfig, load_study
from ser_ray.study.storage import filesystem, trial_storage
from ser_ray.study.trial import TrialContext
from ser_ray.study.tune_run import (
    PlaceablePlans,
    ablation_space,
    fit,
    memory_requests,
    optuna_search,
    wall_time_left,
)
from ser_ray.study.units import (
    SearchPlans,
    TrialPlan,
    missing_ablation_plans,
    remaining_trials,
)

STUDY_YAML = "study.yaml"
LOCK_FILE = ".driver.lock"


@dataclass(frozen=True)
class StudyResult:
    experiment_dir: Path
    units_planned: int
    units_recorded: int
    units_run: int
    report: Path | None
    best_model: Path | None



def run_study(study_path: Path, experiment_dir: Path, cache_root: Path | None = None,
              study: StudyConfig | None = None, on_progress: FolderHook | None = None,
              on_finish: FolderHook | None = None) -> StudyResult:
    """Run (or continue) the study of `study_path` in `experiment_dir`."""
    study = study or load_study(study_path)
    experiment_dir = experiment_dir.expanduser().resolve()
    # Resolved once per run: the study record, the trials and the ledger rows share these.
    variants = check_study(study)
    _refuse_other_formats(experiment_dir)  # before the directory gets as much as a lock file
    experiment_dir.mkdir(parents=True, exist_ok=True)
    with _only_driver(experiment_dir):
        _claim_directory(study, study_path, experiment_dir)
        return _run(study, experiment_dir, variants, cache_root, on_progress, on_finish)


def resume_study(experiment_dir: Path, cache_root: Path | None = None,
                 on_progress: FolderHook | None = None,
                 on_finish: FolderHook | None = None) -> StudyResult:
    """Continue a study from its directory: only the units its ledger lacks are run."""
    study_yaml = Path(experiment_dir) / STUDY_YAML
    if not study_yaml.is_file():
        raise UserError(f"{experiment_dir} is not a study directory (no {STUDY_YAML}); start "
                        f"one with `ser-ray search FILE.yaml --out {experiment_dir}`")
    return run_study(study_yaml, Path(experiment_dir), cache_root, on_progress=on_progress,
                     on_finish=on_finish)


@contextlib.contextmanager
def _only_driver(experiment_dir: Path) -> Iterator[None]:
    """One driver per experiment directory: two would run the same missing units twice."""
    with (experiment_dir / LOCK_FILE).open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise UserError(f"another ser-ray process is running the study in "
                            f"{experiment_dir}; wait for it to end or stop it") from error
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(study: StudyConfig, experiment_dir: Path, variants: list[Variant],
         cache_root: Path | None, on_progress: FolderHook | None,
         on_finish: FolderHook | None) -> StudyResult:
    storage = trial_storage(study.storage_path, study.name, experiment_dir)
    filesystem(storage)  # an unusable storage_path fails now, not after the data is prepared
    cache_root = study_cache_root(study, cache_root)
    shape = join_cluster()
    # Before any feature is computed on another node: what every node must share, shared.
    check_cluster_storage(shape, _shared_paths(experiment_dir, cache_root, storage),
                          study.corpus.root)
    prepared = prepare_study(study, experiment_dir, cache_root)
    record = study_record(study, prepared, variants, storage)
    write_study_record(experiment_dir, record)
    ledger = LedgerWriter(experiment_dir, study.name, study.objective.metric,
                          study.budget.epochs, record.planned_units, storage, on_progress)
    plans = missing_ablation_plans(record.variants, record.seeds, record.folds,
                                   ledger.recorded_units) if study.ablation is not None else []
    # Made once the ledger says which ablation plans remain: a variant's trial ends with them.
    ledger.optuna_trials = _optuna_trials(study, experiment_dir, plans, dict(record.factors))
    if study.ablation is not None:
        remaining = len(plans)
        print(f"{remaining} trials to run ({ledger.recorded} of {ledger.planned} units "
              f"already in the ledger)", flush=True)
    else:
        remaining = remaining_trials(record.search.trials,  # type: ignore[union-attr]
                                     ledger.trials_done)
        print(f"{remaining} trials to run ({ledger.trials_done} already in the ledger)",
              flush=True)
    if remaining:
        shape = join_cluster()  # again: the nodes may have changed while features were made
        context = TrialContext(
            manifest=str(prepared.manifest), folds=str(prepared.folds),
            caches={name: str(path) for name, path in prepared.caches.items()},
            experiment_dir=str(experiment_dir), storage=storage, resources=study.resources,
            replay_recorded=study.search is not None, request_memory=memory_requests(shape),
            retries=study.budget.retries, resume_from=latest_checkpoints(experiment_dir))
        if study.ablation is not None:
            _fit(study, experiment_dir, context, ledger, shape, num_samples=1,
                 param_space=ablation_space(plans), plans=plans)
        else:
            sampled = PlaceablePlans(SearchPlans(study, prepared.data, prepared.fold_indices),
                                     context, shape.node_types)
            _fit(study, experiment_dir, context, ledger, shape, num_samples=remaining,
                 search_alg=optuna_search(study, experiment_dir / OPTUNA_FILE, sampled),
                 memory=sampled.memory)
    ledger.run_over()
    ledger.refresh_progress()
    report = on_finish(experiment_dir) if on_finish is not None else None
    return StudyResult(experiment_dir, ledger.planned, ledger.recorded, ledger.written,
                       report, _best_model(experiment_dir))


def _shared_paths(experiment_dir: Path, cache_root: Path, storage: str) -> dict[str, Path]:
    """The folders every node reads or writes: the experiment folder (prepared data, ledger,
    errors), the feature cache, and the trial storage when it is a local folder."""
    paths = {"experiment folder (--out)": experiment_dir, "feature cache (--cache)": cache_root}
    address = urllib.parse.urlsplit(storage)
    local = Path(address.path) if address.scheme in ("", "file") else None
    if local is not None and local != experiment_dir:
        paths["trial storage (storage_path)"] = local
    return paths


def _optuna_trials(study: StudyConfig, experiment_dir: Path, plans: list[TrialPlan],
                   factors: dict[str, list[str]]) -> OptunaTrials | None:
    """The study's Optuna trials for the dashboard, or None when its SQLite file cannot be
    opened (e.g. a shared mount without file locking): the study runs without them."""
    try:
        return OptunaTrials(experiment_dir, experiment_dir / OPTUNA_FILE, study.name,
                            study.objective, study.budget.epochs, plans, factors,
                            continue_interrupted=study.search is not None)
    except Exception as error:  # noqa: BLE001  (a dashboard never stops a study)
        print(f"no Optuna study for the dashboard: {error!r}", flush=True)
        return None


def _fit(study: StudyConfig, experiment_dir: Path, context: TrialContext,
         ledger: LedgerWriter, shape: ClusterShape, num_samples: int, **trials: Any) -> None:
    time_left = wall_time_left(study, experiment_dir)
    if time_left is not None and time_left <= 0:
        print(f"budget.wall_time_s ({study.budget.wall_time_s:g} s) is spent: earlier runs "
              f"used {study.budget.wall_time_s - time_left:.0f} s; raise it to run the "
              f"remaining trials", flush=True)
        return
    fit(study, experiment_dir, context, ledger, shape, num_samples, time_left, **trials)


def _best_model(experiment_dir: Path) -> Path | None:
    """The best configuration's predictor; a missing checkpoint is said, not papered over
    with another configuration's (the ledger and report stand either way)."""
    try:
        return export_best_model(experiment_dir)
    except MissingCheckpoint as error:
        print(f"best model NOT exported: {error}", file=sys.stderr, flush=True)
        return None


def _claim_directory(study: StudyConfig, study_path: Path, experiment_dir: Path) -> None:
    """A directory holds one study: the same data and design may grow (more trials, levels,
    seeds), anything else is refused instead of mixing two studies' units."""
    saved = experiment_dir / STUDY_YAML
    if saved.is_file() and saved.resolve() != Path(study_path).resolve():
        previous = load_study(saved)
        # storage_path too: the ledger locates checkpoints relative to the trial storage.
        fixed = ("corpus", "selection", "protocol", "objective", "storage_path")
        changed = [name for name in fixed
                   if getattr(previous, name) != getattr(study, name)]
        if previous.design != study.design:
            changed.append("design")
        if changed:
            raise UserError(f"{experiment_dir} holds a study with other {', '.join(changed)}; "
                            f"extend a study only with more trials, levels or seeds, or "
                            f"use another --out")
    if not saved.is_file() or saved.resolve() != Path(study_path).resolve():
        # The validated study, overrides applied and paths absolute: what resume reruns.
        saved.write_text(yaml.safe_dump(study.model_dump(mode="json", exclude_none=True),
                                        sort_keys=False))


def _refuse_other_formats(experiment_dir: Path) -> None:
    """Records of another format are refused before anything is added to them."""
    if (experiment_dir / STUDY_FILE).is_file():
        read_study_record(experiment_dir)
    read_ledger(experiment_dir)
    read_replays(experiment_dir)
