"""Datasets that need no download: the embedded procedural dataset and image folders."""
from .embedded import CLASSES, EmbeddedShapes
from .folder import ImageFolderDataset, find_images

__all__ = ["CLASSES", "EmbeddedShapes", "ImageFolderDataset", "find_images"]
