"""Markdown report and Pareto plot (latency vs published top-1) of benchmark results."""
from __future__ import annotations

from pathlib import Path

from ..weights.io import atomic_write
from .runner import BenchResult


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated (lower latency AND higher accuracy)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def pareto_plot(results: list[BenchResult], out_png: Path, title: str = "") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = [r for r in results if r.top1 is not None]
    fig, ax = plt.subplots(figsize=(8, 5))
    families = sorted({r.family for r in pts})
    cmap = plt.get_cmap("tab10" if len(families) <= 10 else "tab20")
    for i, fam in enumerate(families):
        rs = [r for r in pts if r.family == fam]
        ax.scatter([r.median_ms for r in rs], [r.top1 for r in rs], s=[20 + r.params / 2e5 for r in rs],
                   color=cmap(i % cmap.N), alpha=0.75, label=fam, edgecolors="k", linewidths=0.4)
        for r in rs:
            ax.annotate(r.model, (r.median_ms, r.top1), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if pts:
        front = pareto_front([(r.median_ms, r.top1) for r in pts])
        f = sorted((pts[i] for i in front), key=lambda r: r.median_ms)
        ax.plot([r.median_ms for r in f], [r.top1 for r in f], "k--", lw=0.8, label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (median, log scale)")
    ax.set_ylabel("published ImageNet top-1, %")
    ax.set_title(title or "latency on this machine vs published accuracy (marker size = params)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_write(out_png, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return out_png


def markdown_table(results: list[BenchResult]) -> str:
    lines = ["| model | family | backend | precision | bs | res | median ms | p10–p90 ms | img/s | params | top-1 |",
             "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for r in sorted(results, key=lambda r: (r.backend, r.median_ms)):
        lines.append(f"| {r.model} | {r.family} | {r.backend} | {r.precision} | {r.batch} | {r.resolution[0]} | "
                     f"{r.median_ms:.2f} | {r.p10_ms:.2f}–{r.p90_ms:.2f} | {r.images_per_s:.1f} | "
                     f"{r.params / 1e6:.2f}M | {r.top1 if r.top1 is not None else '–'} |")
    return "\n".join(lines)


def write_report(results: list[BenchResult], out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = pareto_plot(results, out / "pareto.png")
    machine = results[0].machine if results else "?"
    md = (f"# edgevision benchmark\n\nMachine: {machine}\n\n{markdown_table(results)}\n\n"
          f"![latency vs accuracy](pareto.png)\n\nLatency: median of repeated runs after warm-up; "
          f"precision is what actually ran. Accuracy: published ImageNet-1k top-1.\n")
    with atomic_write(out / "report.md", ".md") as tmp:
        tmp.write_text(md)
    return out / "report.md", png
