"""Per-epoch fold records → epoch selection, fold-mean reports, summaries and metric tables.

Pure numpy/pandas: the training loop, the Ray paths and the study's ledger writer all read
the same records through these functions, so a number means the same thing everywhere.

A fold record is the JSON-ready dict one fold produces per epoch:
`{"fold": 0, "epoch": 3, "train_loss": ..., "lr": ..., "seconds": ...,
"test": metrics.report(...), "validation": metrics.report(...) or None}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ser_ray.experiment.metrics import METRIC_NAMES, VALIDATION_PREFIX
from ser_ray.experiment.training import OPTIMISTIC_RULE
from ser_ray.train.metrics import pooled, report

SELECTION_METRIC = "ua_wa_mean"
# Fold means at each fold's selected epoch so far carry this prefix in an epoch summary: the
# number a study ranks a configuration by, had it stopped at that epoch, and so the number
# its scheduler prunes on and its searcher learns from (`selected_metric`).
SELECTED_PREFIX = "selected_"
BY_FOLD_PREFIX = "by_fold_"
Record = dict[str, Any]


def selected_by_fold(metric: str) -> str:
    """The epoch-summary key of a metric's per-fold values at the selected epochs so far,
    `{fold: value}`: what a scheduler that pairs configurations by fold compares.

    >>> selected_by_fold("unweighted_accuracy")
    'by_fold_selected_unweighted_accuracy'
    """
    return BY_FOLD_PREFIX + selected_metric(metric)


def selected_metric(metric: str) -> str:
    """The epoch-summary key of a metric (`validation_` prefixed or not) at the selected epochs.

    >>> selected_metric("validation_unweighted_accuracy")
    'selected_validation_unweighted_accuracy'
    """
    return SELECTED_PREFIX + metric


def select_epoch(history: Sequence[Record], rule: str) -> int:
    """The epoch (1-based) whose test metrics a fold reports under `rule`.

    'best-validation' and 'best-test' take the first epoch with the highest (UA + WA) / 2 on
    the validation or the test split (the ctmam code's rule, spec §2.1).

    >>> history = [{"epoch": e, "test": {"ua_wa_mean": v}} for e, v in [(1, .5), (2, .7), (3, .6)]]
    >>> select_epoch(history, "last"), select_epoch(history, "best-test")
    (3, 2)
    """
    if not history:
        raise ValueError("no epochs to select from")
    if rule == "last":
        return int(history[-1]["epoch"])
    split = {"best-validation": "validation", OPTIMISTIC_RULE: "test"}[rule]
    values = [record[split][SELECTION_METRIC] for record in history]
    return int(history[int(np.nanargmax(values))]["epoch"])


def epoch_summary(records: Sequence[Record],
                  selected: Sequence[Record] | None = None) -> dict[str, Any]:
    """Fold-mean (and sd) metrics of one epoch across folds and, given each fold's record at
    its selected epoch so far (`selected_so_far`), their fold means under `selected_metric`
    keys (under 'last' the same numbers, under 'best-…' the best epoch's so far) and the
    folds' own values under `selected_by_fold` keys.

    >>> record = lambda fold, epoch, ua: {"fold": fold, "epoch": epoch, "train_loss": 1.0,
    ...     "test": {"unweighted_accuracy": ua, "weighted_accuracy": ua, "ua_wa_mean": ua,
    ...              "macro_f1": ua}, "validation": None}
    >>> summary = epoch_summary([record(0, 2, 0.5), record(1, 2, 0.75)],
    ...                         selected=[record(0, 1, 0.625), record(1, 2, 0.75)])
    >>> summary["unweighted_accuracy"], summary["selected_unweighted_accuracy"]
    (0.625, 0.6875)
    >>> summary["by_fold_selected_unweighted_accuracy"]
    {'0': 0.625, '1': 0.75}
    """
    summary: dict[str, Any] = {"epoch": int(records[0]["epoch"]), "folds": len(records),
                               "train_loss": float(np.mean([r["train_loss"] for r in records]))}
    for split, prefix in (("test", ""), ("validation", VALIDATION_PREFIX)):
        if any(record[split] is None for record in records):
            continue
        for name in METRIC_NAMES:
            values = [record[split][name] for record in records]
            summary[prefix + name] = float(np.mean(values))
            summary[prefix + name + "_sd"] = float(np.std(values, ddof=1)) \
                if len(values) > 1 else 0.0
            if selected is not None:
                summary[selected_metric(prefix + name)] = float(np.mean(
                    [record[split][name] for record in selected]))
                summary[selected_by_fold(prefix + name)] = {
                    str(record["fold"]): float(record[split][name]) for record in selected}
    return summary


def selected_so_far(history: Sequence[Record], rule: str) -> Record:
    """A fold's record at the epoch `rule` selects among the epochs trained so far."""
    epoch = select_epoch(history, rule)
    return next(record for record in history if record["epoch"] == epoch)


def format_epoch(summary: dict[str, Any], epochs: int) -> str:
    """One progress line: fold-mean test UA/WA ± sd and the training loss of an epoch."""
    line = (f"epoch {summary['epoch']:>3}/{epochs}  {summary['folds']} folds  "
            f"UA {summary['unweighted_accuracy']:.3f} ± {summary['unweighted_accuracy_sd']:.3f}  "
            f"WA {summary['weighted_accuracy']:.3f} ± {summary['weighted_accuracy_sd']:.3f}  "
            f"train loss {summary['train_loss']:.4f}")
    if "validation_unweighted_accuracy" in summary:
        line += f"  validation UA {summary['validation_unweighted_accuracy']:.3f}"
    return line


def selected_records(histories: dict[int, Sequence[Record]], rule: str) -> dict[int, Record]:
    """Each fold's record at its selected epoch."""
    return {fold: selected_so_far(history, rule) for fold, history in histories.items()}


def run_summary(histories: dict[int, Sequence[Record]], rule: str,
                label_names: Sequence[str]) -> dict[str, Any]:
    """Per-fold reports at the epochs `rule` selects, their mean ± sd, and the pooled report.

    Unless `rule` is already 'best-test', `optimistic_best_epoch` adds the same reports at each
    fold's best test epoch (spec §1.1): how far the numbers would rise had the epoch been
    picked on the test set, never the result itself.
    """
    summary = {"selection": rule, "optimistic": rule == OPTIMISTIC_RULE,
               **_reports_at(selected_records(histories, rule), label_names)}
    if rule != OPTIMISTIC_RULE:
        summary["optimistic_best_epoch"] = {
            "selection": OPTIMISTIC_RULE, "optimistic": True,
            **_reports_at(selected_records(histories, OPTIMISTIC_RULE), label_names)}
    return summary


def _reports_at(chosen: dict[int, Record], label_names: Sequence[str]) -> dict[str, Any]:
    """Per-fold test reports of the chosen records, their mean ± sd, and the pooled report."""
    per_fold = {str(fold): {"selected_epoch": record["epoch"], **record["test"]}
                for fold, record in sorted(chosen.items())}
    fold_mean = {name: float(np.mean([record["test"][name] for record in chosen.values()]))
                 for name in METRIC_NAMES}
    fold_sd = {name: (float(np.std([record["test"][name] for record in chosen.values()],
                                   ddof=1)) if len(chosen) > 1 else 0.0)
               for name in METRIC_NAMES}
    matrix = pooled(np.asarray(record["test"]["confusion_matrix"]) for record in chosen.values())
    return {"folds": per_fold, "fold_mean": fold_mean, "fold_sd": fold_sd,
            "pooled": report(matrix, label_names)}


def metrics_frame(histories: dict[int, Sequence[Record]]) -> pd.DataFrame:
    """Long table (fold, epoch, split, metric, value) of every epoch of every fold."""
    rows = []
    for fold, history in sorted(histories.items()):
        for record in history:
            epoch = int(record["epoch"])
            rows.append((fold, epoch, "train", "loss", float(record["train_loss"])))
            rows.append((fold, epoch, "train", "lr", float(record["lr"])))
            for split in ("test", "validation"):
                if record.get(split) is None:
                    continue
                for name in (*METRIC_NAMES, "loss"):
                    rows.append((fold, epoch, split, name, float(record[split][name])))
                for kind in ("recall", "precision"):
                    for label, value in record[split][f"per_class_{kind}"].items():
                        if value is not None:
                            rows.append((fold, epoch, split, f"{kind}/{label}", float(value)))
    return pd.DataFrame(rows, columns=["fold", "epoch", "split", "metric", "value"])
