"""Static INT8 for any target (targets/__init__.py), checked against fp32 on held-out images.

``quantize()`` only orchestrates: it reads the export's preprocessing metadata, draws the
calibration (and, for accuracy control, validation) images, lets the target write its INT8
artifact, and measures top-1 agreement and logit drift with onnxruntime fp32 on held-out images
(a split disjoint from both). What the INT8 is made of is a ``QuantRecipe`` (recipe.py). Timing
is not done here: ``edgevision.bench.speed.add_speed`` fills a report's speed fields.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .calibration import QuantizeError, calibration_images
from .export import read_metadata
from .recipe import QuantRecipe
from .targets import TARGETS, get_target

CONFIDENT = 0.5  # fp32 top-1 probability above which an image counts as one fp32 is confident about

__all__ = ["QuantReport", "fill_agreement", "QuantRecipe", "QuantizeError", "calibration_images", "quantize"]


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
    # the same agreement on the held-out images where fp32 is confident (top-1 probability >=
    # CONFIDENT), and how many those are: ambiguous images flip under small logit noise
    confident_agreement: float = float("nan")
    confident: int = 0
    top5_contains: float = float("nan")  # % of held-out images whose fp32 top-1 is in the INT8 top-5
    accuracy_control: str = ""  # with max_drop: what NNCF reverted to float
    float_nodes: list = field(default_factory=list)  # with max_drop: the reverted node names
    notes: list = field(default_factory=list)  # what the target reports of the artifact (delegation...)

    def summary(self) -> str:
        sp = ""
        if self.speedup:
            sp = "speed vs onnxruntime fp32: " + ", ".join(
                f"bs{b} {v:.2f}x ({self.latency_ms[b][0]:.2f} -> {self.latency_ms[b][1]:.2f} ms)"
                for b, v in self.speedup.items()) + "; "
        conf = (f" ({self.confident_agreement:.2f}% on the {self.confident} where fp32 is confident)"
                if self.confident else "")
        top5 = "" if math.isnan(self.top5_contains) else f", fp32 top-1 in INT8 top-5 {self.top5_contains:.2f}%"
        return (f"{self.path}: {self.runtime} {self.precision}; size 1/{self.size_ratio:.2f}; "
                f"{sp}top-1 agreement {self.top1_agreement:.2f}%{conf}{top5} and "
                f"mean logit drift {self.logit_drift:.4f} on {self.held_out} held-out images; "
                + (f"calibrated on {self.calib_images} images" if self.calib_images else
                   "weights only (no activation calibration)")
                + (f"; accuracy control: {self.accuracy_control}" if self.accuracy_control else "")
                + "".join(f"\n  {n}" for n in self.notes))

    def to_json(self) -> dict:
        """Plain JSON types; batch sizes become string keys, NaN figures None."""
        def num(v):
            return None if isinstance(v, float) and math.isnan(v) else v
        return {"path": str(self.path), "runtime": self.runtime, "precision": self.precision,
                "calib_images": self.calib_images, "size_ratio": self.size_ratio,
                "speedup": {str(b): v for b, v in self.speedup.items()},
                "latency_ms": {str(b): list(v) for b, v in self.latency_ms.items()},
                "top1_agreement": num(self.top1_agreement), "logit_drift": num(self.logit_drift),
                "held_out": self.held_out, "confident_agreement": num(self.confident_agreement),
                "confident": self.confident, "top5_contains": num(self.top5_contains),
                "accuracy_control": self.accuracy_control,
                "float_nodes": list(self.float_nodes), "notes": list(self.notes)}

    @classmethod
    def from_json(cls, d: dict) -> "QuantReport":
        def num(v):
            return float("nan") if v is None else v
        return cls(Path(d["path"]), d["runtime"], d["precision"], d["calib_images"], d["size_ratio"],
                   speedup={int(b): v for b, v in d.get("speedup", {}).items()},
                   latency_ms={int(b): tuple(v) for b, v in d.get("latency_ms", {}).items()},
                   top1_agreement=num(d.get("top1_agreement")), logit_drift=num(d.get("logit_drift")),
                   held_out=d.get("held_out", 0), confident_agreement=num(d.get("confident_agreement")),
                   confident=d.get("confident", 0), top5_contains=num(d.get("top5_contains")),
                   accuracy_control=d.get("accuracy_control", ""),
                   float_nodes=list(d.get("float_nodes", [])), notes=list(d.get("notes", [])))


@dataclass
class _Source:
    """What quantize() needs of its input, whichever kind it is."""
    int8_input: object  # what the target's int8() takes: the ONNX path or the PyTorch module
    cfg: object  # InputConfig
    resolution: tuple[int, int]
    reference: object  # (N, C, H, W) float32 -> fp32 logits
    fp32_bytes: int  # size of the fp32 model, for the size ratio
    meta: dict  # metadata stored beside a non-ONNX artifact


def _onnx_source(src: Path, threads: int) -> _Source:
    if not src.is_file():
        raise QuantizeError(f"model file {str(src)!r} does not exist; export one first with "
                            f"`edgevision export NAME -o model.onnx --dynamic-batch`")
    meta = read_metadata(src)
    if not meta:
        raise QuantizeError(f"{src} was not exported by edgevision (no preprocessing metadata); "
                            f"export it with `edgevision export`")
    fp32 = TARGETS["onnxruntime"].session(src, threads)
    return _Source(src, meta["input_config"], meta["resolution"], fp32, src.stat().st_size, {})


def _torch_source(model, resolution) -> _Source:
    import torch

    from .export import artifact_metadata
    from .reparam import reparameterize
    model = model.eval()
    res = tuple(resolution or model.input_config.input_size[1:])
    deploy = reparameterize(model, input_size=res).to(memory_format=torch.contiguous_format)

    def reference(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).float().numpy()
    fp32_bytes = sum(t.numel() * 4 for t in deploy.state_dict().values() if t.is_floating_point())
    return _Source(deploy, model.input_config, res, reference, fp32_bytes,
                   artifact_metadata(model, res, dynamic_batch=False))


def quantize(source, out: str | os.PathLike, recipe: QuantRecipe = QuantRecipe(), threads: int = 0,
             resolution: tuple[int, int] | None = None) -> QuantReport:
    """Quantize to INT8 as ``recipe`` says, check it against fp32 on ``recipe.held_out`` held-out
    images and install it at ``out``.

    ``source``: for runtimes that quantize a graph (onnxruntime, OpenVINO), the fp32 ONNX file
    written by ``export`` (its metadata gives the preprocessing and resolution); for runtimes
    that quantize the PyTorch model (PT2E: ExecuTorch, LiteRT), the eval-mode model, exported at
    ``resolution`` (default: its own), with the metadata written beside the artifact. The
    reference for agreement is onnxruntime fp32 or the PyTorch model respectively.

    ``recipe.max_drop`` (OpenVINO): accuracy-controlled INT8 — the layers whose quantization costs
    the most top-1 agreement with fp32 on ``recipe.val_images`` validation images (a split
    distinct from the calibration and held-out images) go back to float until the agreement is
    >= 1 - max_drop; the report lists them (``float_nodes``), and a recipe with that list as
    ``float_nodes`` applies the same split to another export (e.g. another resolution) without
    searching again. ``threads``: runtime threads (0: the runtime's default)."""
    target = get_target(recipe.runtime)
    if target.SOURCE == "onnx":
        if not isinstance(source, (str, os.PathLike)):
            raise ConfigError(f"{recipe.runtime} quantizes an exported ONNX file: export the model "
                              f"first (`edgevision export NAME -o model.onnx --dynamic-batch`)")
        src = _onnx_source(Path(source), threads)
    elif isinstance(source, (str, os.PathLike)):
        raise ConfigError(f"{recipe.runtime} quantizes the PyTorch model, not a file: give the model "
                          f"name (and --weights) instead of {str(source)!r}")
    else:
        src = _torch_source(source, resolution)
    out = Path(out)
    target.check_output(out)
    calibrates = getattr(target, "CALIBRATES", True)  # False: weight-only INT8 (Core ML)
    x_cal = calibration_images(recipe.calib, src.cfg, src.resolution, recipe.images if calibrates else 1)
    with tempfile.TemporaryDirectory(prefix="edgevision-quant-") as d:
        tmp = Path(d) / f"model{target.SUFFIX}"
        val = labels = None
        if recipe.max_drop is not None:
            val = calibration_images(recipe.calib, src.cfg, src.resolution, recipe.val_images, split="val")
            labels = np.array([src.reference(val[i:i + 1]).argmax(1)[0] for i in range(len(val))])
        control, reverted = target.int8(src.int8_input, tmp, x_cal, recipe, val, labels)
        notes = target.notes(tmp) if hasattr(target, "notes") else []
        if getattr(target, "RUNS_HERE", True):
            qs = target.session(tmp, threads, precision="int8")
        else:  # measured through the target's stand-in for what the device computes
            qs = target.proxy_session(src.int8_input, "int8", recipe, threads)
        report = QuantReport(out, recipe.runtime, qs.precision, len(x_cal) if calibrates else 0, float("nan"),
                             accuracy_control=control, float_nodes=list(reverted), notes=notes)
        _agreement(report, src, qs, calibration_images(recipe.calib, src.cfg, src.resolution,
                                                       recipe.held_out, split="test"))
        report.size_ratio = src.fp32_bytes / target.install(tmp, out)
    if src.meta:
        from .export import write_metadata
        write_metadata(out, src.meta)
    return report


def _agreement(report: QuantReport, src: _Source, qs, x_eval: np.ndarray) -> None:
    """Top-1 agreement (overall and where fp32 is confident), top-5 containment and mean logit
    drift of the quantized session against the fp32 reference."""
    ref = np.concatenate([src.reference(x_eval[i:i + 1]) for i in range(len(x_eval))])
    got = np.concatenate([qs(x_eval[i:i + 1]) for i in range(len(x_eval))])
    fill_agreement(report, ref, got)


def fill_agreement(report: QuantReport, ref: np.ndarray, got: np.ndarray) -> None:
    """Fill ``report``'s agreement figures from fp32 logits ``ref`` and quantized logits ``got``."""
    same = ref.argmax(1) == got.argmax(1)
    shifted = ref - ref.max(1, keepdims=True)
    prob = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
    confident = prob.max(1) >= CONFIDENT
    k = min(5, ref.shape[1])
    top5 = np.argsort(-got, axis=1)[:, :k]
    report.top1_agreement = float(same.mean() * 100)
    report.confident = int(confident.sum())
    report.confident_agreement = float(same[confident].mean() * 100) if confident.any() else float("nan")
    report.top5_contains = float((top5 == ref.argmax(1)[:, None]).any(1).mean() * 100)
    report.logit_drift = float(np.abs(ref - got).mean())
    report.held_out = len(ref)
