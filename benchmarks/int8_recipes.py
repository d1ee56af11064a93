#!/usr/bin/env python
"""Which reduced-precision path keeps trained models' predictions, and how fast it runs: one
`edgevision optimize` run per model, its candidates printed as one table.

For every model with trained weights in --weights-dir (``<model>.safetensors``, e.g. from
benchmarks/train_weights.py), optimize tries every runtime x precision x the family's INT8
recipes (src/edgevision/optimize/candidates.py), verifies each against onnxruntime fp32 on
held-out embedded images (the "test" split: never calibration images), times each side by side
with onnxruntime fp32 at batch 1 and 16 and picks the fastest verified one. Agreement and speed
are measured on the same artifact at --resolution: what is timed is what was verified. A model
without weights in --weights-dir runs speed only (random weights; agreement not required).
Each model's OUTDIR (artifact, report.md, results.json, plot.png) is kept under --out; the
per-machine cache makes a rerun resume.

    .venv/bin/python benchmarks/int8_recipes.py --weights-dir runs/weights10 [--models a,b]
        [--resolution 64] [--held-out 500] [--runtimes onnxruntime,openvino] [--max-drop 0.01]
        [--agreement all|confident] [--time-limit MIN] [--out runs/int8_recipes] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from edgevision.bench import cpu_description
from edgevision.optimize import optimize

HEADER = f"{'model':24s} {'candidate':28s} {'verified':8s} {'agree':>8s} {'bs1':>6s} {'bs16':>6s}  why not picked"
BATCHES = (1, 16)


def _row(model: str, c: dict, trained: bool) -> dict:
    speed = {b: c["speedup"].get(str(b), float("nan")) for b in BATCHES}
    agree = c["top1_agreement"] if c["top1_agreement"] is not None else float("nan")
    return {"model": model, "recipe": c["candidate"]["name"], "trained": trained, "status": c["status"],
            "verified": c["verified"], "picked": not c["why_not_picked"], "agreement": agree,
            "speedup_bs1": speed[1], "speedup_bs16": speed[16], "why": c["why_not_picked"] or c["why"]}


def format_row(r: dict) -> str:
    ok = "picked" if r["picked"] else ("yes" if r["verified"] else r["status"] if r["status"] != "done" else "no")
    return (f"{r['model']:24s} {r['recipe']:28s} {ok:8s} {r['agreement']:6.1f} % {r['speedup_bs1']:6.2f} "
            f"{r['speedup_bs16']:6.2f}  {r['why']}{'' if r['trained'] else ' (random weights)'}")


def study(name: str, wdir: Path | None, out: Path, **options) -> list[dict]:
    """One row per optimize candidate of ``name``; ``options`` go to optimize (resolution,
    held_out, runtimes, max_drop, agreement, time_limit_min)."""
    w = wdir / f"{name}.safetensors" if wdir else None
    trained = bool(w and w.exists())
    t0 = time.perf_counter()
    res = optimize(name, weights=w if trained else None, calib="embedded", batches=BATCHES, out=out / name,
                   **options)
    payload = json.loads(Path(res.paths["json"]).read_text())
    rows = [_row(name, c, trained) for c in payload["candidates"]]
    for r in rows:
        print(format_row(r), flush=True)
    print(f"{name}: {time.perf_counter() - t0:.0f} s (cached candidates are not rebuilt)", flush=True)
    return rows


def best_paths(rows: list[dict]) -> dict:
    """model -> (bs1 speed-up, bs16 speed-up, candidate) of optimize's pick: the verified
    candidate with the largest geometric-mean speed-up over batch 1 and 16 (one artifact serves
    both batch sizes)."""
    return {r["model"]: (r["speedup_bs1"], r["speedup_bs16"], r["recipe"]) for r in rows if r["picked"]}


def add_options(ap: argparse.ArgumentParser) -> None:
    """The optimize options this script and deploy_vs_timm.py --part 2 share."""
    ap.add_argument("--resolution", type=int, default=64,
                    help="agreement and speed are measured here (the training size of --weights-dir)")
    ap.add_argument("--held-out", type=int, default=500)
    ap.add_argument("--runtimes", help="comma-separated; default every installed one")
    ap.add_argument("--max-drop", type=float, default=0.01)
    ap.add_argument("--agreement", choices=["all", "confident"], default="all")
    ap.add_argument("--time-limit", type=float, help="minutes per model")
    ap.add_argument("--out", default="runs/int8_recipes", help="one optimize OUTDIR per model under here")


def options(args) -> dict:
    return dict(resolution=args.resolution, held_out=args.held_out, runtimes=args.runtimes,
                max_drop=args.max_drop, agreement=args.agreement, time_limit_min=args.time_limit)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights-dir", required=True)
    ap.add_argument("--models", help="comma-separated; default: every <model>.safetensors in --weights-dir")
    add_options(ap)
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    wdir = Path(args.weights_dir)
    names = args.models.split(",") if args.models else sorted(p.stem for p in wdir.glob("*.safetensors"))
    print(f"CPU: {cpu_description()}; edgevision optimize per model: agreement on {args.held_out} held-out "
          f"images and speed-up over onnxruntime fp32 at {args.resolution} px (best of 3 rounds)")
    print(HEADER)
    rows, t0 = [], time.perf_counter()
    for name in names:
        rows += study(name, wdir, Path(args.out), **options(args))
    print(f"{len(names)} models in {(time.perf_counter() - t0) / 60:.1f} min")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
