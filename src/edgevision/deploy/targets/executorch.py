"""ExecuTorch (CPU, XNNPACK delegate): a ``.pte`` program for phones, fp32 or PT2E INT8.

Build: ``torch.export`` of the reparameterized NCHW module at batch 1 -> the graph rewrites of
``xnnpack_rewrites`` (the same function in ops XNNPACK has: LayerNorm, attention, means ...) ->
``to_edge_transform_and_lower`` with the XNNPACK partitioner -> ``.pte``. How much of the graph
XNNPACK took, and what was rewritten, is recorded beside the artifact in the work directory
(``<artifact>.xnnpack.json``) and reported by ``notes()``.

INT8 (``int8()``): PT2E with ``XNNPACKQuantizer`` — signed 8-bit weights, asymmetric signed 8-bit
activations, ReLU6 outputs observed after the clamp (``deploy/pt2e.py``) — calibrated one image
at a time, converted, rewritten as above (so LayerNorm stays in float, inside XNNPACK) and
lowered. Recipe options:

- ``per_channel`` (default True): per-output-channel weight scales; False: one scale per tensor;
- ``method``: activation ranges, "minmax" (the global min/max over the calibration images, as in
  the other runtimes) or "histogram" (PyTorch's HistogramObserver: the range that minimizes the
  quantization error of the observed histogram);
- ``keep_first_last``: the stem conv and the classifier (the first conv and the last conv/Linear
  in graph order) stay in float;
- ``exclude_ops``: module class names whose modules stay in float (e.g. "Hardswish", "Linear");
- ``float_nodes``: qualified module names (as in ``named_modules()``) that stay in float.

Models the target cannot take are declared in ``UNSUPPORTED`` (fp32) and ``UNSUPPORTED_INT8``
(registry name or family -> reason): ``build`` and ``int8`` refuse them before any work with one
ExportError/QuantizeError saying what to use instead. ``FLOAT_INT8`` lists the families whose
attention modules INT8 keeps in float (and why); the report's notes name them. A program that
fails at run time raises one EdgeVisionError with the runtime's logged reason.

Sessions run the batch-1 program once per image of a batch (the output rows are copies), so any
batch size works. The thread pool is process-wide, and resizing it breaks every program already
loaded: a session with ``threads`` > 0 resizes it only while no other session is open, and
refuses (ConfigError) a count different from the open sessions' (0: the runtime's default, or the
count of the sessions already open).
"""
from __future__ import annotations

import copy
import ctypes
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

from ...errors import ConfigError, EdgeVisionError
from ...files import atomic_write, install_file
from ..pt2e import calibrate, clamp_aware, with_observer
from ..session import RuntimeMissing, Session, require
from ..xnnpack_rewrites import rewrite
from ._unsupported import model_name as _model_name
from ._unsupported import delegation_line, refuse

NAME = "executorch"
FORMAT = "executorch"
SUFFIX = ".pte"
SOURCE = "torch"
METHODS = ("minmax", "histogram")

_INSTALL = "`.venv/bin/pip install -e '.[mobile]'` (or `pip install executorch==1.5.1`)"
# loggers that report at INFO/WARNING during export and lowering (constant lifting, partitioning)
_LOGGERS = ("torch.utils._pytree", "torch.export", "torch._export", "torch.fx", "executorch", "torchao")
_default_threads: list[int] = []  # the runtime's own thread count, read before anyone changes it

# models (by registry name or family) the target refuses up front, with the reason
UNSUPPORTED: dict[str, str] = {}
UNSUPPORTED_INT8: dict[str, str] = {}
# family -> (module class kept in float in INT8, why): quantized, these attention modules' channel
# slices (the per-head q/k/v split, the 1-channel query score) stay outside XNNPACK, the program
# falls into many partitions and fails at run time (error 0x10, a partition boundary gets a wrong
# output shape); in float the whole program is one XNNPACK partition
FLOAT_INT8 = {
    "efficientvit_msra": ("CascadedGroupAttention", "quantized, its per-head q/k/v channel slices "
                          "break the program into partitions that fail at run time"),
    "mobilevitv2": ("SeparableSelfAttention", "quantized, its 1-channel query-score slice breaks the "
                    "program into partitions that fail at run time"),
}


class _Captured:
    """What the runtime wrote to stderr inside ``_quiet``, kept for error messages."""
    text = ""

    def reason(self, e: BaseException) -> str:
        """One line for an error: the exception's first line, with the runtime's last error log."""
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        logged = [ln.strip() for ln in self.text.splitlines()
                  if any(w in ln for w in ("rror", "issing", "ttempted"))]
        return first + (f" ({logged[-1][:200]})" if logged and logged[-1] not in first else "")


