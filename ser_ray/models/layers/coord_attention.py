"""Coordinate attention (Hou et al., CVPR 2021) as CTMAM's query in CA-LMAM (spec §2.3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CoordAttention(nn.Module):
    """Gate a map by one attention vector per row and one per column.

    Average over columns gives a (C, H, 1) profile, over rows a (C, 1, W) profile; both
    go through one shared 1×1 conv C → hidden, BN and h-swish, then a 1×1 conv hidden → C
    per direction and a sigmoid: out = x · a_rows · a_columns. In CTMAM rows are the 6
    cepstral bands and columns the 14 time steps.

    Args:
        channels: C (in and out).
        reduction: hidden = max(min_hidden, C // reduction).
        min_hidden: floor on the hidden width.

    >>> attention = CoordAttention(128, reduction=16)
    >>> attention(torch.randn(2, 128, 6, 14)).shape
    torch.Size([2, 128, 6, 14])
    >>> sum(p.numel() for p in attention.parameters())
    3352
    """

    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 4) -> None:
        super().__init__()
        hidden = max(min_hidden, channels // reduction)
        self.squeeze = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.BatchNorm2d(hidden),
            nn.Hardswish(),
        )
        self.rows = nn.Conv2d(hidden, channels, kernel_size=1)
        self.columns = nn.Conv2d(hidden, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) → (B, C, H, W)."""
        height, width = x.shape[2:]
        row_profile = x.mean(dim=3, keepdim=True)  # (B, C, H, 1)
        column_profile = x.mean(dim=2, keepdim=True).transpose(2, 3)  # (B, C, W, 1)
        # One conv over both profiles stacked along the spatial axis, so BN sees them together.
        both = self.squeeze(torch.cat([row_profile, column_profile], dim=2))
        row_part, column_part = torch.split(both, [height, width], dim=2)
        row_gate = torch.sigmoid(self.rows(row_part))  # (B, C, H, 1)
        column_gate = torch.sigmoid(self.columns(column_part.transpose(2, 3)))  # (B, C, 1, W)
        return x * column_gate * row_gate
