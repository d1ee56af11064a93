"""Command-line interface: thin — parses arguments, calls the library, prints, sets the exit code.

Errors that come from bad input (EdgeVisionError) are printed as one line on stderr with exit
code 2; no traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .errors import EdgeVisionError
from .options import add_options
from .text import millions, table


def cmd_models(args) -> int:
    from .registry import get_entry, list_models
    names = list_models(args.pattern, family=args.family)
    if not names:
        raise EdgeVisionError(f"no model matches pattern {args.pattern!r}"
                              + (f" in family {args.family!r}" if args.family else ""))
    rows = []
    for n in names:
        e = get_entry(n)
        ref = e.reference
        rows.append([n, e.family, millions(ref.params) if ref else "-",
                     f"{ref.macs_millions:.1f}M" if ref else "-", str(e.input_config.resolution),
                     f"{ref.top1:.1f}" if ref and ref.top1 is not None else "-"])
    print(table(rows, ["model", "family", "params", "MACs", "res", "top-1"], right={2, 3, 4, 5}))
    print(f"\n{len(names)} models. params/MACs: exact counts at the listed resolution (tested); "
          f"top-1: ImageNet-1k as published by the authors.")
    return 0


def cmd_info(args) -> int:
    from .bench import count_macs
    from .factory import count_params, create_model
    import torch
    with torch.device("meta"):
        model = create_model(args.name)
    print(f"{args.name}  (family {model.family})")
    print(f"params: {count_params(model):,}   MACs @ {model.input_config.resolution}: "
          f"{count_macs(model) / 1e6:,.1f}M")
    cfg = model.input_config
    print(f"input: {cfg.input_size}, mean {cfg.mean}, std {cfg.std}, {cfg.interpolation}, "
          f"crop {cfg.crop_pct}, min size {cfg.min_size}")
    print("\nspec:")
    for f in dataclasses.fields(model.spec):
        value = getattr(model.spec, f.name)
        if isinstance(value, tuple) and value and isinstance(value[0], tuple):
            print(f"  {f.name}:")
            for i, stage in enumerate(value):
                print(f"    [{i}] " + "\n        ".join(_short(r) for r in stage))
        else:
            print(f"  {f.name}: {_short(value)}")
    print("\nfeature_info (index, channels, reduction, module):")
    for fi in model.feature_info:
        print(f"  {fi.index}  {fi.channels:5d}  /{fi.reduction:<3d} {fi.module}")
    return 0


def _short(value) -> str:
    """A dataclass shown with only its non-default fields."""
    if dataclasses.is_dataclass(value):
        parts = []
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if f.default is dataclasses.MISSING or v != f.default:
                parts.append(f"{f.name}={v!r}")
        return f"{type(value).__name__}({', '.join(parts)})"
    return repr(value)


def cmd_demo(args) -> int:
    from .pipeline import TOY, DemoPlan, Pipeline, summary
    from .registry import list_families, list_models
    print(f"edgevision: {len(list_models())} models in {len(list_families())} families "
          f"(`edgevision models` lists them). Running the demo pipeline in {args.out}:")
    plan = TOY if args.toy else DemoPlan()
    results = Pipeline(args.out, plan, fresh=args.fresh, workers=args.workers).run()
    print("\n" + summary(results, Path(args.out)))
    return 0


def _load_model(name: str, weights: str | None, num_classes: int | None = None):
    from .factory import create_model
    from .weights import create_with_weights
    if weights:
        return create_with_weights(name, weights, num_classes)
    return create_model(name, **({"num_classes": num_classes} if num_classes is not None else {})).eval()


def cmd_export(args) -> int:
    from .deploy.export import export
    model = _load_model(args.name, args.weights, args.num_classes)
    res = tuple(args.resolution) if args.resolution else None
    report = export(model, args.output, fmt=args.format, resolution=res,
                    dynamic_batch=args.dynamic_batch, opset=args.opset, exporter=args.exporter,
                    atol=args.atol)
    print(report.summary())
    return 0


def cmd_train(args) -> int:
    from .options import from_args
    if args.task != "classification":
        from .dense.train import DenseConfig, train_dense
        res = train_dense(from_args(DenseConfig, args))
        print(f"done: best {'mAP' if args.task == 'detection' else 'mIoU'} {res['best']:.2f}  ({args.out})")
        return 0
    from .train import TrainConfig, train
    res = train(from_args(TrainConfig, args))
    if "best_top1" in res:  # rank 0 (other ranks of a torchrun job return no metrics)
        print(f"done: best val top-1 {res['best_top1']:.2f}%  weights: {args.out}/best.safetensors  "
              f"curves: {args.out}/curves.png")
    return 0


def cmd_eval(args) -> int:
    from .train.loop import run_eval
    res = run_eval(args.model, args.weights, args.data, args.resolution, val_size=args.val_size,
                   out_png=args.confusion)
    print(f"{args.model}: top-1 {res['top1']:.2f}%  top-5 {res['top5']:.2f}%  ({res['n']} images)"
          + (f"  confusion matrix: {args.confusion}" if args.confusion else ""))
    return 0


def cmd_quantize(args) -> int:
    from .bench.speed import add_speed
    from .deploy.quantize import QuantRecipe, quantize
    from .deploy.targets import get_target
    from .options import from_args
    recipe = from_args(QuantRecipe, args)
    if get_target(recipe.runtime).SOURCE == "onnx":
        report = add_speed(quantize(args.model, args.output, recipe), args.model, source=recipe.calib)
    else:  # PT2E runtimes quantize the PyTorch model; the speed reference is an ONNX export of it
        report = _quantize_torch(args, recipe)
    print(report.summary())
    if report.float_nodes:  # to reproduce the same split on another export: --float-nodes ...
        print("kept in float (pass to --float-nodes to reuse): " + " ".join(report.float_nodes))
    return 0


def _quantize_torch(args, recipe):
    import tempfile

    from .bench.speed import add_speed
    from .deploy.export import export
    from .deploy.quantize import quantize
    from .deploy.targets import get_target
    model = _load_model(args.model, args.weights)
    res = tuple(args.resolution) if args.resolution else None
    report = quantize(model, args.output, recipe, resolution=res)
    if not getattr(get_target(recipe.runtime), "RUNS_HERE", True):
        return report  # no latency for a runtime that cannot run here (Core ML off Apple systems)
    with tempfile.TemporaryDirectory(prefix="edgevision-ref-") as d:
        ref = export(model, Path(d) / "fp32.onnx", resolution=res)
        return add_speed(report, ref.path, batches=(1,), source=recipe.calib)


def cmd_bench(args) -> int:
    from .bench.latency import cpu_description
    from .bench.runner import benchmark, format_results, library_versions, save_json
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    results = benchmark(args.names, backends, args.bs, args.resolution, args.threads,
                        use_cache=not args.no_cache, budget_s=args.budget_s)
    print(f"device: {cpu_description()}; {', '.join(f'{k} {v}' for k, v in library_versions().items())}")
    print(format_results(results))
    if args.json:
        save_json(results, args.json)
        print(f"results written to {args.json}")
    return 0


def cmd_profile(args) -> int:
    from .bench.profile import format_profile, run_profile
    stats = run_profile(args.name, args.backend, args.resolution, args.weights)
    print(f"{args.name} ({args.backend}, batch 1, fp32), slowest first:")
    print(format_profile(stats, args.top))
    return 0


def cmd_report(args) -> int:
    from .bench.report import write_report
    from .bench.runner import load_json
    md, png = write_report(load_json(args.results), args.output)
    print(f"report: {md}\nplot:   {png}")
    return 0


def cmd_pick(args) -> int:
    from .bench.pick import pick
    from .registry import get_entry
    res = pick(args.budget_ms, args.backend, args.bs, args.family, args.max_params, args.threads)
    print(table([[n, s] for n, s in res.table], ["candidate (fewest MACs first)", "latency"]))
    c = res.choice
    ref = get_entry(c.model).reference
    print(f"\npick: {c.model} — {c.median_ms:.2f} ms ({c.backend}, {c.precision}, batch {c.batch}, "
          f"{c.resolution[0]}px) within {args.budget_ms:g} ms; published top-1 {ref.top1}%, "
          f"{c.params / 1e6:.2f}M params")
    return 0


def cmd_convert(args) -> int:
    from .weights import load_weights, save_weights
    from .weights.load import SOURCES, detect_source
    from .weights.io import read_state_dict
    from .weights.sources import create_for_source
    from .factory import create_model
    source = args.source
    if source == "auto":
        sd, meta = read_state_dict(args.input)
        source = detect_source(sd, create_model(args.model, num_classes=args.num_classes), meta)
    model = create_for_source(args.model, source, num_classes=args.num_classes).eval()
    report = load_weights(model, args.input, source=source)
    if not args.output.endswith(".safetensors"):
        raise EdgeVisionError(f"output must be a .safetensors file, got {args.output!r}")
    save_weights(model, args.output)
    print(f"converted {report.loaded} tensors ({source} -> edgevision) for {args.model}: {args.output}")
    return 0


def cmd_predict(args) -> int:
    import json
    from .predict import predict
    results = predict(args.images, args.model, args.weights, args.topk)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            print(r["image"])
            for t in r["top"]:
                print(f"  {t['prob'] * 100:6.2f}%  {t['class']}")
    return 0


class _LazyParser(argparse.ArgumentParser):
    """A sub-parser that can add its options on first use (parsing or --help): the train options
    come from config classes whose modules import torchvision, which the other verbs and
    `edgevision --help` need not load."""

    def __init__(self, *args, deferred=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._deferred = deferred

    def _populate(self) -> None:
        if self._deferred is not None:
            add, self._deferred = self._deferred, None
            add(self)

    def parse_known_args(self, args=None, namespace=None):
        self._populate()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._populate()
        return super().format_help()


def _models_parser(sub) -> None:
    m = sub.add_parser("models", help="list models with params, MACs, resolution, published top-1")
    m.add_argument("pattern", nargs="?", help="wildcard or substring, e.g. 'efficientnet_b*' or lite")
    m.add_argument("--family", help="only this family (e.g. mobilenetv3, efficientnet, convnext)")
    m.set_defaults(fn=cmd_models)


def _info_parser(sub) -> None:
    i = sub.add_parser("info", help="show a model's spec, stages and feature_info")
    i.add_argument("name")
    i.set_defaults(fn=cmd_info)


def _export_parser(sub) -> None:
    e = sub.add_parser("export", help="reparameterize, export to ONNX/OpenVINO, verify against PyTorch")
    e.add_argument("name")
    e.add_argument("-o", "--output", required=True, help="output file; its suffix picks the format: .onnx, .xml (openvino), .pte "
                   "(executorch), .tflite (litert), .mlpackage (coreml)")
    e.add_argument("--weights", help="weight file to load first (else random weights)")
    e.add_argument("--num-classes", type=int, help="classifier size, if the weights have another")
    from .deploy.export import FORMATS
    e.add_argument("--format", choices=FORMATS,
                   help="artifact format (default: from the output's suffix: .onnx, .xml, .pte, .tflite, "
                        ".mlpackage)")
    e.add_argument("--resolution", type=int, nargs=2, metavar=("H", "W"))
    e.add_argument("--dynamic-batch", action="store_true")
    e.add_argument("--opset", type=int, default=18)
    e.add_argument("--exporter", choices=["torchscript", "dynamo"], default="torchscript")
    e.add_argument("--atol", type=float, default=1e-4, help="max abs logit difference allowed")
    e.set_defaults(fn=cmd_export)


def _quantize_parser(sub) -> None:
    q = sub.add_parser("quantize", help="INT8 for a runtime, checked against fp32 and timed")
    q.add_argument("model", help="onnxruntime/openvino: the fp32 .onnx written by `edgevision export`; "
                   "executorch/litert/coreml: a model name (with --weights), quantized from PyTorch")
    q.add_argument("-o", "--output", required=True,
                   help=".onnx (onnxruntime), .xml (openvino), .pte (executorch), .tflite (litert), "
                   ".mlpackage (coreml: INT8 weights)")
    q.add_argument("--weights", help="executorch/litert/coreml: weight file of the model (else random weights)")
    q.add_argument("--resolution", type=int, nargs=2, metavar=("H", "W"),
                   help="executorch/litert: input size (default: the model's)")
    from .deploy.recipe import QuantRecipe
    add_options(q, QuantRecipe)
    q.set_defaults(fn=cmd_quantize)


def _convert_parser(sub) -> None:
    c = sub.add_parser("convert", help="convert weights from timm/torchvision/efficientnet_pytorch")
    c.add_argument("input")
    c.add_argument("--model", required=True)
    c.add_argument("--source", default="auto", choices=["auto", "edgevision", "timm", "torchvision",
                                                        "efficientnet_pytorch", "official"])
    c.add_argument("--num-classes", type=int, default=1000)
    c.add_argument("-o", "--output", required=True, help="output .safetensors")
    c.set_defaults(fn=cmd_convert)


def _predict_parser(sub) -> None:
    pd = sub.add_parser("predict", help="classify images with the weights' own preprocessing")
    pd.add_argument("images", nargs="+")
    pd.add_argument("--model", required=True)
    pd.add_argument("--weights", required=True)
    pd.add_argument("--topk", type=int, default=5)
    pd.add_argument("--json", action="store_true")
    pd.set_defaults(fn=cmd_predict)


def _bench_parser(sub) -> None:
    b = sub.add_parser("bench", help="latency/throughput of models on this machine, per backend")
    b.add_argument("names", nargs="+", metavar="NAME")
    b.add_argument("--backends", default="torch", help="comma-separated: torch, torch-cl, compile, ort, "
                   "ort-int8, openvino, openvino-bf16, openvino-int8")
    b.add_argument("-b", "--batch-size", "--bs", dest="bs", type=int, default=1,
                   help="images per call (default: %(default)s)")
    b.add_argument("--resolution", type=int)
    b.add_argument("--threads", type=int, default=0)
    b.add_argument("--json", help="write results here (input of `edgevision report`)")
    b.add_argument("--no-cache", action="store_true", help="measure again even if cached")
    b.add_argument("--budget-s", type=float, default=2.0, help="timing seconds per measurement")
    b.set_defaults(fn=cmd_bench)


def _profile_parser(sub) -> None:
    pr = sub.add_parser("profile", help="per-layer time, MACs, bytes and intensity")
    pr.add_argument("name")
    pr.add_argument("--backend", choices=["torch", "ort"], default="torch")
    pr.add_argument("--resolution", type=int)
    pr.add_argument("--weights")
    pr.add_argument("--top", type=int, default=25)
    pr.set_defaults(fn=cmd_profile)


def _report_parser(sub) -> None:
    rp = sub.add_parser("report", help="markdown table + Pareto plot from `bench --json` results")
    rp.add_argument("results")
    rp.add_argument("-o", "--output", required=True, help="output directory")
    rp.set_defaults(fn=cmd_report)


def _pick_parser(sub) -> None:
    pk = sub.add_parser("pick", help="most accurate model within a latency budget on this machine")
    pk.add_argument("--budget-ms", type=float, required=True)
    pk.add_argument("--backend", default="torch")
    pk.add_argument("-b", "--batch-size", "--bs", dest="bs", type=int, default=1,
                    help="images per call (default: %(default)s)")
    pk.add_argument("--family")
    pk.add_argument("--max-params", type=float, help="in millions")
    pk.add_argument("--threads", type=int, default=0)
    pk.set_defaults(fn=cmd_pick)


def _train_parser(sub) -> None:
    t = sub.add_parser("train", help="train or fine-tune a model (embedded dataset by default)",
                       deferred=_train_options)
    t.set_defaults(fn=cmd_train)


def _train_options(t: argparse.ArgumentParser) -> None:
    """TrainConfig's options; detection and segmentation (DenseConfig) share them and add
    --detector."""
    from .dense.train import DenseConfig
    from .train import TrainConfig
    t.add_argument("--task", choices=["classification", "detection", "segmentation"],
                   default="classification", help="what to train; detection and segmentation put "
                   "a head on the --model backbone (default: %(default)s)")
    add_options(t, DenseConfig, only=("detector",))
    add_options(t, TrainConfig)


def _eval_parser(sub) -> None:
    v = sub.add_parser("eval", help="top-1/top-5 and a confusion matrix of trained weights")
    v.add_argument("--model", required=True)
    v.add_argument("--weights", required=True)
    v.add_argument("--data", default="embedded")
    v.add_argument("--resolution", type=int)
    v.add_argument("--val-size", type=int, default=1200)
    v.add_argument("--confusion", help="write the confusion matrix PNG here")
    v.set_defaults(fn=cmd_eval)


def _demo_parser(sub) -> None:
    d = sub.add_parser("demo", help="the main job: train, distill, export, quantize, benchmark, report")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--fresh", action="store_true", help="redo every step")
    d.add_argument("--toy", action="store_true", help="tiny sizes (seconds; for tests)")
    d.add_argument("--workers", type=int, default=2)
    d.set_defaults(fn=cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgevision", description="Efficient vision models, verified "
                                "from PyTorch to deployment.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_LazyParser)
    for add_verb in (_models_parser, _info_parser, _export_parser, _quantize_parser, _convert_parser,
                     _predict_parser, _bench_parser, _profile_parser, _report_parser, _pick_parser,
                     _train_parser, _eval_parser, _demo_parser):
        add_verb(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except EdgeVisionError as e:
        print(f"edgevision: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` etc.
        sys.stderr.close()
        return 0
    except OSError as e:  # a file or directory that cannot be read or written
        where = f": {e.filename}" if e.filename else ""
        print(f"edgevision: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgevision: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
