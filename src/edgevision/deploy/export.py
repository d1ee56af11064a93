"""Export a model for a deployment target, then prove the artifact computes what PyTorch does.

Steps: reparameterize (verified) -> export to a temporary ONNX file with edgevision's metadata
-> onnx.checker -> the target's fp32 artifact (the ONNX file itself, or an OpenVINO IR converted
from it; targets/__init__.py) -> run it in its runtime on a random and a natural-looking image ->
compare logits with the original PyTorch model (max abs diff <= atol x max(1, max |logit|)) ->
atomically move into place. A failed check leaves no file.
"""
from __future__ import annotations

import copy
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, EdgeVisionError
from ..files import atomic_write, writable
from ..images import preprocess, synthetic_image
from .reparam import reparameterize
from .targets import TARGETS, target_for_output

FORMATS = tuple(t.FORMAT for t in TARGETS.values())


class ExportError(EdgeVisionError):
    pass


@dataclass
class ExportReport:
    path: Path
    format: str
    runtime: str
    precision: str
    resolution: tuple[int, int]
    opset: int
    max_abs_diff: dict = field(default_factory=dict)  # input kind -> max |runtime - torch|
    size_bytes: int = 0
    notes: list = field(default_factory=list)  # what else the target checked or could not check

    def summary(self) -> str:
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in self.max_abs_diff.items())
        opset = f", opset {self.opset}" if self.format == "onnx" or self.runtime == "openvino" else ""
        return (f"{self.path} ({self.format}, {self.size_bytes / 1e6:.1f} MB{opset}, "
                f"{self.resolution[0]}x{self.resolution[1]}): {self.runtime} {self.precision} vs "
                f"PyTorch max abs diff: {diffs}" + "".join(f"\n  {n}" for n in self.notes))

    def to_json(self) -> dict:
        return {"path": str(self.path), "format": self.format, "runtime": self.runtime,
                "precision": self.precision, "resolution": list(self.resolution), "opset": self.opset,
                "max_abs_diff": dict(self.max_abs_diff), "size_bytes": self.size_bytes,
                "notes": list(self.notes)}

    @classmethod
    def from_json(cls, d: dict) -> "ExportReport":
        return cls(Path(d["path"]), d["format"], d["runtime"], d["precision"], tuple(d["resolution"]),
                   d["opset"], dict(d.get("max_abs_diff", {})), d.get("size_bytes", 0),
                   list(d.get("notes", [])))


def check_inputs(model: nn.Module, resolution: tuple[int, int], seed: int = 0) -> dict[str, torch.Tensor]:
    """A random input and a natural-looking image, preprocessed the model's way."""
    cfg = model.input_config
    g = torch.Generator().manual_seed(seed)
    rand = torch.randn(1, cfg.input_size[0], *resolution, generator=g)
    img = preprocess(synthetic_image(seed + 1, (resolution[0] + 32, resolution[1] + 32)), cfg,
                     resolution).unsqueeze(0)
    return {"random": rand, "image": img}


def output_name(module: nn.Module) -> str:
    """The name of the exported graph's output: ``module.output_name`` where the module says what
    it returns (a detector network's per-anchor boxes and class logits), else ``logits``."""
    return getattr(module, "output_name", "logits")


def _torch_onnx_export(model: nn.Module, x: torch.Tensor, path: Path, opset: int,
                       dynamic_batch: bool, exporter: str) -> None:
    out = output_name(model)
    kwargs = dict(opset_version=opset, input_names=["input"], output_names=[out])
    with torch.no_grad():  # warm-up: size-dependent constants (attention-bias tables) get cached
        model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            dyn = ({0: torch.export.Dim.DYNAMIC},) if dynamic_batch else None
            torch.onnx.export(model, (x,), str(path), dynamo=True, dynamic_shapes=dyn,
                              verbose=False, **kwargs)
        else:
            dyn = {"input": {0: "batch"}, out: {0: "batch"}} if dynamic_batch else None
            torch.onnx.export(model, (x,), str(path), dynamo=False, dynamic_axes=dyn, **kwargs)


