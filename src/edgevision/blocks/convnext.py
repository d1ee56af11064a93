"""ConvNeXt (V1, with layer scale) and ConvNeXt V2 (with GRN) blocks.

The block works in NHWC after the depthwise conv: ``x.permute(0, 2, 3, 1)`` is a free view when
the tensor is channels_last in memory (edgevision's default for this family), so LayerNorm and
the two Linear layers run on contiguous rows with no copies; in NCHW memory the permutes cost
one copy each way, as in the reference implementation. The maths is identical either way.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..layers import GRN, DropPath, LayerNorm2d, SimpleNorm, SimpleNorm2d

# norm kind -> (channels-last class, channels-first class)
_NORMS = {"layernorm": (nn.LayerNorm, LayerNorm2d), "simplenorm": (SimpleNorm, SimpleNorm2d)}


def make_norm(kind: str, dim: int, eps: float, channels_first: bool = False) -> nn.Module:
    """The family's norm over ``dim`` channels: ``"layernorm"`` or ``"simplenorm"`` (no centring,
    no bias), on the last axis or (``channels_first``) on the channels of an NCHW tensor."""
    if kind not in _NORMS:
        raise ConfigError(f"unknown ConvNeXt norm {kind!r}; use one of {sorted(_NORMS)}")
    return _NORMS[kind][int(channels_first)](dim, eps=eps)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, mlp_ratio: float = 4.0, ls_init_value: float | None = 1e-6,
                 use_grn: bool = False, drop_path: float = 0.0, kernel_size: int = 7, eps: float = 1e-6,
                 norm: str = "layernorm"):
        super().__init__()
        hidden = int(mlp_ratio * dim)
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=True)
        self.norm = make_norm(norm, dim, eps)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, hidden)
        self.mlp.grn = GRN(hidden) if use_grn else None
        self.mlp.fc2 = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(ls_init_value * torch.ones(dim)) if ls_init_value is not None else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.conv_mlp = False  # set by reparameterize(): run the MLP as 1x1 convs in NCHW

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        """The norm over the last axis of an NHWC view (LayerNorm as the functional op)."""
        n = self.norm
        if isinstance(n, nn.LayerNorm):
            return F.layer_norm(x, n.normalized_shape, n.weight, n.bias, n.eps)
        return n(x)

    def _forward_conv_mlp(self, x: torch.Tensor) -> torch.Tensor:
        """Deploy form: channel LayerNorm + 1x1 convs, the graph exporters and runtimes like
        best (ONNX Runtime/OpenVINO run it without transposes around the matmuls)."""
        shortcut = x
        x = self._norm(self.conv_dw(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = F.gelu(F.conv2d(x, self.mlp.fc1.weight[:, :, None, None], self.mlp.fc1.bias))
        if self.mlp.grn is not None:  # GRN over (H, W) per channel, channels-first
            gx = x.norm(p=2, dim=(2, 3), keepdim=True)
            nx = gx / (gx.mean(dim=1, keepdim=True) + self.mlp.grn.eps)
            x = x + self.mlp.grn.bias.view(1, -1, 1, 1) + self.mlp.grn.weight.view(1, -1, 1, 1) * (x * nx)
        x = F.conv2d(x, self.mlp.fc2.weight[:, :, None, None], self.mlp.fc2.bias)
        if self.gamma is not None:
            x = x * self.gamma.view(1, -1, 1, 1)
        return self.drop_path(x) + shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv_mlp:
            return self._forward_conv_mlp(x)
        shortcut = x
        x = self._norm(self.conv_dw(x).permute(0, 2, 3, 1))  # NHWC view
        x = F.gelu(self.mlp.fc1(x))
        if self.mlp.grn is not None:
            x = self.mlp.grn(x)
        x = self.mlp.fc2(x)
        if self.gamma is not None:
            x = x * self.gamma
        return self.drop_path(x.permute(0, 3, 1, 2)) + shortcut

    @torch.no_grad()
    def reparameterize(self) -> nn.Module:
        """Fold the layer scale into fc2 (one multiply fewer per block) and switch to the 1x1-conv
        form of the MLP; idempotent."""
        if self.gamma is not None:
            self.mlp.fc2.weight.mul_(self.gamma[:, None])
            self.mlp.fc2.bias.mul_(self.gamma)
            self.gamma = None
        self.conv_mlp = True
        return self


class ConvNeXtStage(nn.Module):
    """Optional downsampling (channel norm + 2x2 stride-2 conv), then ``depth`` blocks."""

    def __init__(self, in_chs: int, out_chs: int, depth: int, downsample: bool, drop_paths: list[float],
                 eps: float = 1e-6, norm: str = "layernorm", **block_kwargs):
        super().__init__()
        if downsample:
            self.downsample = nn.Sequential(make_norm(norm, in_chs, eps, channels_first=True),
                                            nn.Conv2d(in_chs, out_chs, 2, 2))
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*[ConvNeXtBlock(out_chs, drop_path=dp, eps=eps, norm=norm, **block_kwargs)
                                      for dp in drop_paths])

    def forward(self, x):
        return self.blocks(self.downsample(x))
