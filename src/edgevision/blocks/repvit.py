"""RepViT blocks: a MobileNetV3-style block re-arranged like a ViT block.

A RepViT block separates *token mixing* (a RepVGG-style depthwise conv, optionally followed by
SE) from *channel mixing* (a 1x1 expand -> GELU -> 1x1 project FFN with a residual):

- :class:`RepVggDw` trains three parallel branches — kxk depthwise conv + BN, 1x1 depthwise conv
  (with bias) and the identity — followed by one BN (the first RepViT release: a 1x1 conv + BN
  branch and no BN after the sum). For inference the branches are exact linear
  maps of the input, so :meth:`RepVggDw.reparameterize` merges them into a single kxk depthwise
  conv with bias (the maths lives in :mod:`edgevision.layers.reparam`).
- :class:`RepViTBlock` = token mixer -> SE (every other block) -> residual FFN.
- :class:`RepViTDownsample` = a RepViT block (no SE) -> stride-2 kxk depthwise conv-BN -> 1x1
  conv-BN to the new width -> residual FFN.
- :class:`NormLinear` / :class:`DistilledHead`: BatchNorm1d + Linear classifiers; the distilled
  head averages a class head and a distillation head at inference (and returns both while
  training with a teacher), and reparameterizes into one Linear.

Sub-module names follow the RepViT / timm layout so weights convert by renaming a few keys.
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers import ConvMlp, ConvNormAct, DropPath, NormLinear, SqueezeExcite, make_divisible
from ..layers.reparam import fuse_conv_bn, identity_kernel, merge_parallel_convs


class RepVggDw(nn.Module):
    """``bn(dw_kxk_bn(x) + dw_1x1(x) + x)``; reparameterizes into one depthwise kxk conv.

    ``branch_bn`` (the first RepViT release, timm's ``legacy``): the 1x1 branch is conv + BN
    and there is no BN after the sum, ``dw_kxk_bn(x) + dw_1x1_bn(x) + x``."""

    def __init__(self, channels: int, kernel: int = 3, bn_eps: float = 1e-5, branch_bn: bool = False):
        super().__init__()
        self.conv = ConvNormAct(channels, channels, kernel, groups=channels, act=None, bn_eps=bn_eps)
        if branch_bn:
            self.conv1 = ConvNormAct(channels, channels, 1, groups=channels, act=None, bn_eps=bn_eps)
            self.bn = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(channels, channels, 1, groups=channels, bias=True)
            self.bn = nn.BatchNorm2d(channels, eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x) + self.conv1(x) + x)

    @torch.no_grad()
    def reparameterize(self) -> nn.Module:
        main, side = (_folded(m) for m in (self.conv, self.conv1))
        chs = main.out_channels
        ident = nn.Conv2d(chs, chs, 1, groups=chs, bias=False).to(main.weight)
        ident.weight.copy_(identity_kernel(chs, 1, chs, main.weight))
        merged = merge_parallel_convs([main, side, ident])
        return fuse_conv_bn(merged, self.bn) if isinstance(self.bn, nn.BatchNorm2d) else merged


def _folded(m: nn.Module) -> nn.Conv2d:
    """The plain conv equal to ``m`` (a ConvNormAct without activation, or a Conv2d)."""
    if isinstance(m, nn.Conv2d):
        return m
    return fuse_conv_bn(m.conv, m.bn) if isinstance(m.bn, nn.BatchNorm2d) else m.conv


class RepViTBlock(nn.Module):
    """Token mixer (RepVGG DW) -> optional SE -> ``x + drop_path(ffn(x))``."""

    has_skip = True  # the FFN is residual (training's zero-init scales its last BN to 0)

    def __init__(self, chs: int, mlp_ratio: float, kernel: int, use_se: bool, act: str = "gelu",
                 drop_path: float = 0.0, bn_eps: float = 1e-5, branch_bn: bool = False):
        super().__init__()
        self.token_mixer = RepVggDw(chs, kernel, bn_eps, branch_bn)
        # RepViT's SE: 1/4 of the channels, rounded to the nearest multiple of 8
        self.se = SqueezeExcite(chs, make_divisible(chs * 0.25, 8, round_limit=0.0)) if use_se \
            else nn.Identity()
        self.channel_mixer = ConvMlp(chs, int(chs * mlp_ratio), act, bn_eps)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.se(self.token_mixer(x))
        return x + self.drop_path(self.channel_mixer(x))


class RepViTDownsample(nn.Module):
    """Halve the resolution and change the width: block -> DW kxk s2 -> 1x1 -> residual FFN."""

    has_skip = True

    def __init__(self, in_chs: int, out_chs: int, mlp_ratio: float, kernel: int, act: str = "gelu",
                 drop_path: float = 0.0, bn_eps: float = 1e-5, branch_bn: bool = False):
        super().__init__()
        self.pre_block = RepViTBlock(in_chs, mlp_ratio, kernel, False, act, drop_path, bn_eps, branch_bn)
        self.spatial_downsample = ConvNormAct(in_chs, in_chs, kernel, 2, groups=in_chs, act=None,
                                              bn_eps=bn_eps)
        self.channel_downsample = ConvNormAct(in_chs, out_chs, 1, act=None, bn_eps=bn_eps)
        self.ffn = ConvMlp(out_chs, int(out_chs * mlp_ratio), act, bn_eps)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.channel_downsample(self.spatial_downsample(self.pre_block(x)))
        return x + self.drop_path(self.ffn(x))



class DistilledHead(nn.Module):
    """A class head and a distillation head on the same features (DeiT-style).

    Inference returns their average. While training with a teacher
    (``distilled_training = True``) it returns ``(class_logits, distillation_logits)`` so the
    trainer can fit the second head to the teacher's labels.
    """

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.head = NormLinear(in_features, num_classes)
        self.head_dist = NormLinear(in_features, num_classes)
        self.distilled_training = False

    def forward(self, x: torch.Tensor):
        a, b = self.head(x), self.head_dist(x)
        if self.training and self.distilled_training and not torch.jit.is_scripting():
            return a, b
        return (a + b) / 2

    @torch.no_grad()
    def reparameterize(self) -> nn.Module:
        parts = [m.reparameterize() if isinstance(m, NormLinear) else m for m in (self.head, self.head_dist)]
        merged = nn.Linear(parts[0].in_features, parts[0].out_features).to(parts[0].weight)
        merged.weight.copy_((parts[0].weight + parts[1].weight) / 2)
        merged.bias.copy_((parts[0].bias + parts[1].bias) / 2)
        return merged