@contextmanager
def _quiet():
    """Python warnings, chatty loggers and the runtime's C++ log lines (written straight to file
    descriptor 2) are kept off the console; the captured text is available for error messages."""
    captured = _Captured()
    levels = {n: logging.getLogger(n).level for n in _LOGGERS}
    with warnings.catch_warnings(), tempfile.TemporaryFile() as log:
        warnings.simplefilter("ignore")
        for n in _LOGGERS:
            logging.getLogger(n).setLevel(logging.ERROR)
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            _flush_c_streams()
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            captured.text = log.read().decode(errors="replace")
            for n, level in levels.items():
                logging.getLogger(n).setLevel(level)


def _flush_c_streams() -> None:
    """Write out what C/C++ code buffered for stderr while it pointed at the capture file."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def _runtime():
    """The ExecuTorch runtime and the pybindings module that owns the thread pool."""
    try:
        with _quiet():
            require("executorch", "executorch")
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime
            runtime = Runtime.get()
            if not _default_threads:  # the first call creates the pool, which logs the CPU it sees
                _default_threads.append(portable_lib._threadpool_get_thread_count())
    except (RuntimeMissing, ImportError):
        raise RuntimeMissing(f"executorch is not installed; install it with {_INSTALL}") from None
    return runtime, portable_lib


class _Loaded:
    """A loaded method, counted while it lives: resizing the thread pool frees the threads that
    every method loaded before holds (they would crash), so it is only done when none is loaded."""
    alive = 0

    def __init__(self, method):
        self.method = method
        _Loaded.alive += 1

    def __del__(self):
        _Loaded.alive -= 1


def _use_threads(pool, threads: int) -> None:
    """Size the process-wide thread pool for a new session. 0 takes the runtime's default, or the
    pool as it is while other programs are loaded."""
    want, now = threads or _default_threads[0], pool._threadpool_get_thread_count()
    if want != now and _Loaded.alive:
        if threads:
            raise ConfigError(f"ExecuTorch's thread pool is shared by the whole process and runs {now} "
                              f"threads for the {_Loaded.alive} program(s) still loaded; close their "
                              f"sessions first (or use another process) to run with {threads} threads")
    elif want != now:
        with _quiet():
            pool._unsafe_reset_threadpool(want)


def session(path: str | os.PathLike, threads: int = 0, precision: str = "fp32") -> Session:
    """The program's "forward" method loaded with the XNNPACK delegate; ``precision`` ("fp32" or
    "int8") labels it (the program states its own). A batch runs one image at a time. The thread
    pool is process-wide: sessions open at the same time share one thread count (``_use_threads``)."""
    if precision not in ("fp32", "int8"):
        raise ConfigError(f"unknown ExecuTorch precision {precision!r}; use fp32 or int8")
    if threads < 0:
        raise ConfigError(f"threads must be 0 (the runtime's default) or more, not {threads}")
    runtime, pool = _runtime()
    _use_threads(pool, threads)
    with _quiet() as log:
        try:
            loaded = _Loaded(runtime.load_program(str(path)).load_method("forward"))
        except Exception as e:  # the runtime raises RuntimeError/ValueError for bad files
            raise EdgeVisionError(f"ExecuTorch cannot load {path}: {log.reason(e)}") from None
    shape = tuple(loaded.method.metadata.input_tensor_meta(0).sizes())

    def run(x: np.ndarray) -> np.ndarray:
        if x.ndim != len(shape) or x.shape[1:] != shape[1:]:
            raise ConfigError(f"{path} takes ({', '.join(map(str, shape[1:]))}) images, not "
                              f"{tuple(x.shape[1:])}; export it again at the resolution you need")
        try:
            outs = [loaded.method.execute([torch.from_numpy(x[i:i + 1])])[0].numpy().copy()
                    for i in range(len(x))]
        except RuntimeError:
            raise EdgeVisionError(f"ExecuTorch cannot run {path}: {_failed_run(loaded.method, x)}; "
                                  f"export the model to ONNX instead (--format onnx)") from None
        return np.concatenate(outs)
    return Session(NAME, precision, run)


def _failed_run(method, x: np.ndarray) -> str:
    """The reason a run failed: the first image run again with the runtime's log captured."""
    with _quiet() as log:
        try:
            method.execute([torch.from_numpy(x[:1])])
            return "a run failed (the first image runs)"
        except RuntimeError as e:
            error = e
    return log.reason(error)


def build(module, example, onnx_path, workdir: Path) -> Path:
    """The fp32 program at batch 1 (the session loops over a batch), written inside ``workdir``."""
    refuse(module, UNSUPPORTED, "ExecuTorch")
    _runtime()
    art = Path(workdir) / f"model{SUFFIX}"
    with _quiet() as log:
        ep = _export(module, example[:1], log)
        _lower(ep, art, _model_name(module), log)
    return art


