"""An experiment directory (ledger + study.json) → the report's tables, as DataFrames.

Every number `report.md` shows is computed here; `markdown.py` only formats. Scores in the
tables are percentages (the papers' unit) and differences are percentage points (pp); the
ledger and `results.csv` keep the recorded fractions. Means and sds run over every finished
unit of a variant, i.e. over folds × seeds.

Only finished units enter the statistics: a pruned unit stopped early and a failed one has no
score. Both are counted and listed, never dropped silently.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ser_ray.errors import UserError
from ser_ray.report.stats import (
    SIGNIFICANCE_LEVEL,
    holm,
    mean_sd,
    paired_test,
    smallest_wilcoxon_p,
)
from ser_ray.study.ledger import (
    ledger_frame,
    read_ledger,
    recorded_units,
    unit_key,
    unit_rows,
)

STUDY_FILE = "study.json"
METRICS: tuple[str, ...] = ("unweighted_accuracy", "weighted_accuracy", "ua_wa_mean", "macro_f1")
METRIC_LABELS = {"unweighted_accuracy": "UA", "weighted_accuracy": "WA", "ua_wa_mean": "ACC",
                 "macro_f1": "macro-F1"}
# The papers' metric names (spec §0) → ledger fields; P / R / F1 rows have no counterpart.
PAPER_METRICS = {"UA": "unweighted_accuracy", "WA": "weighted_accuracy", "ACC": "ua_wa_mean",
                 "params": "parameters"}
FEATURED_VARIANTS = 8
TOP_K = 10
PERCENT = 100.0


@dataclass(frozen=True)
class Experiment:
    """One experiment directory, read once: the study description and its units."""

    directory: Path
    study: dict[str, Any]
    rows: tuple[dict[str, Any], ...]
    retried_failures: int

    @property
    def objective(self) -> str:
        return str(self.study.get("objective", {}).get("metric", "unweighted_accuracy"))

    @property
    def maximise(self) -> bool:
        return self.study.get("objective", {}).get("mode", "max") == "max"

    @property
    def design(self) -> str:
        return str(self.study.get("design", "one-factor"))

    @property
    def baseline(self) -> str | None:
        return self.study.get("baseline")


@dataclass(frozen=True)
class Completeness:
    """Units planned vs recorded; a failed unit is not recorded (it is due for a rerun)."""

    planned: int
    recorded: int
    finished: int
    pruned: int
    failed: int
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


@dataclass(frozen=True)
class FactorialPivot:
    """The objective per cell of a factorial design: rows = every factor but the last."""

    metric: str
    row_factors: tuple[str, ...]
    column_factor: str
    mean: pd.DataFrame
    sd: pd.DataFrame
    units: pd.DataFrame
    best: tuple[Any, Any] | None


# ---- loading -------------------------------------------------------------------------------

def load_experiment(experiment_dir: Path) -> Experiment:
    """Read study.json and the ledger: each unit's authoritative row (`ledger.unit_rows`)."""
    directory = Path(experiment_dir)
    study_path = directory / STUDY_FILE
    if not study_path.is_file():
        raise UserError(f"{study_path} does not exist: not an experiment directory")
    study = json.loads(study_path.read_text(encoding="utf-8"))
    raw_rows = read_ledger(directory)
    rows = unit_rows(raw_rows)
    reported = {id(row) for row in rows}
    retried = sum(1 for row in raw_rows if row["status"] == "failed" and id(row) not in reported)
    return Experiment(directory=directory, study=study, rows=tuple(rows),
                      retried_failures=retried)


