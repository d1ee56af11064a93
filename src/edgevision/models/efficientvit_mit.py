"""EfficientViT-B0 - B3 (MIT, Cai et al., ICCV 2023): multi-scale ReLU linear attention.
Not the Microsoft EfficientViT (``efficientvit_m*``, :mod:`.efficientvit_msra`).

- Stem: 3x3 stride-2 conv-BN-hardswish, then residual depthwise-separable blocks.
- Stages 1-2 (stride 4, 8): MBConv blocks (1x1 expand x4 -> 3x3 DW -> 1x1, BN each, hardswish),
  the first with stride 2 and no residual.
- Stages 3-4 (stride 16, 32): a stride-2 MBConv ("fewer norm": biases instead of BN except
  on the projection), then EfficientViT blocks = residual LiteMLA
  (:mod:`edgevision.layers.attention_lite`, linear in the number of tokens, so any input size
  works without windows or interpolation) + residual MBConv.
- Head: 1x1 conv-BN-hardswish to a wide map, average pool, Linear (no bias) -> LayerNorm ->
  hardswish -> dropout -> Linear.

Feature levels: the four stages (stride 4, 8, 16, 32; ``ceil(input / stride)`` per side).
:func:`edgevision.reparameterize` folds the BNs. Layer names follow timm's ``efficientvit_b*``
(= the official repository's) with ``norm`` -> ``bn`` and ``main`` -> ``m``.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from ..layers import ConvNormAct, Residual
from ..layers.attention_lite import LiteMLA
from ..layers.drop import path_rates
from .base import EdgeModel, FeatureInfo, linear_head
from .variant import InputConfig, Variant, variant


@dataclass(frozen=True)
class EfficientViTBSpec:
    """Complete description of an EfficientViT-B network."""

    widths: tuple[int, ...]  # stem, then the four stages
    depths: tuple[int, ...]  # stem residual blocks, then blocks per stage
    head_dim: int  # channels per attention head
    head_widths: tuple[int, int]  # 1x1 conv width before pooling, hidden width of the classifier
    expand_ratio: float = 4.0
    act: str = "hard_swish"
    vit_stages: int = 2  # the last N stages hold attention blocks


def _dsconv(chs: int, act: str) -> nn.Module:
    return nn.Sequential(OrderedDict(depth_conv=ConvNormAct(chs, chs, 3, groups=chs, act=act),
                                     point_conv=ConvNormAct(chs, chs, 1, act=None)))


def _mbconv(in_chs: int, out_chs: int, stride: int, expand: float, act: str,
            fewer_norm: bool = False) -> nn.Module:
    """1x1 expand -> kxk DW -> 1x1 project; ``fewer_norm``: biases instead of the first two BNs."""
    mid = round(in_chs * expand)
    norm = not fewer_norm
    return nn.Sequential(OrderedDict(
        inverted_conv=ConvNormAct(in_chs, mid, 1, act=act, norm=norm),
        depth_conv=ConvNormAct(mid, mid, 3, stride, groups=mid, act=act, norm=norm),
        point_conv=ConvNormAct(mid, out_chs, 1, act=None)))


class EfficientViTBBlock(nn.Module):
    """Residual LiteMLA (context) -> residual MBConv (local)."""

    def __init__(self, chs: int, head_dim: int, expand: float, act: str, drop_path: float = 0.0):
        super().__init__()
        self.context_module = Residual(LiteMLA(chs, chs, head_dim), drop_path)
        self.local_module = Residual(_mbconv(chs, chs, 1, expand, act, fewer_norm=True), drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.local_module(self.context_module(x))


class EfficientViTB(EdgeModel):
    def __init__(self, spec: EfficientViTBSpec, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.spec, self.in_chans, self.num_classes, self.drop_rate = spec, in_chans, num_classes, drop_rate
        w0, act = spec.widths[0], spec.act
        stem = OrderedDict(in_conv=ConvNormAct(in_chans, w0, 3, 2, act=act))
        for i in range(spec.depths[0]):
            stem[f"res{i}"] = Residual(_dsconv(w0, act))
        self.stem = nn.Sequential(stem)
        n_stages = len(spec.widths) - 1
        rates = iter(path_rates(sum(spec.depths[1:]) + spec.vit_stages, drop_path_rate))
        stages, self.feature_info, prev, reduction = [], [], w0, 2
        for i, (width, depth) in enumerate(zip(spec.widths[1:], spec.depths[1:])):
            vit = i >= n_stages - spec.vit_stages
            blocks = [_mbconv(prev, width, 2, spec.expand_ratio, act, fewer_norm=vit)]
            next(rates)
            if vit:
                blocks += [EfficientViTBBlock(width, spec.head_dim, spec.expand_ratio, act, next(rates))
                           for _ in range(depth)]
            else:
                blocks += [Residual(_mbconv(width, width, 1, spec.expand_ratio, act), next(rates))
                           for _ in range(depth - 1)]
            stages.append(nn.Sequential(OrderedDict(blocks=nn.Sequential(*blocks))))
            reduction *= 2
            self.feature_info.append(FeatureInfo(i, width, reduction, f"stages.{i}"))
            prev = width
        self.stages = nn.ModuleList(stages)
        self.head_in = ConvNormAct(prev, spec.head_widths[0], 1, act=act)
        self.num_features = spec.head_widths[1]
        self.pre_logits = nn.Sequential(OrderedDict(
            fc=nn.Linear(spec.head_widths[0], spec.head_widths[1], bias=False),
            ln=nn.LayerNorm(spec.head_widths[1]),
            act=nn.Hardswish(),
            drop=nn.Dropout(drop_rate)))
        self.classifier = self._make_head(num_classes)

    def _make_head(self, num_classes: int) -> nn.Module:
        return linear_head(self.num_features, num_classes)

    # ---- contract
    def trunk(self):
        return [("stem", self.stem)] + [(f"stages.{i}", s) for i, s in enumerate(self.stages)]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(self.head_in(x).mean((2, 3)))
        return x if pre_logits else self.classifier(x)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier = self._make_head(num_classes)


def _input_config() -> InputConfig:
    return InputConfig(input_size=(3, 224, 224), interpolation="bicubic", crop_pct=0.95)


_VARIANTS = {
    "efficientvit_b0": EfficientViTBSpec((8, 16, 32, 64, 128), (1, 2, 2, 2, 2), 16, (1024, 1280)),
    "efficientvit_b1": EfficientViTBSpec((16, 32, 64, 128, 256), (1, 2, 3, 3, 4), 16, (1536, 1600)),
    "efficientvit_b2": EfficientViTBSpec((24, 48, 96, 192, 384), (1, 3, 4, 4, 6), 32, (2304, 2560)),
    "efficientvit_b3": EfficientViTBSpec((32, 64, 128, 256, 512), (1, 4, 6, 6, 9), 32, (2304, 2560)),
}
VARIANTS: list[Variant] = []
for _name, _spec in _VARIANTS.items():
    VARIANTS.append(variant(_name, "efficientvit_mit", _spec, EfficientViTB, _input_config(), channels_last=True))
