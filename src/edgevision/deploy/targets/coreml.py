"""Core ML (iOS/macOS): an fp16 ML Program (``.mlpackage``) converted from the PyTorch module, and
weight-only INT8 for it.

Core ML runs only on Apple's systems, so nothing here executes an artifact (``RUNS_HERE`` is
False and ``session`` refuses). What is checked instead, at export (``verify``): the conversion
itself, the program's input/output names, shapes and float32 types, its op histogram, and the
precision through a PyTorch proxy - the converted (reparameterized) module in fp16 against the
model in fp32 on export's inputs. The proxy says whether the model survives fp16 (range,
rounding); it does not run the converted graph.

Conversion goes through ``torch.export`` (+ ``run_decompositions({})``, the ATen dialect
coremltools reads), which converts every family: with coremltools 9.0 under numpy >= 2.4 the
TorchScript route fails for many of them (its ``aten::Int`` conversion calls ``int()`` on a
1-element array, an error since numpy 2.4). The program takes and returns float32 (``input`` ->
``logits``) and computes in fp16 (iOS 16 ML Program); the batch is 1, a static graph, which is
what the Neural Engine runs. Where each op runs (Neural Engine, GPU, CPU) is decided on the device
when the model loads and cannot be known here.

INT8 (``int8``) quantizes weights only (coremltools ``linear_quantize_weights``, symmetric, int8):
iOS 16 dequantizes them to fp16 when the model loads, so INT8 halves the download against fp16
while activations stay fp16; calibration images are not used (NNCF's --transformer and --preset
are refused). ``proxy_session`` is the numerical
stand-in for what the device computes: a PyTorch copy in fp16 whose selected weights are replaced
by exactly the dequantized values the artifact stores (``int8`` checks the two agree bit for bit).
Recipe options (QuantRecipe):

- ``per_channel`` (default True): one scale per output channel; False: one per tensor.
- ``keep_first_last``: the stem conv and the classifier (the first conv and the last Linear the
  module registers) stay fp16.
- ``exclude_ops``: layer kinds whose weights stay fp16: "conv", "linear", "conv_transpose"
  (ONNX names Conv, Gemm, MatMul, ConvTranspose are accepted).
- ``float_nodes``: module names (of the reparameterized model) whose weights stay fp16.
- ``method``: "minmax" only - a weight's range is its max |w| (per channel).

Weights of at most 2048 values (``MIN_INT8_VALUES``; coremltools' default) stay fp16: depthwise
kernels of narrow layers, tiny FCs - little size to gain, and they are the most sensitive.
"""
from __future__ import annotations

import collections
import contextlib
import copy
import io
import json
import logging
import os
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ...errors import ConfigError, EdgeVisionError
from ...files import atomic_write, install_tree
from ..calibration import QuantizeError
from ..session import RuntimeMissing, Session, require

NAME = "coreml"
FORMAT = "coreml"
SUFFIX = ".mlpackage"
SOURCE = "torch"
# weight-only INT8: a weight's range is its own max |w|; no activation ranges are estimated
METHODS = ("minmax",)
RUNS_HERE = False  # Core ML executes only on macOS/iOS
CALIBRATES = False  # INT8 is weight-only: quantize() draws no calibration images

# fp16 proxy tolerance, relative to max(1, max |logit|): fp16 rounds every value to 2^-11 relative
# and the rounding of 50-200 layers accumulates (most in deep ReLU6 nets with random weights; the
# registry's figures are in docs/deploy.md), while a wrong op, a swapped weight or an fp16 overflow
# (inf/NaN) gives errors of order 1.
FP16_RTOL = 3e-2
MIN_INT8_VALUES = 2048  # weights with more values than this are quantized (coremltools' default)
# coremltools passes that change conv weights (fold a following scale or batch norm into them)
_WEIGHT_REWRITING_PASSES = ("common::fuse_conv_scale", "common::fuse_conv_batchnorm")
_PROXY_LABEL = "fp16 PyTorch proxy"
_NOT_HERE = "not executed on this OS"


def _coremltools():
    """coremltools, imported quietly (it logs a warning per missing macOS-only component)."""
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    try:
        with _quiet():
            return require("coremltools", "-e '.[mobile]'")
    except RuntimeMissing as e:
        raise RuntimeMissing(f"{e} (or `pip install coremltools==9.0`)") from None


