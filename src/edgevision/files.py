"""Writing files so that a crash never leaves a partial one: every writer of edgevision (weights,
checkpoints, exported models, reports, plots) goes through here."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    A crash or exception leaves the previous file (if any) untouched and no partial file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def writable(path: str | os.PathLike) -> bool:
    """Whether ``path`` can be created: its nearest existing ancestor is a writable directory
    (checked before long work, so a bad destination fails first)."""
    parent = Path(path).absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


def install_file(src: Path, out: Path) -> int:
    """Copy ``src`` to ``out`` atomically; returns the size in bytes."""
    with atomic_write(out) as tmp:
        shutil.copyfile(src, tmp)
    return out.stat().st_size


def install_openvino_ir(xml: Path, out: Path) -> int:
    """Install an OpenVINO IR (``xml`` and the ``.bin`` beside it) as ``out`` and ``out``'s .bin.

    The weights file is installed first and the .xml, which names it, last: a reader never sees an
    .xml whose .bin is missing. Returns the size of both files in bytes."""
    out = out.with_suffix(".xml")
    install_file(xml.with_suffix(".bin"), out.with_suffix(".bin"))
    text = xml.read_text().replace(xml.with_suffix(".bin").name, out.with_suffix(".bin").name)
    with atomic_write(out) as tmp:
        tmp.write_text(text)
    return out.stat().st_size + out.with_suffix(".bin").stat().st_size


def install_tree(src: Path, out: Path) -> int:
    """Copy the directory ``src`` (a bundle such as an .mlpackage) to ``out``; a reader sees the
    previous tree or the complete new one, never a partial one. The copy is made in a temporary
    sibling, the previous ``out`` (if any) is renamed aside, the copy renamed into place and the
    previous one removed; on failure the previous tree is put back. Between the two renames
    ``out`` is briefly absent: POSIX cannot swap a non-empty directory atomically. Returns the
    bytes of the files installed."""
    src, out = Path(src), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    aside = None
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp creates 0700; give the usual directory mode
        if out.exists() or out.is_symlink():
            aside = tmp.with_name(tmp.name[:-len(".tmp")] + ".old")
            os.replace(out, aside)
        try:
            os.replace(tmp, out)
        except OSError:
            if aside is not None:
                os.replace(aside, out)
                aside = None
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if aside is not None:
            (shutil.rmtree(aside, ignore_errors=True) if aside.is_dir() and not aside.is_symlink()
             else aside.unlink(missing_ok=True))
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
