"""Ablation tables: the seed papers' Table V with spread and paired tests against the
baseline, and the pivot of a factorial design."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ser_ray.errors import UserError
from ser_ray.experiment import Experiment
from ser_ray.report.stats import SIGNIFICANCE_LEVEL, holm, paired_test, smallest_wilcoxon_p
from ser_ray.report.units import PERCENT, unit_frame, variant_changes, variant_summary


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


def ablation_table(experiment: Experiment) -> pd.DataFrame:
    """The seed papers' Table V form, with spread and a paired test against the baseline.

    Columns: the variant summary, then for the objective metric `delta_pp` (mean paired
    difference vs the baseline, pp), its 95 % CI, `wilcoxon_p`, `t_p`, `holm_p` (Holm over
    every comparison's Wilcoxon p), `n_pairs`, `verdict` and `note` (why a p is missing).
    """
    summary = variant_summary(experiment).reset_index()
    units = unit_frame(experiment)
    comparisons = [_compare_with_baseline(units, variant, experiment.baseline,
                                          experiment.objective)
                   for variant in summary["variant"]]
    table = pd.concat([summary, pd.DataFrame(comparisons, index=summary.index)], axis=1)
    compared = table["variant"] != experiment.baseline
    table["holm_p"] = math.nan
    table.loc[compared, "holm_p"] = holm(table.loc[compared, "wilcoxon_p"].to_numpy())
    table["verdict"] = [_verdict(row, experiment.baseline) for row in table.to_dict("records")]
    return table


def variant_definitions(experiment: Experiment) -> pd.DataFrame:
    """What each variant changes relative to the study's base configuration."""
    records = [{"variant": name, "changes": _describe_changes(changes)}
               for name, changes in variant_changes(experiment).items()]
    return pd.DataFrame(records, columns=["variant", "changes"])


def factorial_pivot(experiment: Experiment) -> FactorialPivot:
    """Objective mean / sd / finished units per cell; the best cell by the objective's mode."""
    levels = experiment.study.factors
    factors = list(levels)
    if not factors:
        raise UserError("a factorial report needs the study record's factors")
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
