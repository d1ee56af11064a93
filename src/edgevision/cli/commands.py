"""The verbs: each ``cmd_<verb>(args)`` calls the library with the parsed options and prints."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from pathlib import Path

from ..errors import ConfigError, EdgeVisionError
from ..text import macs, millions, table


def cmd_models(args) -> int:
    from ..registry import list_models
    names = list_models(args.pattern, family=args.family)
    if not names:
        raise EdgeVisionError(f"no model matches pattern {args.pattern!r}"
                              + (f" in family {args.family!r}" if args.family else ""))
    if args.pretrained:
        return _list_pretrained(names, args.json)
    rows = [_figures(n) for n in names]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(table([[r["model"], r["family"], millions(r["params"]) + ("" if r["published"] else "*"),
                  macs(r["macs"]) + ("" if r["published"] else "*"), str(r["resolution"]),
                  f"{r['top1']:.1f}" if r["top1"] is not None else "-"] for r in rows],
                ["model", "family", "params", "MACs", "res", "top-1"], right={2, 3, 4, 5}))
    print(f"\n{len(names)} models. params/MACs: the reference figures at the listed resolution "
          f"(equal to edgevision's counts, tested); * computed here with torch.utils.flop_counter "
          f"(no published figure); top-1: ImageNet-1k as published by the authors.")
    return 0


def _list_pretrained(names: list[str], as_json: bool) -> int:
    """The published checkpoints of ``names``: source, top-1, license, preprocessing, and whether
    the file is on this machine."""
    from ..weights.pretrained import SOURCES, weights_table
    table_ = weights_table()
    entries = [p for n in names for p in table_.get(n, [])]
    if not entries:
        raise EdgeVisionError(f"no published weights are known for {', '.join(names[:5])}"
                              f"{' ...' if len(names) > 5 else ''}")
    rows = []
    for p in entries:
        local = p.cached()
        rows.append(dict(dataclasses.asdict(p), name=p.name, cached=str(local) if local else None))
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    print(table([[r["name"], SOURCES[r["source"]], str(r["num_classes"]),
                  f"{r['top1']:.1f} @{r['eval_size']}" if r["top1"] is not None else "-",
                  str(r["resolution"]), r["license"] or "-", "yes" if r["cached"] else "-"]
                 for r in rows],
                ["weights", "source", "classes", "top-1", "res", "license", "here"], right={2, 3, 4}))
    here = sum(r["cached"] is not None for r in rows)
    print(f"\n{len(rows)} checkpoints for {len({r['model'] for r in rows})} models, {here} on this "
          f"machine. top-1: ImageNet-1k as measured by the weights' publisher at the size shown. "
          f"Use one: `edgevision predict IMG -m MODEL --pretrained [TAG]`; the first listed per model "
          f"is its default, unless another one is on this machine.")
    return 0


def _figures(name: str) -> dict:
    """A model's row: the reference figures, or params/MACs counted on the meta device."""
    from ..registry import get_entry
    e = get_entry(name)
    ref, res = e.reference, e.input_config.resolution
    row = {"model": name, "family": e.family, "resolution": res, "top1": ref.top1 if ref else None,
           "published": ref is not None}
    if ref is not None:
        return dict(row, params=ref.params, macs=ref.macs_millions * 1e6)
    import torch
    from ..bench import count_macs
    from ..factory import count_params, create_model
    with torch.device("meta"):
        model = create_model(name)
    return dict(row, params=count_params(model), macs=float(count_macs(model)))


def cmd_info(args) -> int:
    import torch
    from ..bench import count_macs
    from ..factory import count_params, create_model
    with torch.device("meta"):
        model = create_model(args.model)
    cfg, params, n_macs = model.input_config, count_params(model), count_macs(model)
    if args.json:
        print(json.dumps({"model": args.model, "family": model.family, "params": params, "macs": n_macs,
                          "input_config": dataclasses.asdict(cfg), "spec": _short(model.spec),
                          "feature_info": [dataclasses.asdict(f) for f in model.feature_info]}, indent=1))
        return 0
    print(f"{args.model}  (family {model.family})")
    print(f"params: {params:,} ({millions(params)})   MACs @ {cfg.resolution}: {macs(n_macs)}")
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


