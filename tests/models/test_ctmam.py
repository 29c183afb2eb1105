"""CTMAM (spec §2): exact parameter counts of every configuration, shapes and code quirks."""

from __future__ import annotations

import pytest
import torch

from ser_ray import models
from ser_ray.errors import UserError
from ser_ray.models.ctmam import Ctmam, TemporalAttention
from ser_ray.models.layers.shuffle_attention import ShuffleAttention

# Spec §2.4: paper Table VI / code / [derived] counts, input 1×26×57.
EXPECTED_PARAMETERS = {
    "ctmam": 1_031_674,
    "ctmam-conv-lct": 1_404_922,
    "ctmam-convffn-lct-l": 10_390_522,
    "ctmam-convffn-lct-s": 2_526_202,
    "ctmam-emodb": 544_361,
    "ctmam-wo-se": 1_006_138,
    "ctmam-wo-ca": 1_021_618,
    "ctmam-wo-lstm-attention": 1_031_146,
    "ctmam-wo-tsa": 1_031_140,
    "ctmam-wo-lct": 294_058,
}


def example(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, *models.input_shape("ctmam"))


def build(num_classes: int = 4, **options: object) -> Ctmam:
    model = models.build("ctmam", num_classes, **options)
    assert isinstance(model, Ctmam)
    return model


def test_every_ctmam_preset_is_listed_here() -> None:
    registered = {name for name in models.preset_names() if name.startswith("ctmam")}
    assert registered == set(EXPECTED_PARAMETERS)


@pytest.mark.parametrize(("preset_name", "expected"), EXPECTED_PARAMETERS.items())
def test_preset_parameter_count_and_output_shape(preset_name: str, expected: int) -> None:
    chosen = models.get_preset(preset_name)
    model = models.build_preset(chosen)
    assert chosen.expected_parameters == expected
    assert models.count_parameters(model) == expected
    with torch.no_grad():
        assert model(example()).shape == (2, chosen.num_classes)


def test_parameter_breakdown_of_the_proposed_model() -> None:
    model = models.preset("ctmam")
    count = models.count_parameters
    assert count(model.stem) == 120_720
    assert count(model.temporal_attention) == 528
    assert count(model.shuffle_attention) == 6
    assert [count(block) for block in model.blocks] == [244_696] * 3
    assert model.relative_position_bias.shape == (2, 84, 21)  # B: 3,528
    assert count(model.head) == 172_804
    block = model.blocks[0]
    assert count(block.local) == 6_656 + 16_768
    assert count(block.attention) == 53_784
    assert count(block.attention.query) == 3_352
    assert count(block.ffn) == 166_976
    assert count(block.ffn.body[-1]) == 8_512  # SE
    assert count(block.attention_norm) + count(block.ffn_norm) == 512


def conv2d(channels_in: int, channels_out: int, kernel: int, groups: int = 1) -> int:
    return channels_in // groups * channels_out * kernel * kernel + channels_out


def llc(depthwise_kernel: int, pointwise_kernel: int, dim: int = 128) -> int:
    """Depthwise conv + BN, then pointwise conv + BN, all convs with bias."""
    batch_norms = 2 * (2 * dim)
    depthwise = conv2d(dim, dim, depthwise_kernel, groups=dim)
    return depthwise + conv2d(dim, dim, pointwise_kernel) + batch_norms


def test_paper_reading_of_llc_moves_the_7x7_kernel_to_the_pointwise_conv() -> None:
    assert llc(7, 1) == 6_656 + 16_768  # the code's LLC, spec §2.3
    expected = EXPECTED_PARAMETERS["ctmam"] + 3 * (llc(1, 7) - llc(7, 1))
    assert expected == 3_372_538
    model = build(llc="pw7x7")
    assert models.count_parameters(model) == expected
    local = model.blocks[0].local
    assert local.depthwise[0].kernel_size == (1, 1) and local.depthwise[0].groups == 128
    assert local.pointwise[0].kernel_size == (7, 7) and local.pointwise[0].groups == 1
    logits = model(example())
    assert logits.shape == (2, 4)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_without_lct_there_are_no_blocks_and_no_position_bias() -> None:
    model = models.preset("ctmam-wo-lct")
    assert len(model.blocks) == 0
    assert model.relative_position_bias is None


def test_head_reshape_quirk_differs_from_the_transpose_fix() -> None:
    torch.manual_seed(0)
    quirk = build(head_transpose_fix=False).eval()
    torch.manual_seed(0)
    fixed = build(head_transpose_fix=True).eval()
    x = example()
    with torch.no_grad():
        quirk_out, fixed_out = quirk(x), fixed(x)
    assert quirk_out.shape == fixed_out.shape == (2, 4)
    assert not torch.allclose(quirk_out, fixed_out)


def test_shuffle_attention_has_six_parameters_and_interleaves_the_halves() -> None:
    attention = ShuffleAttention(channels=128, groups=64)
    assert sum(p.numel() for p in attention.parameters()) == 6
    # Constant channels: both gates start at σ(0·s + 1) = σ(1), so only the order changes.
    x = torch.arange(128.0).reshape(1, 128, 1, 1).expand(1, 128, 6, 14)
    order = (attention(x) / torch.sigmoid(torch.tensor(1.0)))[0, :, 0, 0]
    expected = torch.stack([torch.arange(64.0), torch.arange(64.0) + 64], dim=1).flatten()
    assert expected[:4].tolist() == [0.0, 64.0, 1.0, 65.0]
    torch.testing.assert_close(order, expected)


@pytest.mark.parametrize(("residual", "low", "high"), [(False, 0.0, 1.0), (True, 1.0, 2.0)])
def test_temporal_attention_scales_every_channel_alike(
    residual: bool, low: float, high: float
) -> None:
    attention = TemporalAttention(6, layers=2, dropout=0.25, residual=residual).eval()
    x = torch.rand(2, 128, 6, 14) + 0.5
    with torch.no_grad():
        factor = attention(x) / x
    assert torch.all((factor > low) & (factor < high))
    torch.testing.assert_close(factor, factor[:, :1].expand_as(factor))


def test_faithful_defaults_multiply_only_and_scale_by_head_dim() -> None:
    model = build()
    assert model.temporal_attention is not None and not model.temporal_attention.residual
    assert model.blocks[0].attention.scale == pytest.approx(64**-0.5)
    assert build(attention_scale="dim").blocks[0].attention.scale == pytest.approx(128**-0.5)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"llc": "x"}, "'llc'"),
        ({"ffn": "mlp"}, "'ffn'"),
        ({"heads": 0}, "'heads'"),
        ({"heads": 3}, "heads"),
        ({"shuffle_groups": 48}, "shuffle_groups"),
    ],
)
def test_invalid_options_name_the_option(options: dict[str, object], named: str) -> None:
    with pytest.raises(UserError, match=named):
        build(**options)


def test_init_follows_the_authors_split() -> None:
    model = build()
    key = model.blocks[0].attention.key
    assert key.bias.abs().max() == 0 and key.weight.abs().max() <= 2.0
    assert 0.015 < key.weight.std() < 0.025  # truncated normal, std 0.02
    assert model.head[0].bias.abs().max() == 0  # head belongs to the authors' LCT module
    assert model.stem.body[0][0].bias.abs().max() > 0  # stem keeps PyTorch's default init
    assert torch.equal(model.shuffle_attention.channel_bias, torch.ones(1, 1, 1, 1))


def test_batch_of_one_in_eval_and_backward_in_train() -> None:
    model = build()
    logits = model(example())
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        assert model.eval()(example(batch=1)).shape == (1, 4)
