"""Classification losses of the seed systems, picked from config by `make_loss`.

- `cross_entropy`: Lee & Nadeem (spec §3.4), optionally against label-smoothed targets.
- `cross_entropy_plus_smoothed`: CTMAM's code without mixup, CE + label-smoothed CE (§2.5).
- `focal_loss` with α = `inverse_frequency_weights`: Kim & Kwon's weighted focal loss,
  L = −α_y (1 − p_y)^γ log p_y, γ = 2 [DEFAULT] (spec §1.5).
- `mixup_batch` + `mixup_loss`: CTMAM's mixup, λ ~ Beta(α, α), partner = a random
  permutation of the batch, loss = λ·L(ŷ, y_a) + (1 − λ)·L(ŷ, y_b) (spec §2.5).

**Normalisation.** Every loss here is the plain mean over the batch of per-example losses:
(1/B) Σ_i α_{y_i} ℓ_i. PyTorch's `cross_entropy(weight=α)` instead divides by Σ_i α_{y_i};
we do not, so that weighted CE is exactly focal loss at γ = 0, and so that a batch's loss
is linear in its examples (mixup mixes two such means). With α_c = N / (K·N_c) the expected
α of a training example is 1, so weighted and unweighted losses share one scale.

Targets are class indices (B,) throughout; logits are (B, K), before any softmax.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ser_ray.experiment import LossOptions

LossFunction = Callable[[Tensor, Tensor], Tensor]


def cross_entropy(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean softmax cross-entropy. (B, K) logits, (B,) class indices → scalar.

    >>> round(cross_entropy(torch.zeros(2, 4), torch.tensor([0, 3])).item(), 4)  # log 4
    1.3863
    """
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)


def cross_entropy_plus_smoothed(logits: Tensor, targets: Tensor, label_smoothing: float) -> Tensor:
    """CE + label-smoothed CE: the ctmam authors' loss without mixup (spec §2.5).

    Their train_IEMOCAP.py and train_Emodb.py add nn.CrossEntropyLoss() and timm's
    LabelSmoothingCrossEntropy(smoothing=s). timm's term, (1 − s)·(−log p_y) + s·mean_k(−log p_k),
    is PyTorch's CE against (1 − s)·one-hot + s/K, so the sum is (2 − s)·(−log p_y) +
    s·mean_k(−log p_k) = 2 × smoothed-target CE at s/2: twice the scale and half the smoothing
    of `cross_entropy` with the same s.

    >>> logits, targets = torch.zeros(2, 4), torch.tensor([0, 3])
    >>> round(cross_entropy_plus_smoothed(logits, targets, 0.2).item(), 4)  # 2 · log 4
    2.7726
    """
    return (F.cross_entropy(logits, targets)
            + F.cross_entropy(logits, targets, label_smoothing=label_smoothing))


def class_weighted_cross_entropy(
    logits: Tensor, targets: Tensor, class_weights: Tensor, label_smoothing: float = 0.0
) -> Tensor:
    """(1/B) Σ_i w_{y_i}·CE_i — the batch mean, not PyTorch's Σ w_{y_i} normalisation.

    Args:
        class_weights: (K,) weight per class, e.g. `inverse_frequency_weights`.
        label_smoothing: as in `torch.nn.functional.cross_entropy` (smoothing terms
            weighted per class as PyTorch does).

    >>> weights = torch.tensor([1.0, 3.0])
    >>> loss = class_weighted_cross_entropy(torch.zeros(2, 2), torch.tensor([0, 1]), weights)
    >>> round(loss.item(), 4)  # (1 + 3) / 2 · log 2
    1.3863
    """
    per_example = F.cross_entropy(
        logits,
        targets,
        weight=class_weights.to(device=logits.device, dtype=logits.dtype),
        reduction="none",
        label_smoothing=label_smoothing,
    )
    return per_example.mean()


def inverse_frequency_weights(
    train_labels: Sequence[int] | np.ndarray | Tensor, num_classes: int
) -> Tensor:
    """α_c = N / (K·N_c) from the training labels (spec §1.5 [DEFAULT]); float32 (K,).

    Raises:
        ValueError: a label outside 0..K−1, or a class with no training example (its
            weight would be infinite), naming the class index.

    >>> inverse_frequency_weights([0, 0, 0, 1], num_classes=2)
    tensor([0.6667, 2.0000])
    """
    labels = torch.as_tensor(train_labels).to(device="cpu", dtype=torch.long).reshape(-1)
    if labels.numel() == 0:
        raise ValueError("no training labels to compute class weights from")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got min {low}, max {high}")
    counts = torch.bincount(labels, minlength=num_classes)
    absent = [index for index, count in enumerate(counts.tolist()) if count == 0]
    if absent:
        raise ValueError(
            f"class index {absent[0]} has no training examples in this fold "
            f"(absent classes: {absent}); its inverse-frequency weight is undefined"
        )
    return (labels.numel() / (num_classes * counts)).to(torch.float32)