@contextlib.contextmanager
def _progress_to_stderr():
    """Progress bars that libraries print to stdout (NNCF's) go to stderr, so stdout holds only
    the results."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def cmd_demo(args) -> int:
    from ..pipeline import TOY, DemoPlan, Pipeline, summary
    from ..registry import list_families, list_models
    print(f"edgevision: {len(list_models())} models in {len(list_families())} families "
          f"(`edgevision models` lists them). Running the demo pipeline in {args.output}:")
    plan = TOY if args.toy else DemoPlan()
    results = Pipeline(args.output, plan, fresh=args.fresh, workers=args.workers).run()
    print("\n" + summary(results, Path(args.output)))
    return 0


def _load_model(name: str, weights: str | None, num_classes: int | None = None):
    from ..factory import create_model
    from ..weights import create_with_weights
    if weights:
        return create_with_weights(name, weights, num_classes)
    return create_model(name, **({"num_classes": num_classes} if num_classes is not None else {})).eval()


def _check_resolution(name: str, resolution) -> None:
    """``--resolution`` at least the model's minimum input size, checked before any work."""
    if resolution is None:
        return
    from ..registry import get_entry
    low = get_entry(name).input_config.min_size
    if min(resolution) < low:
        shown = resolution[0] if resolution[0] == resolution[-1] else " ".join(map(str, resolution))
        raise ConfigError(f"--resolution {shown} is below {name}'s minimum "
                          f"input size {low}")


def cmd_export(args) -> int:
    from ..deploy.export import export
    _check_resolution(args.model, args.resolution)
    model = _load_model(args.model, args.weights, args.num_classes)
    report = export(model, args.output, fmt=args.format, resolution=args.resolution,
                    dynamic_batch=args.dynamic_batch, opset=args.opset, exporter=args.exporter,
                    atol=args.atol)
    print(report.summary())
    return 0


def cmd_train(args) -> int:
    from ..options import from_args
    from ..train import TrainConfig
    cfg = from_args(TrainConfig, args)  # validates every value before anything is built
    if args.task != "classification":
        from ..dense.train import DenseConfig, train_dense
        res = {"resolution": cfg.resolution} if cfg.resolution else {}
        res = train_dense(from_args(DenseConfig, args, out=cfg.out, **res))
        print(f"done: best {'mAP' if args.task == 'detection' else 'mIoU'} {res['best']:.2f}  ({cfg.out})")
        return 0
    from ..train import train
    res = train(cfg)
    if "best_top1" in res:  # rank 0 (other ranks of a torchrun job return no metrics)
        print(f"done: best val top-1 {res['best_top1']:.2f}%  weights: {cfg.out}/best.safetensors  "
              f"curves: {cfg.out}/curves.png")
    return 0


def cmd_eval(args) -> int:
    from ..train.config import square_size
    from ..train.evaluation import run_eval
    res = run_eval(args.model, args.weights, args.data, square_size(args.resolution, "eval"),
                   batch_size=args.batch_size, val_size=args.val_size, out_png=args.confusion,
                   workers=args.workers, device=args.device)
    print(f"{args.model}: top-1 {res['top1']:.2f}%  top-5 {res['top5']:.2f}%  ({res['n']} images, "
          f"{res['device']})" + (f"  confusion matrix: {args.confusion}" if args.confusion else ""))
    return 0


def cmd_quantize(args) -> int:
    from ..bench.speed import add_speed
    from ..deploy.quantize import QuantRecipe, quantize
    from ..deploy.targets import get_target
    from ..options import from_args
    recipe = from_args(QuantRecipe, args)
    with _progress_to_stderr():
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

    from ..bench.speed import add_speed
    from ..deploy.export import export
    from ..deploy.quantize import quantize
    from ..deploy.targets import get_target
    _check_resolution(args.model, args.resolution)
    model = _load_model(args.model, args.weights)
    report = quantize(model, args.output, recipe, resolution=args.resolution)
    if not getattr(get_target(recipe.runtime), "RUNS_HERE", True):
        return report  # no latency for a runtime that cannot run here (Core ML off Apple systems)
    with tempfile.TemporaryDirectory(prefix="edgevision-ref-") as d:
        ref = export(model, Path(d) / "fp32.onnx", resolution=args.resolution)
        return add_speed(report, ref.path, batches=(1,), source=recipe.calib)


def cmd_optimize(args) -> int:
    from ..optimize import optimize
    _check_resolution(args.model, args.resolution)
    try:
        batches = tuple(int(b) for b in args.batch.split(",") if b.strip())
    except ValueError:
        raise ConfigError(f"--batch takes comma-separated batch sizes, e.g. 1,16; got {args.batch!r}") from None
    with _progress_to_stderr():
        res = optimize(args.model, args.weights, args.calib, args.max_drop, args.runtimes, batches,
                       args.time_limit, args.output, args.resolution, images=args.images,
                       held_out=args.held_out, threads=args.threads, agreement=args.agreement)
    print(res.summary())
    return 0


