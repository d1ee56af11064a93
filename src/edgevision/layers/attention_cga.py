"""Cascaded group attention (EfficientViT-M, Liu et al., 2023) inside local windows.

Each head sees only its own slice of the channels, and the cascade feeds every head's output
into the next head's input, so the heads refine rather than repeat each other:

    feat = x_0;  for head i: feat = attn_i(feat + x_i if i else feat)

A head projects its input with a 1x1 conv-BN to q, k (``key_dim`` each) and v (``dim / heads``),
refines q with a depthwise kxk conv-BN, attends with a learnt bias per relative offset
``(|dy|, |dx|)`` and returns v's width; a ReLU + 1x1 conv-BN projects the concatenated heads.

The attention-bias table holds ``r x r`` offsets per head, ``r`` being the window side at the
training resolution (``min(window, map side)``). **Any input size** (the same rule as timm's
``set_input_size``, so timm's resized models and ours agree): a stage whose shorter side is ``s``
attends in windows of side ``ws = min(window, s)``; the whole map when it is square and no larger
than the window, otherwise the map is zero-padded to whole windows as in the official code. When
``ws != r`` the table is resized bicubically (LeViT's rule). The expanded bias is cached per window
size in eval mode (dropped by ``train()``, by loading weights and by in-place edits), so an
exported graph holds it as a constant.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from .conv import ConvNormAct


def _offset_index(ws: int) -> torch.Tensor:
    """(N, N) index into an ``ws x ws`` offset table for the N = ws^2 positions of a window."""
    pts = list(itertools.product(range(ws), range(ws)))
    idx = [abs(a[0] - b[0]) * ws + abs(a[1] - b[1]) for a in pts for b in pts]
    return torch.tensor(idx, dtype=torch.long).view(len(pts), len(pts))


def _clear_cache(module: nn.Module, incompatible_keys) -> None:
    module._cache.clear()


class CascadedGroupAttention(nn.Module):
    """Attention over a batch of windows ``(B, C, ws, ws)``; the bias comes from :meth:`bias`."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, kernels: tuple[int, ...],
                 bias_resolution: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.key_dim = num_heads, key_dim
        self.val_dim = dim // num_heads
        self.scale = key_dim ** -0.5
        self.qkvs = nn.ModuleList(ConvNormAct(dim // num_heads, 2 * key_dim + self.val_dim, 1, act=None)
                                  for _ in range(num_heads))
        self.dws = nn.ModuleList(ConvNormAct(key_dim, key_dim, kernels[i], groups=key_dim, act=None)
                                 for i in range(num_heads))
        self.proj = nn.Sequential(nn.ReLU(), ConvNormAct(self.val_dim * num_heads, dim, 1, act=None))
        self.bias_resolution = bias_resolution
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, bias_resolution ** 2))
        self._cache: dict[tuple, torch.Tensor] = {}
        self.register_load_state_dict_post_hook(_clear_cache)

    def train(self, mode: bool = True):
        if mode:
            self._cache = {}
        return super().train(mode)

    def bias(self, ws: int) -> torch.Tensor:
        """The (heads, ws^2, ws^2) additive attention bias for windows of side ``ws``."""
        p = self.attention_biases
        key = (ws, p.device, p.dtype, p._version)  # _version: in-place edits invalidate the entry
        if not self.training and key in self._cache:
            return self._cache[key]
        table = self.attention_biases
        r = self.bias_resolution
        if ws != r:
            table = F.interpolate(table.float().view(1, self.num_heads, r, r), size=(ws, ws),
                                  mode="bicubic", antialias=True)
            table = table.view(self.num_heads, ws * ws).to(self.attention_biases.dtype)
        out = table[:, _offset_index(ws).to(table.device)]
        if not self.training:
            self._cache = {key: out.detach()}
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        bias = self.bias(int(h))  # int: a traced size would miss the cache
        chunks = x.chunk(self.num_heads, dim=1)
        kd, vd = self.key_dim, self.val_dim
        outs, feat = [], chunks[0]
        for i, (qkv, dw) in enumerate(zip(self.qkvs, self.dws)):
            if i:
                feat = feat + chunks[i]
            q, k, v = qkv(feat).split([kd, kd, vd], dim=1)
            q = dw(q)
            # bias + scale * (q^T k) in one batched GEMM (B, N, kd) x (B, kd, N)
            attn = torch.baddbmm(bias[i], q.flatten(2).transpose(1, 2), k.flatten(2), alpha=self.scale)
            attn = attn.softmax(dim=-1)
            feat = (v.flatten(2) @ attn.transpose(1, 2)).view(b, vd, h, w)
            outs.append(feat)
        return self.proj(torch.cat(outs, 1))


class LocalWindowAttention(nn.Module):
    """Partition the map into windows (rule in the module docstring), attend, merge back."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, kernels: tuple[int, ...],
                 window: int, bias_resolution: int):
        super().__init__()
        self.window = window
        self.attn = CascadedGroupAttention(dim, key_dim, num_heads, kernels, bias_resolution)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        ws = min(self.window, h, w)
        if h == ws and w == ws:
            return self.attn(x)
        pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
        x = F.pad(x, (0, pad_r, 0, pad_b))
        nh, nw = (h + pad_b) // ws, (w + pad_r) // ws
        x = x.view(b, c, nh, ws, nw, ws).permute(0, 2, 4, 1, 3, 5).reshape(b * nh * nw, c, ws, ws)
        x = self.attn(x)
        x = x.view(b, nh, nw, c, ws, ws).permute(0, 3, 1, 4, 2, 5).reshape(b, c, nh * ws, nw * ws)
        return x[:, :, :h, :w]
