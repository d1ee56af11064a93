"""Building blocks of the weight converters: renaming keys and the record of an official
repository's checkpoint layout. Converter modules import from here; the modules that pick a
converter (timm.py, official.py) list them in tables."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

Converter = Callable[[dict, nn.Module], dict]  # (foreign state dict, our model) -> our state dict


def rename(sd: dict, fn: Callable[[str], str | None]) -> dict:
    """Apply ``fn`` to every key; ``None`` drops the key."""
    out = {}
    for k, v in sd.items():
        nk = fn(k)
        if nk is not None:
            out[nk] = v
    return out


@dataclass(frozen=True)
class OfficialLayout:
    name: str  # the repository, for messages (e.g. "microsoft/Cream EfficientViT")
    families: tuple[str, ...]
    looks_like: Callable[[dict], bool]
    to_ours: Callable[[dict, nn.Module], dict]
    to_official: Callable[[dict, nn.Module], dict]
