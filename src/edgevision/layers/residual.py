"""``x + drop_path(branch(x))`` as a module, for architectures that wrap every sub-layer in a
residual (EfficientViT-M). A residual around a lone conv-BN (no activation, same channels,
stride 1) is a linear map: :meth:`Residual.reparameterize` turns it into one conv whose kernel
has the identity added (RepVGG's trick), so the deployed graph has no add for it."""
from __future__ import annotations

import torch
from torch import nn

from .conv import ConvNormAct
from .drop import DropPath


class Residual(nn.Module):
    def __init__(self, branch: nn.Module, drop_path: float = 0.0):
        super().__init__()
        self.m = branch  # the official/timm key name
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.m(x))

    @torch.no_grad()
    def reparameterize(self) -> nn.Module:
        b = self.m
        if not (isinstance(b, ConvNormAct) and isinstance(b.act, nn.Identity)):
            return self
        conv = b.conv
        if conv.stride != (1, 1) or conv.in_channels != conv.out_channels \
                or type(conv) is not nn.Conv2d or conv.padding != (conv.kernel_size[0] // 2,) * 2:
            return self
        from .reparam import fuse_conv_bn, identity_kernel
        fused = fuse_conv_bn(conv, b.bn) if isinstance(b.bn, nn.BatchNorm2d) else conv
        if fused.bias is None:
            fused.bias = nn.Parameter(torch.zeros(fused.out_channels).to(fused.weight))
        fused.weight.add_(identity_kernel(fused.out_channels, fused.kernel_size[0], fused.groups,
                                          fused.weight))
        return fused
