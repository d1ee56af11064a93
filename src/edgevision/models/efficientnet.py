"""EfficientNet B0–B8, EfficientNet-Lite0–4, EfficientNetV2 (B0–B3, S, M, L, XL, timm's "rw"
T/S/M) and the EdgeTPU networks (EfficientNet-EdgeTPU S/M/L, MobileNet-EdgeTPU-V2 M).

B1–B8 and Lite1–4 are the base spec compound-scaled with ``spec.scaled(width, depth)``; no
per-variant tables. ``tf_`` names are the TensorFlow-trained weights: TF "same" padding and BN
eps 1e-3 (the weights need them). Lite: ReLU6, no SE, stem/head and first/last stage depth
fixed. V2 S/M/L/XL have their own bodies (different per-stage depths and widths in the paper),
B0–B3 are the V2 base compound-scaled.
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

_TF = dict(padding="same", bn_eps=1e-3)  # TensorFlow-trained weights need these
_TORCH = dict(padding="", bn_eps=1e-5)  # the spec defaults, for bodies first written with _TF

# Lite: same body without SE, ReLU6, fixed stem/head, first/last stage depth unscaled.
EFFICIENTNET_LITE0 = replace(
    EFFICIENTNET_B0,
    stages=tuple(tuple(replace(r, se=0.0) for r in st) for st in EFFICIENTNET_B0.stages),
    act="relu6", fix_stem=True, head_scaling="fixed", fix_first_last_depth=True, **_TF,
)

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

EFFICIENTNETV2_XL = replace(EFFICIENTNETV2_S, stem_chs=32, stages=(
    (Row("cn", 32, 4, skip=True),),
    (Row("er", 64, 8, stride=2, expand=4),),
    (Row("er", 96, 8, stride=2, expand=4),),
    (Row("ir", 192, 16, stride=2, expand=4, se=0.25),),
    (Row("ir", 256, 24, expand=6, se=0.25),),
    (Row("ir", 512, 32, stride=2, expand=6, se=0.25),),
    (Row("ir", 640, 8, expand=6, se=0.25),),
))

# timm's own V2 trainings. "rw" S/M: the paper-figure body released
# before the official code (Fused-MBConv first stage, 272-channel last stage, 1792 head).
EFFICIENTNETV2_RW_S = replace(EFFICIENTNETV2_S, head_chs=1792, **_TORCH, stages=(
    (Row("er", 24, 2, expand=1),),
    *EFFICIENTNETV2_S.stages[1:-1],
    (Row("ir", 272, 15, stride=2, expand=6, se=0.25),),
))
# M: S x1.2 wide with per-stage depth x1.2 (stages 0-3) and x1.6 (4-5), repeats rounded up
EFFICIENTNETV2_RW_M = replace(EFFICIENTNETV2_RW_S, stages=tuple(
    (replace(st[0], repeats=n),) for st, n in zip(EFFICIENTNETV2_RW_S.stages, (3, 5, 5, 8, 15, 24)))).scaled(1.2)

# EfficientNet-EdgeTPU: ReLU, no SE, Fused-MBConv early stages; the first block's expansion is
# counted from 24 channels, not from the 32-channel stem (the TF definition)
EFFICIENTNET_EDGETPU_S = MBNetSpec(
    stages=(
        (Row("er", 24, expand=4, expand_from=24, skip=False),),
        (Row("er", 32, 2, stride=2, expand=8),),
        (Row("er", 48, 4, stride=2, expand=8),),
        (Row("ir", 96, 5, stride=2, kernel=5, expand=8),),
        (Row("ir", 144, 4, kernel=5, expand=8),),
        (Row("ir", 192, 2, stride=2, kernel=5, expand=8),),
    ),
    act="relu", stem_chs=32, head_chs=1280, **_TORCH,
)


def _mobilenet_edgetpu_v2(chs: tuple[int, ...], head: int, group: int = 64) -> MBNetSpec:
    """MobileNet-EdgeTPU-V2: EdgeTPU-searched mix of dense and grouped Fused-MBConv, then MBConv."""
    def tail(kind, c, stride=1):  # an expand-8 block, then three expand-4 blocks
        return (Row(kind, c, stride=stride, expand=8), Row(kind, c, 3, expand=4))
    return MBNetSpec(stages=(
        (Row("cn", chs[0], kernel=1),),
        (Row("er", chs[1], stride=2, expand=8), Row("er", chs[1], expand=4, group_size=group)),
        (Row("er", chs[2], stride=2, expand=8), Row("er", chs[2], expand=4, group_size=group),
         Row("er", chs[2], expand=4), Row("er", chs[2], expand=4, group_size=group)),
        (Row("er", chs[3], stride=2, expand=8), Row("ir", chs[3], 3, expand=4)),
        tail("ir", chs[4]),
        tail("ir", chs[5], stride=2),
        (Row("ir", chs[6], expand=8),),
    ), act="relu", stem_chs=64, stem_kernel=5, head_chs=head, **_TORCH)


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
# the TensorFlow-trained weights of the same networks (B8: AdvProp weights, Inception mean/std)
for _v, (_w, _d, _r, _c, _drop) in {**_B_SCALING, "b8": (2.2, 3.6, 672, 0.954, 0.5)}.items():
    _norm = IMAGENET_INCEPTION if _v == "b8" else {}
    VARIANTS.append(variant(f"tf_efficientnet_{_v}", "efficientnet", replace(EFFICIENTNET_B0, **_TF).scaled(_w, _d),
             MBNet, InputConfig(input_size=(3, _r, _r), crop_pct=_c, **_norm), drop_rate=_drop,
             channels_last=True))

_LITE_SCALING = {"lite0": (1.0, 1.0, 224, 0.2), "lite1": (1.0, 1.1, 240, 0.2),
                 "lite2": (1.1, 1.2, 260, 0.3), "lite3": (1.2, 1.4, 280, 0.3),
                 "lite4": (1.4, 1.8, 300, 0.3)}
for _v, (_w, _d, _r, _drop) in _LITE_SCALING.items():
    VARIANTS.append(variant(f"tf_efficientnet_{_v}", "efficientnet_lite", EFFICIENTNET_LITE0.scaled(_w, _d), MBNet,
             InputConfig(input_size=(3, _r, _r), crop_pct=0.882, interpolation="bicubic",
                         **IMAGENET_INCEPTION), drop_rate=_drop, channels_last=True))
# timm's own training of Lite0 (PyTorch padding and BN eps)
VARIANTS.append(variant("efficientnet_lite0", "efficientnet_lite", replace(EFFICIENTNET_LITE0, **_TORCH), MBNet,
                        InputConfig(), drop_rate=0.2, channels_last=True))

_V2_B = {"b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3),
         "b3": (1.2, 1.4, 300, 0.3)}
for _v, (_w, _d, _r, _drop) in _V2_B.items():
    VARIANTS.append(variant(f"tf_efficientnetv2_{_v}", "efficientnetv2", EFFICIENTNETV2_BASE.scaled(_w, _d), MBNet,
             InputConfig(input_size=(3, _r, _r), crop_pct=0.875, **IMAGENET_INCEPTION), drop_rate=_drop, channels_last=True))
for _v, _spec, _r, _drop in (("s", EFFICIENTNETV2_S, 384, 0.2), ("m", EFFICIENTNETV2_M, 480, 0.3),
                             ("l", EFFICIENTNETV2_L, 480, 0.4), ("xl", EFFICIENTNETV2_XL, 384, 0.4)):
    VARIANTS.append(variant(f"tf_efficientnetv2_{_v}", "efficientnetv2", _spec, MBNet,
             InputConfig(input_size=(3, _r, _r), crop_pct=1.0, **IMAGENET_INCEPTION), drop_rate=_drop, channels_last=True))
for _name, _spec, _r, _drop in (("efficientnetv2_rw_t", replace(EFFICIENTNETV2_S, **_TORCH).scaled(0.8, 0.9), 224, 0.2),
                                ("efficientnetv2_rw_s", EFFICIENTNETV2_RW_S, 288, 0.2),
                                ("efficientnetv2_rw_m", EFFICIENTNETV2_RW_M, 320, 0.3)):
    VARIANTS.append(variant(_name, "efficientnetv2", _spec, MBNet,
             InputConfig(input_size=(3, _r, _r), crop_pct=1.0), drop_rate=_drop, channels_last=True))

# EdgeTPU S/M/L (size, width, depth, resolution, crop_pct): timm's trainings, and the TF-trained
# weights ("same" padding, BN eps 1e-3, Inception mean/std)
for _v, _w, _d, _r, _c in (("s", 1.0, 1.0, 224, 0.875), ("m", 1.0, 1.1, 240, 0.882), ("l", 1.2, 1.4, 300, 0.904)):
    _spec = EFFICIENTNET_EDGETPU_S.scaled(_w, _d)
    # "_pruned": timm's weight-pruned S and L weights, in the unchanged network
    for _name in [f"efficientnet_e{_v}"] + ([f"efficientnet_e{_v}_pruned"] if _v != "m" else []):
        VARIANTS.append(variant(_name, "edgetpu", _spec, MBNet,
                 InputConfig(input_size=(3, _r, _r), crop_pct=_c), drop_rate=0.2, channels_last=True))
    VARIANTS.append(variant(f"tf_efficientnet_e{_v}", "edgetpu", replace(_spec, **_TF), MBNet,
             InputConfig(input_size=(3, _r, _r), crop_pct=_c, **IMAGENET_INCEPTION), drop_rate=0.2,
             channels_last=True))
VARIANTS.append(variant("mobilenet_edgetpu_v2_m", "edgetpu", _mobilenet_edgetpu_v2((32, 64, 80, 160, 192, 240, 320), 1344),
                        MBNet, InputConfig(crop_pct=0.9, **IMAGENET_INCEPTION), drop_rate=0.2, channels_last=True))
