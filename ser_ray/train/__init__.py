"""Training stage: k folds in lock-step, in one process (`train_folds`) or on Ray Train
(`ser_ray.train.ray_train.train_folds_on_ray`, not imported here so this package loads
without Ray)."""

from ser_ray.train.config import ModelChoice, TrainJob
from ser_ray.train.loop import RunOutcome, train_folds

__all__ = ["ModelChoice", "RunOutcome", "TrainJob", "train_folds"]
