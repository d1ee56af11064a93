"""Classify images with trained or imported weights, using the weights' own preprocessing."""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from .errors import EdgeVisionError
from .images import preprocess
from .weights import create_with_weights
from .weights.io import read_state_dict


def imagenet_classes() -> list[str]:
    return resources.files("edgevision").joinpath("data/imagenet_classes.txt").read_text().splitlines()


def class_names(weights: str, num_classes: int) -> list[str]:
    _, meta = read_state_dict(weights)
    if meta.get("classes"):
        names = json.loads(meta["classes"])
        if len(names) == num_classes:
            return names
    if num_classes == 1000:
        return imagenet_classes()
    return [f"class {i}" for i in range(num_classes)]


def load_image(path: str | Path) -> Image.Image:
    p = Path(path)
    if not p.is_file():
        raise EdgeVisionError(f"image {str(p)!r} does not exist")
    try:
        with Image.open(p) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise EdgeVisionError(f"cannot read image {str(p)!r}: {e}") from None


@torch.no_grad()
def predict(images: list[str], model_name: str, weights: str, topk: int = 5) -> list[dict]:
    model = create_with_weights(model_name, weights)
    names = class_names(weights, model.num_classes)
    cfg = model.input_config
    out = []
    for path in images:
        x = preprocess(load_image(path), cfg).unsqueeze(0)
        probs = model(x).softmax(-1)[0]
        k = min(topk, probs.numel())
        p, idx = probs.topk(k)
        out.append({"image": str(path), "top": [{"class": names[i], "index": int(i), "prob": float(v)}
                                                 for v, i in zip(p.tolist(), idx.tolist())]})
    return out
