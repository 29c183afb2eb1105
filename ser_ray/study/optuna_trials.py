"""The study's Optuna trials, one per configuration, kept live by the driver for
optuna-dashboard (`ser-ray monitor`).

A search's trials are its sampler's own: `ResolvingSearch` asks for them, reports the
objective after every epoch and ends them COMPLETE, PRUNED or FAIL. An ablation has no
sampler, so its trials are made here, one per variant, with its factor levels as parameters:
the variant's lowest seed reports the objective after every epoch (what a scheduler would
see), and the trial ends when the variant's last planned trial does, in the state and with
the score the study's ranking gives it. For both, what a reader needs rides along as user
attributes, set while the trial still runs: Tune hands every result, the last included, to
its callbacks before its searcher ends the trial.

One writer: the driver's ledger writer calls this; no worker opens the SQLite file.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from ser_ray.experiment import load_experiment, objective_split, ranking
from ser_ray.experiment.ranking import trial_status
from ser_ray.experiment.study_record import Objective
from ser_ray.study.space import open_storage
from ser_ray.study.units import TrialPlan
from ser_ray.train.results import Record, selected_records

# The config key under which a search trial carries its Optuna trial's number.
OPTUNA_TRIAL_KEY = "optuna_trial"
OPTIMISTIC_CONFIGURATION = "OPTIMISTIC: configuration selected on the test folds"
STATES = {"finished": optuna.trial.TrialState.COMPLETE,
          "pruned": optuna.trial.TrialState.PRUNED, "failed": optuna.trial.TrialState.FAIL}


class OptunaTrials:
    """Driver-side: the Optuna trial of every configuration, and what a reader needs on it."""

    def __init__(self, experiment_dir: Path, optuna_file: Path, study_name: str,
                 objective: Objective, epochs: int, ablation_plans: Sequence[TrialPlan] = (),
                 factors: dict[str, list[str]] | None = None,
                 continue_interrupted: bool = False) -> None:
        self.experiment_dir = experiment_dir
        self.factors = factors or {}
        self.objective = objective
        self.epochs = epochs
        self.storage = open_storage(optuna_file, study_name, continue_interrupted)
        self.study = optuna.create_study(
            storage=self.storage, study_name=study_name,
            direction="maximize" if objective.maximise else "minimize",
            sampler=optuna.samplers.RandomSampler(), load_if_exists=True)
        # An ablation variant's Optuna trial ends with the last of its planned Tune trials.
        self.trials_left = Counter(plan.config_hash for plan in ablation_plans)
        self.lowest_seed = {plan.config_hash: min(p.seed for p in ablation_plans
                                                  if p.config_hash == plan.config_hash)
                            for plan in ablation_plans}
        self.open: dict[str, optuna.Trial] = {}
        self.of_trial: dict[str, optuna.Trial] = {}
        # A resumed or extended ablation opens a new trial for a variant it trains again:
        # Optuna cannot reopen a finished trial, so the new one names those it supersedes.
        self.earlier: dict[str, list[int]] = {}
        for trial in self.study.get_trials(deepcopy=False):
            if "variant" in trial.user_attrs:
                self.earlier.setdefault(trial.user_attrs["variant"], []).append(trial.number)

    def started(self, trial_id: str, plan: TrialPlan, optuna_number: int | None) -> None:
        """A Tune trial started: find a search trial's Optuna trial, or open the variant's."""
        if optuna_number is not None:
            self.of_trial[trial_id] = optuna.Trial(self.study, self._trial_id(optuna_number))
            return
        if plan.config_hash not in self.trials_left:
            return
        if plan.config_hash not in self.open:
            self.study.enqueue_trial(plan.factors)
            trial = self.study.ask({
                factor: optuna.distributions.CategoricalDistribution(
                    self.factors.get(factor, [level]))
                for factor, level in plan.factors.items()})
            if plan.variant in self.earlier:
                trial.set_user_attr("supersedes", self.earlier[plan.variant])
            self.open[plan.config_hash] = trial
        self.of_trial[trial_id] = self.open[plan.config_hash]

    def reported(self, trial_id: str, variant: str, plan: TrialPlan,
                 histories: dict[int, list[Record]]) -> None:
        """An epoch ended: the configuration's per-fold objective so far and, for an
        ablation variant, the fold mean as the epoch's intermediate value (its lowest seed's
        trial speaks for it while it runs)."""
        trial = self.of_trial.get(trial_id)
        if trial is None or plan.configuration is None or not histories \
                or plan.seed != self.lowest_seed.get(plan.config_hash, plan.seed):
            return
        scores = self._fold_scores(histories, plan.configuration.train.selection)
        epoch = min(len(history) for history in histories.values())
        attributes = {"variant": variant, "epochs_run": epoch, "fold_scores": scores,
                      "units_finished": len(scores) if epoch >= self.epochs else 0,
                      **self._about(plan)}
        for key, value in attributes.items():
            trial.set_user_attr(key, value)
        if plan.config_hash in self.open:
            trial.report(float(np.mean(list(scores.values()))), epoch)

    def ended(self, trial_id: str, variant: str, plan: TrialPlan) -> None:
        """A Tune trial ended; an ablation variant's Optuna trial ends with its last one, as
        the study's ranking of the ledger has it."""
        self.of_trial.pop(trial_id, None)
        if plan.config_hash not in self.open:
            return
        self.trials_left[plan.config_hash] -= 1
        if self.trials_left[plan.config_hash] > 0:
            return
        trial = self.open.pop(plan.config_hash)
        experiment = load_experiment(self.experiment_dir)
        rows = experiment.rows_of(variant)
        finished = [row for row in rows if row.status == "finished"]
        trial.set_user_attr("variant", variant)
        trial.set_user_attr("units_finished", len(finished))
        trial.set_user_attr("fold_scores", _mean_per_fold(
            [(row.fold, row.objective_score(self.objective.metric)) for row in finished]))
        if plan.configuration is not None:
            for key, value in self._about(plan).items():
                trial.set_user_attr(key, value)
        trial.set_user_attr("units_failed", sum(row.status == "failed" for row in rows))
        ranked = next((entry for entry in ranking(experiment) if entry.variant == variant),
                      None)
        # A ranked variant is COMPLETE with its ranking score even when a unit failed (the
        # report ranks it too); an unranked one ends as its units did.
        if ranked is not None:
            self.study.tell(trial, ranked.mean)
            return
        state = STATES[trial_status(experiment, variant)]
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL
                        if state == optuna.trial.TrialState.COMPLETE else state)

    def close(self) -> None:
        """The trials still RUNNING once the study's Tune run is over will never end (cut by
        budget.wall_time_s, which ends trials without telling anyone): FAIL, as a resume
        would mark them."""
        for trial in self.study.get_trials(deepcopy=False,
                                           states=(optuna.trial.TrialState.RUNNING,)):
            self.storage.set_trial_state_values(self._trial_id(trial.number),
                                                optuna.trial.TrialState.FAIL)
        self.open.clear()
        self.of_trial.clear()

    def _fold_scores(self, histories: dict[int, list[Record]], rule: str) -> dict[str, float]:
        split, name = objective_split(self.objective.metric)
        return {str(fold): float(record[split][name]) if record.get(split) else math.nan
                for fold, record in sorted(selected_records(histories, rule).items())}

    def _about(self, plan: TrialPlan) -> dict[str, Any]:
        assert plan.configuration is not None
        attributes = {"objective": self.objective.metric,
                      "selection_rule": plan.configuration.train.selection,
                      "changes": plan.changes}
        if self.objective.split == "test":
            attributes["optimistic"] = OPTIMISTIC_CONFIGURATION
        return attributes

    def _trial_id(self, number: int) -> int:
        study_id = self.storage.get_study_id_from_name(self.study.study_name)
        return self.storage.get_trial_id_from_study_id_trial_number(study_id, number)


def _mean_per_fold(scores: list[tuple[int, float | None]]) -> dict[str, float]:
    per_fold: dict[int, list[float]] = {}
    for fold, score in scores:
        if score is not None:
            per_fold.setdefault(fold, []).append(score)
    return {str(fold): float(np.mean(values)) for fold, values in sorted(per_fold.items())}
