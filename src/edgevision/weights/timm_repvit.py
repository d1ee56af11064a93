"""timm -> edgevision keys for RepViT (timm's ``repvit_*``, same names as the official repo).

Only the conv-BN pieces (``.c.`` -> ``.conv.``), the SE layers and, for single-head models, the
classifier wrapper are renamed.
"""
from __future__ import annotations

import re

from torch import nn

from .keys import Converter, rename

_CONV = re.compile(r"\.c\.(weight|bias)$")
_SE = {".se.fc1.": ".se.conv_reduce.", ".se.fc2.": ".se.conv_expand."}


def _convert_repvit(sd: dict, model: nn.Module) -> dict:
    distilled = getattr(model.spec, "distilled", True)

    def fn(k: str) -> str | None:
        k = _CONV.sub(r".conv.\1", k)
        for a, b in _SE.items():
            k = k.replace(a, b)
        if not distilled and k.startswith("head.head."):
            k = "head." + k[len("head.head."):]
        return k

    return rename(sd, fn)


CONVERTERS: dict[str, Converter] = {"repvit": _convert_repvit}
