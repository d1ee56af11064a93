"""The network shared by the MobileNet V1–V4 and EfficientNet (B, Lite, V2) families.

All of them are: a strided stem conv, stages of blocks (a stage is a tuple of rows, a row is
``repeats`` identical blocks of which only the first may stride), an optional 1x1 head conv and
a linear classifier. :class:`MBNetSpec` describes one such network completely; width and depth
scaling (EfficientNet compound scaling, MobileNet width multipliers) are applied by
:meth:`MBNetSpec.scaled` and resolved when the network is built.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..blocks.mbconv import ConvBlock, DepthwiseSeparable, FusedMBConv, InvertedResidual
from ..blocks.uib import MobileAttentionBlock, UniversalInvertedResidual
from ..errors import ConfigError
from ..layers import ConvNormAct, get_act, make_divisible
from ..layers.drop import path_rates
from .base import EdgeModel, FeatureInfo, init_conv_weights, linear_head

BLOCKS = {
    "cn": ConvBlock,  # conv-norm-act (+ residual if skip=True)
    "ds": DepthwiseSeparable,  # depthwise separable
    "ir": InvertedResidual,  # MBConv
    "er": FusedMBConv,  # Fused-MBConv ("edge residual")
    "uir": UniversalInvertedResidual,  # MobileNetV4 UIB
    "mqa": MobileAttentionBlock,  # MobileNetV4 hybrid: mobile multi-query attention
}


@dataclass(frozen=True)
class Row:
    """``repeats`` identical blocks; only the first one may stride."""

    kind: str  # block type: "cn", "ds", "ir", "er", "uir" or "mqa" (see BLOCKS)
    out_chs: int  # output channels before width scaling
    repeats: int = 1  # number of blocks before depth scaling
    stride: int = 1  # stride of the first block (1 or 2)
    kernel: int = 3  # depthwise kernel (ds/ir/uir middle dw; 0 = none for uir), full kernel for cn/er
    expand: float = 1.0  # expansion ratio: mid channels = make_divisible(in * expand)
    se: float = 0.0  # squeeze-excite ratio (0 = no SE); see MBNetSpec.se_from_mid
    act: str | None = None  # activation overriding the network's
    skip: bool | None = None  # None: residual whenever shapes allow; False: never; True: force (cn)
    pw_act: bool = False  # ds only: activation after the pointwise conv (MobileNetV1)
    start_kernel: int = 0  # uir only: depthwise kernel before the expansion (0 = none)
    end_kernel: int = 0  # uir only: depthwise kernel after the projection (0 = none)
    heads: int = 0  # mqa only: query heads (kernel: the key/value downsampling dw kernel)
    key_dim: int = 0  # mqa only: channels per head of queries and of the shared key and value
    kv_stride: int = 1  # mqa only: spatial reduction of keys/values (1 = none)
    expand_from: int = 0  # er only: channels (before width scaling) the expansion ratio multiplies
    #                       instead of the input's (TF EfficientNet-EdgeTPU's first block); 0 = input
    group_size: int = 0  # er only: channels per group of the expansion conv (0 = one group)


@dataclass(frozen=True)
class MBNetSpec:
    """Complete description of a MobileNet/EfficientNet-style network."""

    stages: tuple[tuple[Row, ...], ...]  # the body, stage by stage
    act: str = "relu"  # default activation
    stem_chs: int = 32  # stem output channels (before width scaling)
    stem_kernel: int = 3  # stem kernel (stride is always 2)
    fix_stem: bool = False  # True: stem channels are not width-scaled
    head_chs: int = 1280  # channels of the 1x1 head conv (0: no head conv)
    head_scaling: str = "scale"  # "scale": width-scaled; "fixed"; "max": max(head, scaled head)
    head_style: str = "conv_bn"  # "conv_bn": conv+BN+act before pooling (EfficientNet, MobileNetV2);
    #                              "pool_conv": pool, then conv with bias + act (MobileNetV3);
    #                              "pool_conv_bn": pool, then conv + BN + act (MobileNetV4)
    head_bias: bool = True  # "pool_conv" only: the head conv has a bias
    width: float = 1.0  # channel multiplier
    depth: float = 1.0  # repeat multiplier
    depth_trunc: str = "ceil"  # how scaled repeats are rounded: "ceil" (EfficientNet) or "round"
    fix_first_last_depth: bool = False  # keep the first and last stage depths unscaled (Lite)
    divisor: int = 8  # channel counts are multiples of this
    round_limit: float = 0.9  # make_divisible's limit when scaling channels
    se_from_mid: bool = False  # SE width from the expanded channels (MobileNetV3) instead of the input
    se_act: str | None = None  # SE inner activation (None: the block's)
    se_gate: str = "sigmoid"  # SE gate: "sigmoid" or "hard_sigmoid"
    se_divisible: bool = False  # round SE width with make_divisible (MobileNetV3) instead of round()
    padding: str = ""  # "" PyTorch symmetric padding, "same" TensorFlow SAME padding
    bn_eps: float = 1e-5  # BatchNorm epsilon (1e-3 for TF-ported models)
    layer_scale: float | None = None  # UIB layer-scale init value (None: no layer scale)
    aa: str = ""  # anti-aliased downsampling in the blocks' strided convs: "", "avg" or "blur" (layers/aa.py)

    def scaled(self, width: float = 1.0, depth: float = 1.0) -> "MBNetSpec":
        """The same network with channels x ``width`` and repeats x ``depth`` (compound scaling)."""
        return replace(self, width=self.width * width, depth=self.depth * depth)

    # ---- derived quantities
    def round_chs(self, chs: int) -> int:
        return make_divisible(chs * self.width, self.divisor, round_limit=self.round_limit)

    @property
    def stem_channels(self) -> int:
        return self.stem_chs if self.fix_stem else self.round_chs(self.stem_chs)

    def head_channels(self, last_chs: int) -> int:
        if self.head_chs <= 0:
            return last_chs
        if self.head_scaling == "fixed":
            return self.head_chs
        scaled = self.round_chs(self.head_chs)
        return max(self.head_chs, scaled) if self.head_scaling == "max" else scaled

    def stage_rows(self) -> list[list[Row]]:
        """Rows after depth scaling, each expanded to one Row per block."""
        out = []
        for i, stage in enumerate(self.stages):
            fixed = self.fix_first_last_depth and i in (0, len(self.stages) - 1)
            out.append(_scale_depth(stage, 1.0 if fixed else self.depth, self.depth_trunc))
        return out


def _scale_depth(rows: tuple[Row, ...], mult: float, trunc: str) -> list[Row]:
    """Scale the total repeats of a stage, distributing them over its rows from the last row
    backwards (so the first row, usually the strided one, is least likely to grow)."""
    repeats = [r.repeats for r in rows]
    total = sum(repeats)
    if mult == 1.0:
        scaled_total = total
    elif trunc == "round":
        scaled_total = max(1, round(total * mult))
    else:
        scaled_total = int(math.ceil(total * mult))
    new = []
    for r in repeats[::-1]:
        rs = max(1, round(r / total * scaled_total))
        new.append(rs)
        total -= r
        scaled_total -= rs
    out = []
    for row, n in zip(rows, new[::-1]):
        out.extend([row] * n)
    return out


class MBNet(EdgeModel):
    def __init__(self, spec: MBNetSpec, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.spec, self.in_chans, self.num_classes, self.drop_rate = spec, in_chans, num_classes, drop_rate
        common = dict(padding=spec.padding, bn_eps=spec.bn_eps)
        chs = spec.stem_channels
        self.stem = ConvNormAct(in_chans, chs, spec.stem_kernel, 2, act=spec.act, **common)
        stage_rows = spec.stage_rows()
        rates = iter(path_rates(sum(len(s) for s in stage_rows), drop_path_rate))
        self.feature_info = []
        if stage_rows[0][0].stride > 1:
            self.feature_info.append(FeatureInfo(0, chs, 2, "stem"))
        reduction = 2
        stages = []
        for si, rows in enumerate(stage_rows):
            blocks = []
            for bi, row in enumerate(rows):
                stride = row.stride if bi == 0 else 1
                blocks.append(self._make_block(row, chs, stride, next(rates)))
                chs = self.round_out(row)
                reduction *= stride
            stages.append(nn.Sequential(*blocks))
            last = si == len(stage_rows) - 1
            if last or stage_rows[si + 1][0].stride > 1:
                self.feature_info.append(FeatureInfo(len(self.feature_info), chs, reduction, f"stages.{si}"))
        self.stages = nn.ModuleList(stages)

        self.num_features = spec.head_channels(chs)
        if spec.head_chs <= 0:
            self.head_conv = nn.Identity()
        elif spec.head_style == "conv_bn":
            self.head_conv = ConvNormAct(chs, self.num_features, 1, act=spec.act, **common)
        elif spec.head_style == "pool_conv":
            self.head_conv = nn.Sequential(nn.Conv2d(chs, self.num_features, 1, bias=spec.head_bias),
                                           get_act(spec.act, inplace=True))
        elif spec.head_style == "pool_conv_bn":
            self.head_conv = ConvNormAct(chs, self.num_features, 1, act=spec.act, **common)
        else:
            raise ConfigError(f"unknown head_style {spec.head_style!r}")
        self._pool_first = spec.head_chs > 0 and spec.head_style != "conv_bn"
        self.classifier = linear_head(self.num_features, num_classes)
        init_conv_weights(self)

    def round_out(self, row: Row) -> int:
        return self.spec.round_chs(row.out_chs)

    def _make_block(self, row: Row, in_chs: int, stride: int, dpr: float) -> nn.Module:
        spec = self.spec
        if row.kind not in BLOCKS:
            raise ConfigError(f"unknown block kind {row.kind!r}; choose one of {', '.join(BLOCKS)}")
        out_chs = self.round_out(row)
        mid = make_divisible((spec.round_chs(row.expand_from) if row.expand_from else in_chs) * row.expand)
        act = row.act or spec.act
        se_channels = 0
        if row.se:
            base = mid if row.kind in ("ir", "er") else in_chs
            x = base * row.se if spec.se_from_mid else base * row.se / (row.expand if row.kind in ("ir", "er") else 1.0)
            se_channels = make_divisible(x, spec.divisor) if spec.se_divisible else int(round(x))
        return BLOCKS[row.kind](
            in_chs=in_chs, out_chs=out_chs, mid_chs=mid, kernel=row.kernel, stride=stride, act=act,
            padding=spec.padding, bn_eps=spec.bn_eps, skip=row.skip, drop_path=dpr,
            se_channels=se_channels, se_act=spec.se_act or act, se_gate=spec.se_gate,
            pw_act=row.pw_act, start_kernel=row.start_kernel, end_kernel=row.end_kernel,
            layer_scale=spec.layer_scale, heads=row.heads, key_dim=row.key_dim,
            kv_stride=row.kv_stride, aa=spec.aa, group_size=row.group_size)

    # ---- contract
    def trunk(self):
        pieces = [("stem", self.stem)]
        pieces += [(f"stages.{i}", s) for i, s in enumerate(self.stages)]
        if not self._pool_first:
            pieces.append(("head_conv", self.head_conv))
        return pieces

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3), keepdim=self._pool_first)
        if self._pool_first:
            x = self.head_conv(x).flatten(1)
        x = self.head_dropout(x)
        return x if pre_logits else self.classifier(x)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier = linear_head(self.num_features, num_classes)