def _onnx_file(model: nn.Module, deploy: nn.Module, example: torch.Tensor, path: Path, opset: int,
               resolution, dynamic_batch: bool, exporter: str) -> Path:
    """``deploy`` exported to ONNX at ``path``, with ``model``'s metadata, checked by onnx."""
    try:
        _torch_onnx_export(deploy, example, path, opset, dynamic_batch, exporter)
    except Exception as e:
        raise ExportError(f"ONNX export of {getattr(model, 'model_name', '?')} failed: "
                          f"{str(e).splitlines()[0][:300]}") from e
    import onnx
    _add_metadata(path, model, resolution, dynamic_batch)
    onnx.checker.check_model(str(path), full_check=True)
    return path


def export(model: nn.Module, out: str | os.PathLike, fmt: str | None = None,
           resolution: tuple[int, int] | None = None, dynamic_batch: bool = False, opset: int = 18,
           exporter: str = "torchscript", atol: float = 1e-4, reparam: bool = True,
           verify: bool = True) -> ExportReport:
    """Export ``model`` (eval mode) and verify the artifact; see module docstring. ``fmt``: one of
    FORMATS; by default the one whose file suffix ``out`` has (.onnx, .xml, ...)."""
    target = target_for_output(out, fmt)
    fmt = target.FORMAT
    if not writable(out):
        raise ConfigError(f"cannot write {os.fspath(out)!r}: its directory is not writable; choose "
                          f"another -o/--output")
    if exporter not in ("torchscript", "dynamo"):
        raise ConfigError(f"unknown exporter {exporter!r}; use torchscript or dynamo")
    model = model.eval()
    cfg = model.input_config
    resolution = tuple(resolution or cfg.input_size[1:])
    if min(resolution) < getattr(model, "min_input_size", 1):
        raise ConfigError(f"resolution {resolution} is below the model's minimum "
                          f"{model.min_input_size}")
    deploy = reparameterize(model, input_size=resolution) if reparam else copy.deepcopy(model)
    # ONNX is NCHW: trace an NCHW copy, so code that picks its permutes by memory layout (MobileViT's
    # patch folding) does not leave NHWC<->NCHW transposes in the graph (3 in mobilevit_s)
    deploy.to(memory_format=torch.contiguous_format)
    out = Path(out)
    inputs = check_inputs(model, resolution)
    with tempfile.TemporaryDirectory(prefix="edgevision-export-") as tmpdir:
        example = inputs["random"].repeat(2, 1, 1, 1) if dynamic_batch else inputs["random"]
        onnx_path = None
        if target.SOURCE == "onnx":
            onnx_path = _onnx_file(model, deploy, example, Path(tmpdir) / "model.onnx", opset, resolution,
                                   dynamic_batch, exporter)
        art = target.build(deploy, example, onnx_path, Path(tmpdir))
        report = ExportReport(out, fmt, target.NAME, "fp32", resolution, opset)
        if verify and hasattr(target, "verify"):  # a runtime that cannot run here checks otherwise
            target.verify(report, model, art, inputs, atol, deploy=deploy)
        elif verify:
            _verify(report, model, target.session(art, precision="fp32"), inputs, atol)
        if hasattr(target, "notes"):
            report.notes += target.notes(art)
        report.size_bytes = target.install(art, out)
        if target.SOURCE != "onnx":  # the ONNX file carries its metadata; other formats beside them
            write_metadata(out, artifact_metadata(model, resolution, dynamic_batch))
    return report


