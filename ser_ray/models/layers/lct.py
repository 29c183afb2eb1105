"""LCT block of CTMAM — Tang et al. (spec §2.3): LLC → CA-LMAM → SE-IBFFN on 84 tokens.

Tokens are (B, N, C) with N = H·W in row-major order of the (B, C, H, W) map; the
convolutional parts work on the map view, the attention on tokens.
"""

from __future__ import annotations

from typing import Literal

import torch  # noqa: F401  (the doctests below use it)
from torch import Tensor, nn

from ser_ray.models.layers.coord_attention import CoordAttention

LlcKind = Literal["dwconv", "pw7x7", "conv3x3"]
FfnKind = Literal["ibffn", "conv7x7", "conv3x3"]

KERNEL = 7  # the depthwise kernel of LLC and SE-IBFFN [code lct.py]
FFN_EXPANSION = 4  # SE-IBFFN hidden width 512 for dim 128 [code lct.py mbBlock]
SE_REDUCTION = 4  # SE hidden width 32 for 128 channels [code lct.py, SeModule]
QUERY_REDUCTION = 16  # CoordAtt hidden width max(4, 128 / 16) = 8 [code lct.py, CA(dim, dim, 16)]
KV_STRIDE = 2  # keys/values come from a 2×2-strided map: 6×14 → 3×7 = 21 tokens [code sr_ratios=2]
Size = tuple[int, int]
# (depthwise, pointwise) kernels of the separable LLC. The code puts the 7×7 on the depthwise
# conv; the paper's text puts it on the pointwise conv, leaving the depthwise one 1×1
# (spec §2.3 LLC, §2.6 quirk 3).
SEPARABLE_LLC_KERNELS: dict[str, tuple[int, int]] = {"dwconv": (KERNEL, 1), "pw7x7": (1, KERNEL)}


def tokens_to_map(tokens: Tensor, size: Size) -> Tensor:
    """(B, H·W, C) → (B, C, H, W)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *size)


def map_to_tokens(x: Tensor) -> Tensor:
    """(B, C, H, W) → (B, H·W, C)."""
    return x.flatten(2).transpose(1, 2)


def _conv_gelu_bn(dim: int, kernel: int, groups: int = 1) -> nn.Sequential:
    # The authors activate before normalising here (Conv → GELU → BN), unlike the FFN.
    return nn.Sequential(
        nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=groups),
        nn.GELU(),
        nn.BatchNorm2d(dim),
    )


class LocalConv(nn.Module):
    """LLC: x ← PW(x + DW(x)), DW a 7×7 depthwise conv, PW a 1×1 conv (no outer residual).

    kind "pw7x7" is the paper text's reading: the same wiring with a 1×1 depthwise conv and
    a full 7×7 "pointwise" conv. kind "conv3x3" is the paper's Conv-LCT ablation: one full
    3×3 conv + GELU + BN instead (no residual; its wiring is not in the public code, only
    its parameter count).

    >>> LocalConv(128, "dwconv")(torch.randn(2, 128, 6, 14)).shape
    torch.Size([2, 128, 6, 14])
    """

    def __init__(self, dim: int, kind: LlcKind) -> None:
        super().__init__()
        self.kind = kind
        if kind == "conv3x3":
            self.conv = _conv_gelu_bn(dim, 3)
        else:
            depthwise, pointwise = SEPARABLE_LLC_KERNELS[kind]
            self.depthwise = _conv_gelu_bn(dim, depthwise, groups=dim)
            self.pointwise = _conv_gelu_bn(dim, pointwise)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) → (B, C, H, W)."""
        if self.kind == "conv3x3":
            return self.conv(x)
        return self.pointwise(x + self.depthwise(x))


class LctAttention(nn.Module):
    """CA-LMAM: queries from coordinate attention, keys/values from a strided depthwise map.

    Q = CoordAtt(x) (no Q projection) or, without coordinate attention, Q = x; K and V are
    linear maps of the 2×2-strided map (21 tokens for 6×14); logits get a learned
    relative-position bias (heads, N, N / 4) that the caller owns and shares across blocks.

    Args:
        dim: token width C.
        heads: attention heads; C / heads dims each.
        scale: logit scale; the authors use head_dim ** -0.5.
        coord_attention: False is the "W/o CA" ablation (Q = x).

    >>> attention = LctAttention(128, heads=2, scale=64 ** -0.5, coord_attention=True)
    >>> attention(torch.randn(2, 84, 128), (6, 14), torch.zeros(2, 84, 21)).shape
    torch.Size([2, 84, 128])
    """

    def __init__(self, dim: int, heads: int, scale: float, coord_attention: bool) -> None:
        super().__init__()
        self.heads = heads
        self.scale = scale
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.downsample = nn.Sequential(
            nn.Conv2d(dim, dim, KV_STRIDE, stride=KV_STRIDE, groups=dim), nn.BatchNorm2d(dim)
        )
        self.query = CoordAttention(dim, QUERY_REDUCTION) if coord_attention else nn.Identity()

    def forward(self, x: Tensor, size: Size, bias: Tensor) -> Tensor:
        """(B, N, C) tokens, (H, W) with H·W = N, bias (heads, N, M) → (B, N, C)."""
        batch, tokens, dim = x.shape
        spatial = tokens_to_map(x, size)
        query = self._split_heads(map_to_tokens(self.query(spatial)))
        reduced = map_to_tokens(self.downsample(spatial))  # (B, M, C)
        key = self._split_heads(self.key(reduced))
        value = self._split_heads(self.value(reduced))
        logits = query @ key.transpose(-2, -1) * self.scale + bias  # (B, heads, N, M)
        out = logits.softmax(dim=-1) @ value  # (B, heads, N, C / heads)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))

    def _split_heads(self, x: Tensor) -> Tensor:
        """(B, N, C) → (B, heads, N, C / heads)."""
        return x.reshape(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)


