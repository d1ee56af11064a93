"""Build, verify and time each candidate; keep what finished in a per-machine cache; pick.

Every candidate is built into its own folder of the cache (``$EDGEVISION_CACHE/optimize/RUN/``,
RUN a digest of the model's weights, resolution, images, the machine fingerprint and the timing
settings). Its ``result.json`` is written last, so a candidate with one is finished: a rerun
loads it instead of building it again, and an interrupted search resumes where it stopped.
The verdict (verified or not, and why) is taken at pick time from the stored figures, so a rerun
with another ``max_drop`` re-judges without rebuilding.

Verification: the fp32 artifacts carry the export's own parity check with PyTorch (a failed
check is an error, recorded with its message); every artifact's top-1 agreement with
onnxruntime fp32 is measured on held-out images (quantize's figures for INT8; the reference
logits for fp32/bf16) and must be >= 1 - max_drop. Timing: each candidate against onnxruntime
fp32 at each batch size, interleaved rounds, each side the best of its round medians
(bench.speed.compare_speed).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..bench.speed import compare_speed
from ..deploy.calibration import calibration_images
from ..deploy.quantize import fill_agreement, quantize
from ..deploy.targets import get_target, open_session
from ..errors import EdgeVisionError
from ..files import atomic_write
from .candidates import Candidate

_AGREEMENT = ("top1_agreement", "confident_agreement", "confident", "top5_contains", "logit_drift", "held_out")


class OptimizeError(EdgeVisionError):
    """A search that cannot give an answer (e.g. a time limit too short for any candidate)."""


@dataclass(frozen=True)
class Rule:
    """What "verified" means: top-1 agreement with fp32 >= 1 - ``max_drop`` on every held-out
    image, or (``confident_only``) on those where fp32's top-1 probability is >= 0.5 (on
    1000-class photos the others are near-ties that any rounding flips); ``speed_only`` (random
    weights): agreement is not required."""
    max_drop: float = 0.01
    speed_only: bool = False
    confident_only: bool = False

    @classmethod
    def of(cls, info: dict) -> "Rule":
        return cls(info["max_drop"], info["speed_only"], info["agreement"] == "confident")


@dataclass
class CandidateResult:
    """What became of one candidate. ``status``: "done" (built and measured), "error" (could not
    be built, verified or run: ``why``) or "skipped" (not tried: ``why``)."""
    candidate: Candidate
    status: str = "done"
    why: str = ""
    precision: str = ""  # what the runtime reports it ran
    parity: dict = field(default_factory=dict)  # fp32: export's max abs diff vs PyTorch per input
    top1_agreement: float = float("nan")  # % of held-out images with fp32's top-1
    confident_agreement: float = float("nan")  # the same where fp32's top-1 probability >= 0.5
    confident: int = 0
    top5_contains: float = float("nan")
    logit_drift: float = float("nan")
    held_out: int = 0
    speedup: dict = field(default_factory=dict)  # batch -> onnxruntime fp32 ms / candidate ms
    latency_ms: dict = field(default_factory=dict)  # batch -> (onnxruntime fp32 ms, candidate ms)
    artifact: str = ""  # path in the cache
    seconds: float = 0.0  # build + verify + time
    measured: str = ""  # UTC date of the measurement
    cached: bool = False  # loaded from the cache, not measured in this run
    notes: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.candidate.name

    def agreement(self, rule: "Rule") -> float:
        """The agreement ``rule`` judges: on every held-out image, or where fp32 is confident
        (the reference agrees with itself)."""
        if self.candidate.reference:
            return 100.0
        return self.confident_agreement if rule.confident_only else self.top1_agreement

    def verdict(self, rule: "Rule") -> str:
        """"" when verified under ``rule``, else why not (one line)."""
        if self.status != "done" or self.candidate.reference:
            return self.why
        need = 100.0 * (1.0 - rule.max_drop)
        if not rule.speed_only and not self.agreement(rule) >= need - 1e-9:
            where = (f"the {self.confident} held-out images where fp32 is confident" if rule.confident_only
                     else f"{self.held_out} held-out images")
            return f"top-1 agreement {self.agreement(rule):.1f} % < {need:.1f} % on {where}"
        return ""

    def score(self, batches) -> float:
        """Geometric mean of the speed-ups at ``batches`` (NaN when one is missing)."""
        if not all(b in self.speedup for b in batches):
            return float("nan")
        return math.exp(sum(math.log(self.speedup[b]) for b in batches) / len(batches))

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("candidate", "cached")}
        d["candidate"] = self.candidate.to_json()
        d["speedup"] = {str(b): v for b, v in self.speedup.items()}
        d["latency_ms"] = {str(b): list(v) for b, v in self.latency_ms.items()}
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}

    @classmethod
    def from_json(cls, d: dict, candidate: Candidate) -> "CandidateResult":
        kw = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d and f.name != "candidate"}
        for k in _AGREEMENT:
            if kw.get(k) is None and k in kw:
                kw[k] = float("nan")
        kw["speedup"] = {int(b): v for b, v in d.get("speedup", {}).items()}
        kw["latency_ms"] = {int(b): tuple(v) for b, v in d.get("latency_ms", {}).items()}
        return cls(candidate, **kw)


@dataclass
class Run:
    """What every candidate of one search shares."""
    model: object  # eval-mode nn.Module with its weights
    resolution: tuple[int, int]
    calib: str
    images: int
    held_out: int
    batches: tuple[int, ...]
    threads: int
    budget_s: float
    rounds: int
    folder: Path  # this run's cache folder
    _ref_logits: np.ndarray | None = None
    _x_test: np.ndarray | None = None

    def test_images(self) -> np.ndarray:
        if self._x_test is None:
            self._x_test = calibration_images(self.calib, self.model.input_config, self.resolution,
                                              self.held_out, split="test")
        return self._x_test

    def reference_logits(self, ref_path: str) -> np.ndarray:
        if self._ref_logits is None:
            self._ref_logits = _logits(open_session(ref_path, "onnxruntime", self.threads), self.test_images())
        return self._ref_logits


def _logits(sess, x: np.ndarray) -> np.ndarray:
    return np.concatenate([sess(x[i:i + 1]) for i in range(len(x))])


def cache_root() -> Path:
    return Path(os.environ.get("EDGEVISION_CACHE", Path.home() / ".cache" / "edgevision")) / "optimize"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}"


def _build(run: Run, c: Candidate, done: dict[str, CandidateResult], folder: Path) -> CandidateResult:
    """The candidate's artifact in ``folder``, verified; its agreement figures filled in."""
    from ..deploy.export import export
    model, res = run.model, run.resolution
    r = CandidateResult(c)
    target = get_target(c.runtime)
    path = folder / f"model{target.SUFFIX}"
    ref = done.get("onnxruntime fp32")
    if c.base is not None:  # the same artifact run at another precision
        base = done.get(c.base)
        if base is None or base.status != "done":
            raise OptimizeError(f"needs the {c.base} artifact, which {'failed' if base else 'was not built'}")
        path = Path(base.artifact)
    elif c.precision == "fp32":
        rep = export(model, path, fmt=target.FORMAT, resolution=res, dynamic_batch=not c.batch1_only)
        r.parity, r.precision = dict(rep.max_abs_diff), rep.precision
    else:
        recipe = dataclasses.replace(c.recipe, calib=run.calib, images=run.images, held_out=run.held_out)
        source = model if target.SOURCE == "torch" else ref.artifact
        rep = quantize(source, path, recipe, threads=run.threads, resolution=res)
        for k in _AGREEMENT:
            setattr(r, k, getattr(rep, k))
        r.precision, r.notes = rep.precision, list(rep.notes)
    r.artifact = str(path)
    if c.reference:
        r.top1_agreement, r.held_out = 100.0, run.held_out
    elif c.precision != "int8":
        sess = open_session(path, c.runtime, run.threads, c.precision)
        r.precision = sess.precision
        fill_agreement(r, run.reference_logits(ref.artifact), _logits(sess, run.test_images()))
    return r


