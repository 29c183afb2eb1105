"""The driver's ledger writer: each ended trial's units into the ledger, once.

It collects every trial's per-epoch fold records, writes the trial's units (one per fold) to
the ledger when the trial finishes, is pruned or fails for good, and calls the progress hook
(the CLI's refreshes progress.md). A trial that replayed a recorded configuration is listed in
the replays file instead: its units are the recorded ones, and a second row would stand for a
training that never ran. It knows trials by id and plan only; Tune's callback
(`ser_ray.study.tune_run.LedgerCallback`) hands it their events.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pydantic

from ser_ray.experiment import (
    CheckpointRow,
    EpochRecord,
    ReplayRow,
    UnitRow,
    append_checkpoints,
    append_replays,
    append_units,
    read_ledger,
    recorded_units,
    trials_run,
)
from ser_ray.study.optuna_trials import OptunaTrials
from ser_ray.study.storage import filesystem
from ser_ray.study.units import REPLAY_KEY, TrialPlan, error_file
from ser_ray.train.results import Record, selected_records

TRIAL_PREFIX = "trial_"
# What the caller does with the experiment folder: refresh a progress page, write a report.
FolderHook = Callable[[Path], Any]


class LedgerWriter:
    """Driver-side: every ended trial's units into the ledger, once."""

    def __init__(self, experiment_dir: Path, study_name: str, objective: str, epochs: int,
                 planned: int, storage: str, on_progress: FolderHook | None = None,
                 optuna_trials: OptunaTrials | None = None) -> None:
        self.experiment_dir = experiment_dir
        self.optuna_trials = optuna_trials
        self.plans: dict[str, TrialPlan] = {}
        self.study_name = study_name
        self.objective = objective
        self.epochs = epochs
        self.planned = planned
        self.on_progress = on_progress
        self.records: dict[str, dict[int, list[Record]]] = {}
        self.parameters: dict[str, int] = {}
        self.replay_of: dict[str, str] = {}
        # Multi-worker trials report their TorchTrainer's checkpoint with their metrics.
        self.train_checkpoints: dict[str, str] = {}
        self.storage_root = filesystem(storage)[1]
        self.names: dict[str, str] = {}
        self.done: set[str] = set()
        ledger = read_ledger(experiment_dir)
        self.recorded_units = recorded_units(ledger)
        trials = trials_run(experiment_dir, ledger)
        self.trials_done = len(trials)
        # After the highest number ever written: a trial killed mid-run left a gap, and
        # reusing its number would merge two configurations under one name.
        self.last_number = max((int(name.removeprefix(TRIAL_PREFIX))
                                for name in trials if _is_trial_name(name)), default=0)
        self.written = 0

    @property
    def recorded(self) -> int:
        return len(self.recorded_units)

    def started(self, trial_id: str, plan: TrialPlan, optuna_number: int | None = None) -> None:
        """A trial started: a search trial gets the next free name (and brings the number
        of its sampler's Optuna trial)."""
        if plan.variant is None and trial_id not in self.names:
            self.last_number += 1
            self.names[trial_id] = f"{TRIAL_PREFIX}{self.last_number:04d}"
        self.plans[trial_id] = plan
        self._to_optuna("started", trial_id, plan, optuna_number)

    def reported(self, trial_id: str, result: dict[str, Any],
                 train_checkpoint: str | None = None) -> None:
        """An epoch's result: its fold records (each replacing that epoch's, if reported),
        parameter count, the variant it replays, and (multi-worker trials) the path of its
        TorchTrainer's checkpoint."""
        per_fold = self.records.setdefault(trial_id, {})
        for record in result.get("fold_records", []):
            history = per_fold.setdefault(int(record["fold"]), [])
            # An epoch reported again (a retried trial trains again from its last checkpoint,
            # a resumed one reports what it continues) replaces that epoch alone.
            history[:] = sorted([r for r in history if r["epoch"] != record["epoch"]]
                                + [record], key=lambda r: r["epoch"])
        if "parameters" in result:
            self.parameters[trial_id] = int(result["parameters"])
        if REPLAY_KEY in result:
            self.replay_of[trial_id] = result[REPLAY_KEY]
        if train_checkpoint is not None:
            self.train_checkpoints[trial_id] = train_checkpoint
            self.checkpointed(trial_id, train_checkpoint)
        if trial_id in self.plans:
            plan = self.plans[trial_id]
            self._to_optuna("reported", trial_id, self._variant(trial_id, plan), plan, per_fold)

    def checkpointed(self, trial_id: str, path: str) -> None:
        """A running trial saved a checkpoint (at its last reported epoch): listed, so that a
        resume after the driver's death continues its units from there."""
        plan = self.plans.get(trial_id)
        epochs = [record["epoch"] for history in self.records.get(trial_id, {}).values()
                  for record in history]
        if plan is None or plan.configuration is None or not epochs \
                or trial_id in self.replay_of:
            return
        append_checkpoints(self.experiment_dir, [CheckpointRow(
            config_hash=plan.config_hash, seed=plan.seed, folds=plan.folds, epoch=max(epochs),
            checkpoint=posixpath.relpath(path, self.storage_root), trial_id=trial_id)])

    def trial_error(self, trial_id: str) -> str:
        """The traceback a failed trial left, or why none reached the driver."""
        path = error_file(self.experiment_dir, trial_id)
        return path.read_text() if path.is_file() else (
            "no traceback reached the driver: the trial's process was killed (e.g. out of "
            "memory) or its node does not share the experiment directory")

    def ended(self, trial_id: str, plan: TrialPlan, error: str | None,
              checkpoint: str | None) -> None:
        """A trial ended (failed when `error` is given) with its last checkpoint, if any: its
        units go into the ledger, once, whatever Tune calls after a failure in a callback."""
        if trial_id in self.done:
            return
        self.done.add(trial_id)
        if error is None and not self.records.get(trial_id):
            error = "the trial ended before it finished an epoch (e.g. the wall-time budget)"
        variant = self._variant(trial_id, plan)
        histories = self.records.pop(trial_id, {})
        if trial_id in self.replay_of:
            self._write_replay(trial_id, variant, plan, error)
            return
        path = checkpoint if checkpoint is not None else self.train_checkpoints.pop(trial_id,
                                                                                     None)
        relative = posixpath.relpath(path, self.storage_root) if path is not None else None
        rows = [self._unit_row(trial_id, variant, plan, fold, histories.get(fold, []), error,
                               relative) for fold in plan.folds]
        append_units(self.experiment_dir, rows)
        self.written += len(rows)
        self.recorded_units |= recorded_units(rows)
        scores = [score for row in rows
                  if (score := row.objective_score(self.objective)) is not None]
        score = sum(scores) / len(scores) if scores else math.nan
        print(f"[{self.recorded}/{self.planned} units] {variant} seed {plan.seed}: "
              f"{rows[0].status}, {self.objective} {score:.4f} over {len(scores)} folds",
              flush=True)
        self._to_optuna("ended", trial_id, variant, plan)
        self.refresh_progress()

    def _write_replay(self, trial_id: str, variant: str, plan: TrialPlan,
                      error: str | None) -> None:
        replayed = self.replay_of.pop(trial_id)
        append_replays(self.experiment_dir, [ReplayRow(
            variant=variant, trial_id=trial_id, config_hash=plan.config_hash,
            seed=plan.seed, replay_of=replayed, error=error, finished_at=_now())])
        print(f"{variant} repeats {replayed}: reported its recorded metrics, trained nothing"
              + (f", then failed: {error.strip().splitlines()[-1]}" if error else ""),
              flush=True)

    def _unit_row(self, trial_id: str, variant: str, plan: TrialPlan, fold: int,
                  history: list[Record], error: str | None, checkpoint: str | None) -> UnitRow:
        if error is None and not history:
            error = f"no epoch of fold {fold} reached the driver"
        base = {"study": self.study_name, "variant": variant, "config_hash": plan.config_hash,
                "configuration": plan.configuration,
                "unresolved_changes": plan.unresolved_changes,
                "factors": plan.factors, "seed": plan.seed, "fold": fold,
                "epochs_planned": self.epochs, "parameters": self.parameters.get(trial_id),
                "trial_id": trial_id, "checkpoint": checkpoint, "finished_at": _now()}
        try:
            return UnitRow(**base, **self._outcome(plan, fold, history, error))
        except pydantic.ValidationError as invalid:
            # Recorded as failed, with why, rather than ending the study in its callback.
            reason = f"the unit's record is invalid: {invalid}" + (f"\n{error}" if error else "")
            return UnitRow(**base, status="failed", error=reason, epochs_run=len(history))

    def _outcome(self, plan: TrialPlan, fold: int, history: list[Record],
                 error: str | None) -> dict[str, Any]:
        """How the unit ended: status, error, its epochs and the one its rule selects."""
        selected = None
        if history and plan.configuration is not None:
            selected = selected_records({fold: history},
                                        plan.configuration.train.selection)[fold]
        status = "failed" if error else ("finished" if len(history) >= self.epochs
                                         else "pruned")
        return {"status": status, "error": error, "epochs_run": len(history),
                "selected_epoch": selected["epoch"] if selected else None,
                "history": tuple(EpochRecord.model_validate(
                    {name: record[name] for name in EpochRecord.model_fields})
                    for record in history),
                "wall_time_s": sum(record["seconds"] for record in history)}

    def run_over(self) -> None:
        """The study's Tune run is over: Optuna trials still running are ended."""
        self._to_optuna("close")

    def _variant(self, trial_id: str, plan: TrialPlan) -> str:
        return plan.variant or self.names.get(trial_id, trial_id)

    def _to_optuna(self, event: str, *arguments: Any) -> None:
        """Hand a trial event to the Optuna trials; a dashboard never stops a study."""
        if self.optuna_trials is None:
            return
        try:
            getattr(self.optuna_trials, event)(*arguments)
        except Exception as error:  # noqa: BLE001
            print(f"Optuna study not updated ({event}): {error!r}", flush=True)

    def refresh_progress(self) -> None:
        if self.on_progress is None:
            return
        try:
            self.on_progress(self.experiment_dir)
        except Exception as error:  # noqa: BLE001  (a progress page never stops a study)
            print(f"progress not refreshed: {error!r}", flush=True)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _is_trial_name(name: str) -> bool:
    number = name.removeprefix(TRIAL_PREFIX)
    return name.startswith(TRIAL_PREFIX) and number.isdigit()
