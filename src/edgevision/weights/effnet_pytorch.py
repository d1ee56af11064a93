"""efficientnet_pytorch (lukemelas) -> edgevision, for EfficientNet B0–B7 and Lite0–4 checkpoints
in the same layout (``_conv_stem``, ``_bn0``, ``_blocks.N.{_expand_conv, _bn0, _depthwise_conv,
_bn1, _se_reduce, _se_expand, _project_conv, _bn2}``, ``_conv_head``, ``_bn1``, ``_fc``; Lite
checkpoints have no SE keys). Blocks are numbered globally there and per stage here; both are
in the same order, so they are paired in order (matching.py)."""
from __future__ import annotations

from torch import nn

from ..errors import WeightsError
from .matching import match_blocks, pair_tensors


def looks_like_effnet_pytorch(sd: dict) -> bool:
    return "_conv_stem.weight" in sd and "_fc.weight" in sd


def convert_effnet_pytorch(sd: dict, model: nn.Module) -> dict:
    if getattr(model, "family", None) not in ("efficientnet", "efficientnet_lite"):
        raise WeightsError("efficientnet_pytorch checkpoints hold EfficientNet B0–B7 / Lite0–4 only; "
                           f"got model family {getattr(model, 'family', None)!r}")
    dst = {k: v.shape for k, v in model.state_dict().items()}
    out = pair_tensors([k for k in sd if k.startswith(("_conv_stem.", "_bn0."))],
                       [k for k in dst if k.startswith("stem.")], sd, dst, "stem")
    out.update(match_blocks(sd, r"^(_blocks\.\d+)\.", dst, r"^(stages\.\d+\.\d+)\.", "efficientnet_pytorch"))
    out.update(pair_tensors([k for k in sd if k.startswith(("_conv_head.", "_bn1."))],
                            [k for k in dst if k.startswith("head_conv.")], sd, dst, "head"))
    out.update(pair_tensors(["_fc.weight", "_fc.bias"], ["classifier.weight", "classifier.bias"], sd, dst,
                            "classifier"))
    return out
