#!/usr/bin/env python
"""Which reduced-precision recipe keeps trained models' predictions, and how fast it runs.

For every model with trained weights in --weights-dir (``<model>.safetensors``, e.g. from
benchmarks/train_weights.py), each recipe is applied to the model exported at the training
resolution, and its top-1 agreement with onnxruntime fp32 is measured on held-out embedded images
(the "test" split: never calibration or validation images). The same recipe's speed is then
measured at --speed-resolution (the models' deployment size, 224) against onnxruntime fp32 at
batch 1 and 16 — weights trained at 64 px are not accurate at 224 px, so agreement is measured
where the model is accurate and speed where the model is deployed:

- each INT8 recipe is re-applied with the same settings to a --speed-resolution export; for
  accuracy control, the layers its search reverted to float are kept in float there too
  (``float_nodes``; ONNX node names do not depend on the export size);
- bf16 needs no calibration: the fp32 graph at --speed-resolution with a bf16 hint.
(Reshaping the 64 px OpenVINO IR to 224 px instead is NOT equivalent: TF-"same" padding and other
size-dependent constants are baked in at export, and tf_efficientnet_lite0's reshaped INT8 IR
computed something else, 20x "faster".)

Each recipe is run on the reparameterized export (edgevision's default) and, with --graphs
both, also on the export without reparameterization (only RepViT's graph differs in structure:
the runtimes fold BatchNorm themselves).

    .venv/bin/python benchmarks/int8_recipes.py --weights-dir runs/weights10 [--models a,b]
        [--resolution 64] [--speed-resolution 224] [--held-out 500] [--graphs reparam|both]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np

import edgevision as ev
from edgevision.bench import cpu_description
from edgevision.bench.speed import compare_speed
from edgevision.deploy.calibration import calibration_images
from edgevision.deploy.export import export
from edgevision.deploy.quantize import QuantRecipe, quantize
from edgevision.deploy.targets import get_target, open_session

OV = QuantRecipe(runtime="openvino")
# name -> the INT8 recipe (its held-out count is set per run); None: OpenVINO bf16 on the fp32
# graph; a recipe name: that recipe's OpenVINO INT8 graph run with its unquantized ops in bf16
RECIPES = {
    "ort minmax": QuantRecipe(),
    "ort percentile": QuantRecipe(method="percentile"),
    "ov nncf": OV,  # activation ranges: global min/max (edgevision's default)
    "ov nncf own ranges": dataclasses.replace(OV, method="nncf"),  # NNCF's built-in range estimators
    "ov nncf +se": dataclasses.replace(OV, quantize_se=True),  # squeeze-excite FCs quantized too
    "ov nncf own ranges +se": dataclasses.replace(OV, method="nncf", quantize_se=True),
    "ov nncf keep-first-last": dataclasses.replace(OV, keep_first_last=True),
    "ov nncf transformer": dataclasses.replace(OV, transformer=True),  # NNCF's transformer model type
    "ov nncf mixed": dataclasses.replace(OV, preset="mixed"),
    "ov nncf max-drop 0.5%": dataclasses.replace(OV, max_drop=0.005, val_images=300),
    "ov nncf max-drop 0.5% +bf16": "ov nncf max-drop 0.5%",  # same IR, other ops bf16
    "ov bf16": None,
}


HEADER = f"{'model':24s} {'graph':8s} {'recipe':28s} {'agree':>8s} {'bs1':>6s} {'bs16':>6s}"


def best_paths(rows: list[dict], min_agreement: float = 99.0, goal: tuple[float, float] = (1.5, 2.0)) -> dict:
    """model -> (bs1 speed-up, bs16 speed-up, recipe): the one verified path (agreement >=
    min_agreement) that comes closest to, or furthest past, both speed goals at once — the row
    with the largest min(bs1 / goal[0], bs16 / goal[1]). One recipe per model: a deployment runs
    one artifact, so the batch-1 and batch-16 figures must come from the same path."""
    out = {}
    for r in rows:
        if r["agreement"] < min_agreement:
            continue
        margin = min(r["speedup_bs1"] / goal[0], r["speedup_bs16"] / goal[1])
        if r["model"] not in out or margin > out[r["model"]][0]:
            out[r["model"]] = (margin, r["speedup_bs1"], r["speedup_bs16"], r["recipe"])
    return {m: v[1:] for m, v in out.items()}


def agreement(ref: np.ndarray, sess, x: np.ndarray) -> tuple[float, float]:
    got = np.concatenate([sess(x[i:i + 1]) for i in range(len(x))])
    return float((ref.argmax(1) == got.argmax(1)).mean() * 100), float(np.abs(ref - got).mean())


def pick(names: str | None) -> dict:
    if not names:
        return RECIPES
    unknown = [n for n in names.split(",") if n not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {unknown}; choose from {', '.join(RECIPES)}")
    return {n: RECIPES[n] for n in names.split(",")}


def fake_quantizers(xml: Path) -> int:
    import openvino as ov
    return sum(op.get_type_name() == "FakeQuantize" for op in ov.Core().read_model(str(xml)).get_ops())


def speed(fp32_path: Path, q_path: Path, runtime: str, precision: str) -> dict:
    """batch -> fp32 / reduced-precision time at batch 1 and 16 (bench.speed's rule, each side the
    best of 3 medians taken in turn)."""
    return compare_speed(fp32_path, q_path, runtime, precision, batches=(1, 16), budget_s=1.5,
                         min_time_s=0.4, rounds=3)[0]


def study(name: str, wdir: Path | None, res: int, speed_res: int, held_out: int, graphs: list[str],
          d: Path, recipes: dict = RECIPES) -> list[dict]:
    """One row per (graph, recipe); random weights when ``wdir`` has no weights for ``name``."""
    w = wdir / f"{name}.safetensors" if wdir else None
    model = ev.create_with_weights(name, w) if w and w.exists() else ev.create_model(name).eval()
    trained = bool(w and w.exists())
    cfg = model.input_config
    x = calibration_images("embedded", cfg, (res, res), held_out, split="test")
    rows = []
    for graph in graphs:
        fp32 = d / f"{name}_{graph}_{res}.onnx"
        fp32_fast = d / f"{name}_{graph}_{speed_res}.onnx"
        export(model, fp32, resolution=(res, res), dynamic_batch=True, reparam=graph == "reparam")
        export(model, fp32_fast, resolution=(speed_res, speed_res), dynamic_batch=True,
               reparam=graph == "reparam")
        ref_sess = open_session(fp32, "onnxruntime")
        ref = np.concatenate([ref_sess(x[i:i + 1]) for i in range(len(x))])
        made = {}
        for recipe, rc in recipes.items():
            note = ""
            if not isinstance(rc, QuantRecipe):  # no new graph: bf16 on the fp32 one, or an INT8 IR made above
                if isinstance(rc, str) and rc not in made:
                    continue
                slow, fast, prec = (*made[rc], "int8-bf16") if isinstance(rc, str) else (fp32, fp32_fast, "bf16")
                try:
                    agree, drift = agreement(ref, open_session(slow, "openvino", precision=prec), x)
                    sp = speed(fp32_fast, fast, "openvino", prec)
                except ev.EdgeVisionError as e:
                    print(f"{name:24s} {graph:8s} {recipe:28s} not available: {e}")
                    continue
            else:
                runtime = rc.runtime
                q = d / f"{name}_{graph}_{recipe.replace(' ', '_').replace('%', '')}{get_target(runtime).SUFFIX}"
                r = quantize(fp32, q, dataclasses.replace(rc, held_out=held_out))
                agree, drift, note = r.top1_agreement, r.logit_drift, r.accuracy_control
                # the same recipe on the speed-resolution export; accuracy control's search is not
                # repeated there (the weights are not accurate at that size): the layers it kept
                # in float are kept in float again
                fast = d / f"fast_{q.name}"
                quantize(fp32_fast, fast, dataclasses.replace(rc, held_out=1, max_drop=None,
                                                              float_nodes=r.float_nodes))
                if runtime == "openvino" and fake_quantizers(q) != fake_quantizers(fast):
                    # e.g. accuracy control reverted every layer and named none of them
                    print(f"{name:24s} {graph:8s} {recipe:28s} skipped: the {speed_res} px graph has "
                          f"{fake_quantizers(fast)} quantizers, the {res} px one {fake_quantizers(q)} ({note})")
                    continue
                made[recipe] = (q, fast)
                sp = speed(fp32_fast, fast, runtime, "int8")
            rows.append({"model": name, "graph": graph, "recipe": recipe, "trained": trained, "agreement": agree,
                         "logit_drift": drift, "speedup_bs1": sp[1], "speedup_bs16": sp[16], "note": note})
            print(f"{name:24s} {graph:8s} {recipe:28s} {agree:6.1f} % {sp[1]:6.2f} {sp[16]:6.2f} "
                  f"{'' if trained else '(random weights) '}{note}", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights-dir", required=True)
    ap.add_argument("--models", help="comma-separated; default: every <model>.safetensors in --weights-dir")
    ap.add_argument("--resolution", type=int, default=64, help="training resolution: agreement is measured here")
    ap.add_argument("--speed-resolution", type=int, default=224)
    ap.add_argument("--held-out", type=int, default=500)
    ap.add_argument("--graphs", choices=["reparam", "both"], default="reparam")
    ap.add_argument("--recipes", help="comma-separated subset of: "  # argparse %-formats help
                    + ", ".join(RECIPES).replace("%", "%%"))
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    wdir = Path(args.weights_dir)
    names = args.models.split(",") if args.models else sorted(p.stem for p in wdir.glob("*.safetensors"))
    graphs = ["reparam", "plain"] if args.graphs == "both" else ["reparam"]
    print(f"CPU: {cpu_description()}; agreement on {args.held_out} held-out images at {args.resolution} px, "
          f"speed-up over onnxruntime fp32 at {args.speed_resolution} px (best of 3 rounds)")
    print(HEADER)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows += study(name, wdir, args.resolution, args.speed_resolution, args.held_out, graphs, Path(tmp),
                          pick(args.recipes))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
