"""Shared test helpers. Tests build models with random weights; nothing is downloaded."""
from __future__ import annotations

import os

import pytest
import torch

import edgevision as ev
from edgevision.optimize.inputs import realistic_bn
from edgevision.registry import get_entry, reference_figures

torch.set_num_threads(1)  # pytest-xdist runs one worker per core
# no test may fetch weights: published ones come from installed packages or caches the tests lay out
os.environ["EDGEVISION_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

ALL_MODELS = ev.list_models()
# Models whose full-resolution checks are too heavy for the default suite (marked slow there).
HEAVY_MACS_M = 3000


# Models so large (over 100 M parameters) that building two copies of them, as the timm parity
# checks do, belongs to the slow suite even at a small input size.
GIANT_PARAMS = 100_000_000


def is_giant(name: str) -> bool:
    ref = reference_figures().get(name)
    return ref is not None and ref.params > GIANT_PARAMS


def is_heavy(name: str) -> bool:
    ref = reference_figures().get(name)
    return ref is not None and ref.macs_millions > HEAVY_MACS_M


def smallest_per_family(prefer=()) -> dict[str, str]:
    """family -> its model with the fewest reference MACs (the cheapest representative); on a tie
    (one network, two paddings) a name in ``prefer``, then the first by name."""
    best: dict[str, str] = {}
    for n in sorted(ALL_MODELS, key=lambda n: (getattr(reference_figures().get(n), "macs_millions", 1e9),
                                               n not in prefer, n)):
        best.setdefault(get_entry(n).family, n)
    return best


# spec fields that scale or retune one architecture without changing its code path
_SCALING_FIELDS = {"width", "depth", "bn_eps", "norm_eps", "fix_stem"}


def _architecture_key(name: str) -> tuple:
    import dataclasses
    e = get_entry(name)
    fields = {f.name: getattr(e.spec, f.name) for f in dataclasses.fields(e.spec)
              if f.name not in _SCALING_FIELDS}
    return e.family, type(e.spec).__name__, repr(sorted(fields.items()))


def _architecture_representatives() -> set[str]:
    """The cheapest model of each architecture up to width/depth scaling and BN epsilon (B0 for
    B0-B7, one MobileNetV2 width, ...): the registry-wide structural checks run on these in the
    default suite and on every model in the slow one."""
    best: dict[tuple, str] = {}
    for n in sorted(ALL_MODELS, key=lambda n: (getattr(reference_figures().get(n), "macs_millions", 1e9), n)):
        best.setdefault(_architecture_key(n), n)
    return set(best.values())


REPRESENTATIVES = _architecture_representatives()


def registry_param(name: str):
    """``name`` for a registry-wide check: in the default suite when it is a cheap model and the
    representative of its architecture, else under the slow marker."""
    slow = is_heavy(name) or name not in REPRESENTATIVES
    return pytest.param(name, marks=pytest.mark.slow) if slow else name


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


# families whose blocks stack identities inside BN-normalised branches (see realistic_bn)
IDENTITY_STACKING_FAMILIES = {"repvit"}
# models whose activations random stats blow up the same way (the EfficientNetV2-S body: ~3x per
# stage to ~1e4, where fp32 and fp64 outputs of the same net differ by 10 %)
EXPLODING_MODELS = {"efficientnetv2_rw_t", "efficientnetv2_rw_s", "efficientnetv2_rw_m", "tf_efficientnetv2_s"}


def nontrivial_bn(model: torch.nn.Module, name: str, size: tuple[int, int]) -> torch.nn.Module:
    """Non-identity BN statistics for reparameterization/export checks: random ones
    (:func:`randomize_bn`) except where those make activations explode (:func:`realistic_bn`).
    Measured stats are not used everywhere because on random SiLU/SE networks (EfficientNet) they
    put the net at the edge of chaos, where fp32 round-off alone is amplified past 1e-4."""
    if get_entry(name).family in IDENTITY_STACKING_FAMILIES or name in EXPLODING_MODELS:
        return realistic_bn(model, size)
    return randomize_bn(model)


def train_config(monkeypatch, *argv):
    """The TrainConfig that `edgevision train ARGV` builds (training itself is replaced)."""
    import edgevision.train as T
    from edgevision.cli import main
    seen = []
    monkeypatch.setattr(T, "train", lambda cfg: seen.append(cfg) or {})
    assert main(["train", *argv]) == 0
    return seen[0]
