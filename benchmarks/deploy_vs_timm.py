#!/usr/bin/env python
"""The deploy path, side by side in one run.

Part 1 — ONNX fp32 in onnxruntime, ours / timm's: each library's model reparameterized by that
library (edgevision.reparameterize / timm's reparameterize_model), exported with
torch.onnx.export (same exporter, opset and onnxruntime settings), batch 1, default resolution.
Lower is better (goal <= 1.0).

Part 2 — the fastest verified reduced-precision path (ORT INT8, OpenVINO INT8, OpenVINO bf16 where
the CPU has it) vs onnxruntime fp32 at batch 1 and 16, with top-1 agreement on held-out embedded
images. Agreement is only meaningful with trained weights: pass --weights-dir with
<model>.safetensors files (e.g. from `edgevision train`); without them the column says "random".

    .venv/bin/python benchmarks/deploy_vs_timm.py [--part 1|2|both] [--threads N]
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
from edgevision.bench import cpu_description, measure_latency
from edgevision.deploy import reparameterize
from edgevision.deploy.export import export
from edgevision.deploy.quantize import quantize
from edgevision.deploy.runtimes import open_session

PART1 = ["mobilenetv3_large_100", "efficientnet_b0", "repvit_m1_1", "efficientvit_m5", "efficientvit_b1",
         "convnext_atto", "mobilevit_s"]
PART2 = ["mobilenetv3_large_100", "tf_efficientnet_lite0", "mobilenetv4_conv_small", "repvit_m1_1",
         "efficientnet_b0", "convnext_atto"]


def ms(sess, x, budget=1.0):
    return measure_latency(lambda: sess(x), warmup=3, min_runs=10, min_time_s=budget / 2,
                           max_time_s=budget * 2).median_ms


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


def part2(names, threads, weights_dir, d, resolution=None):
    print("\nPart 2: reduced precision vs onnxruntime fp32 (speedup: higher is better)")
    print(f"{'model':24s} {'path':>16s} {'ran':>30s} {'bs1':>6s} {'bs16':>6s} {'agree%':>7s} {'weights':>8s}")
    for name in names:
        if name not in ev.list_models():
            print(f"{name:24s}  (not available)")
            continue
        w = Path(weights_dir) / f"{name}.safetensors" if weights_dir else None
        model = ev.create_with_weights(name, w) if w and w.exists() else ev.create_model(name).eval()
        trained = "trained" if w and w.exists() else "random"
        res = resolution or model.input_config.resolution
        fp32 = d / f"{name}_p2.onnx"
        export(model, fp32, resolution=(res, res), dynamic_batch=True)
        for rt, suffix in (("onnxruntime", ".onnx"), ("openvino", ".xml")):
            try:
                r = quantize(fp32, d / f"{name}_int8{suffix}", runtime=rt, images=64, held_out=200,
                             batches=(1, 16), threads=threads)
            except Exception as e:  # report and continue with the next path
                print(f"{name:24s} {rt + ' int8':>16s} failed: {e}")
                continue
            print(f"{name:24s} {rt + ' int8':>16s} {r.precision:>30s} {r.speedup.get(1, float('nan')):6.2f} "
                  f"{r.speedup.get(16, float('nan')):6.2f} {r.top1_agreement:7.1f} {trained:>8s}", flush=True)
        ov_row(name, "openvino bf16", fp32, "bf16", fp32, model, res, threads, trained)
        if (d / f"{name}_int8.xml").exists():
            ov_row(name, "ov int8+bf16", d / f"{name}_int8.xml", "int8-bf16", fp32, model, res, threads,
                   trained)


def ov_row(name, label, path, precision, fp32_path, model, res, threads, trained, held_out=200):
    """OpenVINO at ``precision`` (bf16 on the fp32 graph: no calibration; int8-bf16: the NNCF
    graph with its unquantized ops in bf16), where the CPU runs bf16 natively; the precision
    OpenVINO reports back is printed."""
    from edgevision.deploy.quantize import calibration_images
    try:
        bf = open_session(path, "openvino", threads, precision=precision)
    except Exception as e:
        print(f"{name:24s} {label:>16s} not available: {str(e)[:80]}")
        return
    fp = open_session(fp32_path, "onnxruntime", threads)
    x = calibration_images("embedded", model.input_config, (res, res), held_out, split="test")
    ref = np.concatenate([fp(x[i:i + 1]) for i in range(len(x))])
    got = np.concatenate([bf(x[i:i + 1]) for i in range(len(x))])
    agree = float((ref.argmax(1) == got.argmax(1)).mean() * 100)
    sp = {b: ms(fp, np.repeat(x[:1], b, 0)) / ms(bf, np.repeat(x[:1], b, 0)) for b in (1, 16)}
    print(f"{name:24s} {label:>16s} {bf.precision:>30s} {sp[1]:6.2f} {sp[16]:6.2f} {agree:7.1f} "
          f"{trained:>8s}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="both", choices=["1", "2", "both"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--weights-dir", help="directory of <model>.safetensors trained weights (part 2)")
    ap.add_argument("--models", help="comma-separated override of the model list")
    ap.add_argument("--resolution", type=int, help="part 2: export size (default: the model's; use the "
                                                    "training size with --weights-dir)")
    args = ap.parse_args()
    print(f"CPU: {cpu_description()}; onnxruntime {__import__('onnxruntime').__version__}; timm {timm.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if args.part in ("1", "both"):
            part1(args.models.split(",") if args.models else PART1, args.threads, args.rounds, d)
        if args.part in ("2", "both"):
            part2(args.models.split(",") if args.models else PART2, args.threads, args.weights_dir, d,
                  args.resolution)


if __name__ == "__main__":
    main()
