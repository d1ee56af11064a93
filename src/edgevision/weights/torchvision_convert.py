"""torchvision -> edgevision: mobilenet_v2, mobilenet_v3_large/small, efficientnet_b0–b7,
efficientnet_v2_s/m/l (convnext_* in weights/torchvision_convnext.py).

torchvision numbers its blocks ``features.K`` (MobileNet) or ``features.S.B`` (EfficientNet);
they are the same blocks, in the same order, as edgevision's ``stages.S.B``, so blocks are paired
in order and tensors inside a block in order (see matching.py). The stem, head and classifier are
mapped by name.
"""
from __future__ import annotations

from torch import nn

from ..errors import WeightsError
from .matching import match_blocks, pair_tensors

FAMILIES = {"mobilenetv2", "mobilenetv3", "efficientnet", "efficientnetv2"}


def looks_like_torchvision(sd: dict) -> bool:
    return "features.0.0.weight" in sd and any(k.startswith("classifier.") for k in sd)


def _convnext(sd, model):
    from .convnext_layouts import convert_torchvision_convnext
    return convert_torchvision_convnext(sd, model)


def convert_torchvision_mbnet(sd: dict, model: nn.Module) -> dict:
    fam = getattr(model, "family", None)
    if fam not in FAMILIES:
        raise WeightsError(f"no torchvision converter for family {fam!r}")
    dst = {k: v.shape for k, v in model.state_dict().items()}
    feats = sorted({int(k.split(".")[1]) for k in sd if k.startswith("features.")})
    last = feats[-1]
    out = pair_tensors([k for k in sd if k.startswith("features.0.")],
                       [k for k in dst if k.startswith("stem.")], sd, dst, "stem")
    body = {k: v for k, v in sd.items() if k.startswith("features.") and 0 < int(k.split(".")[1]) < last}
    if fam in ("efficientnet", "efficientnetv2"):
        pattern = r"^(features\.\d+\.\d+)\."
    else:
        pattern = r"^(features\.\d+)\."
    # MobileNetV3's last conv (960) is features.<last> in torchvision and a block of ours
    head_src = [k for k in sd if k.startswith(f"features.{last}.")]
    our_blocks = r"^(stages\.\d+\.\d+)\."
    if fam == "mobilenetv3":
        body.update({k: sd[k] for k in head_src})
        head_src = []
    out.update(match_blocks(body, pattern, dst, our_blocks, "torchvision body"))
    cls = [k for k in sd if k.startswith("classifier.")]
    if fam == "mobilenetv3":  # Linear(960->1280) + Hardswish + Dropout + Linear
        out.update(pair_tensors(cls[:2], ["head_conv.0.weight", "head_conv.0.bias"], sd, dst, "head"))
        out.update(pair_tensors(cls[2:], ["classifier.weight", "classifier.bias"], sd, dst, "classifier"))
    else:
        out.update(pair_tensors(head_src, [k for k in dst if k.startswith("head_conv.")], sd, dst, "head"))
        out.update(pair_tensors(cls, ["classifier.weight", "classifier.bias"], sd, dst, "classifier"))
    return out


_CONVERTERS = {f: convert_torchvision_mbnet for f in FAMILIES}
_CONVERTERS["convnext"] = _convnext


def convert_torchvision(sd: dict, model: nn.Module) -> dict:
    fam = getattr(model, "family", None)
    if fam not in _CONVERTERS:
        raise WeightsError(f"no torchvision converter for family {fam!r}; torchvision weights exist for "
                           f"{', '.join(sorted(_CONVERTERS))}")
    return _CONVERTERS[fam](sd, model)
