"""EfficientViT-M0 - M5 (Microsoft, Liu et al., CVPR 2023): memory-efficient ViT with cascaded
group attention. Not the MIT EfficientViT (``efficientvit_b*``, :mod:`.efficientvit_mit`).

- Stem: four stride-2 3x3 conv-BNs (ReLU between) to stride 16.
- Three stages; stages 2 and 3 open with a downsampling "sandwich" (residual DW conv + residual
  FFN, an inverted-residual patch merging with SE at stride 2, residual DW conv + FFN).
- Blocks are sandwiches too: ``dw0 -> ffn0 -> cascaded group attention -> dw1 -> ffn1``, each
  wrapped in a residual (:class:`~edgevision.layers.Residual`); attention runs in 7x7 windows
  with a learnt bias per relative offset (:mod:`edgevision.layers.attention_cga`, where the rule
  for other input sizes is: windows of ``min(7, shorter side)``, biases resized bicubically).
- Head: global average pool, BatchNorm1d + Linear.

Feature levels are the three stages (stride 16, 32, 64), ``ceil(input / stride)`` per side.
:func:`edgevision.reparameterize` folds every BN (the head's too) and merges each residual DW
conv-BN with its identity into a single conv. Layer names follow timm's ``efficientvit_m*``
(the official repository's, less its ``Sequential`` indices), so weights convert by renaming
(:mod:`edgevision.weights.timm_efficientvit`).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from ..layers import ConvMlp, ConvNormAct, NormLinear, Residual, SqueezeExcite, make_divisible
from ..layers.attention_cga import LocalWindowAttention
from ..layers.drop import path_rates
from .base import EdgeModel, FeatureInfo
from .variant import InputConfig, Variant, variant


@dataclass(frozen=True)
class EfficientViTMSpec:
    """Complete description of an EfficientViT-M network."""

    widths: tuple[int, int, int]  # channels of the three stages
    depths: tuple[int, int, int]  # sandwich blocks per stage
    heads: tuple[int, int, int]  # attention heads per stage (value width = width / heads)
    kernels: tuple[int, ...]  # depthwise kernel on the queries, per head
    key_dim: int = 16  # query/key width per head
    window: int = 7  # attention window side
    img_size: int = 224  # training resolution: sets the size of the attention-bias tables


class PatchMerging(nn.Module):
    """1x1 expand x4 -> ReLU -> 3x3 stride-2 DW -> ReLU -> SE -> 1x1 project."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        hid = dim * 4
        self.conv1 = ConvNormAct(dim, hid, 1, act="relu")
        self.conv2 = ConvNormAct(hid, hid, 3, 2, groups=hid, act="relu")
        self.se = SqueezeExcite(hid, make_divisible(hid * 0.25, 8, round_limit=0.0))
        self.conv3 = ConvNormAct(hid, out_dim, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.se(self.conv2(self.conv1(x))))


def _dw_ffn(dim: int, drop_path: float) -> list[nn.Module]:
    """The residual DW conv + residual FFN pair that opens and closes every sandwich."""
    return [Residual(ConvNormAct(dim, dim, 3, groups=dim, act=None), drop_path),
            Residual(ConvMlp(dim, dim * 2, act="relu"), drop_path)]


