"""ECA-CNN — Kim & Kwon, "Searching for Effective Preprocessing Method and CNN-based
Architecture with Efficient Channel Attention on Speech Emotion Recognition",
arXiv 2409.04007 (spec §1). Input (B, 1, 64, 601) log-Mel, output (B, num_classes) logits.

Six conv blocks (3×3 conv → BN → ReLU → [ECA] → 2×2 average pool; global average pool after
block 6) and a two-layer classifier whose hidden width is the last conv width. No public
code exists and the arXiv text lost its symbols, so the widths c_i = base_width · scale · m_i,
the best scale and the ECA kernel of "our ECA" are spec defaults ([DEFAULT], spec §1.3).

>>> import torch
>>> model = EcaCnn(num_classes=4, options=EcaCnnOptions(scale=1))
>>> model(torch.randn(2, 1, 64, 601)).shape
torch.Size([2, 4])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import pydantic
from torch import Tensor, nn

from ser_ray.models.layers.eca import EcaKernel, EfficientChannelAttention, resolve_kernel_size
from ser_ray.models.registry import ModelOptions, Preset, SerModel, register_model, register_preset

N_BLOCKS = 6
KERNEL = 3  # every block conv is 3×3 [paper §IV-B]

BlockIndex = Annotated[int, pydantic.Field(ge=1, le=N_BLOCKS)]
Multiplier = Annotated[int, pydantic.Field(ge=1)]


class EcaCnnOptions(ModelOptions):
    scale: int = pydantic.Field(
        4,
        ge=1,
        le=8,
        description="channel scale factor k, searched over 1..8 [paper §V-D]; "
        "best k lost in the arXiv text, 4 [DEFAULT]",
    )
    base_width: int = pydantic.Field(
        16, ge=1, description="base channel size C of c_i = C·k·m_i [DEFAULT, spec §1.3]"
    )
    width_multipliers: tuple[Multiplier, ...] = pydantic.Field(
        (1, 1, 2, 2, 4, 4),
        min_length=N_BLOCKS,
        max_length=N_BLOCKS,
        description="width multipliers m_1..m_6, one per block; widths grow with depth "
        "[paper §V-F], values [DEFAULT]",
    )
    eca_blocks: tuple[BlockIndex, ...] = pydantic.Field(
        (),
        description="blocks (1..6) followed by ECA, after ReLU and before pooling "
        "[paper Fig. 5]; 'our ECA' = (5, 6), 'original ECA' = (1..6) [paper §V-E]",
    )
    eca_kernel: EcaKernel = pydantic.Field(
        7,
        description="ECA kernel: odd int, 7 for 'our ECA' [paper §V-E/F, derived from +14 "
        "params], or 'adaptive' (ECA-Net rule, 'original ECA') [paper §V-E]",
    )
    conv_padding: Literal[0, 1] = pydantic.Field(
        1,
        description="zero padding of every 3×3 conv: 1 = 'same' [DEFAULT, spec §1.3], "
        "0 = 'valid' (each conv trims 2 rows and columns, so the input must be larger)",
    )
    conv_bias: bool = pydantic.Field(
        True, description="bias in every block conv, PyTorch's default [DEFAULT, spec §1.3]"
    )
    classifier_activation: Literal["relu", "gelu", "none"] = pydantic.Field(
        "relu", description="activation between the two linear layers [DEFAULT]"
    )
    classifier_dropout: float = pydantic.Field(
        0.0, ge=0.0, lt=1.0, description="dropout before the last linear layer [DEFAULT: none]"
    )
    init: Literal["kaiming_normal", "kaiming_uniform", "pytorch_default"] = pydantic.Field(
        "kaiming_normal",
        description="He init of all conv/linear weights [paper §V-C]; normal, "
        "fan_in, ReLU gain, zero biases, BN γ=1 β=0 [DEFAULT]",
    )
    # Defaults validated too: whether 64 × 601 survives the blocks depends on conv_padding.
    n_mels: int = pydantic.Field(
        64, ge=1, validate_default=True, description="mel bins of the input [paper §V-B]"
    )
    n_frames: int = pydantic.Field(
        601,
        ge=1,
        validate_default=True,
        description="frames of the input: 6 s, hop 10 ms, centred framing [DEFAULT, spec §1.2]",
    )

    @pydantic.field_validator("eca_blocks")
    @classmethod
    def _unique_sorted(cls, blocks: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(blocks)) != len(blocks):
            raise ValueError(f"ECA blocks must not repeat, got {list(blocks)}")
        return tuple(sorted(blocks))

    @pydantic.field_validator("n_mels", "n_frames")
    @classmethod
    def _survives_the_blocks(cls, size: int, info: pydantic.ValidationInfo) -> int:
        padding = info.data.get("conv_padding")
        if padding is not None and size < min_input_size(padding):
            raise ValueError(
                f"the six blocks with conv_padding={padding} need at least "
                f"{min_input_size(padding)}, got {size}"
            )
        return size

    def widths(self) -> tuple[int, ...]:
        """Channel widths c_1..c_6 = base_width · scale · m_i."""
        return tuple(self.base_width * self.scale * m for m in self.width_multipliers)


def min_input_size(padding: int) -> int:
    """Smallest input side that leaves at least one cell after block 6's conv.

    Walks the blocks backwards: a conv needs `KERNEL − 1 − 2·padding` more cells than it gives,
    a 2×2 floor pool twice as many.

    >>> min_input_size(1), min_input_size(0)
    (32, 158)
    """
    size = 1
    for index in range(N_BLOCKS, 0, -1):
        size += KERNEL - 1 - 2 * padding
        if index > 1:
            size *= 2
    return size


def conv_block(
    channels_in: int,
    channels_out: int,
    options: EcaCnnOptions,
    eca_kernel: int | None,
    last: bool,
) -> nn.Sequential:
    """Conv 3×3 → BN → ReLU → [ECA] → avg-pool 2×2, or global pool if `last`.

    With padding p: (B, C_in, H, W) → (B, C_out, ⌊(H + 2p − 2)/2⌋, ⌊(W + 2p − 2)/2⌋), or
    (B, C_out, 1, 1) for the last block, so the classifier input is C_out for any padding.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(
            channels_in,
            channels_out,
            kernel_size=KERNEL,
            padding=options.conv_padding,
            bias=options.conv_bias,
        ),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(),
    ]
    if eca_kernel is not None:
        layers.append(EfficientChannelAttention(eca_kernel))
    layers.append(nn.AdaptiveAvgPool2d(1) if last else nn.AvgPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "none": nn.Identity}


