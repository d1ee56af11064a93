"""RepViT M0.9 - M2.3 (and the first release's M1 - M3): a mobile CNN with ViT-style macro design (Wang et al., 2023).

The network is an early-convolution stem (two stride-2 3x3 conv-BNs with GELU between, stride
4), then four stages of :class:`~edgevision.blocks.repvit.RepViTBlock` (RepVGG depthwise token
mixer, SE in every other block, residual 1x1 FFN with ratio 2). Stages 2-4 open with RepViT's
separate downsampling block (stride 8, 16, 32). The head pools, then BatchNorm1d + Linear.

The published models are trained with hard distillation and carry a second classifier (the
distillation head); in evaluation the two heads' logits are averaged, which is why the reference
parameter counts include it. ``distilled=False`` (``create_model("repvit_m1_1",
distilled=False)``) builds the single-head model. :func:`edgevision.reparameterize` merges the
RepVGG branches into one depthwise conv, folds every BN (including the head's BatchNorm1d) and
merges the two heads into a single Linear.

Every layer is a convolution, so any input size of at least 32x32 works; level ``i`` has
``ceil(input / reduction)`` pixels per side. Layer names follow timm's ``repvit_*`` (and the
official repository's) so their weights convert by renaming a few keys
(:mod:`edgevision.weights.timm_repvit`).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..blocks.repvit import DistilledHead, RepViTBlock, RepViTDownsample
from ..layers import ConvMlp, ConvNormAct, NormLinear
from ..layers.drop import path_rates
from .base import EdgeModel, FeatureInfo
from .variant import InputConfig, Variant, variant


@dataclass(frozen=True)
class RepViTSpec:
    """Complete description of a RepViT network."""

    widths: tuple[int, ...]  # channels of each stage (the stem ends at widths[0])
    depths: tuple[int, ...]  # RepViT blocks per stage (after the downsampling block, if any)
    mlp_ratio: float = 2.0  # FFN hidden width / block width
    kernel: int = 3  # depthwise kernel of the token mixers and downsampling convs
    act: str = "gelu"  # activation of the stem and the FFNs
    distilled: bool = True  # second (distillation) classifier, averaged with the first in eval
    branch_bn: bool = False  # token mixer's 1x1 branch as conv + BN, no BN after the sum (m1-m3)

    def scaled(self, width: float = 1.0) -> "RepViTSpec":
        return replace(self, widths=tuple(int(w * width) for w in self.widths))


class RepViT(EdgeModel):
    def __init__(self, spec: RepViTSpec, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.spec, self.in_chans, self.num_classes, self.drop_rate = spec, in_chans, num_classes, drop_rate
        w0 = spec.widths[0]
        self.stem = nn.Sequential(OrderedDict(
            conv1=ConvNormAct(in_chans, w0 // 2, 3, 2, act=spec.act),
            conv2=ConvNormAct(w0 // 2, w0, 3, 2, act=None)))
        n_blocks = sum(spec.depths) + len(spec.depths) - 1
        rates = iter(path_rates(n_blocks, drop_path_rate))
        self.feature_info = []
        stages, chs, reduction = [], w0, 4
        for i, (width, depth) in enumerate(zip(spec.widths, spec.depths)):
            if i:
                down = RepViTDownsample(chs, width, spec.mlp_ratio, spec.kernel, spec.act, next(rates),
                                        branch_bn=spec.branch_bn)
                reduction *= 2
            else:
                down = nn.Identity()
            blocks = [RepViTBlock(width, spec.mlp_ratio, spec.kernel, use_se=j % 2 == 0, act=spec.act,
                                  drop_path=next(rates), branch_bn=spec.branch_bn) for j in range(depth)]
            stages.append(nn.Sequential(OrderedDict(downsample=down, blocks=nn.Sequential(*blocks))))
            chs = width
            self.feature_info.append(FeatureInfo(i, chs, reduction, f"stages.{i}"))
        self.stages = nn.ModuleList(stages)
        self.num_features = chs
        self.head = self._make_head(num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """RepViT's own initialisation: PyTorch's default for convs (He-normal makes the stacked
        identity branches of the token mixers blow activations up until they underflow into
        slow denormals downstream), N(0, 0.02) classifiers, every residual FFN branch at zero."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, ConvMlp):
                nn.init.zeros_(m.conv2.bn.weight)

    def _make_head(self, num_classes: int) -> nn.Module:
        if not num_classes:
            return nn.Identity()
        return DistilledHead(self.num_features, num_classes) if self.spec.distilled \
            else NormLinear(self.num_features, num_classes)

    # ---- contract
    def trunk(self):
        return [("stem", self.stem)] + [(f"stages.{i}", s) for i, s in enumerate(self.stages)]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False):
        x = self.pooled(x)
        return x if pre_logits else self.head(x)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = self._make_head(num_classes).train(self.training)  # BatchNorm1d: keep the mode

    def set_distilled_training(self, enable: bool = True) -> None:
        """Return ``(class_logits, distillation_logits)`` in training mode (hard distillation)."""
        if isinstance(self.head, DistilledHead):
            self.head.distilled_training = enable


def _input_config() -> InputConfig:
    return InputConfig(input_size=(3, 224, 224), interpolation="bicubic", crop_pct=0.95)


_VARIANTS = {
    # the first release (renamed m0_9 / m1_1 later, with other training): other token mixer BNs
    "repvit_m1": RepViTSpec((48, 96, 192, 384), (2, 2, 14, 2), branch_bn=True),
    "repvit_m2": RepViTSpec((64, 128, 256, 512), (2, 2, 12, 2), branch_bn=True),
    "repvit_m3": RepViTSpec((64, 128, 256, 512), (4, 4, 18, 2), branch_bn=True),
    "repvit_m0_9": RepViTSpec((48, 96, 192, 384), (2, 2, 14, 2)),
    "repvit_m1_0": RepViTSpec((56, 112, 224, 448), (2, 2, 14, 2)),
    "repvit_m1_1": RepViTSpec((64, 128, 256, 512), (2, 2, 12, 2)),
    "repvit_m1_5": RepViTSpec((64, 128, 256, 512), (4, 4, 24, 4)),
    "repvit_m2_3": RepViTSpec((80, 160, 320, 640), (6, 6, 34, 2)),
}
VARIANTS: list[Variant] = []
for _name, _spec in _VARIANTS.items():
    VARIANTS.append(variant(_name, "repvit", _spec, RepViT, _input_config(), channels_last=True))
