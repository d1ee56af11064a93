"""Folding maths for inference-time reparameterization, written once.

The protocol (see DESIGN.md): a module that can be simplified for inference implements
``reparameterize(self) -> nn.Module`` returning its replacement; ``edgevision.reparameterize``
walks a model and swaps them. The functions here compute the replacement weights.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def bn_scale_shift(bn: nn.BatchNorm2d | nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) such that bn(x) == x * scale + shift in eval mode."""
    std = (bn.running_var + bn.eps).sqrt()
    weight = bn.weight if bn.affine else torch.ones_like(std)
    bias = bn.bias if bn.affine else torch.zeros_like(std)
    scale = weight / std
    return scale, bias - bn.running_mean * scale


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A Conv2d equal to ``bn(conv(x))`` (eval mode). Keeps the conv's class (e.g. Conv2dSame)."""
    scale, shift = bn_scale_shift(bn)
    fused = _clone_conv(conv, bias=True)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    b = conv.bias if conv.bias is not None else torch.zeros_like(shift)
    fused.bias.copy_(b * scale + shift)
    return fused


@torch.no_grad()
def fuse_bn_linear(bn: nn.BatchNorm1d, linear: nn.Linear) -> nn.Linear:
    """A Linear equal to ``linear(bn(x))`` (eval mode)."""
    scale, shift = bn_scale_shift(bn)
    fused = nn.Linear(linear.in_features, linear.out_features, bias=True,
                      device=linear.weight.device, dtype=linear.weight.dtype)
    fused.weight.copy_(linear.weight * scale.view(1, -1))
    b = linear.bias if linear.bias is not None else torch.zeros(linear.out_features)
    fused.bias.copy_(linear.weight @ shift + b)
    return fused


@torch.no_grad()
def fuse_linear_bn(linear: nn.Linear, bn: nn.BatchNorm1d) -> nn.Linear:
    """A Linear equal to ``bn(linear(x))`` (eval mode)."""
    scale, shift = bn_scale_shift(bn)
    fused = nn.Linear(linear.in_features, linear.out_features, bias=True,
                      device=linear.weight.device, dtype=linear.weight.dtype)
    fused.weight.copy_(linear.weight * scale.view(-1, 1))
    b = linear.bias if linear.bias is not None else torch.zeros_like(shift)
    fused.bias.copy_(b * scale + shift)
    return fused


@torch.no_grad()
def pad_kernel_to(weight: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Zero-pad a (O, I, k, k) kernel to ``kernel_size`` (centred), e.g. 1x1 -> 3x3."""
    k = weight.shape[-1]
    p = (kernel_size - k) // 2
    return F.pad(weight, [p, p, p, p]) if p else weight


@torch.no_grad()
def identity_kernel(channels: int, kernel_size: int, groups: int, like: torch.Tensor) -> torch.Tensor:
    """The (C, C/groups, k, k) kernel of the identity map for a grouped conv."""
    in_per_group = channels // groups
    w = torch.zeros(channels, in_per_group, kernel_size, kernel_size, dtype=like.dtype,
                    device=like.device)
    c = kernel_size // 2
    for i in range(channels):
        w[i, i % in_per_group, c, c] = 1.0
    return w


@torch.no_grad()
def merge_parallel_convs(convs: list[nn.Conv2d]) -> nn.Conv2d:
    """One conv equal to the sum of parallel same-stride convs (smaller kernels padded)."""
    k = max(c.kernel_size[0] for c in convs)
    base = max(convs, key=lambda c: c.kernel_size[0])
    fused = _clone_conv(base, bias=True)
    fused.weight.zero_()
    fused.bias.zero_()
    for c in convs:
        fused.weight.add_(pad_kernel_to(c.weight, k))
        if c.bias is not None:
            fused.bias.add_(c.bias)
    return fused


def _clone_conv(conv: nn.Conv2d, bias: bool) -> nn.Conv2d:
    """A fresh conv of the same class and geometry (weights uninitialised)."""
    new = conv.__class__.__new__(conv.__class__)
    nn.Module.__init__(new)
    new.__dict__.update({k: v for k, v in conv.__dict__.items()
                         if k not in ("_parameters", "_buffers", "_modules")})
    new._parameters = {}
    new._buffers = {}
    new._modules = {}
    new.weight = nn.Parameter(torch.empty_like(conv.weight))
    new.bias = nn.Parameter(torch.empty(conv.out_channels, dtype=conv.weight.dtype,
                                        device=conv.weight.device)) if bias else None
    return new


@torch.no_grad()
def absorb_input_affine(conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor) -> nn.Conv2d:
    """A 1x1 conv equal to ``conv(x * scale + shift)`` (per-channel affine, e.g. a pre-norm BN).

    Exact only for unpadded 1x1 convs (a padded kxk conv would see the shift at the border)."""
    if conv.kernel_size != (1, 1) or conv.groups != 1:
        raise ValueError("only a dense 1x1 conv can absorb its input's affine map exactly")
    fused = _clone_conv(conv, bias=True)
    w = conv.weight
    fused.weight.copy_(w * scale.view(1, -1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels).to(w)
    fused.bias.copy_(bias + w.flatten(1) @ shift)
    return fused
