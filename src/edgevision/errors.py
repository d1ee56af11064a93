"""The one exception hierarchy of edgevision.

Every error a user can cause derives from :class:`EdgeVisionError`; the CLI prints such errors
as a single line and exits non-zero. Messages say what was wrong and what to do about it.
"""
from __future__ import annotations


class EdgeVisionError(Exception):
    """Base class of every error edgevision raises on bad input."""


class UnknownModelError(EdgeVisionError, KeyError):
    """A model name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class InputShapeError(EdgeVisionError, ValueError):
    """An input tensor the model cannot take (channels, size)."""


class ConfigError(EdgeVisionError, ValueError):
    """An invalid argument or spec override."""


class WeightsError(EdgeVisionError):
    """A weight file that cannot be read, is unsafe, or does not fit the model."""
