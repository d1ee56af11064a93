"""EfficientNet B0–B7, EfficientNet-Lite0–4 and EfficientNetV2 (B0–B3, S, M, L).

B1–B7 and Lite1–4 are the base spec compound-scaled with ``spec.scaled(width, depth)``; no
per-variant tables. Lite: ReLU6, no SE, stem/head and first/last stage depth fixed, TF "same"
padding and BN eps 1e-3 (the TF-trained weights need them). V2 S/M/L have their own bodies
(different per-stage depths and widths in the paper), B0–B3 are the V2 base compound-scaled.
"""
from __future__ import annotations

from dataclasses import replace

from .mbnet import MBNet, MBNetSpec, Row
from .variant import IMAGENET_INCEPTION, InputConfig, Variant, variant

EFFICIENTNET_B0 = MBNetSpec(
    stages=(
        (Row("ds", 16, se=0.25),),
        (Row("ir", 24, 2, stride=2, expand=6, se=0.25),),
        (Row("ir", 40, 2, stride=2, kernel=5, expand=6, se=0.25),),
        (Row("ir", 80, 3, stride=2, expand=6, se=0.25),),
        (Row("ir", 112, 3, kernel=5, expand=6, se=0.25),),
        (Row("ir", 192, 4, stride=2, kernel=5, expand=6, se=0.25),),
        (Row("ir", 320, 1, expand=6, se=0.25),),
    ),
    act="silu", stem_chs=32, head_chs=1280,
)

# Lite: same body without SE, ReLU6, fixed stem/head, first/last stage depth unscaled.
EFFICIENTNET_LITE0 = replace(
    EFFICIENTNET_B0,
    stages=tuple(tuple(replace(r, se=0.0) for r in st) for st in EFFICIENTNET_B0.stages),
    act="relu6", fix_stem=True, head_scaling="fixed", fix_first_last_depth=True,
    padding="same", bn_eps=1e-3,
)

_TF = dict(padding="same", bn_eps=1e-3)

EFFICIENTNETV2_BASE = MBNetSpec(
    stages=(
        (Row("cn", 16, skip=True),),
        (Row("er", 32, 2, stride=2, expand=4),),
        (Row("er", 48, 2, stride=2, expand=4),),
        (Row("ir", 96, 3, stride=2, expand=4, se=0.25),),
        (Row("ir", 112, 5, expand=6, se=0.25),),
        (Row("ir", 192, 8, stride=2, expand=6, se=0.25),),
    ),
    act="silu", stem_chs=32, head_chs=1280, round_limit=0.0, **_TF,
)

EFFICIENTNETV2_S = MBNetSpec(
    stages=(
        (Row("cn", 24, 2, skip=True),),
        (Row("er", 48, 4, stride=2, expand=4),),
        (Row("er", 64, 4, stride=2, expand=4),),
        (Row("ir", 128, 6, stride=2, expand=4, se=0.25),),
        (Row("ir", 160, 9, expand=6, se=0.25),),
        (Row("ir", 256, 15, stride=2, expand=6, se=0.25),),
    ),
    act="silu", stem_chs=24, head_chs=1280, **_TF,
)

EFFICIENTNETV2_M = replace(EFFICIENTNETV2_S, stem_chs=24, stages=(
    (Row("cn", 24, 3, skip=True),),
    (Row("er", 48, 5, stride=2, expand=4),),
    (Row("er", 80, 5, stride=2, expand=4),),
    (Row("ir", 160, 7, stride=2, expand=4, se=0.25),),
    (Row("ir", 176, 14, expand=6, se=0.25),),
    (Row("ir", 304, 18, stride=2, expand=6, se=0.25),),
    (Row("ir", 512, 5, expand=6, se=0.25),),
))

EFFICIENTNETV2_L = replace(EFFICIENTNETV2_S, stem_chs=32, stages=(
    (Row("cn", 32, 4, skip=True),),
    (Row("er", 64, 7, stride=2, expand=4),),
    (Row("er", 96, 7, stride=2, expand=4),),
    (Row("ir", 192, 10, stride=2, expand=4, se=0.25),),
    (Row("ir", 224, 19, expand=6, se=0.25),),
    (Row("ir", 384, 25, stride=2, expand=6, se=0.25),),
    (Row("ir", 640, 7, expand=6, se=0.25),),
))

# (width, depth, resolution, crop_pct, classifier dropout used by the reference training recipes)
_B_SCALING = {
    "b0": (1.0, 1.0, 224, 0.875, 0.2), "b1": (1.0, 1.1, 240, 0.882, 0.2),
    "b2": (1.1, 1.2, 260, 0.890, 0.3), "b3": (1.2, 1.4, 300, 0.904, 0.3),
    "b4": (1.4, 1.8, 380, 0.922, 0.4), "b5": (1.6, 2.2, 456, 0.934, 0.4),
    "b6": (1.8, 2.6, 528, 0.942, 0.5), "b7": (2.0, 3.1, 600, 0.949, 0.5),
}
VARIANTS: list[Variant] = []
for _v, (_w, _d, _r, _c, _drop) in _B_SCALING.items():
    VARIANTS.append(variant(f"efficientnet_{_v}", "efficientnet", EFFICIENTNET_B0.scaled(_w, _d), MBNet,
             InputConfig(input_size=(3, _r, _r), crop_pct=_c), drop_rate=_drop, channels_last=True))

_LITE_SCALING = {"lite0": (1.0, 1.0, 224, 0.2), "lite1": (1.0, 1.1, 240, 0.2),
                 "lite2": (1.1, 1.2, 260, 0.3), "lite3": (1.2, 1.4, 280, 0.3),
                 "lite4": (1.4, 1.8, 300, 0.3)}
for _v, (_w, _d, _r, _drop) in _LITE_SCALING.items():
    VARIANTS.append(variant(f"tf_efficientnet_{_v}", "efficientnet_lite", EFFICIENTNET_LITE0.scaled(_w, _d), MBNet,
             InputConfig(input_size=(3, _r, _r), crop_pct=0.882, interpolation="bicubic",
                         **IMAGENET_INCEPTION), drop_rate=_drop, channels_last=True))

_V2_B = {"b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3),
         "b3": (1.2, 1.4, 300, 0.3)}
for _v, (_w, _d, _r, _drop) in _V2_B.items():
    VARIANTS.append(variant(f"tf_efficientnetv2_{_v}", "efficientnetv2", EFFICIENTNETV2_BASE.scaled(_w, _d), MBNet,
             InputConfig(input_size=(3, _r, _r), crop_pct=0.875, **IMAGENET_INCEPTION), drop_rate=_drop, channels_last=True))
for _v, _spec, _r, _drop in (("s", EFFICIENTNETV2_S, 384, 0.2), ("m", EFFICIENTNETV2_M, 480, 0.3),
                             ("l", EFFICIENTNETV2_L, 480, 0.4)):
    VARIANTS.append(variant(f"tf_efficientnetv2_{_v}", "efficientnetv2", _spec, MBNet,
             InputConfig(input_size=(3, _r, _r), crop_pct=1.0, **IMAGENET_INCEPTION), drop_rate=_drop, channels_last=True))
