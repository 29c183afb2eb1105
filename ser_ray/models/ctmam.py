"""CTMAM — Tang et al., "Speech Emotion Recognition via CNN-Transformer and Multidimensional
Attention Mechanism" (spec §2). Input (B, 1, 26, 57) MFCCs, output (B, num_classes) logits.

Follows the authors' code (SCNU-RISLAB/CNN-Transformer-and-Multidimensional-Attention-Mechanism
@ 406ab51, models.py and lct.py), which reproduces the paper's parameter counts: CNN stem →
T-Sa (BiLSTM temporal attention, shuffle attention) → LCT blocks → 1×1-conv head. Where the
paper reads differently the code is the default and the paper's reading an option (spec §2.6).

>>> model = Ctmam(num_classes=4, options=CtmamOptions())
>>> model(torch.randn(2, 1, 26, 57)).shape
torch.Size([2, 4])
"""

from __future__ import annotations

from typing import Literal

import pydantic
import torch
from torch import Tensor, nn

from ser_ray.models.layers.lct import (
    KV_STRIDE,
    LctBlock,
    LlcKind,
    init_lct_weights,
    map_to_tokens,
    tokens_to_map,
)
from ser_ray.models.layers.shuffle_attention import ShuffleAttention
from ser_ray.models.registry import ModelOptions, Preset, SerModel, register_model, register_preset

INPUT_SHAPE = (1, 26, 57)  # 26 MFCCs × 57 frames of a 1.8 s segment (spec §2.2)
ROWS, STEPS = 6, 14  # stem output: two 2×2 max-pools of 26 × 57; the model is hard-wired to it


class CtmamOptions(ModelOptions):
    dim: int = pydantic.Field(
        128, ge=1, description="stem output channels = LCT token width [code models.py]"
    )
    lct_blocks: int = pydantic.Field(
        3, ge=0, description="LCT blocks (Emo-DB code: 1); 0 = 'W/o LCT' [code; paper Table V]"
    )
    heads: int = pydantic.Field(2, ge=1, description="attention heads (Emo-DB code: 1) [code]")
    temporal_attention: bool = pydantic.Field(
        True, description="T-Sa BiLSTM temporal attention; False = 'W/o lstm attention' [Table V]"
    )
    temporal_attention_residual: bool = pydantic.Field(
        False, description="x + x·a (paper's 'residual scheme'); False = code's x·a [spec §2.6]"
    )
    lstm_layers: int = pydantic.Field(2, ge=1, description="BiLSTM layers [code models.py]")
    lstm_dropout: float = pydantic.Field(
        0.25, ge=0.0, lt=1.0, description="dropout between BiLSTM layers [code models.py]"
    )
    shuffle_attention: bool = pydantic.Field(
        True, description="T-Sa shuffle attention (with the BiLSTM off: 'W/o T-Sa') [Table V]"
    )
    shuffle_groups: int = pydantic.Field(
        64, ge=1, description="shuffle-attention channel groups G [code models.py]"
    )
    llc: LlcKind = pydantic.Field(
        "dwconv",
        description="LLC 7×7 depthwise + 1×1 [code]; pw7x7 = 1×1 depthwise + 7×7 pointwise "
        "[paper text, spec §2.6]; conv3x3 = 'W/ Conv-LCT' [Table VI]",
    )
    coord_attention: bool = pydantic.Field(
        True, description="Q = CoordAtt(LN(x)); False = 'W/o CA': Q = LN(x) [paper Table V]"
    )
    attention_scale: Literal["head_dim", "dim"] = pydantic.Field(
        "head_dim", description="logits · head_dim^-½ [code] or · dim^-½ [paper √C; spec §2.6]"
    )
    ffn: Literal["ibffn", "conv7x7", "conv3x3"] = pydantic.Field(
        "ibffn", description="SE-IBFFN [code]; conv7x7 / conv3x3 = 'ConvFFN-LCT-L / -S' [Table VI]"
    )
    squeeze_excitation: bool = pydantic.Field(
        True, description="SE module in SE-IBFFN; False = 'W/o SE' [paper Table V]"
    )
    head_transpose_fix: bool = pydantic.Field(
        False, description="tokens → map by transpose; False = code's plain reshape [spec §2.6]"
    )
    head_width: int = pydantic.Field(1280, ge=1, description="head 1×1-conv width [code lct.py]")
    head_dropout: float = pydantic.Field(
        0.1, ge=0.0, lt=1.0, description="dropout before the classifier [code lct.py]"
    )

    @pydantic.model_validator(mode="after")
    def _check_widths(self) -> CtmamOptions:
        if self.lct_blocks and self.dim % self.heads:
            raise ValueError(
                f"dim must be a multiple of heads, got dim={self.dim}, heads={self.heads}"
            )
        if self.shuffle_attention and self.dim % (2 * self.shuffle_groups):
            raise ValueError(
                "dim must be a multiple of 2 * shuffle_groups, "
                f"got dim={self.dim}, shuffle_groups={self.shuffle_groups}"
            )
        return self


