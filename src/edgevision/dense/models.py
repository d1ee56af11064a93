"""The adapter from edgevision backbones to torchvision's detection and segmentation models.

``DenseBackbone(name, levels)`` is the ``features_only`` model restricted to feature levels of
the given strides (taken from ``feature_info``: channels and strides are exact), optionally with
an FPN. It returns an ``OrderedDict[str, Tensor]`` and has ``out_channels``, which is what
torchvision's heads expect. Detectors:

- ``retinanet``  FPN on strides 8/16/32 + P6/P7 (torchvision RetinaNet, v2-style);
- ``fasterrcnn`` FPN on strides 4/8/16/32 + max-pool level, RoIAlign (torchvision Faster R-CNN);
- ``ssdlite``    strides 16/32 + two extra stride-2 blocks, SSDLite head (torchvision SSD).

Segmentation: LR-ASPP (torchvision's head) on the stride-8 and last feature maps.
Anchor sizes scale with the input resolution (4 x stride per level), so small images work.
"""
from __future__ import annotations

from collections import OrderedDict
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from ..errors import ConfigError
from ..factory import create_model

BACKBONE_LEVELS = {"retinanet": (8, 16, 32), "fasterrcnn": (4, 8, 16, 32), "ssdlite": (16, 32)}
DETECTORS = tuple(BACKBONE_LEVELS)


class DenseBackbone(nn.Module):
    def __init__(self, name: str, strides=(8, 16, 32), fpn_channels: int | None = None,
                 extra: str | None = None, weights: str | None = None, **create_kwargs):
        super().__init__()
        probe = create_model(name, features_only=True, **create_kwargs)
        info = probe.feature_info
        idx = []
        for st in strides:
            cands = [i for i, f in enumerate(info) if f.reduction == st]
            if not cands:
                raise ConfigError(f"{name} has no feature level at stride {st}; its levels: "
                                  f"{[(f.channels, f.reduction) for f in info]}")
            idx.append(cands[-1])
        self.body = create_model(name, features_only=True, out_indices=idx, **create_kwargs)
        if weights:
            from ..weights import load_weights
            load_weights(self.body, weights, strict=False)
        self.channels = [f.channels for f in self.body.feature_info]
        self.strides = [f.reduction for f in self.body.feature_info]
        self.fpn = None
        if fpn_channels:
            blocks = {"p6p7": LastLevelP6P7(fpn_channels, fpn_channels), "pool": LastLevelMaxPool(),
                      None: None}[extra]
            self.fpn = FeaturePyramidNetwork(self.channels, fpn_channels, extra_blocks=blocks)
            self.out_channels = fpn_channels
        else:
            self.out_channels = self.channels[-1]

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        feats = self.body(x)
        od = OrderedDict((str(i), f.contiguous()) for i, f in enumerate(feats))
        return self.fpn(od) if self.fpn is not None else od


class _SSDBackbone(nn.Module):
    """Feature maps at strides 16/32 plus two extra depthwise-separable stride-2 blocks."""

    def __init__(self, name: str, width: int = 128, **kw):
        super().__init__()
        self.base = DenseBackbone(name, BACKBONE_LEVELS["ssdlite"], **kw)
        c = self.base.channels[-1]
        def extra(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                                 nn.ReLU6(inplace=True), nn.Conv2d(cin, cout, 1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))
        self.extras = nn.ModuleList([extra(c, width), extra(width, width)])
        self.out_channels = self.base.channels + [width, width]

    def forward(self, x):
        feats = list(self.base(x).values())
        for e in self.extras:
            feats.append(e(feats[-1]))
        return OrderedDict((str(i), f) for i, f in enumerate(feats))


def build_detector(kind: str, backbone: str, num_classes: int, image_size: int = 256,
                   weights: str | None = None, fpn_channels: int = 128, **create_kwargs) -> nn.Module:
    """A torchvision detector on an edgevision backbone. ``num_classes`` excludes background."""
    from torchvision.models.detection import FasterRCNN, RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.ssdlite import SSDLiteHead
    from torchvision.ops import MultiScaleRoIAlign
    if kind not in DETECTORS:
        raise ConfigError(f"unknown detector {kind!r}; choose one of {', '.join(DETECTORS)}")
    probe = create_model(backbone, num_classes=0)
    cfg = probe.input_config
    common = dict(min_size=image_size, max_size=image_size, image_mean=list(cfg.mean), image_std=list(cfg.std))
    if kind == "retinanet":
        bb = DenseBackbone(backbone, BACKBONE_LEVELS[kind], fpn_channels, "p6p7", weights, **create_kwargs)
        sizes = tuple((4 * s, int(4 * s * 1.26), int(4 * s * 1.59)) for s in (8, 16, 32, 64, 128))
        anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
        model = RetinaNet(bb, num_classes + 1, anchor_generator=anchors, **common)
    elif kind == "fasterrcnn":
        bb = DenseBackbone(backbone, BACKBONE_LEVELS[kind], fpn_channels, "pool", weights, **create_kwargs)
        sizes = tuple((4 * s,) for s in (4, 8, 16, 32, 64))
        anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
        roi = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
        model = FasterRCNN(bb, num_classes + 1, rpn_anchor_generator=anchors, box_roi_pool=roi,
                           rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
                           rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100, **common)
    else:
        bb = _SSDBackbone(backbone, weights=weights, **create_kwargs)
        gen = DefaultBoxGenerator([[2, 3]] * 4, min_ratio=0.1, max_ratio=0.8)
        head = SSDLiteHead(bb.out_channels, gen.num_anchors_per_location(), num_classes + 1,
                           partial(nn.BatchNorm2d, eps=1e-3, momentum=0.03))
        model = SSD(bb, gen, (image_size, image_size), num_classes + 1, head=head,
                    image_mean=list(cfg.mean), image_std=list(cfg.std), score_thresh=0.01,
                    nms_thresh=0.5, detections_per_img=100, topk_candidates=200)
    model.backbone_name, model.kind = backbone, kind
    return model


class Segmenter(nn.Module):
    """Normalise -> backbone (stride-8 and last levels) -> LR-ASPP -> upsample to the input."""

    def __init__(self, backbone: str, num_classes: int, inter_channels: int = 64, weights: str | None = None,
                 **create_kwargs):
        super().__init__()
        from torchvision.models.segmentation.lraspp import LRASPPHead
        probe = create_model(backbone, features_only=True, **create_kwargs)
        strides = [f.reduction for f in probe.feature_info]
        if 8 not in strides:
            raise ConfigError(f"{backbone} has no stride-8 feature level for LR-ASPP")
        self.backbone = DenseBackbone(backbone, (8, strides[-1]), weights=weights, **create_kwargs)
        low, high = self.backbone.channels
        self.head = LRASPPHead(low, high, num_classes + 1, inter_channels)
        cfg = probe.input_config
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std).view(1, -1, 1, 1), persistent=False)
        self.num_classes, self.backbone_name = num_classes, backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) in [0, 1]; returns (N, K + 1, H, W) logits (class 0 = background)."""
        f = self.backbone((x - self.mean) / self.std)
        out = self.head({"low": f["0"], "high": f["1"]})
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_segmenter(backbone: str, num_classes: int, weights: str | None = None, **kw) -> Segmenter:
    return Segmenter(backbone, num_classes, weights=weights, **kw)
