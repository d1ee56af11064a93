"""EfficientViT-B0 - B3 and L1 - L3 (MIT, Cai et al., ICCV 2023): multi-scale ReLU linear
attention. Not the Microsoft EfficientViT (``efficientvit_m*``, :mod:`.efficientvit_msra`).

- Stem: 3x3 stride-2 conv-BN-act, then residual depthwise-separable blocks (L: residual
  3x3 conv-BN-act -> 3x3 conv-BN blocks).
- Stages 1-2 (stride 4, 8): MBConv blocks (1x1 expand x4 -> 3x3 DW -> 1x1, BN each), the first
  with stride 2 and no residual (L: fused MBConvs, 3x3 expand -> 1x1, the first expanding x16).
- Stages 3-4 (stride 16, 32): a stride-2 MBConv ("fewer norm": biases instead of BN except
  on the projection), then EfficientViT blocks = residual LiteMLA
  (:mod:`edgevision.layers.attention_lite`, linear in the number of tokens, so any input size
  works without windows or interpolation) + residual MBConv. L: stage 3 is fewer-norm MBConvs
  only, stage 4 opens with a x24 MBConv and its blocks' MBConvs expand x6.
- Head: 1x1 conv-BN-act to a wide map, average pool, Linear (no bias) -> LayerNorm ->
  act -> dropout -> Linear. B: hardswish, BN eps 1e-5; L: tanh-GELU, BN/LayerNorm eps 1e-7.

Feature levels: the four stages (stride 4, 8, 16, 32; ``ceil(input / stride)`` per side).
:func:`edgevision.reparameterize` folds the BNs. Layer names follow timm's ``efficientvit_b*`` /
``efficientvit_l*`` (B = the official repository's) with ``norm`` -> ``bn`` and ``main`` -> ``m``.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..errors import ConfigError
from ..layers import ConvNormAct, Residual, get_act
from ..layers.attention_lite import LiteMLA
from ..layers.drop import path_rates
from .base import EdgeModel, FeatureInfo, linear_head
from .variant import InputConfig, Variant, variant


@dataclass(frozen=True)
class EfficientViTBSpec:
    """Complete description of an EfficientViT-B or -L network."""

    widths: tuple[int, ...]  # stem, then the four stages
    depths: tuple[int, ...]  # stem residual blocks, then blocks per stage (stride-2 block included)
    head_dim: int  # channels per attention head
    head_widths: tuple[int, int]  # 1x1 conv width before pooling, hidden width of the classifier
    expand_ratio: float = 4.0  # MBConvs of the conv stages
    act: str = "hard_swish"
    vit_stages: int = 2  # the last N stages hold attention blocks
    norm_eps: float = 1e-5  # every BatchNorm and the head's LayerNorm
    stem_block: str = "dsconv"  # stem residual blocks: "dsconv" (3x3 DW + 1x1) or "conv" (3x3 + 3x3)
    fused_stages: int = 0  # the first N stages use fused MBConvs (3x3 expand conv + 1x1 project)
    # the last N stages' MBConvs have biases instead of their first BNs (None: the ViT stages)
    fewer_norm_stages: int | None = None
    # expansion of a stage's stride-2 block in conv / ViT stages (None: expand_ratio)
    down_expand: tuple[float, float] | None = None
    vit_expand: float | None = None  # expansion of the ViT blocks' MBConvs (None: expand_ratio)


def _dsconv(chs: int, act: str, eps: float) -> nn.Module:
    return nn.Sequential(OrderedDict(depth_conv=ConvNormAct(chs, chs, 3, groups=chs, act=act, bn_eps=eps),
                                     point_conv=ConvNormAct(chs, chs, 1, act=None, bn_eps=eps)))


def _conv_block(chs: int, act: str, eps: float) -> nn.Module:
    return nn.Sequential(OrderedDict(conv1=ConvNormAct(chs, chs, 3, act=act, bn_eps=eps),
                                     conv2=ConvNormAct(chs, chs, 3, act=None, bn_eps=eps)))


def _mbconv(in_chs: int, out_chs: int, stride: int, expand: float, act: str,
            fewer_norm: bool = False, eps: float = 1e-5) -> nn.Module:
    """1x1 expand -> kxk DW -> 1x1 project; ``fewer_norm``: biases instead of the first two BNs."""
    mid = round(in_chs * expand)
    norm = not fewer_norm
    return nn.Sequential(OrderedDict(
        inverted_conv=ConvNormAct(in_chs, mid, 1, act=act, norm=norm, bn_eps=eps),
        depth_conv=ConvNormAct(mid, mid, 3, stride, groups=mid, act=act, norm=norm, bn_eps=eps),
        point_conv=ConvNormAct(mid, out_chs, 1, act=None, bn_eps=eps)))


def _fused_mbconv(in_chs: int, out_chs: int, stride: int, expand: float, act: str,
                  fewer_norm: bool = False, eps: float = 1e-5) -> nn.Module:
    """3x3 expand conv -> 1x1 project; ``fewer_norm``: a bias instead of the first BN."""
    mid = round(in_chs * expand)
    return nn.Sequential(OrderedDict(
        spatial_conv=ConvNormAct(in_chs, mid, 3, stride, act=act, norm=not fewer_norm, bn_eps=eps),
        point_conv=ConvNormAct(mid, out_chs, 1, act=None, bn_eps=eps)))


class EfficientViTBBlock(nn.Module):
    """Residual LiteMLA (context) -> residual MBConv (local)."""

    def __init__(self, chs: int, head_dim: int, expand: float, act: str, drop_path: float = 0.0,
                 eps: float = 1e-5):
        super().__init__()
        self.context_module = Residual(LiteMLA(chs, chs, head_dim, bn_eps=eps), drop_path)
        self.local_module = Residual(_mbconv(chs, chs, 1, expand, act, fewer_norm=True, eps=eps), drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.local_module(self.context_module(x))


def _stage(spec: EfficientViTBSpec, i: int, in_chs: int, rates) -> nn.Module:
    """Stage ``i``: a stride-2 block without shortcut, then residual (fused) MBConvs or ViT blocks."""
    n_stages, act, eps = len(spec.widths) - 1, spec.act, spec.norm_eps
    width, depth = spec.widths[i + 1], spec.depths[i + 1]
    vit = i >= n_stages - spec.vit_stages
    fewer = i >= n_stages - (spec.vit_stages if spec.fewer_norm_stages is None else spec.fewer_norm_stages)
    local = _fused_mbconv if i < spec.fused_stages else _mbconv
    down = spec.down_expand[int(vit)] if spec.down_expand else spec.expand_ratio
    blocks = [local(in_chs, width, 2, down, act, fewer_norm=fewer, eps=eps)]
    next(rates)
    if vit:
        blocks += [EfficientViTBBlock(width, spec.head_dim, spec.vit_expand or spec.expand_ratio, act,
                                      next(rates), eps) for _ in range(depth)]
    else:
        blocks += [Residual(local(width, width, 1, spec.expand_ratio, act, fewer_norm=fewer, eps=eps),
                            next(rates)) for _ in range(depth - 1)]
    return nn.Sequential(OrderedDict(blocks=nn.Sequential(*blocks)))


_STEM_BLOCKS = {"dsconv": _dsconv, "conv": _conv_block}


class EfficientViTB(EdgeModel):
    def __init__(self, spec: EfficientViTBSpec, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.spec, self.in_chans, self.num_classes, self.drop_rate = spec, in_chans, num_classes, drop_rate
        w0, act, eps = spec.widths[0], spec.act, spec.norm_eps
        if spec.stem_block not in _STEM_BLOCKS:
            raise ConfigError(f"unknown EfficientViT stem block {spec.stem_block!r}; "
                              f"use one of {', '.join(_STEM_BLOCKS)}")
        stem = OrderedDict(in_conv=ConvNormAct(in_chans, w0, 3, 2, act=act, bn_eps=eps))
        for i in range(spec.depths[0]):
            stem[f"res{i}"] = Residual(_STEM_BLOCKS[spec.stem_block](w0, act, eps))
        self.stem = nn.Sequential(stem)
        rates = iter(path_rates(sum(spec.depths[1:]) + spec.vit_stages, drop_path_rate))
        stages, self.feature_info, prev, reduction = [], [], w0, 2
        for i, width in enumerate(spec.widths[1:]):
            stages.append(_stage(spec, i, prev, rates))
            reduction *= 2
            self.feature_info.append(FeatureInfo(i, width, reduction, f"stages.{i}"))
            prev = width
        self.stages = nn.ModuleList(stages)
        self.head_in = ConvNormAct(prev, spec.head_widths[0], 1, act=act, bn_eps=eps)
        self.num_features = spec.head_widths[1]
        self.pre_logits = nn.Sequential(OrderedDict(
            fc=nn.Linear(spec.head_widths[0], spec.head_widths[1], bias=False),
            ln=nn.LayerNorm(spec.head_widths[1], eps=eps),
            act=get_act(act),
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
# EfficientViT-L: GELU (tanh), BN eps 1e-7, conv stem blocks, fused MBConvs in stages 1-2, one
# ViT stage. ``depths`` count the stride-2 block, so the conv stages are one longer than the
# reference's (which counts only the blocks after it).
_L = dict(head_dim=32, act="gelu_tanh", vit_stages=1, norm_eps=1e-7, stem_block="conv", fused_stages=2,
          fewer_norm_stages=2, down_expand=(16, 24), vit_expand=6)
_VARIANTS_L = {
    "efficientvit_l1": EfficientViTBSpec((32, 64, 128, 256, 512), (1, 2, 2, 7, 6), head_widths=(3072, 3200), **_L),
    "efficientvit_l2": EfficientViTBSpec((32, 64, 128, 256, 512), (1, 3, 3, 9, 8), head_widths=(3072, 3200), **_L),
    "efficientvit_l3": EfficientViTBSpec((64, 128, 256, 512, 1024), (1, 3, 3, 9, 8), head_widths=(6144, 6400),
                                         **_L),
}
VARIANTS: list[Variant] = []
for _name, _spec in _VARIANTS.items():
    VARIANTS.append(variant(_name, "efficientvit_mit", _spec, EfficientViTB, _input_config(), channels_last=True))
for _name, _spec in _VARIANTS_L.items():
    VARIANTS.append(variant(_name, "efficientvit_mit", _spec, EfficientViTB,
                            replace(_input_config(), crop_pct=1.0), channels_last=True))
