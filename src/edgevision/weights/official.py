"""Checkpoints in the official repositories' layouts, one registered layout per family group.

A layout knows how to recognise its keys (``looks_like``), how to rename them to edgevision's
(``to_ours(sd, model)``) and, for round-trip tests and for users who want to hand weights back,
the reverse (``to_official(sd, model)``). The family groups' modules list their layouts;
``_LAYOUTS`` below is the table of all of them. ``load_weights(..., source="official")`` and
source detection go through :func:`detect_official` / :func:`convert_official`.
"""
from __future__ import annotations

from torch import nn

from ..errors import WeightsError
from . import convnext_layouts, official_efficientvit, official_mobile
from .keys import OfficialLayout


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


_LAYOUTS: tuple[OfficialLayout, ...] = (
    OfficialLayout("facebookresearch ConvNeXt / ConvNeXt-V2", ("convnext", "convnextv2"),
                   convnext_layouts.looks_like_official_convnext,
                   convnext_layouts.convert_official_convnext,
                   lambda sd, model: convnext_layouts.to_official(sd)),
    *official_efficientvit.LAYOUTS,
    *official_mobile.LAYOUTS,
)
