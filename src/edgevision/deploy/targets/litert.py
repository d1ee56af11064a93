"""LiteRT (.tflite, Android): litert-torch converts the reparameterized PyTorch module; the
LiteRT runtime runs it on CPU with XNNPACK (CompiledModel API, ``XNNPACK_FLAGS``).

fp32: ``litert_torch.convert(module, (example,))`` after ``one_group_norms_decomposed`` (so
XNNPACK takes MobileViT V2 whole). The file keeps the NCHW float32 input every edgevision
session takes; the converter works in NHWC and adds one TRANSPOSE after the input,
run by XNNPACK. A channels-last input (``litert_torch.to_channel_last_io``) drops that op but
moves the same transpose into the caller, for no measurable gain (docs/deploy.md).

INT8: static PT2E quantization (signed 8-bit activations, symmetric signed weights, ReLU6
outputs observed after the clamp: ``deploy/pt2e.py``) calibrated on the images ``quantize()``
draws. The recipe: ``per_channel`` (default) one weight scale per
output channel, else per tensor; ``method`` "minmax" (global min/max over the images, as in the
other runtimes) or "histogram" (PT2E's HistogramObserver, litert-torch's default);
``keep_first_last`` leaves the stem conv and the classifier (first conv, last linear or conv
run) in float; ``exclude_ops`` names module classes (e.g. "SqueezeExcite") and ``float_nodes``
module names (e.g. "stages.3.0") kept in float; the NNCF options (``transformer``, ``preset``,
``max_drop``, ``quantize_se``) are refused. On purpose:

- I/O stays float32. litert-torch folds the first and last quantize/dequantize pair into int8
  input and output unless its converter config's ``strict_qdq_mode`` is set, which its API does
  not expose: ``_float_io`` sets it for the one conversion call (a clear error if it is gone),
  and the file's input and output are checked to be float32 afterwards.
- Hard-swish and hard-sigmoid become ``x * (relu6(x + 3) * 1/6)`` and ``relu6(x + 3) * 1/6``
  (PyTorch's up to fp32 rounding): XNNPACK has no int8 HARD_SWISH, and the ops it leaves to the
  built-in kernels split MobileNetV3 into many partitions, slower than fp32; rewritten, it is one
  partition. The constants are (1, 1, 1, 1) tensors so the converter's NHWC layout pass goes
  through them (scalars leave a TRANSPOSE pair around every activation).
- The module is captured with strict ``torch.export`` (TorchDynamo), which records the Python
  function behind each op: the quantizer finds additions, multiplications and pools by it, so
  residual additions are int8 rather than float between a DEQUANTIZE and a QUANTIZE.

``UNSUPPORTED``/``UNSUPPORTED_INT8`` (model or family -> reason) are refused up front, one error.
Delegation: each converted file is loaded and its XNNPACK partitions traced back to the ops they
took; the counts (and the op types left to LiteRT's built-in kernels) are stored beside the
workdir artifact for ``notes``. Sessions run a batch one image at a time through the batch-1
graph (exact; the compiled model is re-used).
"""
from __future__ import annotations

import collections
import copy
import json
import logging
import os
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, EdgeVisionError
from ...files import atomic_write, install_file
from ..calibration import QuantizeError
from ..pt2e import calibrate, clamp_aware, with_observer
from ..session import RuntimeMissing, Session, require
from ..xnnpack_rewrites import one_group_norms_decomposed
from ._unsupported import model_name as _model_name
from ._unsupported import delegation_line, refuse

NAME = "litert"
FORMAT = "litert"
SUFFIX = ".tflite"
SOURCE = "torch"
METHODS = ("minmax", "histogram")

_PIP = {"litert_torch": "litert-torch==0.10.0", "ai_edge_litert": "ai-edge-litert==2.3.0"}
UNSUPPORTED: dict[str, str] = {}  # model or family -> why the target refuses it (fp32)
UNSUPPORTED_INT8: dict[str, str] = {}


def _require(module: str):
    """``module`` imported quietly (litert-torch logs from C++ at import), or RuntimeMissing."""
    if sys.modules.get(module) is not None:
        return sys.modules[module]
    try:
        with _quiet():
            return require(module, _PIP[module])
    except RuntimeMissing:
        raise RuntimeMissing(f"{module} is not installed; install it with `.venv/bin/pip install -e "
                             f"'.[mobile]'` (or `pip install {_PIP[module]}`)") from None


