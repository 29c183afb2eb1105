"""`cnn1d_csa` (spec §3.3) and its CBAM-style 1-D attention: exact counts, shapes, L2, init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ser_ray import models
from ser_ray.errors import UserError
from ser_ray.features.recipes import parse_recipe
from ser_ray.models.cnn1d_csa import Cnn1dCsa
from ser_ray.models.layers.cbam1d import ChannelAttention1d, SpatialAttention1d

# Spec §3.3 table, PyTorch column (= Keras trainable), 7 classes.
EXPECTED_PARAMETERS = {
    "cnn1d_csa-emodb": 37_433_509,
    "cnn1d_csa-tess": 34_017_173,
    "cnn1d_csa-savee": 4_378_517,
    "cnn1d_csa-ravdess": 4_386_967,
    "cnn1d_csa-emodb-zcr": 2_044_069,
    "cnn1d_csa-paper-3block": 37_794_725,  # spec formula: + 459,520 and L − 18
}


def spec_formula(length: int, classes: int, ca: bool, sa: bool, blocks: int = 2) -> int:
    """P(L, K) = 462,080 + 8,464·[CA] + 14·[SA] + 16,384·(L − 12) + 192 + 65·K (spec §3.3);
    the 3-block variant adds 459,520 and uses L − 18."""
    extra = blocks - 2
    return (
        462_080
        + 459_520 * extra
        + 8_464 * ca
        + 14 * sa
        + 16_384 * (length - 12 - 6 * extra)
        + 192
        + 65 * classes
    )


def layer_sum(length: int, classes: int, ca: bool, sa: bool, blocks: int = 2) -> int:
    """The same count from the layer table: conv + BN per block, attention, Dense 64, BN, head."""
    convs = (7 * 1 * 256 + 256) + (blocks - 1) * (7 * 256 * 256 + 256) + blocks * 2 * 256
    attention = ca * (256 * 16 + 16 + 16 * 256 + 256) + sa * (2 * 7)
    steps = length - blocks * 6
    return convs + attention + (256 * steps * 64 + 64) + 2 * 64 + (64 * classes + classes)


def test_the_spec_formula_reproduces_the_spec_table() -> None:
    table = {
        "cnn1d_csa-emodb": (2268, True, True, 2),
        "cnn1d_csa-tess": (2060, False, True, 2),
        "cnn1d_csa-savee": (251, False, True, 2),
        "cnn1d_csa-ravdess": (251, True, False, 2),
        "cnn1d_csa-emodb-zcr": (108, True, True, 2),
        "cnn1d_csa-paper-3block": (2268, True, True, 3),
    }
    for name, (length, ca, sa, blocks) in table.items():
        assert spec_formula(length, 7, ca, sa, blocks) == EXPECTED_PARAMETERS[name]
        assert layer_sum(length, 7, ca, sa, blocks) == EXPECTED_PARAMETERS[name]


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMETERS))
def test_presets_have_the_exact_spec_counts(name: str) -> None:
    chosen = models.get_preset(name)
    assert chosen.expected_parameters == EXPECTED_PARAMETERS[name]
    assert chosen.num_classes == 7
    assert models.count_parameters(models.build_preset(chosen)) == EXPECTED_PARAMETERS[name]


# The recipe settings each preset's description names (spec §3.2 item 6); the SAVEE and
# RAVDESS inputs come from an unreleased notebook, so no recipe feeds those presets.
PRESET_RECIPES = {
    "cnn1d_csa-emodb": {"kind": "zcr_mfcc_vector"},
    "cnn1d_csa-emodb-zcr": {"kind": "zcr_mfcc_vector", "components": "zcr"},
    "cnn1d_csa-tess": {"kind": "zcr_mfcc_vector", "components": "mfcc", "duration_s": 2.39},
}


@pytest.mark.parametrize("name", sorted(PRESET_RECIPES))
def test_the_named_recipe_feeds_the_preset(name: str) -> None:
    feature_shape = parse_recipe(PRESET_RECIPES[name]).feature_shape()
    resolved = models.resolve(name, feature_shape)  # raises on a size mismatch
    assert resolved.input_shape == (*feature_shape, 1)


def test_every_cnn1d_csa_preset_is_covered() -> None:
    registered = {name for name in models.preset_names() if name.startswith("cnn1d_csa")}
    assert registered == set(EXPECTED_PARAMETERS)


@pytest.mark.parametrize(
    ("length", "classes", "ca", "sa", "blocks"),
    [
        (13, 2, False, False, 2),
        (40, 4, True, False, 2),
        (108, 6, False, True, 2),
        (251, 7, True, True, 2),
        (19, 3, True, True, 3),
        (60, 5, False, True, 3),
    ],
)
def test_count_follows_the_spec_formula(
    length: int, classes: int, ca: bool, sa: bool, blocks: int
) -> None:
    model = models.build(
        "cnn1d_csa",
        num_classes=classes,
        input_length=length,
        channel_attention=ca,
        spatial_attention=sa,
        conv_blocks=blocks,
    )
    assert models.count_parameters(model) == spec_formula(length, classes, ca, sa, blocks)


def test_default_preset_forward_shape() -> None:
    torch.manual_seed(0)
    model = models.preset("cnn1d_csa-emodb")
    assert models.input_shape("cnn1d_csa") == (2268, 1)
    with torch.no_grad():
        assert model(torch.randn(2, 2268, 1)).shape == (2, 7)


@pytest.mark.parametrize("name", ["cnn1d_csa-savee", "cnn1d_csa-ravdess", "cnn1d_csa-emodb-zcr"])
def test_small_presets_forward_in_train_and_eval_mode(name: str) -> None:
    chosen = models.get_preset(name)
    model = models.build_preset(chosen)
    length = chosen.options["input_length"]
    assert model(torch.randn(2, length, 1)).shape == (2, 7)
    model.eval()
    assert model(torch.randn(1, length, 1)).shape == (1, 7)


def test_l2_penalty_is_lambda_times_the_squared_kernels() -> None:
    model = models.build("cnn1d_csa", num_classes=3, input_length=40, conv_blocks=3, l2=0.5)
    assert isinstance(model, Cnn1dCsa)
    convs = [module for module in model.features.modules() if isinstance(module, nn.Conv1d)]
    assert len(convs) == 3
    kernels = [conv.weight for conv in convs] + [model.hidden.weight]
    by_hand = 0.5 * sum(float((kernel.detach().double() ** 2).sum()) for kernel in kernels)
    penalty = model.l2_penalty()
    assert penalty.item() == pytest.approx(by_hand, rel=1e-5)
    penalty.backward()  # differentiable; biases and attention kernels carry no penalty
    assert torch.allclose(model.hidden.weight.grad, 2 * 0.5 * model.hidden.weight)
    assert model.hidden.bias.grad is None and convs[0].bias.grad is None
    assert all(p.grad is None for p in model.channel_attention.parameters())
    off = models.build("cnn1d_csa", num_classes=3, input_length=40, l2=0.0)
    assert off.l2_penalty().item() == 0.0


def test_keras_initialisation() -> None:
    torch.manual_seed(0)
    model = models.build("cnn1d_csa", num_classes=4, input_length=60)
    assert isinstance(model, Cnn1dCsa)
    glorot = [*(m for m in model.features.modules() if isinstance(m, nn.Conv1d)), model.hidden]
    for layer in glorot:
        fan_in = layer.weight.shape[1] * math.prod(layer.weight.shape[2:])
        fan_out = layer.weight.shape[0] * math.prod(layer.weight.shape[2:])
        assert layer.weight.abs().max() <= math.sqrt(6 / (fan_in + fan_out))
        assert torch.count_nonzero(layer.bias) == 0
    he = [
        *(m for m in model.channel_attention.modules() if isinstance(m, nn.Linear)),
        model.spatial_attention.conv,
    ]
    for layer in he:
        fan_in = layer.weight.shape[1] * math.prod(layer.weight.shape[2:])
        bound = 2 * math.sqrt(2 / fan_in) / 0.87962566103423978  # truncated at ±2σ
        assert layer.weight.abs().max() <= bound
    first_mlp_layer = model.channel_attention.mlp[0]
    assert first_mlp_layer.weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.05)
    batch_norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [(bn.momentum, bn.eps) for bn in batch_norms] == [(0.01, 1e-3)] * 3


def test_attention_switches_remove_the_blocks() -> None:
    model = models.build(
        "cnn1d_csa",
        num_classes=2,
        input_length=30,
        channel_attention=False,
        spatial_attention=False,
    )
    assert isinstance(model.channel_attention, nn.Identity)
    assert isinstance(model.spatial_attention, nn.Identity)


def test_attention_blocks_gate_without_changing_shape() -> None:
    x = torch.randn(3, 32, 11)
    channel = ChannelAttention1d(channels=32, reduction=4)
    spatial = SpatialAttention1d(kernel_size=5)
    for block, gated_dim in ((channel, 2), (spatial, 1)):
        out = block(x)
        assert out.shape == x.shape
        gates = out / x  # one gate in (0, 1) per channel (resp. time step), shared along the other
        assert ((gates > 0) & (gates < 1)).all()
        assert torch.allclose(gates, gates.select(gated_dim, 0).unsqueeze(gated_dim), atol=1e-5)
    assert sum(p.numel() for p in channel.parameters()) == 2 * 32 * 8 + 8 + 32
    with pytest.raises(ValueError, match="kernel_size must be a positive odd number"):
        SpatialAttention1d(kernel_size=4)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"conv_blocks": 4}, "'conv_blocks' = 4"),
        ({"input_length": 5}, "'input_length' = 5.*input_length ≥ 13"),
        ({"conv_blocks": 3, "input_length": 18}, "'input_length' = 18.*input_length ≥ 19"),
        ({"kernel_size": 0}, "'kernel_size' = 0"),
        ({"attention_reduction": 300}, "'attention_reduction' = 300.*filters"),
        ({"spatial_kernel_size": 6}, "'spatial_kernel_size' = 6.*odd"),
        ({"dropout": 1.0}, "'dropout' = 1.0"),
        ({"init": "he"}, "'init' = 'he'.*glorot_uniform"),
    ],
)
def test_invalid_options_are_user_errors_naming_the_option(options: dict, named: str) -> None:
    with pytest.raises(UserError, match=named):
        models.build("cnn1d_csa", num_classes=7, **options)