@contextlib.contextmanager
def _quiet():
    """No warnings and no progress bars (coremltools draws tqdm bars on stderr per pass)."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def session(path: str | os.PathLike, threads: int = 0, precision: str = "fp32") -> Session:
    """Refused: Core ML executes only on Apple's systems (see ``proxy_session``)."""
    raise EdgeVisionError(f"Core ML models run only on macOS/iOS; {path} cannot be executed on "
                          f"{sys.platform}: copy it to a Mac or an iOS app (export and quantize "
                          f"check it here through a PyTorch proxy)")


def _model_name(module) -> str:
    return getattr(module, "model_name", "") or type(module).__name__


def _convert(module, example, package_dir: Path | None = None, keep_weights: bool = False):
    """``module`` (eval, NCHW) as an fp16 ML Program with float32 ``input`` and output (named by
    ``export.output_name``: ``logits`` for a classifier).
    ``keep_weights``: without the graph passes that fold a following per-channel scale into a
    conv's weights (INT8 then quantizes the weights PyTorch has, which ``proxy_session`` uses)."""
    if example.shape[0] != 1:
        raise ConfigError("Core ML export is batch 1 (a static graph, what the Neural Engine runs); "
                          "export without --dynamic-batch")
    ct = _coremltools()
    import torch

    from ..export import ExportError, output_name
    name = _model_name(module)
    with torch.no_grad():  # warm-up: size-dependent constants (attention-bias tables) get cached
        module(example)
    try:
        with _quiet():
            program = torch.export.export(module, (example,)).run_decompositions({})
    except Exception as e:
        raise ExportError(f"torch.export of {name} failed, so Core ML cannot convert it: "
                          f"{_first_line(e)}") from None
    pipeline = ct.PassPipeline.DEFAULT
    if keep_weights:
        pipeline.remove_passes(_WEIGHT_REWRITING_PASSES)
    features = dict(inputs=[ct.TensorType(name="input", shape=tuple(example.shape), dtype=np.float32)],
                    # float32 I/O, fp16 inside
                    outputs=[ct.TensorType(name=output_name(module), dtype=np.float32)])
    try:
        with _quiet():
            return ct.convert(program, convert_to="mlprogram", compute_precision=ct.precision.FLOAT16,
                              minimum_deployment_target=ct.target.iOS16, pass_pipeline=pipeline,
                              package_dir=None if package_dir is None else str(package_dir), **features)
    except Exception as e:  # coremltools names an op it has no conversion for in one of these ways
        op = re.search(r"Unsupported fx node (\w+)|convert function for op '(\w+)'", str(e))
        what = (f"op {op.group(1) or op.group(2)} is not supported by coremltools {ct.__version__}"
                if op else _first_line(e))
        raise ExportError(f"Core ML cannot convert {name}: {what}; export it for another runtime "
                          f"(onnx, openvino)") from None


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:240]


def build(module, example, onnx_path: Path | None, workdir: Path) -> Path:
    """The fp16 ML Program, written as ``workdir``/model.mlpackage; the conversion time goes to a
    JSON beside it for ``notes``."""
    art = Path(workdir) / f"model{SUFFIX}"
    start = time.perf_counter()
    _convert(module, example, package_dir=art)
    _write_info(art, {"convert_s": round(time.perf_counter() - start, 1)})
    return art


def _info_path(artifact: Path) -> Path:
    return Path(artifact).with_name(Path(artifact).name + ".info.json")


def _write_info(artifact: Path, info: dict) -> None:
    with atomic_write(_info_path(artifact), ".json") as tmp:
        tmp.write_text(json.dumps(info))


def _spec(path: Path):
    ct = _coremltools()
    try:
        with _quiet():
            return ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    except Exception as e:
        raise EdgeVisionError(f"{path} is not a readable Core ML package: {_first_line(e)}") from None


def op_histogram(spec) -> collections.Counter:
    """Op type -> count over every function and block of the ML Program (const ops included)."""
    hist = collections.Counter()
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            hist.update(op.type for op in block.operations)
    return hist


def _runtime_ops(hist: collections.Counter) -> collections.Counter:
    """The ops that run: without const and constexpr_* ops (weights, materialized at load time)."""
    return collections.Counter({t: n for t, n in hist.items()
                                if t != "const" and not t.startswith("constexpr_")})


def _io(spec) -> dict[str, tuple[str, tuple[int, ...], str]]:
    """"input"/"output" -> (name, shape, data type) of the program's single feature of each kind."""
    ct = _coremltools()
    names = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name
    out = {}
    for kind, feats in (("input", spec.description.input), ("output", spec.description.output)):
        if len(feats) != 1:
            out[kind] = (f"{len(feats)} features", (), "")
            continue
        a = feats[0].type.multiArrayType
        out[kind] = (feats[0].name, tuple(int(d) for d in a.shape), names(a.dataType))
    return out