def unit_frame(experiment: Experiment) -> pd.DataFrame:
    """One row per unit (what results.csv holds): ledger_frame plus config and factor levels."""
    frame = ledger_frame(experiment.rows)
    if frame.empty:
        return pd.DataFrame(columns=["variant", "config_hash", "fold", "seed", "status",
                                     *METRICS, "config"])
    frame.insert(2, "config", [json.dumps(row.get("config") or {}, sort_keys=True)
                               for row in experiment.rows])
    for factor in experiment.study.get("factors") or {}:
        frame[f"factor.{factor}"] = [(row.get("factors") or {}).get(factor)
                                     for row in experiment.rows]
    order = {name: index for index, name in enumerate(variant_order(experiment))}
    frame["_order"] = frame["variant"].map(order)
    return (frame.sort_values(["_order", "fold", "seed"], kind="stable")
            .drop(columns="_order").reset_index(drop=True))


def variant_order(experiment: Experiment) -> list[str]:
    """Baseline, then planned variants, then any other ledger variant; trials by name."""
    seen = [row["variant"] for row in experiment.rows]
    if experiment.design == "search":
        return sorted(set(seen))
    planned = [variant["name"] for variant in experiment.study.get("variants") or []]
    leading = [experiment.baseline] if experiment.baseline else []
    return list(dict.fromkeys([*leading, *planned, *seen]))


def completeness(experiment: Experiment) -> Completeness:
    """Units planned, recorded (finished or pruned), failed and not yet run."""
    statuses = pd.Series([row["status"] for row in experiment.rows], dtype=object)
    planned_keys = _planned_unit_keys(experiment)
    ledger_keys = {unit_key(row) for row in experiment.rows}
    recorded = len(recorded_units(experiment.rows))
    planned = int(experiment.study.get("planned_units") or len(planned_keys) or recorded)
    return Completeness(
        planned=planned, recorded=recorded, finished=int((statuses == "finished").sum()),
        pruned=int((statuses == "pruned").sum()), failed=int((statuses == "failed").sum()),
        not_run=(len(planned_keys - ledger_keys) if planned_keys
                 else max(planned - len(ledger_keys), 0)),
        retried_failures=experiment.retried_failures)


def missing_units(experiment: Experiment) -> pd.DataFrame:
    """Planned (variant, fold, seed) units the ledger has no row for (ablation designs)."""
    present = {unit_key(row) for row in experiment.rows}
    study = experiment.study
    records = [{"variant": variant["name"], "fold": fold, "seed": seed}
               for variant in study.get("variants") or []
               for fold in study.get("folds") or [] for seed in study.get("seeds") or []
               if (str(variant["config_hash"]), int(fold), int(seed)) not in present]
    return pd.DataFrame(records, columns=["variant", "fold", "seed"])


def failed_units(experiment: Experiment) -> pd.DataFrame:
    """Every unit whose latest row failed, with the last line of its error and the full text."""
    records = [{"variant": row["variant"], "fold": row["fold"], "seed": row["seed"],
                "epochs_run": row.get("epochs_run"), "error_summary": _last_line(row.get("error")),
                "error": row.get("error") or ""}
               for row in experiment.rows if row["status"] == "failed"]
    return pd.DataFrame(records, columns=["variant", "fold", "seed", "epochs_run",
                                          "error_summary", "error"])


# ---- per-variant summaries -----------------------------------------------------------------

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
        for metric in METRICS:
            mean, sd = mean_sd(finished[metric].astype(float) * PERCENT)
            record[f"{metric}_mean"], record[f"{metric}_sd"] = mean, sd
        record["parameters"] = _parameter_count(own["parameters"])
        records.append(record)
    return pd.DataFrame.from_records(records, columns=_summary_columns()).set_index("variant")


