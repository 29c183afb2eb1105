"""Shuffle attention (SA-Net, Zhang & Yang 2021) as used in CTMAM's T-Sa (spec §2.3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ShuffleAttention(nn.Module):
    """Channel and spatial attention on channel groups, then a 2-way channel shuffle.

    The map is split into `groups` groups of consecutive channels; the first half of each
    group gets channel attention σ(w_c · mean(x) + b_c), the second half spatial attention
    σ(w_s · GroupNorm(x) + b_s). The gates (one per channel *within* a half-group) are shared
    by all groups, so with 128 channels and 64 groups there are 4 scalars plus the
    GroupNorm's affine pair: 6 parameters.

    Args:
        channels: input channels C, a multiple of 2 · groups.
        groups: number of channel groups G.

    >>> attention = ShuffleAttention(channels=128, groups=64)
    >>> attention(torch.randn(2, 128, 6, 14)).shape
    torch.Size([2, 128, 6, 14])
    >>> sum(p.numel() for p in attention.parameters())
    6
    """

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        if channels % (2 * groups):
            raise ValueError(
                f"channels must be a multiple of 2 * groups, got {channels=}, {groups=}"
            )
        self.groups = groups
        half = channels // (2 * groups)
        # SA-Net's initialisation: weight 0, bias 1, so every gate starts at σ(1).
        self.channel_weight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.channel_bias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.spatial_weight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.spatial_bias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.norm = nn.GroupNorm(half, half)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) → (B, C, H, W)."""
        batch, channels, height, width = x.shape
        grouped = x.reshape(batch * self.groups, -1, height, width)
        channel_part, spatial_part = grouped.chunk(2, dim=1)
        pooled = channel_part.mean(dim=(2, 3), keepdim=True)
        channel_gate = torch.sigmoid(self.channel_weight * pooled + self.channel_bias)
        normed = self.norm(spatial_part)
        spatial_gate = torch.sigmoid(self.spatial_weight * normed + self.spatial_bias)
        out = torch.cat([channel_part * channel_gate, spatial_part * spatial_gate], dim=1)
        out = out.reshape(batch, channels, height, width)
        return channel_shuffle(out, groups=2)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave `groups` channel blocks: with 2 groups of 64, order 0, 64, 1, 65, ….

    >>> channel_shuffle(torch.arange(4.0).reshape(1, 4, 1, 1), groups=2).flatten().tolist()
    [0.0, 2.0, 1.0, 3.0]
    """
    batch, channels, height, width = x.shape
    x = x.reshape(batch, groups, channels // groups, height, width).transpose(1, 2)
    return x.reshape(batch, channels, height, width)