class EfficientViTMBlock(nn.Module):
    def __init__(self, dim: int, key_dim: int, heads: int, kernels: tuple[int, ...], window: int,
                 bias_resolution: int, drop_path: float = 0.0):
        super().__init__()
        self.dw0, self.ffn0 = _dw_ffn(dim, drop_path)
        self.mixer = Residual(LocalWindowAttention(dim, key_dim, heads, kernels, window, bias_resolution),
                              drop_path)
        self.dw1, self.ffn1 = _dw_ffn(dim, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn1(self.dw1(self.mixer(self.ffn0(self.dw0(x)))))


class EfficientViTM(EdgeModel):
    def __init__(self, spec: EfficientViTMSpec, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.spec, self.in_chans, self.num_classes, self.drop_rate = spec, in_chans, num_classes, drop_rate
        w0 = spec.widths[0]
        self.patch_embed = nn.Sequential(OrderedDict(
            conv1=ConvNormAct(in_chans, w0 // 8, 3, 2, act="relu"),
            conv2=ConvNormAct(w0 // 8, w0 // 4, 3, 2, act="relu"),
            conv3=ConvNormAct(w0 // 4, w0 // 2, 3, 2, act="relu"),
            conv4=ConvNormAct(w0 // 2, w0, 3, 2, act=None)))
        rates = iter(path_rates(sum(spec.depths) + 2 * (len(spec.depths) - 1), drop_path_rate))
        res, reduction = math.ceil(spec.img_size / 16), 16
        stages, self.feature_info, prev = [], [], w0
        for i, (width, depth, heads) in enumerate(zip(spec.widths, spec.depths, spec.heads)):
            if i:
                res, reduction = (res - 1) // 2 + 1, reduction * 2
                p = next(rates)
                down = nn.Sequential(OrderedDict(
                    res1=nn.Sequential(*_dw_ffn(prev, p)),
                    patchmerge=PatchMerging(prev, width),
                    res2=nn.Sequential(*_dw_ffn(width, next(rates)))))
            else:
                down = nn.Identity()
            blocks = [EfficientViTMBlock(width, spec.key_dim, heads, spec.kernels, spec.window,
                                         min(spec.window, res), next(rates)) for _ in range(depth)]
            stages.append(nn.Sequential(OrderedDict(downsample=down, blocks=nn.Sequential(*blocks))))
            self.feature_info.append(FeatureInfo(i, width, reduction, f"stages.{i}"))
            prev = width
        self.stages = nn.ModuleList(stages)
        self.num_features = prev
        self.head = self._make_head(num_classes)
        self._init_weights()

    def _make_head(self, num_classes: int) -> nn.Module:
        return NormLinear(self.num_features, num_classes) if num_classes else nn.Identity()

    def _init_weights(self) -> None:
        """The official initialisation: PyTorch's default for convs, N(0, 0.02) classifier, and
        every residual sandwich branch's last BN at zero except the DW convs of the
        downsampling sandwiches."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        for name, m in self.named_modules():
            if isinstance(m, Residual) and ("downsample" not in name or isinstance(m.m, ConvMlp)):
                bns = [b for b in m.modules() if isinstance(b, nn.BatchNorm2d)]
                nn.init.zeros_(bns[-1].weight)

    # ---- contract
    def trunk(self):
        return [("patch_embed", self.patch_embed)] + [(f"stages.{i}", s) for i, s in enumerate(self.stages)]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pooled(x)
        return x if pre_logits else self.head(x)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = self._make_head(num_classes).train(self.training)


def _input_config() -> InputConfig:
    return InputConfig(input_size=(3, 224, 224), interpolation="bicubic", crop_pct=0.875)


_VARIANTS = {
    "efficientvit_m0": EfficientViTMSpec((64, 128, 192), (1, 2, 3), (4, 4, 4), (5, 5, 5, 5)),
    "efficientvit_m1": EfficientViTMSpec((128, 144, 192), (1, 2, 3), (2, 3, 3), (7, 5, 3, 3)),
    "efficientvit_m2": EfficientViTMSpec((128, 192, 224), (1, 2, 3), (4, 3, 2), (7, 5, 3, 3)),
    "efficientvit_m3": EfficientViTMSpec((128, 240, 320), (1, 2, 3), (4, 3, 4), (5, 5, 5, 5)),
    "efficientvit_m4": EfficientViTMSpec((128, 256, 384), (1, 2, 3), (4, 4, 4), (7, 5, 3, 3)),
    "efficientvit_m5": EfficientViTMSpec((192, 288, 384), (1, 3, 4), (3, 3, 4), (7, 5, 3, 3)),
}
VARIANTS: list[Variant] = []
for _name, _spec in _VARIANTS.items():
    VARIANTS.append(variant(_name, "efficientvit_msra", _spec, EfficientViTM, _input_config(), channels_last=True))
