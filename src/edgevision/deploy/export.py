"""Export to ONNX / OpenVINO, then prove the artifact computes what PyTorch does.

Steps: reparameterize (verified) -> export to a temporary file -> onnx.checker -> run it in its
runtime on a random and a natural-looking image -> compare logits with the original PyTorch
model (max abs diff <= atol x max(1, max |logit|)) -> atomically move into place. A failed check
leaves no file.
"""
from __future__ import annotations

import copy
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, EdgeVisionError
from ..images import preprocess, synthetic_image
from ..weights.io import atomic_write
from .reparam import reparameterize
from .runtimes import open_session, openvino_model

FORMATS = ("onnx", "openvino")


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

    def summary(self) -> str:
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in self.max_abs_diff.items())
        return (f"{self.path} ({self.format}, {self.size_bytes / 1e6:.1f} MB, opset {self.opset}, "
                f"{self.resolution[0]}x{self.resolution[1]}): {self.runtime} {self.precision} vs "
                f"PyTorch max abs diff: {diffs}")


def check_inputs(model: nn.Module, resolution: tuple[int, int], seed: int = 0) -> dict[str, torch.Tensor]:
    """A random input and a natural-looking image, preprocessed the model's way."""
    cfg = model.input_config
    g = torch.Generator().manual_seed(seed)
    rand = torch.randn(1, cfg.input_size[0], *resolution, generator=g)
    img = preprocess(synthetic_image(seed + 1, (resolution[0] + 32, resolution[1] + 32)), cfg,
                     resolution).unsqueeze(0)
    return {"random": rand, "image": img}


def _torch_onnx_export(model: nn.Module, x: torch.Tensor, path: Path, opset: int,
                       dynamic_batch: bool, exporter: str) -> None:
    kwargs = dict(opset_version=opset, input_names=["input"], output_names=["logits"])
    with torch.no_grad():  # warm-up: size-dependent constants (attention-bias tables) get cached
        model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            dyn = ({0: torch.export.Dim.DYNAMIC},) if dynamic_batch else None
            torch.onnx.export(model, (x,), str(path), dynamo=True, dynamic_shapes=dyn,
                              verbose=False, **kwargs)
        else:
            dyn = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
            torch.onnx.export(model, (x,), str(path), dynamo=False, dynamic_axes=dyn, **kwargs)


def export(model: nn.Module, out: str | os.PathLike, fmt: str = "onnx",
           resolution: tuple[int, int] | None = None, dynamic_batch: bool = False, opset: int = 18,
           exporter: str = "torchscript", atol: float = 1e-4, reparam: bool = True,
           verify: bool = True) -> ExportReport:
    """Export ``model`` (eval mode) and verify the artifact; see module docstring."""
    if fmt not in FORMATS:
        raise ConfigError(f"unsupported format {fmt!r}; choose one of {', '.join(FORMATS)}")
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
        onnx_path = Path(tmpdir) / "model.onnx"
        example = inputs["random"].repeat(2, 1, 1, 1) if dynamic_batch else inputs["random"]
        try:
            _torch_onnx_export(deploy, example, onnx_path, opset, dynamic_batch, exporter)
        except Exception as e:
            raise ExportError(f"ONNX export of {getattr(model, 'model_name', '?')} failed: "
                              f"{str(e).splitlines()[0][:300]}") from e
        import onnx
        _add_metadata(onnx_path, model, resolution, dynamic_batch)
        onnx.checker.check_model(str(onnx_path), full_check=True)
        if fmt == "openvino":
            import openvino as ov
            art = Path(tmpdir) / "model.xml"
            ov.save_model(openvino_model(onnx_path), str(art), compress_to_fp16=False)
            runtime = "openvino"
        else:
            art, runtime = onnx_path, "onnxruntime"
        report = ExportReport(out, fmt, runtime, "fp32", resolution, opset)
        if verify:
            sess = open_session(art, runtime, precision="fp32")
            report.precision = sess.precision
            with torch.no_grad():
                for kind, x in inputs.items():
                    ref = model(x).numpy()
                    try:
                        got = sess(x.numpy())
                    except Exception as e:  # a graph that exported but cannot run
                        raise ExportError(
                            f"the exported graph fails in {runtime} on the {kind} input "
                            f"({str(e).splitlines()[0][:200]}); nothing was written. With "
                            f"--dynamic-batch, try --exporter dynamo") from None
                    diff = float(np.abs(ref - got).max())
                    report.max_abs_diff[kind] = diff
                    # atol applies to logits of magnitude <= 1; larger logits (random weights with
                    # exploding activations) scale it, i.e. it becomes a relative tolerance
                    tol = atol * max(1.0, float(np.abs(ref).max()))
                    if not diff <= tol:
                        raise ExportError(f"{runtime} output differs from PyTorch on the {kind} input: "
                                          f"max abs diff {diff:.3g} > {tol:.3g}; nothing was written")
        report.size_bytes = _install(art, out, fmt)
    return report


def _add_metadata(path: Path, model: nn.Module, resolution, dynamic_batch: bool) -> None:
    """Record the model name, preprocessing and resolution in the ONNX file, so later steps
    (quantize, bench, predict) prepare inputs the way the model expects."""
    import dataclasses
    import json

    import onnx
    m = onnx.load(str(path))
    meta = {"edgevision_model": getattr(model, "model_name", ""),
            "input_config": json.dumps(dataclasses.asdict(model.input_config)),
            "resolution": json.dumps(list(resolution)), "dynamic_batch": str(bool(dynamic_batch)),
            "num_classes": str(getattr(model, "num_classes", ""))}
    for k, v in meta.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(m, str(path))


def read_metadata(path: str | os.PathLike) -> dict:
    """The edgevision metadata of an exported ONNX file ({} if it has none)."""
    import json

    import onnx
    from ..registry import InputConfig
    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ExportError(f"{path} is not a readable ONNX model ({str(e).splitlines()[0][:160]})") from None
    props = {p.key: p.value for p in m.metadata_props}
    if "input_config" not in props:
        return {}
    cfg = json.loads(props["input_config"])
    cfg["input_size"] = tuple(cfg["input_size"])
    cfg["mean"], cfg["std"] = tuple(cfg["mean"]), tuple(cfg["std"])
    return {"model": props.get("edgevision_model", ""), "input_config": InputConfig(**cfg),
            "resolution": tuple(json.loads(props["resolution"])),
            "dynamic_batch": props.get("dynamic_batch") == "True"}


def _install(art: Path, out: Path, fmt: str) -> int:
    """Atomically move the artifact (and OpenVINO's .bin beside its .xml) to ``out``."""
    if fmt == "openvino":
        out = out.with_suffix(".xml")
        with atomic_write(out.with_suffix(".bin")) as tmp_bin:
            shutil.copyfile(art.with_suffix(".bin"), tmp_bin)
        xml = art.read_text().replace("model.bin", out.with_suffix(".bin").name)
        with atomic_write(out) as tmp:
            tmp.write_text(xml)
        return out.stat().st_size + out.with_suffix(".bin").stat().st_size
    with atomic_write(out) as tmp:
        shutil.copyfile(art, tmp)
    return out.stat().st_size
