"""Anti-aliased downsampling: a stride-2 conv becomes a stride-1 conv followed by a low-pass
stride-2 pool, so the subsampled map depends less on the exact pixel alignment (Zhang,
"Making Convolutional Networks Shift-Invariant Again", 2019).

- ``"avg"``:  2x2 average pooling, stride 2
- ``"blur"``: fixed 3x3 binomial filter ([1, 2, 1] / 4 outer product), zero padding 1, stride 2
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

AA_KINDS = ("avg", "blur")


class BlurPool2d(nn.Module):
    """Depthwise 3x3 binomial blur with stride 2 (the filter is a constant, not a parameter)."""

    def __init__(self, channels: int, stride: int = 2):
        super().__init__()
        self.channels, self.stride = channels, stride
        taps = torch.tensor([1.0, 2.0, 1.0]) / 4
        self.register_buffer("filt", (taps[:, None] * taps[None, :]).expand(channels, 1, 3, 3).clone(),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.filt, stride=self.stride, padding=1, groups=self.channels)


def anti_alias(kind: str, channels: int, stride: int = 2) -> nn.Module:
    """The low-pass pool that replaces a conv's ``stride`` (see the module docstring)."""
    if kind == "avg":
        return nn.AvgPool2d(stride)
    if kind == "blur":
        return BlurPool2d(channels, stride)
    raise ConfigError(f"unknown anti-aliasing {kind!r}; choose one of {', '.join(AA_KINDS)}")
