"""ConvNeXt / ConvNeXt V2 checkpoints in torchvision's layout and in the official repositories'
layout (facebookresearch/ConvNeXt and ConvNeXt-V2), renamed to edgevision's (= timm's) names.

torchvision: ``features.0`` stem, ``features.2k+1.j.block.{0,2,3,5}`` (dwconv, norm, fc1, fc2) and
``layer_scale`` (C, 1, 1), ``features.2k.{0,1}`` downsampling, ``classifier.{0,2}`` norm + fc.
official: ``downsample_layers.i``, ``stages.i.j.{dwconv, norm, pwconv1, pwconv2, gamma}``,
V2 ``grn.{gamma, beta}`` of shape (1, 1, 1, C), final ``norm`` and ``head``.
"""
from __future__ import annotations

import re

from ..errors import WeightsError

_TV_BLOCK = {"block.0": "conv_dw", "block.2": "norm", "block.3": "mlp.fc1", "block.5": "mlp.fc2"}
_OFF_BLOCK = {"dwconv": "conv_dw", "norm": "norm", "pwconv1": "mlp.fc1", "pwconv2": "mlp.fc2",
              "grn.gamma": "mlp.grn.weight", "grn.beta": "mlp.grn.bias"}


def looks_like_torchvision_convnext(sd: dict) -> bool:
    return any(k.endswith(".layer_scale") and k.startswith("features.") for k in sd)


def looks_like_official_convnext(sd: dict) -> bool:
    return "downsample_layers.0.0.weight" in sd


def convert_torchvision_convnext(sd: dict, model) -> dict:
    out = {}
    for k, v in sd.items():
        m = re.match(r"^features\.(\d+)\.(.+)$", k)
        if k.startswith("classifier."):
            idx, rest = k.split(".", 2)[1:]
            out[{"0": "head.norm", "2": "head.fc"}[idx] + "." + rest] = v
        elif m and m.group(1) == "0":
            out["stem." + m.group(2)] = v
        elif m and int(m.group(1)) % 2 == 0:
            out[f"stages.{int(m.group(1)) // 2}.downsample.{m.group(2)}"] = v
        elif m:
            stage = (int(m.group(1)) - 1) // 2
            j, rest = m.group(2).split(".", 1)
            if rest == "layer_scale":
                out[f"stages.{stage}.blocks.{j}.gamma"] = v.flatten()
                continue
            sub, _, leaf = rest.rpartition(".")
            if sub not in _TV_BLOCK:
                raise WeightsError(f"unexpected torchvision ConvNeXt key {k}")
            out[f"stages.{stage}.blocks.{j}.{_TV_BLOCK[sub]}.{leaf}"] = v
        else:
            raise WeightsError(f"unexpected torchvision ConvNeXt key {k}")
    return out


def convert_official_convnext(sd: dict, model) -> dict:
    out = {}
    for k, v in sd.items():
        if k.startswith("downsample_layers.0."):
            out["stem." + k[len("downsample_layers.0."):]] = v
        elif k.startswith("downsample_layers."):
            _, i, rest = k.split(".", 2)
            out[f"stages.{i}.downsample.{rest}"] = v
        elif k.startswith("stages."):
            _, i, j, rest = k.split(".", 3)
            if rest == "gamma":
                out[f"stages.{i}.blocks.{j}.gamma"] = v
                continue
            sub, _, leaf = rest.rpartition(".")
            key = _OFF_BLOCK.get(rest) or (f"{_OFF_BLOCK[sub]}.{leaf}" if sub in _OFF_BLOCK else None)
            if key is None:
                raise WeightsError(f"unexpected ConvNeXt key {k}")
            out[f"stages.{i}.blocks.{j}.{key}"] = v.flatten() if "grn" in rest else v
        elif k.startswith("norm."):
            out["head.norm." + k[5:]] = v
        elif k.startswith("head."):
            out["head.fc." + k[5:]] = v
        else:
            raise WeightsError(f"unexpected ConvNeXt key {k}")
    return out


def to_official(sd: dict) -> dict:
    """edgevision -> official layout (the inverse mapping; used to test the round trip)."""
    inv = {v: k for k, v in _OFF_BLOCK.items()}
    out = {}
    for k, v in sd.items():
        if k.startswith("stem."):
            out["downsample_layers.0." + k[5:]] = v
        elif ".downsample." in k:
            i, rest = k.split(".")[1], k.split(".downsample.", 1)[1]
            out[f"downsample_layers.{i}.{rest}"] = v
        elif k.startswith("stages."):
            _, i, _, j, rest = k.split(".", 4)
            if rest == "gamma":
                out[f"stages.{i}.{j}.gamma"] = v
                continue
            if rest in inv:  # grn weight/bias
                out[f"stages.{i}.{j}.{inv[rest]}"] = v.view(1, 1, 1, -1)
                continue
            sub, _, leaf = rest.rpartition(".")
            out[f"stages.{i}.{j}.{inv[sub]}.{leaf}"] = v
        elif k.startswith("head.norm."):
            out["norm." + k[len("head.norm."):]] = v
        elif k.startswith("head.fc."):
            out["head." + k[len("head.fc."):]] = v
    return out
