"""Shared test helpers. Tests build models with random weights; nothing is downloaded."""
from __future__ import annotations

import pytest
import torch

import edgevision as ev
from edgevision.registry import get_entry, reference_figures

torch.set_num_threads(1)  # pytest-xdist runs one worker per core

ALL_MODELS = ev.list_models()
# Models whose full-resolution checks are too heavy for the default suite (marked slow there).
HEAVY_MACS_M = 3000


def is_heavy(name: str) -> bool:
    ref = reference_figures().get(name)
    return ref is not None and ref.macs_millions > HEAVY_MACS_M


def heavy_param(name: str):
    return pytest.param(name, marks=pytest.mark.slow) if is_heavy(name) else name


def small_size(name: str) -> int:
    """A small resolution every model takes (multiple of 32 so patch models need no resizing)."""
    return max(64, get_entry(name).input_config.min_size)


@torch.no_grad()
def randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm non-trivial statistics and affine params (fresh BN is the identity
    and would hide folding/conversion bugs)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            if m.affine:
                m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model
