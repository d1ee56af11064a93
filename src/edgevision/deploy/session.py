"""A model loaded in one inference runtime, and the one error for a runtime that is not installed.

Every session states the precision that actually runs, read back from the runtime where it can
choose by itself (OpenVINO picks bf16 on CPUs that support it unless told otherwise)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import EdgeVisionError


class RuntimeMissing(EdgeVisionError):
    """A runtime (or its quantization toolkit) that is not installed."""


def require(module: str, pip_name: str):
    """``import module``, or a one-line RuntimeMissing naming the pip command that installs it."""
    try:
        return __import__(module)
    except ImportError:
        raise RuntimeMissing(f"{module} is not installed; install it with "
                             f"`.venv/bin/pip install {pip_name}`") from None


@dataclass
class Session:
    """A model ready to run in one runtime. ``__call__`` takes a float32 NCHW batch.

    ``_build(batch)``, when given, makes the runner for one batch size; it is called once per
    batch size the session sees (OpenVINO compiles a static-shape graph per batch size)."""
    runtime: str
    precision: str  # what actually runs: "fp32", "bf16", "int8 (QDQ)", ...
    _run: object = None  # one runner for every batch size
    input_name: str = "input"
    _build: object = None
    _runs: dict = field(default_factory=dict)

    @property
    def batches(self) -> list[int]:
        """The batch sizes a static-shape graph was built for (empty: one graph for all)."""
        return sorted(self._runs)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self._build is None:
            return self._run(x)
        run = self._runs.get(len(x))
        if run is None:
            run = self._runs[len(x)] = self._build(len(x))
        return run(x)