def check_output(out: Path) -> None:
    if Path(out).suffix != SUFFIX:
        raise ConfigError(f"ExecuTorch output must be a {SUFFIX} path, not {str(out)!r}")


def install(artifact: Path, out: Path) -> int:
    return install_file(artifact, out)


def notes(artifact: Path) -> list[str]:
    """How much of the graph XNNPACK took (read from the report the build wrote beside the
    artifact in its work directory; [] for a program built elsewhere)."""
    side = _delegation_path(artifact)
    if not side.is_file():
        return []
    d = json.loads(side.read_text())
    lines = [delegation_line(d["delegated"], d["total"], d["partitions"], d["fallback"], "portable kernels")]
    if d["rewrites"]:
        lines.append("rewritten into ops XNNPACK takes (same function): "
                     + ", ".join(f"{n} {op}" for op, n in d["rewrites"].items()))
    if d.get("kept_float"):
        lines.append(d["kept_float"])
    return lines


def int8(source, dst: Path, calib: np.ndarray, recipe, val=None, val_labels=None) -> tuple[str, list[str]]:
    """PT2E INT8 of the module ``source`` (see the module docstring for the recipe options),
    calibrated on ``calib`` one image at a time and lowered to XNNPACK at ``dst``. No accuracy
    control: returns ("", [])."""
    refuse(source, UNSUPPORTED_INT8, "ExecuTorch", int8=True)
    _runtime()
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from executorch.exir.passes.constant_prop_pass import constant_prop_pass
    name = _model_name(source)
    example = torch.from_numpy(np.ascontiguousarray(calib[:1], dtype=np.float32))
    with _quiet() as log:
        # weights computed from parameters become constants the quantizer sees as weights
        ep = constant_prop_pass(_export(source, example, log))
        quantizer = _quantizer(source, ep, recipe)
        try:
            graph = prepare_pt2e(ep.module(), quantizer)
            calibrate(graph, calib)
            graph = _renamed_folded_constants(convert_pt2e(graph))
            ep = torch.export.export(graph, (example,))
        except Exception as e:
            raise EdgeVisionError(f"PT2E quantization of {name} failed: {log.reason(e)}") from None
        _lower(ep, Path(dst), name, log, note=_family_floats(source)[1])
    return "", []


def _renamed_folded_constants(graph):
    """``graph`` with the constants the first constant folding named ``_prop_tensor_constant<N>``
    renamed. Exported again they become buffers of those names, which the constant folding of
    the XNNPACK rewrites does not look at when it names its own constants: it would reuse a name,
    and a layer left in float would get another constant's tensor (a wrong-shape conv weight)."""
    renamed = {}
    for node in graph.graph.nodes:
        if node.op == "get_attr" and node.target.startswith("_prop_tensor_constant"):
            if node.target not in renamed:
                renamed[node.target] = f"_pt2e_folded_{len(renamed)}"
                setattr(graph, renamed[node.target], getattr(graph, node.target))
            node.target = renamed[node.target]
    for old in renamed:
        delattr(graph, old)
    graph.recompile()
    return graph


def _export(module, example, log):
    """``module`` captured by torch.export in functional form (a constant the forward fills in
    place, such as a mask, can then be folded)."""
    if any(p.dim() == 4 and not p.is_contiguous() for p in module.parameters()):
        # channels-last weights leave memory-format conversions the XNNPACK passes reject; the
        # program is NCHW either way (XNNPACK picks its own layout inside)
        module = copy.deepcopy(module).to(memory_format=torch.contiguous_format)
    try:
        with torch.no_grad():
            module(example)  # size-dependent constants (attention-bias tables) get cached
        return torch.export.export(module, (example,)).run_decompositions({})
    except Exception as e:
        raise EdgeVisionError(f"torch.export cannot capture {_model_name(module)} for ExecuTorch: "
                              f"{log.reason(e)}") from None


def _lower(ep, path: Path, name: str, log, note: str = "") -> None:
    """``ep`` rewritten for XNNPACK, lowered, and written to ``path`` with its delegation report
    (``note``: what an INT8 program kept in float for its family, shown by ``notes``)."""
    from executorch.exir import to_edge_transform_and_lower
    try:
        ep, rewrites = rewrite(ep)
        edge = to_edge_transform_and_lower(ep, partitioner=[_partitioner()])
        report = _delegation(edge)
        program = edge.to_executorch()
    except Exception as e:
        raise EdgeVisionError(f"ExecuTorch cannot lower {name}: {log.reason(e)}; export it to ONNX "
                              f"instead (--format onnx)") from None
    report["rewrites"] = rewrites
    if note:
        report["kept_float"] = note
    with atomic_write(path, SUFFIX) as tmp:
        tmp.write_bytes(program.buffer)
    with atomic_write(_delegation_path(path), ".json") as tmp:
        tmp.write_text(json.dumps(report, indent=1))