def _time(run: Run, r: CandidateResult, ref: CandidateResult) -> None:
    """Fill ``r``'s speed-up at the batch sizes it has none for (a phone graph: batch 1 only)."""
    c = r.candidate
    if c.reference:  # 1.0 by definition, at any batch size
        r.speedup.update({b: 1.0 for b in run.batches})
        return
    missing = [b for b in run.batches if b not in r.speedup and not (c.batch1_only and b > 1)]
    if not missing:
        return
    speed, lat = compare_speed(ref.artifact, r.artifact, c.runtime, c.precision, batches=missing,
                               threads=run.threads, budget_s=run.budget_s, rounds=run.rounds, source=run.calib)
    r.speedup.update(speed)
    r.latency_ms.update(lat)


def _store(folder: Path, r: CandidateResult) -> None:
    with atomic_write(folder / "result.json", ".json") as tmp:
        tmp.write_text(json.dumps(r.to_json(), indent=1))


def _load(folder: Path, c: Candidate) -> CandidateResult | None:
    try:
        r = CandidateResult.from_json(json.loads((folder / "result.json").read_text()), c)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if r.status == "done" and not Path(r.artifact).exists():
        return None  # the artifact was removed from the cache: build it again
    r.cached = True
    return r


def _one(run: Run, c: Candidate, done: dict[str, CandidateResult]) -> CandidateResult:
    """Build, verify and time ``c`` (or load it from the cache); errors become a result, except
    for the reference, without which nothing can be compared."""
    folder = run.folder / c.key
    r = _load(folder, c)
    if r is not None and (r.status != "done" or all(b in r.speedup for b in run.batches
                                                    if not (c.batch1_only and b > 1))):
        return r
    t0 = time.monotonic()
    try:
        if r is None:
            folder.mkdir(parents=True, exist_ok=True)
            r = _build(run, c, done, folder)
            r.measured = _now()
        if r.status == "done":  # verified or not: the plot shows what each one would have given
            _time(run, r, done.get("onnxruntime fp32", r))
    except Exception as e:  # any failure of a runtime or toolkit is this candidate's verdict
        if c.reference:
            raise
        r = CandidateResult(c, status="error", why=_first_line(e), measured=_now())
    r.cached = False
    r.seconds += time.monotonic() - t0
    _store(folder, r)
    return r