def focal_loss(
    logits: Tensor, targets: Tensor, gamma: float = 2.0, alpha: Tensor | None = None
) -> Tensor:
    """(1/B) Σ_i −α_{y_i} (1 − p_{y_i})^γ log p_{y_i} (Lin et al. 2017; spec §1.5).

    Computed from `log_softmax`, so it is stable for large logits; γ = 0 with α = None is
    exactly `cross_entropy`, and with α it is exactly `class_weighted_cross_entropy`.

    Args:
        gamma: focusing exponent γ ≥ 0.
        alpha: (K,) class weights α_c; None = all ones.

    >>> logits, targets = torch.tensor([[4.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 0])
    >>> focal_loss(logits, targets, gamma=2.0) < cross_entropy(logits, targets)
    tensor(True)
    """
    if gamma < 0:
        raise ValueError(f"gamma must be ≥ 0, got {gamma=}")
    log_p = F.log_softmax(logits, dim=1).gather(1, targets.unsqueeze(1)).squeeze(1)  # (B,)
    # −expm1(log p) keeps 1 − p accurate near p = 1; the floor keeps the gradient of
    # (1 − p)^γ finite there when γ < 1 (it would be inf · 0 = NaN).
    one_minus_p = (-torch.expm1(log_p)).clamp_min(torch.finfo(log_p.dtype).tiny)
    per_example = -one_minus_p.pow(gamma) * log_p
    if alpha is not None:
        per_example = per_example * alpha.to(device=logits.device, dtype=logits.dtype)[targets]
    return per_example.mean()


def mixup_batch(
    inputs: Tensor, targets: Tensor, alpha: float, generator: np.random.Generator
) -> tuple[Tensor, Tensor, Tensor, float]:
    """Mix each example with a random partner from the same batch (spec §2.5).

    λ ~ Beta(α, α) once per batch and a permutation π of the batch, both drawn from
    `generator`: mixed = λ·x + (1 − λ)·x[π]. Returns (mixed inputs, targets, targets[π], λ).

    >>> mixed, y_a, y_b, lam = mixup_batch(
    ...     torch.eye(3), torch.arange(3), 0.2, np.random.default_rng(0))
    >>> mixed.shape, bool(torch.equal(y_a, torch.arange(3))), 0.0 <= lam <= 1.0
    (torch.Size([3, 3]), True, True)
    """
    if alpha <= 0:
        raise ValueError(f"mixup needs alpha > 0 (alpha = 0 means mixup off), got {alpha=}")
    lam = float(generator.beta(alpha, alpha))
    partner = torch.from_numpy(generator.permutation(inputs.shape[0])).to(inputs.device)
    mixed = lam * inputs + (1.0 - lam) * inputs[partner]
    return mixed, targets, targets[partner], lam


def mixup_loss(
    loss_fn: LossFunction, logits: Tensor, targets_a: Tensor, targets_b: Tensor, lam: float
) -> Tensor:
    """λ·loss_fn(ŷ, y_a) + (1 − λ)·loss_fn(ŷ, y_b), for logits of a `mixup_batch` input."""
    return lam * loss_fn(logits, targets_a) + (1.0 - lam) * loss_fn(logits, targets_b)


def make_loss(options: LossOptions, class_weights: Tensor | None = None) -> LossFunction:
    """The loss `options` describe, as (logits, targets) → scalar (picklable).

    Args:
        class_weights: (K,) weights from the training fold, given exactly when
            `options.needs_class_weights`.

    >>> loss_fn = make_loss(LossOptions(kind="focal", focal_alpha="uniform", gamma=0.0))
    >>> round(loss_fn(torch.zeros(2, 4), torch.tensor([0, 3])).item(), 4)
    1.3863
    """
    if options.needs_class_weights and class_weights is None:
        raise ValueError(f"loss {options.kind!r} needs class weights from the training fold")
    if not options.needs_class_weights and class_weights is not None:
        raise ValueError(f"loss {options.kind!r} takes no class weights; they would be unused")
    if options.kind == "ce":
        # With s = 0 the smoothed term would be a second plain CE: no smoothing, no term.
        if options.label_smoothing_form == "ce_plus_smoothed" and options.label_smoothing > 0:
            return functools.partial(cross_entropy_plus_smoothed,
                                     label_smoothing=options.label_smoothing)
        return functools.partial(cross_entropy, label_smoothing=options.label_smoothing)
    if options.kind == "weighted_ce":
        return functools.partial(
            class_weighted_cross_entropy,
            class_weights=class_weights,
            label_smoothing=options.label_smoothing,
        )
    return functools.partial(focal_loss, gamma=options.gamma, alpha=class_weights)
