"""Command-line options declared once, on the config dataclasses that hold them.

A field is exposed as an option when its metadata has a "help" line::

    epochs: int = field(default=10, metadata={"help": "training epochs"})

Other metadata keys: "flag" (the option's name(s) when they differ from ``--field-name``, a string
or a tuple such as ``("-b", "--batch-size")``), "choices", "metavar", "nargs" (for tuples and
lists; a fixed-length ``tuple[int, int]`` takes 2 values without it), "hidden" (accepted but not
listed in --help), "prefix" (for a nested config, see below), "min" / "above" (the value, or each
value of a tuple, must be >= min / > above: checked by argparse on the command line and by
``bounds_problem`` in the config's ``__post_init__``), and "type" / "const" (an option whose value
is optional: ``nargs="?"`` stores "const" when the flag comes alone).

The argparse type comes from the annotation: int, float, str and ``X | None``; a bool that defaults
to False is a switch (``store_true``), a bool that defaults to True is exposed negated, as
``--no-field-name`` (or its "flag"), and stores False into the field. A field whose type is another
config dataclass (``Sub | None``) is a switch that turns that config on, and the sub-config's own
fields become options named ``--<prefix>-<field>``. A field without a default is a required option.

``option(default, help, **metadata)`` is shorthand for that ``field(...)``. ``add_options`` adds
the options to a parser (or argument group); ``from_args`` builds the dataclass back from the
parsed namespace, so no default is ever written twice.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Callable, Iterable


@dataclasses.dataclass(frozen=True)
class _Option:
    """How one dataclass field appears on the command line."""

    field: dataclasses.Field
    flags: tuple[str, ...]
    dest: str
    kind: str  # "value", "switch", "negated" (a True bool turned off by its flag) or "nested"
    argtype: Any = None  # argparse type, or the nested dataclass for "nested"
    nargs: Any = None
    sequence: type | None = None  # tuple or list: the container the field holds


def option(default: Any = dataclasses.MISSING, help: str | None = None, **metadata) -> Any:
    """``dataclasses.field`` with the option metadata, e.g. ``epochs: int = option(10, "epochs")``
    (a list default becomes a default_factory; no help: the field is not an option)."""
    md = dict(metadata, **({"help": help} if help is not None else {}))
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=md)
    return dataclasses.field(default=default, metadata=md)


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _strip_none(tp):
    """``X | None`` -> X (any other type unchanged)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _dest(flags: tuple[str, ...]) -> str:
    """argparse's own rule: the first long flag without dashes, '-' -> '_'."""
    long = [s for s in flags if s.startswith("--")] or list(flags)
    return long[0].lstrip("-").replace("-", "_")


def _option(f: dataclasses.Field, tp, prefix: str) -> _Option:
    md = f.metadata
    name = f"{prefix}-{f.name}" if prefix else f.name
    tp = _strip_none(tp)
    if tp is bool and _default(f) is True:
        flags = md.get("flag") or f"--no-{name.replace('_', '-')}"
        kind = "negated"
    else:
        flags = md.get("flag") or f"--{name.replace('_', '-')}"
        kind = "switch" if tp is bool else "nested" if dataclasses.is_dataclass(tp) else "value"
    flags = (flags,) if isinstance(flags, str) else tuple(flags)
    nargs, sequence = md.get("nargs"), None
    origin = typing.get_origin(tp) or (tp if tp in (tuple, list) else None)
    if origin in (tuple, list):
        sequence, args = origin, typing.get_args(tp)
        fixed = origin is tuple and args and Ellipsis not in args
        nargs = nargs or (len(args) if fixed else "*")
        tp = args[0] if args else str
    return _Option(f, flags, _dest(flags), kind, tp, nargs, sequence)


def _options(cls, prefix: str = "") -> list[_Option]:
    """The exposed fields of ``cls`` (those with a "help" line), in declaration order."""
    hints = typing.get_type_hints(cls)
    return [_option(f, hints[f.name], prefix) for f in dataclasses.fields(cls) if "help" in f.metadata]


def _help(f: dataclasses.Field, shows_default: bool) -> str:
    if f.metadata.get("hidden"):
        return argparse.SUPPRESS
    text = f.metadata["help"]
    if shows_default and _default(f) not in (None, dataclasses.MISSING) and "%(default)" not in text:
        text += " (default: %(default)s)"
    return text


def bound_problem(value, minimum=None, above=None) -> str | None:
    """What is wrong with ``value`` for the bounds (None if nothing)."""
    if minimum is not None and value < minimum:
        return f"must be at least {minimum:g}, got {value:g}"
    if above is not None and not value > above:
        return f"must be greater than {above:g}, got {value:g}"
    return None


