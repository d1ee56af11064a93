#!/usr/bin/env python
"""fp32 on the phone runtimes' CPU path (XNNPACK) against onnxruntime fp32, batch 1.

For one model per family (the smallest; --models to choose), with random weights and randomized
BatchNorm statistics (so nothing folds away), the model is exported at --resolution (default: its
own) to ONNX, ExecuTorch (.pte) and LiteRT (.tflite), each export verified against PyTorch; then
the three are timed side by side in one run on the same image, in turns (--rounds, each side keeps
its best median, so a slow spell of a shared machine hits all of them). Printed per model: the
latencies, each runtime's speed relative to onnxruntime (ort ms / runtime ms: < 1 is slower) and
the XNNPACK delegation line of each phone export.

    .venv/bin/python benchmarks/phone_fp32.py [--models a,b] [--resolution 224] [--threads 1]
        [--rounds 3] [--budget 1.0]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import edgevision as ev
from edgevision.bench import cpu_description
from edgevision.bench.speed import median_ms
from edgevision.deploy.calibration import calibration_images
from edgevision.deploy.export import export
from edgevision.deploy.targets import open_session
from edgevision.registry import get_entry, reference_figures

PHONE = {"executorch": ".pte", "litert": ".tflite"}


def family_smallest() -> list[str]:
    """The model of each family with the fewest multiply-adds."""
    figures = reference_figures()
    reps: dict[str, str] = {}
    for name in sorted(ev.list_models(), key=lambda n: getattr(figures.get(n), "macs_millions", 1e9)):
        reps.setdefault(get_entry(name).family, name)
    return sorted(reps.values())


@torch.no_grad()
def randomized(name: str, seed: int = 0) -> torch.nn.Module:
    """``name`` with random weights and random, non-identity BatchNorm statistics."""
    torch.manual_seed(seed)
    model = ev.create_model(name).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.75, 1.25)
    return model


def bench_model(name: str, args, workdir: Path) -> dict:
    model = randomized(name)
    res = args.resolution or get_entry(name).input_config.resolution
    row = {"model": name, "resolution": res, "ms": {}, "notes": {}}
    paths = {"onnxruntime": workdir / f"{name}.onnx"}
    paths.update({rt: workdir / f"{name}{suffix}" for rt, suffix in PHONE.items()})
    t = time.time()
    for runtime, path in paths.items():
        try:
            r = export(model, path, resolution=(res, res))
            row["notes"][runtime] = r.notes[0] if runtime in PHONE and r.notes else ""
        except ev.EdgeVisionError as e:
            row["notes"][runtime] = f"not exported: {e}"
            paths[runtime] = None
    row["export_s"] = time.time() - t
    x = calibration_images("embedded", model.input_config, (res, res), 1, split="test")
    sessions = {rt: open_session(p, rt, args.threads) for rt, p in paths.items() if p is not None}
    best = {rt: float("inf") for rt in sessions}
    for _ in range(args.rounds):
        for rt, sess in sessions.items():
            best[rt] = min(best[rt], median_ms(lambda: sess(x), args.budget))
    row["ms"] = best
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="", help="comma-separated (default: the smallest per family)")
    ap.add_argument("--resolution", type=int, default=0, help="0: each model's default")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per median")
    args = ap.parse_args()
    models = [m for m in args.models.split(",") if m] or family_smallest()
    print(f"CPU: {cpu_description()}; threads {args.threads}; batch 1; fp32; "
          f"{time.strftime('%Y-%m-%d')}", flush=True)
    print("| model | px | onnxruntime ms | ExecuTorch ms (x ort) | LiteRT ms (x ort) |")
    print("| --- | --- | --- | --- | --- |", flush=True)
    delegation = []
    with tempfile.TemporaryDirectory(prefix="phone-fp32-") as d:
        for name in models:
            row = bench_model(name, args, Path(d))
            ms = row["ms"]
            ort = ms.get("onnxruntime", np.nan)
            cells = [f"{ms[rt]:.2f} ({ort / ms[rt]:.2f}x)" if rt in ms else "-" for rt in PHONE]
            print(f"| {name} | {row['resolution']} | {ort:.2f} | {' | '.join(cells)} |", flush=True)
            delegation += [f"- {name} {rt}: {row['notes'][rt]}" for rt in PHONE]
    print("\nDelegation (fp32):")
    print("\n".join(delegation))


if __name__ == "__main__":
    main()