def verify(report, model, artifact: Path, inputs: dict, atol: float, deploy=None) -> None:
    """What export checks instead of running the artifact: the package loads as a spec, its I/O is
    float32 ``input`` (export's input shape) -> the output ``export.output_name`` names (the
    model's output shape), its program has operations, and the converted module in fp16
    (PyTorch) stays within
    ``max(atol, FP16_RTOL)`` x max(1, max |logit|) of ``model`` in fp32 on each input. ``deploy``:
    the module that was converted (default: ``model`` reparameterized, as export converts it),
    whose folded weights are what Core ML computes with. Fills ``report`` or raises ExportError."""
    import torch

    from ..export import ExportError, output_name
    from ..reparam import reparameterize
    spec = _spec(artifact)
    if deploy is None:
        deploy = reparameterize(model, input_size=tuple(inputs["random"].shape[-2:]))
    with torch.no_grad():
        refs = {k: model(x).float() for k, x in inputs.items()}
    want = {"input": ("input", tuple(inputs["random"].shape), "FLOAT32"),
            "output": (output_name(model), tuple(next(iter(refs.values())).shape), "FLOAT32")}
    got = _io(spec)
    for kind in ("input", "output"):
        if got[kind] != want[kind]:
            raise ExportError(f"the Core ML program's {kind} is {got[kind]}, expected {want[kind]} "
                              f"(name, shape, type); nothing was written")
    if not _runtime_ops(op_histogram(spec)):
        raise ExportError("the Core ML program has no operations; nothing was written")
    report.precision = f"fp16 ({_NOT_HERE})"
    half = _fp16_copy(deploy)
    agree = 0
    for kind, x in inputs.items():
        ref = refs[kind].numpy()
        with torch.no_grad():
            got16 = half(x.half()).float().numpy()
        diff = float(np.abs(ref - got16).max())
        report.max_abs_diff[f"{kind} ({_PROXY_LABEL})"] = diff
        agree += int((ref.argmax(-1) == got16.argmax(-1)).all())
        tol = max(atol, FP16_RTOL) * max(1.0, float(np.abs(ref).max()))
        if not diff <= tol:  # NaN (fp16 overflow) fails too
            raise ExportError(f"{_model_name(model)} in fp16 (what Core ML computes) differs from fp32 on "
                              f"the {kind} input: max abs diff {diff:.3g} > {tol:.3g} "
                              f"(PyTorch fp16 proxy); nothing was written")
    report.notes.append(f"Core ML: {_NOT_HERE} (macOS/iOS only); checked: conversion, I/O "
                        f"names/shapes/dtypes, op histogram (top ops), {_PROXY_LABEL}")
    if ref.ndim == 2:  # class logits; a dense output (maps, anchors) is checked by its difference
        report.notes.append(f"{_PROXY_LABEL}: same top-1 as fp32 on {agree} of {len(inputs)} inputs")


def _fp16_copy(module):
    return copy.deepcopy(module).eval().half()


def notes(artifact: Path) -> list[str]:
    """The program's op histogram (top ops), and what INT8 quantized when the artifact is INT8."""
    ops = _runtime_ops(op_histogram(_spec(artifact)))
    top = ", ".join(f"{t} {n}" for t, n in ops.most_common(8))
    more = len(ops) - min(len(ops), 8)
    lines = [f"Core ML program: {sum(ops.values())} ops ({top}{f', +{more} types' if more else ''}); "
             f"placement on Neural Engine/GPU/CPU is decided on the device"]
    info = json.loads(_info_path(artifact).read_text()) if _info_path(artifact).is_file() else {}
    if "convert_s" in info:
        lines[0] += f"; converted in {info['convert_s']:.1f} s"
    if "int8" in info:
        q = info["int8"]
        lines.append(f"INT8 weights ({q['granularity']}, symmetric): {q['quantized']} of {q['candidates']} "
                     f"conv/linear weights; fp16: {q['small']} with <= {MIN_INT8_VALUES} values, "
                     f"{q['kept']} kept by the recipe; activations fp16")
    return lines


# module kind -> the Core ML op its weight feeds; ONNX op names are accepted in exclude_ops
_EXCLUDABLE = {"conv": "conv", "linear": "linear", "conv_transpose": "conv_transpose", "gemm": "linear",
               "matmul": "linear", "convtranspose": "conv_transpose"}
_DEFAULT_RECIPE = {"per_channel": True, "keep_first_last": False, "exclude_ops": (), "float_nodes": ()}


