"""Classify images with trained or imported weights, or with an exported artifact, using the
preprocessing stored with them.

``predict(inputs, weights, model_name=None, topk=5)`` takes image files, folders and glob
patterns. ``weights`` is a weight file (.safetensors, .pth: run in PyTorch on ``device``) or an
exported artifact (.onnx, OpenVINO .xml, ExecuTorch .pte, LiteRT .tflite: run in its runtime with
the preprocessing the export stored). Every result names the runtime and the precision that ran.
"""
from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import ConfigError, EdgeVisionError
from .images import preprocess
from .registry import imagenet_classes
from .weights import create_with_weights
from .weights.io import read_state_dict

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm")
# artifact suffix -> the runtime that runs it by default
ARTIFACT_RUNTIMES = {".onnx": "onnxruntime", ".xml": "openvino", ".pte": "executorch",
                     ".tflite": "litert", ".mlpackage": "coreml"}


def default_class_names(num_classes: int) -> list[str]:
    return imagenet_classes() if num_classes == 1000 else [f"class {i}" for i in range(num_classes)]


def class_names(weights: str, num_classes: int) -> list[str]:
    _, meta = read_state_dict(weights)
    if meta.get("classes"):
        names = json.loads(meta["classes"])
        if len(names) == num_classes:
            return names
    return default_class_names(num_classes)


def load_image(path: str | Path) -> Image.Image:
    p = Path(path)
    if not p.is_file():
        raise EdgeVisionError(f"image {str(p)!r} does not exist")
    try:
        with Image.open(p) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise EdgeVisionError(f"cannot read image {str(p)!r}: {e}") from None


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Image paths from files, folders (their images, sorted, not recursive) and glob patterns."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
            if not found:
                raise EdgeVisionError(f"folder {item!r} holds no image ({', '.join(IMAGE_SUFFIXES)})")
            out += found
        elif p.exists() or not glob.has_magic(item):
            out.append(p)  # a missing file is reported by load_image, in order
        else:
            found = sorted(Path(q) for q in glob.glob(item, recursive=True) if Path(q).is_file())
            if not found:
                raise EdgeVisionError(f"no file matches {item!r}")
            out += found
    return out


@dataclass
class Classifier:
    """One way to run a model on preprocessed images: ``run`` maps a (1, C, H, W) float32 array
    to logits."""

    model: str
    input_config: object  # InputConfig
    size: tuple[int, int]
    run: Callable[[np.ndarray], np.ndarray]
    classes: list[str]
    runtime: str
    precision: str


def _torch_classifier(weights: str, model_name: str | None, device: str) -> Classifier:
    from .train.device import resolve_device
    from .weights.pretrained import parse_ref
    tag = parse_ref(weights)
    if tag is not None:
        name = model_name
        if not name:
            raise ConfigError("--pretrained needs the model: add -m NAME")
    else:
        name = model_name or read_state_dict(weights)[1].get("model")
        if not name:
            raise ConfigError(f"{weights!r} does not record which model it belongs to; pass --model NAME")
    dev = resolve_device(device)
    model = create_with_weights(name, weights).to(dev)
    cfg = model.input_config
    names = getattr(model, "class_names", None) if tag is not None else None

    @torch.no_grad()
    def run(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x).to(dev)).float().cpu().numpy()
    where = f"pytorch ({dev})" + (f", {model.pretrained.name}" if tag is not None else "")
    return Classifier(name, cfg, tuple(cfg.input_size[1:]), run,
                      names or class_names(weights, model.num_classes) if tag is None else
                      names or default_class_names(model.num_classes), where, "fp32")


def _artifact_classifier(path: str, model_name: str | None, runtime: str | None, threads: int,
                         precision: str | None) -> Classifier:
    from .deploy.export import read_metadata
    from .deploy.targets import get_target
    p = Path(path)
    runtime = runtime or ARTIFACT_RUNTIMES[p.suffix.lower()]
    target = get_target(runtime)
    if not getattr(target, "RUNS_HERE", True):
        raise ConfigError(f"{path!r} is a Core ML package: Core ML runs only on macOS/iOS, so it cannot "
                          f"be run here; predict with the .onnx, .xml, .pte or .tflite export instead")
    if not p.exists():
        raise EdgeVisionError(f"model file {path!r} does not exist")
    meta = read_metadata(p)
    if not meta:
        raise ConfigError(f"{path!r} carries no edgevision metadata (model, preprocessing); export it "
                          f"with `edgevision export`, which stores them")
    if model_name and meta["model"] and model_name != meta["model"]:
        raise ConfigError(f"{path!r} was exported from {meta['model']!r}, not {model_name!r}; "
                          f"drop --model or pass the matching one")
    sess = target.session(p, threads, precision or _stored_precision(p))
    return Classifier(meta["model"] or model_name or p.stem, meta["input_config"], tuple(meta["resolution"]),
                      sess, list(meta.get("classes") or []), sess.runtime, sess.precision)


def _stored_precision(path: Path) -> str:
    """"int8" for a quantized ONNX (QDQ) or OpenVINO (FakeQuantize) graph, else "fp32" (the
    export metadata does not record the precision)."""
    if path.suffix == ".onnx":
        import onnx
        graph = onnx.load(str(path), load_external_data=False).graph
        quantized = any(n.op_type in ("QuantizeLinear", "QLinearConv") for n in graph.node)
    elif path.suffix == ".xml":
        quantized = "FakeQuantize" in path.read_text(errors="replace")
    else:  # .pte / .tflite: the session reads back what it can
        quantized = False
    return "int8" if quantized else "fp32"


def open_classifier(weights: str, model_name: str | None = None, device: str = "auto",
                    runtime: str | None = None, threads: int = 0, precision: str | None = None) -> Classifier:
    """The model in ``weights``: an exported artifact (by its suffix) runs in ``runtime``
    (default: the artifact's own), a weight file in PyTorch on ``device``."""
    if Path(weights).suffix.lower() in ARTIFACT_RUNTIMES:
        return _artifact_classifier(weights, model_name, runtime, threads, precision)
    if runtime is not None:
        raise ConfigError(f"--runtime applies to exported models (.onnx, .xml, .pte, .tflite); "
                          f"{weights!r} is a weight file, which runs in PyTorch (choose with --device)")
    return _torch_classifier(weights, model_name, device)


def predict(images: list[str], model_name: str | None, weights: str, topk: int = 5,
            device: str = "auto", runtime: str | None = None, threads: int = 0,
            precision: str | None = None) -> list[dict]:
    """Top-``topk`` classes of every image; each result also names the model, runtime and
    precision that produced it."""
    if topk < 1:
        raise ConfigError(f"--topk must be at least 1, got {topk}")
    paths = expand_inputs(images)
    clf = open_classifier(weights, model_name, device, runtime, threads, precision)
    out = []
    for path in paths:
        x = preprocess(load_image(path), clf.input_config, clf.size).unsqueeze(0).numpy()
        logits = torch.from_numpy(np.asarray(clf.run(x), dtype=np.float32)).reshape(1, -1)
        probs = logits.softmax(-1)[0]
        names = clf.classes or default_class_names(probs.numel())
        p, idx = probs.topk(min(topk, probs.numel()))
        out.append({"image": str(path), "model": clf.model, "runtime": clf.runtime,
                    "precision": clf.precision,
                    "top": [{"class": names[i], "index": int(i), "prob": float(v)}
                            for v, i in zip(p.tolist(), idx.tolist())]})
    return out