def ablation_table(experiment: Experiment) -> pd.DataFrame:
    """The seed papers' Table V form, with spread and a paired test against the baseline.

    Columns: the variant summary, then for the objective metric `delta_pp` (mean paired
    difference vs the baseline, pp), its 95 % CI, `wilcoxon_p`, `t_p`, `holm_p` (Holm over
    every comparison's Wilcoxon p), `n_pairs`, `verdict` and `note` (why a p is missing).
    """
    summary = variant_summary(experiment).reset_index()
    objective = experiment.objective
    units = unit_frame(experiment)
    comparisons = [_compare_with_baseline(units, variant, experiment.baseline, objective)
                   for variant in summary["variant"]]
    table = pd.concat([summary, pd.DataFrame(comparisons, index=summary.index)], axis=1)
    compared = table["variant"] != experiment.baseline
    table["holm_p"] = math.nan
    table.loc[compared, "holm_p"] = holm(table.loc[compared, "wilcoxon_p"].to_numpy())
    table["verdict"] = [_verdict(row, experiment.baseline) for row in table.to_dict("records")]
    return table


def variant_definitions(experiment: Experiment) -> pd.DataFrame:
    """What each variant changes relative to the study's base configuration."""
    planned = {variant["name"]: variant.get("changes") or {}
               for variant in experiment.study.get("variants") or []}
    observed = {row["variant"]: row.get("config") or {} for row in experiment.rows}
    records = [{"variant": name,
                "changes": _describe_changes(planned.get(name, observed.get(name, {})))}
               for name in variant_order(experiment)]
    return pd.DataFrame(records, columns=["variant", "changes"])


def factorial_pivot(experiment: Experiment) -> FactorialPivot:
    """Objective mean / sd / finished units per cell; the best cell by the objective's mode."""
    factors = list(experiment.study.get("factors") or {})
    if not factors:
        raise UserError("a factorial report needs study.json 'factors'")
    levels = experiment.study["factors"]
    column_factor, row_factors = factors[-1], factors[:-1]
    units = unit_frame(experiment)
    finished = units[units["status"] == "finished"].copy()
    finished["score"] = finished[experiment.objective].astype(float) * PERCENT
    row_columns = [f"factor.{name}" for name in row_factors] or ["_all"]
    finished["_all"] = "all"
    grouped = finished.groupby([*row_columns, f"factor.{column_factor}"])["score"]
    row_index = (pd.MultiIndex.from_product([levels[name] for name in row_factors],
                                            names=row_factors) if len(row_factors) > 1
                 else pd.Index(levels[row_factors[0]] if row_factors else ["all"],
                               name=row_factors[0] if row_factors else ""))
    shape = {"index": row_index, "columns": pd.Index(levels[column_factor], name=column_factor)}
    mean = _unstacked(grouped.mean(), shape)
    sd = _unstacked(grouped.std(ddof=1), shape)
    counts = _unstacked(grouped.count(), shape).fillna(0).astype(int)
    stacked = mean.stack().dropna()
    best = None
    if not stacked.empty:
        label = stacked.idxmax() if experiment.maximise else stacked.idxmin()
        best = (label[:-1] if len(row_factors) > 1 else label[0], label[-1])
    return FactorialPivot(metric=experiment.objective, row_factors=tuple(row_factors),
                          column_factor=column_factor, mean=mean, sd=sd, units=counts, best=best)


def per_class_recall_table(experiment: Experiment,
                           variants: Iterable[str] | None = None) -> pd.DataFrame:
    """Mean recall (%) per class over each variant's finished units (rows: variants)."""
    wanted = list(variants) if variants is not None else variant_order(experiment)
    labels = label_names(experiment)
    records = []
    for variant in wanted:
        recalls = [row.get("per_class_recall") or {}
                   for row in _finished_rows(experiment, variant)]
        records.append({"variant": variant, **{
            label: mean_sd([r[label] * PERCENT for r in recalls if r.get(label) is not None])[0]
            for label in labels}})
    return pd.DataFrame.from_records(records, columns=["variant", *labels]).set_index("variant")


def pooled_confusion(experiment: Experiment, variant: str) -> np.ndarray | None:
    """The sum of the selected-epoch confusion matrices of a variant's finished units."""
    matrices = [np.asarray(row["confusion_matrix"], dtype=np.int64)
                for row in _finished_rows(experiment, variant) if row.get("confusion_matrix")]
    return np.sum(matrices, axis=0) if matrices else None