@contextmanager
def _quiet():
    """Keep the converter's and interpreter's chatter off the terminal: Python warnings,
    litert-torch's progress lines and the log lines its C++ libraries write straight to the
    process's stdout/stderr (file descriptors 1 and 2, redirected to a scratch file)."""
    progress = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no standard descriptors (embedded interpreter): nothing to redirect
        saved = []
    try:
        with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for fd in (1, 2) if saved else ():
                os.dup2(sink.fileno(), fd)
            try:
                yield
            finally:
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
                for fd, old in zip((1, 2), saved):
                    os.dup2(old, fd)
    finally:
        for old in saved:
            os.close(old)
        root.setLevel(level)
        if progress is None:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
        else:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = progress


# ---- sessions ------------------------------------------------------------------------------

def _interpreter(path: str | os.PathLike, threads: int = 0, allocate: bool = True):
    """The LiteRT interpreter of ``path``, with its tensors allocated (the interpreter's default
    XNNPACK delegate applied) if ``allocate``."""
    _require("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter
    try:
        with _quiet():
            it = Interpreter(model_path=str(path), num_threads=threads or os.cpu_count() or 1)
            if allocate:
                it.allocate_tensors()
    except Exception as e:  # the interpreter raises ValueError/RuntimeError for bad files
        raise EdgeVisionError(f"LiteRT cannot load {path}: {str(e).splitlines()[0][:200]}") from None
    return it


def _is_int8(it) -> bool:
    """Whether the model computes in int8 (quantized weights or activations)."""
    return any(t["dtype"] == np.int8 for t in it.get_tensor_details())


# XNNPACK delegate flags: QS8 (signed int8 ops), QU8 (unsigned int8 ops) and DYNAMIC_FULLY_CONNECTED
# (a FULLY_CONNECTED whose weights are computed at run time, e.g. attention's q @ k^T, which the
# interpreter's default delegate leaves to the built-in kernels).
XNNPACK_FLAGS = 0x1 | 0x2 | 0x8


def _compiled(path: str | os.PathLike, threads: int = 0):
    """``path`` compiled for the CPU by LiteRT's CompiledModel API with ``XNNPACK_FLAGS``."""
    _require("ai_edge_litert")
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import CpuOptions, Options
    opts = Options(hardware_accelerators=HardwareAccelerator.CPU,
                   cpu_options=CpuOptions(num_threads=threads or os.cpu_count() or 1,
                                          xnnpack_flags=XNNPACK_FLAGS))
    try:
        with _quiet():
            return CompiledModel.from_file(str(path), options=opts)
    except Exception as e:  # a bad file raises RuntimeError/ValueError
        raise EdgeVisionError(f"LiteRT cannot load {path}: {str(e).splitlines()[0][:200]}") from None


def session(path: str | os.PathLike, threads: int = 0, precision: str = "fp32") -> Session:
    """A LiteRT CPU session with ``threads`` threads (0: one per core): the file compiled by
    LiteRT's CompiledModel API with XNNPACK (``XNNPACK_FLAGS``). The precision is read from the
    file (int8 tensors or not) and must be the one asked for. A batch runs one image at a time
    through the batch-1 graph."""
    if precision not in ("fp32", "int8"):
        raise ConfigError(f"unknown LiteRT precision {precision!r}; use fp32 or int8")
    ran = "int8" if _is_int8(_interpreter(path, 1, allocate=False)) else "fp32"
    cm = _compiled(path, threads)
    signature = next(iter(cm.get_signature_list()), None)
    inp = list(cm.get_input_tensor_details(signature).values()) if signature else []
    out = list(cm.get_output_tensor_details(signature).values()) if signature else []
    if len(inp) != 1 or inp[0]["dtype"] != "float32" or len(inp[0]["shape"]) != 4 or \
            inp[0]["shape"][0] != 1 or len(out) != 1 or out[0]["dtype"] != "float32":
        raise EdgeVisionError(f"{path} is not an edgevision LiteRT model (one float32 NCHW batch-1 "
                              f"input and one float32 output); export it with "
                              f"`edgevision export NAME --format litert`")
    if ran != precision:
        raise EdgeVisionError(f"{path} computes in {ran}, not {precision}; open it with "
                              f"precision={ran!r}")
    shape, out_shape = tuple(int(v) for v in inp[0]["shape"][1:]), tuple(out[0]["shape"])
    ins, outs = cm.create_input_buffers(0), cm.create_output_buffers(0)
    size = int(np.prod(out_shape))

    def run(x: np.ndarray) -> np.ndarray:
        if x.ndim != 4 or tuple(x.shape[1:]) != shape:
            raise ConfigError(f"{path} takes (N, {', '.join(map(str, shape))}) images; got "
                              f"{tuple(x.shape)}: re-export it at this resolution")
        ys = []
        for k in range(len(x)):
            ins[0].write(np.ascontiguousarray(x[k:k + 1], np.float32))
            cm.run_by_index(0, ins, outs)
            ys.append(outs[0].read(size, np.float32).reshape(out_shape))
        return np.concatenate(ys)
    return Session(NAME, ran, run, inp[0]["name"])


# ---- delegation ----------------------------------------------------------------------------

def delegation(path: str | os.PathLike) -> dict:
    """How much of ``path`` XNNPACK takes in a session: {"ops", "delegated", "partitions", "left":
    {op type: count}}. After allocation the interpreter lists the model's ops followed by one
    DELEGATE node per partition of its default XNNPACK delegate, whose inputs and outputs are the
    partition's boundary tensors; walking back from its outputs to its inputs over the model's
    ops finds the ops it took. The session's CompiledModel adds ``XNNPACK_FLAGS``; when it reports
    the whole model accelerated, every op is XNNPACK's, in one partition (TFLite partitions a
    graph whose every node the delegate supports as one subset)."""
    ops = _interpreter(path, 1)._get_ops_details()
    model = [o for o in ops if o["op_name"] != "DELEGATE"]
    parts = [o for o in ops if o["op_name"] == "DELEGATE"]
    producer = {t: o["index"] for o in model for t in o["outputs"]}
    by_index = {o["index"]: o for o in model}
    taken: set[int] = set()
    for part in parts:
        stop, todo = set(part["inputs"]), list(part["outputs"])
        while todo:
            t = todo.pop()
            if t in stop or t not in producer or producer[t] in taken:
                continue
            taken.add(producer[t])
            todo.extend(by_index[producer[t]]["inputs"])
    left = collections.Counter(o["op_name"] for o in model if o["index"] not in taken)
    if left and _compiled(path, 1).is_fully_accelerated():
        return {"ops": len(model), "delegated": len(model), "partitions": 1, "left": {}}
    return {"ops": len(model), "delegated": len(taken), "partitions": len(parts),
            "left": dict(sorted(left.items()))}


def _delegation_file(artifact: Path) -> Path:
    return Path(artifact).with_name(Path(artifact).name + ".xnnpack.json")


def _record_delegation(artifact: Path, module, int8: bool = False, capture: str = "") -> None:
    """Store ``delegation(artifact)`` (and the ``capture`` note) beside it; a file the interpreter
    cannot load (an op LiteRT converts but has no kernel for) fails here, naming the model."""
    try:
        d = delegation(artifact)
    except EdgeVisionError as e:
        reason = RuntimeError(str(e).split(": ", 1)[-1])  # without the temporary file's path
        raise _failure(module, reason, "loading the LiteRT conversion", int8) from None
    with atomic_write(_delegation_file(artifact), ".json") as tmp:
        tmp.write_text(json.dumps({**d, "capture": capture}))


def notes(artifact: Path) -> list[str]:
    """One line: how many ops XNNPACK took, in how many partitions, and which op types it left
    to LiteRT's built-in kernels."""
    side = _delegation_file(artifact)
    if not side.is_file():
        return []
    d = json.loads(side.read_text())
    line = delegation_line(d["delegated"], d["ops"], d["partitions"], d["left"], "built-in kernels")
    return [line] + ([d["capture"]] if d.get("capture") else [])


# ---- fp32 ----------------------------------------------------------------------------------

def _failure(module, e: Exception, what: str, int8: bool = False) -> EdgeVisionError:
    """One line for a conversion that raised: the model, the step, the converter's first line."""
    from ..export import ExportError
    first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
    if int8:
        return QuantizeError(f"{what} of {_model_name(module)} failed: {first[:300]}; quantize it for "
                             f"another runtime (--runtime onnxruntime) instead")
    return ExportError(f"{what} of {_model_name(module)} failed: {first[:300]}; export it to ONNX "
                       f"(--format onnx) instead")


def build(module, example, onnx_path: Path | None, workdir: Path) -> Path:
    """The fp32 .tflite of ``module`` traced on ``example`` (NCHW float32 input), with its
    delegation recorded for ``notes``."""
    refuse(module, UNSUPPORTED, "LiteRT")
    lt = _require("litert_torch")
    art = Path(workdir) / "model.tflite"
    try:
        with _quiet():
            lt.convert(one_group_norms_decomposed(module.eval()), (example,)).export(str(art))
    except Exception as e:  # the converter raises many types (torch.export, MLIR lowering)
        raise _failure(module, e, "LiteRT conversion") from None
    _record_delegation(art, module)
    return art


def check_output(out: Path) -> None:
    if Path(out).suffix != SUFFIX:
        raise ConfigError("LiteRT output must be a .tflite path")


def install(artifact: Path, out: Path) -> int:
    return install_file(artifact, out)


# ---- INT8 ----------------------------------------------------------------------------------

def int8(module, dst: Path, calib: np.ndarray, recipe, val=None, val_labels=None) -> tuple[str, list[str]]:
    """Static INT8 of ``module`` (the reparameterized eval-mode model) at ``dst``, calibrated on
    ``calib`` (N, C, H, W) as ``recipe`` says (module docstring), float32 I/O, delegation recorded
    for ``notes``. No accuracy control: returns ("", [])."""
    refuse(module, UNSUPPORTED_INT8, "LiteRT", int8=True)
    _refuse_nncf_options(recipe)
    lt = _require("litert_torch")
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    example = torch.from_numpy(calib[:1])
    model = _for_int8(module)
    quantizer = _quantizer(recipe, _float_types(model, recipe, example))
    with _quiet():
        graph, capture = _capture(model, example)
        graph = prepare_pt2e(graph, quantizer)
        calibrate(graph, calib)
        graph = convert_pt2e(graph, fold_quantize=False)
        for m in graph.modules():  # exported modules refuse .eval(); litert-torch warns otherwise
            m.training = False
        try:
            with _float_io():
                lt.convert(graph, (example,), quant_config=QuantConfig(pt2e_quantizer=quantizer)) \
                    .export(str(dst))
        except QuantizeError:
            raise
        except Exception as e:
            raise _failure(module, e, "LiteRT INT8 conversion", int8=True) from None
    _record_delegation(dst, module, int8=True, capture=capture)
    _check_float_io(dst)
    return "", []


def _capture(model: nn.Module, example: torch.Tensor):
    """The module as a graph for PT2E, and "" or a note on how it was captured.

    Strict ``torch.export`` (TorchDynamo) records the Python function behind each op, which the
    quantizer needs to find additions, multiplications, concatenations and pools; without it they
    stay in float (the converter quantizes some of them by itself). A model Dynamo cannot trace
    (data-dependent Python) is captured the default, non-strict way, and the note says so."""
    try:
        return torch.export.export(model, (example,), strict=True).module(), ""
    except Exception as e:  # Dynamo's refusals come as many exception types
        reason = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)[:160]
    graph = torch.export.export(model, (example,)).module()
    return graph, (f"INT8 captured without TorchDynamo ({reason}): additions, multiplications, "
                   f"concatenations and pools are quantized only where the converter infers it")


