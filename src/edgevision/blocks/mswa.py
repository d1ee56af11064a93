"""The multi-scale window attention block (edgevision's own design, see layers/attention_window).

``x = x + drop_path(attn(bn1(x)))`` then ``x = x + drop_path(ffn(bn2(x)))``: a pre-norm
transformer block with BatchNorm instead of LayerNorm, so that both norms fold into the 1x1 convs
that follow them (:meth:`MSWABlock.reparameterize`) and the deployed block has no normalisation
op left.
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers import DropPath
from ..layers.attention_window import LightweightFFN, MultiScaleWindowAttention
from ..layers.reparam import bn_scale_shift


class MSWABlock(nn.Module):
    has_skip = True  # residual branches (training's zero-init scales their last BN to 0)

    def __init__(self, dim: int, num_heads: int, windows: tuple[int, ...] = (3, 7, 0),
                 ffn_expand: float = 2.0, act: str = "hard_swish", drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = MultiScaleWindowAttention(dim, num_heads, windows)
        self.norm2 = nn.BatchNorm2d(dim)
        self.ffn = LightweightFFN(dim, ffn_expand, act)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.ffn(self.norm2(x)))

    def reparameterize(self) -> nn.Module:
        for norm, branch in (("norm1", self.attn), ("norm2", self.ffn)):
            bn = getattr(self, norm)
            if isinstance(bn, nn.BatchNorm2d):
                branch.absorb_input_affine(*bn_scale_shift(bn))
                setattr(self, norm, nn.Identity())
        return self
