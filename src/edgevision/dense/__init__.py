"""Dense prediction: any registered backbone into torchvision detectors and a segmentation head."""
from .models import BACKBONE_LEVELS, DenseBackbone, build_detector, build_segmenter

__all__ = ["DenseBackbone", "build_detector", "build_segmenter", "BACKBONE_LEVELS"]
