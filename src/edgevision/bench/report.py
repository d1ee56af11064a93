"""Markdown reports and the Pareto plot (latency vs published top-1): of benchmark results, and\nof the demo pipeline's run."""
from __future__ import annotations

import math
from pathlib import Path

from ..files import atomic_write
from .runner import BenchResult, spread_text, trust_note


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated (lower latency AND higher accuracy)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plain_log_ticks(axis, lo: float, hi: float) -> list[float]:
    """Put plain-number ticks ("0.5", "3", "10") on a log-scale matplotlib ``axis`` spanning
    [lo, hi]: 1-2-5 steps, denser when the span is too short for four of them; no minor labels.
    Returns the tick values."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    ticks: list[float] = []
    for steps in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [float(f"{m * 10.0 ** e:.3g}") for e in decades for m in steps if lo <= m * 10.0 ** e <= hi]
        if len(ticks) >= 4:
            break
    if len(ticks) < 2:  # a span under 20 %: label its ends
        ticks = sorted({float(f"{lo:.2g}"), float(f"{hi:.2g}")})
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())
    return ticks


def pareto_plot(results: list[BenchResult], out_png: Path, title: str = "") -> Path:
    """Write :func:`pareto_figure` of ``results`` to ``out_png``."""
    fig = pareto_figure(results, title)
    import matplotlib.pyplot as plt
    with atomic_write(out_png, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return out_png


def pareto_figure(results: list[BenchResult], title: str = ""):
    """Latency (log scale, with each point's p10-p90 range) vs published top-1; the legend sits
    under the axes so it never covers a point or a label; cached figures are starred, with the
    date they were measured in the caption. Returns the matplotlib figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = [r for r in results if r.top1 is not None]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    families = sorted({r.family for r in pts})
    cmap = plt.get_cmap("tab10" if len(families) <= 10 else "tab20")
    for i, fam in enumerate(families):
        rs = [r for r in pts if r.family == fam]
        color = cmap(i % cmap.N)
        ax.errorbar([r.median_ms for r in rs], [r.top1 for r in rs], fmt="none", ecolor=color, alpha=0.6,
                    lw=1, xerr=[[r.median_ms - r.p10_ms for r in rs], [r.p90_ms - r.median_ms for r in rs]])
        ax.scatter([r.median_ms for r in rs], [r.top1 for r in rs], s=[20 + r.params / 2e5 for r in rs],
                   color=color, alpha=0.75, label=fam, edgecolors="k", linewidths=0.4, zorder=3)
        for r in rs:
            ax.annotate(r.model + (" *" if r.cached else "") + ("" if r.steady else " (noisy)"),
                        (r.median_ms, r.top1), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
    if pts:
        front = pareto_front([(r.median_ms, r.top1) for r in pts])
        f = sorted((pts[i] for i in front), key=lambda r: r.median_ms)
        ax.plot([r.median_ms for r in f], [r.top1 for r in f], "k--", lw=0.8, label="Pareto front")
        _log_latency_axis(ax, pts)
    ax.set_xlabel("latency, ms (median, bar: p10-p90; log scale)")
    ax.set_ylabel("published ImageNet top-1, %")
    ax.set_title(title or "latency on this machine vs published accuracy (marker size = params)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=min(5, len(families) + 1),
              frameon=False)
    dates = sorted({r.measured_at for r in pts if r.cached and r.measured_at})
    if any(r.cached for r in pts):
        when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}" if dates else "earlier"
        fig.text(0.01, 0.01, f"* reused from the latency cache, measured {when}", fontsize=7)
    fig.tight_layout()
    return fig


def _log_latency_axis(ax, pts: list[BenchResult]) -> None:
    """Log x axis over every point's p10-p90 range, with room on the right for the last label."""
    lo = min(r.p10_ms for r in pts)
    hi = max(r.p90_ms for r in pts)
    span = max(hi / lo, 1.5)
    ax.set_xscale("log")
    ax.set_xlim(lo / span ** 0.08, hi * span ** 0.3)
    plain_log_ticks(ax.xaxis, *ax.get_xlim())


def _row_cells(r) -> list[str]:
    """The markdown cells shared by the bench report and the demo report (a BenchResult)."""
    return [_ms(r.median_ms), f"{_ms(r.p10_ms)}–{_ms(r.p90_ms)}", spread_text(r), f"{r.images_per_s:.1f}", r.when]


def _ms(v: float) -> str:
    return f"{v:.2f}" if v >= 1 else f"{v:.3f}"


def markdown_table(results: list[BenchResult]) -> str:
    lines = ["| model | family | backend | precision | bs | res | median ms | p10–p90 ms | spread | img/s | "
             "measured | params | top-1 |",
             "|---|---|---|---|--:|--:|--:|--:|--:|--:|---|--:|--:|"]
    for r in sorted(results, key=lambda r: (r.backend, r.median_ms)):
        lines.append(f"| {r.model} | {r.family} | {r.backend} | {r.precision} | {r.batch} | {r.resolution[0]} | "
                     + " | ".join(_row_cells(r)) +
                     f" | {r.params / 1e6:.2f}M | {r.top1 if r.top1 is not None else '–'} |")
    return "\n".join(lines)


def write_report(results: list[BenchResult], out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = pareto_plot(results, out / "pareto.png")
    machine = results[0].machine if results else "?"
    md = (f"# edgevision benchmark\n\nMachine: {machine}\n\n{markdown_table(results)}\n\n"
          f"![latency vs accuracy](pareto.png)\n\nLatency: median of repeated runs after warm-up; "
          f"precision is what actually ran; {trust_note(results)} Accuracy: published ImageNet-1k top-1.\n")
    with atomic_write(out / "report.md", ".md") as tmp:
        tmp.write_text(md)
    return out / "report.md", png


def _demo_training(plan, evaluated: dict) -> list[str]:
    lines = ["## 1. Training on the embedded dataset "
             f"({plan.resolution}px, {plan.train_size} images/epoch)", "",
             "| model | role | epochs | val top-1 % | val top-5 % |", "|---|---|--:|--:|--:|"]
    for key, role, ep in (("teacher", "teacher", plan.teacher_epochs),
                          ("student_kd", "student, distilled (soft, T=2, alpha=0.5)", plan.student_epochs),
                          ("student_baseline", "student, no distillation", plan.student_epochs)):
        e = evaluated[key]
        lines.append(f"| {e['model']} | {role} | {ep} | {e['top1']:.2f} | {e['top5']:.2f} |")
    return lines + ["", "Curves: ![teacher](teacher/curves.png) ![student](student_kd/curves.png)", ""]


def _demo_deploy(exported: dict, optimized: dict, train_res: int) -> list[str]:
    """Section 2 from the export step and optimize's results.json (read as a file format: the
    deploy step ran `edgevision optimize`)."""
    res, batches = optimized["resolution"], optimized["batches"]
    lines = ["## 2. Deploy path of the distilled student", "",
             f"Reparameterized ({exported['params']:,} -> {exported['params_reparameterized']:,} params, "
             f"BN folded) and exported to ONNX ({exported['size_mb']} MB); onnxruntime vs PyTorch max abs "
             "logit diff: " + ", ".join(f"{k} {v:.1e}" for k, v in exported["max_abs_diff"].items()) + ".", "",
             f"`edgevision optimize` at {res[0]}x{res[1]} px"
             + (f" (the {train_res} px training size is too little work for INT8 to pay off)"
                if res[0] > train_res else "")
             + f": every candidate verified against onnxruntime fp32 on "
             f"{optimized['held_out']} held-out images (>= {100 * (1 - optimized['max_drop']):.1f} % top-1 "
             f"agreement required) and timed side by side with it. Full report: "
             f"[deploy/report.md](deploy/report.md), plot: [deploy/plot.png](deploy/plot.png).", "",
             f"**{optimized['headline']}**", "",
             "| candidate | precision that ran | verified | top-1 agreement % | "
             + " | ".join(f"speed vs ORT fp32 bs{b}" for b in batches) + " | why not picked |",
             "|---|---|---|--:|" + "--:|" * len(batches) + "---|"]
    for c in optimized["candidates"]:
        if c["status"] != "done":
            lines.append(f"| {c['candidate']['name']} | - | {c['status']} | - |" + " - |" * len(batches)
                         + f" {c['why']} |")
            continue
        speed = [f"{c['speedup'][str(b)]:.2f}x" if str(b) in c["speedup"] else "-" for b in batches]
        agree = "-" if c["top1_agreement"] is None else f"{c['top1_agreement']:.1f}"
        lines.append(f"| {c['candidate']['name']} | {c['precision'] or '-'} | {'yes' if c['verified'] else 'no'} | "
                     f"{agree} | " + " | ".join(speed) + f" | {c['why_not_picked'] or 'picked'} |")
    return lines


def demo_report(plan, results: dict, seconds: dict, machine: str) -> str:
    """The demo run's report.md: ``plan`` is the pipeline's DemoPlan, ``results`` each step's
    result by step name, ``seconds`` each step's wall time."""
    lines = ["# edgevision demo run", "", f"Machine: {machine}", ""]
    lines += _demo_training(plan, results["evaluate"])
    lines += _demo_deploy(results["export"], results["optimize"], plan.resolution)
    student = [BenchResult.from_json(r) for r in results["bench"]["student"]]
    pareto = [BenchResult.from_json(r) for r in results["bench"]["pareto"]]
    lines += ["", f"## 3. Latency of the student on this machine (batch 1, {plan.resolution}px)", "",
              "| backend | precision | median ms | p10–p90 ms | spread | images/s | measured |",
              "|---|---|--:|--:|--:|--:|---|"]
    lines += [f"| {r.backend} | {r.precision} | " + " | ".join(_row_cells(r)) + " |" for r in student]
    lines += ["", "## 4. Choosing a model", "", "![Pareto](pareto.png)", "",
              "| model | backend | res | median ms | p10–p90 ms | spread | images/s | measured | top-1 |",
              "|---|---|--:|--:|--:|--:|--:|---|--:|"]
    lines += [f"| {r.model} | {r.backend} | {r.resolution[0]} | " + " | ".join(_row_cells(r)) + f" | {r.top1} |"
              for r in sorted(pareto, key=lambda r: r.median_ms)]
    lines += ["", trust_note(student + pareto), "",
              "## Step times (s)", "", " | ".join(f"{k} {v:.0f}" for k, v in seconds.items()), ""]
    return "\n".join(lines) + "\n"
