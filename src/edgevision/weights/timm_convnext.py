"""timm ConvNeXt / ConvNeXt V2 -> edgevision. Names are the same; timm's ``conv_mlp`` variants
(atto … nano) store the MLP as 1x1 convs, which become Linear weights here, and the head norm of
the ``head_norm_first`` variants (``norm_pre``, before pooling) is our ``head.norm``."""
from __future__ import annotations

from .keys import Converter


def _convert_convnext(sd: dict, model) -> dict:
    out = {}
    for k, v in sd.items():
        if ".mlp.fc" in k and k.endswith(".weight") and v.ndim == 4:
            v = v.flatten(1)  # (out, in, 1, 1) -> (out, in)
        if k.startswith("norm_pre."):
            k = "head.norm." + k[len("norm_pre."):]
        out[k] = v
    return out


CONVERTERS: dict[str, Converter] = {"convnext": _convert_convnext, "convnextv2": _convert_convnext}