def learning_curves(experiment: Experiment, variant: str) -> pd.DataFrame:
    """Per epoch and series (test UA / WA, validation UA): mean and sd (%) over finished units."""
    series = {("test", "unweighted_accuracy"): "test UA", ("test", "weighted_accuracy"): "test WA",
              ("validation", "unweighted_accuracy"): "validation UA"}
    records = []
    for row in _finished_rows(experiment, variant):
        for record in row.get("history") or []:
            for (split, metric), name in series.items():
                scores = record.get(split)
                if scores and scores.get(metric) is not None:
                    records.append({"epoch": int(record["epoch"]), "series": name,
                                    "score": float(scores[metric]) * PERCENT})
    if not records:
        return pd.DataFrame(columns=["series", "epoch", "mean", "sd", "units"])
    grouped = pd.DataFrame(records).groupby(["series", "epoch"])["score"]
    frame = pd.DataFrame({"mean": grouped.mean(), "sd": grouped.std(ddof=1),
                          "units": grouped.count()})
    return frame.reset_index()


def featured_variants(experiment: Experiment, limit: int = FEATURED_VARIANTS) -> list[str]:
    """The variants that get figures: all of a small ablation; else the baseline and the best.

    Searches feature their best finished trials only.
    """
    if experiment.design == "search":
        return list(top_trials(experiment, k=limit)["variant"])
    summary = variant_summary(experiment)
    scored = summary[summary["finished"] > 0][f"{experiment.objective}_mean"]
    ranked = list(scored.sort_values(ascending=not experiment.maximise, kind="stable").index)
    if len(scored) <= limit:
        return [variant for variant in summary.index if variant in scored.index]
    leading = [experiment.baseline] if experiment.baseline in scored.index else []
    return list(dict.fromkeys([*leading, *ranked]))[:limit]


def best_variant(experiment: Experiment) -> dict[str, Any] | None:
    """The best variant (or finished trial) so far by the objective, with its spread."""
    summary = variant_summary(experiment)
    scored = summary[summary["finished"] > 0]
    if experiment.design == "search":
        trials = search_trials(experiment)
        scored = scored.loc[trials[trials["status"] == "finished"]["variant"]]
    if scored.empty:
        return None
    column = f"{experiment.objective}_mean"
    name = scored[column].idxmax() if experiment.maximise else scored[column].idxmin()
    return {"variant": name, "mean": float(scored.loc[name, column]),
            "sd": float(scored.loc[name, f"{experiment.objective}_sd"]),
            "units": int(scored.loc[name, "finished"])}


# ---- search studies ------------------------------------------------------------------------

def search_trials(experiment: Experiment) -> pd.DataFrame:
    """One row per trial: status (failed > pruned > finished over its units), objective mean
    and sd (%) over its scored units, epochs run, parameter count, and the sampled values."""
    space = list((experiment.study.get("search") or {}).get("space") or {})
    units = unit_frame(experiment)
    records = []
    for variant in variant_order(experiment):
        own = units[units["variant"] == variant]
        statuses = set(own["status"])
        status = next(s for s in ("failed", "pruned", "finished") if s in statuses)
        mean, sd = mean_sd(own[experiment.objective].astype(float) * PERCENT)
        config = _trial_config(experiment, variant)
        records.append({"variant": variant, "status": status, "units": len(own),
                        "objective_mean": mean, "objective_sd": sd,
                        "epochs_run": own["epochs_run"].max(),
                        "parameters": _parameter_count(own["parameters"]),
                        **{name: config.get(name) for name in space}})
    return pd.DataFrame.from_records(records, columns=[
        "variant", "status", "units", "objective_mean", "objective_sd", "epochs_run",
        "parameters", *space])


