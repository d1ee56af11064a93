"""create_model and model_info: the one entry point to every registered architecture."""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch
from torch import nn

from .errors import ConfigError
from .models.base import FeatureModel
from .registry import get_entry


def create_model(name: str, num_classes: int = 1000, in_chans: int = 3, drop_rate: float | None = None,
                 drop_path_rate: float = 0.0, features_only: bool = False,
                 out_indices: Sequence[int] | None = None, channels_last: bool | None = None,
                 **spec_overrides: Any) -> nn.Module:
    """Build a registered model with random weights.

    ``spec_overrides`` replace fields of the variant's spec (``model.spec``), e.g.
    ``create_model("efficientnet_b0", act="relu")``. ``drop_rate`` defaults to the variant's
    usual classifier dropout. With ``features_only=True`` the model returns a list of feature maps
    (levels ``out_indices`` of ``feature_info``) instead of logits. ``channels_last`` (default:
    the family's choice, True where it is faster on CPU) stores the weights in NHWC layout and
    converts inputs on entry; results are the same either way.
    """
    entry = get_entry(name)
    spec = entry.spec
    if spec_overrides:
        fields = {f.name for f in dataclasses.fields(spec)}
        bad = sorted(set(spec_overrides) - fields)
        if bad:
            raise ConfigError(f"{name}: unknown argument(s) {', '.join(bad)}; spec fields are "
                              f"{', '.join(sorted(fields))}")
        spec = dataclasses.replace(spec, **spec_overrides)
    if num_classes < 0 or in_chans < 1:
        raise ConfigError(f"num_classes must be >= 0 and in_chans >= 1 (got {num_classes}, {in_chans})")
    if drop_rate is None:
        drop_rate = entry.default_kwargs.get("drop_rate", 0.0)
    model = entry.builder(spec, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                          drop_path_rate=drop_path_rate)
    cfg = entry.input_config
    model.input_config = dataclasses.replace(cfg, input_size=(in_chans,) + tuple(cfg.input_size[1:]),
                                             mean=_fit(cfg.mean, in_chans), std=_fit(cfg.std, in_chans),
                                             min_size=model.min_input_size)
    model.model_name = name
    model.family = entry.family
    model.channels_last = entry.channels_last if channels_last is None else bool(channels_last)
    if model.channels_last:
        model.to(memory_format=torch.channels_last)
    if features_only:
        return FeatureModel(model, out_indices)
    if out_indices is not None:
        raise ConfigError("out_indices only applies with features_only=True")
    return model


def _fit(values: tuple[float, ...], n: int) -> tuple[float, ...]:
    if len(values) == n:
        return tuple(values)
    mean = sum(values) / len(values)
    return (mean,) * n


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
