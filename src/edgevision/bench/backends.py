"""Inference backends for benchmarking, each a callable on a fixed input.

Every backend reports the precision that actually ran. ONNX/OpenVINO artifacts are produced with
edgevision's own verified export (and INT8 with its quantizer) into a cache directory.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, EdgeVisionError

BACKENDS = ("torch", "torch-cl", "compile", "onnxruntime", "onnxruntime-int8", "openvino", "openvino-bf16",
            "openvino-int8", "openvino-int8-bf16", "executorch", "executorch-int8", "litert", "litert-int8",
            "ort", "ort-int8")
# the runtime's own name (as `quantize --runtime` and `predict --runtime` spell it) is the backend's
ALIASES = {"ort": "onnxruntime", "ort-int8": "onnxruntime-int8"}
TORCH_BACKENDS = ("torch", "torch-cl", "compile")
_MOBILE = "-e '.[mobile]'"
_NEEDS = {"ort": ("onnxruntime", "onnxruntime"), "ort-int8": ("onnxruntime", "onnxruntime"),
          "onnxruntime": ("onnxruntime", "onnxruntime"), "onnxruntime-int8": ("onnxruntime", "onnxruntime"),
          "openvino": ("openvino", "openvino"), "openvino-bf16": ("openvino", "openvino"),
          "openvino-int8": ("nncf", "openvino nncf"), "openvino-int8-bf16": ("nncf", "openvino nncf"),
          "executorch": ("executorch", _MOBILE), "executorch-int8": ("executorch", _MOBILE),
          "litert": ("litert_torch", _MOBILE), "litert-int8": ("litert_torch", _MOBILE)}
# phone runtimes whose graphs are built from the PyTorch module, for batch 1
_TORCH_SOURCED = ("executorch", "litert")


@dataclass
class Runner:
    backend: str
    precision: str
    run: Callable[[], object]
    settings: str


def check_backend(name: str) -> None:
    if name.startswith("coreml"):
        raise ConfigError("Core ML models run only on macOS/iOS, so edgevision gives them no latency "
                          "here; `edgevision export NAME --format coreml` converts and checks one")
    if name not in BACKENDS:
        from ..text import did_you_mean
        raise ConfigError(f"unknown backend {name!r}.{did_you_mean(name, BACKENDS, 3)} Choose from "
                          f"{', '.join(b for b in BACKENDS if b not in ALIASES)} (ort = onnxruntime)")
    if name in _NEEDS:
        mod, pip = _NEEDS[name]
        try:
            __import__(mod)
        except ImportError:
            raise EdgeVisionError(f"backend {name} needs {mod}, which is not installed; install it "
                                  f"with `.venv/bin/pip install {pip}`") from None


def artifact_dir() -> Path:
    d = Path(os.environ.get("EDGEVISION_CACHE", Path.home() / ".cache" / "edgevision")) / "artifacts"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _weights_tag(model) -> str:
    h = hashlib.sha1()
    for k, v in sorted(model.state_dict().items())[:8]:
        h.update(k.encode())
        h.update(v.detach().float().flatten()[:64].numpy().tobytes())
    return h.hexdigest()[:10]


def make_runner(model, backend: str, batch: int, resolution: tuple[int, int], threads: int,
                device: torch.device | str = "cpu") -> Runner:
    """A zero-argument callable running ``model`` on a (batch, C, H, W) input with ``backend``
    (the torch backends on ``device``; the others on the CPU)."""
    check_backend(backend)
    c = model.input_config.input_size[0]
    x = torch.randn(batch, c, *resolution)
    if backend in TORCH_BACKENDS:
        return _torch_runner(model, backend, x, torch.device(device))
    backend = ALIASES.get(backend, backend)
    from ..deploy.export import export
    from ..deploy.targets import open_session
    name = getattr(model, "model_name", "model")
    tag = f"{name}-{resolution[0]}x{resolution[1]}-{_weights_tag(model)}"
    if backend.split("-")[0] in _TORCH_SOURCED:
        return _phone_runner(model, backend, batch, resolution, threads, tag)
    fp32 = artifact_dir() / f"{tag}.onnx"
    if not fp32.exists():
        export(model, fp32, resolution=resolution, dynamic_batch=True)
    xn = x.numpy()
    if backend == "onnxruntime":
        sess = open_session(fp32, "onnxruntime", threads)
    elif backend in ("openvino", "openvino-bf16"):
        sess = open_session(fp32, "openvino", threads, "bf16" if backend.endswith("bf16") else "fp32")
    else:
        from ..deploy.quantize import QuantRecipe, quantize
        rt = "onnxruntime" if backend == "onnxruntime-int8" else "openvino"
        q = artifact_dir() / (f"{tag}-int8.onnx" if rt == "onnxruntime" else f"{tag}-int8.xml")
        if not q.exists():
            quantize(fp32, q, QuantRecipe(runtime=rt, images=32, held_out=8))
        sess = open_session(q, rt, threads, precision="int8-bf16" if backend.endswith("bf16") else "int8")
    return Runner(backend, sess.precision, lambda: sess(xn), f"{sess.runtime}")


def _torch_runner(model, backend: str, x: torch.Tensor, device: torch.device) -> Runner:
    """Eager (NCHW or NHWC) or compiled PyTorch on ``device``; a GPU is synchronised after each
    call so the time covers the work, not its launch."""
    import copy
    m = copy.deepcopy(model).eval()
    m.channels_last = backend == "torch-cl" or (backend == "compile" and model.channels_last)
    m = m.to(device, memory_format=torch.channels_last if m.channels_last else torch.contiguous_format)
    x = x.to(device)
    if backend == "compile":
        m = torch.compile(m)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        m(x)  # compile / warm caches

    def run():
        with torch.inference_mode():
            out = m(x)
        sync()
        return out
    layout = "NHWC" if getattr(m, "channels_last", False) else "NCHW"
    where = "" if device.type == "cpu" else f" {device}"
    return Runner(backend, "fp32", run, (f"eager {layout}" if backend != "compile" else "torch.compile") + where)


def _phone_runner(model, backend: str, batch: int, resolution, threads: int, tag: str) -> Runner:
    """ExecuTorch / LiteRT: the verified artifact (fp32 export or INT8 via PT2E), cached."""
    from ..deploy.export import export
    from ..deploy.quantize import QuantRecipe, quantize
    from ..deploy.targets import get_target, open_session
    runtime, int8 = backend.split("-")[0], backend.endswith("-int8")
    if batch != 1:
        raise ConfigError(f"{runtime} graphs are exported for batch 1 (a phone classifies one image "
                          f"at a time); measure them with --batch-size 1")
    target = get_target(runtime)
    path = artifact_dir() / f"{tag}{'-int8' if int8 else ''}{target.SUFFIX}"
    if not path.exists():
        if int8:
            quantize(model, path, QuantRecipe(runtime=runtime, images=32, held_out=8), resolution=resolution)
        else:
            export(model, path, fmt=target.FORMAT, resolution=resolution)
    sess = open_session(path, runtime, threads, "int8" if int8 else "fp32")
    xn = torch.randn(1, model.input_config.input_size[0], *resolution).numpy()
    return Runner(backend, sess.precision, lambda: sess(xn), runtime)


def peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def np_ok(x) -> bool:
    return isinstance(x, np.ndarray) or torch.is_tensor(x)