def _kind(m) -> str | None:
    from torch import nn
    if not isinstance(getattr(m, "weight", None), nn.Parameter):
        return None
    if isinstance(m, nn.modules.conv._ConvTransposeNd):
        return "conv_transpose"
    if isinstance(m, nn.modules.conv._ConvNd):
        return "conv"
    return "linear" if isinstance(m, nn.Linear) else None


def _int8_plan(module, recipe) -> tuple[dict, dict]:
    """The conv/linear modules whose weights INT8 quantizes (name -> module), and the counts for
    ``notes``; refuses recipe options that name nothing in ``module``."""
    opt = {k: getattr(recipe, k, v) for k, v in _DEFAULT_RECIPE.items()}
    if getattr(recipe, "transformer", False) or getattr(recipe, "preset", "performance") != "performance":
        raise ConfigError("--transformer and --preset choose NNCF's activation quantization; Core ML "
                          "INT8 quantizes weights only: drop them")
    layers = [(n, m, k) for n, m in module.named_modules() if (k := _kind(m))]
    unknown = [o for o in opt["exclude_ops"] if o.lower() not in _EXCLUDABLE]
    if unknown:
        raise ConfigError(f"Core ML INT8 quantizes weights only: exclude_ops can name conv, linear or "
                          f"conv_transpose (their weights stay fp16), not {', '.join(unknown)}")
    names = {n for n, _, _ in layers}
    missing = [n for n in opt["float_nodes"] if n not in names]
    if missing:
        raise ConfigError(f"float_nodes {missing} are not conv/linear modules of "
                          f"{_model_name(module)}; name modules of the reparameterized model, e.g. "
                          f"{sorted(names)[:3]}")
    keep = set(opt["float_nodes"])
    if opt["keep_first_last"]:
        convs = [n for n, _, k in layers if k == "conv"]
        linears = [n for n, _, k in layers if k == "linear"]
        keep |= set(convs[:1] + linears[-1:])
    excluded = {_EXCLUDABLE[o.lower()] for o in opt["exclude_ops"]}
    big = [(n, m, k) for n, m, k in layers if m.weight.numel() > MIN_INT8_VALUES]
    chosen = {n: m for n, m, k in big if n not in keep and k not in excluded}
    return chosen, {"granularity": "per-channel" if opt["per_channel"] else "per-tensor",
                    "candidates": len(layers), "quantized": len(chosen),
                    "small": len(layers) - len(big), "kept": len(big) - len(chosen)}


def _fake_int8(w: np.ndarray, axis: int | None) -> np.ndarray:
    """``w`` (fp16) quantized to symmetric int8 (range +-127, one scale per index of ``axis``, or
    per tensor) and dequantized, in fp16 arithmetic: what coremltools stores for the device."""
    axes = None if axis is None else tuple(i for i in range(w.ndim) if i != axis)
    max_abs = np.maximum(np.abs(np.amin(w, axis=axes, keepdims=True)),
                         np.abs(np.amax(w, axis=axes, keepdims=True)))
    scale = (max_abs - (-max_abs)) / np.float16(254)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.clip(np.nan_to_num(np.round(w / scale)), -127, 127).astype(np.int8)
    return (q.astype(np.float32) * scale.astype(np.float32)).astype(np.float16)


def _axis(module, per_channel: bool) -> int | None:
    """The output-channel axis of the weight (a transposed conv stores (in, out, ...))."""
    return None if not per_channel else (1 if _kind(module) == "conv_transpose" else 0)


def proxy_session(module, precision: str = "int8", recipe=None, threads: int = 0) -> Session:
    """A PyTorch stand-in for what the device computes, since Core ML cannot run here: ``module``
    in fp16 ("fp16"), or in fp16 with the weights ``int8`` quantizes for ``recipe`` replaced by
    the same dequantized INT8 values ("int8"). Any batch size; ``threads`` is not used (PyTorch's
    own setting applies)."""
    import torch
    if precision not in ("fp16", "int8"):
        raise ConfigError(f"the Core ML proxy runs fp16 or int8, not {precision!r}")
    half = _fp16_copy(module)
    if precision == "int8":
        per_channel = getattr(recipe, "per_channel", True)
        chosen, _ = _int8_plan(half, recipe)
        with torch.no_grad():
            for m in chosen.values():
                w = _fake_int8(m.weight.detach().numpy(), _axis(m, per_channel))
                m.weight.copy_(torch.from_numpy(w))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return half(torch.from_numpy(x).half()).float().numpy()
    label = "int8 weights, fp16" if precision == "int8" else "fp16"
    return Session(NAME, f"{label} (PyTorch proxy; {_NOT_HERE})", run)


