"""Ablation tables: the seed papers' Table V with spread and paired tests against the
baseline, and the pivot of a factorial design.

Every comparison is tested over folds, the study's independent units (`stats`): each fold's
seeds are averaged first. How depends on the fold protocol (`FoldInference`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ser_ray.errors import UserError
from ser_ray.experiment import Experiment, MetricName
from ser_ray.report.stats import (
    SIGNIFICANCE_LEVEL,
    fold_differences,
    holm,
    paired_test,
    smallest_wilcoxon_p,
    within_fold_sd,
)
from ser_ray.report.units import PERCENT, unit_frame, variant_changes, variant_summary


@dataclass(frozen=True)
class FoldInference:
    """Which test gives an ablation's verdicts, by its fold protocol.

    Session and speaker folds are fixed sets of test speakers: the Wilcoxon signed-rank
    test over the fold differences gives the verdict (five to ten differences cannot show
    whether they are normal, which the paired t shown beside it assumes). Stratified k-fold
    splits share most of their training data, so their differences are correlated and both
    plain tests overstate the evidence: the corrected resampled t of Nadeau & Bengio (2003)
    gives the verdict, with n_test/n_train = 1/(k − 1) (`test_train_ratio`; 0 for fixed
    folds); the Wilcoxon is shown for reference only.
    """

    protocol: str
    k: int | None
    repeats: int
    planned_folds: int
    test_train_ratio: float

    @property
    def corrected(self) -> bool:
        return self.test_train_ratio > 0

    @property
    def verdict_column(self) -> str:
        """The ablation table's column whose p (Holm-corrected) gives the verdict."""
        return "t_p" if self.corrected else "wilcoxon_p"

    def can_reach_significance(self, n_folds: int) -> bool:
        """Whether the verdict's test can give p < 0.05 at all with n folds: the
        Wilcoxon's smallest two-sided p is 2/2^n (0.0625 at five folds)."""
        if self.corrected:
            return n_folds >= 2
        return smallest_wilcoxon_p(n_folds) < SIGNIFICANCE_LEVEL


@dataclass(frozen=True)
class FactorialPivot:
    """The test score per cell of a factorial design (rows = every factor but the last,
    factors and levels in the study's declared order), and the cell the objective picks.

    `metric` is the test metric shown; `best` the cell with the best mean `selected_by` (the
    objective: a test metric, or the same metric on the validation split).
    """

    metric: MetricName
    selected_by: str
    row_factors: tuple[str, ...]
    column_factor: str
    mean: pd.DataFrame
    sd: pd.DataFrame
    units: pd.DataFrame
    best: tuple[Any, Any] | None


def fold_inference(experiment: Experiment) -> FoldInference:
    """How the study's fold protocol has its comparisons tested."""
    protocol = experiment.study.protocol
    resampled = protocol.kind == "stratified" and protocol.k is not None and protocol.k > 1
    return FoldInference(protocol=protocol.kind, k=protocol.k, repeats=protocol.repeats,
                         planned_folds=len(experiment.study.folds),
                         test_train_ratio=1.0 / (protocol.k - 1) if resampled else 0.0)


def ablation_table(experiment: Experiment) -> pd.DataFrame:
    """The seed papers' Table V form, with spread and a paired test against the baseline.

    Columns: the variant summary, then for the comparison metric `delta_pp` (mean fold
    difference vs the baseline, pp), its 95 % CI, `wilcoxon_p`, `t_p` (plain or corrected,
    `fold_inference`), `holm_p` (Holm over every comparison's verdict p), `n_folds`,
    `seed_sd` (the variant's sd across seeds within a fold, averaged over folds, pp),
    `verdict` and `note` (why a p is missing).
    """
    summary = variant_summary(experiment).reset_index()
    units = unit_frame(experiment)
    metric = experiment.test_metric
    inference = fold_inference(experiment)
    finished = units[(units["status"] == "finished") & units[metric].notna()]
    comparisons = [_compare_with_baseline(finished, variant, experiment.baseline, metric,
                                          inference) for variant in summary["variant"]]
    table = pd.concat([summary, pd.DataFrame(comparisons, index=summary.index)], axis=1)
    compared = table["variant"] != experiment.baseline
    table["holm_p"] = math.nan
    if experiment.baseline is not None:
        table.loc[compared, "holm_p"] = holm(
            table.loc[compared, inference.verdict_column].to_numpy())
    table["verdict"] = [_verdict(row, experiment.baseline, inference)
                        for row in table.to_dict("records")]
    return table


