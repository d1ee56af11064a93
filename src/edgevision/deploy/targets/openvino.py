"""OpenVINO (CPU): an IR converted from the verified ONNX file, and INT8 through NNCF.

Every OpenVINO path (export, quantize, sessions) reads models through ``openvino_model``, so the
graph rewrites of ``ov_rewrites`` apply everywhere."""
from __future__ import annotations

import logging
import os
import re
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

from ...errors import ConfigError, EdgeVisionError
from ...files import install_openvino_ir
from ..calibration import QuantizeError
from ..onnx_graph import first_last_nodes
from ..session import RuntimeMissing, Session, require

NAME = "openvino"
FORMAT = "openvino"
SUFFIX = ".xml"
SOURCE = "onnx"
# activation range estimators: global min/max, NNCF's built-in ones, mean quantile, histogram
METHODS = ("minmax", "nncf", "percentile", "histogram")


def openvino_model(path: str | os.PathLike, precision: str | None = None):
    """The model (ONNX or IR) as an OpenVINO graph, with the rewrites of ``ov_rewrites`` that suit
    ``precision`` ("fp32", "bf16", "int8"; None: those exact at any precision, for a saved IR):
    ops the CPU plugin runs slowly, re-expressed as the same function in ops it fuses (PyTorch's
    Hardsigmoid as HSigmoid; channel LayerNorm without its two transposes; a conv whose output is
    only split, as one conv per part)."""
    ov = require("openvino", "openvino")
    from ..ov_rewrites import rewrite
    try:
        # an IR is read as saved; ONNX goes through the converter, which also folds constants
        model = ov.Core().read_model(str(path)) if str(path).endswith(".xml") else ov.convert_model(str(path))
    except Exception as e:
        raise EdgeVisionError(f"OpenVINO cannot read {path}: {str(e).splitlines()[0][:200]}") from None
    rewrite(model, precision)
    return model


def session(path: str | os.PathLike, threads: int = 0, precision: str = "fp32") -> Session:
    """An OpenVINO session. A model with a dynamic batch dimension is compiled once per batch size
    it is called with, as a static-shape graph: the CPU plugin then plans memory and picks kernels
    once instead of on every call (faster INT8 graphs at batch 1; onnxruntime gains nothing from a
    fixed batch, docs/deploy.md). The batch-1 graph is compiled at once, to check the model loads
    and the precision that runs."""
    ov = require("openvino", "openvino")
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

    first = compile_for(1 if dynamic_batch else None)
    ran = _precision_that_runs(first, precision, hint)
    if dynamic_batch:
        return Session(NAME, ran, _build=lambda b: _runner(compile_for(b)), _runs={1: _runner(first)})
    static = shape[0].get_length() if shape.rank.is_static and shape.rank.get_length() else None
    run = _runner(first)

    def checked(x):
        if static is not None and len(x) != static:
            raise ConfigError(f"{path} was exported for batch {static}, not {len(x)}; re-export "
                              f"it with --dynamic-batch to run other batch sizes")
        return run(x)
    return Session(NAME, ran, checked)


def _runner(compiled):
    request, out = compiled.create_infer_request(), compiled.outputs[0]
    # zero-copy input, as onnxruntime reads numpy arrays in place (the output is a copy)
    return lambda x: request.infer({0: x}, share_inputs=True)[out]


def _precision_that_runs(compiled, precision: str, hint: str) -> str:
    """The precision the compiled model reports, checked against the one requested."""
    actual = str(compiled.get_property("INFERENCE_PRECISION_HINT"))  # e.g. "<Type: 'bfloat16'>"
    token = actual.split("'")[-2] if "'" in actual else actual
    ran = {"float32": "fp32", "f32": "fp32", "bf16": "bf16", "bfloat16": "bf16"}.get(token, token)
    if precision.startswith("int8"):
        if ran != hint.replace("f32", "fp32"):
            raise EdgeVisionError(f"OpenVINO runs the unquantized ops in {ran} although "
                                  f"{hint} was requested; this CPU may not support it")
        return f"int8 (other ops {ran})"
    if ran != precision:
        raise EdgeVisionError(f"OpenVINO ran {ran} although {precision} was requested; this CPU "
                              f"may not support {precision}")
    return ran


def build(module, example, onnx_path: Path, workdir: Path) -> Path:
    """The verified ONNX file converted to an fp32 IR (rewrites exact at any precision only)."""
    ov = require("openvino", "openvino")
    art = Path(workdir) / "model.xml"
    ov.save_model(openvino_model(onnx_path), str(art), compress_to_fp16=False)
    return art


def check_output(out: Path) -> None:
    if Path(out).suffix != SUFFIX:
        raise ConfigError("OpenVINO output must be an .xml path (the .bin is written beside it)")


def install(artifact: Path, out: Path) -> int:
    return install_openvino_ir(artifact, out)


