"""Convolutions: PyTorch padding or TensorFlow "same" padding, and Conv + Norm + Act."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .aa import anti_alias
from .act import get_act


def get_padding(kernel_size: int, stride: int = 1, dilation: int = 1) -> int:
    """Symmetric padding that keeps ``ceil(size / stride)`` outputs for odd kernels."""
    return ((stride - 1) + dilation * (kernel_size - 1)) // 2


def _same_pad_amount(size: int, k: int, s: int, d: int) -> int:
    return max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding computed from the input size (asymmetric when
    the total padding is odd: the extra pixel goes right/bottom, as in TF)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1, groups=1,
                 bias=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        ph = _same_pad_amount(ih, kh, self.stride[0], self.dilation[0])
        pw = _same_pad_amount(iw, kw, self.stride[1], self.dilation[1])
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def create_conv2d(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                  groups: int = 1, bias: bool = False, padding: str | int = "") -> nn.Conv2d:
    """A Conv2d with PyTorch-style symmetric padding (``padding=""``), an explicit int, or TF
    "same" padding (``padding="same"``). "same" is static (a plain Conv2d) whenever the padding
    does not depend on the input size, i.e. for stride 1."""
    if padding == "same":
        if stride == 1 and (dilation * (kernel_size - 1)) % 2 == 0:
            padding = get_padding(kernel_size, 1, dilation)
        else:
            return Conv2dSame(in_chs, out_chs, kernel_size, stride, dilation, groups, bias)
    elif padding == "":
        padding = get_padding(kernel_size, stride, dilation)
    return nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, dilation, groups, bias)


class ConvNormAct(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> activation; the commonest brick of CNNs.
    ``norm=False``: no BatchNorm (``bn`` is the identity) and, unless ``bias=False``, a conv bias.
    ``aa`` ("avg" or "blur", see layers/aa.py) with ``stride > 1``: the conv runs at stride 1 and
    the anti-aliasing pool after the activation does the downsampling."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1,
                 groups: int = 1, dilation: int = 1, padding: str | int = "",
                 act: str | None = "relu", bn_eps: float = 1e-5, apply_act: bool = True,
                 norm: bool = True, bias: bool | None = None, aa: str = ""):
        super().__init__()
        use_aa = bool(aa) and stride > 1
        self.conv = create_conv2d(in_chs, out_chs, kernel_size, 1 if use_aa else stride, dilation,
                                  groups, bias=not norm if bias is None else bias, padding=padding)
        self.bn = nn.BatchNorm2d(out_chs, eps=bn_eps) if norm else nn.Identity()
        self.act = get_act(act if apply_act else None, inplace=True)
        self.aa = anti_alias(aa, out_chs, stride) if use_aa else None

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(x)))
        return x if self.aa is None else self.aa(x)

    def reparameterize(self) -> nn.Module:
        """Fold the BatchNorm into the conv (inference only); idempotent."""
        if isinstance(self.bn, nn.BatchNorm2d):
            from .reparam import fuse_conv_bn
            self.conv = fuse_conv_bn(self.conv, self.bn)
            self.bn = nn.Identity()
        return self


class ConvMlp(nn.Module):
    """1x1 conv-BN -> act -> 1x1 conv-BN: the convolutional FFN (channel mixer) of RepViT and
    EfficientViT-M."""

    def __init__(self, chs: int, hidden: int, act: str = "gelu", bn_eps: float = 1e-5):
        super().__init__()
        self.conv1 = ConvNormAct(chs, hidden, 1, act=act, bn_eps=bn_eps)
        self.conv2 = ConvNormAct(hidden, chs, 1, act=None, bn_eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))
