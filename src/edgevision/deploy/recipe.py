"""What an INT8 result is made of, in one frozen, validated value.

A ``QuantRecipe`` holds every input of ``quantize()`` that changes its result: the runtime and
its quantization choices, and the images (source and counts) that calibrate, validate (accuracy
control) and measure agreement. Paths and thread counts, which change no figure, stay arguments
of ``quantize()``. The same recipe on the same export gives the same artifact and report.

Recipe defaults (docs/deploy.md has the measurements behind them): per-channel weights
(per-tensor collapses depthwise convs), unsigned 8-bit activations, signed weights, MinMax
calibration over N images with the model's own preprocessing (the same estimator in both
runtimes: the global min/max over the images; NNCF's own estimator, method "nncf", averages the
per-image extremes and clips the rest). ``keep_first_last`` leaves the stem conv and the
classifier in fp32; ``exclude_ops`` keeps whole op types (e.g. Softmax) in fp32.

Calibration images should look like what the model will see: ``calib="embedded"`` (the
procedural shapes) suits models trained on them; a model with real-photo weights (ImageNet)
calibrates on ``"photos"`` (views of the photos installed packages ship, datasets/photos.py) or
a folder of its own images, and its agreement is measured on held-out views of the same kind.

Each field carries its ``edgevision quantize`` option (edgevision/options.py).
"""
from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field

from ..errors import ConfigError
from .targets import TARGETS, get_target

PRESETS = ("performance", "mixed")
# every runtime's calibration methods; each target accepts its own (targets/*.py METHODS)
METHODS = tuple(dict.fromkeys(m for t in TARGETS.values() for m in t.METHODS))


def _opt(default, help: str, **metadata):
    return field(default=default, metadata={"help": help, **metadata})


@dataclass(frozen=True)
class QuantRecipe:
    calib: str = _opt("embedded", "'embedded' (procedural shapes), 'photos' (views of the photos "
                     "installed packages ship) or a folder of images")
    images: int = _opt(64, "calibration images")
    held_out: int = _opt(200, "images for the agreement check")
    runtime: str = _opt("onnxruntime", "runtime of the INT8 model", choices=tuple(TARGETS))
    per_channel: bool = _opt(True, "per-tensor weights (default per-channel)", flag="--per-tensor")
    keep_first_last: bool = _opt(False, "stem conv and classifier in fp32")
    exclude_ops: tuple[str, ...] = _opt((), "kept in float: ONNX op types for onnxruntime/openvino (e.g. "
                                        "Softmax); module class names for executorch/litert (e.g. "
                                        "Hardswish); conv/linear for coreml")
    method: str = _opt("minmax", "activation ranges: minmax (global, every runtime), percentile "
                       "(onnxruntime, openvino), entropy (onnxruntime), histogram (openvino, executorch, "
                       "litert), nncf (openvino; NNCF's built-in ranges)", choices=METHODS)
    transformer: bool = _opt(False, "NNCF transformer preset (attention models)")
    preset: str = _opt("performance", "openvino: NNCF preset (mixed: asymmetric activations)",
                       choices=PRESETS)
    max_drop: float | None = _opt(None, "openvino: accuracy-controlled INT8 - revert the most sensitive "
                                  "layers to float until top-1 agreement with fp32 on validation images "
                                  "drops by at most this fraction (e.g. 0.01)")
    val_images: int = _opt(300, "validation images for --max-drop")
    float_nodes: tuple[str, ...] = _opt((), "kept in float: graph node names for onnxruntime/openvino "
                                        "(e.g. the list --max-drop printed); module names "
                                        "(named_modules()) for executorch/litert/coreml")
    quantize_se: bool = _opt(False, "openvino: quantize the squeeze-excite FCs as well (NNCF keeps them "
                             "in float; faster MobileNetV3 at batch 1, slower EfficientNet - "
                             "docs/deploy.md)")

    def __post_init__(self):
        for name in ("exclude_ops", "float_nodes"):  # lists are accepted, stored as tuples
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{name} is a list of names, e.g. ('Softmax',); got {value!r}")
            object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "calib", os.fspath(self.calib))
        self._check_runtime()
        for flag, n in (("--images", self.images), ("--held-out", self.held_out),
                        ("--val-images", self.val_images)):
            if not isinstance(n, numbers.Integral) or n < 1:
                raise ConfigError(f"{flag} must be at least 1")

    def _check_runtime(self) -> None:
        """The runtime, its calibration method and the NNCF-only options agree."""
        methods = get_target(self.runtime).METHODS
        if self.method not in methods:
            raise ConfigError(f"calibration method {self.method!r} is not available for {self.runtime}; "
                              f"use one of {', '.join(methods)}")
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown NNCF preset {self.preset!r}; use performance or mixed")
        if self.max_drop is not None and self.runtime != "openvino":
            raise ConfigError("accuracy-controlled quantization (--max-drop) uses NNCF; add --runtime openvino")
        if self.quantize_se and self.runtime != "openvino":
            raise ConfigError("--quantize-se changes what NNCF leaves in float; onnxruntime already "
                              "quantizes squeeze-excite convs: add --runtime openvino or drop the flag")
        if self.max_drop is not None and not 0 <= self.max_drop < 1:
            raise ConfigError(f"--max-drop is a fraction of top-1 agreement in [0, 1), e.g. 0.01; "
                              f"got {self.max_drop}")
