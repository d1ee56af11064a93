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


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def _table(rows: list[list[str]], header: list[str], right: set[int] = frozenset()) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    def line(r):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


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
        rows.append([n, e.family, _fmt_params(ref.params) if ref else "-",
                     f"{ref.macs_millions:.1f}M" if ref else "-", str(e.input_config.resolution),
                     f"{ref.top1:.1f}" if ref and ref.top1 is not None else "-"])
    print(_table(rows, ["model", "family", "params", "MACs", "res", "top-1"], right={2, 3, 4, 5}))
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
    if args.task != "classification":
        from .dense.train import DenseConfig, train_dense
        cfg = DenseConfig(task=args.task, model=args.model, out=args.out, detector=args.detector,
                          epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          resolution=args.resolution or 128, train_size=args.train_size,
                          val_size=args.val_size, workers=args.workers, seed=args.seed,
                          backbone_weights=args.weights)
        res = train_dense(cfg)
        print(f"done: best {'mAP' if args.task == 'detection' else 'mIoU'} {res['best']:.2f}  ({args.out})")
        return 0
    from .train import ProgressiveConfig, TrainConfig, train
    prog = None
    if args.progressive:
        prog = ProgressiveConfig(stages=args.prog_stages, size_start=args.prog_size[0],
                                 size_end=args.prog_size[1], dropout_start=args.prog_dropout[0],
                                 dropout_end=args.prog_dropout[1], randaug_start=args.prog_randaug[0],
                                 randaug_end=args.prog_randaug[1], mixup_start=args.prog_mixup[0],
                                 mixup_end=args.prog_mixup[1])
    cfg = TrainConfig(
        model=args.model, out=args.out, data=args.data, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, optimizer=args.opt, weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing, resolution=args.resolution, train_size=args.train_size,
        val_size=args.val_size, drop_path_rate=args.drop_path, drop_rate=args.drop, ema_decay=args.ema,
        mixup=args.mixup, cutmix=args.cutmix, randaug=args.randaug, crop_scale=args.crop_scale,
        grad_clip=args.grad_clip,
        channels_last=not args.no_channels_last, bf16=args.bf16, compile=args.compile,
        zero_init=not args.no_zero_init,
        workers=args.workers, seed=args.seed, weights=args.weights, resume=args.resume,
        stop_after_epochs=args.stop_after_epochs, teacher=args.teacher,
        teacher_weights=args.teacher_weights, distill=args.distill, alpha=args.alpha,
        temperature=args.temperature, progressive=prog, warmup_epochs=args.warmup_epochs)
    res = train(cfg)
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
    from .deploy.quantize import quantize
    report = quantize(args.model, args.output, calib=args.calib, images=args.images,
                      runtime=args.runtime, per_channel=not args.per_tensor,
                      keep_first_last=args.keep_first_last, exclude_ops=args.exclude_ops,
                      method=args.method, held_out=args.held_out, transformer=args.transformer,
                      max_drop=args.max_drop, val_images=args.val_images, preset=args.preset,
                      float_nodes=args.float_nodes, quantize_se=args.quantize_se)
    print(report.summary())
    if report.float_nodes:  # to reproduce the same split on another export: --float-nodes ...
        print("kept in float (pass to --float-nodes to reuse): " + " ".join(report.float_nodes))
    return 0


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
    print(_table([[n, s] for n, s in res.table], ["candidate (fewest MACs first)", "latency"]))
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgevision", description="Efficient vision models, verified "
                                "from PyTorch to deployment.")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("models", help="list models with params, MACs, resolution, published top-1")
    m.add_argument("pattern", nargs="?", help="wildcard or substring, e.g. 'efficientnet_b*' or lite")
    m.add_argument("--family", help="only this family (e.g. mobilenetv3, efficientnet, convnext)")
    m.set_defaults(fn=cmd_models)
    i = sub.add_parser("info", help="show a model's spec, stages and feature_info")
    i.add_argument("name")
    i.set_defaults(fn=cmd_info)
    e = sub.add_parser("export", help="reparameterize, export to ONNX/OpenVINO, verify against PyTorch")
    e.add_argument("name")
    e.add_argument("-o", "--output", required=True, help="output file (.onnx, or .xml for openvino)")
    e.add_argument("--weights", help="weight file to load first (else random weights)")
    e.add_argument("--num-classes", type=int, help="classifier size, if the weights have another")
    e.add_argument("--format", choices=["onnx", "openvino"], default="onnx")
    e.add_argument("--resolution", type=int, nargs=2, metavar=("H", "W"))
    e.add_argument("--dynamic-batch", action="store_true")
    e.add_argument("--opset", type=int, default=18)
    e.add_argument("--exporter", choices=["torchscript", "dynamo"], default="torchscript")
    e.add_argument("--atol", type=float, default=1e-4, help="max abs logit difference allowed")
    e.set_defaults(fn=cmd_export)
    q = sub.add_parser("quantize", help="static INT8 quantization of an exported ONNX model, measured")
    q.add_argument("model", help="fp32 .onnx written by `edgevision export`")
    q.add_argument("-o", "--output", required=True, help=".onnx (onnxruntime) or .xml (openvino)")
    q.add_argument("--calib", default="embedded", help="'embedded' or a folder of images")
    q.add_argument("--images", type=int, default=64, help="calibration images")
    q.add_argument("--held-out", type=int, default=200, help="images for the agreement check")
    q.add_argument("--runtime", choices=["onnxruntime", "openvino"], default="onnxruntime")
    q.add_argument("--per-tensor", action="store_true", help="per-tensor weights (default per-channel)")
    q.add_argument("--keep-first-last", action="store_true", help="stem conv and classifier in fp32")
    q.add_argument("--exclude-ops", nargs="*", default=[], help="op types kept in fp32, e.g. Softmax")
    q.add_argument("--method", choices=["minmax", "nncf", "percentile", "entropy", "histogram"],
                   default="minmax", help="activation ranges: minmax (global, both runtimes), percentile "
                   "(both), entropy (onnxruntime), histogram or nncf (openvino; NNCF's built-in ranges)")
    q.add_argument("--transformer", action="store_true", help="NNCF transformer preset (attention models)")
    q.add_argument("--preset", choices=["performance", "mixed"], default="performance",
                   help="openvino: NNCF preset (mixed: asymmetric activations)")
    q.add_argument("--max-drop", type=float, default=None,
                   help="openvino: accuracy-controlled INT8 - revert the most sensitive layers to float "
                        "until top-1 agreement with fp32 on validation images drops by at most this "
                        "fraction (e.g. 0.01)")
    q.add_argument("--val-images", type=int, default=300, help="validation images for --max-drop")
    q.add_argument("--float-nodes", nargs="*", default=[],
                   help="graph node names kept in float (e.g. the list --max-drop printed)")
    q.add_argument("--quantize-se", action="store_true",
                   help="openvino: quantize the squeeze-excite FCs as well (NNCF keeps them in float; "
                        "faster MobileNetV3 at batch 1, slower EfficientNet - docs/deploy.md)")
    q.set_defaults(fn=cmd_quantize)
    c = sub.add_parser("convert", help="convert weights from timm/torchvision/efficientnet_pytorch")
    c.add_argument("input")
    c.add_argument("--model", required=True)
    c.add_argument("--source", default="auto", choices=["auto", "edgevision", "timm", "torchvision",
                                                        "efficientnet_pytorch", "official"])
    c.add_argument("--num-classes", type=int, default=1000)
    c.add_argument("-o", "--output", required=True, help="output .safetensors")
    c.set_defaults(fn=cmd_convert)
    pd = sub.add_parser("predict", help="classify images with the weights' own preprocessing")
    pd.add_argument("images", nargs="+")
    pd.add_argument("--model", required=True)
    pd.add_argument("--weights", required=True)
    pd.add_argument("--topk", type=int, default=5)
    pd.add_argument("--json", action="store_true")
    pd.set_defaults(fn=cmd_predict)
    b = sub.add_parser("bench", help="latency/throughput of models on this machine, per backend")
    b.add_argument("names", nargs="+", metavar="NAME")
    b.add_argument("--backends", default="torch", help="comma-separated: torch, torch-cl, compile, ort, "
                   "ort-int8, openvino, openvino-bf16, openvino-int8")
    b.add_argument("--bs", type=int, default=1)
    b.add_argument("--resolution", type=int)
    b.add_argument("--threads", type=int, default=0)
    b.add_argument("--json", help="write results here (input of `edgevision report`)")
    b.add_argument("--no-cache", action="store_true", help="measure again even if cached")
    b.add_argument("--budget-s", type=float, default=2.0, help="timing seconds per measurement")
    b.set_defaults(fn=cmd_bench)
    pr = sub.add_parser("profile", help="per-layer time, MACs, bytes and intensity")
    pr.add_argument("name")
    pr.add_argument("--backend", choices=["torch", "ort"], default="torch")
    pr.add_argument("--resolution", type=int)
    pr.add_argument("--weights")
    pr.add_argument("--top", type=int, default=25)
    pr.set_defaults(fn=cmd_profile)
    rp = sub.add_parser("report", help="markdown table + Pareto plot from `bench --json` results")
    rp.add_argument("results")
    rp.add_argument("-o", "--output", required=True, help="output directory")
    rp.set_defaults(fn=cmd_report)
    pk = sub.add_parser("pick", help="most accurate model within a latency budget on this machine")
    pk.add_argument("--budget-ms", type=float, required=True)
    pk.add_argument("--backend", default="torch")
    pk.add_argument("--bs", type=int, default=1)
    pk.add_argument("--family")
    pk.add_argument("--max-params", type=float, help="in millions")
    pk.add_argument("--threads", type=int, default=0)
    pk.set_defaults(fn=cmd_pick)
    t = sub.add_parser("train", help="train or fine-tune a model (embedded dataset by default)")
    t.add_argument("--model", required=True)
    t.add_argument("--out", required=True, help="run directory")
    t.add_argument("--task", choices=["classification", "detection", "segmentation"], default="classification")
    t.add_argument("--detector", choices=["retinanet", "fasterrcnn", "ssdlite"], default="retinanet",
                   help="detection head (with --task detection)")
    t.add_argument("--data", default="embedded", help="'embedded' or a folder with train/ and val/")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--opt", choices=["adamw", "sgd"], default="adamw")
    t.add_argument("--weight-decay", type=float, default=0.05)
    t.add_argument("--warmup-epochs", type=float, default=1.0)
    t.add_argument("--label-smoothing", type=float, default=0.1)
    t.add_argument("--resolution", type=int)
    t.add_argument("--train-size", type=int, default=6000, help="embedded: images per epoch")
    t.add_argument("--val-size", type=int, default=1200, help="embedded: validation images")
    t.add_argument("--drop-path", type=float, default=0.0)
    t.add_argument("--drop", type=float, help="classifier dropout")
    t.add_argument("--ema", type=float, default=0.0, help="EMA decay, e.g. 0.999 (0: off)")
    t.add_argument("--mixup", type=float, default=0.0)
    t.add_argument("--cutmix", type=float, default=0.0)
    t.add_argument("--randaug", type=int, default=0, help="RandAugment magnitude (0: off)")
    t.add_argument("--crop-scale", type=float, default=0.8,
                   help="smallest area kept by random-resized crops (0.8 keeps embedded objects whole; "
                        "ImageNet-like data: 0.08-0.35)")
    t.add_argument("--grad-clip", type=float, default=0.0)
    t.add_argument("--no-channels-last", action="store_true")
    t.add_argument("--no-zero-init", action="store_true",
                   help="keep the default init of the classifier and residual branches (the "
                        "ConvNeXt recipe in docs/training.md)")
    t.add_argument("--bf16", action="store_true", help="bf16 autocast")
    t.add_argument("--compile", action="store_true", help="torch.compile the model")
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--weights", help="initial weights for fine-tuning")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    t.add_argument("--stop-after-epochs", type=int, help=argparse.SUPPRESS)
    t.add_argument("--teacher", help="teacher model for knowledge distillation")
    t.add_argument("--teacher-weights")
    t.add_argument("--distill", choices=["soft", "hard"], default="soft")
    t.add_argument("--alpha", type=float, default=0.5, help="weight of the distillation loss")
    t.add_argument("--temperature", type=float, default=4.0)
    t.add_argument("--progressive", action="store_true", help="EfficientNetV2 progressive learning")
    t.add_argument("--prog-stages", type=int, default=4)
    t.add_argument("--prog-size", type=int, nargs=2, default=[64, 96], metavar=("START", "END"))
    t.add_argument("--prog-dropout", type=float, nargs=2, default=[0.0, 0.2], metavar=("START", "END"))
    t.add_argument("--prog-randaug", type=int, nargs=2, default=[0, 9], metavar=("START", "END"))
    t.add_argument("--prog-mixup", type=float, nargs=2, default=[0.0, 0.0], metavar=("START", "END"))
    t.set_defaults(fn=cmd_train)
    v = sub.add_parser("eval", help="top-1/top-5 and a confusion matrix of trained weights")
    v.add_argument("--model", required=True)
    v.add_argument("--weights", required=True)
    v.add_argument("--data", default="embedded")
    v.add_argument("--resolution", type=int)
    v.add_argument("--val-size", type=int, default=1200)
    v.add_argument("--confusion", help="write the confusion matrix PNG here")
    v.set_defaults(fn=cmd_eval)
    d = sub.add_parser("demo", help="the main job: train, distill, export, quantize, benchmark, report")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--fresh", action="store_true", help="redo every step")
    d.add_argument("--toy", action="store_true", help="tiny sizes (seconds; for tests)")
    d.add_argument("--workers", type=int, default=2)
    d.set_defaults(fn=cmd_demo)
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
    except KeyboardInterrupt:
        print("edgevision: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
