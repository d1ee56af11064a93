"""Options declared once on a dataclass: argparse flags generated from field metadata and the
dataclass built back from the parsed namespace."""
import argparse
from dataclasses import dataclass, field

import pytest

from edgevision.options import add_options, from_args, option


@dataclass(frozen=True)
class Sub:
    stages: int = option(4, "number of stages")
    size: tuple[int, int] = option((64, 96), "first and last size", metavar=("START", "END"))


@dataclass(frozen=True)
class Cfg:
    name: str = option(help="a required name")
    count: int = option(3, "how many", flag=("-n", "--count"))
    rate: float | None = option(None, "a rate (default: none)")
    mode: str = option("fast", "speed", choices=("fast", "slow"))
    verbose: bool = option(False, "say more")
    fused: bool = option(True, "do not fuse", flag="--no-fuse")
    cache: bool = option(True, "keep the cache")  # negated without a flag: --no-cache
    tags: list[str] = option([], "free-form tags")
    secret: int = option(0, "internal", hidden=True)
    internal: int = 7  # no help: not an option
    sub: Sub | None = option(None, "enable the sub-config", prefix="s")
    extra: dict = field(default_factory=dict)


def _parser(cls=Cfg, **kw):
    p = argparse.ArgumentParser(prog="t")
    add_options(p, cls, **kw)
    return p


def _parse(*argv, cls=Cfg):
    return from_args(cls, _parser(cls).parse_args(list(argv)))


def test_defaults_round_trip():
    assert _parse("--name", "x") == Cfg(name="x")


def test_every_kind_of_option_round_trips():
    cfg = _parse("--name", "x", "-n", "5", "--rate", "0.5", "--mode", "slow", "--verbose", "--no-fuse",
                 "--no-cache", "--tags", "a", "b", "--secret", "9", "--sub", "--s-stages", "2",
                 "--s-size", "32", "48")
    assert cfg == Cfg(name="x", count=5, rate=0.5, mode="slow", verbose=True, fused=False, cache=False,
                      tags=["a", "b"], secret=9, sub=Sub(stages=2, size=(32, 48)))
    assert isinstance(cfg.sub.size, tuple)  # nargs values become the annotated container


def test_flag_names_and_dests_follow_argparse():
    p = _parser()
    flags = {s for a in p._actions for s in a.option_strings}
    assert flags == {"-h", "--help", "--name", "-n", "--count", "--rate", "--mode", "--verbose",
                     "--no-fuse", "--no-cache", "--tags", "--secret", "--sub", "--s-stages", "--s-size"}
    ns = p.parse_args(["--name", "x", "--no-fuse"])
    assert ns.count == 3 and ns.no_fuse is True and ns.no_cache is False and ns.s_size == (64, 96)


def test_nested_config_stays_off_without_its_switch():
    assert _parse("--name", "x", "--s-stages", "2").sub is None


def test_required_and_choices_are_enforced(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args([])
    assert "--name" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser().parse_args(["--name", "x", "--mode", "medium"])
    assert "invalid choice" in capsys.readouterr().err


def test_help_shows_defaults_and_hides_hidden_options():
    text = " ".join(_parser().format_help().split())
    assert "how many (default: 3)" in text and "speed (default: fast)" in text
    assert "first and last size (default: (64, 96))" in text and "--s-size START END" in text
    assert "a rate (default: none)" in text and "(default: None)" not in text
    assert "--secret" not in text and "--internal" not in text and "--extra" not in text


def test_skip_only_and_overrides():
    p = argparse.ArgumentParser()
    add_options(p, Cfg, only=("name", "count"))
    assert {s for a in p._actions for s in a.option_strings} == {"-h", "--help", "--name", "-n", "--count"}
    ns = p.parse_args(["--name", "x"])
    assert from_args(Cfg, ns, count=8) == Cfg(name="x", count=8)
    p = argparse.ArgumentParser()
    add_options(p, Cfg, skip=("sub", "tags", "name"))
    assert not any(s in ("--sub", "--tags", "--name") for a in p._actions for s in a.option_strings)


@dataclass(frozen=True)
class Other:
    """Shares --count with Cfg but has its own defaults."""
    name: str = option(help="a name")
    count: int = option(10, "how many", flag=("-n", "--count"))
    rate: float = option(0.25, "never None here")
    mode: str = "fast"  # not an option: a namespace value for --mode does not reach it


def test_a_second_config_takes_shared_values_and_keeps_its_defaults_for_none():
    ns = _parser().parse_args(["--name", "x", "-n", "4", "--mode", "slow"])
    assert from_args(Other, ns) == Other(name="x", count=4, rate=0.25, mode="fast")
