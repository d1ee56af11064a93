"""Latency measurement: warm-up, then repeated timing until the median is stable."""
from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class LatencyResult:
    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int

    @property
    def spread(self) -> float:
        return relative_spread(self.median_ms, self.p10_ms, self.p90_ms)


def relative_spread(median_ms: float, p10_ms: float, p90_ms: float) -> float:
    """(p90 - p10) / median: how widely the timings scatter around their median (0 when the
    median is 0)."""
    return (p90_ms - p10_ms) / median_ms if median_ms else 0.0


def measure_latency(fn: Callable[[], object], warmup: int = 5, min_runs: int = 20,
                    max_runs: int = 200, min_time_s: float = 1.0, max_time_s: float = 20.0) -> LatencyResult:
    """Time ``fn()`` repeatedly: ``warmup`` untimed calls, then at least ``min_runs`` calls and
    ``min_time_s`` seconds, continuing (up to ``max_runs``/``max_time_s``) while the median of the
    second half differs from the whole by more than 2 %."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        elapsed = time.perf_counter() - start
        if len(times) >= max_runs or elapsed >= max_time_s:
            break
        if len(times) >= min_runs and elapsed >= min_time_s:
            half = statistics.median(times[len(times) // 2:])
            if abs(half - statistics.median(times)) <= 0.02 * statistics.median(times):
                break
    q = statistics.quantiles(times, n=10, method="inclusive") if len(times) >= 2 else [times[0]] * 9
    return LatencyResult(statistics.median(times), q[0], q[-1], len(times))


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_description() -> str:
    """CPU model, cores, ISA features relevant to inference speed, torch threads and version."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = cpu_flags()
    feats = [f for f, key in (("AVX2", "avx2"), ("AVX-512", "avx512f"), ("VNNI", "avx512_vnni"),
                              ("AVX-VNNI", "avx_vnni"), ("bf16", "avx512_bf16"), ("AMX", "amx_tile"))
             if key in flags]
    return (f"{name}, {os.cpu_count()} cores, ISA: {'/'.join(feats) or 'baseline'}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
