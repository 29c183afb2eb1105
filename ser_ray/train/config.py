"""What a training run is: the model, the data, the optimisation and the seed.

`ModelChoice` names a registered model or a paper preset plus option overrides; `TrainJob`
binds it and the training settings (`ser_ray.experiment.TrainConfig`) to the files of one
study (manifest, folds, feature cache) and a seed, and is what the plain loop, a Ray Train
worker and a Tune trial all receive.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pydantic
from pydantic import Field

from ser_ray.experiment import TrainConfig
from ser_ray.schema import StrictModel


class ModelChoice(StrictModel):
    """A registered model or a paper preset (its options first, then `options` over them)."""

    name: str = Field(description="model name (ser-ray models) or preset name")
    options: dict[str, Any] = Field(default_factory=dict)


class TrainJob(StrictModel):
    """Everything one k-fold run needs; paths absolute so Ray workers find them."""

    manifest: Path
    folds: Path
    cache: Path
    model: ModelChoice
    train: TrainConfig = Field(default_factory=TrainConfig)
    seed: int = Field(0, ge=0, description="seeds init, shuffling, mixup and dropout per fold")
    fold_indices: tuple[int, ...] | None = Field(
        None, description="folds to run; None = every fold of the table")

    @pydantic.field_validator("manifest", "folds", "cache")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.expanduser().resolve()

    def resume_key(self) -> str:
        """Identity of the run a checkpoint belongs to; more epochs may extend it."""
        identity = self.model_dump(mode="json", exclude={"fold_indices": True,
                                                         "train": {"epochs"}})
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
