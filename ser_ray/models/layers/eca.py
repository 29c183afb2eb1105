"""Efficient Channel Attention (ECA-Net, Wang et al. 2020), shared by `eca_cnn` (spec §1.4)
and `eca_cnn_bilstm` (spec §4.2).

Reference implementation: BangguWu/ECANet `models/eca_module.py`. Global average pooling
gives one descriptor per channel; a 1-D convolution slides across the *channel* axis
(1 → 1, kernel k, zero padding (k − 1)/2, no bias), a sigmoid turns it into gates and the
input is rescaled channel by channel. No batch normalisation inside the attention
(Kim & Kwon §IV-C stress this). The block therefore has exactly k parameters.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import pydantic
import torch
from torch import Tensor, nn


def adaptive_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """ECA-Net's channel-dependent kernel: the odd number from |log2(C)/γ + b/γ|.

    Follows the reference code, `t = int(|(log2 C + b) / γ|); k = t if t is odd else t + 1`,
    which gives the values spec §1.4 lists: C = 16/32/64 → 3, C = 128 … 1024 → 5.

    >>> [adaptive_kernel_size(c) for c in (16, 32, 64, 128, 256, 512, 1024)]
    [3, 3, 3, 5, 5, 5, 5]
    """
    if channels < 1:
        raise ValueError(f"channels must be at least 1, got {channels=}")
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


def _check_odd(kernel: int | str) -> int | str:
    if isinstance(kernel, int) and kernel % 2 == 0:
        # An even kernel cannot keep C descriptors with symmetric zero padding (k − 1)/2.
        raise ValueError(f"ECA kernel must be odd or 'adaptive', got {kernel}")
    return kernel


# Option type for models: an odd kernel size, or "adaptive" = `adaptive_kernel_size(C)`.
EcaKernel = Annotated[
    Literal["adaptive"] | Annotated[int, pydantic.Field(ge=1)],
    pydantic.AfterValidator(_check_odd),
]


def resolve_kernel_size(kernel: int | Literal["adaptive"], channels: int) -> int:
    """The kernel an `EcaKernel` option means for a block of `channels` channels.

    >>> resolve_kernel_size("adaptive", 256), resolve_kernel_size(7, 256)
    (5, 7)
    """
    return adaptive_kernel_size(channels) if kernel == "adaptive" else int(kernel)


class EfficientChannelAttention(nn.Module):
    """ECA gate for 2-D maps (B, C, H, W) or 1-D sequences (B, C, T); output shape = input.

    Args:
        kernel_size: odd width k of the convolution across channels.

    >>> eca = EfficientChannelAttention(kernel_size=7)
    >>> eca(torch.randn(2, 64, 4, 5)).shape, eca(torch.randn(2, 256, 19)).shape
    (torch.Size([2, 64, 4, 5]), torch.Size([2, 256, 19]))
    >>> sum(p.numel() for p in eca.parameters())
    7
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size=}")
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, *spatial) → (B, C, *spatial), each channel scaled by its gate in (0, 1)."""
        descriptors = x.mean(dim=tuple(range(2, x.ndim)))  # (B, C)
        gates = torch.sigmoid(self.conv(descriptors.unsqueeze(1)))  # (B, 1, C)
        return x * gates.reshape(*descriptors.shape, *([1] * (x.ndim - 2)))
