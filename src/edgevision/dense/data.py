"""Embedded detection / segmentation data: several shapes per image with boxes and masks, drawn
from (seed, split, index) only — offline and deterministic, any resolution.

Targets follow torchvision's detection convention: ``boxes`` (N, 4) float xyxy in pixels,
``labels`` (N,) int64 in 1..K (0 is background), ``masks`` (N, H, W) uint8; segmentation uses a
(H, W) int64 class map (0 = background). Objects may overlap: later ones occlude earlier ones,
masks and semantic maps show what is visible, boxes the visible extent.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..datasets.embedded import _SPLIT_OFFSET, background, draw_shape, finish, foreground_color
from ..errors import EdgeVisionError

DENSE_CLASSES = ("circle", "square", "triangle", "star", "hexagon", "cross")


class DenseDataError(EdgeVisionError):
    pass


def check_target(target: dict, height: int, width: int) -> dict:
    """Validate one detection target; clip boxes to the image and drop degenerate ones.

    Documented handling: an image without boxes is a valid negative; boxes partly outside the
    image are clipped; boxes with no area after clipping are dropped (with their labels/masks);
    masks must match the image size exactly, else DenseDataError.
    """
    boxes = torch.as_tensor(target.get("boxes", torch.zeros(0, 4)), dtype=torch.float32).reshape(-1, 4)
    labels = torch.as_tensor(target.get("labels", torch.zeros(0)), dtype=torch.int64).reshape(-1)
    if len(boxes) != len(labels):
        raise DenseDataError(f"target has {len(boxes)} boxes but {len(labels)} labels")
    if (labels < 1).any():
        raise DenseDataError("labels must be >= 1 (0 is the background class)")
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    keep = (boxes[:, 2] > boxes[:, 0] + 0.5) & (boxes[:, 3] > boxes[:, 1] + 0.5)
    out = {"boxes": boxes[keep], "labels": labels[keep]}
    if "masks" in target:
        masks = torch.as_tensor(target["masks"])
        if masks.ndim != 3 or tuple(masks.shape[1:]) != (height, width) or len(masks) != len(labels):
            raise DenseDataError(f"masks must be (N, {height}, {width}) for N={len(labels)} objects; "
                                 f"got {tuple(masks.shape)}")
        out["masks"] = masks[keep]
    return out


class EmbeddedDense(Dataset):
    """Returns ``(image tensor in [0, 1], target dict)``; target has boxes, labels, masks and
    ``semantic`` (the class map)."""

    classes = DENSE_CLASSES

    def __init__(self, split: str = "train", length: int = 1000, resolution: int = 128, seed: int = 0,
                 max_objects: int = 3, hflip: bool = False):
        self.split, self.length, self.resolution, self.seed = split, length, resolution, seed
        self.max_objects, self.hflip = max_objects, hflip

    def __len__(self):
        return self.length

    def sample(self, index: int):
        s = self.resolution
        rng = np.random.default_rng([self.seed, _SPLIT_OFFSET[self.split], 7, index])
        img = background(s, rng)
        n = int(rng.integers(1, self.max_objects + 1)) if index % 10 else 0  # every 10th: no objects
        inst = []
        for _ in range(n):
            label = int(rng.integers(0, len(DENSE_CLASSES)))
            r = s * rng.uniform(0.08, 0.2)
            cx, cy = rng.uniform(r * 0.6, s - r * 0.6), rng.uniform(r * 0.6, s - r * 0.6)  # may be cut
            rot = rng.uniform(0, 2 * math.pi)
            draw_shape(img, DENSE_CLASSES[label], cx, cy, r, rot, foreground_color(img, rng), rng)
            m = Image.new("L", (s, s), 0)
            draw_shape(m, DENSE_CLASSES[label], cx, cy, r, rot, 255, rng)
            inst.append((label + 1, np.asarray(m) > 127))
        img = finish(img, rng)
        visible = np.zeros((s, s), dtype=np.int64)
        owner = np.full((s, s), -1, dtype=np.int64)
        for i, (label, m) in enumerate(inst):
            visible[m] = label
            owner[m] = i
        boxes, labels, masks = [], [], []
        for i, (label, _) in enumerate(inst):
            m = owner == i
            if m.sum() < 4:
                continue  # fully hidden
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            labels.append(label)
            masks.append(m)
        target = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                  "labels": torch.tensor(labels, dtype=torch.int64),
                  "masks": torch.from_numpy(np.stack(masks) if masks else np.zeros((0, s, s), bool)).to(torch.uint8),
                  "semantic": torch.from_numpy(visible)}
        return img, target

    def __getitem__(self, index: int):
        img, t = self.sample(index)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0)
        if self.hflip and torch.rand(()) < 0.5:
            x = x.flip(-1)
            w = x.shape[-1]
            b = t["boxes"].clone()
            t["boxes"] = torch.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], 1) if len(b) else b
            t["masks"], t["semantic"] = t["masks"].flip(-1), t["semantic"].flip(-1)
        return x, t


def collate(batch):
    return tuple(zip(*batch))
