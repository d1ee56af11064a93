"""Attention and transformer layers of MobileViT v1 and v2.

Two token layouts, chosen for CPU speed in each version:

- **v1** (:class:`TransformerLayer`): a plain pre-norm ViT layer on tokens ``(B, N, C)``:
  LayerNorm -> multi-head self-attention (``F.scaled_dot_product_attention``) -> residual,
  LayerNorm -> MLP -> residual. Quadratic in the number of tokens ``N``.
- **v2** (:class:`LinearTransformerLayer`): *separable* self-attention, linear in ``N``, on an
  unfolded map ``(B, C, P, N)`` (``P`` pixels per patch, ``N`` patches) with 1x1 convolutions,
  so no transpose is needed between the convolutional and the attention parts. The map stays
  NCHW-contiguous even in channels-last networks (PyTorch's channels-last GroupNorm kernel loses
  precision: ~1e-5 relative errors where the NCHW one has ~1e-6). The norm is
  :class:`GroupNorm1` (one group: statistics over ``C, P, N`` of each sample, per-channel affine),
  as in the official model.

Separable self-attention (MobileViTv2 paper, arXiv 2206.02680), for each pixel position ``p``::

    s = softmax_N(W_q x + b_q)                    # one context score per patch
    c = sum_N s * (W_k x + b_k)                   # context vector (d,)
    y = W_o (relu(W_v x + b_v) * c) + b_o

(``c`` could be computed as ``W_k (sum_N s x) + b_k`` without the key map, ~5 % fewer MACs, but
measured no faster at batch 1 on CPU and it would make the MAC count differ from the reference
figures, so the keys are projected as in the paper.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .act import get_act
from .drop import DropPath

__all__ = ["GroupNorm1", "conv1x1", "Mlp", "MultiHeadSelfAttention", "TransformerLayer",
           "SeparableSelfAttention", "LinearTransformerLayer"]


def _drop_path(p: float) -> nn.Module:
    return DropPath(p) if p > 0 else nn.Identity()


class GroupNorm1(nn.GroupNorm):
    """GroupNorm with a single group: normalises each sample over all of ``(C, *)``, then a
    per-channel scale and shift (MobileViTv2's "layer norm" for ``(B, C, P, N)`` maps)."""

    def __init__(self, num_channels: int, eps: float = 1e-5):
        super().__init__(1, num_channels, eps=eps)


def conv1x1(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a 1x1 conv, computed in the layout of ``x``. A channels-last network also
    gives its (O, I, 1, 1) weights NHWC strides, which would make PyTorch copy every NCHW token map
    to NHWC before the product; the re-strided view of the weight avoids that."""
    w = conv.weight
    return F.conv2d(x, w.view(w.shape[0], -1)[:, :, None, None], conv.bias)


class Mlp(nn.Module):
    """fc1 -> act -> dropout -> fc2; Linear layers on ``(..., C)`` tokens or, with ``conv=True``,
    1x1 convolutions on ``(B, C, *, *)`` maps."""

    def __init__(self, dim: int, hidden: int, act: str = "silu", drop: float = 0.0,
                 conv: bool = False):
        super().__init__()
        self.conv = conv
        layer = (lambda i, o: nn.Conv2d(i, o, 1)) if conv else nn.Linear
        self.fc1 = layer(dim, hidden)
        self.act = get_act(act, inplace=True)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()
        self.fc2 = layer(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv:
            return conv1x1(self.fc2, self.drop(self.act(conv1x1(self.fc1, x))))
        return self.fc2(self.drop(self.act(self.fc1(x))))


class MultiHeadSelfAttention(nn.Module):
    """Standard multi-head self-attention on tokens ``(B, N, C)`` with a fused qkv projection."""

    def __init__(self, dim: int, num_heads: int = 4, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"attention width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, n, c = x.shape  # batch stays -1 so exported graphs keep a dynamic batch
        q, k, v = self.qkv(x).view(-1, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        x = x.transpose(1, 2).reshape(-1, n, c)
        return self.proj_drop(self.proj(x))


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer (MobileViT v1): MHSA and MLP residual branches on ``(B, N, C)``."""

    def __init__(self, dim: int, num_heads: int = 4, mlp_ratio: float = 2.0, act: str = "silu",
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 norm_eps: float = 1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = MultiHeadSelfAttention(dim, num_heads, attn_drop=attn_drop, proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act, drop)
        self.drop_path = _drop_path(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SeparableSelfAttention(nn.Module):
    """Separable self-attention (MobileViTv2) on ``(B, C, P, N)`` maps; linear in ``N``.

    ``qkv_proj`` is one 1x1 conv with ``1 + 2C`` outputs: query score, keys, values."""

    def __init__(self, dim: int, attn_drop: float = 0.0, proj_drop: float = 0.0, bias: bool = True):
        super().__init__()
        self.dim = dim
        self.qkv_proj = nn.Conv2d(dim, 1 + 2 * dim, 1, bias=bias)
        self.attn_drop = nn.Dropout(attn_drop) if attn_drop > 0 else nn.Identity()
        self.out_proj = nn.Conv2d(dim, dim, 1, bias=bias)
        self.out_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.dim
        q, k, v = conv1x1(self.qkv_proj, x).split((1, d, d), dim=1)
        scores = self.attn_drop(q.softmax(dim=-1))  # (B, 1, P, N): one score per patch
        context = (k * scores).sum(-1, keepdim=True)  # (B, d, P, 1): score-weighted keys
        return self.out_drop(conv1x1(self.out_proj, F.relu(v) * context))


class LinearTransformerLayer(nn.Module):
    """Pre-norm transformer layer with separable self-attention (MobileViT v2), on ``(B, C, P, N)``."""

    def __init__(self, dim: int, mlp_ratio: float = 2.0, act: str = "silu", drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = GroupNorm1(dim)
        self.attn = SeparableSelfAttention(dim, attn_drop=attn_drop, proj_drop=drop)
        self.norm2 = GroupNorm1(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act, drop, conv=True)
        self.drop_path = _drop_path(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))
