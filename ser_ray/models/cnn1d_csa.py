"""CNN-1D with channel and spatial attention — Lee & Nadeem, "Toward Efficient Speech Emotion
Recognition via Spectral Learning and Attention", arXiv 2507.03251 (spec §3).
Input (B, L, 1) (Keras channels-last), output (B, num_classes) logits.

Follows the authors' Keras notebooks (spilabkorea/ser @ f7b90aa, `*_CNN_1D_mfcc_aug_csa.ipynb`),
which reproduce the reported accuracies and parameter counts: `conv_blocks` × (Conv1D valid,
ReLU → BatchNorm), Dropout, CBAM-style channel then spatial attention applied once, Flatten,
Dense 64 ReLU → BatchNorm → Dense K. The paper text's three conv blocks are an option
(spec §3, "Paper text vs code"). The Keras kernel L2 penalties are not weight decay: the
training loop adds `model.l2_penalty()` to the loss, as Keras adds them.

>>> model = Cnn1dCsa(num_classes=7, options=Cnn1dCsaOptions(input_length=108))
>>> model(torch.randn(2, 108, 1)).shape
torch.Size([2, 7])
"""

from __future__ import annotations

import math
from typing import Literal

import pydantic
import torch
from torch import Tensor, nn

from ser_ray.models.layers.cbam1d import ChannelAttention1d, SpatialAttention1d
from ser_ray.models.registry import ModelOptions, Preset, SerModel, register_model, register_preset


class Cnn1dCsaOptions(ModelOptions):
    conv_blocks: Literal[2, 3] = pydantic.Field(
        2, description="conv blocks: 2 [code]; 3 = the paper text's variant [spec §3]"
    )
    filters: int = pydantic.Field(256, ge=1, description="filters of every Conv1D [code, paper]")
    kernel_size: int = pydantic.Field(7, ge=1, description="Conv1D kernel width [code, paper]")
    input_length: int = pydantic.Field(
        2268,
        ge=1,
        description="L, columns of the flattened feature vector: 2268 = ZCR 108 + MFCC 20×108 "
        "(EMO-DB/EMOVO) [code, spec §3.2]; TESS 2060 (MFCC 20×103), ZCR-only 108, "
        "SAVEE/RAVDESS 251 (no recipe builds that input)",
    )
    channel_attention: bool = pydantic.Field(
        True, description="CBAM-style channel attention after the conv stack [code]"
    )
    spatial_attention: bool = pydantic.Field(
        True, description="spatial (temporal) attention after channel attention [code]"
    )
    attention_reduction: int = pydantic.Field(
        16, ge=1, description="channel-attention MLP width = filters // reduction (256→16) [code]"
    )
    spatial_kernel_size: int = pydantic.Field(
        7, ge=1, description="spatial-attention Conv1D kernel, odd, 'same' padding [code]"
    )
    dense_units: int = pydantic.Field(64, ge=1, description="hidden Dense width [code]")
    dropout: float = pydantic.Field(
        0.2, ge=0.0, lt=1.0, description="dropout after the conv stack [code]"
    )
    l2: float = pydantic.Field(
        1e-3,
        ge=0.0,
        description="Keras L2 factor λ on the conv and hidden-Dense kernels, added to the "
        "loss by the training loop via `l2_penalty()` [code]",
    )
    batchnorm_momentum: float = pydantic.Field(
        0.01, gt=0.0, lt=1.0, description="PyTorch BN momentum; Keras default 0.99 [code]"
    )
    batchnorm_eps: float = pydantic.Field(1e-3, gt=0.0, description="BN epsilon, Keras [code]")
    init: Literal["glorot_uniform", "pytorch_default"] = pydantic.Field(
        "glorot_uniform",
        description="'glorot_uniform' = the code's Keras init: Glorot-uniform conv/Dense "
        "kernels, He-normal (Keras, truncated) attention kernels, zero biases [code]; "
        "'pytorch_default' = PyTorch's own initialisers",
    )

    @pydantic.field_validator("input_length")
    @classmethod
    def _long_enough(cls, length: int, info: pydantic.ValidationInfo) -> int:
        blocks, kernel = info.data.get("conv_blocks"), info.data.get("kernel_size")
        if blocks is not None and kernel is not None and length - blocks * (kernel - 1) < 1:
            raise ValueError(
                f"{blocks} valid convolutions of kernel {kernel} need input_length ≥ "
                f"{blocks * (kernel - 1) + 1}, got {length}"
            )
        return length

    @pydantic.field_validator("attention_reduction")
    @classmethod
    def _hidden_not_empty(cls, reduction: int, info: pydantic.ValidationInfo) -> int:
        filters = info.data.get("filters")
        if filters is not None and reduction > filters:
            raise ValueError(f"must not exceed filters ({filters}), got {reduction}")
        return reduction

    @pydantic.field_validator("spatial_kernel_size")
    @classmethod
    def _odd(cls, kernel: int) -> int:
        if kernel % 2 == 0:
            # Keras pads an even 'same' kernel asymmetrically; the code uses 7, keep it odd.
            raise ValueError(f"must be odd, got {kernel}")
        return kernel

    def conv_output_length(self) -> int:
        """Time steps after the valid convolutions (the identity max-pools do not shrink)."""
        return self.input_length - self.conv_blocks * (self.kernel_size - 1)


