"""Model registry: name -> (family, spec, builder, input config, reference figures).

The registry is built from the table of variants the model families list (``models.VARIANTS``);
``register`` adds a user's own variant at run time. Names follow timm's where the
architecture is the same. Reference figures (parameter count, MACs, published top-1) come from
``data/models.csv``, a copy of the project's reference table.
"""
from __future__ import annotations

import csv
import fnmatch
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Callable

from .errors import UnknownModelError
from .models import VARIANTS
from .models.variant import IMAGENET_INCEPTION, InputConfig, Variant
from .text import did_you_mean

__all__ = ["IMAGENET_INCEPTION", "InputConfig", "ModelEntry", "register", "get_entry", "list_models",
           "list_families", "reference_figures"]


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
    _ensure_loaded()
    _add(Variant(name, family, spec, builder, input_config, description, channels_last,
                 dict(default_kwargs)))


def _add(v: Variant) -> None:
    if v.name in _REGISTRY:
        raise ValueError(f"model name {v.name!r} is already registered (family {_REGISTRY[v.name].family})")
    input_config = v.input_config
    if input_config is None:
        ref = reference_figures().get(v.name)
        res = ref.resolution if ref else 224
        input_config = InputConfig(input_size=(3, res, res))
    _REGISTRY[v.name] = ModelEntry(v.name, v.family, v.spec, v.builder, input_config,
                                   dict(v.default_kwargs), v.description, v.channels_last)


_loaded = False


def _ensure_loaded() -> None:
    """Fill the registry from the families' tables, once."""
    global _loaded
    if not _loaded:
        _loaded = True
        for v in VARIANTS:
            _add(v)


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}.{did_you_mean(str(name), _REGISTRY)} Run `edgevision models` to list all "
            f"{len(_REGISTRY)} models.") from None


def list_models(pattern: str | None = None, family: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` is a shell-style wildcard (``*lite*``)."""
    _ensure_loaded()
    names = sorted(_REGISTRY)
    if family is not None:
        fams = list_families()
        if family not in fams:
            raise UnknownModelError(f"unknown family {family!r}.{did_you_mean(family, fams, 3)} Families: {', '.join(fams)}")
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
def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names, in the order of the classifiers' outputs."""
    return resources.files("edgevision").joinpath("data/imagenet_classes.txt").read_text().splitlines()


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
