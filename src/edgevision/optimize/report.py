"""What `optimize` leaves in OUTDIR: the winning artifact with its metadata, report.md,
results.json and plot.png (speed-up vs agreement per candidate).

Everything is rendered in a temporary folder first and installed file by file only once all of
it exists (the artifact first, the report last), each through edgevision.files: an error while
rendering leaves OUTDIR as it was, and a reader never sees a partial file."""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from ..deploy.export import metadata_path
from ..deploy.targets import get_target
from ..files import atomic_write, install_file
from .search import CandidateResult, Rule, why_lost


def _pct(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"


def _speed(r: CandidateResult, b: int, results: list[CandidateResult]) -> str:
    """Speed-up and the candidate's latency; for the reference, its fastest median of the run."""
    if b not in r.speedup:
        return "-"
    ms = r.latency_ms[b][1] if b in r.latency_ms else None
    if r.candidate.reference:
        ms = min((o.latency_ms[b][0] for o in results if b in o.latency_ms), default=None)
    return f"{r.speedup[b]:.2f}x" + (f" ({ms:.2f} ms)" if ms is not None else "")


def headline(info: dict, winner: CandidateResult) -> str:
    """The answer in one sentence, saying plainly when nothing beats onnxruntime fp32."""
    speed = ", ".join(f"batch {b} {winner.speedup[b]:.2f}x" for b in info["batches"])
    if winner.candidate.reference:
        return ("Nothing verified beats onnxruntime fp32 on this machine: the pick is onnxruntime fp32 "
                f"itself ({info['artifact']}).")
    agree = f"top-1 agreement with fp32 {winner.top1_agreement:.1f} % on {winner.held_out} held-out images"
    if Rule.of(info).confident_only:
        agree = (f"top-1 agreement with fp32 {winner.confident_agreement:.1f} % on the {winner.confident} "
                 f"held-out images where fp32 is confident ({winner.top1_agreement:.1f} % on all "
                 f"{winner.held_out})")
    if info["speed_only"]:
        agree += " (speed only: random weights, so agreement was not required)"
    return (f"Pick: {winner.name} ({winner.precision}), {speed} against onnxruntime fp32, {agree}: "
            f"{info['artifact']}.")


def markdown(info: dict, results: list[CandidateResult], winner: CandidateResult) -> str:
    batches, max_drop, speed_only, rule = info["batches"], info["max_drop"], info["speed_only"], Rule.of(info)
    lines = [f"# edgevision optimize {info['model']}", "", headline(info, winner), ""]
    if speed_only:
        lines += ["**Speed only: random weights.** Their logits are nearly tied, so agreement with fp32 "
                  "says nothing about a trained model; candidates were verified by the export's parity "
                  "check only, and agreement is shown but not required. Run with `--weights` or "
                  "`--pretrained` for a verified pick.", ""]
    lines += [f"- machine: {info['machine']} ({info['versions']})",
              f"- weights: {info['weights']}; resolution {info['resolution'][0]}x{info['resolution'][1]}",
              f"- images: `{info['calib']}`, {info['images']} for calibration, {info['held_out']} held out "
              f"(agreement); required agreement >= {100 * (1 - max_drop):.1f} % (max drop {max_drop:g}) "
              + ("where fp32 is confident (top-1 probability >= 0.5)" if rule.confident_only else
                 "on every held-out image"),
              f"- speed: onnxruntime fp32 / candidate, each side the best of {info['rounds']} medians taken "
              f"in turn, {info['threads'] or 'default'} threads",
              f"- run {info['date']}; the \"measured\" column dates figures taken from the per-machine "
              f"cache (a previous run on this machine with the same weights, images and settings)", ""]
    head = (["candidate", "verified", "agreement %", "confident %"] + [f"bs{b}" for b in batches]
            + ["measured", "why not picked"])
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        ok = "skipped" if r.status == "skipped" else ("yes" if not r.verdict(rule) else "no")
        name = f"**{r.name}**" if r is winner else r.name
        when = f"cached, {r.measured}" if r.cached else ("-" if r.status == "skipped" else "this run")
        agree = [_pct(r.agreement(Rule())), _pct(r.agreement(Rule(confident_only=True)))]
        lines.append("| " + " | ".join([name, ok] + agree
                                       + [_speed(r, b, results) for b in batches]
                                       + [when, why_lost(r, winner, batches, rule) or "picked"]) + " |")
    lines += ["", "![speed-up vs agreement](plot.png)", ""]
    if info["notes"]:
        lines += ["Not tried:", ""] + [f"- {n}" for n in info["notes"]] + [""]
    lines += [f"Run it: `edgevision predict IMAGE --weights {info['artifact']}"
              + (f" --precision {winner.candidate.precision}`" if "bf16" in winner.candidate.precision
                 else "`"), ""]
    return "\n".join(lines)


def _label_sides(points: list[tuple[float, float]]) -> list[int]:
    """+1 (label right of the point) or -1 (left) per point: a point close to the one below it
    (in both axes, relative to the spread of the points) takes the other side, so stacked labels
    do not overprint each other."""
    if not points:
        return []
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    dx, dy = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    sides = [1] * len(points)
    order = sorted(range(len(points)), key=lambda i: ys[i])
    for prev, i in zip(order, order[1:]):
        if abs(xs[i] - xs[prev]) < 0.05 * dx and abs(ys[i] - ys[prev]) < 0.06 * dy:
            sides[i] = -sides[prev]
    return sides


def plot(path: Path, results: list[CandidateResult], winner: CandidateResult, info: dict) -> None:
    """Speed-up over onnxruntime fp32 vs top-1 agreement, one panel per batch size; every point
    labelled, the legend below the panels (never over a label), plain numbers on both axes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    batches, rule = info["batches"], Rule.of(info)
    need = 100 * (1 - info["max_drop"])
    fig, axes = plt.subplots(1, len(batches), figsize=(5.5 * len(batches), 4.6), squeeze=False)
    for ax, b in zip(axes[0], batches):
        pts = [r for r in results if b in r.speedup and not math.isnan(r.agreement(rule))]
        for r, side in zip(pts, _label_sides([(r.agreement(rule), r.speedup[b]) for r in pts])):
            ok = not r.verdict(rule)
            style = dict(marker="*", s=160, c="tab:red") if r is winner else (
                dict(marker="o", s=40, c="tab:green") if ok else dict(marker="x", s=40, c="tab:gray"))
            ax.scatter(r.agreement(rule), r.speedup[b], zorder=3, **style)
            ax.annotate(r.name, (r.agreement(rule), r.speedup[b]), xytext=(6 * side, 3),
                        textcoords="offset points", fontsize=7, ha="left" if side > 0 else "right", va="center")
        ax.axhline(1.0, color="k", lw=0.6, ls=":")
        ax.axvline(need, color="tab:red", lw=0.6, ls="--")
        ax.set_title(f"{info['model']}, batch {b}", fontsize=9)
        where = ", where fp32 is confident" if rule.confident_only else ""
        ax.set_xlabel(f"top-1 agreement with fp32 (%){where}")
        ax.set_ylabel("speed-up over onnxruntime fp32 (x)")
        ax.ticklabel_format(style="plain", useOffset=False)
        ax.margins(x=0.25, y=0.15)
    handles = [plt.Line2D([], [], marker=m, color=c, ls="", label=t) for m, c, t in
               (("*", "tab:red", "pick"), ("o", "tab:green", "verified"),
                ("x", "tab:gray", "failed verification"))]
    required = "not applied: random weights" if info["speed_only"] else f"{need:.1f} %"
    handles += [plt.Line2D([], [], color="tab:red", ls="--", label=f"required agreement ({required})"),
                plt.Line2D([], [], color="k", ls=":", label="onnxruntime fp32 (1x)")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    with atomic_write(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_outputs(out: Path, info: dict, results: list[CandidateResult], winner: CandidateResult) -> dict:
    """Render everything in a temporary folder, then install it into ``out``; returns the paths."""
    out = Path(out)
    target = get_target(winner.candidate.runtime)
    art = out / info["artifact"]
    payload = dict(info, winner=winner.name, runtime=winner.candidate.runtime,
                   precision=winner.candidate.precision,
                   candidates=[dict(r.to_json(), verified=not r.verdict(Rule.of(info)),
                                    why_not_picked=why_lost(r, winner, info["batches"], Rule.of(info)),
                                    cached=r.cached)
                               for r in results])
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".optimize-", dir=out.parent) as d:
        stage = Path(d)
        plot(stage / "plot.png", results, winner, info)
        (stage / "report.md").write_text(markdown(info, results, winner))
        (stage / "results.json").write_text(json.dumps(payload, indent=1))
        out.mkdir(parents=True, exist_ok=True)
        target.install(Path(winner.artifact), art)
        side = metadata_path(winner.artifact)
        if side.is_file():  # formats other than ONNX/IR keep their metadata beside the artifact
            install_file(side, metadata_path(art))
        for name in ("plot.png", "results.json", "report.md"):
            install_file(stage / name, out / name)
    return {"artifact": art, "report": out / "report.md", "json": out / "results.json", "plot": out / "plot.png"}
