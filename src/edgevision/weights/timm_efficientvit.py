"""timm -> edgevision keys for EfficientViT: Microsoft's ``efficientvit_m*`` and MIT's
``efficientvit_b*``.

EfficientViT-M: only the FFN convs (``pw1``/``pw2`` -> ``conv1``/``conv2``), the SE of the patch
merging and the classifier (``linear`` -> ``l``) are renamed; ``attention_bias_idxs`` (derived,
not learnt) is dropped.
"""
from __future__ import annotations

import re

from torch import nn

from .keys import Converter, rename

_MSRA = {".m.pw1.": ".m.conv1.", ".m.pw2.": ".m.conv2.", ".se.fc1.": ".se.conv_reduce.",
         ".se.fc2.": ".se.conv_expand."}


def _convert_msra(sd: dict, model: nn.Module) -> dict:
    def fn(k: str) -> str | None:
        if k.endswith("attention_bias_idxs"):
            return None
        for a, b in _MSRA.items():
            k = k.replace(a, b)
        return "head.l." + k[len("head.linear."):] if k.startswith("head.linear.") else k

    return rename(sd, fn)


# EfficientViT-B: ``norm`` -> ``bn``; residual ``main`` -> ``m`` (the stride-2 first block of a
# stage has no shortcut and no wrapper here); the head is split into head_in / pre_logits /
# classifier.
_MIT_FIRST = re.compile(r"^(stages\.\d+\.blocks\.0)\.main\.")
_MIT_HEAD = {"head.in_conv.": "head_in.", "head.classifier.0.": "pre_logits.fc.",
             "head.classifier.1.": "pre_logits.ln.", "head.classifier.4.": "classifier."}


def _convert_mit(sd: dict, model: nn.Module) -> dict:
    def fn(k: str) -> str | None:
        for a, b in _MIT_HEAD.items():
            if k.startswith(a):
                k = b + k[len(a):]
        k = _MIT_FIRST.sub(r"\1.", k)
        return k.replace(".main.", ".m.").replace(".norm.", ".bn.")

    return rename(sd, fn)


CONVERTERS: dict[str, Converter] = {"efficientvit_msra": _convert_msra, "efficientvit_mit": _convert_mit}
