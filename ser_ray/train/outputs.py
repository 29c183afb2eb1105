"""What `ser-ray train` leaves in its output directory.

    metrics.parquet        fold, epoch, split, metric, value — every epoch of every fold
    summary.json           per fold (at its selected epoch), fold mean ± sd, pooled
    confusion_pooled.png   normalised confusion matrix of all test utterances
    confusion_fold<i>.png  one per fold
    learning_curves.png    fold-mean ± sd test UA/WA and training loss per epoch
    model/predictor.pt     weights at the selected epoch of the best fold, with the feature
                           recipe, STFT version, standardisation and label map: what
                           prediction needs, nothing else
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ser_ray.plots import plot_confusion, plot_learning_curves
from ser_ray.train.loop import RunOutcome
from ser_ray.train.results import metrics_frame, selected_records

PREDICTOR_FORMAT = 1
PREDICTOR_FILE = Path("model") / "predictor.pt"


def write_outputs(outcome: RunOutcome, out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = outcome.summary()
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    frame = metrics_frame(outcome.histories)
    frame.to_parquet(out_dir / "metrics.parquet", index=False)
    labels = summary["label_names"]
    rule = summary["selection"] + (" (OPTIMISTIC)" if summary["optimistic"] else "")
    pooled_ua = summary["pooled"]["unweighted_accuracy"]
    plot_confusion(summary["pooled"]["confusion_matrix"], labels,
                   out_dir / "confusion_pooled.png",
                   f"all folds pooled, epoch rule {rule}: UA {pooled_ua:.3f}")
    for fold, record in selected_records(outcome.histories, summary["selection"]).items():
        plot_confusion(record["test"]["confusion_matrix"], labels,
                       out_dir / f"confusion_fold{fold}.png",
                       f"fold {fold}, epoch {record['epoch']}: "
                       f"UA {record['test']['unweighted_accuracy']:.3f}")
    _plot_curves(frame, out_dir / "learning_curves.png")
    save_predictor(outcome, out_dir / PREDICTOR_FILE)
    return summary


def _plot_curves(frame: Any, path: Path) -> None:
    epochs = np.asarray(sorted(frame["epoch"].unique()))
    series = {}
    wanted = {("test", "unweighted_accuracy"): "test UA", ("test", "weighted_accuracy"): "test WA",
              ("validation", "unweighted_accuracy"): "validation UA"}
    for (split, metric), name in wanted.items():
        rows = frame[(frame["split"] == split) & (frame["metric"] == metric)]
        if rows.empty:
            continue
        by_epoch = rows.groupby("epoch")["value"]
        series[name] = (by_epoch.mean().to_numpy(), by_epoch.std(ddof=1).fillna(0).to_numpy())
    plot_learning_curves(epochs, series, path, "fold mean ± sd per epoch", "score")


def save_predictor(outcome: RunOutcome, path: Path) -> None:
    description = outcome.description
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": PREDICTOR_FORMAT, "model": description["model"],
        "model_options": description["model_options"],
        "label_names": description["label_names"], "recipe": description["recipe"],
        "stft_version": description["test_version"],
        "feature_shape": description["feature_shape"], "standardizer": outcome.standardizer,
        "fold": outcome.predictor_fold,
    }
    torch.save({**payload, "state_dict": outcome.predictor_state}, path)
    path.with_suffix(".json").write_text(json.dumps(
        {name: value for name, value in payload.items() if name != "standardizer"}, indent=2))
