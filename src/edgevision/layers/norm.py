"""Normalisation layers that PyTorch lacks in channels-first form."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of an NCHW tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class SimpleNorm(nn.Module):
    """``x / sqrt(var(x) + eps) * weight`` over the last dimension: scales by the (unbiased)
    standard deviation like LayerNorm but neither centres the output nor adds a bias (timm's
    ``simplenorm``, the norm of ``convnext_zepto_rms*``)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.normalized_shape, self.eps = (dim,), eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.var(-1, keepdim=True) + self.eps) * self.weight


class SimpleNorm2d(SimpleNorm):
    """:class:`SimpleNorm` over the channel dimension of an NCHW tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class GRN(nn.Module):
    """Global Response Normalization (ConvNeXt V2) for channels-last (N, H, W, C) tensors:
    ``x + gamma * (x * n) + beta`` with ``n = ||x||_2 over HW / mean over C``."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))  # gamma
        self.bias = nn.Parameter(torch.zeros(dim))  # beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = x.norm(p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + self.eps)
        return torch.addcmul(self.bias, self.weight, x * nx) + x


class NormLinear(nn.Module):
    """BatchNorm1d -> (dropout) -> Linear, the classifier of RepViT and EfficientViT-M; folds into
    one Linear for inference."""

    def __init__(self, in_features: int, out_features: int, drop: float = 0.0):
        super().__init__()
        self.bn = nn.BatchNorm1d(in_features)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()
        self.l = nn.Linear(in_features, out_features)  # noqa: E741 (the RepViT/timm key name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l(self.drop(self.bn(x)))

    def reparameterize(self) -> nn.Module:
        from .reparam import fuse_bn_linear
        return fuse_bn_linear(self.bn, self.l)
