"""MobileNet V1, V2 and V3 (large/small): specs over the shared MBNet network.

Widths follow timm's variants (``mobilenetv2_140`` = width 1.4); the V3 builds are the common
PyTorch ones (2.5 M params / 56 M MACs for small-1.0, below the paper's 2.9 M / 66 M, because
the paper's SE widths differ; see docs).

Also timm's other pretrained builds of the same bodies: the ``tf_`` ports of the TensorFlow
checkpoints (TF "same" padding, BN eps 1e-3; ``minimal`` = ReLU only, no SE, 3x3 kernels),
``mobilenetv1_100h`` (a 1024-wide head conv), ``mobilenetv2_110d``/``120d`` (width and depth
scaled, stem/head and first/last stage fixed), ``mobilenetv3_large_150d`` (width 1.5, depth 1.2)
and ``mobilenetv3_rw`` (timm's own early V3: no residual in the first block, bias-free head conv,
SE rounded and activated like the block).
"""
from __future__ import annotations

from dataclasses import replace

from .mbnet import MBNet, MBNetSpec, Row
from .variant import IMAGENET_INCEPTION, InputConfig, Variant, variant

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


def _minimal(spec: MBNetSpec) -> MBNetSpec:
    """The V3 "minimal" form: ReLU everywhere, no squeeze-excite, 3x3 depthwise kernels."""
    stages = tuple(tuple(replace(r, kernel=min(r.kernel, 3), se=0.0, act=None) for r in st)
                   for st in spec.stages)
    return replace(spec, stages=stages, act="relu")


_TF_PORT = dict(padding="same", bn_eps=1e-3)
_TF_INPUT = InputConfig(input_size=(3, 224, 224), interpolation="bilinear", **IMAGENET_INCEPTION)
for _name, _spec in (("large_075", MOBILENET_V3_LARGE.scaled(width=0.75)),
                     ("large_100", MOBILENET_V3_LARGE),
                     ("large_minimal_100", _minimal(MOBILENET_V3_LARGE)),
                     ("small_075", MOBILENET_V3_SMALL.scaled(width=0.75)),
                     ("small_100", MOBILENET_V3_SMALL),
                     ("small_minimal_100", _minimal(MOBILENET_V3_SMALL))):
    VARIANTS.append(variant(f"tf_mobilenetv3_{_name}", "mobilenetv3", replace(_spec, **_TF_PORT), MBNet,
                            _TF_INPUT, channels_last=True))

_V3_RW = replace(
    MOBILENET_V3_LARGE,
    stages=((replace(MOBILENET_V3_LARGE.stages[0][0], skip=False),),) + MOBILENET_V3_LARGE.stages[1:],
    head_bias=False, se_act=None, se_divisible=False, bn_eps=1e-3)
_FIX_STEM_HEAD = dict(fix_stem=True, head_scaling="fixed", fix_first_last_depth=True)
_BICUBIC = InputConfig(input_size=(3, 224, 224), interpolation="bicubic")
_BICUBIC_INCEPTION = InputConfig(input_size=(3, 224, 224), interpolation="bicubic", **IMAGENET_INCEPTION)
for _name, _family, _spec, _input in (
        ("mobilenetv1_100h", "mobilenetv1", replace(MOBILENET_V1, head_chs=1024, head_scaling="max"),
         _BICUBIC_INCEPTION),
        ("mobilenetv2_110d", "mobilenetv2", replace(MOBILENET_V2.scaled(1.1, 1.2), **_FIX_STEM_HEAD), _BICUBIC),
        ("mobilenetv2_120d", "mobilenetv2", replace(MOBILENET_V2.scaled(1.2, 1.4), **_FIX_STEM_HEAD), _BICUBIC),
        ("mobilenetv3_small_050", "mobilenetv3", replace(MOBILENET_V3_SMALL.scaled(0.5), fix_stem=True),
         _BICUBIC),
        ("mobilenetv3_large_150d", "mobilenetv3", MOBILENET_V3_LARGE.scaled(1.5, 1.2),
         InputConfig(input_size=(3, 256, 256), interpolation="bilinear", crop_pct=0.95, **IMAGENET_INCEPTION)),
        ("mobilenetv3_rw", "mobilenetv3", _V3_RW, _BICUBIC)):
    VARIANTS.append(variant(_name, _family, _spec, MBNet, _input, channels_last=True))
