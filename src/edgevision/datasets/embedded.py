"""The embedded dataset: procedurally drawn shapes, patterns and textures (nothing downloaded).

Each sample is drawn from ``(seed, split, index)`` alone, so the dataset is deterministic, has
no files, and renders at any resolution. Every image has one foreground object of its class
with a random colour, position, scale and rotation, over a random background (gradient, noise
texture or faint clutter of other shapes), with blur and sensor noise. The classes differ in
shape *and* texture, so the task needs both local and global features: small models learn it
quickly, but not perfectly within one epoch.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from torch.utils.data import Dataset

CLASSES = ("circle", "square", "triangle", "star", "ring", "cross", "hexagon", "stripes",
           "checker", "dots", "crescent", "arrow")

_SPLIT_OFFSET = {"train": 0, "val": 1_000_003, "test": 2_000_029, "calib": 3_000_017}


def _polygon(cx, cy, r, n, rot, inner=None):
    pts = []
    steps = n * (2 if inner else 1)
    for i in range(steps):
        rr = r if (inner is None or i % 2 == 0) else r * inner
        a = rot + 2 * math.pi * i / steps
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return pts


def _rotated(points, cx, cy, rot):
    c, s = math.cos(rot), math.sin(rot)
    return [(cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c) for x, y in points]


def _pattern(kind: str, size: int, color, bg, rng) -> Image.Image:
    """A square texture tile of the given pattern class (later masked by a blob)."""
    tile = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(tile)
    period = max(4, int(size * rng.uniform(0.2, 0.3)))
    if kind == "stripes":
        for x in range(-size, 2 * size, period):
            d.rectangle([x, -size, x + period // 2, 2 * size], fill=color)
    elif kind == "checker":
        for y in range(0, size, period):
            for x in range(0, size, period):
                if ((x // period) + (y // period)) % 2 == 0:
                    d.rectangle([x, y, x + period - 1, y + period - 1], fill=color)
    elif kind == "dots":
        rad = period * 0.3
        for y in range(period // 2, size, period):
            for x in range(period // 2, size, period):
                d.ellipse([x - rad, y - rad, x + rad, y + rad], fill=color)
    return tile


def background(s: int, rng: np.random.Generator) -> Image.Image:
    """A random background: a colour gradient, optionally with low-contrast smooth noise and a
    few small, faint specks (distractors that are much smaller than any object)."""
    c0 = rng.integers(0, 256, 3).astype(np.float32)
    c1 = np.clip(c0 + rng.integers(-90, 91, 3), 0, 255)
    t = np.linspace(0, 1, s, dtype=np.float32)
    grad = t[None, :, None] if rng.random() < 0.5 else t[:, None, None]
    arr = np.broadcast_to(c0 * (1 - grad) + c1 * grad, (s, s, 3)).astype(np.float32)
    kind = rng.integers(0, 3)
    if kind >= 1:  # smooth low-contrast noise
        small = rng.uniform(-1, 1, (max(2, s // 8), max(2, s // 8))).astype(np.float32)
        up = np.asarray(Image.fromarray(((small + 1) * 127.5).astype(np.uint8)).resize((s, s), Image.BICUBIC),
                        dtype=np.float32) / 127.5 - 1
        arr = arr + up[..., None] * rng.uniform(10, 30)
    img = Image.fromarray(np.ascontiguousarray(arr).clip(0, 255).astype(np.uint8))
    if kind == 2:  # faint specks
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(2, 6))):
            x, y, r = rng.uniform(0, s), rng.uniform(0, s), rng.uniform(0.01, 0.03) * s
            col = tuple(int(v) for v in (0.8 * np.array(img.getpixel((int(x) % s, int(y) % s)))
                                         + 0.2 * rng.integers(0, 256, 3)))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=col)
    return img


def foreground_color(img: Image.Image, rng: np.random.Generator) -> tuple[int, int, int]:
    """A random colour far enough from the image's mean colour to stay visible."""
    bg_mean = np.asarray(img, dtype=np.float32).mean((0, 1))
    for _ in range(10):
        color = rng.integers(0, 256, 3)
        if np.abs(color - bg_mean).sum() > 150:
            break
    return tuple(int(v) for v in color)


