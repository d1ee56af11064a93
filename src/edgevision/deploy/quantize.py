"""Reduced precision: static INT8 (onnxruntime QDQ or OpenVINO/NNCF), and bf16 where the runtime
supports it, each measured for size, speed and agreement with fp32 on held-out images.

Recipe defaults (see docs/deploy.md for the measurements behind them): per-channel weights
(per-tensor collapses depthwise convs), unsigned 8-bit activations, signed weights, MinMax
calibration over N images with the model's own preprocessing (the same estimator in both
runtimes: the global min/max over the images; NNCF's own default, method "nncf", averages the
per-image extremes and clips the rest, which cost mobilenetv3_large_100 9 points of top-1
agreement, docs/deploy.md). ``keep_first_last`` leaves the stem conv and the classifier in fp32;
``exclude_ops`` keeps whole op types (e.g. Softmax) in fp32.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, EdgeVisionError
from ..images import preprocess
from ..weights.io import atomic_write
from .export import read_metadata
from .runtimes import RUNTIMES, RuntimeMissing, open_session, openvino_model


class QuantizeError(EdgeVisionError):
    pass


# activation range estimators per runtime (weights always use their per-channel min/max)
CALIBRATION_METHODS = {"onnxruntime": ("minmax", "percentile", "entropy"),
                       "openvino": ("minmax", "nncf", "percentile", "histogram")}


@dataclass
class QuantReport:
    path: Path
    runtime: str
    precision: str
    calib_images: int
    size_ratio: float  # fp32 bytes / quantized bytes
    speedup: dict = field(default_factory=dict)  # batch -> fp32 ORT latency / quantized latency
    latency_ms: dict = field(default_factory=dict)  # batch -> (fp32 ms, quantized ms)
    top1_agreement: float = float("nan")  # % of held-out images with the same fp32/quantized argmax
    logit_drift: float = float("nan")  # mean |fp32 - quantized| logit difference
    held_out: int = 0
    accuracy_control: str = ""  # with max_drop: what NNCF reverted to float
    float_nodes: list = field(default_factory=list)  # with max_drop: the reverted node names

    def summary(self) -> str:
        sp = ", ".join(f"bs{b} {v:.2f}x ({self.latency_ms[b][0]:.2f} -> {self.latency_ms[b][1]:.2f} ms)"
                       for b, v in self.speedup.items())
        return (f"{self.path}: {self.runtime} {self.precision}; size 1/{self.size_ratio:.2f}; "
                f"speed vs onnxruntime fp32: {sp}; top-1 agreement {self.top1_agreement:.2f}% and "
                f"mean logit drift {self.logit_drift:.4f} on {self.held_out} held-out images; "
                f"calibrated on {self.calib_images} images"
                + (f"; accuracy control: {self.accuracy_control}" if self.accuracy_control else ""))


def calibration_images(source: str, cfg, resolution, n: int, split: str = "calib") -> np.ndarray:
    """(n, C, H, W) float32 preprocessed images from the embedded dataset or a folder.

    The splits never share an image: the embedded dataset draws each split from its own seeds; a
    folder's (sorted) images are dealt out in turn, three of every five to "calib", one to "val"
    and one to "test"."""
    from ..datasets import EmbeddedShapes, find_images
    if n < 1:
        raise ConfigError("--images must be at least 1")
    if source == "embedded":
        ds = EmbeddedShapes(split, n, resolution=max(resolution) + 32)
        imgs = [preprocess(ds.image(i)[0], cfg, resolution) for i in range(n)]
    else:
        from PIL import Image
        paths = find_images(source)
        if not paths:
            raise QuantizeError(f"calibration folder {source!r} contains no images; point --calib at a "
                                f"folder of .jpg/.png images or use --calib embedded")
        part = {"calib": (0, 1, 2), "val": (3,), "test": (4,)}.get(split, (0, 1, 2, 3, 4))
        paths = [p for i, p in enumerate(paths) if i % 5 in part]
        if not paths:
            raise QuantizeError(f"folder {source!r} has too few images for a separate {split!r} set "
                                f"(calibration, validation and held-out images are disjoint: "
                                f"use at least 5 images)")
        imgs = []
        for p in paths:
            try:
                with Image.open(p) as im:
                    imgs.append(preprocess(im, cfg, resolution))
            except OSError:
                continue
            if len(imgs) >= n:
                break
        if not imgs:
            raise QuantizeError(f"no readable image in calibration folder {source!r}")
    return torch.stack(imgs).numpy().astype(np.float32)


def _first_last_nodes(onnx_path: Path) -> list[str]:
    import onnx
    g = onnx.load(str(onnx_path)).graph
    convs = [n.name for n in g.node if n.op_type == "Conv"]
    heads = [n.name for n in g.node if n.op_type in ("Gemm", "MatMul")]
    return ([convs[0]] if convs else []) + ([heads[-1]] if heads else [])


def _ort_int8(src: Path, dst: Path, calib: np.ndarray, per_channel: bool, keep_first_last: bool,
              exclude_ops: list[str], method: str, float_nodes: list[str] | None = None) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"input": x}

    with tempfile.TemporaryDirectory() as d:
        pre = Path(d) / "pre.onnx"
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception:
            pre = src
        methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                   "entropy": CalibrationMethod.Entropy}
        # onnxruntime warns once per 1-D weight (LayerNorm scales) that it quantizes it per tensor
        # rather than per channel, which is the right thing for a vector: keep those lines out
        quiet = _DropMessages("is out-of-range for weight")
        logging.getLogger().addFilter(quiet)
        try:
            quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=methods[method],
                            nodes_to_exclude=(_first_last_nodes(pre) if keep_first_last else [])
                            + list(float_nodes or []),
                            op_types_to_quantize=None,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                                           "OpTypesToExcludeOutputQuantization": exclude_ops or []})
        finally:
            logging.getLogger().removeFilter(quiet)


class _DropMessages(logging.Filter):
    def __init__(self, fragment: str):
        super().__init__()
        self.fragment = fragment

    def filter(self, record) -> bool:
        return self.fragment not in record.getMessage()


def _openvino_int8(src: Path, dst: Path, calib: np.ndarray, keep_first_last: bool,
                   exclude_ops: list[str], transformer: bool, method: str = "minmax",
                   max_drop: float | None = None,
                   preset: str = "performance", float_nodes: list[str] | None = None,
                   val: np.ndarray | None = None, val_labels: np.ndarray | None = None,
                   quantize_se: bool = False) -> tuple[str, list[str]]:
    """NNCF post-training quantization; with ``max_drop``, NNCF's accuracy control reverts the
    most sensitive quantized layers to float until top-1 agreement with fp32 on ``val`` (labels:
    the fp32 argmax) drops by at most ``max_drop`` (absolute fraction). Returns a one-line account
    of what was reverted ("" without ``max_drop``) and the reverted node names."""
    # NNCF imports torch's C++-extension helper, which warns on every CPU-only machine
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        import nncf
        import openvino as ov
    except ImportError:
        raise RuntimeMissing("OpenVINO INT8 needs openvino and nncf: `.venv/bin/pip install openvino nncf`") from None
    model = openvino_model(src, "int8")
    ignored = None
    names = (_first_last_nodes(src) if keep_first_last else []) + list(float_nodes or [])
    if names or exclude_ops:
        ignored = nncf.IgnoredScope(names=names, types=list(exclude_ops), validate=False)
    # performance: symmetric activations; mixed: asymmetric activations (better for ranges that
    # are far from symmetric, e.g. hard-swish outputs); the transformer model type implies mixed
    kwargs = dict(subset_size=len(calib), preset=nncf.QuantizationPreset.MIXED
                  if transformer or preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE)
    if transformer:
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    advanced = None  # "nncf": NNCF's built-in range estimators
    if method != "nncf":
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet as Ranges
        ranges = {"minmax": Ranges.MINMAX, "percentile": Ranges.MEAN_QUANTILE, "histogram": Ranges.HISTOGRAM}
        advanced = AdvancedQuantizationParameters(activations_range_estimator_params=ranges[method])
    if ignored is not None:
        kwargs["ignored_scope"] = ignored
    logging.getLogger("nncf").setLevel(logging.ERROR)
    dataset = nncf.Dataset([calib[i:i + 1] for i in range(len(calib))])
    se = _squeeze_excite_quantized() if quantize_se else nullcontext()
    if max_drop is None:
        with se:
            q = nncf.quantize(model, dataset, advanced_parameters=advanced, **kwargs)
        ov.save_model(q, str(dst), compress_to_fp16=False)
        return "", []

    def agreement(compiled, items):  # NNCF compiles both models with f32 forced
        out = compiled.outputs[0]
        hits = [float(compiled(x)[out].argmax(1)[0] == y) for x, y in items]
        return float(np.mean(hits)), hits

    validation = nncf.Dataset([(val[i:i + 1], int(val_labels[i])) for i in range(len(val))])
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters
    log, records = logging.getLogger("nncf"), _Records()
    # NNCF reports what it reverted at INFO: collect it instead of printing it
    handlers, propagate = log.handlers[:], log.propagate
    log.handlers, log.propagate = [records], False
    log.setLevel(logging.INFO)
    try:
        with se:
            q = nncf.quantize_with_accuracy_control(
                model, dataset, validation, agreement, max_drop=max_drop,
                drop_type=nncf.DropType.ABSOLUTE, advanced_accuracy_restorer_parameters=
                AdvancedAccuracyRestorerParameters(max_num_iterations=sys.maxsize),
                advanced_quantization_parameters=advanced, **kwargs)
    finally:
        log.handlers, log.propagate = handlers, propagate
        log.setLevel(logging.ERROR)
    ov.save_model(q, str(dst), compress_to_fp16=False)
    return records.summary(), records.reverted()


@contextmanager
def _squeeze_excite_quantized():
    """NNCF quantizes squeeze-excite FCs like any other conv while this is active.

    NNCF leaves them in float on purpose: an ignored pattern (SE_BLOCK: ReduceMean -> FC -> bias
    -> ReLU/Swish -> FC -> bias -> (H)Sigmoid -> Multiply) that only matches once the FCs have
    biases, i.e. with trained weights. NNCF has no switch for its ignored patterns, so the pattern
    is taken out of its registry for the call and put back afterwards. Measured (docs/deploy.md):
    mobilenetv3_large_100 keeps its agreement (99.2 %) and runs 1.36x -> 1.51x at batch 1;
    efficientnet_b0 gets slower at batch 16, so it is an option, not the default."""
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


def _latency(sess, x: np.ndarray, budget_s: float = 1.5) -> float:
    from ..bench.latency import measure_latency
    return measure_latency(lambda: sess(x), warmup=3, min_runs=10, min_time_s=budget_s / 2,
                           max_time_s=budget_s).median_ms


def quantize(onnx_path: str | os.PathLike, out: str | os.PathLike, calib: str = "embedded",
             images: int = 64, runtime: str = "onnxruntime", per_channel: bool = True,
             keep_first_last: bool = False, exclude_ops: list[str] | None = None,
             method: str = "minmax", held_out: int = 200, batches: tuple[int, ...] = (1, 16),
             threads: int = 0, transformer: bool = False, max_drop: float | None = None,
             val_images: int = 300, preset: str = "performance",
             float_nodes: list[str] | None = None, quantize_se: bool = False) -> QuantReport:
    """Quantize an exported (fp32) ONNX model to INT8 and measure it against fp32.

    ``max_drop`` (OpenVINO): accuracy-controlled INT8 — the layers whose quantization costs the
    most top-1 agreement with fp32 on ``val_images`` validation images (a split distinct from the
    calibration and held-out images) go back to float until the agreement is >= 1 - max_drop; the
    report lists them (``float_nodes``), and passing that list back as ``float_nodes`` applies the
    same split to another export (e.g. another resolution) without searching again.

    ``quantize_se`` (OpenVINO): quantize the squeeze-excite FCs too, which NNCF keeps in float by
    default (see ``_squeeze_excite_quantized``)."""
    src = Path(onnx_path)
    if not src.is_file():
        raise QuantizeError(f"model file {str(src)!r} does not exist; export one first with "
                            f"`edgevision export NAME -o model.onnx --dynamic-batch`")
    if runtime not in RUNTIMES:
        raise ConfigError(f"unsupported runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if method not in CALIBRATION_METHODS[runtime]:
        raise ConfigError(f"calibration method {method!r} is not available for {runtime}; use one of "
                          f"{', '.join(CALIBRATION_METHODS[runtime])}")
    if preset not in ("performance", "mixed"):
        raise ConfigError(f"unknown NNCF preset {preset!r}; use performance or mixed")
    if max_drop is not None and runtime != "openvino":
        raise ConfigError("accuracy-controlled quantization (--max-drop) uses NNCF; add --runtime openvino")
    if quantize_se and runtime != "openvino":
        raise ConfigError("--quantize-se changes what NNCF leaves in float; onnxruntime already "
                          "quantizes squeeze-excite convs: add --runtime openvino or drop the flag")
    if max_drop is not None and not 0 <= max_drop < 1:
        raise ConfigError(f"--max-drop is a fraction of top-1 agreement in [0, 1), e.g. 0.01; got {max_drop}")
    meta = read_metadata(src)
    if not meta:
        raise QuantizeError(f"{src} was not exported by edgevision (no preprocessing metadata); "
                            f"export it with `edgevision export`")
    cfg, res = meta["input_config"], meta["resolution"]
    x_cal = calibration_images(calib, cfg, res, images)
    out = Path(out)
    if runtime == "openvino" and out.suffix != ".xml":
        raise ConfigError("OpenVINO output must be an .xml path (the .bin is written beside it)")
    fp32 = open_session(src, "onnxruntime", threads)
    with tempfile.TemporaryDirectory(prefix="edgevision-quant-") as d:
        tmp = Path(d) / ("model.xml" if runtime == "openvino" else "model.onnx")
        if runtime == "onnxruntime":
            _ort_int8(src, tmp, x_cal, per_channel, keep_first_last, exclude_ops or [], method, float_nodes)
            q_size = tmp.stat().st_size
        else:
            val = labels = None
            if max_drop is not None:
                val = calibration_images(calib, cfg, res, val_images, split="val")
                labels = np.array([fp32(val[i:i + 1]).argmax(1)[0] for i in range(len(val))])
            restored, reverted = _openvino_int8(src, tmp, x_cal, keep_first_last, exclude_ops or [],
                                                transformer, method, max_drop=max_drop, val=val, val_labels=labels,
                                                preset=preset, float_nodes=float_nodes,
                                                quantize_se=quantize_se)
            q_size = tmp.stat().st_size + tmp.with_suffix(".bin").stat().st_size
        qs = open_session(tmp, runtime, threads, precision="int8")
        report = QuantReport(out, runtime, qs.precision, len(x_cal), src.stat().st_size / q_size)
        if runtime == "openvino":
            report.accuracy_control, report.float_nodes = restored, reverted
        x_eval = calibration_images(calib, cfg, res, held_out, split="test")
        ref = np.concatenate([fp32(x_eval[i:i + 1]) for i in range(len(x_eval))])
        got = np.concatenate([qs(x_eval[i:i + 1]) for i in range(len(x_eval))])
        report.top1_agreement = float((ref.argmax(1) == got.argmax(1)).mean() * 100)
        report.logit_drift = float(np.abs(ref - got).mean())
        report.held_out = len(x_eval)
        for b in batches:
            if b > 1 and not meta["dynamic_batch"]:
                continue
            xb = np.repeat(x_eval[:1], b, axis=0)
            t_fp, t_q = _latency(fp32, xb), _latency(qs, xb)
            report.latency_ms[b] = (t_fp, t_q)
            report.speedup[b] = t_fp / t_q
        _install_quantized(tmp, out, runtime)
    return report


def _install_quantized(tmp: Path, out: Path, runtime: str) -> None:
    import shutil
    if runtime == "openvino":
        with atomic_write(out.with_suffix(".bin")) as t:
            shutil.copyfile(tmp.with_suffix(".bin"), t)
        with atomic_write(out) as t:
            t.write_text(tmp.read_text().replace("model.bin", out.with_suffix(".bin").name))
    else:
        with atomic_write(out) as t:
            shutil.copyfile(tmp, t)