def variant_definitions(experiment: Experiment) -> pd.DataFrame:
    """What each variant changes relative to the study's base configuration."""
    records = [{"variant": name, "changes": _describe_changes(changes)}
               for name, changes in variant_changes(experiment).items()]
    return pd.DataFrame(records, columns=["variant", "changes"])


def factorial_pivot(experiment: Experiment) -> FactorialPivot:
    """Test score mean / sd / finished units per cell; the best cell by the objective."""
    levels = experiment.study.factors
    factors = list(levels)
    if not factors:
        raise UserError("a factorial report needs the study record's factors")
    column_factor, row_factors = factors[-1], factors[:-1]
    metric = experiment.test_metric
    units = unit_frame(experiment)
    finished = units[units["status"] == "finished"].copy()
    row_columns = [f"factor.{name}" for name in row_factors] or ["_all"]
    finished["_all"] = "all"
    keys = [*row_columns, f"factor.{column_factor}"]
    row_index = (pd.MultiIndex.from_product([levels[name] for name in row_factors],
                                            names=row_factors) if len(row_factors) > 1
                 else pd.Index(levels[row_factors[0]] if row_factors else ["all"],
                               name=row_factors[0] if row_factors else ""))
    shape = {"index": row_index, "columns": pd.Index(levels[column_factor], name=column_factor)}
    grouped = (finished.assign(score=finished[metric].astype(float) * PERCENT)
               .groupby(keys)["score"])
    chosen = (finished.assign(score=finished[experiment.objective].astype(float))
              .groupby(keys)["score"].mean())
    mean = _unstacked(grouped.mean(), shape)
    sd = _unstacked(grouped.std(ddof=1), shape)
    counts = _unstacked(grouped.count(), shape).fillna(0).astype(int)
    stacked = _unstacked(chosen, shape).stack().dropna()
    best = None
    if not stacked.empty:
        label = stacked.idxmax() if experiment.maximise else stacked.idxmin()
        best = (label[:-1] if len(row_factors) > 1 else label[0], label[-1])
    return FactorialPivot(metric=metric, selected_by=experiment.objective,
                          row_factors=tuple(row_factors), column_factor=column_factor,
                          mean=mean, sd=sd, units=counts, best=best)


def _compare_with_baseline(finished: pd.DataFrame, variant: str, baseline: str | None,
                           metric: str, inference: FoldInference) -> dict[str, Any]:
    own = finished[finished["variant"] == variant]
    blank = {"delta_pp": math.nan, "delta_ci_low": math.nan, "delta_ci_high": math.nan,
             "wilcoxon_p": math.nan, "t_p": math.nan, "n_folds": 0,
             "seed_sd": within_fold_sd(own["fold"], own[metric].astype(float) * PERCENT),
             "note": ""}
    if baseline is None:
        return {**blank, "note": "no baseline"}
    if variant == baseline:
        return blank
    pairs = own[["fold", "seed", metric]].merge(
        finished[finished["variant"] == baseline][["fold", "seed", metric]],
        on=["fold", "seed"], suffixes=("_variant", "_baseline"))
    differences = fold_differences(
        pairs["fold"], (pairs[f"{metric}_variant"].astype(float)
                        - pairs[f"{metric}_baseline"].astype(float)) * PERCENT)
    result = paired_test(differences, inference.test_train_ratio)
    return {**blank, "delta_pp": result.mean_difference, "delta_ci_low": result.ci_low,
            "delta_ci_high": result.ci_high, "wilcoxon_p": result.wilcoxon_p, "t_p": result.t_p,
            "n_folds": result.n_folds, "note": result.reason or ""}


def _verdict(row: dict[str, Any], baseline: str | None, inference: FoldInference) -> str:
    if baseline is None:
        return ""
    if row["variant"] == baseline:
        return "baseline"
    if row["n_folds"] == 0:
        return "no pairs"
    if not inference.can_reach_significance(row["n_folds"]):
        return "within noise (n too small)"
    if row["holm_p"] >= SIGNIFICANCE_LEVEL:
        return "within noise"
    return "significant"


def _describe_changes(changes: dict[str, Any]) -> str:
    """The changes in the order the study declares them (factor by factor)."""
    return "; ".join(f"{key}={json.dumps(value)}" for key, value in changes.items()) \
        or "(base configuration)"


def _unstacked(values: pd.Series, shape: dict[str, pd.Index]) -> pd.DataFrame:
    frame = values.unstack(-1) if not values.empty else pd.DataFrame()
    return frame.reindex(index=shape["index"], columns=shape["columns"]).astype(float)
