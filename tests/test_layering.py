"""The import tiers of docs/design.md hold (import-linter's layers contract in pyproject.toml),
and the contract really catches an upward or a sibling import."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import edgevision

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(src_root: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(src_root), "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    return subprocess.run([str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=src_root, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def lint():
    if not LINT.exists():
        pytest.fail("lint-imports is missing: `make setup` installs import-linter with the test extra")
    return _lint


def _copy_package(tmp_path: Path) -> Path:
    dst = tmp_path / "src"
    shutil.copytree(Path(edgevision.__file__).parent, dst / "edgevision",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def test_tree_keeps_the_tiers(lint):
    res = lint(Path(edgevision.__file__).parents[1])
    assert res.returncode == 0, res.stdout[-3000:]
    assert "1 kept, 0 broken" in res.stdout


@pytest.mark.parametrize("module, line, culprit", [
    ("bench/latency.py", "from ..cli import main", "edgevision.bench is not allowed to import edgevision.cli"),
    ("train/losses.py", "from ..deploy import reparameterize",
     "edgevision.train is not allowed to import edgevision.deploy"),
    ("models/base.py", "from ..registry import get_entry",
     "edgevision.models is not allowed to import edgevision.registry"),
])
def test_contract_fails_on_upward_or_sibling_import(lint, tmp_path, module, line, culprit):
    src = _copy_package(tmp_path)
    target = src / "edgevision" / module
    target.write_text(target.read_text() + f"\n\ndef _violation():\n    {line}\n")
    res = lint(src)
    assert res.returncode != 0
    assert culprit in res.stdout, res.stdout[-3000:]
