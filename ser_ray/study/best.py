"""The study's best configuration as a predictor file, taken from its trial's last checkpoint.

Best = the configuration with the highest (or lowest, per the objective) mean over its
finished units; its seed-0 trial's final checkpoint holds every fold's weights at the
selected epoch, and the fold with the best selected (UA + WA) / 2 becomes
`DIR/best_model/predictor.pt` — what `ser-ray predict` and `ser-ray export` read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ser_ray.study.ledger import ledger_frame, read_ledger
from ser_ray.train.loop import DESCRIPTION_FILE, outcome_from_checkpoint
from ser_ray.train.outputs import save_predictor

BEST_MODEL = Path("best_model") / "predictor.pt"


def export_best_model(experiment_dir: Path) -> Path | None:
    """Write the best configuration's predictor; None when no finished unit has a checkpoint."""
    experiment_dir = Path(experiment_dir)
    objective = json.loads((experiment_dir / "study.json").read_text())["objective"]
    frame = ledger_frame(read_ledger(experiment_dir))
    if frame.empty:
        return None
    finished = frame[frame["status"] == "finished"]
    ranking = finished.groupby("variant")[objective["metric"]].mean() \
        .sort_values(ascending=objective["mode"] == "min")
    for variant in ranking.index:
        checkpoint = _last_checkpoint(experiment_dir, _trial_ids(finished, variant))
        if checkpoint is not None:
            path = experiment_dir / BEST_MODEL
            save_predictor(outcome_from_checkpoint(checkpoint), path)
            return path
    return None


def _trial_ids(finished: pd.DataFrame, variant: str) -> list[str]:
    rows = finished[finished["variant"] == variant].sort_values("seed")
    rows = rows[rows["seed"] == rows["seed"].iloc[0]]
    return list(dict.fromkeys(rows["trial_id"]))


def _last_checkpoint(experiment_dir: Path, trial_ids: list[str]) -> Path | None:
    """The newest checkpoint of these trials, in-process (tune/) or TorchTrainer (train/)."""
    candidates = []
    for trial_id in trial_ids:
        candidates += experiment_dir.glob(f"tune/run-*/trial_{trial_id}/checkpoint_*")
        candidates += experiment_dir.glob(f"train/train-{trial_id}/checkpoint_*")
    complete = [path for path in candidates if (path / DESCRIPTION_FILE).is_file()]
    return max(complete, key=lambda path: path.stat().st_mtime) if complete else None
