#!/usr/bin/env python
"""The deploy path, side by side in one run.

Part 1 — ONNX fp32 in onnxruntime, ours / timm's: each library's model reparameterized by that
library (edgevision.reparameterize / timm's reparameterize_model), exported with
torch.onnx.export (same exporter, opset and onnxruntime settings), batch 1, default resolution.
Lower is better (goal <= 1.0).

Part 2 — the fastest verified reduced-precision path: `edgevision optimize` per model
(int8_recipes.py: every runtime x precision x the family's INT8 recipes, verified against
onnxruntime fp32, timed side by side with it at batch 1 and 16), top-1 agreement and speed both
at --resolution. Agreement is only meaningful with trained weights: pass --weights-dir with
<model>.safetensors files (benchmarks/train_weights.py); without them the rows say "random
weights".

    .venv/bin/python benchmarks/deploy_vs_timm.py [--part 1|2|both] [--threads N]
        [--weights-dir runs/weights10 --resolution 64 --runtimes onnxruntime,openvino]
"""
from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import timm
import torch

import edgevision as ev
from edgevision.bench import cpu_description
from edgevision.bench.speed import median_ms
from edgevision.deploy.export import export
from edgevision.deploy.targets import open_session

PART1 = ["mobilenetv3_large_100", "efficientnet_b0", "repvit_m1_1", "efficientvit_m5", "efficientvit_b1",
         "convnext_atto", "mobilevit_s"]
PART2 = ["mobilenetv3_large_100", "tf_efficientnet_lite0", "mobilenetv4_conv_small", "repvit_m1_1",
         "efficientnet_b0", "convnext_atto"]


def ms(sess, x, budget=1.0):
    return median_ms(lambda: sess(x), budget_s=budget * 2, min_time_s=budget / 2)


def timm_onnx(name, path, res, opset=18):
    from timm.utils.model import reparameterize_model
    m = reparameterize_model(timm.create_model(name).eval())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(1, 3, res, res),), str(path), dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def part1(names, threads, rounds, d):
    print("\nPart 1: ONNX fp32, onnxruntime, batch 1 (ours/timm: lower is better)")
    print(f"{'model':24s} {'res':>4s} {'ours ms':>8s} {'timm ms':>8s} {'ours/timm':>9s}")
    for name in names:
        if name not in ev.list_models() or not timm.is_model(name):
            print(f"{name:24s}  (not available)")
            continue
        ours = ev.create_model(name).eval()
        res = ours.input_config.resolution
        export(ours, d / f"{name}.onnx", resolution=(res, res), dynamic_batch=True)
        timm_onnx(name, d / f"{name}_timm.onnx", res)
        so, st = open_session(d / f"{name}.onnx", threads=threads), open_session(d / f"{name}_timm.onnx", threads=threads)
        x = np.random.randn(1, 3, res, res).astype(np.float32)
        o, t = [], []
        for _ in range(rounds):
            o.append(ms(so, x))
            t.append(ms(st, x))
        mo, mt = min(o), min(t)  # best round: interference on a shared machine only adds time
        print(f"{name:24s} {res:4d} {mo:8.3f} {mt:8.3f} {mo / mt:9.3f}", flush=True)


def part2(names, weights_dir, opts: dict):
    """optimize per model (int8_recipes.study); then, per model, optimize's pick against the goals
    (>= 1.5x at batch 1, >= 2x at batch 16)."""
    from int8_recipes import HEADER, best_paths, study
    print(f"\nPart 2: reduced precision vs onnxruntime fp32 (edgevision optimize) — agreement on "
          f"{opts['held_out']} held-out images and speed-up at {opts['resolution']} px (higher is better)")
    print(HEADER)
    rows = []
    out = Path(opts.pop("out"))
    for name in names:
        if name not in ev.list_models():
            print(f"{name:24s}  (not available)")
            continue
        rows += study(name, Path(weights_dir) if weights_dir else None, out, **opts)
    print("\nPick (>= 1 - max-drop top-1 agreement; one artifact for both batch sizes; goal: bs1 >= 1.5x, "
          "bs16 >= 2x)")
    best = best_paths(rows)
    for name in dict.fromkeys(r["model"] for r in rows):
        b1, b16, recipe = best.get(name, (0.0, 0.0, "none"))
        ok = "met" if b1 >= 1.5 and b16 >= 2.0 else "NOT met"
        print(f"{name:24s} {recipe:28s} bs1 {b1:5.2f}x, bs16 {b16:5.2f}x: {ok}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="both", choices=["1", "2", "both"])
    ap.add_argument("--threads", type=int, default=0, help="part 1: onnxruntime threads (0: all cores)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--weights-dir", help="directory of <model>.safetensors trained weights (part 2)")
    ap.add_argument("--models", help="comma-separated override of the model list")
    from int8_recipes import add_options, options
    add_options(ap)  # part 2: optimize's options
    args = ap.parse_args()
    print(f"CPU: {cpu_description()}; onnxruntime {__import__('onnxruntime').__version__}; timm {timm.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if args.part in ("1", "both"):
            part1(args.models.split(",") if args.models else PART1, args.threads, args.rounds, d)
        if args.part in ("2", "both"):
            part2(args.models.split(",") if args.models else PART2, args.weights_dir,
                  dict(options(args), out=args.out))


if __name__ == "__main__":
    main()
