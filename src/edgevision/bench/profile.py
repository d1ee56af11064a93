"""`edgevision profile`: where the time goes, layer by layer, and why MACs do not predict it.

torch backend: forward hooks time every leaf module (median over runs), FlopCounterMode counts
its MACs, and bytes moved = weights + input + output activations (fp32). Arithmetic intensity
= MACs / bytes: depthwise convs and reshapes have low intensity and are memory-bound, so their
share of time exceeds their share of MACs. ort backend: onnxruntime's own per-node profiler.
"""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ConfigError
from ..text import table


@dataclass
class LayerStat:
    name: str
    kind: str
    ms: float
    macs: float
    weight_bytes: int
    act_bytes: int

    @property
    def intensity(self) -> float:
        b = self.weight_bytes + self.act_bytes
        return self.macs / b if b else 0.0


def _nbytes(t) -> int:
    if torch.is_tensor(t):
        return t.numel() * t.element_size()
    if isinstance(t, (list, tuple)):
        return sum(_nbytes(x) for x in t)
    return 0


def profile_torch(model: nn.Module, resolution: tuple[int, int], runs: int = 20) -> list[LayerStat]:
    model = model.eval()
    x = torch.randn(1, model.input_config.input_size[0], *resolution)
    leaves = {n: m for n, m in model.named_modules() if not list(m.children()) and
              not isinstance(m, (nn.Identity, nn.Dropout))}
    times: dict[str, list[float]] = defaultdict(list)
    acts: dict[str, int] = {}
    start: dict[str, float] = {}
    handles = []
    for name, m in leaves.items():
        def pre(mod, inp, name=name):
            start[name] = time.perf_counter()

        def post(mod, inp, out, name=name):
            times[name].append((time.perf_counter() - start[name]) * 1e3)
            acts[name] = _nbytes(inp) + _nbytes(out)
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    try:
        with torch.inference_mode():
            for _ in range(3):
                model(x)
            times.clear()
            for _ in range(runs):
                model(x)
    finally:
        for h in handles:
            h.remove()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    counts = fc.get_flop_counts()
    prefix = type(model).__name__
    stats = []
    for name, m in leaves.items():
        if name not in times:
            continue
        flops = sum(counts.get(f"{prefix}.{name}", {}).values())
        wbytes = sum(p.numel() * p.element_size() for p in m.parameters(recurse=False))
        stats.append(LayerStat(name, type(m).__name__, statistics.median(times[name]), flops / 2, wbytes,
                               acts.get(name, 0)))
    return sorted(stats, key=lambda s: -s.ms)


def profile_ort(onnx_path: str, resolution: tuple[int, int], channels: int = 3, runs: int = 20) -> list[LayerStat]:
    import numpy as np
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.enable_profiling = True
    with tempfile.TemporaryDirectory() as d:
        so.profile_file_prefix = f"{d}/prof"
        sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        x = np.random.randn(1, channels, *resolution).astype(np.float32)
        name = sess.get_inputs()[0].name
        for _ in range(runs):
            sess.run(None, {name: x})
        trace = json.load(open(sess.end_profiling()))
    per: dict[str, list[float]] = defaultdict(list)
    kinds = {}
    for ev in trace:
        if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
            node = ev["name"][: -len("_kernel_time")]
            per[node].append(ev["dur"] / 1e3)
            kinds[node] = ev.get("args", {}).get("op_name", "?")
    return sorted((LayerStat(n, kinds[n], statistics.median(v), 0.0, 0, 0) for n, v in per.items()),
                  key=lambda s: -s.ms)


def format_profile(stats: list[LayerStat], top: int = 25) -> str:
    total_ms = sum(s.ms for s in stats) or 1.0
    total_macs = sum(s.macs for s in stats) or 1.0
    rows = []
    for s in stats[:top]:
        rows.append([s.name, s.kind, f"{s.ms:.3f}", f"{100 * s.ms / total_ms:.1f}%",
                     f"{s.macs / 1e6:.2f}" if s.macs else "-", f"{100 * s.macs / total_macs:.1f}%" if s.macs else "-",
                     f"{s.weight_bytes / 1024:.0f}", f"{s.act_bytes / 1024:.0f}",
                     f"{s.intensity:.1f}" if s.macs else "-"])
    head = ["layer", "op", "ms", "time %", "MMACs", "MAC %", "weights KiB", "acts KiB", "MACs/byte"]
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for s in stats:
        by_kind[s.kind][0] += s.ms
        by_kind[s.kind][1] += s.macs
    summary = "  ".join(f"{k}: {100 * v[0] / total_ms:.0f}% time / {100 * v[1] / total_macs:.0f}% MACs"
                        for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1][0])[:6])
    return (table(rows, head, right={2, 3, 4, 5, 6, 7, 8}) +
            f"\n\n{len(stats)} layers, {total_ms:.2f} ms in layers. By op: {summary}")


def run_profile(name: str, backend: str = "torch", resolution: int | None = None, weights: str | None = None):
    from ..factory import create_model
    if weights:
        from ..weights import create_with_weights
        model = create_with_weights(name, weights, channels_last=False)
    else:
        model = create_model(name, channels_last=False)
    res = resolution or model.input_config.resolution
    if backend == "torch":
        return profile_torch(model, (res, res))
    if backend == "ort":
        from .backends import artifact_dir
        from ..deploy.export import export
        path = artifact_dir() / f"profile-{name}-{res}.onnx"
        export(model.eval(), path, resolution=(res, res))
        return profile_ort(str(path), (res, res), model.input_config.input_size[0])
    raise ConfigError(f"profile supports backends torch and ort, not {backend!r}")
