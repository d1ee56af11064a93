"""Command-line interface: thin — parses arguments, calls the library, prints, sets the exit code.

One vocabulary in every verb: the model is ``-m/--model`` (verbs that always take one also accept
it as their first positional argument), the file written is ``-o/--output``,
``-b/--batch-size``, ``-j/--workers``, ``--resolution H [W]`` (one number: square),
``--device auto|cpu|cuda[:N]`` and one name per runtime (onnxruntime, openvino, executorch,
litert, coreml). Bad input — an EdgeVisionError, a bad option value, an unknown verb or option —
is one line on stderr and exit code 2: no traceback, and no file written.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError, EdgeVisionError
from ..text import did_you_mean
from .parsers import build_parser


def _settle_model(args: argparse.Namespace) -> None:
    """``args.model`` from ``-m/--model`` or the positional MODEL, given once."""
    pos = getattr(args, "model_pos", None)
    if pos is not None and pos != []:
        if args.model and args.model != pos:
            raise ConfigError("give the model once: as the first argument or with -m/--model")
        args.model = pos
    if getattr(args, "weights_from_pretrained", False) and args.pretrained:
        from ..weights.pretrained import weights_ref
        args.weights = weights_ref(args.pretrained)
    if getattr(args, "model_required", False) and not args.model:
        raise ConfigError(f"which model? `edgevision {args.command} -m NAME` (`edgevision models` "
                          f"lists them)")


def _unrecognized(parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]) -> str:
    """One line for arguments the verb does not take, with the closest options."""
    verb = parser._subparsers._group_actions[0].choices[args.command]  # the verb's own parser
    options = [s for a in verb._actions for s in a.option_strings if s.startswith("--")]
    flags = [e.split("=")[0] for e in extras if e.startswith("-")]
    hint = did_you_mean(flags[0], options, 3) if flags else ""
    return (f"edgevision {args.command}: error: unrecognized arguments: {' '.join(extras)}.{hint} "
            f"(`edgevision {args.command} --help` lists the options)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed on one line
        return int(e.code or 0)
    if extras:
        print(_unrecognized(parser, args, extras), file=sys.stderr)
        return 2
    try:
        _settle_model(args)
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


__all__ = ["main", "build_parser"]

if __name__ == "__main__":
    sys.exit(main())