def bounded(base: Callable, minimum=None, above=None) -> Callable:
    """An argparse ``type``: ``base`` (int or float) with the value checked against the bounds."""
    def convert(text: str):
        try:
            value = base(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if base is int else 'a number'}, "
                                             f"got {text!r}") from None
        problem = bound_problem(value, minimum, above)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value
    convert.__name__ = base.__name__
    return convert


COUNT = bounded(int, minimum=1)  # a number of things: epochs, images, top-k, ...
POSITIVE = bounded(float, above=0)  # a rate or a time
NONNEG = bounded(float, minimum=0)  # a rate where 0 means off


class ResolutionAction(argparse.Action):
    """``--resolution H [W]``: one number is a square; stores the pair (H, W)."""

    def __init__(self, option_strings, dest, nargs=None, type=None, metavar=None, **kwargs):
        super().__init__(option_strings, dest, nargs="+", type=COUNT, metavar=("H", "W"), **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if len(values) > 2:
            parser.error(f"argument {option_string}: give H, or H W (got {len(values)} numbers)")
        setattr(namespace, self.dest, (values[0], values[-1]))


def add_resolution(parser, help: str) -> None:
    """The ``--resolution H [W]`` option every verb spells the same way."""
    parser.add_argument("--resolution", action=ResolutionAction, help=help)


def bounds_problem(obj, prefix: str = "") -> str | None:
    """The first field of the dataclass ``obj`` outside its "min"/"above" bounds, as a message
    naming its command-line flag (None if every field is within bounds); the config's
    ``__post_init__`` raises it as a ConfigError."""
    for o in _options(type(obj), prefix):
        md = o.field.metadata
        if "min" not in md and "above" not in md:
            continue
        value = getattr(obj, o.field.name)
        for v in (value if isinstance(value, (tuple, list)) else (value,)):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                problem = bound_problem(v, md.get("min"), md.get("above"))
                if problem:
                    return f"{o.flags[-1]} {problem}"
    return None


def _sub_prefix(o: _Option, prefix: str) -> str:
    own = o.field.metadata.get("prefix", o.field.name)
    return f"{prefix}_{own}" if prefix else own


def add_options(parser, cls, prefix: str = "", skip: Iterable[str] = (),
                only: Iterable[str] | None = None) -> None:
    """Add an option to ``parser`` (an ArgumentParser or argument group) for every field of the
    dataclass ``cls`` that has metadata "help", except the fields named in ``skip`` (or, with
    ``only``, every field not named there)."""
    skip, only = set(skip), None if only is None else set(only)
    for o in _options(cls, prefix):
        f = o.field
        if f.name in skip or (only is not None and f.name not in only):
            continue
        if o.kind != "value":  # a switch: on when given
            parser.add_argument(*o.flags, dest=o.dest, action="store_true", help=_help(f, False))
            if o.kind == "nested":
                group = parser.add_argument_group(f"{o.flags[-1]} options") \
                    if isinstance(parser, argparse.ArgumentParser) else parser
                add_options(group, o.argtype, prefix=_sub_prefix(o, prefix))
            continue
        kwargs = dict(dest=o.dest, help=_help(f, True))
        argtype = f.metadata.get("type", o.argtype)
        if "min" in f.metadata or "above" in f.metadata:
            argtype = bounded(argtype, f.metadata.get("min"), f.metadata.get("above"))
        if argtype is not str:  # argparse keeps strings as they are
            kwargs["type"] = argtype
        default = _default(f)
        if default is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        if o.nargs is not None:
            kwargs["nargs"] = o.nargs
        if "action" in f.metadata:
            kwargs["action"] = f.metadata["action"]
        if "const" in f.metadata:
            kwargs["const"] = f.metadata["const"]
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        if "metavar" in f.metadata:
            metavar = f.metadata["metavar"]
            kwargs["metavar"] = metavar if isinstance(metavar, str) else tuple(metavar)
        parser.add_argument(*o.flags, **kwargs)


def from_args(cls, args: argparse.Namespace, prefix: str = "", **overrides):
    """An instance of ``cls`` from a namespace parsed by options ``add_options(..., cls, prefix)``
    added. ``overrides`` win over the namespace; an option absent from the namespace, or None
    there (not given, no default), leaves the field at its dataclass default."""
    values = {}
    for o in _options(cls, prefix):
        name = o.field.name
        if name in overrides or not hasattr(args, o.dest):
            continue
        value = getattr(args, o.dest)
        if o.kind == "negated":
            value = not value
        elif o.kind == "nested":
            if not value:  # switch off: the field keeps its default
                continue
            value = from_args(o.argtype, args, prefix=_sub_prefix(o, prefix))
        elif value is None:
            continue
        elif o.sequence is not None:
            value = o.sequence(value)
        values[name] = value
    return cls(**values, **overrides)
