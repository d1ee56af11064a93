"""Datasets and loaders for training/evaluation, with the model's normalisation."""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler
from torchvision.transforms import v2 as T

from ..datasets import CLASSES, EmbeddedShapes, ImageFolderDataset
from ..errors import EdgeVisionError
from ..images import preprocess, to_rgb
from ..registry import InputConfig


def train_transform(cfg: InputConfig, size: int, randaug: int = 0, crop_scale: float = 0.5):
    ops = [T.Lambda(to_rgb), T.RandomResizedCrop(size, scale=(crop_scale, 1.0), antialias=True),
           T.RandomHorizontalFlip()]
    if randaug > 0:
        ops.append(T.RandAugment(magnitude=randaug))
    ops += [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(cfg.mean, cfg.std)]
    return T.Compose(ops)


class EvalTransform:
    """The eval preprocessing (resize, centre crop, normalise) as a picklable callable."""

    def __init__(self, cfg: InputConfig, size: int):
        self.cfg, self.size = cfg, size

    def __call__(self, img):
        return preprocess(img, self.cfg, self.size)


def build_datasets(data: str, cfg: InputConfig, size: int, randaug: int = 0, train_size: int = 6000,
                   val_size: int = 1200, seed: int = 0, crop_scale: float = 0.5):
    """(train, val, class names) for ``data`` = "embedded" or an ImageFolder root."""
    if data == "embedded":
        # embedded images are drawn directly at the training size (crop keeps >= 35 % area)
        train = EmbeddedShapes("train", train_size, size, seed, train_transform(cfg, size, randaug, crop_scale))
        val = EmbeddedShapes("val", val_size, size, seed, EvalTransform(cfg, size))
        return train, val, list(CLASSES)
    root = Path(data)
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise EdgeVisionError(f"data folder {str(root)!r} must contain train/ and val/ sub-folders "
                              f"(ImageFolder layout: train/<class>/<image>), or use --data embedded")
    train = ImageFolderDataset(root / "train", train_transform(cfg, size, randaug, crop_scale))
    val = ImageFolderDataset(root / "val", EvalTransform(cfg, size), classes=train.classes)
    return train, val, train.classes


def make_loader(ds, batch_size: int, train: bool, workers: int, seed: int, epoch: int,
                distributed: bool = False) -> DataLoader:
    """Deterministic per (seed, epoch): the shuffle order and worker seeds depend on nothing else,
    so a resumed run sees exactly the batches the uninterrupted run saw."""
    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    sampler = None
    if distributed:
        sampler = DistributedSampler(ds, shuffle=train, seed=seed, drop_last=train)
        sampler.set_epoch(epoch)
    return DataLoader(ds, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
                      drop_last=train, num_workers=workers, generator=g,
                      persistent_workers=False, pin_memory=False)
