"""MobileNetV4 conv small / medium / large and hybrid medium / large over the shared MBNet network.

Block forms (see blocks/uib.py): ``_ib`` inverted bottleneck, ``_xdw`` ExtraDW,
``_cnx`` ConvNext-like, ``_ffn`` FFN; ``_mqa`` the hybrids' mobile multi-query attention. Counts follow timm (9.7 M for conv-medium where the
paper says 9.2 M: the head conv is 1280 wide in the released checkpoints).
``conv_blur_medium`` / ``conv_aa_large``: the same bodies with anti-aliased downsampling (each
strided block conv runs at stride 1, then a 3x3 binomial blur / 2x2 average pool strides).
"""
from __future__ import annotations

from dataclasses import replace

from .mbnet import MBNet, MBNetSpec, Row
from .variant import IMAGENET_INCEPTION, InputConfig, Variant, variant


def _xdw(c, a, k, e, s=1, r=1):  # ExtraDW: dw a x a, expand, dw k x k, project
    return Row("uir", c, r, stride=s, start_kernel=a, kernel=k, expand=e)


def _ib(c, k, e, s=1, r=1):  # inverted bottleneck: expand, dw k x k, project
    return Row("uir", c, r, stride=s, kernel=k, expand=e)


def _cnx(c, a, e, r=1):  # ConvNext-like: dw a x a, expand, project
    return Row("uir", c, r, start_kernel=a, kernel=0, expand=e)


def _ffn(c, e, r=1):  # FFN: expand, project
    return Row("uir", c, r, kernel=0, expand=e)


def _mqa(c, heads, key_dim, kv_stride=1):  # mobile multi-query attention (3x3 dw kv reduction)
    return Row("mqa", c, kernel=3, heads=heads, key_dim=key_dim, kv_stride=kv_stride)


_HEAD = Row("cn", 960, kernel=1)
_COMMON = dict(head_chs=1280, head_style="pool_conv_bn", head_scaling="fixed")

MOBILENETV4_CONV_SMALL = MBNetSpec(
    stages=(
        (Row("cn", 32, stride=2), Row("cn", 32, kernel=1)),
        (Row("cn", 96, stride=2), Row("cn", 64, kernel=1)),
        (_xdw(96, 5, 5, 3, s=2), _ib(96, 3, 2, r=4), _cnx(96, 3, 4)),
        (_xdw(128, 3, 3, 6, s=2), _xdw(128, 5, 5, 4), _ib(128, 5, 4), _ib(128, 5, 3), _ib(128, 3, 4, r=2)),
        (_HEAD,),
    ),
    act="relu", stem_chs=32, **_COMMON,
)

MOBILENETV4_CONV_MEDIUM = MBNetSpec(
    stages=(
        (Row("er", 48, stride=2, expand=4),),
        (_xdw(80, 3, 5, 4, s=2), _xdw(80, 3, 3, 2)),
        (_xdw(160, 3, 5, 6, s=2), _xdw(160, 3, 3, 4, r=2), _xdw(160, 3, 5, 4), _xdw(160, 3, 3, 4),
         _cnx(160, 3, 4), _ffn(160, 2), _cnx(160, 3, 4)),
        (_xdw(256, 5, 5, 6, s=2), _xdw(256, 5, 5, 4), _xdw(256, 3, 5, 4, r=2), _ffn(256, 4),
         _cnx(256, 3, 4), _xdw(256, 3, 5, 2), _xdw(256, 5, 5, 4), _ffn(256, 4, r=2), _cnx(256, 5, 2)),
        (_HEAD,),
    ),
    act="relu", stem_chs=32, **_COMMON,
)

MOBILENETV4_CONV_LARGE = MBNetSpec(
    stages=(
        (Row("er", 48, stride=2, expand=4),),
        (_xdw(96, 3, 5, 4, s=2), _xdw(96, 3, 3, 4)),
        (_xdw(192, 3, 5, 4, s=2), _xdw(192, 3, 3, 4, r=3), _xdw(192, 3, 5, 4), _xdw(192, 5, 3, 4, r=5),
         _cnx(192, 3, 4)),
        (_xdw(512, 5, 5, 4, s=2, r=4), _cnx(512, 5, 4), _xdw(512, 5, 3, 4), _cnx(512, 5, 4, r=2),
         _xdw(512, 5, 3, 4), _xdw(512, 5, 5, 4), _cnx(512, 5, 4, r=3)),
        (_HEAD,),
    ),
    act="relu", stem_chs=24, **_COMMON,
)