def _refuse_nncf_options(recipe) -> None:
    if recipe.transformer or recipe.preset != "performance":
        raise ConfigError("--transformer and --preset are NNCF presets; add --runtime openvino or "
                          "drop them for litert")


@contextmanager
def _float_io():
    """litert-torch converts with float32 input and output (QUANTIZE first, DEQUANTIZE last)
    while this is active: its converter config's ``strict_qdq_mode``, which its API does not
    expose, is set on the configs created inside."""
    from litert_torch._convert import litert_converter as lc
    ext = getattr(lc, "converter_api_ext", None)
    if ext is None or not hasattr(ext, "ConvertToTFLConfig") or \
            not hasattr(ext.ConvertToTFLConfig(), "strict_qdq_mode"):
        raise QuantizeError(f"this litert-torch no longer has the converter flag that keeps an INT8 "
                            f"model's input and output in float32 (strict_qdq_mode); install "
                            f"{_PIP['litert_torch']}")

    class FloatIO:
        def __getattr__(self, name):
            return getattr(ext, name)

        @staticmethod
        def ConvertToTFLConfig():  # noqa: N802 (the name litert-torch calls)
            config = ext.ConvertToTFLConfig()
            config.strict_qdq_mode = True
            return config
    lc.converter_api_ext = FloatIO()
    try:
        yield
    finally:
        lc.converter_api_ext = ext


