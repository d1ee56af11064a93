"""`edgevision pick`: the most accurate model (published top-1) that fits a latency budget, measured
on this machine (or reused from the cache)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import EdgeVisionError
from ..registry import get_entry, list_models
from .latency import cpu_description
from .optimized import Deployed, fits, read_optimized
from .runner import BenchResult, benchmark, spread_text


class NoModelFits(EdgeVisionError):
    pass


def latency_text(r: BenchResult) -> str:
    """"3.91 ms (p10-p90 3.80-4.20, spread 10%, cached, measured 2026-12-03 15:40 UTC)"."""
    return (f"{r.median_ms:.2f} ms (p10-p90 {r.p10_ms:.2f}-{r.p90_ms:.2f}, spread {spread_text(r)}"
            f"{', ' + r.when if r.cached else ''})")


@dataclass
class Pick:
    choice: BenchResult | None
    table: list[tuple[str, str]]  # (model, status) in the order decided
    measured: list[BenchResult] = field(default_factory=list)  # every candidate timed (or cached)


def pick(budget_ms: float, backend: str = "torch", batch: int = 1, family: str | None = None,
         max_params: float | None = None, threads: int = 0, progress: bool = True,
         budget_s: float = 1.0, use_cache: bool = True) -> Pick:
    """Measure candidates from the fewest MACs up; models whose latency, predicted from the
    measured ms-per-MAC so far, exceeds 3x the budget are skipped (and say so)."""
    if budget_ms <= 0:
        raise EdgeVisionError("--budget-ms must be positive")
    names = [n for n in list_models(family=family) if get_entry(n).reference and get_entry(n).reference.top1]
    if max_params is not None:
        names = [n for n in names if get_entry(n).reference.params <= max_params * 1e6]
    if not names:
        raise EdgeVisionError("no model with a published top-1 matches the filters")
    names.sort(key=lambda n: get_entry(n).reference.macs_millions)
    measured: list[BenchResult] = []
    table = []
    rate = None  # ms per MMAC, the worst seen so far (conservative)
    for n in names:
        macs = get_entry(n).reference.macs_millions
        if rate is not None and macs * rate > 3 * budget_ms:
            table.append((n, f"skipped: predicted {macs * rate:.1f} ms from its MACs"))
            continue
        r = benchmark([n], [backend], batch, threads=threads, progress=progress, budget_s=budget_s,
                      use_cache=use_cache)[0]
        measured.append(r)
        ratio = r.median_ms / macs  # the most efficient model seen predicts the lowest latency,
        rate = ratio if rate is None else min(rate, ratio)  # so skipping stays conservative
        table.append((n, latency_text(r)))
    fitting = [r for r in measured if r.median_ms <= budget_ms]
    if not fitting:
        fastest = min(measured, key=lambda r: r.median_ms)
        raise NoModelFits(f"no model runs within {budget_ms:g} ms with {backend} at batch {batch}; the "
                          f"fastest is {fastest.model} at {fastest.median_ms:.2f} ms")
    best = max(fitting, key=lambda r: (r.top1, -r.median_ms))
    return Pick(best, table, measured)


@dataclass
class OptimizedPick:
    choice: Deployed
    table: list[tuple[str, str]]  # (optimize folder, status)


def _accuracy(d: Deployed) -> float:
    """The published top-1 when the artifact carries the published weights, else -1 (unknown)."""
    ref = get_entry(d.model).reference if d.published else None
    return ref.top1 if ref is not None and ref.top1 is not None else -1.0


def pick_optimized(budget_ms: float, folders, batch: int = 1) -> OptimizedPick:
    """The budget answered with what will be deployed: among the winners of `edgevision optimize`
    runs (their OUTDIRs), those measured on this machine within ``budget_ms`` at ``batch``; the
    most accurate (published top-1, when the artifact has the published weights), then the
    fastest."""
    if budget_ms <= 0:
        raise EdgeVisionError("--budget-ms must be positive")
    machine = cpu_description()
    deployed = [read_optimized(f) for f in folders]
    if not deployed:
        raise EdgeVisionError("--optimized needs at least one folder written by `edgevision optimize`")
    table, fitting = [], []
    for d in deployed:
        why = fits(d, budget_ms, batch, machine)
        table.append((f"{d.model} ({d.folder})", why or d.describe(batch)))
        if not why:
            fitting.append(d)
    if not fitting:
        raise NoModelFits(f"no optimized artifact runs within {budget_ms:g} ms at batch {batch} on this machine: "
                          + "; ".join(f"{m}: {s}" for m, s in table))
    return OptimizedPick(max(fitting, key=lambda d: (_accuracy(d), -d.latency_ms[batch])), table)
