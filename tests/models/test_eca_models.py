"""ECA block, `eca_cnn` (spec §1) and `eca_cnn_bilstm` (spec §4): exact counts, shapes, options."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ser_ray import models
from ser_ray.errors import UserError
from ser_ray.models.eca_cnn import EcaCnn
from ser_ray.models.eca_cnn_bilstm import Alfb, EcaCnnBiLstm
from ser_ray.models.layers.eca import EfficientChannelAttention, adaptive_kernel_size

# Spec §1.3 table (no ECA, C = 16, m = (1, 1, 2, 2, 4, 4), 4 classes).
SCALE_TABLE = {
    1: 76_660,
    2: 304_356,
    3: 683_092,
    4: 1_212_868,
    5: 1_893_684,
    6: 2_725_540,
    7: 3_708_436,
    8: 4_842_372,
}


def eca_cnn_formula(widths: tuple[int, ...], num_classes: int = 4) -> int:
    """Spec §1.3: Σ_i (9·c_{i−1}·c_i + c_i + 2·c_i) + (c6² + c6) + (K·c6 + K), c0 = 1."""
    pairs = zip((1, *widths[:-1]), widths, strict=True)
    convs = sum(9 * c_in * c_out + 3 * c_out for c_in, c_out in pairs)
    last = widths[-1]
    return convs + last * last + last + num_classes * last + num_classes


def conv1d(c_in: int, c_out: int, kernel: int) -> int:
    return c_in * c_out * kernel + c_out


def batch_norm(channels: int) -> int:
    return 2 * channels


def bilstm(inputs: int, hidden: int) -> int:
    # Per direction: 4 gates × (W_ih, W_hh) plus PyTorch's two bias vectors b_ih, b_hh.
    return 2 * (4 * hidden * (inputs + hidden) + 2 * 4 * hidden)


def linear(inputs: int, outputs: int) -> int:
    return inputs * outputs + outputs


# Spec §4.2 defaults, 7 classes: ALFBs 1→256 k5, 256→256 k5, 256→256 k3, each + ECA k5 + BN.
ALFBS = (
    conv1d(1, 256, 5)
    + 5
    + batch_norm(256)  # 1,536 + 5 + 512
    + conv1d(256, 256, 5)
    + 5
    + batch_norm(256)  # 327,936 + 5 + 512
    + conv1d(256, 256, 3)
    + 5
    + batch_norm(256)  # 196,864 + 5 + 512
)
CLASSIFIER_7 = linear(128, 7)  # 903
BILSTM_EXPECTED = {
    "eca_cnn_bilstm": ALFBS + bilstm(1, 128) + linear(512, 128) + CLASSIFIER_7,
    "eca_cnn_bilstm-no-eca": ALFBS - 3 * 5 + bilstm(1, 128) + linear(512, 128) + CLASSIFIER_7,
    "eca_cnn_bilstm-no-global": ALFBS + linear(256, 128) + CLASSIFIER_7,
    "eca_cnn_bilstm-serial": ALFBS + bilstm(256, 128) + linear(512, 128) + CLASSIFIER_7,
}

EXPECTED_PARAMETERS = {
    **{f"eca_cnn-k{scale}": count for scale, count in SCALE_TABLE.items()},
    "eca_cnn-k4-eca56": 1_212_882,  # + 2 × 7 [paper §V-E]
    "eca_cnn-k4-original-eca": 1_212_894,  # + (3 + 3 + 5 + 5 + 5 + 5)
    **BILSTM_EXPECTED,
}


def example(preset_name: str, batch: int = 2) -> torch.Tensor:
    chosen = models.get_preset(preset_name)
    return torch.randn(batch, *models.input_shape(chosen.model, **chosen.options))


def test_hand_formulas_match_the_spec_numbers() -> None:
    assert ALFBS == 527_887
    assert bilstm(1, 128) == 134_144 and bilstm(256, 128) == 395_264
    assert BILSTM_EXPECTED == {
        "eca_cnn_bilstm": 728_598,
        "eca_cnn_bilstm-no-eca": 728_583,
        "eca_cnn_bilstm-no-global": 561_686,
        "eca_cnn_bilstm-serial": 989_718,
    }
    for scale, count in SCALE_TABLE.items():
        assert eca_cnn_formula(tuple(16 * scale * m for m in (1, 1, 2, 2, 4, 4))) == count


def test_every_eca_preset_is_listed_here() -> None:
    registered = {name for name in models.preset_names() if name.startswith("eca_cnn")}
    assert registered == set(EXPECTED_PARAMETERS)


@pytest.mark.parametrize(("preset_name", "expected"), EXPECTED_PARAMETERS.items())
def test_preset_parameter_count_and_output_shape(preset_name: str, expected: int) -> None:
    chosen = models.get_preset(preset_name)
    model = models.build_preset(chosen)
    assert chosen.expected_parameters == expected
    assert models.count_parameters(model) == expected
    with torch.no_grad():
        assert model(example(preset_name)).shape == (2, chosen.num_classes)


def test_our_eca_adds_fourteen_parameters_after_blocks_five_and_six() -> None:
    model = models.preset("eca_cnn-k4-eca56")
    assert models.count_parameters(model) - SCALE_TABLE[4] == 14
    for index, block in enumerate(model.features, 1):
        kinds = [type(layer) for layer in block]
        if index in (5, 6):
            # After the ReLU, before the pooling [paper Fig. 5].
            assert kinds[2:4] == [nn.ReLU, EfficientChannelAttention]
            assert block[3].conv.kernel_size == (7,)
        else:
            assert EfficientChannelAttention not in kinds


def test_original_eca_uses_the_adaptive_kernel_of_each_block_width() -> None:
    model = models.preset("eca_cnn-k4-original-eca")
    widths = (64, 64, 128, 128, 256, 256)
    kernels = [adaptive_kernel_size(width) for width in widths]
    assert kernels == [3, 3, 5, 5, 5, 5]
    assert [block[3].conv.kernel_size[0] for block in model.features] == kernels
    assert models.count_parameters(model) == SCALE_TABLE[4] + sum(kernels) == 1_212_894


@pytest.mark.parametrize(
    ("channels", "kernel"),
    [(16, 3), (32, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5)],
)
def test_adaptive_kernel_size_follows_eca_net(channels: int, kernel: int) -> None:
    assert adaptive_kernel_size(channels) == kernel


@pytest.mark.parametrize("kernel", [1, 3, 5, 7, 9])
def test_eca_block_has_k_parameters_no_bias_and_gates_each_channel(kernel: int) -> None:
    eca = EfficientChannelAttention(kernel)
    assert sum(p.numel() for p in eca.parameters()) == kernel
    assert eca.conv.bias is None
    x = torch.randn(3, 16, 4, 5)
    # Reference: gate_c = σ(Σ_j w_j · d_{c+j−(k−1)/2}) over zero-padded channel means d.
    padded = nn.functional.pad(x.mean(dim=(2, 3)), ((kernel - 1) // 2,) * 2)
    weights = eca.conv.weight.flatten()
    gates = torch.sigmoid(
        torch.stack([padded[:, c : c + kernel] @ weights for c in range(16)], dim=1)
    )
    torch.testing.assert_close(eca(x), x * gates[:, :, None, None])
    sequence = torch.randn(2, 16, 19)
    assert eca(sequence).shape == sequence.shape


def test_eca_block_rejects_even_kernels() -> None:
    with pytest.raises(ValueError, match="odd"):
        EfficientChannelAttention(4)


@pytest.mark.parametrize(
    ("model_name", "options", "option"),
    [
        ("eca_cnn", {"eca_blocks": [7]}, "eca_blocks"),
        ("eca_cnn", {"eca_blocks": [5, 5]}, "eca_blocks"),
        ("eca_cnn", {"scale": 9}, "scale"),
        ("eca_cnn", {"eca_kernel": 4}, "eca_kernel"),
        ("eca_cnn", {"width_multipliers": [1, 1, 2, 2, 4]}, "width_multipliers"),
        ("eca_cnn", {"n_frames": 16}, "n_frames"),
        ("eca_cnn", {"conv_padding": 2}, "conv_padding"),
        ("eca_cnn", {"conv_padding": "same"}, "conv_padding"),
        ("eca_cnn", {"conv_bias": "sometimes"}, "conv_bias"),
        ("eca_cnn", {"conv_padding": 0}, "n_mels"),  # 64 mel bins vanish by block 5
        ("eca_cnn", {"conv_padding": 0, "n_mels": 158, "n_frames": 157}, "n_frames"),
        ("eca_cnn_bilstm", {"eca_kernel": 6}, "eca_kernel"),
        ("eca_cnn_bilstm", {"topology": "stacked"}, "topology"),
        ("eca_cnn_bilstm", {"alfb_kernels": []}, "alfb_kernels"),
    ],
)
def test_bad_options_raise_a_user_error_naming_the_option(
    model_name: str, options: dict, option: str
) -> None:
    with pytest.raises(UserError, match=f"option '{option}"):
        models.build(model_name, 4, **options)


def test_eca_cnn_options_shape_the_network() -> None:
    model = models.build(
        "eca_cnn",
        3,
        scale=1,
        base_width=8,
        width_multipliers=[1, 2, 2, 4, 4, 8],
        eca_blocks=[6],
        eca_kernel="adaptive",
        classifier_dropout=0.5,
        n_mels=40,
        n_frames=300,
    )
    assert isinstance(model, EcaCnn)
    widths = (8, 16, 16, 32, 32, 64)
    assert models.count_parameters(model) == eca_cnn_formula(widths, 3) + adaptive_kernel_size(64)
    assert models.input_shape("eca_cnn", n_mels=40, n_frames=300) == (1, 40, 300)
    model.eval()  # a batch of one needs BN running statistics
    assert model(torch.randn(1, 1, 40, 300)).shape == (1, 3)


@pytest.mark.parametrize(
    "preset_name", ["eca_cnn-k1", "eca_cnn-k4-eca56", "eca_cnn-k4-original-eca"]
)
def test_conv_bias_off_drops_one_parameter_per_conv_output_channel(preset_name: str) -> None:
    chosen = models.get_preset(preset_name)
    model = models.build_preset(chosen)
    unbiased = models.build(chosen.model, chosen.num_classes, **chosen.options, conv_bias=False)
    widths = tuple(16 * chosen.options["scale"] * m for m in (1, 1, 2, 2, 4, 4))
    assert models.count_parameters(model) - models.count_parameters(unbiased) == sum(widths)
    assert all(block[0].bias is None for block in unbiased.features)


def block_output_shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes = []
    for block in model.features:
        x = block(x)
        shapes.append(tuple(x.shape[1:]))
    return shapes


def test_same_padding_keeps_the_spec_shapes_of_each_block() -> None:
    model = models.build("eca_cnn", 4, scale=1)
    with torch.no_grad():
        shapes = block_output_shapes(model, torch.randn(2, 1, 64, 601))
    # Spec §1.3 shape table, k = 1.
    assert shapes == [
        (16, 32, 300), (16, 16, 150), (32, 8, 75), (32, 4, 37), (64, 2, 18), (64, 1, 1)
    ]


def test_valid_padding_trims_each_conv_and_the_classifier_still_takes_c6() -> None:
    # 158 is the smallest side that survives six valid 3×3 convs and five 2×2 pools.
    options = {"scale": 1, "conv_padding": 0, "n_mels": 158, "n_frames": 160}
    model = models.build("eca_cnn", 4, **options)
    x = torch.randn(2, *models.input_shape("eca_cnn", **options))
    with torch.no_grad():
        shapes = block_output_shapes(model, x)
        assert model(x).shape == (2, 4)
    assert shapes == [
        (16, 78, 79), (16, 38, 38), (32, 18, 18), (32, 8, 8), (64, 3, 3), (64, 1, 1)
    ]
    assert model.classifier[1].in_features == 64
    # Padding holds no parameters: the count is the spec's k = 1 count.
    assert models.count_parameters(model) == SCALE_TABLE[1]


def test_he_initialisation_is_the_default() -> None:
    torch.manual_seed(0)
    model = models.preset("eca_cnn-k4")
    conv = model.features[5][0]
    fan_in = 256 * 9  # block 6: 256 → 256 channels, 3×3
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.02)
    assert torch.count_nonzero(conv.bias) == 0
    norm = model.features[5][1]
    assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)
    assert torch.count_nonzero(model.classifier[-1].bias) == 0


def test_alfb_stack_halves_the_sequence_with_keras_same_pooling() -> None:
    model = models.preset("eca_cnn_bilstm")
    assert isinstance(model, EcaCnnBiLstm)
    x = torch.randn(2, 1, 150)
    lengths = []
    for block in model.local_blocks:
        assert isinstance(block, Alfb)
        assert block.eca is not None and block.eca.conv.kernel_size == (5,)  # adaptive, C = 256
        x = block(x)
        lengths.append(x.shape[-1])
    assert lengths == [75, 38, 19]
    no_eca = models.preset("eca_cnn_bilstm-no-eca")
    assert not any(isinstance(m, EfficientChannelAttention) for m in no_eca.modules())
    assert models.preset("eca_cnn_bilstm-no-global").lstm is None


def test_serial_and_parallel_topologies_differ_in_the_bilstm_input() -> None:
    parallel = models.build("eca_cnn_bilstm", 5, topology="parallel")
    serial = models.build("eca_cnn_bilstm", 5, topology="serial")
    assert parallel.lstm.input_size == 1 and serial.lstm.input_size == 256
    difference = models.count_parameters(serial) - models.count_parameters(parallel)
    assert difference == bilstm(256, 128) - bilstm(1, 128)
    x = torch.randn(2, 150, 1)
    for model in (parallel, serial):
        assert model(x).shape == (2, 5)
    serial.eval()
    assert serial(torch.randn(1, 150, 1)).shape == (1, 5)


def test_eca_cnn_bilstm_options_shape_the_network() -> None:
    model = models.build(
        "eca_cnn_bilstm",
        4,
        feature_dim=40,
        alfb_kernels=[7, 3],
        alfb_channels=32,
        eca_kernel=3,
        lstm_hidden=16,
        fc_hidden=8,
        dropout=0.0,
    )
    expected = (
        conv1d(1, 32, 7)
        + 3
        + batch_norm(32)
        + conv1d(32, 32, 3)
        + 3
        + batch_norm(32)
        + bilstm(1, 16)
        + linear(32 + 32, 8)
        + linear(8, 4)
    )
    assert models.count_parameters(model) == expected
    assert models.input_shape("eca_cnn_bilstm", feature_dim=40) == (40, 1)
    assert model(torch.randn(2, 40, 1)).shape == (2, 4)