def _check_float_io(path: Path) -> None:
    it = _interpreter(path, 1)
    dtypes = [d["dtype"] for d in it.get_input_details() + it.get_output_details()]
    if any(t != np.float32 for t in dtypes):
        raise QuantizeError(f"the INT8 conversion produced {', '.join(np.dtype(t).name for t in dtypes)} "
                            f"input/output instead of float32; install {_PIP['litert_torch']}")


def _quantizer(recipe, float_types: list):
    """PT2E's symmetric static config (per-channel or per-tensor weights) with the recipe's
    activation observer and ReLU6 outputs observed after the clamp (pt2e.py); the module types
    in ``float_types`` are left unquantized."""
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    config = with_observer(get_symmetric_quantization_config(is_per_channel=recipe.per_channel,
                                                             is_dynamic=False), recipe.method)
    quantizer = clamp_aware(PT2EQuantizer)().set_global(config)
    for t in float_types:  # None: the nodes of these modules get no annotation, i.e. stay float
        # the quantizer compares with the types torch.export records in each node's module stack:
        # classes in older torch, "module.QualName" strings in newer ones
        quantizer.set_module_type(t, None)
        quantizer.set_module_type(f"{t.__module__}.{t.__qualname__}", None)
    return quantizer


class _HardSigmoid(nn.Module):
    """relu6(x + 3) * 1/6: PyTorch's hardsigmoid up to fp32 rounding, in ops XNNPACK runs in int8."""

    def __init__(self):
        super().__init__()
        # 4-D constants keep NCHW activations in the converter's NHWC layout
        self.register_buffer("three", torch.full((1, 1, 1, 1), 3.0), persistent=False)
        self.register_buffer("sixth", torch.full((1, 1, 1, 1), 1.0 / 6.0), persistent=False)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            return F.relu6(x + 3.0) * (1.0 / 6.0)
        return F.relu6(x + self.three) * self.sixth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(x)


