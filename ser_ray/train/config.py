"""What a training run is: the model, the data selection and the optimisation, validated once.

`TrainConfig` holds every training knob with the spec's value or a marked [DEFAULT];
`ModelChoice` names a registered model or a paper preset plus option overrides; `TrainJob`
binds both to the files of one study (manifest, folds, feature cache) and is what the plain
loop, a Ray Train worker and a Tune trial all receive.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, get_args

import pydantic
from pydantic import Field

from ser_ray.schema import StrictModel, validate
from ser_ray.train.losses import LossOptions

SelectionRule = Literal["last", "best-validation", "best-test"]
SELECTION_RULES: tuple[str, ...] = get_args(SelectionRule)


class TrainConfig(StrictModel):
    """Optimisation and data-use settings of one run (defaults: the eca_cnn paper, spec §1.5)."""

    epochs: int = Field(150, ge=1, description="epochs per fold [spec §1.5]")
    batch_size: int = Field(32, ge=2, description="training batch [spec §1.5]; at least 2, "
                            "as batch normalisation needs two examples")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="[spec §1.5]")
    lr: float = Field(1e-3, gt=0, description="initial learning rate [DEFAULT, spec §1.5]")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam moment decay rates "
                                       "[DEFAULT, spec §1.5]")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(0.0, ge=0, description="L2 weight decay (CTMAM 1e-6)")
    lr_decay: float = Field(1.0, gt=0, le=1, description="ExponentialLR γ per epoch; 1 = "
                            "constant (eca_cnn [DEFAULT]); CTMAM 0.95 [spec §2.5]")
    lr_floor: float = Field(0.0, ge=0, description="stop decaying once lr < floor (CTMAM 1e-6)")
    loss: LossOptions = Field(default_factory=lambda: LossOptions(kind="focal"),
                              description="weighted focal loss γ=2 [spec §1.5]")
    selection: SelectionRule = Field(
        "last", description="epoch whose test metrics are reported: 'last' (honest default), "
        "'best-validation' (needs validation), 'best-test' (OPTIMISTIC: picks the epoch on the "
        "test set itself, as the ctmam paper reported [spec §2.1])")
    validation: Literal["none", "test-fold-speaker"] = Field(
        "none", description="'test-fold-speaker': one speaker of each test fold is held out "
        "as validation and not scored as test (e.g. the other actor of an IEMOCAP session)")
    standardize: Literal["none", "train-fold"] = Field(
        "none", description="z-score each feature row index (mel bin, MFCC, vector column) "
        "with mean/std of the fold's training rows; cnn1d_csa and eca_cnn_bilstm use it "
        "[spec §3.2, §4.2]; none for logmel [DEFAULT, spec §1.2]")
    test_version: int | None = Field(
        None, description="STFT version the test utterances are scored at (logmel caches); "
        "None = the cache's only version")
    train_versions: tuple[int, ...] | None = Field(
        None, description="STFT versions whose rows train (STFT augmentation, spec §1.6); "
        "None = test_version only")
    augmentations: tuple[str, ...] | Literal["all"] = Field(
        (), description="augmented copies (cache `augmentation` names, e.g. 'noise:snr=20') "
        "added to training; 'all' = every copy in the cache; () = originals only")
    seed: int = Field(0, ge=0, description="seeds init, shuffling, mixup and dropout per fold")
    deterministic: bool = Field(False, description="torch deterministic algorithms")
    amp: bool = Field(True, description="mixed precision (bfloat16 autocast) on CUDA only")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA if present")
    eval_batch_size: int = Field(256, ge=1, description="batch for scoring")

    @pydantic.model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.selection == "best-validation" and self.validation == "none":
            raise ValueError("selection 'best-validation' needs a validation split: set "
                             "validation: test-fold-speaker")
        if self.train_versions is not None and self.test_version is None:
            raise ValueError("train_versions (STFT augmentation) needs test_version too")
        if self.lr_floor and self.lr_decay == 1.0:
            raise ValueError(f"lr_floor={self.lr_floor} has no effect without lr_decay < 1")
        return self


# The spec's training of each seed model; a run starts from its model's entry. ctmam selects
# its best test epoch, as its code did to produce the paper's numbers (spec §2.6 item 7):
# faithful to the paper and flagged OPTIMISTIC wherever reported; `selection: last` is honest.
PAPER_TRAINING: dict[str, dict[str, Any]] = {
    "eca_cnn": {"loss": {"kind": "focal"}},
    "ctmam": {"epochs": 150, "batch_size": 128, "lr": 1e-3, "weight_decay": 1e-6,
              "lr_decay": 0.95, "lr_floor": 1e-6,
              "loss": {"kind": "ce", "mixup_alpha": 0.2}, "selection": "best-test"},
    "cnn1d_csa": {"epochs": 100, "batch_size": 16, "lr": 1e-5, "loss": {"kind": "ce"},
                  "standardize": "train-fold"},
    "eca_cnn_bilstm": {"epochs": 100, "batch_size": 32, "lr": 1e-3, "loss": {"kind": "ce"},
                       "standardize": "train-fold"},
}


def paper_training(model_name: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The spec's training for a model family (spec §1.5, §2.5, §3.4, §4.2), then overrides.

    >>> paper_training("ctmam").loss.mixup_alpha, paper_training("eca_cnn").loss.kind
    (0.2, 'focal')
    """
    settings = {**PAPER_TRAINING.get(model_name, {})}
    for key, value in (overrides or {}).items():
        if key == "loss" and isinstance(value, dict):
            value = {**settings.get("loss", {}), **value}
        settings[key] = value
    return parse_train_config(settings)


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


def parse_train_config(values: dict[str, Any]) -> TrainConfig:
    """TrainConfig from plain values, with errors that name the field and what is allowed."""
    return validate(TrainConfig, values, "training settings")
