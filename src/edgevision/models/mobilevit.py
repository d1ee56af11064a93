"""MobileViT v1 (xxs, xs, s) and MobileViT v2 (width 0.5 - 2.0): specs, network, registration.

A MobileViT network is a stride-2 3x3 stem, five stages and an optional 1x1 head conv. Each
stage opens with MobileNetV2 inverted-residual blocks (the first one strides) and the last three
close with a MobileViT block (see :mod:`edgevision.blocks.mobilevit`): multi-head self-attention
with a concat-fusion conv in v1, separable self-attention in v2. Layer widths, expansions and
depths follow timm's ``mobilevit_*`` / ``mobilevitv2_*`` (Apple ml-cvnets) models, so timm
weights load one-to-one (:mod:`edgevision.weights.timm_mobilevit`).

**Input sizes.** Any size of at least 32x32 works (256 is the default). MobileViT blocks unfold
their map into 2x2 patches; a map with an odd side is resized to the next even size for the
attention and back (rule and timm differences in :mod:`edgevision.blocks.mobilevit`), so at
every size each level's map is ``ceil(input / reduction)``. Results match timm exactly whenever
no resizing happens (sides that are multiples of 64: 256, 192x256, 320 ...); v1 also matches
elsewhere, v2 does with ``keep_rounded_size=True``.

Inverted residuals here apply stochastic depth to residual blocks only (timm's ByobNet also
drops the non-residual ones); this changes training regularisation only, never eval outputs.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from ..blocks.mbconv import InvertedResidual
from ..blocks.mobilevit import MobileViTBlock, MobileViTV2Block
from ..errors import ConfigError
from ..layers import ConvNormAct, make_divisible
from ..layers.drop import path_rates
from .base import EdgeModel, FeatureInfo, init_conv_weights, linear_head
from .variant import InputConfig, Variant, variant


@dataclass(frozen=True)
class Stage:
    """Inverted-residual blocks, optionally closed by one MobileViT block."""

    out_chs: int  # output channels before width scaling
    blocks: int = 1  # inverted-residual blocks (only the first one strides)
    stride: int = 1  # stride of the first inverted-residual block (1 or 2)
    expand: float = 4.0  # inverted-residual expansion: mid channels = make_divisible(in * expand)
    attn_depth: int = 0  # transformer layers of the closing MobileViT block (0: no MobileViT block)
    attn_dim: int = 0  # transformer width before width scaling; 0: spec.attn_ratio * stage channels


@dataclass(frozen=True)
class MobileViTSpec:
    """Complete description of a MobileViT (v1 or v2) network."""

    stages: tuple[Stage, ...]  # the body, stage by stage
    version: int = 1  # 1: MHSA MobileViT blocks with fusion conv; 2: separable-attention blocks
    stem_chs: int = 16  # channels of the stride-2 3x3 stem conv (before width scaling)
    head_chs: int = 0  # channels of the 1x1 conv before pooling, before width scaling (0: none)
    width: float = 1.0  # channel multiplier (MobileViTv2 050 ... 200)
    act: str = "silu"  # activation of every conv and MLP
    patch_size: int = 2  # side of the square patches MobileViT blocks unfold into
    kernel: int = 3  # kernel of the local-representation conv (and the v1 fusion conv)
    num_heads: int = 4  # v1: attention heads
    mlp_ratio: float = 2.0  # transformer MLP hidden width / transformer width
    attn_ratio: float = 0.5  # transformer width / stage channels where Stage.attn_dim is 0 (v2)
    fusion: bool = True  # v1: concat the block input and fuse with a kxk conv
    keep_rounded_size: bool = False  # v2: keep a block's map at its patch-multiple size like
    #                                  timm (exact timm outputs at odd map sizes, but levels then
    #                                  no longer follow ceil(input / reduction))
    bn_eps: float = 1e-5  # BatchNorm epsilon

    def scaled(self, width: float = 1.0) -> "MobileViTSpec":
        """The same network with every channel count x ``width`` (MobileViTv2 multipliers)."""
        return replace(self, width=self.width * width)

    # ---- derived quantities (timm's rounding: truncate, then make divisible by 8)
    def round_chs(self, chs: int) -> int:
        return make_divisible(int(chs * self.width))

    @property
    def stem_channels(self) -> int:
        return int(self.stem_chs * self.width)

    def attn_width(self, stage: Stage) -> int:
        if stage.attn_dim:
            return self.round_chs(stage.attn_dim)
        return make_divisible(self.attn_ratio * self.round_chs(stage.out_chs))


class MobileViT(EdgeModel):
    def __init__(self, spec: MobileViTSpec, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        if spec.version not in (1, 2):
            raise ConfigError(f"MobileViT version must be 1 or 2, got {spec.version}")
        self.spec, self.in_chans, self.num_classes, self.drop_rate = spec, in_chans, num_classes, drop_rate
        act, eps = spec.act, spec.bn_eps
        chs = spec.stem_channels
        self.stem = ConvNormAct(in_chans, chs, 3, 2, act=act, bn_eps=eps)
        n_blocks = sum(s.blocks + (1 if s.attn_depth else 0) for s in spec.stages)
        rates = iter(path_rates(n_blocks, drop_path_rate))
        self.feature_info = []
        if spec.stages[0].stride > 1:
            self.feature_info.append(FeatureInfo(0, chs, 2, "stem"))
        reduction = 2
        stages = []
        for si, st in enumerate(spec.stages):
            out = spec.round_chs(st.out_chs)
            blocks: list[nn.Module] = []
            for bi in range(st.blocks):
                stride = st.stride if bi == 0 else 1
                blocks.append(InvertedResidual(chs, out, make_divisible(chs * st.expand), spec.kernel,
                                               stride, act=act, bn_eps=eps, drop_path=next(rates)))
                chs = out
            reduction *= st.stride
            if st.attn_depth:
                blocks.append(self._mobilevit_block(st, chs, next(rates)))
            stages.append(nn.Sequential(*blocks))
            last = si == len(spec.stages) - 1
            if last or spec.stages[si + 1].stride > 1:
                self.feature_info.append(FeatureInfo(len(self.feature_info), chs, reduction, f"stages.{si}"))
        self.stages = nn.ModuleList(stages)
        if spec.head_chs:
            self.num_features = spec.round_chs(spec.head_chs)
            self.final_conv = ConvNormAct(chs, self.num_features, 1, act=act, bn_eps=eps)
        else:
            self.num_features = chs
            self.final_conv = None
        self.classifier = linear_head(self.num_features, num_classes)
        init_conv_weights(self, linear_std=0.01)

    def _mobilevit_block(self, st: Stage, chs: int, dpr: float) -> nn.Module:
        spec = self.spec
        common = dict(in_chs=chs, out_chs=chs, dim=spec.attn_width(st), depth=st.attn_depth,
                      patch_size=spec.patch_size, kernel=spec.kernel, mlp_ratio=spec.mlp_ratio,
                      act=spec.act, drop_path=dpr, bn_eps=spec.bn_eps)
        if spec.version == 1:
            return MobileViTBlock(num_heads=spec.num_heads, fusion=spec.fusion, **common)
        return MobileViTV2Block(keep_rounded_size=spec.keep_rounded_size, **common)

    # ---- contract
    def trunk(self):
        pieces = [("stem", self.stem)]
        pieces += [(f"stages.{i}", s) for i, s in enumerate(self.stages)]
        if self.final_conv is not None:
            pieces.append(("final_conv", self.final_conv))
        return pieces


def _v1(widths: tuple[int, ...], attn_dims: tuple[int, int, int], expand: float, head: int) -> MobileViTSpec:
    c0, c1, c2, c3, c4 = widths
    a2, a3, a4 = attn_dims
    return MobileViTSpec(
        stages=(
            Stage(c0, 1, 1, expand),
            Stage(c1, 3, 2, expand),
            Stage(c2, 1, 2, expand, attn_depth=2, attn_dim=a2),
            Stage(c3, 1, 2, expand, attn_depth=4, attn_dim=a3),
            Stage(c4, 1, 2, expand, attn_depth=3, attn_dim=a4),
        ),
        version=1, stem_chs=16, head_chs=head)


MOBILEVIT_XXS = _v1((16, 24, 48, 64, 80), (64, 80, 96), 2.0, 320)
MOBILEVIT_XS = _v1((32, 48, 64, 80, 96), (96, 120, 144), 4.0, 384)
MOBILEVIT_S = _v1((32, 64, 96, 128, 160), (144, 192, 240), 4.0, 640)

# width 1.0; the registered variants are MOBILEVIT_V2.scaled(width=...)
MOBILEVIT_V2 = MobileViTSpec(
    stages=(
        Stage(64, 1, 1, 2.0),
        Stage(128, 2, 2, 2.0),
        Stage(256, 1, 2, 2.0, attn_depth=2),
        Stage(384, 1, 2, 2.0, attn_depth=4),
        Stage(512, 1, 2, 2.0, attn_depth=3),
    ),
    version=2, stem_chs=32, head_chs=0, attn_ratio=0.5)


def _input_config(crop_pct: float) -> InputConfig:
    # the ml-cvnets checkpoints take [0, 1] RGB: no mean/std normalisation
    return InputConfig(input_size=(3, 256, 256), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                       interpolation="bicubic", crop_pct=crop_pct)


_CHANNELS_LAST = True  # NHWC is faster on CPU for these networks (convs dominate)

VARIANTS: list[Variant] = []
for _name, _spec in (("mobilevit_xxs", MOBILEVIT_XXS), ("mobilevit_xs", MOBILEVIT_XS),
                     ("mobilevit_s", MOBILEVIT_S)):
    VARIANTS.append(variant(_name, "mobilevit", _spec, MobileViT, _input_config(0.9), channels_last=_CHANNELS_LAST))
for _w, _tag in ((0.5, "050"), (0.75, "075"), (1.0, "100"), (1.25, "125"), (1.5, "150"),
                 (1.75, "175"), (2.0, "200")):
    VARIANTS.append(variant(f"mobilevitv2_{_tag}", "mobilevitv2", MOBILEVIT_V2.scaled(width=_w), MobileViT,
             _input_config(0.888), channels_last=_CHANNELS_LAST))
