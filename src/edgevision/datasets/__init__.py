"""Datasets that need no download: the embedded procedural dataset, views of the photos that
installed packages ship, and image folders."""
from .embedded import CLASSES, EmbeddedShapes
from .folder import ImageFolderDataset, find_images
from .photos import PhotoViews, find_photos

__all__ = ["CLASSES", "EmbeddedShapes", "ImageFolderDataset", "PhotoViews", "find_images", "find_photos"]
