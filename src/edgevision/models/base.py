"""The model contract every registered model fulfils, written once.

A model is a *trunk* (an ordered list of named pieces applied one after the other: stem,
stages, optional final convs) followed by a *head* (pooling + classifier). ``feature_info``
names the trunk pieces whose outputs are the feature levels, with their channels and stride.
From that, this module derives ``forward_features``, ``features_only`` extraction and input
checks, so families only describe their architecture.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InputShapeError
from .variant import InputConfig


@dataclass(frozen=True)
class FeatureInfo:
    """One feature level: the output of trunk piece ``module``."""

    index: int  # position in model.feature_info (what out_indices refer to)
    channels: int  # channels of the feature map
    reduction: int  # stride relative to the input (2, 4, 8, 16, 32)
    module: str  # name of the trunk piece producing it (e.g. "stages.3")


def _is_exporting() -> bool:
    return torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling() \
        or torch.onnx.is_in_onnx_export()


class EdgeModel(nn.Module, abc.ABC):
    """Base class: subclasses set ``spec``, ``in_chans``, ``num_classes``, ``num_features``,
    ``feature_info`` and implement ``trunk()``; ``forward_head()`` and ``reset_classifier()``
    default to average pooling + dropout + a Linear ``classifier`` and are overridden by
    families with other heads."""

    spec: object
    input_config: InputConfig
    feature_info: list[FeatureInfo]
    in_chans: int
    num_classes: int
    num_features: int  # width of the pre-logits vector (what forward_head(pre_logits=True) returns)
    min_input_size: int = 32  # smallest height/width accepted
    drop_rate: float = 0.0  # classifier dropout (training only)
    channels_last: bool = False  # convert inputs to NHWC (set by create_model with the weights)

    @abc.abstractmethod
    def trunk(self) -> list[tuple[str, nn.Module]]:
        """Ordered (name, module) pieces applied one after the other by forward_features."""

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool the last feature map and classify (``pre_logits``: the pooled features).
        Default: global average pool, dropout, ``self.classifier``; families with another
        head override it."""
        x = self.pooled(x)
        return x if pre_logits else self.classifier(x)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier (0: none, forward returns the pre-logits features).
        Default: a Linear ``self.classifier`` on ``num_features``."""
        self.num_classes = num_classes
        self.classifier = linear_head(self.num_features, num_classes)

    # ------------------------------------------------------------------ head helpers
    def head_dropout(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier dropout (``drop_rate``, active in training only)."""
        return F.dropout(x, self.drop_rate, self.training) if self.drop_rate > 0.0 else x

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Global average pool of a (N, C, H, W) map, then the classifier dropout."""
        return self.head_dropout(x.mean((2, 3)))

    # ------------------------------------------------------------------ derived behaviour
    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`InputShapeError` for inputs the model cannot take."""
        if _is_exporting():
            return
        if x.ndim != 4:
            raise InputShapeError(
                f"{type(self).__name__} expects a 4-D batch (N, C, H, W); got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise InputShapeError(
                f"{type(self).__name__} was built for {self.in_chans} input channels but got "
                f"{x.shape[1]} (shape {tuple(x.shape)}); pass in_chans={x.shape[1]} to create_model "
                f"or convert the images")
        h, w = x.shape[-2:]
        if h < self.min_input_size or w < self.min_input_size:
            raise InputShapeError(
                f"input {h}x{w} is too small: height and width must be at least "
                f"{self.min_input_size} pixels")

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Check the input and bring it to the model's memory layout."""
        self.check_input(x)
        if self.channels_last and not _is_exporting():
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Run the trunk; returns the last feature map (N, C, H', W')."""
        x = self.prepare_input(x)
        for _, piece in self.trunk():
            x = piece(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
        """Feature maps of the levels in ``indices`` (positions in ``feature_info``)."""
        x = self.prepare_input(x)
        wanted = {self.feature_info[i].module: i for i in indices}
        out: dict[int, torch.Tensor] = {}
        for name, piece in self.trunk():
            x = piece(x)
            if name in wanted:
                out[wanted[name]] = x
                if len(out) == len(wanted):
                    break
        return [out[i] for i in indices]


def linear_head(in_features: int, num_classes: int) -> nn.Module:
    """A Linear classifier, or the identity when ``num_classes`` is 0 (features only)."""
    return nn.Linear(in_features, num_classes) if num_classes else nn.Identity()


def init_conv_weights(model: nn.Module, linear_std: float | None = None) -> None:
    """He-normal (fan-out) convs, unit BatchNorms, zero biases; Linear layers uniform in
    +-1/sqrt(out) (EfficientNet/MobileNet recipe) or normal with ``linear_std``."""
    import math
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_std is None:
                bound = 1.0 / math.sqrt(m.weight.shape[0])
                nn.init.uniform_(m.weight, -bound, bound)
            else:
                nn.init.normal_(m.weight, 0, linear_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def resolve_out_indices(model: EdgeModel, out_indices: Sequence[int] | None) -> tuple[int, ...]:
    n = len(model.feature_info)
    if out_indices is None:
        return tuple(range(n))
    res = []
    for i in out_indices:
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise ConfigError(f"out_indices {tuple(out_indices)} out of range: this model has {n} "
                              f"feature levels (0..{n - 1})")
        res.append(j)
    return tuple(res)


class FeatureModel(nn.Module):
    """``features_only=True`` wrapper: returns the list of feature maps at ``out_indices``.

    The wrapped trunk is kept whole (so weights load with the same keys); only the pieces up to
    the deepest requested level run.
    """

    def __init__(self, model: EdgeModel, out_indices: Sequence[int] | None = None):
        super().__init__()
        self.out_indices = resolve_out_indices(model, out_indices)
        self.model = model
        self.feature_info = [model.feature_info[i] for i in self.out_indices]
        self.spec = model.spec
        self.input_config = model.input_config

    @property
    def channels(self) -> list[int]:
        return [f.channels for f in self.feature_info]

    @property
    def reductions(self) -> list[int]:
        return [f.reduction for f in self.feature_info]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, self.out_indices)
