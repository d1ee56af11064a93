"""ConvNeXt (zepto … xxlarge) and ConvNeXt V2 (atto … huge).

V2 differs from V1 by GRN inside the MLP and no layer scale. Variants are one spec with other
depths/widths (``ConvNeXtSpec.scaled(width=...)`` multiplies the widths). Patchify stem (4x4 conv
stride 4 + LayerNorm2d), stage downsampling (LayerNorm2d + 2x2 conv stride 2), head: global
average pool -> LayerNorm -> dropout -> Linear. Any input with sides >= 32 works.

timm's own variants are spec fields too: ``*_ols`` an overlapping stem (two 3x3 stride-2 convs),
``zepto_rms*`` SimpleNorm (scale by the std, no centring, no bias) in place of every LayerNorm,
``*_hnf`` the head norm on the feature map before pooling, ``large_mlp`` a Linear + GELU before
the classifier.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..blocks.convnext import ConvNeXtStage, make_norm
from ..errors import ConfigError
from ..layers import make_divisible
from .base import EdgeModel, FeatureInfo, linear_head
from .variant import IMAGENET_INCEPTION, InputConfig, Variant, variant


_STEMS = ("patch", "overlap", "overlap_tiered", "overlap_act")


@dataclass(frozen=True)
class ConvNeXtSpec:
    depths: tuple[int, ...] = (3, 3, 9, 3)  # blocks per stage
    dims: tuple[int, ...] = (96, 192, 384, 768)  # channels per stage
    mlp_ratio: float = 4.0  # MLP hidden width / channels
    kernel_size: int = 7  # depthwise kernel
    ls_init_value: float | None = 1e-6  # layer-scale init (None: no layer scale, as in V2)
    use_grn: bool = False  # Global Response Normalization in the MLP (V2)
    norm_eps: float = 1e-6  # epsilon of every norm
    norm: str = "layernorm"  # or "simplenorm": scale by the std only, no centring, no bias
    # "patch": 4x4 stride-4 conv; "overlap": two 3x3 stride-2 convs (the first at half width if
    # "_tiered", with a GELU between them if "_act"); a channel norm after either
    stem: str = "patch"
    head_norm_first: bool = False  # norm the last feature map, then pool (else pool, then norm)
    head_hidden: int | None = None  # Linear + GELU of this width between the head norm and fc

    def scaled(self, width: float = 1.0, depth: float = 1.0) -> "ConvNeXtSpec":
        return replace(self, dims=tuple(int(round(d * width)) for d in self.dims),
                       depths=tuple(max(1, int(math.ceil(n * depth))) for n in self.depths))


def _stem(spec: ConvNeXtSpec, in_chans: int) -> nn.Sequential:
    d0 = spec.dims[0]
    norm = make_norm(spec.norm, d0, spec.norm_eps, channels_first=True)
    if spec.stem == "patch":
        return nn.Sequential(nn.Conv2d(in_chans, d0, 4, 4), norm)
    if spec.stem not in _STEMS:
        raise ConfigError(f"unknown ConvNeXt stem {spec.stem!r}; use one of {', '.join(_STEMS)}")
    mid = make_divisible(d0 // 2) if spec.stem == "overlap_tiered" else d0
    act = [nn.GELU()] if spec.stem == "overlap_act" else []
    return nn.Sequential(nn.Conv2d(in_chans, mid, 3, 2, 1), *act, nn.Conv2d(mid, d0, 3, 2, 1), norm)


class ConvNeXt(EdgeModel):
    def __init__(self, spec: ConvNeXtSpec, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.spec, self.in_chans, self.num_classes, self.drop_rate = spec, in_chans, num_classes, drop_rate
        dims = spec.dims
        self.stem = _stem(spec, in_chans)
        n = sum(spec.depths)
        rates = [drop_path_rate * i / max(1, n - 1) for i in range(n)]  # 0 .. rate, inclusive
        stages, prev, k = [], dims[0], 0
        self.feature_info = []
        for i, (depth, dim) in enumerate(zip(spec.depths, dims)):
            stages.append(ConvNeXtStage(prev, dim, depth, i > 0, rates[k:k + depth], mlp_ratio=spec.mlp_ratio,
                                        ls_init_value=spec.ls_init_value, use_grn=spec.use_grn,
                                        kernel_size=spec.kernel_size, eps=spec.norm_eps, norm=spec.norm))
            self.feature_info.append(FeatureInfo(i, dim, 4 * 2 ** i, f"stages.{i}"))
            prev, k = dim, k + depth
        self.stages = nn.ModuleList(stages)
        self.head = nn.Module()
        self.head.norm = make_norm(spec.norm, prev, spec.norm_eps, channels_first=spec.head_norm_first)
        if spec.head_hidden:
            self.head.pre_logits = nn.Sequential(OrderedDict(fc=nn.Linear(prev, spec.head_hidden), act=nn.GELU()))
        self.num_features = spec.head_hidden or prev
        self.head.fc = linear_head(self.num_features, num_classes)
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def trunk(self):
        return [("stem", self.stem)] + [(f"stages.{i}", s) for i, s in enumerate(self.stages)]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head.norm(x).mean((2, 3)) if self.spec.head_norm_first else self.head.norm(x.mean((2, 3)))
        if self.spec.head_hidden:
            x = self.head.pre_logits(x)
        x = self.head_dropout(x)
        return x if pre_logits else self.head.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head.fc = linear_head(self.num_features, num_classes)


CONVNEXT_TINY = ConvNeXtSpec()
_SIZES = {  # name: (depths, dims)
    "atto": ((2, 2, 6, 2), (40, 80, 160, 320)), "femto": ((2, 2, 6, 2), (48, 96, 192, 384)),
    "pico": ((2, 2, 6, 2), (64, 128, 256, 512)), "nano": ((2, 2, 8, 2), (80, 160, 320, 640)),
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)), "small": ((3, 3, 27, 3), (96, 192, 384, 768)),
    "base": ((3, 3, 27, 3), (128, 256, 512, 1024)), "large": ((3, 3, 27, 3), (192, 384, 768, 1536)),
}
_CFG = InputConfig(input_size=(3, 224, 224), crop_pct=0.95, interpolation="bicubic")
_CLIP = dict(mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711))
_CLIP_256 = replace(_CFG, input_size=(3, 256, 256), crop_pct=1.0, **_CLIP)
VARIANTS: list[Variant] = []


def _add(name: str, spec: ConvNeXtSpec, cfg: InputConfig = _CFG) -> None:
    family = "convnextv2" if spec.use_grn else "convnext"
    VARIANTS.append(variant(name, family, spec, ConvNeXt, cfg, channels_last=True))


def _size(size: str | tuple, **fields) -> ConvNeXtSpec:
    """The spec of a named size of ``_SIZES`` or of a ``(depths, dims)`` pair, with ``fields``."""
    depths, dims = _SIZES[size] if isinstance(size, str) else size
    return replace(CONVNEXT_TINY, depths=depths, dims=dims, **fields)


_V2 = dict(ls_init_value=None, use_grn=True)
for _n in _SIZES:
    _add(f"convnext_{_n}", _size(_n))
    if _n != "small":  # ConvNeXt V2 has no "small"
        _add(f"convnextv2_{_n}", _size(_n, **_V2))
# timm's own variants; input configs from their default pretrained tags
_ZEPTO = ((2, 2, 4, 2), (32, 64, 128, 256))
_add("convnext_zepto_rms", _size(_ZEPTO, norm="simplenorm"), replace(_CFG, crop_pct=0.875, **IMAGENET_INCEPTION))
_add("convnext_zepto_rms_ols", _size(_ZEPTO, norm="simplenorm", stem="overlap_act"),
     replace(_CFG, crop_pct=0.9, **IMAGENET_INCEPTION))
for _n, _stem_kind, _crop in (("atto", "overlap_tiered", 0.875), ("femto", "overlap_tiered", 0.875),
                              ("pico", "overlap_tiered", 0.95), ("nano", "overlap", 0.95)):
    _add(f"convnext_{_n}_ols", _size(_n, stem=_stem_kind), replace(_CFG, crop_pct=_crop))
_add("convnext_tiny_hnf", _size("tiny", head_norm_first=True))
_add("convnext_large_mlp", _size("large", head_hidden=1536), _CLIP_256)
_add("convnext_xlarge", _size(((3, 3, 27, 3), (256, 512, 1024, 2048))), replace(_CFG, crop_pct=0.875))
_add("convnext_xxlarge", _size(((3, 4, 30, 3), (384, 768, 1536, 3072)), norm_eps=1e-5), _CLIP_256)
_add("convnextv2_huge", _size(((3, 3, 27, 3), (352, 704, 1408, 2816)), **_V2), replace(_CFG, crop_pct=0.875))
