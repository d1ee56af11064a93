"""Universal Inverted Bottleneck (MobileNetV4).

One block with optional depthwise convs at three places; which ones are present gives its forms:

=================  ===========  =========  ===========
form               dw start     dw mid     (spec)
=================  ===========  =========  ===========
IB (inverted)      -            kxk        start=0, mid=k
ExtraDW            kxk          kxk        start=k, mid=k
ConvNext-like      kxk          -          start=k, mid=0
FFN                -            -          start=0, mid=0
=================  ===========  =========  ===========

The stride sits on the first depthwise conv that exists after the start one (mid, else start);
``aa`` anti-aliases it when that is the start or mid one (the end one never strides with it).

:class:`MobileAttentionBlock` is the hybrid models' attention block (mobile multi-query attention).
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers import ConvNormAct
from ..layers.attention_mqa import MultiQueryAttention2d
from .mbconv import _Residual


class LayerScale2d(nn.Module):
    """Per-channel learnable scale of a residual branch (NCHW)."""

    def __init__(self, dim: int, init_value: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x):
        return x * self.gamma.view(1, -1, 1, 1)

    @torch.no_grad()
    def fold_into(self, conv: nn.Conv2d) -> nn.Identity:
        """Scale the output channels of ``conv`` (the branch's last op) by gamma, so the branch
        computes the scaled result itself; returns the identity that replaces this scale."""
        conv.weight.mul_(self.gamma.view(-1, 1, 1, 1))
        if conv.bias is not None:
            conv.bias.mul_(self.gamma)
        return nn.Identity()


class UniversalInvertedResidual(_Residual):
    def __init__(self, in_chs, out_chs, mid_chs, kernel=3, stride=1, act="relu", padding="",
                 bn_eps=1e-5, skip=None, drop_path=0.0, start_kernel=0, end_kernel=0,
                 layer_scale: float | None = 1e-5, aa="", **_unused):
        super().__init__()
        if stride > 1 and not (start_kernel or kernel or end_kernel):
            raise ValueError("a strided UIB needs at least one depthwise conv")
        cna = dict(padding=padding, bn_eps=bn_eps, act=act)
        self.dw_start = ConvNormAct(in_chs, in_chs, start_kernel, stride if not kernel else 1, groups=in_chs,
                                    apply_act=False, aa=aa, **cna) if start_kernel else nn.Identity()
        self.pw_exp = ConvNormAct(in_chs, mid_chs, 1, **cna)
        self.dw_mid = ConvNormAct(mid_chs, mid_chs, kernel, stride, groups=mid_chs, aa=aa, **cna) \
            if kernel else nn.Identity()
        self.pw_proj = ConvNormAct(mid_chs, out_chs, 1, apply_act=False, **cna)
        end_stride = stride if not (start_kernel or kernel) else 1
        self.dw_end = ConvNormAct(out_chs, out_chs, end_kernel, end_stride, groups=out_chs,
                                  apply_act=False, **cna) if end_kernel else nn.Identity()
        self.layer_scale = LayerScale2d(out_chs, layer_scale) if layer_scale is not None else nn.Identity()
        self._init_skip(in_chs, out_chs, stride, skip, drop_path)

    def forward(self, x):
        y = self.dw_end(self.pw_proj(self.dw_mid(self.pw_exp(self.dw_start(x)))))
        return self.residual(self.layer_scale(y), x)

    def reparameterize(self) -> nn.Module:
        """The layer scale folded into the branch's last conv (its BN folded first; no
        activation follows it), so no separate multiply is left."""
        if isinstance(self.layer_scale, LayerScale2d):
            last = self.dw_end if isinstance(self.dw_end, ConvNormAct) else self.pw_proj
            last.reparameterize()
            self.layer_scale = self.layer_scale.fold_into(last.conv)
        return self


class MobileAttentionBlock(_Residual):
    """MobileNetV4 hybrid attention block: ``x + layer_scale(mqa(bn(x)))``.

    The pre-norm BN is folded into the attention's projections by :meth:`reparameterize`.
    """

    def __init__(self, in_chs, out_chs, kernel=3, stride=1, padding="", bn_eps=1e-5, skip=None,
                 drop_path=0.0, heads=4, key_dim=64, kv_stride=1, layer_scale: float | None = 1e-5,
                 **_unused):
        super().__init__()
        if stride != 1:
            raise ValueError("MobileNetV4 attention blocks do not stride")
        self.norm = nn.BatchNorm2d(in_chs, eps=bn_eps)
        self.attn = MultiQueryAttention2d(in_chs, out_chs, heads, key_dim, key_dim, kv_stride, kernel,
                                          padding, bn_eps)
        self.layer_scale = LayerScale2d(out_chs, layer_scale) if layer_scale is not None else nn.Identity()
        self._init_skip(in_chs, out_chs, stride, skip, drop_path)

    def forward(self, x):
        return self.residual(self.layer_scale(self.attn(self.norm(x))), x)

    def reparameterize(self) -> nn.Module:
        """The pre-norm BN folded into the projections, the layer scale into the output one."""
        if isinstance(self.norm, nn.BatchNorm2d):
            from ..layers.reparam import bn_scale_shift
            self.attn.absorb_input_affine(*bn_scale_shift(self.norm))
            self.norm = nn.Identity()
        if isinstance(self.layer_scale, LayerScale2d):
            self.layer_scale = self.layer_scale.fold_into(self.attn.out_proj)
        return self