def draw_shape(img: Image.Image, name: str, cx: float, cy: float, r: float, rot: float, color,
               rng: np.random.Generator) -> None:
    """Draw one object of class ``name`` centred at (cx, cy) with radius ``r`` onto ``img``
    (RGB, or "L" for masks: texture classes then fill their whole blob)."""
    s = img.size[0]
    draw = ImageDraw.Draw(img)
    bg_mean = np.asarray(img, dtype=np.float32).reshape(s * s, -1).mean(0)
    if name == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif name == "square":
        draw.polygon(_polygon(cx, cy, r, 4, rot), fill=color)
    elif name == "triangle":
        draw.polygon(_polygon(cx, cy, r, 3, rot), fill=color)
    elif name == "star":
        draw.polygon(_polygon(cx, cy, r, 5, rot, inner=0.45), fill=color)
    elif name == "hexagon":
        draw.polygon(_polygon(cx, cy, r, 6, rot), fill=color)
    elif name == "ring":
        w = max(2, int(r * rng.uniform(0.2, 0.35)))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=color, width=w)
    elif name == "cross":
        a, b = r, r * rng.uniform(0.22, 0.32)
        for pts in ([(cx - a, cy - b), (cx + a, cy - b), (cx + a, cy + b), (cx - a, cy + b)],
                    [(cx - b, cy - a), (cx + b, cy - a), (cx + b, cy + a), (cx - b, cy + a)]):
            draw.polygon(_rotated(pts, cx, cy, rot), fill=color)
    elif name == "crescent":  # a disc with an offset disc cut out, via a mask
        mask = Image.new("L", (s, s), 0)
        md = ImageDraw.Draw(mask)
        md.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        off = r * 0.55
        ox, oy = cx + off * math.cos(rot), cy + off * math.sin(rot)
        md.ellipse([ox - r * 0.85, oy - r * 0.85, ox + r * 0.85, oy + r * 0.85], fill=0)
        img.paste(Image.new(img.mode, (s, s), color), (0, 0), mask)
    elif name == "arrow":
        pts = [(cx - r, cy - r * 0.18), (cx + r * 0.2, cy - r * 0.18), (cx + r * 0.2, cy - r * 0.5),
               (cx + r, cy), (cx + r * 0.2, cy + r * 0.5), (cx + r * 0.2, cy + r * 0.18),
               (cx - r, cy + r * 0.18)]
        draw.polygon(_rotated(pts, cx, cy, rot), fill=color)
    elif img.mode == "L":  # masks of texture classes: the whole blob
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    else:  # texture classes: a rotated pattern inside a random blob
        tile = _pattern(name, int(2 * r) + 2, color, tuple(int(v) for v in bg_mean), rng)
        tile = tile.rotate(math.degrees(rot), resample=Image.NEAREST, fillcolor=tuple(int(v) for v in bg_mean))
        mask = Image.new("L", tile.size, 0)
        ImageDraw.Draw(mask).ellipse([0, 0, tile.size[0] - 1, tile.size[1] - 1], fill=255)
        img.paste(tile, (int(cx - r), int(cy - r)), mask)


def finish(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Blur and sensor noise."""
    s = img.size[0]
    if rng.random() < 0.7:
        img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.2, 0.8)) * s / 96))
    out = np.asarray(img, dtype=np.float32)
    out = out + rng.normal(0, rng.uniform(2, 8), out.shape)
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))




def render(label: int, size: int, rng: np.random.Generator) -> Image.Image:
    """Draw one image of class ``label`` at ``size`` x ``size`` pixels."""
    img = background(size, rng)
    color = foreground_color(img, rng)
    r = size * rng.uniform(0.22, 0.38)
    cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    draw_shape(img, CLASSES[label], cx, cy, r, rng.uniform(0, 2 * math.pi), color, rng)
    return finish(img, rng)


class EmbeddedShapes(Dataset):
    """``length`` deterministic samples of the embedded dataset for ``split``.

    Returns ``(transform(PIL image), label)``; without a transform, a float tensor in [0, 1].
    Labels cycle through the classes so every split is balanced. ``set_epoch(e)`` makes the
    training split draw *new* images for epoch ``e`` (a procedural dataset is unlimited, so a
    model never sees the same training image twice and cannot memorise it); other splits are
    fixed.
    """

    classes = CLASSES

    def __init__(self, split: str = "train", length: int = 5000, resolution: int = 96,
                 seed: int = 0, transform=None):
        if split not in _SPLIT_OFFSET:
            raise ValueError(f"split must be one of {', '.join(_SPLIT_OFFSET)}")
        self.split, self.length, self.resolution, self.seed = split, length, resolution, seed
        self.transform = transform
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def image(self, index: int) -> tuple[Image.Image, int]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        label = index % len(CLASSES)
        key = [self.seed, _SPLIT_OFFSET[self.split], index]
        if self.split == "train" and self.epoch:
            key.append(self.epoch)  # fresh images every epoch (epoch 0 keeps the original key)
        rng = np.random.default_rng(key)
        # render a bit larger so random-resized crops keep detail, at least the asked size
        return render(label, self.resolution, rng), label

    def __getitem__(self, index: int):
        img, label = self.image(index)
        if self.transform is not None:
            return self.transform(img), label
        arr = np.asarray(img, dtype=np.float32) / 255.0
        return torch.from_numpy(arr.transpose(2, 0, 1).copy()), label
