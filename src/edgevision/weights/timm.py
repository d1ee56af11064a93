"""Converter from timm's state-dict layout to edgevision's.

Each family has a function ``(timm_state_dict, model) -> state_dict`` in the table below. Only key names
change; tensors are passed through untouched (the architectures are identical).
"""
from __future__ import annotations

import re

import torch
from torch import nn

from ..blocks.mbconv import ConvBlock, DepthwiseSeparable, FusedMBConv, InvertedResidual
from ..blocks.uib import MobileAttentionBlock, UniversalInvertedResidual
from ..errors import WeightsError
from . import timm_convnext, timm_efficientvit, timm_mobilevit, timm_repvit
from .keys import Converter, rename

def convert_timm(sd: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    family = getattr(model, "family", None)
    if family not in _CONVERTERS:
        raise WeightsError(f"no timm converter for family {family!r} (model "
                           f"{getattr(model, 'model_name', type(model).__name__)})")
    return _CONVERTERS[family](sd, model)


def looks_like_timm(sd: dict, model: nn.Module) -> bool:
    try:
        out = convert_timm(sd, model)
    except (WeightsError, KeyError):
        return False
    own = set(model.state_dict())
    return len(own & set(out)) >= 0.9 * len(own)


# ---------------------------------------------------------------- MobileNet / EfficientNet
# timm block sub-module name -> ours, per block class
_MB_BLOCK_MAPS = {
    ConvBlock: {"conv": "conv.conv", "bn1": "conv.bn"},
    DepthwiseSeparable: {"conv_dw": "conv_dw.conv", "bn1": "conv_dw.bn", "se": "se",
                         "conv_pw": "conv_pw.conv", "bn2": "conv_pw.bn"},
    InvertedResidual: {"conv_pw": "conv_pw.conv", "bn1": "conv_pw.bn", "conv_dw": "conv_dw.conv",
                       "bn2": "conv_dw.bn", "se": "se", "conv_pwl": "conv_pwl.conv", "bn3": "conv_pwl.bn"},
    FusedMBConv: {"conv_exp": "conv_exp.conv", "bn1": "conv_exp.bn", "se": "se",
                  "conv_pwl": "conv_pwl.conv", "bn2": "conv_pwl.bn"},
    UniversalInvertedResidual: None,  # same names
    MobileAttentionBlock: None,  # same names except inside attn (_MQA_KEYS)
}
# timm's MultiQueryAttention2d sub-modules -> ours
_MQA_KEYS = {"attn.query.proj.": "attn.query_proj.", "attn.key.down_conv.": "attn.key_down.conv.",
             "attn.key.norm.": "attn.key_down.bn.", "attn.key.proj.": "attn.key_proj.",
             "attn.value.down_conv.": "attn.value_down.conv.", "attn.value.norm.": "attn.value_down.bn.",
             "attn.value.proj.": "attn.value_proj.", "attn.output.proj.": "attn.out_proj."}
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(\d+)\.([^.]+)(\..*)$")


def _convert_mbnet(sd: dict, model: nn.Module) -> dict:
    head_is_seq = isinstance(model.head_conv, nn.Sequential)  # pool_conv style: conv with bias + act
    head = {"conv_head": "head_conv.0" if head_is_seq else "head_conv.conv", "bn2": "head_conv.bn",
            "norm_head": "head_conv.bn", "conv_stem": "stem.conv", "bn1": "stem.bn",
            "classifier": "classifier"}

    def fn(k: str) -> str | None:
        m = _BLOCK_KEY.match(k)
        if m:
            s, b, sub, rest = m.groups()
            try:
                block = model.stages[int(s)][int(b)]
            except (IndexError, AttributeError):
                return f"<unmatched>{k}"
            table = _MB_BLOCK_MAPS.get(type(block), {})
            if isinstance(block, MobileAttentionBlock):
                tail = f"{sub}{rest}"
                for a, z in _MQA_KEYS.items():
                    if tail.startswith(a):
                        return f"stages.{s}.{b}.{z}{tail[len(a):]}"
            return f"stages.{s}.{b}.{(table or {}).get(sub, sub)}{rest}"
        top, _, rest = k.partition(".")
        return f"{head[top]}.{rest}" if top in head else f"<unmatched>{k}"

    return rename(sd, fn)


_MBNET_FAMILIES = ("mobilenetv1", "mobilenetv2", "mobilenetv3", "mobilenetv4", "mobilenetv4_hybrid",
                   "efficientnet", "efficientnet_lite", "efficientnetv2", "edgetpu")
# family -> converter
_CONVERTERS: dict[str, Converter] = {
    **{f: _convert_mbnet for f in _MBNET_FAMILIES},
    **timm_convnext.CONVERTERS, **timm_efficientvit.CONVERTERS, **timm_mobilevit.CONVERTERS,
    **timm_repvit.CONVERTERS,
}
