"""MobileViT blocks: local convolutions + a transformer over unfolded patches.

Both blocks model local structure with a kxk conv, project to the transformer width with a 1x1
conv, *unfold* the map into non-overlapping ``p x p`` patches (the transformer attends across
patches, separately for each of the ``p*p`` pixel positions inside a patch), *fold* back and
project to the output width.

- :class:`MobileViTBlock` (v1): full kxk conv, multi-head self-attention layers, then the block
  input is concatenated with the result and fused by a kxk conv.
- :class:`MobileViTV2Block` (v2): depthwise kxk conv, separable (linear) self-attention layers,
  linear 1x1 projection, no fusion.

**Sizes that are not a multiple of the patch size.** The map is resized (bilinear) up to the
next multiple of the patch size for the unfold/fold and resized back to its own size afterwards,
so every block keeps its input's spatial size and feature maps follow ``ceil(input / stride)``.
v1 resizes the projected map (``align_corners=False``) exactly as timm/ml-cvnets do. v2 resizes
the block input (``align_corners=True``) as timm/ml-cvnets do, but those keep the rounded-up size
(e.g. a 7x7 map leaves the block as 8x8); here it is resized back before the final (per-pixel,
affine) projection unless ``keep_rounded_size=True``, which reproduces timm bit for bit. When
every map is a multiple of the patch size (inputs that are multiples of 64 for the registered
models), both rules give the same numbers.

The unfold and fold are each a single copy, and the folded map has the memory layout (NCHW or
NHWC) of the block input.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvNormAct
from ..layers.attention_mobilevit import GroupNorm1, LinearTransformerLayer, TransformerLayer


def _patch_grid(h: int, w: int, p: int) -> tuple[int, int]:
    """Patches per column/row after rounding the map up to a multiple of ``p``."""
    return math.ceil(h / p), math.ceil(w / p)


def _is_nhwc(x: torch.Tensor) -> bool:
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def unfold_patches(x: torch.Tensor, p: int, tokens_last: bool) -> torch.Tensor:
    """(B, C, H, W) map, H and W multiples of ``p`` -> contiguous ``(B, P, N, C)`` tokens
    (``tokens_last``) or ``(B, C, P, N)``, with ``P = p*p`` pixel positions and ``N`` patches.
    One copy; from an NHWC map the ``(B, P, N, C)`` copy moves whole channel vectors."""
    _, c, h, w = x.shape
    n = (h // p) * (w // p)
    # the batch dimension is always -1, so traced/exported graphs keep a dynamic batch
    x = x.reshape(-1, c, h // p, p, w // p, p)  # (B, C, nh, pr, nw, pc): a view in either layout
    if tokens_last:
        return x.permute(0, 3, 5, 2, 4, 1).reshape(-1, p * p, n, c)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(-1, c, p * p, n)


def fold_patches(t: torch.Tensor, p: int, nh: int, nw: int, tokens_last: bool,
                 nhwc: bool) -> torch.Tensor:
    """Inverse of :func:`unfold_patches`: ``(B, P, N, C)`` / ``(B, C, P, N)`` tokens ->
    (B, C, nh*p, nw*p) map, written in NHWC memory if ``nhwc`` else NCHW (one copy)."""
    if tokens_last:
        c = t.shape[-1]
        t = t.reshape(-1, p, p, nh, nw, c)  # (B, pr, pc, nh, nw, C)
        order_nhwc, order_nchw = (0, 3, 1, 4, 2, 5), (0, 5, 3, 1, 4, 2)
    else:
        c = t.shape[1]
        t = t.reshape(-1, c, p, p, nh, nw)  # (B, C, pr, pc, nh, nw)
        order_nhwc, order_nchw = (0, 4, 2, 5, 3, 1), (0, 1, 4, 2, 5, 3)
    if nhwc:
        return t.permute(order_nhwc).reshape(-1, nh * p, nw * p, c).permute(0, 3, 1, 2)
    return t.permute(order_nchw).reshape(-1, c, nh * p, nw * p)


class MobileViTBlock(nn.Module):
    """MobileViT v1 block: kxk conv -> 1x1 -> unfold -> MHSA layers -> norm -> fold -> 1x1
    conv -> concat with the input -> kxk fusion conv."""

    def __init__(self, in_chs: int, out_chs: int, dim: int, depth: int, patch_size: int = 2,
                 kernel: int = 3, num_heads: int = 4, mlp_ratio: float = 2.0, act: str = "silu",
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 fusion: bool = True, bn_eps: float = 1e-5):
        super().__init__()
        self.patch_size = patch_size
        self.conv_kxk = ConvNormAct(in_chs, in_chs, kernel, act=act, bn_eps=bn_eps)
        self.conv_1x1 = nn.Conv2d(in_chs, dim, 1, bias=False)
        self.transformer = nn.Sequential(*[
            TransformerLayer(dim, num_heads, mlp_ratio, act, drop, attn_drop, drop_path)
            for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.conv_proj = ConvNormAct(dim, out_chs, 1, act=act, bn_eps=bn_eps)
        self.conv_fusion = ConvNormAct(in_chs + out_chs, out_chs, kernel, act=act, bn_eps=bn_eps) \
            if fusion else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_1x1(self.conv_kxk(x))
        b, _, h, w = x.shape
        p = self.patch_size
        nh, nw = _patch_grid(h, w, p)
        resized = nh * p != h or nw * p != w
        if resized:
            x = F.interpolate(x, size=(nh * p, nw * p), mode="bilinear", align_corners=False)
        # one sequence of N patches per pixel position: (B*P, N, C)
        t = unfold_patches(x, p, tokens_last=True).flatten(0, 1)
        t = self.norm(self.transformer(t))
        x = fold_patches(t.unflatten(0, (-1, p * p)), p, nh, nw, tokens_last=True, nhwc=_is_nhwc(x))
        if resized:
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        x = self.conv_proj(x)
        if self.conv_fusion is None:
            return x
        return self.conv_fusion(torch.cat((shortcut, x), dim=1))


class MobileViTV2Block(nn.Module):
    """MobileViT v2 block: depthwise kxk conv -> 1x1 -> unfold -> separable-attention layers ->
    norm -> fold -> linear 1x1 projection."""

    def __init__(self, in_chs: int, out_chs: int, dim: int, depth: int, patch_size: int = 2,
                 kernel: int = 3, mlp_ratio: float = 2.0, act: str = "silu", drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, keep_rounded_size: bool = False,
                 bn_eps: float = 1e-5):
        super().__init__()
        self.patch_size = patch_size
        self.keep_rounded_size = keep_rounded_size
        self.conv_kxk = ConvNormAct(in_chs, in_chs, kernel, groups=in_chs, act=act, bn_eps=bn_eps)
        self.conv_1x1 = nn.Conv2d(in_chs, dim, 1, bias=False)
        self.transformer = nn.Sequential(*[
            LinearTransformerLayer(dim, mlp_ratio, act, drop, attn_drop, drop_path)
            for _ in range(depth)])
        self.norm = GroupNorm1(dim)
        self.conv_proj = ConvNormAct(dim, out_chs, 1, apply_act=False, bn_eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        p = self.patch_size
        nh, nw = _patch_grid(h, w, p)
        resized = nh * p != h or nw * p != w
        if resized:
            x = F.interpolate(x, size=(nh * p, nw * p), mode="bilinear", align_corners=True)
        x = self.conv_1x1(self.conv_kxk(x))
        t = unfold_patches(x, p, tokens_last=False)  # (B, C, P, N), NCHW-contiguous
        t = self.norm(self.transformer(t))
        x = fold_patches(t, p, nh, nw, tokens_last=False, nhwc=_is_nhwc(x))
        if resized and not self.keep_rounded_size:
            # resizing commutes with the per-pixel affine projection (in eval mode): resize
            # the narrower map
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=True)
        return self.conv_proj(x)
