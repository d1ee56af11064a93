"""The per-machine latency cache: a figure is reused only when it is as trustworthy as a fresh one.

- Only a steady measurement is stored: its spread, (p90 - p10) / median, is at most
  ``MAX_SPREAD`` over at least ``MIN_RUNS`` timed runs. A machine busy with other work gives
  wide spreads (and medians inflated by the interference); the runner then measures again (up
  to ``ATTEMPTS`` times), and a figure still noisy is shown, flagged, and never stored.
- The key is every setting the figure depends on except the time budget: the machine (CPU model
  and ISA features), library versions, threads, model, weights (a weights file by its size and
  modification time), backend, batch, resolution, device, warm-up, minimum run count and number of
  attempts. Changing any of them misses the cache.
- The budget is stored with the figure: a caller asking for the same or a shorter budget reuses
  it; a longer budget measures again and replaces it.
- Every entry carries when it was measured (UTC), which reports print next to a cached figure.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from ..files import atomic_write
from .latency import cpu_flags, relative_spread

MAX_SPREAD = 0.25  # (p90 - p10) / median above this is noisy: not cached
MIN_RUNS = 10  # timed runs a cached figure needs at least
WARMUP = 3  # untimed calls before timing
ATTEMPTS = 2  # measurements of a figure until one is steady (the least spread is kept)
_LIBRARIES = ("torch", "onnxruntime", "openvino", "nncf", "executorch", "litert-torch", "ai-edge-litert",
              "onnx", "edgevision")


def library_versions() -> dict:
    """Installed versions of the libraries a measurement can depend on (read from package
    metadata, so nothing is imported)."""
    out = {}
    for dist in _LIBRARIES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def machine_fingerprint(threads: int) -> str:
    key = json.dumps([_cpu_name(), sorted(cpu_flags()), platform.machine(), os.cpu_count(),
                      library_versions(), threads], sort_keys=True)
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def weights_stamp(ref: str) -> str:
    """``ref`` plus, for a weights file, its size and modification time: retrained weights at the
    same path are new weights."""
    if ref and Path(ref).is_file():
        st = Path(ref).stat()
        return f"{ref}@{st.st_size}:{st.st_mtime_ns}"
    return ref


def settings_key(*, threads: int, model: str, backend: str, batch: int, resolution: tuple[int, int],
                 weights: str, device: str) -> str:
    """The cache key of a measurement with these settings on this machine (budget excluded: it
    is compared, see the module docstring)."""
    settings = {"machine": machine_fingerprint(threads), "threads": threads, "model": model,
                "backend": backend, "batch": batch, "resolution": list(resolution),
                "weights": weights_stamp(weights), "device": device, "warmup": WARMUP, "min_runs": MIN_RUNS,
                "attempts": ATTEMPTS}
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def steady(median_ms: float, p10_ms: float, p90_ms: float, runs: int) -> bool:
    """Whether a measurement is steady enough to be cached."""
    return runs >= MIN_RUNS and median_ms > 0 and relative_spread(median_ms, p10_ms, p90_ms) <= MAX_SPREAD


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def cache_path() -> Path:
    root = Path(os.environ.get("EDGEVISION_CACHE", Path.home() / ".cache" / "edgevision"))
    return root / "bench-cache.json"


def load() -> dict:
    """key -> {"budget_s", "result"}; entries in another format are dropped."""
    try:
        raw = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if isinstance(v, dict)
            and isinstance(v.get("budget_s"), (int, float)) and isinstance(v.get("result"), dict)}


def lookup(cache: dict, key: str, budget_s: float) -> dict | None:
    """The cached result (a BenchResult's JSON) for ``key`` if it was measured with at least
    ``budget_s`` seconds and is steady; else None (measure again)."""
    e = cache.get(key)
    if e is None or e["budget_s"] < budget_s:
        return None
    r = e["result"]
    try:
        ok = steady(r["median_ms"], r["p10_ms"], r["p90_ms"], r["runs"]) and r.get("measured_at")
    except (KeyError, TypeError):
        return None
    return r if ok else None


def put(cache: dict, key: str, budget_s: float, result: dict) -> bool:
    """Store ``result`` under ``key`` if it is steady (the file is rewritten atomically); a noisy
    one is not stored and an older entry under the key is dropped. Returns whether it was stored."""
    ok = steady(result["median_ms"], result["p10_ms"], result["p90_ms"], result["runs"])
    if ok:
        cache[key] = {"budget_s": budget_s, "result": result}
    elif cache.pop(key, None) is None:
        return False
    with atomic_write(cache_path(), ".json") as tmp:
        tmp.write_text(json.dumps(cache, indent=1))
    return ok
