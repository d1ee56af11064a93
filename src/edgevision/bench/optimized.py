"""What `edgevision optimize` deployed, read from its OUTDIR/results.json: the verified winner's
artifact and its latency on the machine that measured it.

This module reads the file format only (optimize sits above bench in the import tiers), so
`pick --optimized DIR...` can answer a latency budget with what will actually be deployed."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError


@dataclass(frozen=True)
class Deployed:
    """One optimize OUTDIR: its model, the winning artifact and how it was measured.
    ``latency_ms``: batch -> the winner's best-of-rounds median; ``speedup``: batch -> onnxruntime
    fp32 ms / the winner's ms (1.0 when nothing beat onnxruntime fp32)."""
    folder: Path
    model: str
    candidate: str  # e.g. "openvino int8 quantize SE"
    runtime: str
    precision: str
    artifact: Path
    resolution: tuple[int, int]
    latency_ms: dict
    speedup: dict
    agreement: float  # top-1 agreement with fp32 on the held-out images, %
    held_out: int
    speed_only: bool  # random weights: agreement was not required
    weights: str  # "published weights TAG", a weight file, or random
    machine: str
    measured: str  # when the search ran (UTC)

    @property
    def published(self) -> bool:
        """Whether the artifact carries the model's published weights (its published top-1 applies)."""
        return self.weights.startswith("published weights")

    def describe(self, batch: int) -> str:
        """"openvino int8 quantize SE, 2.10 ms at batch 1 (2.31x onnxruntime fp32), 224 px, ..."."""
        verified = ("speed only: random weights" if self.speed_only else
                    f"verified {self.agreement:.1f} % top-1 agreement on {self.held_out} held-out images")
        return (f"{self.candidate}, {self.latency_ms[batch]:.2f} ms at batch {batch} "
                f"({self.speedup[batch]:.2f}x onnxruntime fp32), {self.resolution[0]} px, {verified}, "
                f"optimize run {self.measured}")


def _winner_latency(payload: dict, winner: dict) -> dict:
    """batch -> the winner's ms; the reference has none of its own: its fastest median of the run
    (each other candidate was timed side by side with it)."""
    out = {}
    for b in payload["batches"]:
        if winner["candidate"]["name"] == "onnxruntime fp32" or str(b) not in winner["latency_ms"]:
            refs = [c["latency_ms"][str(b)][0] for c in payload["candidates"] if str(b) in c.get("latency_ms", {})]
            if refs:
                out[int(b)] = min(refs)
        else:
            out[int(b)] = winner["latency_ms"][str(b)][1]
    return out


def read_optimized(folder) -> Deployed:
    """The winner of the optimize run whose OUTDIR is ``folder``; a folder optimize did not write
    is a ConfigError saying what to run."""
    folder = Path(folder)
    path = folder / "results.json"
    try:
        payload = json.loads(path.read_text())
        winner = next(c for c in payload["candidates"] if c["candidate"]["name"] == payload["winner"])
        latency = _winner_latency(payload, winner)
        return Deployed(folder, payload["model"], payload["winner"], payload["runtime"], payload["precision"],
                        folder / payload["artifact"], tuple(payload["resolution"]), latency,
                        {int(b): v for b, v in winner["speedup"].items()},
                        100.0 if winner["top1_agreement"] is None else winner["top1_agreement"],
                        payload["held_out"], payload["speed_only"], payload["weights"], payload["machine"], payload["date"])
    except FileNotFoundError:
        raise ConfigError(f"{folder} has no results.json: --optimized takes folders written by "
                          f"`edgevision optimize MODEL -o DIR`") from None
    except (OSError, ValueError, KeyError, TypeError, StopIteration) as e:
        raise ConfigError(f"{path} is not a results.json written by `edgevision optimize` ({type(e).__name__}: "
                          f"{e}); rerun optimize into that folder") from None


def _cpu(machine: str) -> str:
    """The CPU part of bench.latency.cpu_description (model, cores, ISA), without the torch
    threads of the process that wrote it."""
    return machine.split(", torch ")[0]


def fits(d: Deployed, budget_ms: float, batch: int, machine: str) -> str:
    """"" when ``d`` answers the budget on this machine, else why not (one line)."""
    if _cpu(d.machine) != _cpu(machine):
        return f"measured on another machine ({d.machine}): rerun optimize here"
    if batch not in d.latency_ms or math.isnan(d.latency_ms[batch]):
        return f"not timed at batch {batch} (optimize --batch {', '.join(map(str, sorted(d.latency_ms)))})"
    if not (d.latency_ms[batch] <= budget_ms):
        return f"{d.latency_ms[batch]:.2f} ms at batch {batch}: over the budget"
    return ""
