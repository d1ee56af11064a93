"""`edgevision bench`: measure models x backends on this machine, with a per-machine cache."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..errors import ConfigError
from ..factory import count_params, create_model
from ..files import atomic_write
from ..registry import get_entry
from ..text import table
from .backends import TORCH_BACKENDS, check_backend, current_rss_mb, make_runner
from .latency import cpu_description, cpu_flags, measure_latency


@dataclass
class BenchResult:
    model: str
    family: str
    backend: str
    precision: str  # what actually ran
    settings: str
    batch: int
    resolution: tuple[int, int]
    threads: int
    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int
    images_per_s: float
    peak_mem_mb: float  # RSS growth while building + running this backend
    params: int
    macs_m: float | None
    top1: float | None
    machine: str
    cached: bool = False

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "BenchResult":
        return cls(**{**d, "resolution": tuple(d["resolution"])})


def library_versions() -> dict:
    out = {"torch": torch.__version__}
    for mod in ("onnxruntime", "openvino"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


def machine_fingerprint(threads: int) -> str:
    key = json.dumps([cpu_description(), sorted(cpu_flags()), platform.machine(), library_versions(),
                      threads], sort_keys=True)
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def cache_path() -> Path:
    root = Path(os.environ.get("EDGEVISION_CACHE", Path.home() / ".cache" / "edgevision"))
    return root / "bench-cache.json"


def _load_cache() -> dict:
    try:
        return json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}


def _store(cache: dict) -> None:
    p = cache_path()
    with atomic_write(p, ".json") as tmp:
        tmp.write_text(json.dumps(cache, indent=1))


class _PeakSampler:
    """Samples the process RSS every 5 ms in a thread; peak growth over a baseline."""

    def __init__(self):
        self.base = current_rss_mb()
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss_mb())
            time.sleep(0.005)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, current_rss_mb())

    @property
    def growth(self) -> float:
        return max(0.0, self.peak - self.base)


def benchmark(models: list[str], backends: list[str], batch: int = 1, resolution: int | None = None,
              threads: int = 0, use_cache: bool = True, progress: bool = True,
              budget_s: float = 2.0, weights: dict[str, str] | None = None,
              device: str = "cpu") -> list[BenchResult]:
    """Measure every (model, backend); cached results are reused for the same machine/settings.
    ``resolution`` is one side (square) or (H, W); the torch backends run on ``device``
    (auto, cpu, cuda, cuda:N), the others on the CPU."""
    from ..train.device import resolve_device
    for b in backends:
        check_backend(b)
    if batch < 1:
        raise ConfigError("--batch-size must be at least 1")
    dev = resolve_device(device)
    entries = [get_entry(m) for m in models]
    if threads:
        torch.set_num_threads(threads)
    threads = threads or torch.get_num_threads()
    fp = machine_fingerprint(threads)
    machine = cpu_description()
    cache = _load_cache() if use_cache else {}
    results = []
    jobs = [(e, b) for e in entries for b in backends]
    live = progress and sys.stderr.isatty()  # a bar on a terminal, one line per result in a log
    bar = tqdm(jobs, desc="bench", unit="run", disable=not live, leave=True)
    for entry, backend in bar:
        hw = _size(resolution, entry.input_config.resolution)
        res = hw[0] if hw[0] == hw[1] else f"{hw[0]}x{hw[1]}"
        w = (weights or {}).get(entry.name, "")
        where = f"|{dev}" if backend in TORCH_BACKENDS and dev.type != "cpu" else ""
        key = f"{fp}|{entry.name}|{backend}|{batch}|{res}|{w}{where}"
        bar.set_postfix_str(f"{entry.name} {backend}")
        if use_cache and key in cache:
            results.append(BenchResult.from_json({**cache[key], "cached": True}))
            _log_line(results, len(jobs), progress and not live)
            continue
        with _PeakSampler() as mem:
            if w:
                from ..weights import create_with_weights
                model = create_with_weights(entry.name, w)
            else:
                model = create_model(entry.name).eval()
            runner = make_runner(model, backend, batch, hw, threads, dev)
            lat = measure_latency(runner.run, warmup=3, min_runs=10, min_time_s=budget_s / 2,
                                  max_time_s=budget_s * 2)
        ref = entry.reference
        r = BenchResult(entry.name, entry.family, backend, runner.precision, runner.settings, batch, hw,
                        threads, lat.median_ms, lat.p10_ms, lat.p90_ms, lat.runs,
                        batch * 1000.0 / lat.median_ms, round(mem.growth, 1), count_params(model),
                        ref.macs_millions * (hw[0] * hw[1]) / ref.resolution ** 2 if ref else None,
                        ref.top1 if ref else None, machine)
        results.append(r)
        _log_line(results, len(jobs), progress and not live)
        if use_cache:
            cache[key] = r.to_json()
            _store(cache)
    return results


def _log_line(results: list[BenchResult], total: int, on: bool) -> None:
    if on:
        r = results[-1]
        print(f"bench {len(results)}/{total}: {r.model} {r.backend} {r.median_ms:.2f} ms"
              f"{' (cached)' if r.cached else ''}", file=sys.stderr, flush=True)


def _size(resolution, default: int) -> tuple[int, int]:
    if resolution is None:
        return (default, default)
    if isinstance(resolution, int):
        return (resolution, resolution)
    return (int(resolution[0]), int(resolution[-1]))


def format_results(results: list[BenchResult]) -> str:
    rows = [[r.model, r.backend, r.settings, r.precision, f"{r.batch}", f"{r.resolution[0]}", f"{r.median_ms:.2f}",
             f"{r.p10_ms:.2f}-{r.p90_ms:.2f}", f"{r.images_per_s:.1f}", f"{r.peak_mem_mb:.0f}",
             "cache" if r.cached else f"{r.runs}"] for r in results]
    head = ["model", "backend", "settings", "precision", "bs", "res", "median ms", "p10-p90", "img/s",
            "mem MB", "runs"]
    return table(rows, head, right={4, 5, 6, 7, 8, 9, 10})


def save_json(results: list[BenchResult], path: str | os.PathLike) -> None:
    payload = {"machine": cpu_description(), "versions": library_versions(),
               "results": [r.to_json() for r in results]}
    with atomic_write(path, ".json") as tmp:
        tmp.write_text(json.dumps(payload, indent=1))


def load_json(path: str | os.PathLike) -> list[BenchResult]:
    from ..errors import EdgeVisionError
    what = f"{path} is not a results file written by `edgevision bench -o FILE.json`"
    try:
        payload = json.loads(Path(path).read_text())
    except ValueError as e:
        raise EdgeVisionError(f"{what} (not JSON: {e})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        found = f"an object with keys {', '.join(list(payload)[:5]) or 'none'}" if isinstance(payload, dict) \
            else f"a JSON {type(payload).__name__}"
        raise EdgeVisionError(f"{what} (expected an object with a \"results\" list, found {found})")
    try:
        return [BenchResult.from_json(r) for r in payload["results"]]
    except (KeyError, TypeError) as e:
        raise EdgeVisionError(f"{what} (a result lacks or mistypes a field: {e})") from None
