"""Lightweight multi-scale linear attention (LiteMLA, EfficientViT-B by MIT, Cai et al., 2023).

ReLU linear attention replaces softmax: with ``phi = relu``,

    out_n = sum_m (phi(q_n) . phi(k_m)) v_m / sum_m (phi(q_n) . phi(k_m))
          = (V phi(K)^T) phi(q_n) / (sum_m phi(k_m))^T phi(q_n)

so computing ``V K^T`` first (d x d per head) makes the cost linear in the number of tokens.
Multi-scale: q/k/v tokens are also aggregated by a depthwise kxk conv + grouped 1x1 conv per
scale, and every scale contributes its own heads. All tensors stay channel-first
``(B, heads, d, N)``, so no transposes are needed around the matmuls.

The products and the division run in fp32 with autocast disabled: under bf16/fp16 the
denominator (a sum over every token) loses precision or overflows, and the division would turn
that into inf/NaN.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .conv import ConvNormAct


def _no_autocast(device_type: str):
    if device_type == "meta":  # MAC counting on the meta device: autocast does not exist there
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


class LiteMLA(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, head_dim: int = 8, scales: tuple[int, ...] = (5,),
                 eps: float = 1e-5, bn_eps: float = 1e-5):
        super().__init__()
        self.heads = in_chs // head_dim
        self.dim, self.eps = head_dim, eps
        total = self.heads * head_dim
        self.qkv = ConvNormAct(in_chs, 3 * total, 1, act=None, norm=False, bias=False)
        self.aggreg = nn.ModuleList(nn.Sequential(
            nn.Conv2d(3 * total, 3 * total, s, padding=s // 2, groups=3 * total, bias=False),
            nn.Conv2d(3 * total, 3 * total, 1, groups=3 * self.heads, bias=False)) for s in scales)
        self.proj = ConvNormAct(total * (1 + len(scales)), out_chs, 1, act=None, bn_eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        qkv = self.qkv(x)
        qkv = torch.cat([qkv] + [agg(qkv) for agg in self.aggreg], dim=1) if len(self.aggreg) else qkv
        qkv = qkv.view(b, -1, 3 * self.dim, h * w)  # (B, heads x scales, 3d, N)
        with _no_autocast(x.device.type):
            q, k, v = qkv.float().chunk(3, dim=2)
            q, k = F.relu(q), F.relu(k)
            num = (v @ k.transpose(-1, -2)) @ q  # (B, G, d, N)
            den = k.sum(-1, keepdim=True).transpose(-1, -2) @ q  # (B, G, 1, N)
            out = num / (den + self.eps)
        return self.proj(out.to(x.dtype).view(b, -1, h, w))