def conv_block(channels_in: int, options: Cnn1dCsaOptions) -> tuple[nn.Conv1d, nn.Sequential]:
    """Conv1D (valid, bias) → ReLU → BatchNorm: (B, C_in, T) → (B, filters, T − k + 1).

    Returns the convolution separately too, because its kernel carries the L2 penalty. The
    code's MaxPool1D(pool 1, stride 1) after each block is the identity and is left out.
    """
    conv = nn.Conv1d(channels_in, options.filters, options.kernel_size)
    # ReLU before BatchNorm, as in the code.
    block = nn.Sequential(conv, nn.ReLU(), _batch_norm(options.filters, options))
    return conv, block


def _batch_norm(features: int, options: Cnn1dCsaOptions) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(features, eps=options.batchnorm_eps, momentum=options.batchnorm_momentum)


@register_model("cnn1d_csa")
class Cnn1dCsa(SerModel):
    """Conv1D blocks → Dropout → [channel attention] → [spatial attention] → Dense head."""

    options_class = Cnn1dCsaOptions

    def __init__(self, num_classes: int, options: Cnn1dCsaOptions) -> None:
        super().__init__()
        self.l2 = options.l2
        convs, blocks = zip(
            *(
                conv_block(1 if index == 0 else options.filters, options)
                for index in range(options.conv_blocks)
            ),
            strict=True,
        )
        self.features = nn.Sequential(*blocks, nn.Dropout(options.dropout))
        self.channel_attention = (
            ChannelAttention1d(options.filters, options.attention_reduction)
            if options.channel_attention
            else nn.Identity()
        )
        self.spatial_attention = (
            SpatialAttention1d(options.spatial_kernel_size)
            if options.spatial_attention
            else nn.Identity()
        )
        self.hidden = nn.Linear(
            options.filters * options.conv_output_length(), options.dense_units
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            _batch_norm(options.dense_units, options),
            nn.Linear(options.dense_units, num_classes),
        )
        # Keras regularises exactly these kernels (kernel_regularizer=l2(1e-3)) [code].
        self._regularised: tuple[nn.Module, ...] = (*convs, self.hidden)
        if options.init == "glorot_uniform":
            self._keras_init()

    @classmethod
    def input_shape(cls, options: Cnn1dCsaOptions) -> tuple[int, ...]:
        return (options.input_length, 1)

    @classmethod
    def input_options(cls, feature_shape: tuple[int, ...]) -> dict[str, int]:
        return {"input_length": feature_shape[0]} if len(feature_shape) == 1 else {}

    def forward(self, x: Tensor) -> Tensor:
        """(B, L, 1) → (B, num_classes) logits (the softmax lives in the loss)."""
        features = self.features(x.transpose(1, 2))  # (B, C, T)
        attended = self.spatial_attention(self.channel_attention(features))
        # Flatten time-major like Keras' (T, C) layout, so Keras Dense kernels map one-to-one.
        return self.head(self.hidden(attended.transpose(1, 2).flatten(1)))

    def l2_penalty(self) -> Tensor:
        """Σ λ·‖W‖² over the conv kernels and the hidden Dense kernel (biases excluded),
        the term Keras adds to the loss; differentiable, zero when λ = 0."""
        return self.l2 * sum(
            (module.weight.square().sum() for module in self._regularised),
            start=torch.zeros((), device=self.hidden.weight.device),
        )

    def _keras_init(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)  # Keras fan convention = PyTorch's
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        # The code passes kernel_initializer="he_normal" to the attention layers only.
        attention_layers = [
            *(layer for layer in self.channel_attention.modules() if isinstance(layer, nn.Linear)),
            *(layer for layer in self.spatial_attention.modules() if isinstance(layer, nn.Conv1d)),
        ]
        for layer in attention_layers:
            keras_he_normal_(layer.weight)


