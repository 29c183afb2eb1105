"""Running a study on Ray Tune: ablation grids, Optuna searches with ASHA, and the ledger.

The ledger is the study's memory. A Tune callback in the driver appends every trial's units
(one per fold) when the trial finishes, is pruned, or fails for good; `ser-ray resume DIR`
and an extended study run only the units the ledger lacks. The Optuna study lives in
`DIR/optuna.db` (open it with `optuna-dashboard sqlite:///DIR/optuna.db`), Tune's results,
TensorBoard logs and checkpoints in the trial storage (`DIR/tune/` unless the study sets
`storage_path`; see `ser_ray.study.storage`), and `DIR/progress.md` is refreshed as units
finish. `budget.wall_time_s` spans runs: the Tune time each run uses is added up in
`DIR/wall_time.json`, and a resumed run gets what is left.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import posixpath
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
import ray
import yaml
from ray import tune
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.optuna import OptunaSearch

from ser_ray.errors import UserError
from ser_ray.ray_session import ensure_ray
from ser_ray.report import render_progress, write_report
from ser_ray.study.best import MissingCheckpoint, export_best_model
from ser_ray.study.design import (
    Configuration,
    Variant,
    ablation_variants,
    check_study,
    config_hash,
    resolve,
)
from ser_ray.study.ledger import (
    append_replays,
    append_units,
    read_ledger,
    recorded_units,
    trials_run,
)
from ser_ray.study.prepare import STUDY_FILE, STUDY_YAML, PreparedStudy, prepare_study
from ser_ray.study.schema import Parameter, StudyConfig, load_study
from ser_ray.study.storage import TUNE_DIR, filesystem, next_run_name, storage_child, trial_storage
from ser_ray.study.trial import (
    REPLAY_KEY,
    UNIT_KEY,
    TrialContext,
    TrialUnit,
    encode_choice,
    error_file,
    run_trial,
    trial_unit,
)
from ser_ray.train.results import selected_records

OPTUNA_FILE = "optuna.db"
LOCK_FILE = ".driver.lock"
PROGRESS_FILE = "progress.md"
TRIAL_PREFIX = "trial_"
WALL_TIME_FILE = "wall_time.json"
# How often the driver records the wall time used: a killed driver loses at most this much.
WALL_TIME_PERIOD_S = 10.0


@dataclass(frozen=True)
class StudyResult:
    experiment_dir: Path
    units_planned: int
    units_recorded: int
    units_run: int
    report: Path
    best_model: Path | None


def run_study(study_path: Path, experiment_dir: Path, cache_root: Path | None = None,
              study: StudyConfig | None = None) -> StudyResult:
    """Run (or continue) the study of `study_path` in `experiment_dir`."""
    study = study or load_study(study_path)
    experiment_dir = experiment_dir.expanduser().resolve()
    variants = check_study(study)
    experiment_dir.mkdir(parents=True, exist_ok=True)
    with _only_driver(experiment_dir):
        _claim_directory(study, study_path, experiment_dir)
        return _run(study, experiment_dir, variants, cache_root)


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
         cache_root: Path | None) -> StudyResult:
    storage = trial_storage(study.storage_path, study.name, experiment_dir)
    filesystem(storage)  # an unusable storage_path fails now, not after the data is prepared
    prepared = prepare_study(study, experiment_dir, variants, cache_root)
    description = {**prepared.description, "trial_storage": storage,
                   **_design_description(study, prepared, variants)}
    _write_description(experiment_dir, description)
    context = TrialContext(
        study_json=study.model_dump_json(), manifest=str(prepared.manifest),
        folds=str(prepared.folds), caches={k: str(v) for k, v in prepared.caches.items()},
        fold_indices=prepared.fold_indices, experiment_dir=str(experiment_dir),
        storage=storage, data_identity=prepared.data_identity)
    ledger = LedgerWriter(study, prepared, context, description["planned_units"])
    if study.ablation is not None:
        units = _missing_ablation_units(study, prepared, variants, ledger.recorded_units)
        print(f"{len(units)} trials to run ({ledger.recorded} of {ledger.planned} units "
              f"already in the ledger)", flush=True)
        if units:
            _fit(study, experiment_dir, context, ledger, param_space={
                UNIT_KEY: tune.grid_search(units)}, num_samples=1)
    else:
        remaining = _remaining_trials(study, ledger.trials_done)
        print(f"{remaining} trials to run ({ledger.trials_done} already in the ledger)",
              flush=True)
        if remaining:
            _fit(study, experiment_dir, context, ledger, num_samples=remaining,
                 search_alg=_optuna_search(study, experiment_dir))
    ledger.refresh_progress()
    return StudyResult(experiment_dir, ledger.planned, ledger.recorded, ledger.written,
                       write_report(experiment_dir), _best_model(experiment_dir))


def _best_model(experiment_dir: Path) -> Path | None:
    """The best configuration's predictor; a missing checkpoint is said, not papered over
    with another configuration's (the ledger and report stand either way)."""
    try:
        return export_best_model(experiment_dir)
    except MissingCheckpoint as error:
        print(f"best model NOT exported: {error}", file=sys.stderr, flush=True)
        return None