def cmd_bench(args) -> int:
    from ..bench.latency import cpu_description
    from ..bench.runner import benchmark, format_results, library_versions, save_json
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for name in args.model:
        _check_resolution(name, args.resolution)
    weights = None
    if args.pretrained:  # resolved now: a missing checkpoint fails before any timing
        from ..weights.pretrained import resolve, weights_ref
        weights = {n: weights_ref(resolve(n, args.pretrained).tag) for n in args.model}
    with _progress_to_stderr():
        results = benchmark(args.model, backends, args.batch_size, args.resolution, args.threads,
                            use_cache=not args.no_cache, budget_s=args.budget_s, device=args.device,
                            weights=weights)
    print(f"device: {cpu_description()}; {', '.join(f'{k} {v}' for k, v in library_versions().items())}")
    print(format_results(results))
    if args.output:
        save_json(results, args.output)
        print(f"results written to {args.output}")
    return 0


def cmd_profile(args) -> int:
    from ..bench.profile import format_profile, run_profile
    from ..train.config import square_size
    _check_resolution(args.model, args.resolution)
    backend = {"onnxruntime": "ort"}.get(args.backend, args.backend)
    stats = run_profile(args.model, backend, square_size(args.resolution, "profile"), args.weights)
    print(f"{args.model} ({args.backend}, batch 1, fp32), slowest first:")
    print(format_profile(stats, args.top))
    return 0


def cmd_report(args) -> int:
    from ..bench.report import write_report
    from ..bench.runner import load_json
    md, png = write_report(load_json(args.results), args.output)
    print(f"report: {md}\nplot:   {png}")
    return 0


def _pick_optimized(args) -> int:
    from ..bench.pick import pick_optimized
    res = pick_optimized(args.budget_ms, args.optimized, args.batch_size)
    print(table([[n, s] for n, s in res.table], ["optimized model (folder)", "deployed artifact"]))
    c = res.choice
    print(f"\npick: {c.model} — {c.describe(args.batch_size)} within {args.budget_ms:g} ms\n"
          f"deploy: {c.artifact}")
    return 0


def cmd_pick(args) -> int:
    from ..bench.pick import pick
    if args.optimized:
        return _pick_optimized(args)
    from ..bench.runner import trust_note
    from ..registry import get_entry
    res = pick(args.budget_ms, args.backend, args.batch_size, args.family, args.max_params, args.threads,
               budget_s=args.budget_s, use_cache=not args.no_cache)
    print(table([[n, s] for n, s in res.table], ["candidate (fewest MACs first)", "latency"]))
    print(trust_note(res.measured))
    c = res.choice
    ref = get_entry(c.model).reference
    print(f"\npick: {c.model} — {c.median_ms:.2f} ms ({c.backend}, {c.precision}, batch {c.batch}, "
          f"{c.resolution[0]}px{', ' + c.when if c.cached else ''}) within {args.budget_ms:g} ms; "
          f"published top-1 {ref.top1}%, {c.params / 1e6:.2f}M params")
    return 0


def cmd_convert(args) -> int:
    from ..factory import create_model
    from ..weights import load_weights, save_weights
    from ..weights.io import read_state_dict
    from ..weights.load import detect_source
    from ..weights.sources import create_for_source
    if not args.output.endswith(".safetensors"):
        raise ConfigError(f"-o/--output must be a .safetensors file, got {args.output!r}")
    source = args.source
    if source == "auto":
        sd, meta = read_state_dict(args.input)
        source = detect_source(sd, create_model(args.model, num_classes=args.num_classes), meta)
    model = create_for_source(args.model, source, num_classes=args.num_classes).eval()
    report = load_weights(model, args.input, source=source)
    save_weights(model, args.output)
    print(f"converted {report.loaded} tensors ({source} -> edgevision) for {args.model}: {args.output}")
    return 0


def cmd_predict(args) -> int:
    from ..predict import predict
    results = predict(args.images, args.model, args.weights, args.topk, device=args.device,
                      runtime=args.runtime, threads=args.threads, precision=args.precision)
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    r0 = results[0]
    print(f"{r0['model']}: {r0['runtime']}, {r0['precision']}")
    for r in results:
        print(r["image"])
        for t in r["top"]:
            print(f"  {t['prob'] * 100:6.2f}%  {t['class']}")
    return 0