def search(run: Run, candidates: list[Candidate], deadline: float | None = None,
           progress: bool = True) -> list[CandidateResult]:
    """One result per candidate, in order. A candidate not in the cache is started only before
    ``deadline`` (time.monotonic()); the others are "skipped". The first candidate is the
    reference."""
    done: dict[str, CandidateResult] = {}
    live = progress and sys.stderr.isatty()  # a bar on a terminal, one line per candidate in a log
    bar = tqdm(candidates, desc="optimize", unit="candidate", file=sys.stderr, disable=not live)
    for i, c in enumerate(bar):
        bar.set_postfix_str(c.name)
        if deadline is not None and time.monotonic() >= deadline and _load(run.folder / c.key, c) is None:
            r = done[c.name] = CandidateResult(c, status="skipped", why="not tried: the time limit was reached")
        else:
            r = done[c.name] = _one(run, c, done)
        if progress:
            bar.write(f"optimize {i + 1}/{len(candidates)}: {c.name}: {describe(r)}", file=sys.stderr)
    return list(done.values())


def describe(r: CandidateResult) -> str:
    """One line: agreement, speed-ups, time spent (or why it has none)."""
    if r.status != "done":
        return f"{r.status}: {r.why}"
    speed = ", ".join(f"bs{b} {v:.2f}x" for b, v in sorted(r.speedup.items()))
    when = f"cached {r.measured}" if r.cached else f"{r.seconds:.0f} s"
    return f"agreement {r.top1_agreement:.1f} %, {speed or 'not timed'} ({when})"


def pick(results: list[CandidateResult], batches, rule: Rule) -> CandidateResult:
    """The verified candidate with the largest geometric-mean speed-up over ``batches`` (the
    reference, 1.0 at every batch, when nothing beats it). A candidate without a speed at one of
    the batches (a phone graph at batch 16) cannot be picked: a deployment runs one artifact."""
    eligible = [r for r in results if r.status == "done" and not r.verdict(rule)
                and not math.isnan(r.score(batches))]
    return max(eligible, key=lambda r: (r.score(batches), r.candidate.reference))


def why_lost(r: CandidateResult, winner: CandidateResult, batches, rule: Rule) -> str:
    """Why ``r`` is not the pick, in one line ("" for the winner)."""
    if r is winner:
        return ""
    verdict = r.verdict(rule)
    if verdict:
        return verdict
    missing = [b for b in batches if b not in r.speedup]
    if missing:
        return f"not timed at batch {', '.join(map(str, missing))} (its graph runs batch 1 only)"
    mine = ", ".join(f"bs{b} {r.speedup[b]:.2f}x" for b in batches)
    theirs = ", ".join(f"{winner.speedup[b]:.2f}x" for b in batches)
    return f"slower: {mine} vs {theirs} for {winner.name}"
