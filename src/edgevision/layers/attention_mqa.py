"""Mobile multi-query attention (MobileNetV4 hybrid), for 2-D feature maps.

Multi-query attention: every head has its own query projection, but all heads share one key and
one value projection (``key_dim`` / ``value_dim`` channels), which cuts the memory traffic that
dominates attention on mobile accelerators. Optionally the keys and values are computed on a
spatially reduced map (a stride-``kv_stride`` depthwise conv + BN in front of each projection),
so the attention matrix is ``HW x HW / kv_stride**2``.

Projections are 1x1 convs; the attention itself is one fused
``F.scaled_dot_product_attention`` call. As the heads share the key and value, the queries of all
heads are one head of ``HW * heads`` rows (a row's softmax only sees its own scores): no broadcast
of the key/value over the heads (which some runtimes cannot run, e.g. LiteRT's BROADCAST_TO) and
no transposes. The reshapes are views when the input is channels-last (the MBNet families run
NHWC): a ``(N, H, W, C)`` tensor already is ``(N, HW * heads, key_dim)``.

For inference, :meth:`MultiQueryAttention2d.absorb_input_affine` folds a per-channel affine map
of the input (the block's pre-norm BatchNorm) into the 1x1 projections; where the keys/values
pass a padded depthwise conv first (which would see the affine's shift at the zero-padded
border) the affine is kept as a cheap 1x1 depthwise conv on that path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conv import ConvNormAct
from .reparam import absorb_input_affine


class MultiQueryAttention2d(nn.Module):
    def __init__(self, dim: int, dim_out: int, num_heads: int, key_dim: int, value_dim: int,
                 kv_stride: int = 1, dw_kernel: int = 3, padding: str = "", bn_eps: float = 1e-5):
        super().__init__()
        self.num_heads, self.key_dim, self.value_dim = num_heads, key_dim, value_dim
        self.query_proj = nn.Conv2d(dim, num_heads * key_dim, 1, bias=False)
        self.kv_pre = nn.Identity()  # becomes the input affine after reparameterization (see above)
        down = dict(groups=dim, act=None, padding=padding, bn_eps=bn_eps)
        self.key_down = ConvNormAct(dim, dim, dw_kernel, kv_stride, **down) if kv_stride > 1 else nn.Identity()
        self.key_proj = nn.Conv2d(dim, key_dim, 1, bias=False)
        self.value_down = ConvNormAct(dim, dim, dw_kernel, kv_stride, **down) if kv_stride > 1 \
            else nn.Identity()
        self.value_proj = nn.Conv2d(dim, value_dim, 1, bias=False)
        self.out_proj = nn.Conv2d(num_heads * value_dim, dim_out, 1, bias=False)

    @staticmethod
    def _tokens(t: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, HW, C); a view for channels-last tensors."""
        n, c = t.shape[:2]
        return t.permute(0, 2, 3, 1).reshape(n, -1, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        # every (position, head) query row attends to the same keys: one head of HW * heads rows
        q = self._tokens(self.query_proj(x)).reshape(n, 1, h * w * self.num_heads, self.key_dim)
        kv = self.kv_pre(x)
        k = self._tokens(self.key_proj(self.key_down(kv))).unsqueeze(1)  # (N, 1, L, key_dim)
        v = self._tokens(self.value_proj(self.value_down(kv))).unsqueeze(1)
        o = F.scaled_dot_product_attention(q, k, v)  # (N, 1, HW * heads, value_dim)
        o = o.reshape(n, h, w, self.num_heads * self.value_dim).permute(0, 3, 1, 2)
        return self.out_proj(o)

    @torch.no_grad()
    def absorb_input_affine(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        """Make ``self(x)`` compute what ``self(x * scale + shift)`` did (per channel)."""
        fold = lambda conv: absorb_input_affine(conv, scale, shift)  # noqa: E731
        self.query_proj = fold(self.query_proj)
        if isinstance(self.key_down, nn.Identity):
            self.key_proj, self.value_proj = fold(self.key_proj), fold(self.value_proj)
        else:
            c = scale.numel()
            affine = nn.Conv2d(c, c, 1, groups=c, bias=True).to(scale)
            affine.weight.copy_(scale.view(-1, 1, 1, 1))
            affine.bias.copy_(shift)
            self.kv_pre = affine