def top_trials(experiment: Experiment, k: int = TOP_K) -> pd.DataFrame:
    """The k best finished trials by the objective, ranked from 1."""
    trials = search_trials(experiment)
    finished = trials[trials["status"] == "finished"]
    ranked = finished.sort_values("objective_mean", ascending=not experiment.maximise,
                                  kind="stable").head(k).reset_index(drop=True)
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    return ranked


def search_counts(experiment: Experiment) -> dict[str, int]:
    """Trials planned and recorded, and trials by status."""
    trials = search_trials(experiment)
    counts = trials["status"].value_counts()
    planned = int((experiment.study.get("search") or {}).get("trials") or len(trials))
    return {"planned": planned, "recorded": len(trials),
            **{status: int(counts.get(status, 0)) for status in ("finished", "pruned", "failed")}}


def optimisation_history(experiment: Experiment) -> pd.DataFrame:
    """Trials in name order with their objective and the best finished objective so far."""
    trials = search_trials(experiment)[["variant", "status", "objective_mean"]].copy()
    trials.insert(0, "trial", range(len(trials)))
    finished = trials["objective_mean"].where(trials["status"] == "finished")
    best = finished.cummax() if experiment.maximise else finished.cummin()
    trials["best_so_far"] = best.ffill()
    return trials


def best_configuration(experiment: Experiment) -> dict[str, Any] | None:
    """The best finished trial with its full configuration."""
    best = top_trials(experiment, k=1)
    if best.empty:
        return None
    name = best.loc[0, "variant"]
    config = _trial_config(experiment, name)
    return {"variant": name, "mean": float(best.loc[0, "objective_mean"]),
            "sd": float(best.loc[0, "objective_sd"]), "units": int(best.loc[0, "units"]),
            "config": config}


def parameter_importance(experiment: Experiment) -> tuple[pd.DataFrame, str | None]:
    """fANOVA importance of each searched parameter over the finished trials.

    An in-memory Optuna study is rebuilt from the ledger (distributions from `search.space`),
    so the result needs nothing but the experiment directory. Returns the table (parameter,
    importance) and, when it cannot be computed, an empty table and the reason.
    """
    space = (experiment.study.get("search") or {}).get("space") or {}
    trials = search_trials(experiment)
    finished = trials[(trials["status"] == "finished") & trials["objective_mean"].notna()]
    empty = pd.DataFrame(columns=["parameter", "importance"])
    if not space:
        return empty, "study.json has no search space"
    if len(finished) < 2:
        return empty, f"{len(finished)} finished trial(s); importance needs at least 2"
    if np.ptp(finished["objective_mean"].to_numpy(dtype=float)) == 0:
        return empty, "every finished trial scored the same"
    import optuna  # lazily: the report package loads without Optuna's import cost

    previous_verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize" if experiment.maximise else "minimize")
        for trial in finished.to_dict("records"):
            # A conditional parameter (`when`) is absent from some trials; Optuna then ranks
            # the parameters every trial has.
            config = _trial_config(experiment, trial["variant"])
            sampled = {name: spec for name, spec in space.items() if name in config}
            study.add_trial(optuna.trial.create_trial(
                params={name: _optuna_value(config[name], spec) for name, spec in sampled.items()},
                distributions={name: _optuna_distribution(spec) for name, spec in sampled.items()},
                value=float(trial["objective_mean"])))
        importances = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except (ValueError, RuntimeError) as error:
        return empty, f"Optuna could not evaluate importances: {error}"
    finally:
        optuna.logging.set_verbosity(previous_verbosity)
    return pd.DataFrame({"parameter": list(importances),
                         "importance": [float(value) for value in importances.values()]}), None


# ---- paper vs ours -------------------------------------------------------------------------

