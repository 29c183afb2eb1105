"""The study's best configuration as a predictor file, taken from its trial's last checkpoint.

Best = the first configuration of the experiment's ranking (`ser_ray.experiment.ranking`, the
order the report shows). Of its lowest seed, the finished unit with the best selected
(UA + WA) / 2 names the checkpoint: the one its ledger row records, read from the study's
trial storage (a local directory or a URI such as s3://; see `ser_ray.study.storage`). That
checkpoint holds its trial's folds at the selected epoch, and the best of them becomes
`DIR/best_model/predictor.pt` — what `ser-ray predict` and `ser-ray export` read.
"""

from __future__ import annotations

import math
from pathlib import Path

from ser_ray.experiment import UnitRow, best, load_experiment
from ser_ray.study.storage import checkpoint_directory
from ser_ray.train.loop import outcome_from_checkpoint
from ser_ray.train.outputs import save_predictor

BEST_MODEL = Path("best_model") / "predictor.pt"


class MissingCheckpoint(Exception):
    """The best configuration's checkpoint is not recorded or not in the trial storage."""


def export_best_model(experiment_dir: Path) -> Path | None:
    """Write the best configuration's predictor; None when no configuration is ranked yet.

    Raises MissingCheckpoint rather than exporting a runner-up when the best configuration's
    checkpoint cannot be read.
    """
    experiment = load_experiment(Path(experiment_dir))
    leader = best(experiment)
    if leader is None:
        return None
    unit = _best_unit(experiment.rows_of(leader.variant, "finished"), experiment.objective,
                      experiment.maximise)
    if unit.checkpoint is None:
        raise MissingCheckpoint(f"the ledger records no checkpoint for {unit.variant} "
                                f"(trial {unit.trial_id}), the best configuration")
    storage = experiment.study.trial_storage
    try:
        with checkpoint_directory(storage, unit.checkpoint) as directory:
            outcome = outcome_from_checkpoint(directory)
    except FileNotFoundError as error:
        raise MissingCheckpoint(f"the checkpoint of {unit.variant}, the best "
                                f"configuration, is not in {storage}: {error}") from error
    path = experiment.directory / BEST_MODEL
    save_predictor(outcome, path)
    return path


def _best_unit(finished: list[UnitRow], objective: str, maximise: bool) -> UnitRow:
    """Of one configuration's finished units, its lowest seed's best fold by the study's
    objective (a validation metric picks the fold without its test split; a NaN score never
    wins; the first of equals does)."""
    lowest = min(row.seed for row in finished)
    candidates = [row for row in finished if row.seed == lowest]
    sign = 1.0 if maximise else -1.0
    scores = [row.objective_score(objective) for row in candidates]
    scored = [(sign * score, -index) for index, score in enumerate(scores)
              if score is not None and math.isfinite(score)]
    return candidates[-max(scored)[1]] if scored else candidates[0]