def resume_study(experiment_dir: Path, cache_root: Path | None = None) -> StudyResult:
    """Continue a study from its directory: only the units its ledger lacks are run."""
    study_yaml = Path(experiment_dir) / STUDY_YAML
    if not study_yaml.is_file():
        raise UserError(f"{experiment_dir} is not a study directory (no {STUDY_YAML}); start "
                        f"one with `ser-ray search FILE.yaml --out {experiment_dir}`")
    return run_study(study_yaml, Path(experiment_dir), cache_root)


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
        saved.write_text(_absolute_yaml(study))


def _absolute_yaml(study: StudyConfig) -> str:
    return yaml.safe_dump(study.model_dump(mode="json", exclude_none=True), sort_keys=False)


def _design_description(study: StudyConfig, prepared: PreparedStudy,
                        variants: list[Variant]) -> dict[str, Any]:
    selection = {"selection_rule": resolve(study, {}).train.selection}
    if study.search is not None:
        return {**selection, "variants": [], "search": {
            "trials": study.budget.trials or study.search.grid_size(),
            "sampler": study.search.sampler,
            "scheduler": study.search.scheduler.model_dump(),
            "space": {name: parameter.model_dump(exclude_none=True)
                      for name, parameter in study.search.parameters.items()},
            "optuna_storage": f"sqlite:///{prepared.experiment_dir / OPTUNA_FILE}",
            "optuna_study": study.name}}
    return {**selection, "variants": [{"name": variant.name, "factors": variant.factors,
                          "changes": variant.changes,
                          "config_hash": config_hash(resolve(study, variant.changes),
                                                     prepared.data_identity)}
                         for variant in variants]}


def _write_description(experiment_dir: Path, description: dict[str, Any]) -> None:
    path = experiment_dir / STUDY_FILE
    if path.is_file():
        # Keep when the study first started; everything else describes this run.
        description["started_at"] = json.loads(path.read_text()).get(
            "started_at", description["started_at"])
    path.write_text(json.dumps(description, indent=2, sort_keys=True, default=str))


def _missing_ablation_units(study: StudyConfig, prepared: PreparedStudy,
                            variants: list[Variant], done: set[tuple[str, int, int]]
                            ) -> list[dict[str, Any]]:
    units = []
    for variant in variants:
        digest = config_hash(resolve(study, variant.changes), prepared.data_identity)
        for seed in range(study.seeds):
            folds = [fold for fold in prepared.fold_indices if (digest, fold, seed) not in done]
            if folds:
                units.append({"variant": variant.name, "changes": variant.changes,
                              "seed": seed, "folds": folds})
    return units


def _remaining_trials(study: StudyConfig, trials_done: int) -> int:
    assert study.search is not None
    planned = study.budget.trials or study.search.grid_size()
    return max(planned - trials_done, 0)


def _optuna_search(study: StudyConfig, experiment_dir: Path) -> OptunaSearch:
    assert study.search is not None
    search = study.search
    storage = optuna.storages.RDBStorage(f"sqlite:///{experiment_dir / OPTUNA_FILE}")
    _fail_stale_trials(storage, study.name)
    if search.sampler == "tpe":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(
            seed=search.sampler_seed, n_startup_trials=search.n_startup_trials)
    elif search.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=search.sampler_seed)
    else:
        sampler = optuna.samplers.GridSampler(
            {name: [encode_choice(v) for v in parameter.grid_values() or ()]
             for name, parameter in search.parameters.items()}, seed=search.sampler_seed)
    return OptunaSearch(space=DefineByRun(search.parameters), metric=study.objective.metric,
                        mode=study.objective.mode, sampler=sampler, storage=storage,
                        study_name=study.name)