@functools.cache
def load_paper_results() -> dict[str, Any]:
    """The papers' reported numbers, protocols and [DEFAULT] knobs (package data; read-only)."""
    text = resources.files("ser_ray.report").joinpath("paper_results.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def paper_row_keys(paper: str) -> list[str]:
    """Every dotted row key of a paper's results tree.

    >>> keys = paper_row_keys("kundu2024")
    >>> len(keys), keys[0]
    (5, 'mean_accuracy_5fold.TESS')
    """
    return [key for key, _ in _row_paths(_paper(paper)["results"])]


def paper_row(paper: str, row_key: str) -> dict[str, float]:
    """A reported row, metric → value, e.g. paper_row("kim2024", "ablation_table_V.cnn").

    >>> paper_row("kim2024", "ablation_table_V.cnn+our_eca")
    {'UA': 79.37, 'WA': 79.68, 'ACC': 79.53}
    """
    rows = dict(_row_paths(_paper(paper)["results"]))
    if row_key not in rows:
        raise KeyError(f"{paper} has no row {row_key!r}; rows: {', '.join(rows)}")
    return rows[row_key]


def protocol_comparison(experiment: Experiment) -> pd.DataFrame:
    """The paper's protocol beside ours: split unit, evaluation, selection, speakers."""
    paper = _paper(experiment.study["reproduces"]["paper"])["protocol"]
    ours = _our_protocol(experiment)
    records = [{"aspect": aspect, "paper": paper.get(aspect), "ours": ours[aspect],
                "differs": paper.get(aspect) != ours[aspect]} for aspect in ours]
    return pd.DataFrame(records, columns=["aspect", "paper", "ours", "differs"])


def paper_defaults(paper: str) -> pd.DataFrame:
    """The spec's [DEFAULT] knobs a reproduction of this paper depends on."""
    return pd.DataFrame(_paper(paper).get("defaults") or [], columns=["knob", "value", "spec"])


def paper_vs_ours(experiment: Experiment) -> pd.DataFrame:
    """One row per (variant, reported metric): reported value, ours (mean ± sd, %), Δ (pp),
    each protocol aspect as paper and ours, and the [DEFAULT] knobs the row depends on."""
    reproduces = experiment.study.get("reproduces") or {}
    if not reproduces:
        return pd.DataFrame()
    paper = reproduces["paper"]
    summary = variant_summary(experiment)
    protocol = protocol_comparison(experiment).set_index("aspect")
    knobs = ", ".join(paper_defaults(paper)["knob"].astype(str)) or "none"
    context = {**{f"{aspect}_paper": protocol.loc[aspect, "paper"] for aspect in protocol.index},
               **{f"{aspect}_ours": protocol.loc[aspect, "ours"] for aspect in protocol.index},
               "defaults": knobs}
    records = []
    for variant, row_key in reproduces.get("rows", {}).items():
        try:
            reported = paper_row(paper, row_key)
        except KeyError:
            records.append({"variant": variant, "paper_row": row_key,
                            "note": "unknown paper row", **context})
            continue
        for metric, value in reported.items():
            if metric in PAPER_METRICS:
                records.append({"variant": variant, "paper_row": row_key, "metric": metric,
                                "reported": float(value),
                                **_our_value(summary, variant, PAPER_METRICS[metric]),
                                **context})
    frame = pd.DataFrame.from_records(records)
    if "ours_mean" in frame:
        frame["delta_pp"] = np.where(frame["metric"] == "params", math.nan,
                                     frame["ours_mean"] - frame["reported"])
    return frame


# ---- study header --------------------------------------------------------------------------

def class_counts(experiment: Experiment) -> pd.DataFrame:
    counts = (experiment.study.get("corpus") or {}).get("class_counts") or {}
    return pd.DataFrame({"label": list(counts), "utterances": list(counts.values())})


def skipped_inputs(experiment: Experiment) -> pd.DataFrame:
    """Every input the scan or feature stage skipped, with its reason."""
    return pd.DataFrame(experiment.study.get("skipped") or [],
                        columns=["stage", "path", "reason_code", "reason"])


def skipped_counts(experiment: Experiment) -> pd.DataFrame:
    """Skipped inputs counted per (stage, reason code)."""
    skipped = skipped_inputs(experiment)
    return (skipped.groupby(["stage", "reason_code"]).size().rename("inputs").reset_index()
            if not skipped.empty else pd.DataFrame(columns=["stage", "reason_code", "inputs"]))


def feature_caches(experiment: Experiment) -> pd.DataFrame:
    """The feature caches the study read: key, recipe kind, augmentations, rows."""
    records = [{"cache_key": feature.get("cache_key"),
                "recipe": (feature.get("recipe") or {}).get("kind", ""),
                "augmentations": ", ".join(feature.get("augmentations") or []) or "none",
                "rows": feature.get("rows"), "path": feature.get("path")}
               for feature in experiment.study.get("features") or []]
    return pd.DataFrame(records, columns=["cache_key", "recipe", "augmentations", "rows", "path"])


def selection_rule(experiment: Experiment) -> str:
    """The epoch-selection rule(s) as one label, e.g. "best-test + last"."""
    return " + ".join(selection_rules(experiment))


def selection_rules(experiment: Experiment) -> list[str]:
    """Every rule the ledger rows record when they differ (a study that varies it), else as
    study.json declares it, else as the rows record it."""
    recorded = sorted({str(row["selection"]) for row in experiment.rows if row.get("selection")})
    declared = experiment.study.get("selection_rule")
    if declared and len(recorded) <= 1:
        return [str(declared)]
    if recorded:
        return recorded
    return [str((experiment.study.get("training") or {}).get("selection", "not recorded"))]


# ---- helpers -------------------------------------------------------------------------------

def _summary_columns() -> list[str]:
    metric_columns = [f"{metric}_{stat}" for metric in METRICS for stat in ("mean", "sd")]
    return ["variant", "finished", "pruned", "failed", *metric_columns, "parameters"]


def _planned_unit_keys(experiment: Experiment) -> set[tuple[str, int, int]]:
    study = experiment.study
    return {(str(variant["config_hash"]), int(fold), int(seed))
            for variant in study.get("variants") or []
            for fold in study.get("folds") or [] for seed in study.get("seeds") or []}


def _finished_rows(experiment: Experiment, variant: str) -> list[dict[str, Any]]:
    return [row for row in experiment.rows
            if row["variant"] == variant and row["status"] == "finished"]


def label_names(experiment: Experiment) -> list[str]:
    """The class labels, in the ledger's confusion-matrix order."""
    for row in experiment.rows:
        if row.get("label_names"):
            return list(row["label_names"])
    return list((experiment.study.get("corpus") or {}).get("class_counts") or {})


def _parameter_count(values: pd.Series) -> float:
    present = values.dropna()
    return float(present.mode().iloc[0]) if not present.empty else math.nan


def _compare_with_baseline(units: pd.DataFrame, variant: str, baseline: str | None,
                           metric: str) -> dict[str, Any]:
    blank = {"delta_pp": math.nan, "delta_ci_low": math.nan, "delta_ci_high": math.nan,
             "wilcoxon_p": math.nan, "t_p": math.nan, "n_pairs": 0, "note": ""}
    if baseline is None:
        return {**blank, "note": "no baseline"}
    if variant == baseline:
        return blank
    finished = units[(units["status"] == "finished") & units[metric].notna()]
    pairs = (finished[finished["variant"] == variant][["fold", "seed", metric]]
             .merge(finished[finished["variant"] == baseline][["fold", "seed", metric]],
                    on=["fold", "seed"], suffixes=("_variant", "_baseline")))
    result = paired_test(pairs[f"{metric}_variant"].astype(float) * PERCENT,
                         pairs[f"{metric}_baseline"].astype(float) * PERCENT)
    return {"delta_pp": result.mean_difference, "delta_ci_low": result.ci_low,
            "delta_ci_high": result.ci_high, "wilcoxon_p": result.wilcoxon_p, "t_p": result.t_p,
            "n_pairs": result.n_pairs, "note": result.reason or ""}


def _verdict(row: dict[str, Any], baseline: str | None) -> str:
    if baseline is None:
        return ""
    if row["variant"] == baseline:
        return "baseline"
    if row["n_pairs"] == 0:
        return "no pairs"
    # Below 6 pairs no two-sided Wilcoxon p can reach 0.05: any Δ is within noise by design.
    if smallest_wilcoxon_p(row["n_pairs"]) >= SIGNIFICANCE_LEVEL:
        return "within noise (n too small)"
    if math.isnan(row["holm_p"]) or row["holm_p"] >= SIGNIFICANCE_LEVEL:
        return "within noise"
    return "significant"


def _describe_changes(changes: dict[str, Any]) -> str:
    return "; ".join(f"{key}={json.dumps(value)}" for key, value in sorted(changes.items())) \
        or "(base configuration)"


def _unstacked(values: pd.Series, shape: dict[str, pd.Index]) -> pd.DataFrame:
    frame = values.unstack(-1) if not values.empty else pd.DataFrame()
    return frame.reindex(index=shape["index"], columns=shape["columns"]).astype(float)


def _paper(paper: str) -> dict[str, Any]:
    papers = load_paper_results()
    if paper not in papers:
        raise KeyError(f"unknown paper {paper!r}; known: {', '.join(papers)}")
    return papers[paper]


def _row_paths(tree: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, dict[str, float]]]:
    """(dotted key, row) for every leaf mapping of numbers."""
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if all(isinstance(item, (int, float)) for item in value.values()):
            yield path, value
        else:
            yield from _row_paths(value, f"{path}.")


