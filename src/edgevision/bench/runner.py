"""`edgevision bench`: measure models x backends on this machine, with a per-machine cache."""
from __future__ import annotations

import json
import os
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
from . import cache as _cache
from .cache import library_versions
from .latency import cpu_description, measure_latency, relative_spread


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
    measured_at: str = ""  # UTC date and time of the timing (a cached figure keeps its own)

    @property
    def spread(self) -> float:
        """(p90 - p10) / median: relative spread of the timings."""
        return relative_spread(self.median_ms, self.p10_ms, self.p90_ms)

    @property
    def steady(self) -> bool:
        """Steady enough to be cached (spread at most bench.cache.MAX_SPREAD)."""
        return _cache.steady(self.median_ms, self.p10_ms, self.p90_ms, self.runs)

    @property
    def when(self) -> str:
        """When the figure was measured, as reports print it: "DATE" for a fresh measurement,
        "cached, measured DATE" for one reused from the cache."""
        date = self.measured_at or "date unknown"
        return f"cached, measured {date}" if self.cached else date

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "BenchResult":
        return cls(**{**d, "resolution": tuple(d["resolution"])})


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
    """Measure every (model, backend). With ``use_cache``, a steady figure measured here with the
    same settings and at least ``budget_s`` is reused (marked cached, with its date) and a steady
    fresh one is stored; see bench.cache. ``resolution`` is one side (square) or (H, W); the
    torch backends run on ``device`` (auto, cpu, cuda, cuda:N), the others on the CPU."""
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
    cache = _cache.load() if use_cache else {}
    results = []
    jobs = [(e, b) for e in entries for b in backends]
    live = progress and sys.stderr.isatty()  # a bar on a terminal, one line per result in a log
    bar = tqdm(jobs, desc="bench", unit="run", disable=not live, leave=True)
    for entry, backend in bar:
        hw = _size(resolution, entry.input_config.resolution)
        w = (weights or {}).get(entry.name, "")
        key = _cache.settings_key(threads=threads, model=entry.name, backend=backend, batch=batch,
                                  resolution=hw, weights=w,
                                  device=str(dev) if backend in TORCH_BACKENDS else "cpu")
        bar.set_postfix_str(f"{entry.name} {backend}")
        hit = _cache.lookup(cache, key, budget_s) if use_cache else None
        if hit is not None:
            results.append(BenchResult.from_json({**hit, "cached": True}))
        else:
            results.append(_measure(entry, backend, batch, hw, threads, dev, w, budget_s))
            if use_cache:
                _cache.put(cache, key, budget_s, results[-1].to_json())
        _log_line(results, len(jobs), progress and not live)
    return results


def _measure(entry, backend: str, batch: int, hw: tuple[int, int], threads: int, dev, w: str,
             budget_s: float) -> BenchResult:
    """Build ``entry``'s model (with weights ``w`` if given) for ``backend`` and time it: up to
    bench.cache.ATTEMPTS measurements until one is steady, keeping the one with the least spread."""
    with _PeakSampler() as mem:
        if w:
            from ..weights import create_with_weights
            model = create_with_weights(entry.name, w)
        else:
            model = create_model(entry.name).eval()
        runner = make_runner(model, backend, batch, hw, threads, dev)
        lat = None
        for _ in range(_cache.ATTEMPTS):  # a noisy attempt (a burst of other work) is tried again
            attempt = measure_latency(runner.run, warmup=_cache.WARMUP, min_runs=_cache.MIN_RUNS,
                                      min_time_s=budget_s / 2, max_time_s=budget_s * 2)
            lat = attempt if lat is None or attempt.spread < lat.spread else lat
            if _cache.steady(lat.median_ms, lat.p10_ms, lat.p90_ms, lat.runs):
                break
    ref = entry.reference
    return BenchResult(entry.name, entry.family, backend, runner.precision, runner.settings, batch, hw,
                       threads, lat.median_ms, lat.p10_ms, lat.p90_ms, lat.runs,
                       batch * 1000.0 / lat.median_ms, round(mem.growth, 1), count_params(model),
                       ref.macs_millions * (hw[0] * hw[1]) / ref.resolution ** 2 if ref else None,
                       ref.top1 if ref else None, cpu_description(), measured_at=_cache.now())


def _log_line(results: list[BenchResult], total: int, on: bool) -> None:
    if on:
        r = results[-1]
        note = f" ({r.when})" if r.cached else "" if r.steady else f" (noisy: spread {r.spread:.0%}, not cached)"
        print(f"bench {len(results)}/{total}: {r.model} {r.backend} {r.median_ms:.2f} ms{note}",
              file=sys.stderr, flush=True)


def _size(resolution, default: int) -> tuple[int, int]:
    if resolution is None:
        return (default, default)
    if isinstance(resolution, int):
        return (resolution, resolution)
    return (int(resolution[0]), int(resolution[-1]))


def spread_text(r: BenchResult) -> str:
    """The spread as reports print it: "12%", or "48% noisy" above the cache's threshold."""
    return f"{r.spread:.0%}" + ("" if r.steady else " noisy")


def trust_note(results: list[BenchResult]) -> str:
    """One sentence on how to read the spread and the cached marks of ``results``."""
    note = (f"spread = (p90 - p10) / median; only figures with a spread of at most "
            f"{_cache.MAX_SPREAD:.0%} over at least {_cache.MIN_RUNS} runs are cached")
    if any(not r.steady for r in results):
        note += ("; noisy figures were measured while the machine was busy: rerun when it is quieter "
                 "or with a longer budget")
    if any(r.cached for r in results):
        note += "; cached figures show when they were measured (--no-cache measures again)"
    return note + "."


def format_results(results: list[BenchResult]) -> str:
    rows = [[r.model, r.backend, r.settings, r.precision, f"{r.batch}", f"{r.resolution[0]}", f"{r.median_ms:.2f}",
             f"{r.p10_ms:.2f}-{r.p90_ms:.2f}", spread_text(r), f"{r.images_per_s:.1f}", f"{r.peak_mem_mb:.0f}",
             f"{r.runs}", r.when] for r in results]
    head = ["model", "backend", "settings", "precision", "bs", "res", "median ms", "p10-p90", "spread", "img/s",
            "mem MB", "runs", "measured"]
    return table(rows, head, right={4, 5, 6, 7, 8, 9, 10, 11}) + "\n" + trust_note(results)


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
