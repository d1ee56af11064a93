"""Thin, uniform wrappers over the inference runtimes (onnxruntime, OpenVINO).

Each wrapper states the precision that actually runs: OpenVINO picks bf16 by itself on CPUs
that support it, so fp32 is forced explicitly and read back from the compiled model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, EdgeVisionError

RUNTIMES = ("onnxruntime", "openvino")


class RuntimeMissing(EdgeVisionError):
    pass


def _require(module: str, pip_name: str):
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


def ort_session(path: str | os.PathLike, threads: int = 0, precision: str = "fp32") -> Session:
    ort = _require("onnxruntime", "onnxruntime")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = threads
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        raise EdgeVisionError(f"onnxruntime cannot load {path}: {str(e).splitlines()[0][:200]}") from None
    name = sess.get_inputs()[0].name
    return Session("onnxruntime", precision, lambda x: sess.run(None, {name: x})[0], name)


def openvino_model(path: str | os.PathLike, precision: str | None = None):
    """The model (ONNX or IR) as an OpenVINO graph, with the rewrites of ``ov_rewrites`` that suit
    ``precision`` ("fp32", "bf16", "int8"; None: those exact at any precision, for a saved IR):
    ops the CPU plugin runs slowly, re-expressed as the same function in ops it fuses (PyTorch's
    Hardsigmoid as HSigmoid; channel LayerNorm without its two transposes; a conv whose output is
    only split, as one conv per part). Every OpenVINO path
    (export, quantize, sessions) goes through here."""
    ov = _require("openvino", "openvino")
    from .ov_rewrites import rewrite
    try:
        # an IR is read as saved; ONNX goes through the converter, which also folds constants
        model = ov.Core().read_model(str(path)) if str(path).endswith(".xml") else ov.convert_model(str(path))
    except Exception as e:
        raise EdgeVisionError(f"OpenVINO cannot read {path}: {str(e).splitlines()[0][:200]}") from None
    rewrite(model, precision)
    return model


def openvino_session(path: str | os.PathLike, threads: int = 0, precision: str = "fp32") -> Session:
    """An OpenVINO session. A model with a dynamic batch dimension is compiled once per batch size
    it is called with, as a static-shape graph: the CPU plugin then plans memory and picks kernels
    once instead of on every call (measured on the INT8 graphs at 224 px, batch 1: 6.0 -> 5.3 ms
    for efficientnet_b0, 1.85 -> 1.69 ms for mobilenetv4_conv_small; onnxruntime gains nothing from
    a fixed batch, docs/deploy.md). The batch-1 graph is compiled at once, to check the model
    loads and the precision that runs."""
    ov = _require("openvino", "openvino")
    core = ov.Core()
    # int8 graphs: the ops left unquantized run in fp32 unless "int8-bf16" asks for bf16 (on CPUs
    # with native bf16 OpenVINO would otherwise pick bf16 for them by itself)
    hint = {"fp32": "f32", "bf16": "bf16", "int8": "f32", "int8-bf16": "bf16"}.get(precision)
    if hint is None:
        raise ConfigError(f"unknown OpenVINO precision {precision!r}; use fp32, bf16, int8 or int8-bf16")
    cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint}
    if threads:
        cfg["INFERENCE_NUM_THREADS"] = threads
    model = openvino_model(path, "bf16" if hint == "bf16" else precision)
    shape = model.input(0).get_partial_shape()
    dynamic_batch = shape.rank.is_static and shape.rank.get_length() > 0 and shape[0].is_dynamic

    def compile_for(batch: int | None):
        m = model
        if batch is not None:
            m = model.clone()
            ps = m.input(0).get_partial_shape()
            ps[0] = batch
            m.reshape({m.input(0): ps})
        try:
            return core.compile_model(m, "CPU", cfg)
        except Exception as e:
            raise EdgeVisionError(f"OpenVINO cannot load {path}: {str(e).splitlines()[0][:200]}") from None

    def runner(compiled):
        request, out = compiled.create_infer_request(), compiled.outputs[0]
        # zero-copy input, as onnxruntime reads numpy arrays in place (the output is a copy)
        return lambda x: request.infer({0: x}, share_inputs=True)[out]

    first = compile_for(1 if dynamic_batch else None)
    actual = str(first.get_property("INFERENCE_PRECISION_HINT"))  # e.g. "<Type: 'bfloat16'>"
    token = actual.split("'")[-2] if "'" in actual else actual
    ran = {"float32": "fp32", "f32": "fp32", "bf16": "bf16", "bfloat16": "bf16"}.get(token, token)
    if precision.startswith("int8"):
        if ran != hint.replace("f32", "fp32"):
            raise EdgeVisionError(f"OpenVINO runs the unquantized ops in {ran} although "
                                  f"{hint} was requested; this CPU may not support it")
        ran = f"int8 (other ops {ran})"
    elif ran != precision:
        raise EdgeVisionError(f"OpenVINO ran {ran} although {precision} was requested; this CPU "
                              f"may not support {precision}")
    if not dynamic_batch:
        static = shape[0].get_length() if shape.rank.is_static and shape.rank.get_length() else None
        run = runner(first)

        def checked(x):
            if static is not None and len(x) != static:
                raise ConfigError(f"{path} was exported for batch {static}, not {len(x)}; re-export "
                                  f"it with --dynamic-batch to run other batch sizes")
            return run(x)
        return Session("openvino", ran, checked)
    return Session("openvino", ran, _build=lambda b: runner(compile_for(b)), _runs={1: runner(first)})


def open_session(path, runtime: str = "onnxruntime", threads: int = 0, precision: str = "fp32") -> Session:
    if runtime == "onnxruntime":
        return ort_session(path, threads, precision)
    if runtime == "openvino":
        return openvino_session(path, threads, precision)
    raise ConfigError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
