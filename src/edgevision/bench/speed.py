"""Speed of a reduced-precision artifact against onnxruntime fp32 on the same export.

The one timing rule of the deploy path: per batch size, the median latency of the fp32 ONNX file
in onnxruntime and of the quantized artifact in its runtime, on the first held-out image repeated
to the batch (a fixed-batch export is timed at batch 1 only). With ``rounds`` > 1 each side keeps
its best median of ``rounds`` taken in turn, so that a slow spell of a shared machine hits both
sides (interference only ever adds time).
"""
from __future__ import annotations

import os

import numpy as np

from ..deploy.calibration import calibration_images
from ..deploy.export import read_metadata
from ..deploy.targets import open_session
from ..errors import ConfigError
from .latency import measure_latency


def median_ms(fn, budget_s: float = 1.5, min_time_s: float | None = None) -> float:
    """Median latency of ``fn()`` in ms: 3 warm-up calls, then at least 10 runs and
    ``min_time_s`` (default half the budget), at most ``budget_s`` seconds."""
    return measure_latency(fn, warmup=3, min_runs=10, min_time_s=budget_s / 2 if min_time_s is None
                           else min_time_s, max_time_s=budget_s).median_ms


def compare_speed(fp32_path: str | os.PathLike, quantized_path: str | os.PathLike,
                  runtime: str = "onnxruntime", precision: str = "int8", batches=(1, 16), threads: int = 0,
                  budget_s: float = 1.5, min_time_s: float | None = None, rounds: int = 1,
                  source: str = "embedded") -> tuple[dict, dict]:
    """(batch -> fp32 ms / quantized ms, batch -> (fp32 ms, quantized ms)) for ``quantized_path``
    run in ``runtime`` at ``precision`` against ``fp32_path`` (an edgevision ONNX export) in
    onnxruntime fp32. ``source``: where the held-out image comes from ('embedded' or a folder)."""
    meta = read_metadata(fp32_path)
    if not meta:
        raise ConfigError(f"{fp32_path} was not exported by edgevision (no preprocessing metadata); "
                          f"export it with `edgevision export`")
    if rounds < 1:
        raise ConfigError(f"rounds must be at least 1, got {rounds}")
    # a batch above 1 is timed only when both graphs take it (phone graphs are batch-1)
    dynamic = meta["dynamic_batch"] and read_metadata(quantized_path).get("dynamic_batch", True)
    x = calibration_images(source, meta["input_config"], meta["resolution"], 1, split="test")
    fp32 = open_session(fp32_path, "onnxruntime", threads)
    quant = open_session(quantized_path, runtime, threads, precision)
    speedup, latency = {}, {}
    for b in batches:
        if b > 1 and not dynamic:
            continue
        xb = np.repeat(x[:1], b, axis=0)
        t_fp = t_q = float("inf")
        for _ in range(rounds):
            t_fp = min(t_fp, median_ms(lambda: fp32(xb), budget_s, min_time_s))
            t_q = min(t_q, median_ms(lambda: quant(xb), budget_s, min_time_s))
        latency[b] = (t_fp, t_q)
        speedup[b] = t_fp / t_q
    return speedup, latency


def add_speed(report, fp32_path: str | os.PathLike, batches=(1, 16), threads: int = 0,
              budget_s: float = 1.5, source: str = "embedded"):
    """Fill a QuantReport's ``speedup`` and ``latency_ms`` (its INT8 artifact against
    ``fp32_path``, the export it was quantized from); returns the report."""
    report.speedup, report.latency_ms = compare_speed(fp32_path, report.path, report.runtime, "int8",
                                                      batches, threads, budget_s, source=source)
    return report
