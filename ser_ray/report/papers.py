"""Paper vs ours: a reproduction's numbers beside the paper's, with both protocols."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ser_ray.experiment import Experiment
from ser_ray.papers import paper, paper_row
from ser_ray.report.setup import selection_rule
from ser_ray.report.units import variant_summary

# The papers' metric names (spec §0) → ledger fields; P / R / F1 rows have no counterpart.
PAPER_METRICS = {"UA": "unweighted_accuracy", "WA": "weighted_accuracy", "ACC": "ua_wa_mean",
                 "params": "parameters"}


def protocol_comparison(experiment: Experiment) -> pd.DataFrame:
    """The paper's protocol beside ours: split unit, evaluation, selection, speakers."""
    assert experiment.study.reproduces is not None
    reported = paper(experiment.study.reproduces.paper)["protocol"]
    ours = _our_protocol(experiment)
    records = [{"aspect": aspect, "paper": reported.get(aspect), "ours": ours[aspect],
                "differs": reported.get(aspect) != ours[aspect]} for aspect in ours]
    return pd.DataFrame(records, columns=["aspect", "paper", "ours", "differs"])


def paper_defaults(name: str) -> pd.DataFrame:
    """The spec's [DEFAULT] knobs a reproduction of this paper depends on."""
    return pd.DataFrame(paper(name).get("defaults") or [], columns=["knob", "value", "spec"])


def paper_vs_ours(experiment: Experiment) -> pd.DataFrame:
    """One row per (variant, reported metric): reported value, ours (mean ± sd, %), Δ (pp),
    each protocol aspect as paper and ours, and the [DEFAULT] knobs the row depends on."""
    reproduces = experiment.study.reproduces
    if reproduces is None:
        return pd.DataFrame()
    summary = variant_summary(experiment)
    protocol = protocol_comparison(experiment).set_index("aspect")
    knobs = ", ".join(paper_defaults(reproduces.paper)["knob"].astype(str)) or "none"
    context = {**{f"{aspect}_paper": protocol.loc[aspect, "paper"] for aspect in protocol.index},
               **{f"{aspect}_ours": protocol.loc[aspect, "ours"] for aspect in protocol.index},
               "defaults": knobs}
    records = []
    for variant, row_key in reproduces.rows.items():
        try:
            reported = paper_row(reproduces.paper, row_key)
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


def _our_protocol(experiment: Experiment) -> dict[str, Any]:
    study = experiment.study
    return {"split_unit": "utterance",
            "evaluation": "k-fold mean" if len(study.folds) > 1 else "single split",
            "selection": selection_rule(experiment),
            "speaker_independent": study.protocol.speaker_independent}


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