class SqueezeExcitation(nn.Module):
    """MobileNetV3 SE: x · h-sigmoid(BN(W₂ ReLU(BN(W₁ GAP(x))))), bias-free 1×1 convs.

    >>> SqueezeExcitation(128)(torch.randn(2, 128, 6, 14)).shape
    torch.Size([2, 128, 6, 14])
    """

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__()
        hidden = channels // reduction
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.Hardsigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) → (B, C, H, W)."""
        return x * self.gate(x)


class InvertedBottleneckFfn(nn.Module):
    """SE-IBFFN: z + SE(BN(PW(h-swish(BN(DW7×7(h-swish(BN(PW(z))))))))), all convs bias-free.

    kind "conv7x7" / "conv3x3" are the paper's ConvFFN-LCT-L / -S ablations: the expanding
    1×1 conv and the depthwise conv (with their BNs) become one full k×k conv + BN
    (followed by one h-swish; only the parameter count is published).

    >>> ffn = InvertedBottleneckFfn(128, "ibffn", squeeze_excitation=True)
    >>> ffn(torch.randn(2, 128, 6, 14)).shape
    torch.Size([2, 128, 6, 14])
    """

    def __init__(self, dim: int, kind: FfnKind, squeeze_excitation: bool) -> None:
        super().__init__()
        hidden = FFN_EXPANSION * dim
        if kind == "ibffn":
            expand: list[nn.Module] = [
                nn.Conv2d(dim, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.Hardswish(),
                nn.Conv2d(hidden, hidden, KERNEL, padding=KERNEL // 2, groups=hidden, bias=False),
                nn.BatchNorm2d(hidden), nn.Hardswish(),
            ]
        else:
            kernel = 7 if kind == "conv7x7" else 3
            expand = [
                nn.Conv2d(dim, hidden, kernel, padding=kernel // 2, bias=False),
                nn.BatchNorm2d(hidden), nn.Hardswish(),
            ]
        self.body = nn.Sequential(
            *expand,
            nn.Conv2d(hidden, dim, 1, bias=False),
            nn.BatchNorm2d(dim),
            SqueezeExcitation(dim) if squeeze_excitation else nn.Identity(),
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) → (B, C, H, W); the identity shortcut is the FFN's own [code mbBlock]."""
        return x + self.body(x)


class LctBlock(nn.Module):
    """One LCT block on tokens: x ← LLC(x); x ← x + CA-LMAM(LN(x)); x ← x + SE-IBFFN(LN(x)).

    Since SE-IBFFN adds its own input, the last step yields x + LN(x) + F(LN(x)) [code].

    >>> block = LctBlock(128, heads=2, scale=64 ** -0.5, llc="dwconv", coord_attention=True,
    ...                  ffn="ibffn", squeeze_excitation=True)
    >>> block(torch.randn(2, 84, 128), (6, 14), torch.zeros(2, 84, 21)).shape
    torch.Size([2, 84, 128])
    >>> sum(p.numel() for p in block.parameters())
    244696
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        scale: float,
        llc: LlcKind,
        coord_attention: bool,
        ffn: FfnKind,
        squeeze_excitation: bool,
    ) -> None:
        super().__init__()
        self.local = LocalConv(dim, llc)
        self.attention_norm = nn.LayerNorm(dim, eps=1e-6)
        self.attention = LctAttention(dim, heads, scale, coord_attention)
        self.ffn_norm = nn.LayerNorm(dim, eps=1e-6)
        self.ffn = InvertedBottleneckFfn(dim, ffn, squeeze_excitation)

    def forward(self, x: Tensor, size: Size, bias: Tensor) -> Tensor:
        """(B, N, C) tokens, (H, W), bias (heads, N, M) → (B, N, C)."""
        x = map_to_tokens(self.local(tokens_to_map(x, size)))
        x = x + self.attention(self.attention_norm(x), size, bias)
        return x + map_to_tokens(self.ffn(tokens_to_map(self.ffn_norm(x), size)))


def init_lct_weights(module: nn.Module) -> None:
    """The authors' timm-style init for their LCT module (blocks and head); use with `.apply`.

    Linear: truncated normal std 0.02 (cut at ±2), bias 0; Conv2d: Kaiming normal
    (fan_out), bias 0; LayerNorm / BatchNorm: weight 1, bias 0 [code lct.py _init_weights].
    """
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
    elif isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out")
    elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
        nn.init.ones_(module.weight)
    else:
        return
    if module.bias is not None:
        nn.init.zeros_(module.bias)