def int8(module, dst: Path, calib: np.ndarray, recipe, val=None, val_labels=None) -> tuple[str, list[str]]:
    """The fp16 program with the weights chosen by ``recipe`` (module docstring) stored as
    symmetric INT8 (coremltools ``linear_quantize_weights``), written to ``dst``. ``calib`` only
    gives the input shape: weight-only INT8 needs no activation ranges. Each quantized weight is
    checked to hold exactly the values ``proxy_session`` uses. No accuracy control: ("", [])."""
    import torch
    _coremltools()
    import coremltools.optimize.coreml as cto
    chosen, counts = _int8_plan(module, recipe)
    per_channel = getattr(recipe, "per_channel", True)
    mlmodel = _convert(module, torch.from_numpy(np.ascontiguousarray(calib[:1])), keep_weights=True)
    quantized = None
    try:
        consts = _weight_consts(mlmodel._mil_program, chosen, _model_name(module))
        cfg = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8",
                                          granularity="per_channel" if per_channel else "per_tensor",
                                          weight_threshold=MIN_INT8_VALUES)
        with _quiet():
            quantized = cto.linear_quantize_weights(
                mlmodel, config=cto.OptimizationConfig(op_name_configs={c: cfg for c in consts.values()}))
        _check_proxy(quantized._mil_program, consts, chosen, per_channel)
        with _quiet():
            quantized.save(str(dst))
    finally:
        for m in (mlmodel, quantized):
            if m is not None and m.is_temp_package:
                shutil.rmtree(m.package_path, ignore_errors=True)
    _write_info(dst, {"int8": counts})
    return "", []


def _program_ops(program):
    for fn in program.functions.values():
        yield from fn.operations


def _weight_consts(program, chosen: dict, model: str) -> dict[str, str]:
    """Module name -> the name of the const op holding its weight, found by value (the fp16 copy
    of the PyTorch weight; a Linear may have become a 1x1 conv, its weight gaining two unit
    dimensions); QuantizeError for a weight the converter changed."""
    import torch
    index = {}
    for op in _program_ops(program):
        v = op.outputs[0].val if op.op_type == "const" else None
        if isinstance(v, np.ndarray) and v.dtype == np.float16 and v.ndim > 1:
            index.setdefault(v.tobytes(), (op.name, v.shape))
    out = {}
    for name, m in chosen.items():
        w = m.weight.detach().to(torch.float16).numpy()
        const, shape = index.get(w.tobytes(), (None, ()))
        if const is None or shape[:w.ndim] != w.shape or any(d != 1 for d in shape[w.ndim:]):
            raise QuantizeError(f"Core ML INT8: the weight of {name} in {model} is not in the converted "
                                f"program as PyTorch has it (the converter rewrote it); keep it in fp16 "
                                f"with float_nodes=('{name}',)")
        out[name] = const
    return out


def _check_proxy(program, consts: dict, chosen: dict, per_channel: bool) -> None:
    """Every weight the quantized program dequantizes equals ``_fake_int8`` of the PyTorch weight
    (the proxy's values), bit for bit."""
    import torch
    ops = {op.name: op for op in _program_ops(program) if op.op_type.startswith("constexpr_")}
    for name, const in consts.items():
        op = ops.get(f"{const}_quantized")
        if op is None:
            raise QuantizeError(f"Core ML INT8 left the weight of {name} unquantized; keep it in fp16 "
                                f"with float_nodes=('{name}',)")
        stored = op.materialized_val_inference()  # what the device dequantizes to
        m = chosen[name]
        proxy = _fake_int8(m.weight.detach().to(torch.float16).numpy(), _axis(m, per_channel))
        if stored.size != proxy.size:
            raise QuantizeError(f"Core ML INT8 stored a weight of shape {stored.shape} for {name}, "
                                f"whose PyTorch weight is {proxy.shape}; please report")
        stored = stored.reshape(proxy.shape).astype(np.float16)  # a Linear's weight may be 4-D here
        if not np.array_equal(stored, proxy):
            raise QuantizeError(f"Core ML INT8 stored other values for {name} than the PyTorch proxy "
                                f"computes (max diff {np.abs(stored - proxy).max():.3g}); please report")


def check_output(out: Path) -> None:
    if Path(out).suffix != SUFFIX:
        raise ConfigError(f"Core ML output must be an {SUFFIX} path (a directory package)")


def install(artifact: Path, out: Path) -> int:
    return install_tree(artifact, out)