def _fail_stale_trials(storage: optuna.storages.BaseStorage, study_name: str) -> None:
    """Trials a killed driver left RUNNING would never finish; record them as failed."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return
    for trial in storage.get_all_trials(study_id, deepcopy=False):
        if trial.state == optuna.trial.TrialState.RUNNING:
            storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)


class DefineByRun:
    """Optuna define-by-run space (picklable, as Tune saves its searcher): a conditional
    parameter is sampled only when its parents took one of the values its `when` names."""

    def __init__(self, parameters: dict[str, Parameter]) -> None:
        self.parameters = parameters

    def __call__(self, trial: optuna.Trial) -> None:
        values: dict[str, Any] = {}
        for name, parameter in self.parameters.items():
            conditions = parameter.when or {}
            if all(_matches(values.get(parent), allowed)
                   for parent, allowed in conditions.items()):
                values[name] = _suggest(trial, name, parameter)


def _matches(value: Any, allowed: Any) -> bool:
    choices = allowed if isinstance(allowed, list) else [allowed]
    return any(value == encode_choice(choice) or value == choice for choice in choices)


def _suggest(trial: optuna.Trial, name: str, parameter: Parameter) -> Any:
    if parameter.type == "categorical":
        return trial.suggest_categorical(name, [encode_choice(c) for c in parameter.choices or ()])
    if parameter.type == "int":
        return trial.suggest_int(name, int(parameter.low), int(parameter.high),  # type: ignore
                                 step=int(parameter.step or 1), log=parameter.log)
    return trial.suggest_float(name, float(parameter.low), float(parameter.high),  # type: ignore
                               step=parameter.step, log=parameter.log)


def _fit(study: StudyConfig, experiment_dir: Path, context: TrialContext,
         ledger: LedgerWriter, num_samples: int, param_space: dict[str, Any] | None = None,
         search_alg: Any = None) -> None:
    clock = WallClock(experiment_dir)
    time_left = None
    if study.budget.wall_time_s is not None:
        time_left = study.budget.wall_time_s - clock.used_before
        if time_left <= 0:
            print(f"budget.wall_time_s ({study.budget.wall_time_s:g} s) is spent: earlier runs "
                  f"used {clock.used_before:.0f} s; raise it to run the remaining trials",
                  flush=True)
            return
    ensure_ray()  # here, not earlier: a study with nothing left to run needs no cluster
    resources = study.resources
    cluster = ray.cluster_resources()
    concurrency = resources.concurrent_trials(cluster.get("CPU", 0), cluster.get("GPU", 0))
    scheduler = FIFOScheduler()
    if study.search is not None and study.search.scheduler.kind == "asha":
        # Rungs count epochs, not reports: a retried TorchTrainer trial resumes at its last
        # epoch while Tune's iteration count starts again.
        scheduler = ASHAScheduler(
            metric=study.objective.metric, mode=study.objective.mode,
            time_attr="epoch", max_t=study.budget.epochs,
            grace_period=study.search.scheduler.grace_period,
            reduction_factor=study.search.scheduler.reduction_factor)
    trainable = tune.with_resources(tune.with_parameters(run_trial, context=context),
                                    resources.tune_request())
    tuner = tune.Tuner(
        trainable, param_space=param_space or {},
        tune_config=tune.TuneConfig(
            search_alg=search_alg, scheduler=scheduler, num_samples=num_samples,
            max_concurrent_trials=concurrency, reuse_actors=resources.workers == 1,
            time_budget_s=time_left,
            trial_dirname_creator=lambda trial: f"{TRIAL_PREFIX}{trial.trial_id}"),
        run_config=tune.RunConfig(
            name=next_run_name(context.storage),
            storage_path=storage_child(context.storage, TUNE_DIR),
            callbacks=[ledger, clock], verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            failure_config=tune.FailureConfig(max_failures=study.budget.retries)),
    )
    tuner.fit()


class WallClock(tune.Callback):
    """Adds this run's Tune time to the wall time earlier runs used, in WALL_TIME_FILE."""

    def __init__(self, experiment_dir: Path) -> None:
        self.path = experiment_dir / WALL_TIME_FILE
        self.used_before = json.loads(self.path.read_text())["used_s"] \
            if self.path.is_file() else 0.0
        self.started = time.monotonic()
        self.written = self.started

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self.written >= WALL_TIME_PERIOD_S:
            self._record()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._record()

    def _record(self) -> None:
        self.written = time.monotonic()
        used = self.used_before + self.written - self.started
        staged = self.path.with_suffix(".tmp")
        staged.write_text(json.dumps({"used_s": used}))
        os.replace(staged, self.path)  # whole or not at all, even under SIGKILL


