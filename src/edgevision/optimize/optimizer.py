"""``optimize()``: the fastest verified artifact of one model for this machine."""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..files import writable
from .candidates import enumerate_candidates, select_runtimes
from .inputs import check_images, load_model, weights_digest
from .report import headline, write_outputs
from .search import CandidateResult, OptimizeError, Rule, Run, cache_root, describe, pick, search


@dataclass
class OptimizeResult:
    model: str
    winner: CandidateResult
    results: list[CandidateResult]
    paths: dict  # artifact, report, json, plot
    info: dict = field(default_factory=dict)

    def summary(self) -> str:
        rows = "\n".join(f"  {r.name:32s} {describe(r)}" for r in self.results)
        return (f"{headline(self.info, self.winner)}\n{rows}\nreport: {self.paths['report']}  "
                f"plot: {self.paths['plot']}  results: {self.paths['json']}")


def _check_args(max_drop, batches, time_limit_min, out) -> tuple[int, ...]:
    if not isinstance(max_drop, (int, float)) or not 0 <= max_drop < 1:
        raise ConfigError(f"--max-drop is a fraction of top-1 agreement in [0, 1), e.g. 0.01; got {max_drop!r}")
    if isinstance(batches, int):
        batches = (batches,)
    batches = tuple(dict.fromkeys(int(b) for b in batches))
    if not batches or min(batches) < 1:
        raise ConfigError(f"--batch takes batch sizes of at least 1, e.g. 1,16; got {batches!r}")
    if time_limit_min is not None and not time_limit_min > 0:
        raise ConfigError(f"--time-limit is in minutes and must be positive; got {time_limit_min!r}")
    if Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"-o {os.fspath(out)!r} is a file; optimize writes a folder (artifact, report)")
    if not writable(Path(out) / "report.md"):
        raise ConfigError(f"cannot write into {os.fspath(out)!r}: choose another -o/--output")
    return batches


def _run_folder(name: str, model, resolution, calib: str, images: int, held_out: int, threads: int,
                budget_s: float, rounds: int) -> Path:
    """This search's cache folder: one per weights, images, machine and timing settings."""
    from ..bench.cache import machine_fingerprint
    calib_id = calib if calib in ("embedded", "photos") else os.path.abspath(calib)
    key = json.dumps([name, weights_digest(model), list(resolution), calib_id, images, held_out,
                      machine_fingerprint(threads), budget_s, rounds], sort_keys=True)
    return cache_root() / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:16]}"


def optimize(model_name: str, weights=None, calib: str = "embedded", max_drop: float = 0.01,
             runtimes=None, batches=(1, 16), time_limit_min: float | None = None,
             out: str | os.PathLike = "optimized", resolution=None, images: int = 64, held_out: int = 200,
             threads: int = 0, budget_s: float = 1.0, rounds: int = 3, agreement: str = "all",
             progress: bool = True) -> OptimizeResult:
    """Search runtimes x precisions x INT8 recipes for ``model_name`` on this machine, verify
    each candidate, time the candidates against onnxruntime fp32 at each of ``batches`` and write
    the fastest verified one to ``out`` with report.md, results.json and plot.png.

    ``weights``: None (random weights: a speed-only run, agreement not required), "pretrained",
    "pretrained:TAG" or a weight file. ``calib``: "embedded", "photos" or a folder of images the
    model's domain (calibration and held-out images are disjoint). ``max_drop``: a reduced-
    precision candidate must agree with fp32's top-1 on >= 1 - max_drop of the held-out images.
    ``runtimes``: None (every installed one) or names of onnxruntime, openvino, executorch,
    litert. ``time_limit_min``: no candidate is started after this many minutes (finished ones
    stay cached, so a rerun resumes). ``resolution``: H or (H, W), default the model's.
    ``budget_s``/``rounds``: seconds per median and rounds per side when timing."""
    t0 = time.monotonic()
    batches = _check_args(max_drop, batches, time_limit_min, out)
    if agreement not in ("all", "confident"):
        raise ConfigError(f"--agreement is all or confident; got {agreement!r}")
    chosen, notes = select_runtimes(runtimes)
    model, res, wdesc, trained = load_model(model_name, weights, resolution)
    check_images(os.fspath(calib), model.input_config, res)
    cands, more = enumerate_candidates(model.family, chosen, batches)
    if len(cands) == 1:
        why = "; ".join(notes + more or ["no candidate"])
        raise OptimizeError(f"nothing to compare with onnxruntime fp32: {why}. Add runtimes (--runtimes) or "
                            f"batch sizes (--batch)")
    folder = _run_folder(model_name, model, res, os.fspath(calib), images, held_out, threads, budget_s, rounds)
    run = Run(model, res, os.fspath(calib), images, held_out, batches, threads, budget_s, rounds, folder)
    deadline = None if time_limit_min is None else t0 + 60 * time_limit_min
    results = search(run, cands, deadline, progress)
    _check_finished(results, time_limit_min)
    info = _info(model_name, wdesc, trained, res, os.fspath(calib), images, held_out, max_drop, batches,
                 threads, rounds, notes + more)
    info["agreement"] = agreement
    winner = pick(results, batches, Rule.of(info))
    info["artifact"] = model_name + Path(winner.artifact).suffix
    paths = write_outputs(Path(out), info, results, winner)
    return OptimizeResult(model_name, winner, results, paths, info)


def _check_finished(results: list[CandidateResult], time_limit_min) -> None:
    """A time limit that let no candidate besides the reference finish is an error naming what
    was tried; nothing is written."""
    finished = [r for r in results if r.status != "skipped"]
    if results[0].status == "done" and len(finished) > 1:
        return
    tried = "; ".join(f"{r.name} ({describe(r)})" for r in finished) or "nothing"
    raise OptimizeError(f"--time-limit {time_limit_min:g} min is too short for any candidate: tried {tried}; "
                        f"{len(results) - len(finished)} not tried. Finished candidates are cached: rerun "
                        f"with a longer --time-limit to resume")


def _info(model_name, wdesc, trained, res, calib, images, held_out, max_drop, batches, threads, rounds,
          notes) -> dict:
    from datetime import datetime, timezone

    from ..bench.latency import cpu_description
    from ..bench.cache import library_versions
    return {"model": model_name, "weights": wdesc, "speed_only": not trained, "resolution": list(res),
            "calib": calib, "images": images, "held_out": held_out, "max_drop": max_drop,
            "batches": list(batches), "threads": threads, "rounds": rounds, "notes": notes,
            "machine": cpu_description(),
            "versions": ", ".join(f"{k} {v}" for k, v in library_versions().items() if k != "torch"),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


__all__ = ["optimize", "OptimizeResult", "OptimizeError"]