def int8(src: Path, dst: Path, calib: np.ndarray, recipe, val: np.ndarray | None = None,
         val_labels: np.ndarray | None = None) -> tuple[str, list[str]]:
    """NNCF post-training quantization; with ``recipe.max_drop``, NNCF's accuracy control reverts
    the most sensitive quantized layers to float until top-1 agreement with fp32 on ``val``
    (labels: the fp32 argmax) drops by at most ``max_drop`` (absolute fraction). Returns a one-line
    account of what was reverted ("" without ``max_drop``) and the reverted node names."""
    # NNCF imports torch's C++-extension helper, which warns on every CPU-only machine
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        import nncf
        import openvino as ov
    except ImportError:
        raise RuntimeMissing("OpenVINO INT8 needs openvino and nncf: `.venv/bin/pip install openvino nncf`") from None
    model = openvino_model(src, "int8")
    kwargs = _nncf_settings(nncf, src, recipe, len(calib))
    logging.getLogger("nncf").setLevel(logging.ERROR)
    dataset = nncf.Dataset([calib[i:i + 1] for i in range(len(calib))])
    se = _squeeze_excite_quantized() if recipe.quantize_se else nullcontext()
    if recipe.max_drop is None:
        with se:
            q = nncf.quantize(model, dataset, **kwargs)
        ov.save_model(q, str(dst), compress_to_fp16=False)
        return "", []
    validation = nncf.Dataset([(val[i:i + 1], int(val_labels[i])) for i in range(len(val))])
    with se:
        q, records = _accuracy_controlled(nncf, model, dataset, validation, recipe.max_drop, kwargs)
    ov.save_model(q, str(dst), compress_to_fp16=False)
    return records.summary(), records.reverted()


def _nncf_settings(nncf, src: Path, recipe, subset_size: int) -> dict:
    """nncf.quantize keywords for ``recipe``: preset, model type, range estimator, ignored scope."""
    # performance: symmetric activations; mixed: asymmetric activations (better for ranges that
    # are far from symmetric, e.g. hard-swish outputs); the transformer model type implies mixed
    kwargs = dict(subset_size=subset_size, preset=nncf.QuantizationPreset.MIXED
                  if recipe.transformer or recipe.preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE)
    if recipe.transformer:
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    advanced = None  # "nncf": NNCF's built-in range estimators
    if recipe.method != "nncf":
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet as Ranges
        ranges = {"minmax": Ranges.MINMAX, "percentile": Ranges.MEAN_QUANTILE, "histogram": Ranges.HISTOGRAM}
        advanced = AdvancedQuantizationParameters(activations_range_estimator_params=ranges[recipe.method])
    kwargs["advanced_parameters"] = advanced
    names = (first_last_nodes(src) if recipe.keep_first_last else []) + list(recipe.float_nodes)
    if names or recipe.exclude_ops:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=names, types=list(recipe.exclude_ops),
                                                    validate=False)
    return kwargs


def _accuracy_controlled(nncf, model, dataset, validation, max_drop: float, kwargs: dict):
    """nncf.quantize_with_accuracy_control with NNCF's INFO messages collected, not printed."""
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    def agreement(compiled, items):  # NNCF compiles both models with f32 forced
        out = compiled.outputs[0]
        hits = [float(compiled(x)[out].argmax(1)[0] == y) for x, y in items]
        return float(np.mean(hits)), hits

    kwargs = dict(kwargs)
    advanced = kwargs.pop("advanced_parameters")
    log, records = logging.getLogger("nncf"), _Records()
    handlers, propagate = log.handlers[:], log.propagate
    log.handlers, log.propagate = [records], False
    log.setLevel(logging.INFO)
    try:
        q = nncf.quantize_with_accuracy_control(
            model, dataset, validation, agreement, max_drop=max_drop,
            drop_type=nncf.DropType.ABSOLUTE, advanced_accuracy_restorer_parameters=
            AdvancedAccuracyRestorerParameters(max_num_iterations=sys.maxsize),
            advanced_quantization_parameters=advanced, **kwargs)
    finally:
        log.handlers, log.propagate = handlers, propagate
        log.setLevel(logging.ERROR)
    return q, records


@contextmanager
def _squeeze_excite_quantized():
    """NNCF quantizes squeeze-excite FCs like any other conv while this is active.

    NNCF leaves them in float on purpose: an ignored pattern (SE_BLOCK: ReduceMean -> FC -> bias
    -> ReLU/Swish -> FC -> bias -> (H)Sigmoid -> Multiply) that only matches once the FCs have
    biases, i.e. with trained weights. NNCF has no switch for its ignored patterns, so the pattern
    is taken out of its registry for the call and put back afterwards. It speeds up some models
    and slows down others (docs/deploy.md), so it is an option, not the default."""
    try:
        from nncf.common.graph.patterns.patterns import IgnoredPatternNames
        from nncf.openvino.quantization.ignored_patterns import OPENVINO_IGNORED_PATTERNS
        patterns = OPENVINO_IGNORED_PATTERNS.registry_dict
        key = IgnoredPatternNames.SE_BLOCK
    except (ImportError, AttributeError):
        raise QuantizeError("this NNCF version keeps its ignored patterns elsewhere; "
                            "quantize without --quantize-se") from None
    saved = patterns.pop(key, None)
    try:
        yield
    finally:
        if saved is not None:
            patterns[key] = saved


class _Records(logging.Handler):
    """Collects NNCF's accuracy-control messages: one line for the report, the reverted names."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def reverted(self) -> list[str]:
        """Node names NNCF left in float (its final report lists them one per tab-indented line)."""
        for msg in self.messages:
            if " were reverted back" in msg.splitlines()[0]:
                return [ln.strip() for ln in msg.splitlines()[1:] if ln.strip()]
        return []

    def summary(self) -> str:
        firsts = [m.splitlines()[0] for m in self.messages if m]
        total = next((m.group(1) for ln in firsts
                      if (m := re.search(r"quantized operations in the model: (\d+)", ln))), "?")
        if any("All layers have been checked" in ln for ln in firsts):
            return f"all {total} quantized ops reverted to float (INT8 could not keep the agreement)"
        if total == "?":  # NNCF stopped before ranking: plain INT8 was already within the drop
            return "no op reverted: full INT8 is within the allowed drop"
        failed = any("could not achieve" in ln for ln in firsts)
        return (f"{len(self.reverted())} of {total} quantized ops reverted to float"
                + ("; the required agreement was NOT reached" if failed else ""))
