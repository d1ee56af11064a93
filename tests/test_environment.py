"""The test environment has every package of the ``test`` extra, at the pinned versions.

Several test files skip themselves when an optional runtime is missing (``importorskip``), so a
user without, say, the phone runtimes can still run the rest. Under ``make test`` nothing may be
skipped that way: this test fails when an extra the suite needs is absent or at another version,
instead of letting its tests disappear from the count."""
import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _requirements(extra: str, extras: dict) -> list[Requirement]:
    """The requirements of ``extra``, with the project's own extras it names expanded."""
    out = []
    for spec in extras[extra]:
        req = Requirement(spec)
        if req.name == "edgevision":
            for inner in sorted(req.extras):
                out += _requirements(inner, extras)
        else:
            out.append(req)
    return out


def test_every_test_requirement_is_installed_at_its_pinned_version():
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    reqs = _requirements("test", extras)
    assert {"executorch", "litert-torch", "ai-edge-litert", "coremltools", "openvino", "nncf"} <= \
        {r.name for r in reqs}
    missing, wrong = [], []
    for req in reqs:
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(req.name)
            continue
        if not req.specifier.contains(version, prereleases=True):
            wrong.append(f"{req.name} {version} (wants {req.specifier})")
    assert not missing and not wrong, (f"run `make setup` (or `.venv/bin/pip install -e '.[test]'`): "
                                       f"missing {missing}, other versions {wrong}")


@pytest.mark.parametrize("extra", ["mobile"])
def test_phone_runtimes_are_pinned_exactly(extra):
    """Phone runtimes change their converters between releases: each is pinned to one version."""
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert all(re.fullmatch(r"[\w-]+==[\d.]+", spec) for spec in extras[extra]), extras[extra]
