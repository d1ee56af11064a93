"""Real data from disk: an ImageFolder layout (``root/<class>/<image>``), read with PIL.

Unreadable or corrupt images are skipped with a warning and counted (``skipped``), never fatal
one by one; a folder without any readable image is an error naming the folder.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ..errors import EdgeVisionError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def find_images(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise EdgeVisionError(f"image folder {str(root)!r} does not exist or is not a directory")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())


class ImageFolderDataset(Dataset):
    def __init__(self, root: str | Path, transform=None, classes: list[str] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise EdgeVisionError(f"data folder {str(self.root)!r} does not exist")
        found = sorted(d.name for d in self.root.iterdir() if d.is_dir())
        self.classes = list(classes) if classes is not None else found
        if not self.classes:
            raise EdgeVisionError(f"data folder {str(self.root)!r} has no class sub-folders; expected "
                                  f"{self.root}/<class name>/<images>")
        idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = [(p, idx[p.relative_to(self.root).parts[0]]) for p in find_images(self.root)
                        if p.relative_to(self.root).parts[0] in idx]
        self.skipped = 0
        readable = []
        for path, label in self.samples:  # header check only: cheap, catches non-images early
            try:
                with Image.open(path):
                    pass
                readable.append((path, label))
            except (OSError, UnidentifiedImageError, ValueError) as e:
                self.skipped += 1
                warnings.warn(f"skipping unreadable image {path}: {e}")
        self.samples = readable
        if not self.samples:
            raise EdgeVisionError(f"data folder {str(self.root)!r} contains no readable images "
                                  f"({', '.join(IMAGE_EXTS)})")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> Image.Image | None:
        path = self.samples[i][0]
        try:
            with Image.open(path) as im:
                im.load()
                return im.copy()
        except (OSError, UnidentifiedImageError, ValueError) as e:
            self.skipped += 1
            warnings.warn(f"skipping unreadable image {path}: {e}")
            return None

    def __getitem__(self, i: int):
        img = self.load(i)
        n = len(self.samples)
        tries = 0
        while img is None and tries < n:  # substitute the next readable image
            i = (i + 1) % n
            img = self.load(i)
            tries += 1
        if img is None:
            raise EdgeVisionError(f"no readable image in {self.root}")
        return (self.transform(img) if self.transform else img), self.samples[i][1]
