"""MobileNet V1, V2 and V3 (large/small): specs over the shared MBNet network.

Widths follow timm's variants (``mobilenetv2_140`` = width 1.4); the V3 builds are the common
PyTorch ones (2.5 M params / 56 M MACs for small-1.0, below the paper's 2.9 M / 66 M, because
the paper's SE widths differ; see docs).
"""
from __future__ import annotations

from .mbnet import MBNet, MBNetSpec, Row
from .variant import InputConfig, Variant, variant

MOBILENET_V1 = MBNetSpec(
    stages=(
        (Row("ds", 64, pw_act=True, skip=False),),
        (Row("ds", 128, 2, stride=2, pw_act=True, skip=False),),
        (Row("ds", 256, 2, stride=2, pw_act=True, skip=False),),
        (Row("ds", 512, 6, stride=2, pw_act=True, skip=False),),
        (Row("ds", 1024, 2, stride=2, pw_act=True, skip=False),),
    ),
    act="relu6", stem_chs=32, head_chs=0,
)

MOBILENET_V2 = MBNetSpec(
    stages=(
        (Row("ds", 16),),
        (Row("ir", 24, 2, stride=2, expand=6),),
        (Row("ir", 32, 3, stride=2, expand=6),),
        (Row("ir", 64, 4, stride=2, expand=6),),
        (Row("ir", 96, 3, expand=6),),
        (Row("ir", 160, 3, stride=2, expand=6),),
        (Row("ir", 320, 1, expand=6),),
    ),
    act="relu6", stem_chs=32, head_chs=1280, head_scaling="max",
)

_V3_COMMON = dict(act="hard_swish", stem_chs=16, head_style="pool_conv", head_scaling="fixed",
                  se_from_mid=True, se_act="relu", se_gate="hard_sigmoid", se_divisible=True)

MOBILENET_V3_LARGE = MBNetSpec(
    stages=(
        (Row("ds", 16, act="relu"),),
        (Row("ir", 24, stride=2, expand=4, act="relu"), Row("ir", 24, expand=3, act="relu")),
        (Row("ir", 40, 3, stride=2, kernel=5, expand=3, se=0.25, act="relu"),),
        (Row("ir", 80, stride=2, expand=6), Row("ir", 80, expand=2.5), Row("ir", 80, 2, expand=2.3)),
        (Row("ir", 112, 2, expand=6, se=0.25),),
        (Row("ir", 160, 3, stride=2, kernel=5, expand=6, se=0.25),),
        (Row("cn", 960, kernel=1),),
    ),
    head_chs=1280, **_V3_COMMON,
)

MOBILENET_V3_SMALL = MBNetSpec(
    stages=(
        (Row("ds", 16, stride=2, se=0.25, act="relu"),),
        (Row("ir", 24, stride=2, expand=4.5, act="relu"), Row("ir", 24, expand=3.67, act="relu")),
        (Row("ir", 40, stride=2, kernel=5, expand=4, se=0.25), Row("ir", 40, 2, kernel=5, expand=6, se=0.25)),
        (Row("ir", 48, 2, kernel=5, expand=3, se=0.25),),
        (Row("ir", 96, 3, stride=2, kernel=5, expand=6, se=0.25),),
        (Row("cn", 576, kernel=1),),
    ),
    head_chs=1024, **_V3_COMMON,
)

_RES224 = InputConfig(input_size=(3, 224, 224), interpolation="bilinear")

VARIANTS: list[Variant] = []
for _w, _tag in ((1.0, "100"), (1.25, "125")):
    VARIANTS.append(variant(f"mobilenetv1_{_tag}", "mobilenetv1", MOBILENET_V1.scaled(width=_w), MBNet, _RES224, channels_last=True))
for _w, _tag in ((0.35, "035"), (0.5, "050"), (0.75, "075"), (1.0, "100"), (1.4, "140")):
    VARIANTS.append(variant(f"mobilenetv2_{_tag}", "mobilenetv2", MOBILENET_V2.scaled(width=_w), MBNet, _RES224, channels_last=True))
for _base, _kind in ((MOBILENET_V3_LARGE, "large"), (MOBILENET_V3_SMALL, "small")):
    for _w, _tag in ((0.75, "075"), (1.0, "100")):
        VARIANTS.append(variant(f"mobilenetv3_{_kind}_{_tag}", "mobilenetv3", _base.scaled(width=_w), MBNet, _RES224, channels_last=True))
