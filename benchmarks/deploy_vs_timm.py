#!/usr/bin/env python
"""The deploy path, side by side in one run.

Part 1 — ONNX fp32 in onnxruntime, ours / timm's: each library's model reparameterized by that
library (edgevision.reparameterize / timm's reparameterize_model), exported with
torch.onnx.export (same exporter, opset and onnxruntime settings), batch 1, default resolution.
Lower is better (goal <= 1.0).

Part 2 — the fastest verified reduced-precision path (the recipes of int8_recipes.py: ORT INT8,
OpenVINO INT8 plain / keep-first-last / accuracy-controlled, OpenVINO bf16 where the CPU has it)
vs onnxruntime fp32 at batch 1 and 16 at --speed-resolution, with top-1 agreement on held-out
embedded images at --resolution. Agreement is only meaningful with trained weights: pass
--weights-dir with <model>.safetensors files (benchmarks/train_weights.py); without them the
rows say "random weights".

    .venv/bin/python benchmarks/deploy_vs_timm.py [--part 1|2|both] [--threads N]
        [--weights-dir runs/weights10 --resolution 64 --speed-resolution 224]
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


def part2(names, weights_dir, d, resolution=None, speed_resolution=224, held_out=500, recipes=None):
    """Every recipe of int8_recipes.py; agreement at ``resolution`` (the training size of the
    weights in ``weights_dir``), speed at ``speed_resolution``; then, per model, the one recipe
    that keeps >= 99 % agreement and best meets both goals (>= 1.5x at batch 1, >= 2x at batch 16)."""
    from int8_recipes import HEADER, best_paths, pick, study
    res = resolution or 64
    print(f"\nPart 2: reduced precision vs onnxruntime fp32 — agreement on {held_out} held-out images at "
          f"{res} px, speed-up at {speed_resolution} px (higher is better)")
    print(HEADER)
    rows = []
    for name in names:
        if name not in ev.list_models():
            print(f"{name:24s}  (not available)")
            continue
        rows += study(name, Path(weights_dir) if weights_dir else None, res, speed_resolution, held_out,
                      ["reparam"], d, pick(recipes))
    print("\nBest verified path (>= 99 % top-1 agreement; one recipe for both batch sizes; goal: bs1 >= 1.5x, "
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
    ap.add_argument("--resolution", type=int, default=64,
                    help="part 2: where agreement is measured (the training size of --weights-dir)")
    ap.add_argument("--speed-resolution", type=int, default=224, help="part 2: where speed is measured")
    ap.add_argument("--held-out", type=int, default=500, help="part 2: held-out images for the agreement")
    ap.add_argument("--recipes", help="part 2: comma-separated subset of int8_recipes.RECIPES")
    args = ap.parse_args()
    print(f"CPU: {cpu_description()}; onnxruntime {__import__('onnxruntime').__version__}; timm {timm.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if args.part in ("1", "both"):
            part1(args.models.split(",") if args.models else PART1, args.threads, args.rounds, d)
        if args.part in ("2", "both"):
            part2(args.models.split(",") if args.models else PART2, args.weights_dir, d, args.resolution,
                  args.speed_resolution, args.held_out, args.recipes)


if __name__ == "__main__":
    main()
