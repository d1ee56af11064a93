"""The MobileNet/EfficientNet block family.

- :class:`ConvBlock`        conv-norm-act, optional residual (EfficientNetV2 stage 0, MobileNetV3 last)
- :class:`DepthwiseSeparable` dw kxk -> (SE) -> pw 1x1 (MobileNetV1, first block of V2/V3/EfficientNet)
- :class:`InvertedResidual`  pw expand -> dw kxk -> (SE) -> pw project; a.k.a. MBConv
- :class:`FusedMBConv`       kxk expand -> (SE) -> pw project (EfficientNetV2)

All take the same keyword arguments so a network spec can pick one by name; ``aa`` (see
layers/aa.py) anti-aliases the block's strided conv.
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers import ConvNormAct, DropPath, SqueezeExcite


class _Residual(nn.Module):
    """Shared residual handling: ``out = drop_path(f(x)) + x`` when shapes allow."""

    has_skip: bool

    def _init_skip(self, in_chs: int, out_chs: int, stride: int, skip: bool | None,
                   drop_path: float) -> None:
        possible = stride == 1 and in_chs == out_chs
        self.has_skip = possible if skip is None else (skip and possible)
        self.drop_path = DropPath(drop_path) if drop_path > 0 and self.has_skip else nn.Identity()

    def residual(self, x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        if self.has_skip:
            return self.drop_path(x) + shortcut
        return x


def _se(mid_chs: int, se_channels: int, se_act: str, se_gate: str) -> nn.Module:
    return SqueezeExcite(mid_chs, se_channels, se_act, se_gate) if se_channels else nn.Identity()


class ConvBlock(_Residual):
    def __init__(self, in_chs, out_chs, kernel=3, stride=1, act="relu", padding="", bn_eps=1e-5,
                 skip=None, drop_path=0.0, aa="", **_unused):
        super().__init__()
        self.conv = ConvNormAct(in_chs, out_chs, kernel, stride, act=act, padding=padding,
                                bn_eps=bn_eps, aa=aa)
        self._init_skip(in_chs, out_chs, stride, bool(skip), drop_path)  # residual only if asked

    def forward(self, x):
        return self.residual(self.conv(x), x)


class DepthwiseSeparable(_Residual):
    def __init__(self, in_chs, out_chs, kernel=3, stride=1, act="relu", padding="", bn_eps=1e-5,
                 skip=None, drop_path=0.0, se_channels=0, se_act="relu", se_gate="sigmoid",
                 pw_act=False, aa="", **_unused):
        super().__init__()
        self.conv_dw = ConvNormAct(in_chs, in_chs, kernel, stride, groups=in_chs, act=act,
                                   padding=padding, bn_eps=bn_eps, aa=aa)
        self.se = _se(in_chs, se_channels, se_act, se_gate)
        self.conv_pw = ConvNormAct(in_chs, out_chs, 1, act=act, apply_act=pw_act, padding=padding,
                                   bn_eps=bn_eps)
        self._init_skip(in_chs, out_chs, stride, skip, drop_path)

    def forward(self, x):
        return self.residual(self.conv_pw(self.se(self.conv_dw(x))), x)


class InvertedResidual(_Residual):
    def __init__(self, in_chs, out_chs, mid_chs, kernel=3, stride=1, act="relu", padding="",
                 bn_eps=1e-5, skip=None, drop_path=0.0, se_channels=0, se_act="relu",
                 se_gate="sigmoid", aa="", **_unused):
        super().__init__()
        self.conv_pw = ConvNormAct(in_chs, mid_chs, 1, act=act, padding=padding, bn_eps=bn_eps)
        self.conv_dw = ConvNormAct(mid_chs, mid_chs, kernel, stride, groups=mid_chs, act=act,
                                   padding=padding, bn_eps=bn_eps, aa=aa)
        self.se = _se(mid_chs, se_channels, se_act, se_gate)
        self.conv_pwl = ConvNormAct(mid_chs, out_chs, 1, apply_act=False, padding=padding,
                                    bn_eps=bn_eps)
        self._init_skip(in_chs, out_chs, stride, skip, drop_path)

    def forward(self, x):
        return self.residual(self.conv_pwl(self.se(self.conv_dw(self.conv_pw(x)))), x)


class FusedMBConv(_Residual):
    """``group_size``: channels per group of the expansion conv (MobileNet-EdgeTPU-V2); 0: dense."""

    def __init__(self, in_chs, out_chs, mid_chs, kernel=3, stride=1, act="relu", padding="",
                 bn_eps=1e-5, skip=None, drop_path=0.0, se_channels=0, se_act="relu",
                 se_gate="sigmoid", aa="", group_size=0, **_unused):
        super().__init__()
        groups = mid_chs // group_size if group_size else 1
        self.conv_exp = ConvNormAct(in_chs, mid_chs, kernel, stride, groups=groups, act=act,
                                    padding=padding, bn_eps=bn_eps, aa=aa)
        self.se = _se(mid_chs, se_channels, se_act, se_gate)
        self.conv_pwl = ConvNormAct(mid_chs, out_chs, 1, apply_act=False, padding=padding,
                                    bn_eps=bn_eps)
        self._init_skip(in_chs, out_chs, stride, skip, drop_path)

    def forward(self, x):
        return self.residual(self.conv_pwl(self.se(self.conv_exp(x))), x)
