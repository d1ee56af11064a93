"""Image helpers: the model's preprocessing, and procedurally drawn "real-looking" images.

Nothing is downloaded: when a check needs a natural-ish image (export parity, calibration smoke
tests) it is drawn here from a seed — smooth background gradients, overlapping filled shapes,
texture and sensor-like noise — so activations have realistic statistics, unlike white noise.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from .registry import InputConfig

_RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def to_rgb(img: Image.Image) -> Image.Image:
    """Greyscale, palette, RGBA (composited on white) and CMYK images -> RGB."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, img).convert("RGB")
    return img.convert("RGB")


def preprocess(img: Image.Image, cfg: InputConfig, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """Eval preprocessing of one image: resize the short side to size / crop_pct, centre crop,
    scale to [0, 1], normalise with the config's mean/std. Returns (C, H, W) float32."""
    h, w = (size, size) if isinstance(size, int) else (size or tuple(cfg.input_size[1:]))
    img = to_rgb(img) if cfg.input_size[0] == 3 else img.convert("L")
    scale_to = math.floor(max(h, w) / cfg.crop_pct)
    iw, ih = img.size  # as torchvision's Resize(short side) + CenterCrop, to the pixel
    short, long = sorted((iw, ih))
    new_long = int(scale_to * long / short)
    size_wh = (scale_to, new_long) if iw <= ih else (new_long, scale_to)
    img = img.resize((max(w, size_wh[0]), max(h, size_wh[1])), _RESAMPLE.get(cfg.interpolation, Image.BICUBIC))
    iw, ih = img.size
    left, top = int(round((iw - w) / 2.0)), int(round((ih - h) / 2.0))
    img = img.crop((left, top, left + w, top + h))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[:, :, None]
    t = torch.from_numpy(arr.transpose(2, 0, 1).copy())
    mean = torch.tensor(cfg.mean).view(-1, 1, 1)
    std = torch.tensor(cfg.std).view(-1, 1, 1)
    return (t - mean) / std


def synthetic_image(seed: int, size: int | tuple[int, int] = 256) -> Image.Image:
    """A deterministic natural-looking RGB image (PIL) drawn from ``seed``."""
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    t = ((xx * np.cos(angle) + yy * np.sin(angle)) / max(h, w) + 1) / 2
    bg = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    img = Image.fromarray(bg.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 8))):
        x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.2, 1.0) * h
        x1, y1 = x0 + rng.uniform(0.1, 0.6) * w, y0 + rng.uniform(0.1, 0.6) * h
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.ellipse([x0, y0, x1, y1], fill=color)
        elif kind == 1:
            draw.rectangle([x0, y0, x1, y1], fill=color)
        else:
            pts = [(float(rng.uniform(0, w)), float(rng.uniform(0, h))) for _ in range(3)]
            draw.polygon(pts, fill=color)
    img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.5, 2.0))))
    arr = np.asarray(img, dtype=np.float32)
    arr += rng.normal(0, rng.uniform(2, 10), arr.shape)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))
