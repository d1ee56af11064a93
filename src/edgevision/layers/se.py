"""Squeeze-and-Excitation."""
from __future__ import annotations

import torch
from torch import nn

from .act import get_act


class SqueezeExcite(nn.Module):
    """Channel gating: global mean -> 1x1 reduce -> act -> 1x1 expand -> gate -> scale."""

    def __init__(self, channels: int, rd_channels: int, act: str = "relu", gate: str = "sigmoid"):
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, rd_channels, 1, bias=True)
        self.act = get_act(act, inplace=True)
        self.conv_expand = nn.Conv2d(rd_channels, channels, 1, bias=True)
        self.gate = get_act(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.conv_expand(self.act(self.conv_reduce(s)))
        return x * self.gate(s)
