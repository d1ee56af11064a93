"""Real photographs without a download: the sample photos that installed packages ship, turned
into any number of deterministic views.

The embedded procedural dataset has 12 classes with wide margins, which flatters reduced
precision; agreement and calibration on an ImageNet model need real scenes. Several common
packages carry a few photos for their examples (matplotlib: Grace Hopper; scikit-learn: a
Chinese temple and a flower; scikit-image: an astronaut, a cat, a cup of coffee, ...).
``find_photos()`` looks for them in the installed packages (their folders are located without
importing them) and ``PhotoViews`` cuts each split's views from them: a random crop of 20-100 %
of the photo's area with aspect jitter (3/4 to 4/3), a horizontal flip half of the time and a
brightness jitter of +-20 %. View ``i`` of a split is drawn from ``(seed, split, i)`` alone and
uses photo ``i mod len(photos)``, so the splits are disjoint sets of views of the same scenes,
and which photos exist depends on the packages installed (the report of a measurement should
name them). Folders listed in the ``EDGEVISION_PHOTOS`` environment variable (separated like
PATH) add photos: the shipped ones of packages unpacked there (e.g. a wheel that is not
installed), or all the .jpg/.png files of a plain folder.
"""
from __future__ import annotations

import importlib.util
import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torch.utils.data import Dataset

from ..errors import ConfigError

# (package, path inside the package): natural photographs only (no drawings, charts or textures
# of one material), each listed once (scikit-image's right motorcycle view is left out).
SHIPPED = (
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"),
    ("skimage", "data/camera.png"),
    ("skimage", "data/rocket.jpg"),
    ("skimage", "data/motorcycle_left.png"),
    ("skimage", "data/coins.png"),
    ("skimage", "data/moon.png"),
    ("skimage", "data/brick.png"),
    ("skimage", "data/grass.png"),
    ("skimage", "data/gravel.png"),
)
_PHOTO_EXTS = (".jpg", ".jpeg", ".png")
_SPLITS = {"train": 0, "val": 1, "test": 2, "calib": 3}
_SCALE, _RATIO, _BRIGHTNESS = (0.2, 1.0), (3 / 4, 4 / 3), 0.2


def _package_dir(name: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


def find_photos(extra=None) -> list[Path]:
    """The shipped photos present in this environment (``SHIPPED`` order), then those of each
    folder in ``extra`` (default: the folders in ``EDGEVISION_PHOTOS``): the ``SHIPPED`` photos
    of the packages unpacked in it (e.g. a wheel unpacked there: ``<folder>/skimage/data/...``),
    or else all its .jpg/.png files, sorted. Raises ConfigError when there is none."""
    if extra is None:
        extra = [d for d in os.environ.get("EDGEVISION_PHOTOS", "").split(os.pathsep) if d]
    found = []
    for package, rel in SHIPPED:
        root = _package_dir(package)
        if root is not None and (root / rel).is_file():
            found.append(root / rel)
    for folder in map(Path, extra):
        if not folder.is_dir():
            raise ConfigError(f"photo folder {str(folder)!r} (EDGEVISION_PHOTOS or extra) does not "
                              f"exist or is not a directory")
        unpacked = [folder / package / rel for package, rel in SHIPPED if (folder / package / rel).is_file()]
        found += unpacked or sorted(p for p in folder.iterdir()
                                    if p.suffix.lower() in _PHOTO_EXTS and p.is_file())
    if not found:
        raise ConfigError("no photo found: the photo views use the sample photos that matplotlib, "
                          "scikit-learn or scikit-image install; install one of them, or calibrate "
                          "on a folder of your own images (--calib DIR) or on --calib embedded")
    return found


@lru_cache(maxsize=32)
def _load(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


class PhotoViews(Dataset):
    """``length`` deterministic views of real photos for ``split`` (train, val, test, calib).

    ``view(i)`` is a PIL RGB image; indexing gives ``(transform(view), photo index)``, or a float
    tensor in [0, 1] without a transform. ``photos``: the files to cut views from (default
    ``find_photos()``)."""

    def __init__(self, split: str = "calib", length: int = 64, seed: int = 0, transform=None,
                 photos=None):
        if split not in _SPLITS:
            raise ConfigError(f"split must be one of {', '.join(_SPLITS)}, not {split!r}")
        if length < 1:
            raise ConfigError(f"a photo view set needs at least 1 view, not {length}")
        self.split, self.length, self.seed, self.transform = split, length, seed, transform
        self.photos = [Path(p) for p in (find_photos() if photos is None else photos)]
        if not self.photos:
            raise ConfigError("PhotoViews needs at least one photo")

    def __len__(self) -> int:
        return self.length

    def view(self, index: int) -> Image.Image:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, _SPLITS[self.split], index])
        img = _load(self.photos[index % len(self.photos)])
        w, h = img.size
        area = w * h * rng.uniform(*_SCALE)
        ratio = math.exp(rng.uniform(math.log(_RATIO[0]), math.log(_RATIO[1])))
        cw = min(w, max(1, round(math.sqrt(area * ratio))))
        ch = min(h, max(1, round(math.sqrt(area / ratio))))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        view = img.crop((left, top, left + cw, top + ch))
        if rng.random() < 0.5:
            view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return ImageEnhance.Brightness(view).enhance(1 + rng.uniform(-_BRIGHTNESS, _BRIGHTNESS))

    def __getitem__(self, index: int):
        view = self.view(index)
        if self.transform is not None:
            return self.transform(view), index % len(self.photos)
        arr = np.asarray(view, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return torch.from_numpy(arr.copy()), index % len(self.photos)


def write_image_folder(root, per_class: dict[str, int], photos=None, seed: int = 0,
                       suffix: str = ".png") -> Path:
    """An ImageFolder tree under ``root`` with one class per photo (named by its file stem):
    ``per_class[split]`` views of each photo in ``root/split/<class>/`` (e.g. {"train": 16,
    "val": 8}); the splits' views never coincide. Returns ``root``."""
    root = Path(root)
    photos = [Path(p) for p in (find_photos() if photos is None else photos)]
    for split, per in per_class.items():
        views = PhotoViews(split, per * len(photos), seed=seed, photos=photos)
        for i in range(len(views)):
            d = root / split / photos[i % len(photos)].stem
            d.mkdir(parents=True, exist_ok=True)
            views.view(i).save(d / f"{i}{suffix}")
    return root
