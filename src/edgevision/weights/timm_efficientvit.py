"""timm -> edgevision keys for EfficientViT: Microsoft's ``efficientvit_m*`` and MIT's
``efficientvit_b*``.

EfficientViT-M: only the FFN convs (``pw1``/``pw2`` -> ``conv1``/``conv2``), the SE of the patch
merging and the classifier (``linear`` -> ``l``) are renamed; ``attention_bias_idxs`` (derived,
not learnt) is dropped.
"""
from __future__ import annotations

from torch import nn

from .timm import register_converter, rename

_MSRA = {".m.pw1.": ".m.conv1.", ".m.pw2.": ".m.conv2.", ".se.fc1.": ".se.conv_reduce.",
         ".se.fc2.": ".se.conv_expand."}


@register_converter("efficientvit_msra")
def _convert_msra(sd: dict, model: nn.Module) -> dict:
    def fn(k: str) -> str | None:
        if k.endswith("attention_bias_idxs"):
            return None
        for a, b in _MSRA.items():
            k = k.replace(a, b)
        return "head.l." + k[len("head.linear."):] if k.startswith("head.linear.") else k

    return rename(sd, fn)
