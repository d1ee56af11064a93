"""edgevision-MSWA: a small hybrid network assembled from edgevision's multi-scale window
attention and lightweight FFN (an edgevision design, **not a published architecture**; there
are no published weights or ImageNet figures for it).

Layout: a stride-2 3x3 conv stem, MobileNetV2 inverted residuals at strides 4 and 8 (where
convolutions are cheapest per useful FLOP), then at strides 16 and 32 a strided inverted
residual followed by :class:`~edgevision.blocks.mswa.MSWABlock` s (heads split over 3x3 windows,
7x7 windows and global attention), a 1x1 conv head, pooling and a classifier.

Any input size of at least 32x32 works; maps that are not multiples of a window are padded and
the padding is masked out of the attention (see :mod:`edgevision.layers.attention_window`).
Every normalisation is a BatchNorm, so :func:`edgevision.reparameterize` leaves only convs,
attention and activations.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from ..blocks.mbconv import InvertedResidual
from ..blocks.mswa import MSWABlock
from ..layers import ConvNormAct, make_divisible
from ..layers.drop import path_rates
from .base import EdgeModel, FeatureInfo, init_conv_weights, linear_head
from .variant import InputConfig, Variant, variant


@dataclass(frozen=True)
class MSWAStage:
    out_chs: int  # stage width
    conv_blocks: int = 1  # inverted residuals (the first one strides by 2)
    expand: float = 4.0  # inverted-residual expansion
    attn_blocks: int = 0  # MSWA blocks after the inverted residuals
    heads: int = 0  # attention heads (a multiple of the number of window sizes)


@dataclass(frozen=True)
class MSWASpec:
    stages: tuple[MSWAStage, ...]
    stem_chs: int = 24
    head_chs: int = 1024  # 1x1 conv before pooling
    windows: tuple[int, ...] = (3, 7, 0)  # window sides of the head groups (0 = global)
    ffn_expand: float = 2.0
    act: str = "hard_swish"

    def scaled(self, width: float = 1.0) -> "MSWASpec":
        return replace(self, stem_chs=make_divisible(self.stem_chs * width),
                       stages=tuple(replace(s, out_chs=make_divisible(s.out_chs * width, 24))
                                    for s in self.stages))


class EdgeVisionMSWA(EdgeModel):
    def __init__(self, spec: MSWASpec, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.spec, self.in_chans, self.num_classes, self.drop_rate = spec, in_chans, num_classes, drop_rate
        act = spec.act
        self.stem = ConvNormAct(in_chans, spec.stem_chs, 3, 2, act=act)
        rates = iter(path_rates(sum(s.conv_blocks + s.attn_blocks for s in spec.stages), drop_path_rate))
        chs, reduction, stages = spec.stem_chs, 2, []
        self.feature_info = []
        for i, st in enumerate(spec.stages):
            blocks: list[nn.Module] = []
            for j in range(st.conv_blocks):
                blocks.append(InvertedResidual(chs, st.out_chs, make_divisible(chs * st.expand), 3,
                                               2 if j == 0 else 1, act=act, drop_path=next(rates)))
                chs = st.out_chs
            blocks += [MSWABlock(chs, st.heads, spec.windows, spec.ffn_expand, act, next(rates))
                       for _ in range(st.attn_blocks)]
            reduction *= 2
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append(FeatureInfo(i, chs, reduction, f"stages.{i}"))
        self.stages = nn.ModuleList(stages)
        self.head_conv = ConvNormAct(chs, spec.head_chs, 1, act=act)
        self.num_features = spec.head_chs
        self.classifier = linear_head(self.num_features, num_classes)
        init_conv_weights(self, linear_std=0.01)

    def trunk(self):
        return [("stem", self.stem)] + [(f"stages.{i}", s) for i, s in enumerate(self.stages)] + \
            [("head_conv", self.head_conv)]


EDGEVISION_MSWA_S = MSWASpec(stages=(
    MSWAStage(32, conv_blocks=2, expand=4.0),
    MSWAStage(64, conv_blocks=2, expand=4.0),
    MSWAStage(192, conv_blocks=1, expand=4.0, attn_blocks=3, heads=6),
    MSWAStage(288, conv_blocks=1, expand=4.0, attn_blocks=2, heads=9),
))

VARIANTS: list[Variant] = []
VARIANTS.append(variant("edgevision_mswa_s", "edgevision_mswa", EDGEVISION_MSWA_S, EdgeVisionMSWA,
         InputConfig(input_size=(3, 224, 224), interpolation="bicubic", crop_pct=0.875),
         description="edgevision's own hybrid (multi-scale window attention); not a published model",
         channels_last=True))