# Keras' VarianceScaling divides by the std of a unit normal truncated at ±2 so that the
# truncated draw still has the intended variance.
_TRUNCATED_NORMAL_STD = 0.87962566103423978


def keras_he_normal_(weight: Tensor) -> Tensor:
    """Keras `he_normal`: truncated normal (±2σ), σ = √(2 / fan_in) / 0.8796, in place.

    fan_in = in-channels × kernel width, Keras' and PyTorch's convention alike.
    """
    fan_in = weight.shape[1] * math.prod(weight.shape[2:])
    std = math.sqrt(2.0 / fan_in) / _TRUNCATED_NORMAL_STD
    return nn.init.trunc_normal_(weight, std=std, a=-2.0 * std, b=2.0 * std)


def expected_parameters(
    input_length: int,
    num_classes: int,
    channel_attention: bool,
    spatial_attention: bool,
    conv_blocks: int = 2,
) -> int:
    """Spec §3.3 closed form (defaults otherwise: 256 filters, kernel 7, Dense 64):
    P = 462,080 + 8,464·[CA] + 14·[SA] + 16,384·(L − 12) + 192 + 65·K, and the 3-block
    variant adds 459,520 and uses L − 18."""
    extra_blocks = conv_blocks - 2
    return (
        462_080
        + 459_520 * extra_blocks
        + 8_464 * channel_attention
        + 14 * spatial_attention
        + 16_384 * (input_length - 12 - 6 * extra_blocks)
        + 192
        + 65 * num_classes
    )


_PRESETS = (
    # name suffix, options, expected count (spec §3.3 table), description
    (
        "emodb",
        {},
        37_433_509,
        "EMO-DB / EMOVO notebooks: ZCR + MFCC, L 2268, CA + SA; input: recipe zcr_mfcc_vector "
        "(defaults)",
    ),
    (
        "tess",
        {"input_length": 2060, "channel_attention": False},
        34_017_173,
        "TESS notebook: MFCC only, L 2060 = 20 × 103, spatial attention only; input: recipe "
        "zcr_mfcc_vector with components='mfcc', duration_s=2.39 (103 frames)",
    ),
    (
        "savee",
        {"input_length": 251, "channel_attention": False},
        4_378_517,
        "SAVEE notebook, architecture and parameter count only: spatial attention only, "
        "L 251; no recipe produces its input (a 251-column dB table, 256 rows per utterance, "
        "made by an unreleased notebook, spec §3.2 item 6)",
    ),
    (
        "ravdess",
        {"input_length": 251, "spatial_attention": False},
        4_386_967,
        "RAVDESS / CREMA-D notebooks, architecture and parameter count only: channel "
        "attention only, L 251; no recipe produces its input (a 251-column dB table, 256 rows "
        "per utterance, made by an unreleased notebook, spec §3.2 item 6)",
    ),
    (
        "emodb-zcr",
        {"input_length": 108},
        2_044_069,
        "EMO-DB 'without MFCC/augmentation' notebook: ZCR only, L 108, CA + SA; input: "
        "recipe zcr_mfcc_vector with components='zcr'",
    ),
    (
        "paper-3block",
        {"conv_blocks": 3},
        expected_parameters(2268, 7, True, True, conv_blocks=3),
        "paper-text variant: three conv blocks, L 2268, CA + SA (count from the spec formula)",
    ),
)
for _suffix, _options, _count, _description in _PRESETS:
    register_preset(
        Preset(
            name=f"cnn1d_csa-{_suffix}",
            model="cnn1d_csa",
            num_classes=7,
            options=_options,
            expected_parameters=_count,
            description=f"{_description} [spec §3.3]",
        )
    )
