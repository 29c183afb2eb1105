"""Search tables: every trial, the top trials in the experiment's ranking, the trials that
replayed a recorded configuration, the optimisation history and fANOVA parameter importance.

Trials are ranked by the objective; when it is a validation metric each trial also carries
its test score in the same metric, the number a chosen configuration is reported with.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ser_ray.experiment import Experiment, encode_choice
from ser_ray.experiment.ranking import ranking, trial_status, variant_order
from ser_ray.report.stats import mean_sd
from ser_ray.report.units import PERCENT, parameter_count, unit_frame, variant_changes

TOP_K = 10
# fANOVA fits a random forest of the objective on the parameters; like any regression it
# needs about ten observations per predictor before the split it credits to a parameter is
# more than which few trials happened to be sampled.
TRIALS_PER_IMPORTANCE_PARAMETER = 10


def search_space(experiment: Experiment) -> list[str]:
    """The searched parameters, in the study's order."""
    search = experiment.study.search
    return list(search.space) if search is not None else []


def search_trials(experiment: Experiment) -> pd.DataFrame:
    """One row per trial: status (failed > pruned > finished over its units), objective mean
    and sd (%) over its scored units, the test score in the objective's metric (`test_mean`,
    `test_sd`; the same as the objective's when that is a test metric), epochs run,
    parameter count, and the sampled values."""
    space = search_space(experiment)
    units = unit_frame(experiment)
    changes = variant_changes(experiment)
    test_metric = experiment.test_metric
    records = []
    for variant in variant_order(experiment):
        own = units[units["variant"] == variant]
        mean, sd = mean_sd(own[experiment.objective].astype(float) * PERCENT)
        test_mean, test_sd = mean_sd(own[test_metric].astype(float) * PERCENT)
        records.append({"variant": variant, "status": trial_status(experiment, variant),
                        "units": len(own), "objective_mean": mean, "objective_sd": sd,
                        "test_mean": test_mean, "test_sd": test_sd,
                        "epochs_run": own["epochs_run"].max(),
                        "parameters": parameter_count(own["parameters"]),
                        **{name: changes[variant].get(name) for name in space}})
    return pd.DataFrame.from_records(records, columns=[
        "variant", "status", "units", "objective_mean", "objective_sd", "test_mean", "test_sd",
        "epochs_run", "parameters", *space])


def top_trials(experiment: Experiment, k: int = TOP_K) -> pd.DataFrame:
    """The k best finished trials in the experiment's ranking, ranked from 1."""
    trials = search_trials(experiment).set_index("variant")
    order = [entry.variant for entry in ranking(experiment)][:k]
    ranked = trials.loc[order].reset_index()
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    return ranked


def replayed_trials(experiment: Experiment) -> pd.DataFrame:
    """The trials that proposed a recorded configuration again: the trial it repeated, and
    the error it ended with, if any."""
    return pd.DataFrame([{"variant": replay.variant, "replay_of": replay.replay_of,
                          "error": replay.error} for replay in experiment.replays],
                        columns=["variant", "replay_of", "error"])


def search_counts(experiment: Experiment) -> dict[str, int]:
    """Trials planned and run (replays included: each used a trial of the budget), and
    trials by status."""
    trials = search_trials(experiment)
    counts = trials["status"].value_counts()
    replayed = replayed_trials(experiment)["variant"].nunique()
    search = experiment.study.search
    planned = search.trials if search is not None else len(trials) + replayed
    return {"planned": planned, "run": len(trials) + replayed,
            **{status: int(counts.get(status, 0)) for status in ("finished", "pruned", "failed")},
            "replayed": replayed}


def optimisation_history(experiment: Experiment) -> pd.DataFrame:
    """Trials in name order with their objective and the best finished objective so far."""
    trials = search_trials(experiment)[["variant", "status", "objective_mean"]].copy()
    trials.insert(0, "trial", range(len(trials)))
    finished = trials["objective_mean"].where(trials["status"] == "finished")
    best = finished.cummax() if experiment.maximise else finished.cummin()
    trials["best_so_far"] = best.ffill()
    return trials


def best_configuration(experiment: Experiment) -> dict[str, Any] | None:
    """The best finished trial: its objective and test score (%) as `top_trials` shows them,
    and the changes that make its configuration, searched parameters first in the space's
    order."""
    top = top_trials(experiment, k=1)
    if top.empty:
        return None
    leader = top.iloc[0]
    changes = variant_changes(experiment)[leader["variant"]]
    ordered = [name for name in search_space(experiment) if name in changes]
    return {"variant": leader["variant"], "mean": float(leader["objective_mean"]),
            "sd": float(leader["objective_sd"]), "test_mean": float(leader["test_mean"]),
            "test_sd": float(leader["test_sd"]), "units": int(leader["units"]),
            "config": {name: changes[name] for name in [*ordered, *changes]}}


def importance_is_reliable(finished_trials: int, parameters: int) -> bool:
    """Whether fANOVA had enough finished trials for the parameters it ranked (see
    TRIALS_PER_IMPORTANCE_PARAMETER)."""
    return finished_trials >= TRIALS_PER_IMPORTANCE_PARAMETER * parameters


def parameter_importance(experiment: Experiment) -> tuple[pd.DataFrame, str | None]:
    """fANOVA importance of each searched parameter over the finished trials.

    An in-memory Optuna study is built from the ledger with the distributions the study
    record holds, so the result needs nothing but the experiment directory. Returns the table
    (parameter, importance) and, when it cannot be computed, an empty table and the reason.
    """
    search = experiment.study.search
    trials = search_trials(experiment)
    finished = trials[(trials["status"] == "finished") & trials["objective_mean"].notna()]
    empty = pd.DataFrame(columns=["parameter", "importance"])
    if search is None or not search.space:
        return empty, "the study record has no search space"
    if len(finished) < 2:
        return empty, f"{len(finished)} finished trial(s); importance needs at least 2"
    if np.ptp(finished["objective_mean"].to_numpy(dtype=float)) == 0:
        return empty, "every finished trial scored the same"
    import optuna  # lazily: the report package loads without Optuna's import cost

    changes = variant_changes(experiment)
    previous_verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        distributions = {name: optuna.distributions.json_to_distribution(parameter.distribution)
                         for name, parameter in search.space.items()}
        study = optuna.create_study(direction="maximize" if experiment.maximise else "minimize")
        for trial in finished.to_dict("records"):
            # A conditional parameter (`when`) is absent from some trials; Optuna then ranks
            # the parameters every trial has.
            config = changes[trial["variant"]]
            sampled = [name for name in distributions if name in config]
            study.add_trial(optuna.trial.create_trial(
                params={name: encode_choice(config[name]) for name in sampled},
                distributions={name: distributions[name] for name in sampled},
                value=float(trial["objective_mean"])))
        importances = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except (ValueError, KeyError, RuntimeError) as error:
        return empty, f"Optuna could not evaluate importances: {error}"
    finally:
        optuna.logging.set_verbosity(previous_verbosity)
    return pd.DataFrame({"parameter": list(importances),
                         "importance": [float(value) for value in importances.values()]}), None
