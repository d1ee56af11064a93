"""The reparameterization walker (protocol in docs/design.md).

Modules that can be simplified for inference implement ``reparameterize(self) -> nn.Module``
and return their replacement (possibly themselves, changed). The walker visits the tree
top-down — a parent sees its raw children (a RepVGG block needs its branches' BNs) — replaces,
and then descends into the replacement.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import ConfigError, EdgeVisionError


class ReparamError(EdgeVisionError):
    """The reparameterized model does not compute what the original did."""


def _walk(module: nn.Module) -> int:
    count = 0
    for name, child in list(module.named_children()):
        if hasattr(child, "reparameterize") and callable(child.reparameterize):
            new = child.reparameterize()
            if new is not child:
                setattr(module, name, new)
            count += 1
            child = new
        count += _walk(child)
    return count


def _outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    y = model(x)
    return list(y) if isinstance(y, (list, tuple)) else [y]


def reparameterize(model: nn.Module, verify: bool = True, rtol: float = 1e-4,
                   input_size: tuple[int, int] | None = None, seed: int = 0) -> nn.Module:
    """Return an inference-only copy of ``model`` with BNs folded and multi-branch blocks merged.

    The given model is left untouched (so a failure never leaves a half-converted model). With
    ``verify`` the copy's outputs are compared with the original's on a random input: the max
    abs difference must stay within ``rtol`` x the largest output magnitude, else
    :class:`ReparamError`. Idempotent: a reparameterized model comes back unchanged.
    """
    if model.training:
        raise ConfigError("reparameterize needs a model in eval mode (BN statistics are folded); "
                          "call model.eval() first")
    new = copy.deepcopy(model)
    with torch.no_grad():
        _walk(new)
    new.eval()
    new.reparameterized = True
    if verify:
        cfg = getattr(model, "input_config", None)
        if input_size is None:
            input_size = tuple(cfg.input_size[1:]) if cfg is not None else (224, 224)
        chans = cfg.input_size[0] if cfg is not None else 3
        g = torch.Generator().manual_seed(seed)
        device = next(model.parameters()).device
        x = torch.randn(2, chans, *input_size, generator=g).to(device)
        with torch.no_grad():
            ref, out = _outputs(model, x), _outputs(new, x)
        for i, (a, b) in enumerate(zip(ref, out)):
            scale = a.abs().max().item() or 1.0
            err = (a - b).abs().max().item()
            if not err <= rtol * scale:
                raise ReparamError(
                    f"reparameterized {getattr(model, 'model_name', type(model).__name__)} differs "
                    f"from the original: output {i} max abs diff {err:.3g} > {rtol:g} x {scale:.3g}. "
                    f"This is a bug; please report it (the original model is unchanged)")
    return new
