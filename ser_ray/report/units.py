"""Per-unit and per-variant tables every design shares: units, completeness, failures, and
each variant's scores, recall, confusion and learning curves.

Scores in the tables are percentages (the papers' unit) and differences are percentage points
(pp); the ledger and `results.csv` keep the recorded fractions. Means and sds run over every
finished unit of a variant, i.e. over folds × seeds. Only finished units enter the
statistics: a pruned unit stopped early and a failed one has no score. Both are counted and
listed, never dropped silently.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ser_ray.experiment import (
    METRIC_NAMES,
    VALIDATION_METRIC_NAMES,
    Configuration,
    Experiment,
    ledger_frame,
    objective_split,
    recorded_units,
)
from ser_ray.experiment.ranking import best, ranking, variant_order
from ser_ray.report.stats import mean_sd

FEATURED_VARIANTS = 8
PERCENT = 100.0


@dataclass(frozen=True)
class BestSoFar:
    """The best configuration: its objective's mean and sd (%) over its finished units, and
    its test score in the objective's metric (the same numbers when the objective is a test
    metric)."""

    variant: str
    mean: float
    sd: float
    units: int
    test_mean: float
    test_sd: float


@dataclass(frozen=True)
class Completeness:
    """Units planned against units recorded: those a resume does not run again.

    An ablation records its finished and pruned units; a failed one is rerun by a resume. A
    search also counts its failed trials' units (a failed trial used its place in the trial
    budget and is not retried) and those of `replayed` trials (a trial that proposed an
    already recorded configuration trained nothing: its units are that configuration's).
    """

    planned: int
    recorded: int
    finished: int
    pruned: int
    failed: int
    replayed: int
    not_run: int
    retried_failures: int

    @property
    def partial(self) -> bool:
        return self.recorded < self.planned

    @property
    def label(self) -> str:
        if self.partial:
            return f"PARTIAL: {self.recorded} of {self.planned} units"
        return f"complete: {self.recorded} of {self.planned} units"


def unit_frame(experiment: Experiment) -> pd.DataFrame:
    """One row per unit (what results.csv holds): ledger_frame (test metrics at the selected
    epoch) plus changes, the validation metrics at the same epoch as `validation_<metric>`
    (NaN without a validation split) and factor levels; so every objective is a column."""
    frame = ledger_frame(experiment.rows)
    if frame.empty:
        return pd.DataFrame(columns=["variant", "config_hash", "fold", "seed", "status",
                                     *METRIC_NAMES, *VALIDATION_METRIC_NAMES, "config"])
    frame.insert(2, "config", [json.dumps(row.changes, sort_keys=True)
                               for row in experiment.rows])
    for column in VALIDATION_METRIC_NAMES:
        frame[column] = [_score(row.objective_score(column)) for row in experiment.rows]
    for factor in experiment.study.factors:
        frame[f"factor.{factor}"] = [row.factors.get(factor) for row in experiment.rows]
    order = {name: index for index, name in enumerate(variant_order(experiment))}
    frame["_order"] = frame["variant"].map(order)
    return (frame.sort_values(["_order", "fold", "seed"], kind="stable")
            .drop(columns="_order").reset_index(drop=True))


def completeness(experiment: Experiment) -> Completeness:
    """Units planned, recorded (see `Completeness`), failed and not yet run."""
    statuses = pd.Series([row.status for row in experiment.rows], dtype=object)
    finished = int((statuses == "finished").sum())
    pruned = int((statuses == "pruned").sum())
    failed = int((statuses == "failed").sum())
    if experiment.design == "search":
        return _search_completeness(experiment, finished, pruned, failed)
    planned_keys = _planned_unit_keys(experiment)
    ledger_keys = {row.key for row in experiment.rows}
    recorded = len(recorded_units(experiment.rows))
    planned = experiment.study.planned_units or len(planned_keys) or recorded
    return Completeness(
        planned=planned, recorded=recorded, finished=finished, pruned=pruned, failed=failed,
        replayed=0, not_run=(len(planned_keys - ledger_keys) if planned_keys
                             else max(planned - len(ledger_keys), 0)),
        retried_failures=experiment.retried_failures)


def _search_completeness(experiment: Experiment, finished: int, pruned: int,
                         failed: int) -> Completeness:
    """A search's units by trial: every trial run, failed or replayed, stands for its folds."""
    study = experiment.study
    per_trial = len(study.folds) * len(study.seeds)
    trials_run = ({row.variant for row in experiment.rows}
                  | {replay.variant for replay in experiment.replays})
    planned_trials = study.search.trials if study.search is not None else len(trials_run)
    replayed = len({replay.variant for replay in experiment.replays}) * per_trial
    return Completeness(
        planned=study.planned_units, recorded=finished + pruned + failed + replayed,
        finished=finished, pruned=pruned, failed=failed, replayed=replayed,
        not_run=max(planned_trials - len(trials_run), 0) * per_trial,
        retried_failures=experiment.retried_failures)


def missing_units(experiment: Experiment) -> pd.DataFrame:
    """Planned (variant, fold, seed) units the ledger has no row for (ablation designs)."""
    present = {row.key for row in experiment.rows}
    study = experiment.study
    records = [{"variant": variant.name, "fold": fold, "seed": seed}
               for variant in study.variants for fold in study.folds for seed in study.seeds
               if (variant.config_hash, fold, seed) not in present]
    return pd.DataFrame(records, columns=["variant", "fold", "seed"])


def failed_units(experiment: Experiment) -> pd.DataFrame:
    """Every unit whose latest row failed, with the last line of its error and the full text."""
    records = [{"variant": row.variant, "fold": row.fold, "seed": row.seed,
                "epochs_run": row.epochs_run, "error_summary": _last_line(row.error),
                "error": row.error or ""}
               for row in experiment.rows if row.status == "failed"]
    return pd.DataFrame(records, columns=["variant", "fold", "seed", "epochs_run",
                                          "error_summary", "error"])


def variant_summary(experiment: Experiment) -> pd.DataFrame:
    """Per variant: unit counts by status, each metric's mean and sd (%), parameter count.

    Indexed by variant in `variant_order`; planned variants without units appear with NaN.
    """
    units = unit_frame(experiment)
    records = []
    for variant in variant_order(experiment):
        own = units[units["variant"] == variant]
        finished = own[own["status"] == "finished"]
        record: dict[str, Any] = {"variant": variant, "finished": len(finished),
                                  "pruned": int((own["status"] == "pruned").sum()),
                                  "failed": int((own["status"] == "failed").sum())}
        for metric in METRIC_NAMES:
            mean, sd = mean_sd(finished[metric].astype(float) * PERCENT)
            record[f"{metric}_mean"], record[f"{metric}_sd"] = mean, sd
        record["parameters"] = parameter_count(own["parameters"])
        records.append(record)
    return pd.DataFrame.from_records(records, columns=_summary_columns()).set_index("variant")


def best_so_far(experiment: Experiment) -> BestSoFar | None:
    """The ranking's best configuration: its objective (%) and its test score (%)."""
    leader = best(experiment)
    if leader is None:
        return None
    metric = experiment.test_metric
    row = variant_summary(experiment).loc[leader.variant]
    return BestSoFar(leader.variant, leader.mean * PERCENT, leader.sd * PERCENT, leader.units,
                     float(row[f"{metric}_mean"]), float(row[f"{metric}_sd"]))


def configurations(experiment: Experiment) -> dict[str, Configuration]:
    """Every configuration of the study by variant, in variant order: the planned variants of
    an ablation, the recorded trials of a search (those whose configuration resolved)."""
    found = {variant.name: variant.configuration for variant in experiment.study.variants}
    for row in experiment.rows:
        if row.configuration is not None:
            found.setdefault(row.variant, row.configuration)
    return {name: found[name] for name in variant_order(experiment) if name in found}


def variant_changes(experiment: Experiment) -> dict[str, dict[str, Any]]:
    """What each variant changes relative to the study's base configuration (for a trial
    whose sample did not resolve, what it asked for)."""
    resolved = configurations(experiment)
    asked = {row.variant: row.changes for row in experiment.rows}
    return {name: resolved[name].changes if name in resolved else asked.get(name, {})
            for name in variant_order(experiment)}


def featured_variants(experiment: Experiment, limit: int = FEATURED_VARIANTS) -> list[str]:
    """The variants that get figures: all of a small ablation; else the baseline and the best.

    Searches feature their best finished trials only.
    """
    ranked = [entry.variant for entry in ranking(experiment)]
    if experiment.design == "search":
        return ranked[:limit]
    if len(ranked) <= limit:
        return [variant for variant in variant_order(experiment) if variant in ranked]
    leading = [experiment.baseline] if experiment.baseline in ranked else []
    return list(dict.fromkeys([*leading, *ranked]))[:limit]


def per_class_recall_table(experiment: Experiment,
                           variants: Iterable[str] | None = None) -> pd.DataFrame:
    """Mean recall (%) per class over each variant's finished units (rows: variants)."""
    wanted = list(variants) if variants is not None else variant_order(experiment)
    labels = label_names(experiment)
    records = []
    for variant in wanted:
        recalls = [row.selected.per_class_recall  # type: ignore[union-attr]
                   for row in experiment.rows_of(variant, "finished")]
        records.append({"variant": variant, **{
            label: mean_sd([r[label] * PERCENT for r in recalls if r.get(label) is not None])[0]
            for label in labels}})
    return pd.DataFrame.from_records(records, columns=["variant", *labels]).set_index("variant")


def pooled_confusion(experiment: Experiment, variant: str) -> np.ndarray | None:
    """The sum of the selected-epoch confusion matrices of a variant's finished units."""
    matrices = [np.asarray(row.selected.confusion_matrix, dtype=np.int64)  # type: ignore
                for row in experiment.rows_of(variant, "finished")]
    return np.sum(matrices, axis=0) if matrices else None


def learning_curves(experiment: Experiment, variant: str) -> pd.DataFrame:
    """Per epoch and series (test UA / WA, validation UA): mean and sd (%) over finished units."""
    series = {("test", "unweighted_accuracy"): "test UA", ("test", "weighted_accuracy"): "test WA",
              ("validation", "unweighted_accuracy"): "validation UA"}
    records = []
    for row in experiment.rows_of(variant, "finished"):
        for record in row.history:
            for (split, metric), name in series.items():
                scores = getattr(record, split)
                if scores is not None:
                    records.append({"epoch": record.epoch, "series": name,
                                    "score": scores.score(metric) * PERCENT})
    if not records:
        return pd.DataFrame(columns=["series", "epoch", "mean", "sd", "units"])
    grouped = pd.DataFrame(records).groupby(["series", "epoch"])["score"]
    frame = pd.DataFrame({"mean": grouped.mean(), "sd": grouped.std(ddof=1),
                          "units": grouped.count()})
    return frame.reset_index()


def label_names(experiment: Experiment) -> list[str]:
    """The class labels, in the ledger's confusion-matrix order."""
    for row in experiment.rows:
        if row.label_names:
            return row.label_names
    return list(experiment.study.corpus.class_counts)


def parameter_count(values: pd.Series) -> float:
    present = values.dropna()
    return float(present.mode().iloc[0]) if not present.empty else math.nan


def _summary_columns() -> list[str]:
    metric_columns = [f"{metric}_{stat}" for metric in METRIC_NAMES for stat in ("mean", "sd")]
    return ["variant", "finished", "pruned", "failed", *metric_columns, "parameters"]


def _planned_unit_keys(experiment: Experiment) -> set[tuple[str, int, int]]:
    study = experiment.study
    return {(variant.config_hash, fold, seed) for variant in study.variants
            for fold in study.folds for seed in study.seeds}


def _score(value: float | None) -> float:
    return math.nan if value is None else value


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "(no error text)"


def objective_curves(experiment: Experiment) -> dict[str, tuple[np.ndarray, np.ndarray, bool]]:
    """Each configuration's objective metric (%) at every epoch, averaged over its units
    that reached the epoch, and whether it finished; in ledger order."""
    split, metric = objective_split(experiment.objective)
    curves = {}
    for variant in dict.fromkeys(row.variant for row in experiment.rows):
        per_epoch: dict[int, list[float]] = {}
        for row in experiment.rows_of(variant):
            for record in row.history:
                scores = getattr(record, split)
                if scores is not None:
                    per_epoch.setdefault(record.epoch, []).append(scores.score(metric) * PERCENT)
        if per_epoch:
            epochs = np.asarray(sorted(per_epoch))
            curves[variant] = (epochs, np.asarray([np.mean(per_epoch[e]) for e in epochs]),
                               all(row.status == "finished"
                                   for row in experiment.rows_of(variant)))
    return curves


def best_so_far_curve(experiment: Experiment) -> np.ndarray:
    """The ranking's best objective (%) after each configuration ended, in the order their
    last units were recorded; NaN until one can be ranked."""
    scores = {entry.variant: entry.mean * PERCENT for entry in ranking(experiment)}
    ended = list(reversed(dict.fromkeys(row.variant for row in reversed(experiment.rows))))
    best, curve = math.nan, []
    for variant in ended:
        score = scores.get(variant, math.nan)
        if not math.isnan(score) and (math.isnan(best) or
                                      (score > best) == experiment.maximise):
            best = score
        curve.append(best)
    return np.asarray(curve, float)
