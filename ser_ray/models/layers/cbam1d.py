"""CBAM-style attention for 1-D feature maps (Woo et al. 2018, CBAM, adapted to (B, C, T)),
as used once after the conv stack of `cnn1d_csa` (spec §3.3): channel attention, then
spatial (temporal) attention.

Both gates are multiplicative and keep the input shape. The modules use PyTorch's default
initialisation; a model that follows a Keras recipe re-initialises them itself.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ChannelAttention1d(nn.Module):
    """Channel gate: mean- and max-pool over time → shared MLP → sum → sigmoid → scale channels.

    The MLP is Linear(C → C // reduction) → ReLU → Linear(C // reduction → C), both with
    biases and shared by the two pooled descriptors, so the block has
    2·C·(C // reduction) + C // reduction + C parameters (8,464 for C = 256, reduction 16).

    Args:
        channels: C, the channel count of the input.
        reduction: ratio C / hidden width; the hidden width is C // reduction (at least 1).

    >>> attention = ChannelAttention1d(channels=256, reduction=16)
    >>> attention(torch.randn(2, 256, 30)).shape
    torch.Size([2, 256, 30])
    >>> sum(p.numel() for p in attention.parameters())
    8464
    """

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = channels // reduction
        if hidden < 1:
            raise ValueError(f"reduction must not exceed channels, got {channels=}, {reduction=}")
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T) → (B, C, T), each channel scaled by its gate in (0, 1)."""
        gates = torch.sigmoid(self.mlp(x.mean(dim=2)) + self.mlp(x.amax(dim=2)))  # (B, C)
        return x * gates.unsqueeze(2)


class SpatialAttention1d(nn.Module):
    """Temporal gate: mean and max over channels → (B, 2, T) → Conv1d 2→1 ('same', no bias)
    → sigmoid → scale time steps. The block has 2·k parameters (14 for k = 7).

    The two maps are stacked [mean, max], the order of the usual Keras CBAM code.

    Args:
        kernel_size: odd width k of the convolution over time; zero padding (k − 1)/2 keeps T.

    >>> attention = SpatialAttention1d(kernel_size=7)
    >>> attention(torch.randn(2, 256, 30)).shape
    torch.Size([2, 256, 30])
    >>> sum(p.numel() for p in attention.parameters())
    14
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size=}")
        self.conv = nn.Conv1d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T) → (B, C, T), each time step scaled by its gate in (0, 1)."""
        maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(maps))  # (B, 1, T) broadcasts over channels
