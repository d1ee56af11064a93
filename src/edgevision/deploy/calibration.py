"""The images INT8 quantization sees: calibration, validation (accuracy control) and held-out
(agreement) sets, preprocessed the model's way and never sharing an image."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError, EdgeVisionError
from ..images import preprocess


class QuantizeError(EdgeVisionError):
    """Quantization input that cannot be used (missing model, empty image folder, ...)."""


def calibration_images(source: str, cfg, resolution, n: int, split: str = "calib") -> np.ndarray:
    """(n, C, H, W) float32 preprocessed images from the embedded dataset, views of the photos
    installed packages ship ("photos", datasets/photos.py) or a folder.

    The splits never share an image: the embedded dataset and the photo views draw each split
    from its own seeds (the photo views of every split are cut from the same few photos); a
    folder's (sorted) images are dealt out in turn, three of every five to "calib", one to "val"
    and one to "test"."""
    from ..datasets import EmbeddedShapes, PhotoViews, find_images
    if n < 1:
        raise ConfigError("--images must be at least 1")
    if source == "embedded":
        ds = EmbeddedShapes(split, n, resolution=max(resolution) + 32)
        imgs = [preprocess(ds.image(i)[0], cfg, resolution) for i in range(n)]
    elif source == "photos":
        views = PhotoViews(split, n)
        imgs = [preprocess(views.view(i), cfg, resolution) for i in range(n)]
    else:
        from PIL import Image
        paths = find_images(source)
        if not paths:
            raise QuantizeError(f"calibration folder {source!r} contains no images; point --calib at a "
                                f"folder of .jpg/.png images or use --calib embedded or photos")
        part = {"calib": (0, 1, 2), "val": (3,), "test": (4,)}.get(split, (0, 1, 2, 3, 4))
        paths = [p for i, p in enumerate(paths) if i % 5 in part]
        if not paths:
            raise QuantizeError(f"folder {source!r} has too few images for a separate {split!r} set "
                                f"(calibration, validation and held-out images are disjoint: "
                                f"use at least 5 images)")
        imgs = []
        for p in paths:
            try:
                with Image.open(p) as im:
                    imgs.append(preprocess(im, cfg, resolution))
            except OSError:
                continue
            if len(imgs) >= n:
                break
        if not imgs:
            raise QuantizeError(f"no readable image in calibration folder {source!r}")
    return torch.stack(imgs).numpy().astype(np.float32)