class LedgerWriter(tune.Callback):
    """Driver-side: collects each trial's per-epoch fold records, writes its units to the
    ledger when it ends (finished, pruned or failed), and refreshes progress.md. A trial that
    replayed a recorded configuration is listed in the replays file instead: its units are
    the recorded ones, and a second row would stand for a training that never ran."""

    def __init__(self, study: StudyConfig, prepared: PreparedStudy, context: TrialContext,
                 planned: int) -> None:
        self.study = study
        self.prepared = prepared
        self.context = context
        self.planned = planned
        self.records: dict[str, dict[int, list[dict[str, Any]]]] = {}
        self.parameters: dict[str, int] = {}
        self.replay_of: dict[str, str] = {}
        # Multi-worker trials report their TorchTrainer's checkpoint with their metrics.
        self.train_checkpoints: dict[str, str] = {}
        self.storage_root = filesystem(context.storage)[1]
        self.factors = {variant.name: variant.factors for variant in
                        (ablation_variants(study.ablation) if study.ablation else [])}
        self.names: dict[str, str] = {}
        self.done: set[str] = set()
        ledger = read_ledger(prepared.experiment_dir)
        self.recorded_units = recorded_units(ledger)
        trials = trials_run(prepared.experiment_dir, ledger)
        self.trials_done = len(trials)
        # After the highest number ever written: a trial killed mid-run left a gap, and
        # reusing its number would merge two configurations under one name.
        self.last_number = max((int(name.removeprefix(TRIAL_PREFIX))
                                for name in trials if _is_trial_name(name)), default=0)
        self.written = 0

    @property
    def recorded(self) -> int:
        return len(self.recorded_units)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if UNIT_KEY not in trial.config and trial.trial_id not in self.names:
            self.last_number += 1
            self.names[trial.trial_id] = f"{TRIAL_PREFIX}{self.last_number:04d}"

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        per_fold = self.records.setdefault(trial.trial_id, {})
        for record in result.get("fold_records", []):
            history = per_fold.setdefault(int(record["fold"]), [])
            history[:] = [r for r in history if r["epoch"] < record["epoch"]] + [record]
        if "parameters" in result:
            self.parameters[trial.trial_id] = int(result["parameters"])
        if REPLAY_KEY in result:
            self.replay_of[trial.trial_id] = result[REPLAY_KEY]
        if CHECKPOINT_PATH_KEY in result:
            self.train_checkpoints[trial.trial_id] = result[CHECKPOINT_PATH_KEY]

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trial, error=None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        path = error_file(self.prepared.experiment_dir, trial.trial_id)
        error = path.read_text() if path.is_file() else (
            "no traceback reached the driver: the trial's process was killed (e.g. out of "
            "memory) or its node does not share the experiment directory")
        self._write(trial, error=error)

    def _write(self, trial: Any, error: str | None) -> None:
        # Once per trial, whatever Tune calls after a failure inside this callback.
        if trial.trial_id in self.done:
            return
        self.done.add(trial.trial_id)
        if error is None and not self.records.get(trial.trial_id):
            error = "the trial ended before it finished an epoch (e.g. the wall-time budget)"
        unit = trial_unit(trial.config, self.context.fold_indices)
        variant = unit.variant or self.names.get(trial.trial_id, trial.trial_id)
        configuration = resolve(self.study, unit.changes, seed=unit.seed)
        digest = config_hash(configuration, self.prepared.data_identity)
        histories = self.records.pop(trial.trial_id, {})
        if trial.trial_id in self.replay_of:
            self._write_replay(trial, variant, digest, unit.seed, error)
            return
        epochs = self.study.budget.epochs
        checkpoint = self._checkpoint(trial)
        rows = [self._unit_row(trial, variant, digest, unit, configuration, fold,
                               histories.get(fold, []), error, epochs, checkpoint)
                for fold in unit.folds]
        append_units(self.prepared.experiment_dir, rows)
        self.written += len(rows)
        self.recorded_units |= recorded_units(rows)
        finished = [row for row in rows if row["metrics"]]
        metric = self.study.objective.metric
        score = (sum(row["metrics"][metric] for row in finished) / len(finished)
                 if finished else float("nan"))
        print(f"[{self.recorded}/{self.planned} units] {variant} seed {unit.seed}: "
              f"{rows[0]['status']}, {metric} {score:.4f} over {len(finished)} folds",
              flush=True)
        self.refresh_progress()

    def _write_replay(self, trial: Any, variant: str, digest: str, seed: int,
                      error: str | None) -> None:
        replayed = self.replay_of.pop(trial.trial_id)
        append_replays(self.prepared.experiment_dir, [{
            "variant": variant, "trial_id": trial.trial_id, "config_hash": digest,
            "seed": seed, "replay_of": replayed, "error": error, "finished_at": _now()}])
        print(f"{variant} repeats {replayed}: reported its recorded metrics, trained nothing"
              + (f", then failed: {error.strip().splitlines()[-1]}" if error else ""),
              flush=True)

    def _checkpoint(self, trial: Any) -> str | None:
        """The trial's last checkpoint relative to the trial storage, if it saved one."""
        path = trial.checkpoint.path if trial.checkpoint is not None \
            else self.train_checkpoints.pop(trial.trial_id, None)
        return posixpath.relpath(path, self.storage_root) if path is not None else None

    def _unit_row(self, trial: Any, variant: str, digest: str, unit: TrialUnit,
                  configuration: Configuration, fold: int, history: list[dict[str, Any]],
                  error: str | None, epochs: int, checkpoint: str | None) -> dict[str, Any]:
        selection = configuration.train.selection
        chosen = selected_records({fold: history}, selection)[fold] if history else None
        status = "failed" if error else ("finished" if len(history) >= epochs else "pruned")
        return {
            "study": self.study.name, "variant": variant, "config_hash": digest,
            "config": unit.changes, "factors": self.factors.get(variant, {}), "seed": unit.seed,
            "fold": fold, "status": status, "error": error, "epochs_run": len(history),
            "epochs_planned": epochs, "selection": selection,
            "selected_epoch": chosen["epoch"] if chosen else None,
            "metrics": {name: chosen["test"][name] for name in
                        ("unweighted_accuracy", "weighted_accuracy", "ua_wa_mean",
                         "macro_f1")} if chosen else None,
            "per_class_recall": chosen["test"]["per_class_recall"] if chosen else None,
            "confusion_matrix": chosen["test"]["confusion_matrix"] if chosen else None,
            "label_names": list(chosen["test"]["per_class_recall"]) if chosen else None,
            "history": [_compact(record) for record in history],
            "parameters": self.parameters.get(trial.trial_id),
            "wall_time_s": sum(record["seconds"] for record in history),
            "trial_id": trial.trial_id, "checkpoint": checkpoint, "finished_at": _now(),
        }

    def refresh_progress(self) -> None:
        try:
            text = render_progress(self.prepared.experiment_dir)
        except Exception as error:  # noqa: BLE001  (a progress page never stops a study)
            print(f"progress.md not refreshed: {error!r}", flush=True)
            return
        (self.prepared.experiment_dir / PROGRESS_FILE).write_text(text)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _is_trial_name(name: str) -> bool:
    number = name.removeprefix(TRIAL_PREFIX)
    return name.startswith(TRIAL_PREFIX) and number.isdigit()


def _compact(record: dict[str, Any]) -> dict[str, Any]:
    return {"epoch": record["epoch"], "train_loss": record["train_loss"], "lr": record["lr"],
            "seconds": record["seconds"], "test": record["test"],
            "validation": record["validation"]}

