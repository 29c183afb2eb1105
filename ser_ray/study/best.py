"""The study's best configuration as a predictor file, taken from its trial's last checkpoint.

Best = the configuration with the highest (or lowest, per the objective) mean over its
finished units. Of its lowest seed, the unit with the best selected (UA + WA) / 2 names the
checkpoint: the one its ledger row records, read from the study's trial storage (a local
directory or a URI such as s3://; see `ser_ray.study.storage`). That checkpoint holds its
trial's folds at the selected epoch, and the best of them becomes
`DIR/best_model/predictor.pt` — what `ser-ray predict` and `ser-ray export` read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ser_ray.study.ledger import ledger_frame, read_ledger
from ser_ray.study.prepare import STUDY_FILE
from ser_ray.study.storage import stored_checkpoint
from ser_ray.train.loop import outcome_from_checkpoint
from ser_ray.train.outputs import save_predictor

BEST_MODEL = Path("best_model") / "predictor.pt"


class MissingCheckpoint(Exception):
    """The best configuration's checkpoint is not recorded or not in the trial storage."""


def export_best_model(experiment_dir: Path) -> Path | None:
    """Write the best configuration's predictor; None when no unit finished.

    Raises MissingCheckpoint rather than exporting a runner-up when the best configuration's
    checkpoint cannot be read.
    """
    experiment_dir = Path(experiment_dir)
    description = json.loads((experiment_dir / STUDY_FILE).read_text())
    frame = ledger_frame(read_ledger(experiment_dir))
    if frame.empty or not (frame["status"] == "finished").any():
        return None
    unit = _best_unit(frame[frame["status"] == "finished"], description["objective"])
    if pd.isna(unit["checkpoint"]):
        raise MissingCheckpoint(f"the ledger records no checkpoint for {unit['variant']} "
                                f"(trial {unit['trial_id']}), the best configuration")
    storage = description["trial_storage"]
    checkpoint = stored_checkpoint(storage, unit["checkpoint"])
    try:
        with checkpoint.as_directory() as directory:
            outcome = outcome_from_checkpoint(Path(directory))
    except FileNotFoundError as error:
        raise MissingCheckpoint(f"the checkpoint of {unit['variant']}, the best "
                                f"configuration, is not in {storage}: {error}") from error
    path = experiment_dir / BEST_MODEL
    save_predictor(outcome, path)
    return path


def _best_unit(finished: pd.DataFrame, objective: dict[str, str]) -> pd.Series:
    ranking = finished.groupby("variant")[objective["metric"]].mean() \
        .sort_values(ascending=objective["mode"] == "min")
    rows = finished[finished["variant"] == ranking.index[0]]
    rows = rows[rows["seed"] == rows["seed"].min()]
    return rows.loc[rows["ua_wa_mean"].idxmax()]
