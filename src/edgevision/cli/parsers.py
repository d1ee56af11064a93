"""The argument parser: one builder per verb, every option with a help line and its default, the
same spelling of each option in every verb (see edgevision/cli/__init__.py)."""
from __future__ import annotations

import argparse
import re

from ..options import COUNT, POSITIVE, add_options, add_resolution, bounded
from ..text import did_you_mean
from . import commands as C

DEVICE_HELP = "auto (the GPU if torch sees one, else the CPU), cpu, cuda or cuda:N"


class _Formatter(argparse.HelpFormatter):
    """Help lines end with the option's default, when it has one worth showing."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, argparse.SUPPRESS) \
                or not action.option_strings or action.nargs == 0:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line naming the problem (with "did you mean" for a misspelled verb
    or choice) and where to look; exit code 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        what = "commands" if self.prog == "edgevision" else "options"
        self.exit(2, f"{self.prog}: error: {_explain(message)} (`{self.prog} --help` lists the {what})\n")


def _explain(message: str) -> str:
    m = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)$", message)
    if not m:
        return message
    what, word, choices = m.groups()
    choices = re.findall(r"'([^']*)'", choices)
    if what == "VERB":
        return f"unknown command {word!r}.{did_you_mean(word, choices, 3)} Commands: {', '.join(choices)}"
    return f"argument {what}: invalid choice {word!r}.{did_you_mean(word, choices, 3)} Choose from " \
           f"{', '.join(choices)}"


class _LazyParser(_Parser):
    """A sub-parser that can add its options on first use (parsing or --help): the train options
    come from config classes whose modules import torchvision, which the other verbs and
    `edgevision --help` need not load."""

    def __init__(self, *args, deferred=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._deferred = deferred

    def populate(self) -> None:
        if self._deferred is not None:
            add, self._deferred = self._deferred, None
            add(self)

    def parse_known_args(self, args=None, namespace=None):
        self.populate()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.populate()
        return super().format_help()


def _model(p, positional: bool = True, many: bool = False, required: bool = True,
           help: str = "registered model name (`edgevision models` lists them)") -> None:
    """The model, spelled ``-m/--model`` in every verb; verbs that always take one also accept it
    as their first positional argument."""
    if positional:
        p.add_argument("model_pos", nargs="*" if many else "?", metavar="MODEL",
                       help=f"{help}; the same as -m/--model")
    p.add_argument("-m", "--model", nargs="+" if many else None, help=help)
    p.set_defaults(model_required=required)


def _weights(p, what: str = "weight file to load first (else random weights)", required: bool = False) -> None:
    """``--weights FILE`` or ``--pretrained [TAG]`` (the published weights; `models --pretrained`
    lists the tags), one of them."""
    g = p.add_mutually_exclusive_group(required=required)
    g.add_argument("--weights", help=what)
    g.add_argument("--pretrained", nargs="?", const=True, default=None, metavar="TAG",
                   help="the model's published weights, with their preprocessing (a TAG picks one; "
                   "`edgevision models --pretrained` lists them and what is on this machine)")
    p.set_defaults(weights_from_pretrained=True)


def _output(p, help: str, *aliases: str, required: bool = True) -> None:
    p.add_argument("-o", "--output", *aliases, required=required, help=help)


def _batch(p, default: int, help: str = "images per call") -> None:
    p.add_argument("-b", "--batch-size", "--bs", dest="batch_size", type=COUNT, default=default, help=help)


def _workers(p, default: int = 2) -> None:
    p.add_argument("-j", "--workers", type=bounded(int, minimum=0), default=default,
                   help="data-loader worker processes")


def _device(p, what: str = "") -> None:
    p.add_argument("--device", default="auto", help=f"{what}{DEVICE_HELP}")


def _threads(p) -> None:
    p.add_argument("--threads", type=bounded(int, minimum=0), default=0,
                   help="CPU threads (0: the runtime's default)")


def _models_parser(sub) -> None:
    m = sub.add_parser("models", help="list models with params, MACs, resolution, published top-1")
    m.add_argument("pattern", nargs="?", help="wildcard or substring, e.g. 'efficientnet_b*' or lite")
    m.add_argument("--family", help="only this family (e.g. mobilenetv3, efficientnet, convnext)")
    m.add_argument("--pretrained", action="store_true", help="list the published weights instead: "
                   "tag, source, top-1, license, and whether they are on this machine")
    m.add_argument("--json", action="store_true", help="print the list as JSON")
    m.set_defaults(fn=C.cmd_models)


def _info_parser(sub) -> None:
    i = sub.add_parser("info", help="show a model's spec, stages and feature_info")
    _model(i)
    i.add_argument("--json", action="store_true", help="print the figures, spec and feature_info as JSON")
    i.set_defaults(fn=C.cmd_info)


_SUFFIXES = ".onnx, .xml (openvino), .pte (executorch), .tflite (litert), .mlpackage (coreml)"


def _export_parser(sub) -> None:
    from ..deploy.export import FORMATS
    e = sub.add_parser("export", help="reparameterize, export to ONNX/OpenVINO/ExecuTorch/LiteRT/Core ML, "
                       "verify against PyTorch")
    _model(e)
    _output(e, f"output file; its suffix picks the format: {_SUFFIXES}")
    _weights(e)
    e.add_argument("--num-classes", type=COUNT, help="classifier size, if the weights have another")
    e.add_argument("--format", choices=FORMATS, help="artifact format (default: from the output's suffix)")
    add_resolution(e, "input size H [W] (one number: square; default: the model's)")
    e.add_argument("--dynamic-batch", action="store_true", help="any batch size (default: batch 1)")
    e.add_argument("--opset", type=COUNT, default=18, help="ONNX opset")
    e.add_argument("--exporter", choices=["torchscript", "dynamo"], default="torchscript",
                   help="torch.onnx exporter")
    e.add_argument("--atol", type=POSITIVE, default=1e-4, help="max abs logit difference allowed")
    e.set_defaults(fn=C.cmd_export)


def _quantize_parser(sub) -> None:
    from ..deploy.recipe import QuantRecipe
    q = sub.add_parser("quantize", help="INT8 for a runtime, checked against fp32 and timed")
    _model(q, help="onnxruntime/openvino: the fp32 .onnx written by `edgevision export`; "
           "executorch/litert/coreml: a model name (with --weights), quantized from PyTorch")
    _output(q, ".onnx (onnxruntime), .xml (openvino), .pte (executorch), .tflite (litert), "
            ".mlpackage (coreml: INT8 weights)")
    _weights(q, "executorch/litert/coreml: weight file of the model (else random weights)")
    add_resolution(q, "executorch/litert: input size H [W] (default: the model's)")
    add_options(q, QuantRecipe)
    q.set_defaults(fn=C.cmd_quantize)


def _optimize_parser(sub) -> None:
    from ..optimize.candidates import RUNTIMES
    o = sub.add_parser("optimize", help="the fastest verified artifact for this machine: runtimes x "
                       "precisions x INT8 recipes, each checked against fp32 and timed")
    _model(o)
    _output(o, "output folder: the winning artifact, report.md, results.json, plot.png")
    _weights(o, "trained weight file (without it or --pretrained: random weights, a speed-only run)")
    o.add_argument("--calib", default="embedded", help="calibration and held-out images: embedded, "
                   "photos (views of the photos installed packages ship) or a folder of the model's images")
    o.add_argument("--max-drop", type=bounded(float, minimum=0.0), default=0.01,
                   help="largest loss of top-1 agreement with fp32 a candidate may have (fraction)")
    o.add_argument("--agreement", choices=["all", "confident"], default="all", help="images the agreement "
                   "is required on: all held-out images, or those where fp32's top-1 probability is >= 0.5 "
                   "(on 1000-class photos the rest are near-ties that any rounding flips)")
    o.add_argument("--runtimes", help=f"comma-separated subset of {','.join(RUNTIMES)} (default: every "
                   f"installed one; onnxruntime fp32 is always the reference)")
    o.add_argument("--batch", default="1,16", help="comma-separated batch sizes the speed-up is measured at")
    o.add_argument("--time-limit", type=POSITIVE, help="minutes after which no candidate is started "
                   "(finished ones stay cached: a rerun resumes)")
    add_resolution(o, "input size H [W] (one number: square; default: the model's)")
    o.add_argument("--held-out", type=COUNT, default=200, help="images for the agreement check")
    o.add_argument("--images", type=COUNT, default=64, help="calibration images")
    _threads(o)
    o.set_defaults(fn=C.cmd_optimize)


def _convert_parser(sub) -> None:
    c = sub.add_parser("convert", help="convert weights from timm/torchvision/efficientnet_pytorch")
    c.add_argument("input", help="weight file to convert (.pth, .pt, .bin, .safetensors)")
    _model(c, positional=False)
    c.add_argument("--source", default="auto", choices=["auto", "edgevision", "timm", "torchvision",
                                                        "efficientnet_pytorch", "official"],
                   help="library that wrote the file")
    c.add_argument("--num-classes", type=COUNT, default=1000, help="classifier size of the weights")
    _output(c, "output .safetensors")
    c.set_defaults(fn=C.cmd_convert)


def _predict_parser(sub) -> None:
    from ..deploy.targets import TARGETS
    pd = sub.add_parser("predict", help="classify images with weights or an exported model, using "
                        "the preprocessing stored with them")
    pd.add_argument("images", nargs="+", help="image files, folders or glob patterns ('photos/*.jpg')")
    _model(pd, positional=False, required=False,
           help="registered model name (default: the one the weight file records)")
    _weights(pd, "weight file (.safetensors, .pth) run in PyTorch, or an exported model (.onnx, "
             ".xml, .pte, .tflite) run in its runtime", required=True)
    pd.add_argument("-k", "--topk", type=COUNT, default=5, help="classes shown per image")
    pd.add_argument("--json", action="store_true", help="print the results as JSON")
    _device(pd, "weight files: ")
    pd.add_argument("--runtime", choices=tuple(TARGETS), help="exported models: the runtime (default: "
                    ".onnx onnxruntime, .xml openvino, .pte executorch, .tflite litert)")
    pd.add_argument("--precision", help="exported models: the precision asked of the runtime (default: "
                    "the artifact's own; openvino also bf16)")
    _threads(pd)
    pd.set_defaults(fn=C.cmd_predict)


def _bench_parser(sub) -> None:
    b = sub.add_parser("bench", help="latency/throughput of models on this machine, per backend")
    _model(b, many=True, help="registered model name(s)")
    b.add_argument("--backends", default="torch", help="comma-separated: torch, torch-cl, compile (on "
                   "--device), onnxruntime, onnxruntime-int8, openvino, openvino-bf16, openvino-int8, "
                   "executorch, executorch-int8, litert, litert-int8 (ort = onnxruntime)")
    _batch(b, 1)
    add_resolution(b, "input size H [W] (one number: square; default: each model's)")
    _threads(b)
    _device(b, "torch backends: ")
    _output(b, "write the results here as JSON (input of `edgevision report`)", "--json", required=False)
    b.add_argument("--pretrained", nargs="?", const=True, default=None, metavar="TAG",
                   help="time the models with their published weights (converters cannot prune "
                   "what random weights leave inert)")
    b.add_argument("--no-cache", action="store_true", help="measure again even if cached")
    b.add_argument("--budget-s", type=POSITIVE, default=2.0, help="timing seconds per measurement")
    b.set_defaults(fn=C.cmd_bench)


def _profile_parser(sub) -> None:
    pr = sub.add_parser("profile", help="per-layer time, MACs, bytes and intensity")
    _model(pr)
    pr.add_argument("--backend", choices=["torch", "onnxruntime", "ort"], default="torch",
                    help="where the layers run (ort = onnxruntime)")
    add_resolution(pr, "input size (square; default: the model's)")
    _weights(pr)
    pr.add_argument("--top", type=COUNT, default=25, help="layers shown")
    pr.set_defaults(fn=C.cmd_profile)


def _report_parser(sub) -> None:
    rp = sub.add_parser("report", help="markdown table + Pareto plot from `bench -o` results")
    rp.add_argument("results", help="results file written by `edgevision bench -o FILE.json`")
    _output(rp, "output directory")
    rp.set_defaults(fn=C.cmd_report)


def _pick_parser(sub) -> None:
    pk = sub.add_parser("pick", help="most accurate model within a latency budget on this machine")
    pk.add_argument("--budget-ms", type=POSITIVE, required=True, help="latency budget in milliseconds")
    pk.add_argument("--backend", default="torch", help="backend to time (names as in `bench --backends`)")
    _batch(pk, 1)
    pk.add_argument("--family", help="only this family")
    pk.add_argument("--max-params", type=POSITIVE, help="at most this many parameters, in millions")
    _threads(pk)
    pk.add_argument("--no-cache", action="store_true", help="measure again even if cached")
    pk.add_argument("--budget-s", type=POSITIVE, default=1.0, help="timing seconds per measurement")
    pk.add_argument("--optimized", nargs="+", metavar="DIR",
                    help="answer with what will be deployed: the verified winners of `edgevision optimize "
                         "-o DIR` runs (their latency at --batch-size on this machine) instead of timing "
                         "registry models")
    pk.set_defaults(fn=C.cmd_pick)


def _train_parser(sub) -> None:
    t = sub.add_parser("train", help="train or fine-tune a model (embedded dataset by default)",
                       deferred=_train_options)
    t.set_defaults(fn=C.cmd_train, model_required=False)


def _train_options(t: argparse.ArgumentParser) -> None:
    """TrainConfig's options; detection and segmentation (DenseConfig) share them and add
    --detector."""
    from ..dense.train import DenseConfig
    from ..train import TrainConfig
    t.add_argument("--task", choices=["classification", "detection", "segmentation"],
                   default="classification", help="what to train; detection and segmentation put "
                   "a head on the --model backbone (default: %(default)s)")
    add_options(t, DenseConfig, only=("detector",))
    add_options(t, TrainConfig)


def _eval_parser(sub) -> None:
    v = sub.add_parser("eval", help="top-1/top-5 and a confusion matrix of trained weights")
    _model(v, positional=False)
    _weights(v, "trained weight file", required=True)
    v.add_argument("--data", default="embedded", help="'embedded' or a folder with train/ and val/")
    add_resolution(v, "eval size (square; default: 96 for embedded, the model's otherwise)")
    _batch(v, 128)
    v.add_argument("--val-size", type=COUNT, default=1200, help="embedded: validation images")
    _workers(v)
    _device(v)
    v.add_argument("--confusion", help="write the confusion matrix PNG here")
    v.set_defaults(fn=C.cmd_eval)


def _demo_parser(sub) -> None:
    d = sub.add_parser("demo", help="the main job: train, distill, export, quantize, benchmark, report")
    _output(d, "run directory", "--out", required=False)
    d.set_defaults(output="runs/demo")
    d.add_argument("--fresh", action="store_true", help="redo every step")
    d.add_argument("--toy", action="store_true", help="tiny sizes (seconds; for tests)")
    _workers(d)
    d.set_defaults(fn=C.cmd_demo)


VERBS = (_models_parser, _info_parser, _export_parser, _quantize_parser, _optimize_parser,
         _convert_parser, _predict_parser, _bench_parser, _profile_parser, _report_parser, _pick_parser,
         _train_parser, _eval_parser, _demo_parser)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__
    try:
        torch = version("torch")
    except PackageNotFoundError:
        torch = "not installed"
    return f"edgevision {__version__} (torch {torch})"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="edgevision", description="Efficient vision models, verified from PyTorch to "
                "deployment. `edgevision VERB --help` lists a verb's options.")
    p.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_LazyParser, metavar="VERB")
    for add_verb in VERBS:
        add_verb(sub)
    return p


__all__ = ["build_parser", "VERBS"]