def _partitioner():
    """The XNNPACK partitioner, kept off ops with tensors of more than 6 dimensions (XNNPACK's
    limit, which its partitioner does not check: the program would then fail to load)."""
    from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    def within_rank(check):
        def checked(self, node, ep):
            tensors = [a.meta.get("val") for a in node.all_input_nodes] + [node.meta.get("val")]
            return all(getattr(t, "dim", lambda: 0)() <= 6 for t in tensors) and check(self, node, ep)
        return checked
    configs = [type(c.__name__, (c,), {"check_constraints": within_rank(c.check_constraints)})
               for c in ALL_PARTITIONER_CONFIGS]
    return XnnpackPartitioner(configs=configs)


def _delegation_path(artifact: Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".xnnpack.json")


def _delegation(edge) -> dict:
    """Ops (graph nodes other than tuple access and quantize/dequantize) that XNNPACK took and
    those left to the portable kernels, by op type, counted on the lowered edge program."""
    from executorch.devtools.backend_debug import get_delegation_info
    info = get_delegation_info(edge.exported_program().graph_module)
    delegated, fallback = 0, {}
    for op, inside, outside in info.get_operator_delegation_dataframe().itertuples(index=False):
        if op in ("Total", "getitem") or op.startswith("quantized_decomposed_"):
            continue
        delegated += int(inside)
        if outside:
            short = op.removeprefix("aten_").removeprefix("dim_order_ops_").removesuffix("_default")
            fallback[short] = int(outside)
    return {"partitions": int(info.num_delegated_subgraphs), "delegated": delegated,
            "total": delegated + sum(fallback.values()), "fallback": fallback}


def _quantizer(module, ep, recipe):
    """An XNNPACKQuantizer for ``recipe``: weight granularity, activation observer, ReLU6 outputs
    observed after the clamp (pt2e.py), float modules."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantizer import get_module_name_filter
    config = with_observer(get_symmetric_quantization_config(is_per_channel=recipe.per_channel),
                           recipe.method)
    quantizer = clamp_aware(XNNPACKQuantizer)().set_global(config)
    floats = [get_module_name_filter(n) for n in _float_modules(module, ep, recipe)]
    if floats:
        quantizer.set_filter_function(lambda node: not any(f(node) for f in floats))
    return quantizer


def _float_modules(module, ep, recipe) -> list[str]:
    """Qualified names of the modules ``recipe`` keeps in float."""
    modules = dict(module.named_modules())
    unknown = [n for n in recipe.float_nodes if n not in modules or not n]
    if unknown:
        raise ConfigError(f"{_model_name(module)} has no module named {', '.join(map(repr, unknown))}; "
                          f"for executorch, float_nodes are module names as in named_modules()")
    names = list(recipe.float_nodes)
    for op in recipe.exclude_ops:
        found = [n for n, m in modules.items() if n and type(m).__name__ == op]
        if not found:
            raise ConfigError(f"{_model_name(module)} has no module of type {op!r}; for executorch, "
                              f"exclude_ops are module class names, e.g. Hardswish or Linear")
        names += found
    if recipe.keep_first_last:
        names += _first_last(ep)
    names += _family_floats(module)[0]
    return list(dict.fromkeys(names))


def _family_floats(module) -> tuple[list[str], str]:
    """The qualified names of the modules ``FLOAT_INT8`` keeps in float for the module's family,
    and the report's note about them ("" when there are none)."""
    from ...registry import get_entry
    try:
        family = get_entry(_model_name(module)).family
    except EdgeVisionError:  # a model outside the registry
        return [], ""
    kind, why = FLOAT_INT8.get(family, ("", ""))
    names = [n for n, m in module.named_modules() if n and type(m).__name__ == kind]
    return names, f"{len(names)} {kind} modules kept in float ({why})" if names else ""


def _first_last(ep) -> list[str]:
    """The modules of the first conv and of the last conv/Linear in graph order."""
    aten = torch.ops.aten
    layers = [n for n in ep.graph.nodes if n.target in (aten.conv2d.default, aten.linear.default)]
    names = []
    for node in (layers[:1] + layers[-1:]) if layers else []:
        stack = list(node.meta.get("nn_module_stack", {}).values())
        if stack:
            path = stack[-1][0]
            names.append(path.removeprefix("L['self']."))
    return names
