#!/usr/bin/env python
"""Dense prediction, measured: two backbones trained briefly on the embedded detection /
segmentation data (COCO-style mAP, mIoU), and the latency of whole detectors exported to ONNX
(onnxruntime, batch 1).

    .venv/bin/python benchmarks/dense_brief.py [--backbones a,b] [--epochs 4] [--train-size 640]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from edgevision.bench import cpu_description
from edgevision.dense import build_detector
from edgevision.dense.deploy import export_detector, time_onnx
from edgevision.dense.train import DenseConfig, train_dense


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbones", default="mobilenetv3_large_100,mobilenetv4_conv_small")
    ap.add_argument("--detector", default="ssdlite")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-size", type=int, default=400)
    ap.add_argument("--res", type=int, default=128)
    args = ap.parse_args()
    print(f"CPU: {cpu_description()}")
    with tempfile.TemporaryDirectory() as d:
        print(f"\nBrief training, {args.epochs} epochs x {args.train_size} images, {args.res}px, 6 classes")
        print(f"{'backbone':24s} {'task':>22s} {'metric':>8s} {'value':>7s} {'seconds':>8s}")
        for bb in args.backbones.split(","):
            for task in ("detection", "segmentation"):
                t0 = time.perf_counter()
                r = train_dense(DenseConfig(task=task, model=bb, out=f"{d}/{bb}-{task}", detector=args.detector,
                                            epochs=args.epochs, train_size=args.train_size, val_size=160,
                                            resolution=args.res, batch_size=8, lr=1e-3), log=lambda m: None)
                label = f"{task} ({args.detector})" if task == "detection" else f"{task} (LR-ASPP)"
                metric = "mAP" if task == "detection" else "mIoU"
                print(f"{bb:24s} {label:>22s} {metric:>8s} {r['best']:7.2f} {time.perf_counter() - t0:8.0f}",
                      flush=True)
        print(f"\nWhole detector exported to ONNX (opset 17), onnxruntime fp32, batch 1, {args.res}px")
        bb = args.backbones.split(",")[0]
        for kind in ("ssdlite", "retinanet", "fasterrcnn"):
            model = build_detector(kind, bb, 6, args.res)
            path = Path(d) / f"{kind}.onnx"
            rep = export_detector(model, path, args.res)
            print(f"{bb:24s} {kind:>12s} {time_onnx(path, args.res):8.2f} ms  (parity: boxes "
                  f"{rep['box_diff_px']:.1e} px, scores {rep['score_diff']:.1e})", flush=True)


if __name__ == "__main__":
    main()
