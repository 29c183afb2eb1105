"""Losses (spec §1.5 focal, §2.5 mixup, §3.4 CE): identities, hand computations, errors."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pydantic
import pytest
import torch
import torch.nn.functional as F

from ser_ray.experiment import LossOptions, paper_training
from ser_ray.train.losses import (
    class_weighted_cross_entropy,
    cross_entropy,
    cross_entropy_plus_smoothed,
    focal_loss,
    inverse_frequency_weights,
    make_loss,
    mixup_batch,
    mixup_loss,
)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    logits = 3.0 * torch.randn(16, 4, generator=generator, dtype=torch.float64)
    targets = torch.tensor([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 0, 1])
    return logits, targets


def test_inverse_frequency_weights_on_a_small_example() -> None:
    # N = 6, K = 3, counts (3, 2, 1): α = 6 / (3·N_c) = (2/3, 1, 2).
    weights = inverse_frequency_weights([0, 1, 0, 2, 1, 0], num_classes=3)
    assert weights.dtype == torch.float32
    assert torch.allclose(weights, torch.tensor([2 / 3, 1.0, 2.0]))
    # Training-distribution mean of α is 1, so weighted losses keep CE's scale.
    assert float((weights * torch.tensor([3, 2, 1]) / 6).sum()) == pytest.approx(1.0)
    assert torch.equal(weights, inverse_frequency_weights(np.array([0, 1, 0, 2, 1, 0]), 3))


def test_absent_class_is_a_clear_error_naming_the_class() -> None:
    with pytest.raises(ValueError, match=r"class index 2 has no training examples"):
        inverse_frequency_weights(torch.tensor([0, 1, 3, 3]), num_classes=4)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2"):
        inverse_frequency_weights([0, 1, 3], num_classes=3)


def test_focal_at_gamma_zero_with_uniform_alpha_is_cross_entropy(batch) -> None:
    logits, targets = batch
    expected = F.cross_entropy(logits, targets)
    assert torch.allclose(focal_loss(logits, targets, gamma=0.0), expected, rtol=0, atol=1e-6)
    ones = torch.ones(4)
    assert torch.allclose(focal_loss(logits, targets, 0.0, ones), expected, rtol=0, atol=1e-6)
    assert torch.allclose(cross_entropy(logits, targets), expected, rtol=0, atol=1e-12)


def test_focal_at_gamma_zero_with_inverse_frequency_alpha_is_weighted_ce(batch) -> None:
    logits, targets = batch
    alpha = inverse_frequency_weights(targets, num_classes=4)
    weighted = class_weighted_cross_entropy(logits, targets, alpha)
    assert torch.allclose(focal_loss(logits, targets, 0.0, alpha), weighted, rtol=0, atol=1e-6)
    # Both are batch means (1/B) Σ α_y CE_i; PyTorch's weighted mean divides by Σ α_y instead.
    torch_sum = F.cross_entropy(logits, targets, weight=alpha.double(), reduction="sum")
    assert torch.allclose(weighted, torch_sum / len(targets), rtol=0, atol=1e-9)
    torch_mean = F.cross_entropy(logits, targets, weight=alpha.double())
    ratio = alpha.double()[targets].sum() / len(targets)
    assert torch.allclose(weighted, torch_mean * ratio, rtol=0, atol=1e-9)


def test_focal_matches_a_hand_computation() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]], dtype=torch.float64)
    targets = torch.tensor([0, 2])
    alpha = torch.tensor([0.5, 1.0, 4.0])
    gamma = 2.0
    total = 0.0
    for row, target in zip(logits.tolist(), targets.tolist(), strict=True):
        p = math.exp(row[target]) / sum(math.exp(value) for value in row)
        total += -alpha[target].item() * (1 - p) ** gamma * math.log(p)
    expected = total / 2  # mean over the batch, not over Σ α_y
    assert focal_loss(logits, targets, gamma, alpha).item() == pytest.approx(expected, rel=1e-12)


def test_focal_down_weights_easy_examples() -> None:
    targets = torch.tensor([0, 1, 2])
    confident = 6.0 * F.one_hot(targets, 3).double()  # p_y ≈ 0.995
    ce = cross_entropy(confident, targets)
    focal = focal_loss(confident, targets, gamma=2.0)
    assert focal < 1e-3 * ce
    # A hard (wrong, confident) example keeps most of its loss: (1 − p)² ≈ 1.
    wrong = 6.0 * F.one_hot(torch.tensor([1, 2, 0]), 3).double()
    hard = focal_loss(wrong, targets, 2.0).item()
    assert hard == pytest.approx(cross_entropy(wrong, targets).item(), rel=1e-2)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_is_finite_with_gradients_for_extreme_logits(gamma: float) -> None:
    logits = torch.tensor([[200.0, -200.0], [-200.0, 200.0]], requires_grad=True)
    loss = focal_loss(logits, torch.tensor([0, 0]), gamma=gamma)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_mixup_batch_is_reproducible_and_convex() -> None:
    inputs = torch.randn(8, 1, 5, 7)
    targets = torch.arange(8)
    first = mixup_batch(inputs, targets, 0.2, np.random.default_rng(7))
    second = mixup_batch(inputs, targets, 0.2, np.random.default_rng(7))
    mixed, targets_a, targets_b, lam = first
    assert torch.equal(mixed, second[0]) and torch.equal(targets_b, second[2])
    assert lam == second[3] and 0.0 <= lam <= 1.0
    assert torch.equal(targets_a, targets)
    assert sorted(targets_b.tolist()) == list(range(8))  # a permutation of the batch
    partner = targets_b  # targets are the indices, so they name each example's partner
    assert torch.allclose(mixed, lam * inputs + (1 - lam) * inputs[partner])
    other = mixup_batch(inputs, targets, 0.2, np.random.default_rng(8))
    assert other[3] != lam


def test_mixup_lambda_follows_beta() -> None:
    rng = np.random.default_rng(0)
    lams = [mixup_batch(torch.zeros(2, 1), torch.arange(2), 0.2, rng)[3] for _ in range(2000)]
    # Beta(0.2, 0.2): mean 1/2, variance 1 / (4·1.4) ≈ 0.179, mass piled near 0 and 1.
    assert np.mean(lams) == pytest.approx(0.5, abs=0.03)
    assert np.var(lams) == pytest.approx(1 / 5.6, abs=0.02)


def test_mixup_needs_positive_alpha() -> None:
    with pytest.raises(ValueError, match="alpha > 0"):
        mixup_batch(torch.zeros(2, 1), torch.arange(2), 0.0, np.random.default_rng(0))


def test_mixup_loss_with_lambda_one_is_plain_cross_entropy(batch) -> None:
    logits, targets = batch
    shuffled = targets.flip(0)
    assert torch.equal(
        mixup_loss(cross_entropy, logits, targets, shuffled, 1.0), cross_entropy(logits, targets)
    )
    half = mixup_loss(cross_entropy, logits, targets, shuffled, 0.5)
    expected = 0.5 * (cross_entropy(logits, targets) + cross_entropy(logits, shuffled))
    assert torch.allclose(half, expected)


def test_make_loss_picks_the_configured_loss(batch) -> None:
    logits, targets = batch
    alpha = inverse_frequency_weights(targets, 4)
    ce = make_loss(LossOptions())
    assert torch.equal(ce(logits, targets), cross_entropy(logits, targets))
    smoothed = make_loss(LossOptions(label_smoothing=0.2))
    assert torch.equal(
        smoothed(logits, targets), F.cross_entropy(logits, targets, label_smoothing=0.2)
    )
    weighted = make_loss(LossOptions(kind="weighted_ce"), alpha)
    assert torch.equal(
        weighted(logits, targets), class_weighted_cross_entropy(logits, targets, alpha)
    )
    focal = make_loss(LossOptions(kind="focal", gamma=1.5), alpha)
    assert torch.equal(focal(logits, targets), focal_loss(logits, targets, 1.5, alpha))
    uniform = make_loss(LossOptions(kind="focal", focal_alpha="uniform"))
    assert torch.equal(uniform(logits, targets), focal_loss(logits, targets, 2.0))
    restored = pickle.loads(pickle.dumps(focal))  # Ray ships the loss to workers
    assert torch.equal(restored(logits, targets), focal(logits, targets))


def timm_label_smoothing_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                                       smoothing: float) -> torch.Tensor:
    """timm's LabelSmoothingCrossEntropy.forward, from its formula: the batch mean of
    (1 − s)·(−log p_y) + s·mean_k(−log p_k)."""
    log_p = torch.log_softmax(logits, dim=-1)
    nll = -log_p.gather(-1, targets.unsqueeze(1)).squeeze(1)
    uniform = -log_p.mean(dim=-1)
    return ((1 - smoothing) * nll + smoothing * uniform).mean()


def test_timm_label_smoothing_is_pytorch_label_smoothing(batch) -> None:
    # PyTorch spreads s over all K classes, the true one included: the same loss.
    logits, targets = batch
    for smoothing in (0.1, 0.2, 0.5):
        expected = timm_label_smoothing_cross_entropy(logits, targets, smoothing)
        smoothed = cross_entropy(logits, targets, label_smoothing=smoothing)
        assert torch.allclose(smoothed, expected, rtol=0, atol=1e-12)


def test_ce_plus_smoothed_is_the_ctmam_code_loss_without_mixup(batch) -> None:
    logits, targets = batch
    # The authors' get_loss without mixup: nn.CrossEntropyLoss()(out, y) +
    # LabelSmoothingCrossEntropy(smoothing=0.2)(out, y).
    plain = -torch.log_softmax(logits, dim=-1).gather(1, targets.unsqueeze(1)).mean()
    authors = plain + timm_label_smoothing_cross_entropy(logits, targets, 0.2)
    options = LossOptions(label_smoothing=0.2, label_smoothing_form="ce_plus_smoothed")
    loss = make_loss(options)(logits, targets)
    assert torch.allclose(loss, authors, rtol=0, atol=1e-12)
    assert loss.item() == pytest.approx(6.822616, abs=1e-6)
    # Smoothed targets alone are half of it: 3.447630 on this batch.
    replaced = make_loss(LossOptions(label_smoothing=0.2))(logits, targets)
    assert replaced.item() == pytest.approx(3.447630, abs=1e-6)
    # Twice the scale, half the smoothing.
    half = 2 * cross_entropy(logits, targets, label_smoothing=0.1)
    assert torch.allclose(cross_entropy_plus_smoothed(logits, targets, 0.2), half,
                          rtol=0, atol=1e-12)
    restored = pickle.loads(pickle.dumps(make_loss(options)))
    assert torch.equal(restored(logits, targets), loss)


def test_ctmam_training_mixes_up_plain_ce_and_smooths_as_its_code_when_mixup_is_off(
        batch) -> None:
    logits, targets = batch
    paper = paper_training("ctmam").loss
    assert (paper.mixup_alpha, paper.label_smoothing) == (0.2, 0.0)
    assert torch.equal(make_loss(paper)(logits, targets), cross_entropy(logits, targets))
    no_mixup = paper_training("ctmam", {"loss": {"mixup_alpha": 0.0, "label_smoothing": 0.2}})
    authors = cross_entropy(logits, targets) + timm_label_smoothing_cross_entropy(
        logits, targets, 0.2)
    assert torch.allclose(make_loss(no_mixup.loss)(logits, targets), authors,
                          rtol=0, atol=1e-12)


def test_make_loss_checks_that_class_weights_match_the_kind() -> None:
    assert LossOptions(kind="focal").needs_class_weights
    assert not LossOptions(kind="focal", focal_alpha="uniform").needs_class_weights
    with pytest.raises(ValueError, match="'weighted_ce' needs class weights"):
        make_loss(LossOptions(kind="weighted_ce"))
    with pytest.raises(ValueError, match="'ce' takes no class weights"):
        make_loss(LossOptions(), torch.ones(3))


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"kind": "nll"}, "kind"),
        ({"gamma": -1.0}, "gamma"),
        ({"mixup_alpha": -0.1}, "mixup_alpha"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"kind": "focal", "label_smoothing": 0.1}, "label_smoothing"),
        ({"label_smoothing_form": "added"}, "label_smoothing_form"),
        ({"kind": "weighted_ce", "label_smoothing": 0.2,
          "label_smoothing_form": "ce_plus_smoothed"}, "label_smoothing_form"),
        ({"weights": "x"}, "weights"),
    ],
)
def test_loss_options_reject_invalid_values(options: dict, field: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        LossOptions(**options)
