"""Model registry: name -> (family, spec, builder, input config, reference figures).

Every model family registers its variants here at import time. Names follow timm's where the
architecture is the same. Reference figures (parameter count, MACs, published top-1) come from
``data/models.csv``, a copy of the project's reference table.
"""
from __future__ import annotations

import csv
import difflib
import fnmatch
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Callable

from .errors import UnknownModelError

__all__ = ["InputConfig", "ModelEntry", "register", "get_entry", "list_models", "list_families",
           "reference_figures"]


@dataclass(frozen=True)
class InputConfig:
    """How images must be prepared for a model (and its weights)."""

    input_size: tuple[int, int, int] = (3, 224, 224)  # (channels, height, width) at the default resolution
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)  # per-channel mean subtracted after scaling to [0, 1]
    std: tuple[float, ...] = (0.229, 0.224, 0.225)  # per-channel std divided by after the mean
    interpolation: str = "bicubic"  # resize filter: "bilinear" or "bicubic"
    crop_pct: float = 0.875  # centre-crop fraction at evaluation (resize to size / crop_pct first)
    min_size: int = 32  # smallest height/width the model accepts

    @property
    def resolution(self) -> int:
        return self.input_size[1]


IMAGENET_INCEPTION = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


@dataclass(frozen=True)
class ReferenceFigures:
    """Published/golden figures for a variant (from data/models.csv)."""

    resolution: int
    params: int
    macs_millions: float
    top1: float | None
    top1_source: str


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    spec: Any  # frozen dataclass describing the architecture
    builder: Callable[..., Any]  # builder(spec, input_config=..., **model_kwargs) -> nn.Module
    input_config: InputConfig
    default_kwargs: dict = field(default_factory=dict)  # e.g. drop_rate used in training recipes
    description: str = ""
    channels_last: bool = False  # run in NHWC memory layout by default (faster on CPU for this family)

    @property
    def reference(self) -> ReferenceFigures | None:
        return reference_figures().get(self.name)


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, family: str, spec: Any, builder: Callable[..., Any],
             input_config: InputConfig | None = None, description: str = "",
             channels_last: bool = False, **default_kwargs) -> None:
    """Register a model variant. Duplicate names are refused."""
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is already registered (family {_REGISTRY[name].family})")
    if input_config is None:
        ref = reference_figures().get(name)
        res = ref.resolution if ref else 224
        input_config = InputConfig(input_size=(3, res, res))
    _REGISTRY[name] = ModelEntry(name, family, spec, builder, input_config, dict(default_kwargs),
                                 description, channels_last)


def _ensure_loaded() -> None:
    from . import models  # noqa: F401  (importing the package registers every family)


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY.keys(), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}.{hint} Run `edgevision models` to list all "
            f"{len(_REGISTRY)} models.") from None


def list_models(pattern: str | None = None, family: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` is a shell-style wildcard (``*lite*``)."""
    _ensure_loaded()
    names = sorted(_REGISTRY)
    if family is not None:
        fams = list_families()
        if family not in fams:
            close = difflib.get_close_matches(family, fams, n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise UnknownModelError(f"unknown family {family!r}.{hint} Families: {', '.join(fams)}")
        names = [n for n in names if _REGISTRY[n].family == family]
    if pattern:
        pat = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatchcase(n, pat)]
    return names


def list_families() -> list[str]:
    _ensure_loaded()
    seen: dict[str, None] = {}
    for e in _REGISTRY.values():
        seen.setdefault(e.family, None)
    return list(seen)


@lru_cache(maxsize=1)
def reference_figures() -> dict[str, ReferenceFigures]:
    text = resources.files("edgevision").joinpath("data/models.csv").read_text()
    out = {}
    for row in csv.DictReader(text.splitlines()):
        out[row["name"]] = ReferenceFigures(
            resolution=int(row["resolution"]), params=int(row["params"]),
            macs_millions=float(row["macs_millions"]),
            top1=float(row["imagenet_top1"]) if row["imagenet_top1"] else None,
            top1_source=row["top1_source"])
    return out
