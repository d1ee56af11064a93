"""Multi-scale window attention and the lightweight FFN (edgevision's own design).

:class:`MultiScaleWindowAttention` splits its heads into groups that attend at different ranges,
in parallel, and fuses them with one 1x1 projection:

- a group per window size (3x3 and 7x7 by default) attends within non-overlapping windows;
- a group with window 0 attends globally over the whole map.

Fine windows capture local texture cheaply (9 keys per query), coarse ones object parts, the
global group the layout; a single projection lets every output channel mix all three. Cost per
query is ``9 + 49 + HW`` keys instead of ``3 HW`` for three global groups.

**Any size.** A map whose side is not a multiple of the window is zero-padded up to one and the
padded keys are masked out of the softmax, so every query attends to real pixels only; a map no
larger than the window is a single window. Queries at padded positions are computed and cropped.

:class:`LightweightFFN` is the channel mixer: 1x1 expand (x2) -> 3x3 depthwise -> 1x1 project, all
conv-BN (the depthwise conv gives the block positional information, so no position embedding is
needed).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .conv import ConvNormAct
from .reparam import absorb_input_affine


def _window_mask(h: int, w: int, wh: int, ww: int, device) -> torch.Tensor | None:
    """(windows, 1, 1, wh*ww) bool mask of real (not padded) keys; None without padding."""
    hp, wp = math.ceil(h / wh) * wh, math.ceil(w / ww) * ww
    if (hp, wp) == (h, w):
        return None
    valid = torch.zeros(hp, wp, dtype=torch.bool, device=device)
    valid[:h, :w] = True
    valid = valid.view(hp // wh, wh, wp // ww, ww).permute(0, 2, 1, 3).reshape(-1, 1, 1, wh * ww)
    return valid


class MultiScaleWindowAttention(nn.Module):
    """Heads split over ``windows`` (0 = global), attention per group, one 1x1 fusion.

    ``forward`` takes and returns (N, C, H, W); ``qkv`` is a 1x1 conv (so a preceding per-channel
    affine folds into it: :meth:`absorb_input_affine`), ``proj`` a 1x1 conv-BN.
    """

    def __init__(self, dim: int, num_heads: int, windows: tuple[int, ...] = (3, 7, 0)):
        super().__init__()
        if num_heads % len(windows) or dim % num_heads:
            raise ValueError(f"{num_heads} heads must split evenly over the {len(windows)} window "
                             f"sizes and divide dim {dim}")
        self.windows = tuple(windows)
        self.heads_per_group = num_heads // len(windows)
        self.head_dim = dim // num_heads
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=True)
        self.proj = ConvNormAct(dim, dim, 1, act=None)

    def _group(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
        """Attention of one head group; q/k/v and the result are (N, H, W, heads*head_dim)."""
        n, h, w, c = q.shape
        hg, d = self.heads_per_group, self.head_dim
        wh, ww = (h, w) if window == 0 else (min(window, h), min(window, w))
        ph, pw = -h % wh, -w % ww
        nh, nw = (h + ph) // wh, (w + pw) // ww

        def windows(t: torch.Tensor) -> torch.Tensor:  # -> (N, windows, heads, wh*ww, d)
            if ph or pw:
                t = F.pad(t, (0, 0, 0, pw, 0, ph))
            t = t.reshape(n, nh, wh, nw, ww, hg, d).permute(0, 1, 3, 5, 2, 4, 6)
            return t.reshape(n, nh * nw, hg, wh * ww, d)

        mask = _window_mask(h, w, wh, ww, q.device)
        o = F.scaled_dot_product_attention(windows(q), windows(k), windows(v), attn_mask=mask)
        o = o.view(n, nh, nw, hg, wh, ww, d).permute(0, 1, 4, 2, 5, 3, 6).reshape(n, nh * wh, nw * ww, c)
        return o[:, :h, :w] if ph or pw else o

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x).permute(0, 2, 3, 1)  # (N, H, W, 3C): a view for channels-last input
        q, k, v = qkv.chunk(3, dim=-1)
        g = self.heads_per_group * self.head_dim
        outs = [self._group(q[..., i * g:(i + 1) * g], k[..., i * g:(i + 1) * g],
                            v[..., i * g:(i + 1) * g], win) for i, win in enumerate(self.windows)]
        return self.proj(torch.cat(outs, dim=-1).permute(0, 3, 1, 2))

    @torch.no_grad()
    def absorb_input_affine(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        """Make ``self(x)`` compute what ``self(x * scale + shift)`` did."""
        self.qkv = absorb_input_affine(self.qkv, scale, shift)


class LightweightFFN(nn.Module):
    """1x1 conv-BN-act (x ``expand``) -> 3x3 depthwise conv-BN-act -> 1x1 conv-BN."""

    def __init__(self, dim: int, expand: float = 2.0, act: str = "hard_swish"):
        super().__init__()
        hidden = int(dim * expand)
        self.fc1 = ConvNormAct(dim, hidden, 1, act=act)
        self.dw = ConvNormAct(hidden, hidden, 3, groups=hidden, act=act)
        self.fc2 = ConvNormAct(hidden, dim, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dw(self.fc1(x)))

    @torch.no_grad()
    def absorb_input_affine(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        self.fc1.conv = absorb_input_affine(self.fc1.conv, scale, shift)
