"""What a model family declares about each of its variants: the input configuration that goes
with the architecture, and one ``Variant`` row per registered name. The family modules list their
rows in ``VARIANTS``; the registry (a tier above) reads those tables."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


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
class Variant:
    """One registered model: a name, its family, the frozen spec and the class that builds it."""

    name: str  # registry name (timm's where the architecture is the same)
    family: str
    spec: Any  # frozen dataclass describing the architecture
    builder: Callable[..., Any]  # builder(spec, input_config=..., **model_kwargs) -> nn.Module
    input_config: InputConfig | None = None  # None: 224 px or the reference table's resolution
    description: str = ""
    channels_last: bool = False  # run in NHWC memory layout by default (faster on CPU for this family)
    default_kwargs: dict = field(default_factory=dict)  # e.g. drop_rate used in training recipes


def variant(name: str, family: str, spec: Any, builder: Callable[..., Any],
            input_config: InputConfig | None = None, description: str = "",
            channels_last: bool = False, **default_kwargs) -> Variant:
    """A ``Variant`` row, with extra keywords collected as the model's default arguments."""
    return Variant(name, family, spec, builder, input_config, description, channels_last,
                   dict(default_kwargs))
