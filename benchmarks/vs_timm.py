#!/usr/bin/env python
"""edgevision vs timm, side by side in one run: bs1 eager inference latency and bs32 training
throughput. Prints ratios (ours/timm latency: lower is better; ours/timm images/s: higher is
better) with the CPU description. timm is a benchmark-only dependency.

    .venv/bin/python benchmarks/vs_timm.py [--models a,b] [--threads N] [--skip-train]
        [--skip-infer] [--layouts default,NCHW,NHWC] [--rounds N]

Layouts: "default" is each library as created (edgevision picks NHWC for the conv families,
timm stays NCHW); "NCHW"/"NHWC" force the same layout on both.
Timings alternate between the two libraries in rounds so drift of the machine hits both alike;
each figure is the best round (latency: the lowest per-round median; training: the highest
images/s), because on a shared virtual machine interference only ever adds time.
"""
from __future__ import annotations

import argparse
import time

import timm
import torch

import edgevision as ev
from edgevision.bench import cpu_description, measure_latency

DEFAULT = "mobilenetv3_large_100,efficientnet_b0,mobilenetv4_conv_small,convnext_atto"


def infer_ms(model, x, rounds_s=0.6) -> float:
    with torch.inference_mode():
        return measure_latency(lambda: model(x), warmup=2, min_runs=10, min_time_s=rounds_s,
                               max_time_s=rounds_s * 3).median_ms


def train_ips(model, x, y, steps=3, optimizer="sgd") -> float:
    """Images/s of full training steps (forward, backward, optimizer step)."""
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(x)
        out = out[0] if isinstance(out, (tuple, list)) else out  # distillation heads
        loss_fn(out, y).backward()
        opt.step()
    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * x.shape[0] / (time.perf_counter() - t0)


# (label, ours channels_last, timm channels_last): our default layout vs timm's default (NCHW),
# then both libraries in the same layout.
LAYOUTS = (("default", None, False), ("NCHW", False, False), ("NHWC", True, True))


def build(name, lib, channels_last):
    """channels_last None = edgevision's default for the family."""
    torch.manual_seed(0)
    if lib == "ours":
        return ev.create_model(name, channels_last=channels_last)
    m = timm.create_model(name)
    return m.to(memory_format=torch.channels_last) if channels_last else m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=DEFAULT)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per model")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-infer", action="store_true")
    ap.add_argument("--train-res", type=int, default=160)
    ap.add_argument("--train-bs", type=int, default=32)
    ap.add_argument("--layouts", default="default,NCHW,NHWC", help="subset of default,NCHW,NHWC")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n for n in args.models.split(",") if n]
    layouts = [lay for lay in LAYOUTS if lay[0] in args.layouts.split(",")]
    print(f"CPU: {cpu_description()}; timm {timm.__version__}")
    print("\nInference, batch 1, fp32 eager, eval, torch.inference_mode, default resolution")
    print(f"{'model':26s} {'res':>4s} {'layout':>8s} {'ours ms':>8s} {'timm ms':>8s} {'ours/timm':>9s}")
    for name in ([] if args.skip_infer else names):
        res = ev.create_model(name).input_config.resolution
        for label, ocl, tcl in layouts:
            ours, ref = build(name, "ours", ocl).eval(), build(name, "timm", tcl).eval()
            x = torch.randn(1, 3, res, res)  # NCHW, as a user passes it; our models convert inside
            if tcl:
                x = x.contiguous(memory_format=torch.channels_last)
            o, t = [], []
            for _ in range(args.rounds):
                o.append(infer_ms(ours, x))
                t.append(infer_ms(ref, x))
            mo, mt = min(o), min(t)
            print(f"{name:26s} {res:4d} {label:>8s} {mo:8.2f} {mt:8.2f} {mo / mt:9.3f}",
                  flush=True)
    if args.skip_train:
        return
    print(f"\nTraining, batch {args.train_bs}, {args.train_res}px, SGD step, fp32 (images/s)")
    print(f"{'model':26s} {'layout':>8s} {'ours':>8s} {'timm':>8s} {'ours/timm':>9s}")
    for name in names:
        for label, ocl, tcl in layouts:
            ours, ref = build(name, "ours", ocl), build(name, "timm", tcl)
            x = torch.randn(args.train_bs, 3, args.train_res, args.train_res)
            if tcl:  # timm does not convert inputs itself
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, 1000, (args.train_bs,))
            o, t = [], []
            for _ in range(max(2, args.rounds // 2)):
                o.append(train_ips(ours, x, y))
                t.append(train_ips(ref, x, y))
            mo, mt = max(o), max(t)
            print(f"{name:26s} {label:>8s} {mo:8.1f} {mt:8.1f} {mo / mt:9.3f}", flush=True)


if __name__ == "__main__":
    main()
