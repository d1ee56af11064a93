"""Activations by name. Hard-swish/hard-sigmoid are PyTorch's fused kernels."""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError

_ACTS = {
    "relu": lambda inplace: nn.ReLU(inplace=inplace),
    "relu6": lambda inplace: nn.ReLU6(inplace=inplace),
    "silu": lambda inplace: nn.SiLU(inplace=inplace),
    "swish": lambda inplace: nn.SiLU(inplace=inplace),
    "gelu": lambda inplace: nn.GELU(),
    "gelu_tanh": lambda inplace: nn.GELU(approximate="tanh"),
    "hard_swish": lambda inplace: nn.Hardswish(inplace=inplace),
    "hard_sigmoid": lambda inplace: nn.Hardsigmoid(inplace=inplace),
    "sigmoid": lambda inplace: nn.Sigmoid(),
    "identity": lambda inplace: nn.Identity(),
}

ACT_NAMES = tuple(_ACTS)


def get_act(name: str | None, inplace: bool = False) -> nn.Module:
    """Return a fresh activation module for ``name`` (``None`` or ``"identity"``: no-op)."""
    if name is None:
        return nn.Identity()
    try:
        return _ACTS[name](inplace)
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACT_NAMES)}") from None
