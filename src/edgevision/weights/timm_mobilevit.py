"""timm -> edgevision keys for MobileViT v1 and v2 (timm's ByobNet ``mobilevit*`` models).

The MobileViT blocks, stem and final conv use timm's sub-module names already; only the
inverted residuals (timm's bottleneck blocks) and the classifier are renamed.
"""
from __future__ import annotations

import re

from torch import nn

from .keys import Converter, rename

_BOTTLENECK = {"conv1_1x1": "conv_pw", "conv2_kxk": "conv_dw", "conv3_1x1": "conv_pwl"}
_BLOCK_PART = re.compile(r"^(stages\.\d+\.\d+\.)([^.]+)(\..*)$")


def _convert_mobilevit(sd: dict, model: nn.Module) -> dict:
    def fn(k: str) -> str | None:
        if k.startswith("head.fc."):
            return "classifier." + k[len("head.fc."):]
        m = _BLOCK_PART.match(k)
        if m and m.group(2) in _BOTTLENECK:
            return m.group(1) + _BOTTLENECK[m.group(2)] + m.group(3)
        return k

    return rename(sd, fn)


CONVERTERS: dict[str, Converter] = {"mobilevit": _convert_mobilevit, "mobilevitv2": _convert_mobilevit}