def _conv_bn_relu(
    channels_in: int, channels_out: int, kernel: tuple[int, int], padding: tuple[int, int]
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, kernel, padding=padding),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(),
    )


class Stem(nn.Module):
    """Parallel 3×1 (cepstral) and 1×3 (time) convs, then four 3×3 convs and two max-pools.

    (B, 1, 26, 57) → (B, dim, 6, 14); 120,720 parameters for dim 128.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.cepstral = _conv_bn_relu(1, 8, (3, 1), (1, 0))
        self.temporal = _conv_bn_relu(1, 8, (1, 3), (0, 1))
        self.body = nn.Sequential(
            _conv_bn_relu(16, 32, (3, 3), (1, 1)),
            nn.MaxPool2d(2),
            _conv_bn_relu(32, 48, (3, 3), (1, 1)),
            nn.MaxPool2d(2),
            _conv_bn_relu(48, 64, (3, 3), (1, 1)),
            _conv_bn_relu(64, dim, (3, 3), (1, 1)),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(torch.cat([self.cepstral(x), self.temporal(x)], dim=1))


class TemporalAttention(nn.Module):
    """T-Sa part 1: a BiLSTM over time of the channel-mean map gates every (row, step) cell.

    The channel mean (B, rows, steps) is read as `steps` vectors of `rows` features; the
    BiLSTM's outputs (forward then backward, `rows` / 2 each) are laid back onto the rows —
    which is why the hidden size is rows / 2 = 3 and not a free choice. 528 parameters.

    Args:
        rows: rows of the map (6 cepstral bands after the stem).
        layers: BiLSTM layers.
        dropout: dropout between layers.
        residual: x + x·a instead of x·a.

    >>> attention = TemporalAttention(6, layers=2, dropout=0.25, residual=False)
    >>> attention(torch.randn(2, 128, 6, 14)).shape
    torch.Size([2, 128, 6, 14])
    """

    def __init__(self, rows: int, layers: int, dropout: float, residual: bool) -> None:
        super().__init__()
        self.residual = residual
        self.lstm = nn.LSTM(
            input_size=rows,
            hidden_size=rows // 2,
            num_layers=layers,
            # PyTorch applies this dropout only between layers and warns when there is one.
            dropout=dropout if layers > 1 else 0.0,
            batch_first=True,
            bidirectional=True,
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, rows, steps) → (B, C, rows, steps)."""
        gates, _ = self.lstm(x.mean(dim=1).transpose(1, 2))  # (B, steps, rows)
        gates = torch.sigmoid(gates).transpose(1, 2).unsqueeze(1)  # (B, 1, rows, steps)
        return x + x * gates if self.residual else x * gates