@register_model("eca_cnn")
class EcaCnn(SerModel):
    """Six conv blocks with optional ECA, global average pooling, Linear c6→c6 → Linear c6→K."""

    options_class = EcaCnnOptions

    def __init__(self, num_classes: int, options: EcaCnnOptions) -> None:
        super().__init__()
        widths = options.widths()
        inputs = (1, *widths[:-1])
        blocks = []
        for index, (channels_in, channels_out) in enumerate(zip(inputs, widths, strict=True), 1):
            eca_kernel = (
                resolve_kernel_size(options.eca_kernel, channels_out)
                if index in options.eca_blocks
                else None
            )
            blocks.append(
                conv_block(channels_in, channels_out, options, eca_kernel, index == N_BLOCKS)
            )
        self.features = nn.Sequential(*blocks)
        last = widths[-1]
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(last, last),
            ACTIVATIONS[options.classifier_activation](),
            nn.Dropout(options.classifier_dropout),
            nn.Linear(last, num_classes),
        )
        if options.init != "pytorch_default":
            self.apply(_he_init_normal if options.init == "kaiming_normal" else _he_init_uniform)

    @classmethod
    def input_shape(cls, options: EcaCnnOptions) -> tuple[int, ...]:
        return (1, options.n_mels, options.n_frames)

    @classmethod
    def input_options(cls, feature_shape: tuple[int, ...]) -> dict[str, int]:
        return dict(zip(("n_mels", "n_frames"), feature_shape[-2:])) if len(feature_shape) >= 2 \
            else {}

    def forward(self, x: Tensor) -> Tensor:
        """(B, 1, n_mels, n_frames) → (B, num_classes) logits."""
        return self.classifier(self.features(x))


def _he_init_normal(module: nn.Module) -> None:
    _he_init(module, nn.init.kaiming_normal_)


def _he_init_uniform(module: nn.Module) -> None:
    _he_init(module, nn.init.kaiming_uniform_)


def _he_init(module: nn.Module, kaiming: Callable[..., Tensor]) -> None:
    # "He initialisation of all weights" [paper §V-C]: the ECA convs too, fan_in, ReLU gain.
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
        kaiming(module.weight, mode="fan_in", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# Spec §1.3 table: Σ_i (9·c_{i−1}·c_i + 3·c_i) + (c6² + c6) + (4·c6 + 4) under the defaults.
SCALE_PARAMETERS = {
    1: 76_660,
    2: 304_356,
    3: 683_092,
    4: 1_212_868,
    5: 1_893_684,
    6: 2_725_540,
    7: 3_708_436,
    8: 4_842_372,
}
# "Our ECA" adds 2 × 7 [paper §V-E]; "original ECA" adds Σ adaptive k_i over widths
# 64, 64, 128, 128, 256, 256 → kernels 3, 3, 5, 5, 5, 5 → 26 [derived, spec §1.4].
OUR_ECA_PARAMETERS = 2 * 7
ORIGINAL_ECA_PARAMETERS = 3 + 3 + 5 + 5 + 5 + 5

for _scale, _count in SCALE_PARAMETERS.items():
    register_preset(
        Preset(
            name=f"eca_cnn-k{_scale}",
            model="eca_cnn",
            num_classes=4,
            options={"scale": _scale},
            expected_parameters=_count,
            description=f"CNN without ECA, scale factor k = {_scale} (experiment E1) [spec §1.3]",
        )
    )
register_preset(
    Preset(
        name="eca_cnn-k4-eca56",
        model="eca_cnn",
        num_classes=4,
        options={"scale": 4, "eca_blocks": [5, 6], "eca_kernel": 7},
        expected_parameters=SCALE_PARAMETERS[4] + OUR_ECA_PARAMETERS,
        description="'our ECA': kernel-7 ECA after blocks 5 and 6 (E3, headline) [spec §1.4]",
    )
)
register_preset(
    Preset(
        name="eca_cnn-k4-original-eca",
        model="eca_cnn",
        num_classes=4,
        options={"scale": 4, "eca_blocks": [1, 2, 3, 4, 5, 6], "eca_kernel": "adaptive"},
        expected_parameters=SCALE_PARAMETERS[4] + ORIGINAL_ECA_PARAMETERS,
        description="'original ECA': adaptive-kernel ECA after all six blocks (E2) [spec §1.4]",
    )
)