class _HardSwish(_HardSigmoid):
    """x * hard-sigmoid(x): the gate lies in [0, 1], so it quantizes finely."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


_INT8_ACTIVATIONS = {nn.Hardswish: _HardSwish, nn.Hardsigmoid: _HardSigmoid}


class _KeepFloat(nn.Module):
    """Marks a module the quantizer leaves in float."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, *args, **kwargs):
        return self.inner(*args, **kwargs)


def _for_int8(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with hard-swish and hard-sigmoid in ops XNNPACK runs in int8."""
    model = copy.deepcopy(module).eval()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) in _INT8_ACTIVATIONS:
                setattr(parent, name, _INT8_ACTIVATIONS[type(child)]())
    return model


def _float_types(model: nn.Module, recipe, example: torch.Tensor) -> list:
    """The module types the quantizer leaves in float: those ``exclude_ops`` names, and a marker
    type wrapped around the modules ``keep_first_last`` and ``float_nodes`` name (``model`` is
    changed)."""
    by_name = {type(m).__name__: type(m) for m in model.modules()}
    types = []
    for op in recipe.exclude_ops:
        if op not in by_name:
            raise ConfigError(f"{_model_name(model)} has no module of type {op!r}; exclude_ops takes "
                              f"module class names: {', '.join(sorted(by_name))}")
        types.append(by_name[op])
    modules = dict(model.named_modules())
    names = list(recipe.float_nodes)
    for n in names:
        if not n or n not in modules:
            raise ConfigError(f"no module named {n!r} in {_model_name(model)}; float_nodes takes "
                              f"module names as model.named_modules() gives them")
    if recipe.keep_first_last:
        names += _first_last(model, example)
    for name in sorted(set(names), key=lambda n: -n.count(".")):  # inner modules first
        parent, _, attr = name.rpartition(".")
        owner = model.get_submodule(parent)
        setattr(owner, attr, _KeepFloat(getattr(owner, attr)))
    return types + ([_KeepFloat] if names else [])


def _first_last(model: nn.Module, example: torch.Tensor) -> list[str]:
    """The names of the first conv and of the last linear or conv that run: stem and classifier."""
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: order.append(n))
             for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    convs = [n for n in order if isinstance(model.get_submodule(n), nn.Conv2d)]
    return list(dict.fromkeys(convs[:1] + order[-1:]))