@register_model("ctmam")
class Ctmam(SerModel):
    """Stem → T-Sa → LCT blocks sharing one relative-position bias → conv head.

    The LCT blocks and the head are initialised timm-style like the authors' LCT module;
    the stem, BiLSTM and shuffle attention keep PyTorch's defaults (spec §2.3 Init).
    """

    options_class = CtmamOptions

    def __init__(self, num_classes: int, options: CtmamOptions) -> None:
        super().__init__()
        self.head_transpose_fix = options.head_transpose_fix
        dim = options.dim
        self.stem = Stem(dim)
        self.shuffle_attention = (
            ShuffleAttention(dim, options.shuffle_groups) if options.shuffle_attention else None
        )
        self.temporal_attention = (
            TemporalAttention(
                ROWS,
                options.lstm_layers,
                options.lstm_dropout,
                residual=options.temporal_attention_residual,
            )
            if options.temporal_attention
            else None
        )
        keys = (ROWS // KV_STRIDE) * (STEPS // KV_STRIDE)
        # B ~ N(0, 1), one (heads, 84, 21) tensor added to every block's logits [code lct.py].
        self.relative_position_bias = (
            nn.Parameter(torch.randn(options.heads, ROWS * STEPS, keys))
            if options.lct_blocks
            else None
        )
        head_dim = dim // options.heads
        scale = (head_dim if options.attention_scale == "head_dim" else dim) ** -0.5
        self.blocks = nn.ModuleList(
            LctBlock(
                dim,
                options.heads,
                scale,
                llc=options.llc,
                coord_attention=options.coord_attention,
                ffn=options.ffn,
                squeeze_excitation=options.squeeze_excitation,
            )
            for _ in range(options.lct_blocks)
        )
        self.head = nn.Sequential(
            nn.Conv2d(dim, options.head_width, kernel_size=1),
            nn.BatchNorm2d(options.head_width),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(options.head_dropout),
            nn.Linear(options.head_width, num_classes),
        )
        self.blocks.apply(init_lct_weights)
        self.head.apply(init_lct_weights)

    @classmethod
    def input_shape(cls, options: CtmamOptions) -> tuple[int, ...]:
        return INPUT_SHAPE

    def forward(self, x: Tensor) -> Tensor:
        """(B, 1, 26, 57) → (B, num_classes) logits."""
        x = self.stem(x)  # (B, C, 6, 14)
        if self.temporal_attention is not None:
            x = self.temporal_attention(x)
        if self.shuffle_attention is not None:
            x = self.shuffle_attention(x)
        if self.relative_position_bias is not None:
            x = self._lct(x)
        return self.head(x)

    def _lct(self, x: Tensor) -> Tensor:
        """(B, C, H, W) → LCT blocks on H·W tokens → (B, C, H, W)."""
        size = (x.shape[2], x.shape[3])
        tokens = map_to_tokens(x)
        for block in self.blocks:
            tokens = block(tokens, size, self.relative_position_bias)
        if self.head_transpose_fix:
            return tokens_to_map(tokens, size)
        # The authors reshape (B, N, C) tokens straight to (B, C, H, W), mixing tokens and
        # channels; kept as the faithful default (spec §2.3 head quirk).
        return tokens.reshape(x.shape)


def _ctmam_preset(
    name: str, expected: int, description: str, num_classes: int = 4, **options: object
) -> Preset:
    return Preset(
        name=name,
        model="ctmam",
        num_classes=num_classes,
        options=options,
        expected_parameters=expected,
        description=description,
    )


for _preset in (
    _ctmam_preset("ctmam", 1_031_674, "proposed IEMOCAP model [paper Table VI = code]"),
    _ctmam_preset("ctmam-conv-lct", 1_404_922, "W/ Conv-LCT [paper Table VI]", llc="conv3x3"),
    _ctmam_preset("ctmam-convffn-lct-l", 10_390_522, "W/ConvFFN-LCT-L [Table VI]", ffn="conv7x7"),
    _ctmam_preset("ctmam-convffn-lct-s", 2_526_202, "W/ConvFFN-LCT-S [Table VI]", ffn="conv3x3"),
    _ctmam_preset(
        "ctmam-emodb", 544_361, "Emo-DB code configuration CTMAM_EMODB (7 classes)",
        num_classes=7, heads=1, lct_blocks=1,
    ),
    _ctmam_preset("ctmam-wo-se", 1_006_138, "W/o SE [paper Table V]", squeeze_excitation=False),
    _ctmam_preset("ctmam-wo-ca", 1_021_618, "W/o CA [paper Table V]", coord_attention=False),
    _ctmam_preset(
        "ctmam-wo-lstm-attention", 1_031_146, "W/o lstm attention [paper Table V]",
        temporal_attention=False,
    ),
    _ctmam_preset(
        "ctmam-wo-tsa", 1_031_140, "W/o T-Sa [paper Table V]",
        temporal_attention=False, shuffle_attention=False,
    ),
    _ctmam_preset("ctmam-wo-lct", 294_058, "W/o LCT [paper Table V]", lct_blocks=0),
):
    register_preset(_preset)