def _our_protocol(experiment: Experiment) -> dict[str, Any]:
    study = experiment.study
    protocol = study.get("protocol") or {}
    return {"split_unit": protocol.get("split_unit", "utterance"),
            "evaluation": "k-fold mean" if len(study.get("folds") or []) > 1 else "single split",
            "selection": selection_rule(experiment),
            "speaker_independent": protocol.get("speaker_independent")}


def _our_value(summary: pd.DataFrame, variant: str, field: str) -> dict[str, Any]:
    if variant not in summary.index or summary.loc[variant, "finished"] == 0:
        return {"ours_mean": math.nan, "ours_sd": math.nan, "units": 0,
                "note": "no finished units"}
    units = int(summary.loc[variant, "finished"])
    if field == "parameters":
        return {"ours_mean": summary.loc[variant, "parameters"], "ours_sd": math.nan,
                "units": units, "note": ""}
    return {"ours_mean": summary.loc[variant, f"{field}_mean"],
            "ours_sd": summary.loc[variant, f"{field}_sd"], "units": units, "note": ""}


def _trial_config(experiment: Experiment, variant: str) -> dict[str, Any]:
    return next((row.get("config") or {} for row in experiment.rows
                 if row["variant"] == variant), {})


def _optuna_distribution(spec: dict[str, Any]) -> Any:
    from optuna import distributions

    if spec["type"] == "categorical":
        return distributions.CategoricalDistribution([_choice(c) for c in spec["choices"]])
    if spec["type"] == "int":
        return distributions.IntDistribution(int(spec["low"]), int(spec["high"]),
                                             log=bool(spec.get("log", False)),
                                             step=int(spec.get("step") or 1))
    return distributions.FloatDistribution(float(spec["low"]), float(spec["high"]),
                                           log=bool(spec.get("log", False)), step=spec.get("step"))


def _optuna_value(value: Any, spec: dict[str, Any]) -> Any:
    if spec["type"] == "categorical":
        return _choice(value)
    return int(value) if spec["type"] == "int" else float(value)


def _choice(value: Any) -> Any:
    """Optuna choices are scalars; a list choice (e.g. ECA blocks [5, 6]) becomes its JSON."""
    return value if value is None or isinstance(value, (bool, int, float, str)) \
        else json.dumps(value)


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "(no error text)"