# hybrids: the conv trunks with attention interleaved in the last two stages, layer scale on
# every residual block
_HYBRID = dict(_COMMON, layer_scale=1e-5, stem_chs=32)
_M160 = _mqa(160, 4, 64, kv_stride=2)
_M256 = _mqa(256, 4, 64)
MOBILENETV4_HYBRID_MEDIUM = MBNetSpec(
    stages=(
        (Row("er", 48, stride=2, expand=4),),
        (_xdw(80, 3, 5, 4, s=2), _xdw(80, 3, 3, 2)),
        (_xdw(160, 3, 5, 6, s=2), _ffn(160, 2), _xdw(160, 3, 3, 4), _xdw(160, 3, 5, 4), _M160,
         _xdw(160, 3, 3, 4), _M160, _cnx(160, 3, 4), _M160, _xdw(160, 3, 3, 4), _M160, _cnx(160, 3, 4)),
        (_xdw(256, 5, 5, 6, s=2), _xdw(256, 5, 5, 4), _xdw(256, 3, 5, 4, r=2), _ffn(256, 2),
         _xdw(256, 3, 5, 2), _ffn(256, 2), _ffn(256, 4), _M256, _cnx(256, 3, 4), _M256,
         _xdw(256, 5, 5, 4), _M256, _cnx(256, 5, 4), _M256, _cnx(256, 5, 4)),
        (_HEAD,),
    ),
    act="relu", **_HYBRID,
)

_M192 = _mqa(192, 8, 48, kv_stride=2)
_M512 = _mqa(512, 8, 64)
MOBILENETV4_HYBRID_LARGE = MBNetSpec(
    stages=(
        (Row("er", 48, stride=2, expand=4),),
        (_xdw(96, 3, 5, 4, s=2), _xdw(96, 3, 3, 4)),
        (_xdw(192, 3, 5, 4, s=2), _xdw(192, 3, 3, 4, r=3), _xdw(192, 3, 5, 4), _xdw(192, 5, 3, 4, r=2),
         _M192, _xdw(192, 5, 3, 4), _M192, _xdw(192, 5, 3, 4), _M192, _xdw(192, 5, 3, 4), _M192,
         _cnx(192, 3, 4)),
        (_xdw(512, 5, 5, 4, s=2, r=4), _cnx(512, 5, 4), _xdw(512, 5, 3, 4), _cnx(512, 5, 4, r=2),
         _xdw(512, 5, 3, 4), _xdw(512, 5, 5, 4), _M512, _cnx(512, 5, 4), _M512, _cnx(512, 5, 4),
         _M512, _cnx(512, 5, 4), _M512, _cnx(512, 5, 4)),
        (_HEAD,),
    ),
    act="gelu", **dict(_HYBRID, stem_chs=24),
)

VARIANTS: list[Variant] = []
for _name, _spec, _res in (("medium", MOBILENETV4_HYBRID_MEDIUM, 256), ("large", MOBILENETV4_HYBRID_LARGE, 384)):
    VARIANTS.append(variant(f"mobilenetv4_hybrid_{_name}", "mobilenetv4_hybrid", _spec, MBNet,
             InputConfig(input_size=(3, _res, _res), crop_pct=0.95, interpolation="bicubic"),
             channels_last=True))

for _name, _spec, _res, _crop in (("small", MOBILENETV4_CONV_SMALL, 224, 0.875),
                                  ("medium", MOBILENETV4_CONV_MEDIUM, 256, 0.95),
                                  ("large", MOBILENETV4_CONV_LARGE, 384, 0.95)):
    VARIANTS.append(variant(f"mobilenetv4_conv_{_name}", "mobilenetv4", _spec, MBNet,
             InputConfig(input_size=(3, _res, _res), crop_pct=_crop, interpolation="bicubic"),
             channels_last=True))

# width 0.5 with the stem kept at 32 channels (timm fixes the stem below width 1.0)
VARIANTS.append(variant("mobilenetv4_conv_small_050", "mobilenetv4",
                        replace(MOBILENETV4_CONV_SMALL.scaled(width=0.5), fix_stem=True), MBNet,
                        InputConfig(input_size=(3, 224, 224), interpolation="bicubic", **IMAGENET_INCEPTION),
                        channels_last=True))

for _name, _spec, _res in (("blur_medium", replace(MOBILENETV4_CONV_MEDIUM, aa="blur"), 224),
                           ("aa_large", replace(MOBILENETV4_CONV_LARGE, aa="avg"), 448)):
    VARIANTS.append(variant(f"mobilenetv4_conv_{_name}", "mobilenetv4", _spec, MBNet,
                            InputConfig(input_size=(3, _res, _res), crop_pct=0.95, interpolation="bicubic"),
                            channels_last=True))
