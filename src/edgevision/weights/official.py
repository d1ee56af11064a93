"""Checkpoints in the official repositories' layouts, one registered layout per family group.

A layout knows how to recognise its keys (``looks_like``), how to rename them to edgevision's
(``to_ours(sd, model)``) and, for round-trip tests and for users who want to hand weights back,
the reverse (``to_official(sd, model)``). Modules defining layouts register them on import
(imported at the bottom of this file); ``load_weights(..., source="official")`` and source
detection go through :func:`detect_official` / :func:`convert_official`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..errors import WeightsError


@dataclass(frozen=True)
class OfficialLayout:
    name: str  # the repository, for messages (e.g. "microsoft/Cream EfficientViT")
    families: tuple[str, ...]
    looks_like: Callable[[dict], bool]
    to_ours: Callable[[dict, nn.Module], dict]
    to_official: Callable[[dict, nn.Module], dict]


_LAYOUTS: list[OfficialLayout] = []


def register_official(layout: OfficialLayout) -> None:
    _LAYOUTS.append(layout)


def detect_official(sd: dict) -> OfficialLayout | None:
    return next((lay for lay in _LAYOUTS if lay.looks_like(sd)), None)


def layout_for(model: nn.Module) -> OfficialLayout:
    family = getattr(model, "family", None)
    for lay in _LAYOUTS:
        if family in lay.families:
            return lay
    known = sorted({f for lay in _LAYOUTS for f in lay.families})
    raise WeightsError(f"no official-repository layout for family {family!r}; supported: "
                       f"{', '.join(known)}")


def convert_official(sd: dict, model: nn.Module) -> dict:
    lay = layout_for(model)
    if not lay.looks_like(sd):
        other = detect_official(sd)
        what = f"they look like {other.name} weights" if other else "the keys are not in that layout"
        raise WeightsError(f"these weights are not a {lay.name} checkpoint for "
                           f"{getattr(model, 'model_name', '?')}: {what} (first keys: {list(sd)[:3]})")
    return lay.to_ours(sd, model)


def to_official(sd: dict, model: nn.Module) -> dict:
    """edgevision's state dict -> the official repository's layout for ``model``'s family."""
    return layout_for(model).to_official(sd, model)


def _register_builtin() -> None:
    from . import convnext_layouts
    register_official(OfficialLayout(
        "facebookresearch ConvNeXt / ConvNeXt-V2", ("convnext", "convnextv2"),
        convnext_layouts.looks_like_official_convnext, convnext_layouts.convert_official_convnext,
        lambda sd, model: convnext_layouts.to_official(sd)))


_register_builtin()

# layouts living in their own modules register themselves on import
from . import official_efficientvit, official_mobile  # noqa: E402,F401
