"""The study's best configuration as a predictor file, taken from its trial's last checkpoint.

Best = the configuration with the highest (or lowest, per the objective) mean over its
finished units. Of its lowest seed, the unit with the best selected (UA + WA) / 2 names the
checkpoint: the one its ledger row records, read from the study's trial storage (a local
directory or a URI such as s3://; see `ser_ray.study.storage`). That checkpoint holds its
trial's folds at the selected epoch, and the best of them becomes
`DIR/best_model/predictor.pt` — what `ser-ray predict` and `ser-ray export` read.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ser_ray.study.ledger import ledger_frame
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
    # The report's ranking, so that the exported model is the configuration the report names.
    from ser_ray.report.tables import best_variant, load_experiment

    experiment = load_experiment(Path(experiment_dir))
    best = best_variant(experiment)
    if best is None:
        return None
    frame = ledger_frame(experiment.rows)
    unit = _best_unit(frame[(frame["variant"] == best["variant"])
                            & (frame["status"] == "finished")])
    if pd.isna(unit["checkpoint"]):
        raise MissingCheckpoint(f"the ledger records no checkpoint for {unit['variant']} "
                                f"(trial {unit['trial_id']}), the best configuration")
    storage = experiment.study["trial_storage"]
    checkpoint = stored_checkpoint(storage, unit["checkpoint"])
    try:
        with checkpoint.as_directory() as directory:
            outcome = outcome_from_checkpoint(Path(directory))
    except FileNotFoundError as error:
        raise MissingCheckpoint(f"the checkpoint of {unit['variant']}, the best "
                                f"configuration, is not in {storage}: {error}") from error
    path = experiment.directory / BEST_MODEL
    save_predictor(outcome, path)
    return path


def _best_unit(finished: pd.DataFrame) -> pd.Series:
    """Of one configuration's finished units, its lowest seed's best by (UA + WA) / 2."""
    rows = finished[finished["seed"] == finished["seed"].min()]
    return rows.loc[rows["ua_wa_mean"].idxmax()]