def _verify(report: ExportReport, model: nn.Module, sess, inputs: dict, atol: float) -> None:
    """Run ``sess`` on each input and compare with ``model``; fills ``report`` or raises."""
    report.precision = sess.precision
    with torch.no_grad():
        for kind, x in inputs.items():
            ref = model(x).numpy()
            try:
                got = sess(x.numpy())
            except Exception as e:  # a graph that exported but cannot run
                raise ExportError(
                    f"the exported graph fails in {report.runtime} on the {kind} input "
                    f"({str(e).splitlines()[0][:200]}); nothing was written. With "
                    f"--dynamic-batch, try --exporter dynamo") from None
            diff = float(np.abs(ref - got).max())
            report.max_abs_diff[kind] = diff
            # atol applies to logits of magnitude <= 1; larger logits (random weights with
            # exploding activations) scale it, i.e. it becomes a relative tolerance
            tol = atol * max(1.0, float(np.abs(ref).max()))
            if not diff <= tol:
                raise ExportError(f"{report.runtime} output differs from PyTorch on the {kind} input: "
                                  f"max abs diff {diff:.3g} > {tol:.3g}; nothing was written")


def artifact_metadata(model: nn.Module, resolution, dynamic_batch: bool) -> dict[str, str]:
    """The model name, preprocessing and resolution an artifact is stored with, so later steps
    (quantize, bench, predict) prepare inputs the way the model expects."""
    import dataclasses
    import json
    meta = {"edgevision_model": getattr(model, "model_name", ""),
            "input_config": json.dumps(dataclasses.asdict(model.input_config)),
            "resolution": json.dumps(list(resolution)), "dynamic_batch": str(bool(dynamic_batch)),
            "num_classes": str(getattr(model, "num_classes", ""))}
    if getattr(model, "class_names", None):  # recorded by the weights the model was loaded from
        meta["classes"] = json.dumps(list(model.class_names))
    return meta


def _add_metadata(path: Path, model: nn.Module, resolution, dynamic_batch: bool) -> None:
    """Record ``artifact_metadata`` in the ONNX file's metadata properties."""
    import onnx
    m = onnx.load(str(path))
    for k, v in artifact_metadata(model, resolution, dynamic_batch).items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(m, str(path))


def metadata_path(artifact: str | os.PathLike) -> Path:
    """Where a non-ONNX artifact's metadata lives: ``model.pte`` -> ``model.pte.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def write_metadata(artifact: str | os.PathLike, meta: dict[str, str]) -> None:
    import json
    with atomic_write(metadata_path(artifact), ".json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))


def _read_props(path: Path) -> dict[str, str]:
    import json
    if path.suffix == ".xml" and path.is_file():  # OpenVINO keeps the ONNX metadata in its rt_info
        return _ir_framework_info(path)
    if path.suffix != ".onnx":
        side = metadata_path(path)
        return json.loads(side.read_text()) if side.is_file() else {}
    import onnx
    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ExportError(f"{path} is not a readable ONNX model ({str(e).splitlines()[0][:160]})") from None
    return {p.key: p.value for p in m.metadata_props}


def _ir_framework_info(xml: Path) -> dict[str, str]:
    """The ``<rt_info><framework>`` entries of an OpenVINO IR (the source ONNX file's metadata)."""
    import xml.etree.ElementTree as ET
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as e:
        raise ExportError(f"{xml} is not a readable OpenVINO IR ({e})") from None
    node = root.find("rt_info/framework")
    return {} if node is None else {c.tag: c.get("value", "") for c in node}


def read_metadata(path: str | os.PathLike) -> dict:
    """The edgevision metadata of an exported artifact ({} if it has none): the ONNX file's
    metadata properties, or the ``.json`` beside another format."""
    import json
    from ..registry import InputConfig
    props = _read_props(Path(path))
    if "input_config" not in props:
        return {}
    cfg = json.loads(props["input_config"])
    cfg["input_size"] = tuple(cfg["input_size"])
    cfg["mean"], cfg["std"] = tuple(cfg["mean"]), tuple(cfg["std"])
    return {"model": props.get("edgevision_model", ""), "input_config": InputConfig(**cfg),
            "resolution": tuple(json.loads(props["resolution"])),
            "dynamic_batch": props.get("dynamic_batch") == "True",
            "classes": json.loads(props["classes"]) if props.get("classes") else []}
