"""The training settings of a configuration, validated once: what a ledger row records.

`TrainConfig` holds every optimisation and data-use knob with the spec's value or a marked
[DEFAULT]; `LossOptions` the loss. Each seed model starts from its paper's training
(`PAPER_TRAINING`, `paper_training`). The seed of a run is not a setting: a configuration is
trained at several seeds, and each unit records its own.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import pydantic
from pydantic import Field

from ser_ray.schema import StrictModel, validate

SelectionRule = Literal["last", "best-validation", "best-test"]
SELECTION_RULES: tuple[str, ...] = get_args(SelectionRule)
# The rule that picks an epoch on the test set itself: every number it gives is OPTIMISTIC.
OPTIMISTIC_RULE = "best-test"


class LossOptions(StrictModel):
    """The training loss. Mixup acts on inputs, so the training loop applies it: when
    `mixup_alpha > 0`, `mixup_batch` before the forward pass and `mixup_loss` around the
    function `make_loss` returns (`ser_ray.train.losses`)."""

    kind: Literal["ce", "weighted_ce", "focal"] = Field(
        "ce", description="'ce' [spec §2.5, §3.4]; 'weighted_ce' = CE with inverse-frequency "
        "class weights; 'focal' = focal loss [spec §1.5]")
    gamma: float = Field(2.0, ge=0.0, description="focal exponent γ; 2 [DEFAULT, spec §1.5]; "
                         "focal only")
    focal_alpha: Literal["inverse_frequency", "uniform"] = Field(
        "inverse_frequency",
        description="focal class weights α: N / (K·N_c) [DEFAULT, spec §1.5] or all ones")
    mixup_alpha: float = Field(0.0, ge=0.0, description="mixup Beta(α, α) parameter; 0 = off; "
                               "CTMAM 0.2 [spec §2.5]")
    label_smoothing: float = Field(
        0.0, ge=0.0, lt=1.0, description="label smoothing s of (weighted) CE; 0 = off; the "
        "ctmam code trains with 0.2 in the form 'ce_plus_smoothed' when mixup is off, so not "
        "in its paper training [code train_IEMOCAP.py, train_Emodb.py; spec §2.5]")
    label_smoothing_form: Literal["smoothed_targets", "ce_plus_smoothed"] = Field(
        "smoothed_targets", description="how s enters the loss: 'smoothed_targets' = CE "
        "against (1 − s)·one-hot + s/K (PyTorch's label_smoothing); 'ce_plus_smoothed' = "
        "plain CE plus that smoothed CE, the ctmam authors' nn.CrossEntropyLoss() + timm "
        "LabelSmoothingCrossEntropy(smoothing=0.2) [code train_IEMOCAP.py, train_Emodb.py], "
        "equal to 2 × smoothed-target CE at s/2; 'ce' only. With s = 0 both are plain CE")

    @pydantic.model_validator(mode="after")
    def _smoothing_only_for_cross_entropy(self) -> LossOptions:
        if self.kind == "focal" and self.label_smoothing > 0:
            raise ValueError(f"label_smoothing applies to 'ce' and 'weighted_ce', not to "
                             f"'focal', got label_smoothing={self.label_smoothing}")
        if (self.kind == "weighted_ce" and self.label_smoothing > 0
                and self.label_smoothing_form == "ce_plus_smoothed"):
            raise ValueError("label_smoothing_form 'ce_plus_smoothed' is the ctmam code's "
                             "unweighted loss: use it with kind 'ce', or 'smoothed_targets' "
                             "with 'weighted_ce'")
        return self

    @property
    def needs_class_weights(self) -> bool:
        """Whether the loss needs the training fold's inverse-frequency class weights."""
        return self.kind == "weighted_ce" or (
            self.kind == "focal" and self.focal_alpha == "inverse_frequency")


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
    validation: Literal["none", "train-speakers", "test-fold-speaker"] = Field(
        "none", description="'train-speakers': whole speakers of each training fold (about "
        "validation_fraction of its utterances, drawn by validation_seed) are held out as "
        "validation, so that epochs and configurations can be chosen without the test fold "
        "(a held-out IEMOCAP actor's session partner may still train: they share dialogs, not "
        "voices); "
        "'test-fold-speaker': one speaker of each test fold is held out as validation and not "
        "scored as test (e.g. the other actor of an IEMOCAP session)")
    validation_fraction: float = Field(
        0.2, gt=0, lt=1, description="'train-speakers': the share of the training fold's "
        "utterances held out, in whole speakers: speakers are drawn until they hold this "
        "share, at least one and never all [DEFAULT]")
    validation_seed: int = Field(0, ge=0, description="'train-speakers': which speakers are "
                                 "held out (drawn per fold)")
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
    deterministic: bool = Field(False, description="torch deterministic algorithms")
    amp: bool = Field(False, description="mixed precision (bfloat16 autocast), CUDA only; "
                      "off: the papers' code trains in float32")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA if present")
    eval_batch_size: int = Field(256, ge=1, description="batch for scoring")

    @pydantic.model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.selection == "best-validation" and self.validation == "none":
            raise ValueError("selection 'best-validation' needs a validation split: set "
                             "validation: train-speakers (or test-fold-speaker)")
        if self.train_versions is not None and self.test_version is None:
            raise ValueError("train_versions (STFT augmentation) needs test_version too")
        if self.lr_floor and self.lr_decay == 1.0:
            raise ValueError(f"lr_floor={self.lr_floor} has no effect without lr_decay < 1")
        return self

    @property
    def optimistic(self) -> bool:
        return self.selection == OPTIMISTIC_RULE


# The spec's training of each seed model; a run starts from its model's entry. ctmam selects
# its best test epoch, as its code did to produce the paper's numbers (spec §2.6 item 7):
# faithful to the paper and flagged OPTIMISTIC wherever reported; `selection: last` is honest.
# Its code mixes up and then smooths nothing; without mixup it adds label-smoothed CE to CE,
# so asking ctmam for mixup_alpha 0 and label_smoothing 0.2 gives the authors' loss.
PAPER_TRAINING: dict[str, dict[str, Any]] = {
    "eca_cnn": {"loss": {"kind": "focal"}},
    "ctmam": {"epochs": 150, "batch_size": 128, "lr": 1e-3, "weight_decay": 1e-6,
              "lr_decay": 0.95, "lr_floor": 1e-6,
              "loss": {"kind": "ce", "mixup_alpha": 0.2,
                       "label_smoothing_form": "ce_plus_smoothed"},
              "selection": "best-test"},
    "cnn1d_csa": {"epochs": 100, "batch_size": 16, "lr": 1e-5, "loss": {"kind": "ce"},
                  "standardize": "train-fold"},
    "eca_cnn_bilstm": {"epochs": 100, "batch_size": 32, "lr": 1e-3, "loss": {"kind": "ce"},
                       "standardize": "train-fold"},
}


def paper_training(family: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The spec's training for a model family (spec §1.5, §2.5, §3.4, §4.2), then overrides
    (a `loss` mapping updates the paper's loss field by field).

    >>> paper_training("ctmam").loss.mixup_alpha, paper_training("eca_cnn").loss.kind
    (0.2, 'focal')
    """
    settings = {**PAPER_TRAINING.get(family, {})}
    for key, value in (overrides or {}).items():
        if key == "loss" and isinstance(value, dict):
            value = {**settings.get("loss", {}), **value}
        settings[key] = value
    return parse_train_config(settings)


def parse_train_config(values: dict[str, Any]) -> TrainConfig:
    """TrainConfig from plain values, with errors that name the field and what is allowed."""
    return validate(TrainConfig, values, "training settings")
