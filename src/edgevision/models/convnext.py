"""ConvNeXt (atto … large) and ConvNeXt V2 (atto … large).

V2 differs from V1 by GRN inside the MLP and no layer scale. Variants are one spec with other
depths/widths (``ConvNeXtSpec.scaled(width=...)`` multiplies the widths). Patchify stem (4x4 conv
stride 4 + LayerNorm2d), stage downsampling (LayerNorm2d + 2x2 conv stride 2), head: global
average pool -> LayerNorm -> dropout -> Linear. Any input with sides >= 32 works.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..blocks.convnext import ConvNeXtStage
from ..layers import LayerNorm2d
from .base import EdgeModel, FeatureInfo, linear_head
from .variant import InputConfig, Variant, variant


@dataclass(frozen=True)
class ConvNeXtSpec:
    depths: tuple[int, ...] = (3, 3, 9, 3)  # blocks per stage
    dims: tuple[int, ...] = (96, 192, 384, 768)  # channels per stage
    mlp_ratio: float = 4.0  # MLP hidden width / channels
    kernel_size: int = 7  # depthwise kernel
    ls_init_value: float | None = 1e-6  # layer-scale init (None: no layer scale, as in V2)
    use_grn: bool = False  # Global Response Normalization in the MLP (V2)
    norm_eps: float = 1e-6  # LayerNorm epsilon

    def scaled(self, width: float = 1.0, depth: float = 1.0) -> "ConvNeXtSpec":
        return replace(self, dims=tuple(int(round(d * width)) for d in self.dims),
                       depths=tuple(max(1, int(math.ceil(n * depth))) for n in self.depths))


class ConvNeXt(EdgeModel):
    def __init__(self, spec: ConvNeXtSpec, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.spec, self.in_chans, self.num_classes, self.drop_rate = spec, in_chans, num_classes, drop_rate
        dims = spec.dims
        self.stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], 4, 4), LayerNorm2d(dims[0], eps=spec.norm_eps))
        n = sum(spec.depths)
        rates = [drop_path_rate * i / max(1, n - 1) for i in range(n)]  # 0 .. rate, inclusive
        stages, prev, k = [], dims[0], 0
        self.feature_info = []
        for i, (depth, dim) in enumerate(zip(spec.depths, dims)):
            stages.append(ConvNeXtStage(prev, dim, depth, i > 0, rates[k:k + depth], mlp_ratio=spec.mlp_ratio,
                                        ls_init_value=spec.ls_init_value, use_grn=spec.use_grn,
                                        kernel_size=spec.kernel_size, eps=spec.norm_eps))
            self.feature_info.append(FeatureInfo(i, dim, 4 * 2 ** i, f"stages.{i}"))
            prev, k = dim, k + depth
        self.stages = nn.ModuleList(stages)
        self.num_features = dims[-1]
        self.head = nn.Module()
        self.head.norm = nn.LayerNorm(self.num_features, eps=spec.norm_eps)
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
        x = self.head_dropout(self.head.norm(x.mean((2, 3))))
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
VARIANTS: list[Variant] = []
for _n, (_d, _w) in _SIZES.items():
    _v1 = replace(CONVNEXT_TINY, depths=_d, dims=_w)
    VARIANTS.append(variant(f"convnext_{_n}", "convnext", _v1, ConvNeXt, _CFG, channels_last=True))
    if _n != "small":  # ConvNeXt V2 has no "small"
        VARIANTS.append(variant(f"convnextv2_{_n}", "convnextv2", replace(_v1, ls_init_value=None, use_grn=True), ConvNeXt,
                 _CFG, channels_last=True))
