"""Thin, uniform wrappers over the inference runtimes (onnxruntime, OpenVINO).

Each wrapper states the precision that actually runs: OpenVINO picks bf16 by itself on CPUs
that support it, so fp32 is forced explicitly and read back from the compiled model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

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
    runtime: str
    precision: str  # what actually runs: "fp32", "bf16", "int8 (QDQ)", ...
    _run: object
    input_name: str = "input"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._run(np.ascontiguousarray(x, dtype=np.float32))


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


def openvino_model(path: str | os.PathLike):
    """The model (ONNX or IR) as an OpenVINO graph, with PyTorch's Hardsigmoid — ONNX
    HardSigmoid(alpha=1/6, beta=1/2) — expressed as OpenVINO's HSigmoid, the same function.

    The CPU plugin has no optimized HardSigmoid: it runs a reference loop between two layout
    reorders, and under INT8 also a standalone quantizer, four executed nodes per squeeze-excite
    gate; HSigmoid fuses into the convolution before it. Measured on mobilenetv3_large_100 INT8
    at 224 px: 248 -> 168 executed nodes; batch-1 speed-up over onnxruntime fp32 1.49x -> 1.66x
    with random weights, 1.36x -> 1.42x with trained ones (docs/deploy.md)."""
    ov = _require("openvino", "openvino")
    from openvino import opset13
    try:
        # an IR is read as saved; ONNX goes through the converter, which also folds constants
        model = ov.Core().read_model(str(path)) if str(path).endswith(".xml") else ov.convert_model(str(path))
    except Exception as e:
        raise EdgeVisionError(f"OpenVINO cannot read {path}: {str(e).splitlines()[0][:200]}") from None
    for op in model.get_ops():
        if op.get_type_name() != "HardSigmoid":
            continue
        alpha, beta = (op.input_value(i).get_node() for i in (1, 2))
        if all(c.get_type_name() == "Constant" for c in (alpha, beta)) and \
                abs(float(alpha.get_data()) - 1 / 6) < 1e-6 and abs(float(beta.get_data()) - 0.5) < 1e-6:
            h = opset13.hsigmoid(op.input_value(0))
            h.set_friendly_name(op.get_friendly_name())  # node names stay stable (float_nodes lists)
            op.output(0).replace(h.output(0))
    return model


def openvino_session(path: str | os.PathLike, threads: int = 0, precision: str = "fp32") -> Session:
    ov = _require("openvino", "openvino")
    core = ov.Core()
    # int8 graphs: the ops left unquantized run in fp32 unless "int8-bf16" asks for bf16 (on CPUs
    # with native bf16 OpenVINO would otherwise pick bf16 for them by itself)
    hint = {"fp32": "f32", "bf16": "bf16", "int8": "f32", "int8-bf16": "bf16"}.get(precision)
    if hint is None:
        raise ConfigError(f"unknown OpenVINO precision {precision!r}; use fp32, bf16, int8 or int8-bf16")
    cfg = {"PERFORMANCE_HINT": "LATENCY"}
    if hint:
        cfg["INFERENCE_PRECISION_HINT"] = hint
    if threads:
        cfg["INFERENCE_NUM_THREADS"] = threads
    model = openvino_model(path)
    try:
        compiled = core.compile_model(model, "CPU", cfg)
    except Exception as e:
        raise EdgeVisionError(f"OpenVINO cannot load {path}: {str(e).splitlines()[0][:200]}") from None
    actual = str(compiled.get_property("INFERENCE_PRECISION_HINT"))  # e.g. "<Type: 'bfloat16'>"
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
    request = compiled.create_infer_request()
    out = compiled.outputs[0]

    def run(x):  # zero-copy input, as onnxruntime reads numpy arrays in place (the output is a copy)
        return request.infer({0: x}, share_inputs=True)[out]
    return Session("openvino", ran, run)


def open_session(path, runtime: str = "onnxruntime", threads: int = 0, precision: str = "fp32") -> Session:
    if runtime == "onnxruntime":
        return ort_session(path, threads, precision)
    if runtime == "openvino":
        return openvino_session(path, threads, precision)
    raise ConfigError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
