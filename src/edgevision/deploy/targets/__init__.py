"""Deployment targets: one module per runtime, all behind the same small protocol.

A target module provides:

- ``NAME``: the runtime (``--runtime``); ``FORMAT``: the export format (``--format``); ``SUFFIX``:
  the artifact's file suffix (".onnx", ".xml"; later ".pte", ".tflite", ".mlpackage").
- ``SOURCE``: what the target builds from, "onnx" (the verified, metadata-carrying ONNX export)
  or "torch" (the reparameterized eval-mode ``nn.Module`` and an example input, e.g. for
  torch.export-based runtimes).
- ``METHODS``: the calibration methods its INT8 accepts (``QuantRecipe.method``).
- ``session(path, threads=0, precision="fp32") -> Session``: the artifact loaded and ready to
  run, stating the precision that actually runs (read back from the runtime, not assumed).
- ``build(module, example, onnx_path, workdir) -> Path``: the fp32 artifact, written inside
  ``workdir``; ``onnx_path`` is None for a "torch" target.
- ``check_output(out)``: refuse an output path the target cannot install to (ConfigError).
- ``install(artifact, out) -> int``: move the artifact (and its companion files) into place
  atomically; returns the bytes written.
- ``int8(source, dst, calib, recipe, val=None, val_labels=None) -> (str, list[str])``: write the
  INT8 artifact to ``dst`` from ``source`` (the fp32 ONNX path, or the module for a "torch"
  target), calibrated on ``calib`` (N, C, H, W) with the choices of ``recipe`` (a QuantRecipe);
  ``val``/``val_labels`` are the validation images and fp32 labels for accuracy control. Returns
  an account of what accuracy control kept in float ("" without it) and those node names.

The table below is the list of targets; importing a target module registers nothing. Target
modules import their runtime lazily, so listing them costs nothing when a runtime is missing.
"""
from __future__ import annotations

import os

from ...errors import ConfigError
from ..session import Session
from . import coreml as _coreml
from . import executorch as _executorch
from . import litert as _litert
from . import onnxruntime as _onnxruntime
from . import openvino as _openvino

TARGETS = {"onnxruntime": _onnxruntime, "openvino": _openvino, "executorch": _executorch,
           "litert": _litert, "coreml": _coreml}


def get_target(name: str):
    """The target module of runtime ``name``."""
    try:
        return TARGETS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unsupported runtime {name!r}; choose one of {', '.join(TARGETS)}") from None


def target_for_format(fmt: str):
    """The target module that writes export format ``fmt`` ("onnx", "openvino")."""
    by_format = {t.FORMAT: t for t in TARGETS.values()}
    if fmt not in by_format:
        raise ConfigError(f"unsupported format {fmt!r}; choose one of {', '.join(by_format)}")
    return by_format[fmt]


def target_for_output(out: str | os.PathLike, fmt: str | None = None):
    """The target that writes ``out``: ``fmt`` if given (the suffix must agree), else the one whose
    file suffix ``out`` has."""
    suffix = os.path.splitext(os.fspath(out))[1].lower()
    by_suffix = {t.SUFFIX: t for t in TARGETS.values()}
    if fmt is not None:
        target = target_for_format(fmt)
        if suffix != target.SUFFIX:
            raise ConfigError(f"output {os.fspath(out)!r} does not match --format {fmt} (a {target.SUFFIX} "
                              f"file): name it {os.path.splitext(os.fspath(out))[0]}{target.SUFFIX}")
        return target
    if suffix not in by_suffix:
        raise ConfigError(f"cannot tell the format from {os.fspath(out)!r}: name the output "
                          f"{' / '.join(by_suffix)} or pass --format")
    return by_suffix[suffix]


def open_session(path: str | os.PathLike, runtime: str = "onnxruntime", threads: int = 0,
                 precision: str = "fp32") -> Session:
    """``path`` loaded in ``runtime`` (see each target's ``session``)."""
    return get_target(runtime).session(path, threads, precision)


__all__ = ["TARGETS", "get_target", "target_for_format", "target_for_output", "open_session"]
