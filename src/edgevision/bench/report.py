"""Markdown reports and the Pareto plot (latency vs published top-1): of benchmark results, and\nof the demo pipeline's run."""
from __future__ import annotations

from pathlib import Path

from ..files import atomic_write
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


def _demo_deploy(exported: dict, quantized: dict) -> list[str]:
    lines = ["## 2. Deploy path of the distilled student", "",
             f"Reparameterized ({exported['params']:,} -> {exported['params_reparameterized']:,} params, "
             f"BN folded) and exported to ONNX ({exported['size_mb']} MB); onnxruntime vs PyTorch max abs "
             "logit diff: " + ", ".join(f"{k} {v:.1e}" for k, v in exported["max_abs_diff"].items()) + ".",
             "", "| INT8 | precision that ran | size | top-1 agreement with fp32 | mean logit drift | "
             "speed vs ORT fp32 bs1 | bs16 |", "|---|---|--:|--:|--:|--:|--:|"]
    for rt, q in quantized.items():
        lines.append(f"| {rt} | {q['precision']} | 1/{q['size_ratio']:.2f} | {q['top1_agreement']:.2f}% | "
                     f"{q['logit_drift']:.4f} | {q['speedup'].get('1', float('nan')):.2f}x | "
                     f"{q['speedup'].get('16', float('nan')):.2f}x |")
    return lines


def demo_report(plan, results: dict, seconds: dict, machine: str) -> str:
    """The demo run's report.md: ``plan`` is the pipeline's DemoPlan, ``results`` each step's
    result by step name, ``seconds`` each step's wall time."""
    lines = ["# edgevision demo run", "", f"Machine: {machine}", ""]
    lines += _demo_training(plan, results["evaluate"])
    lines += _demo_deploy(results["export"], results["quantize"])
    lines += ["", f"## 3. Latency of the student on this machine (batch 1, {plan.resolution}px)", "",
              "| backend | precision | median ms | p10–p90 ms | images/s |", "|---|---|--:|--:|--:|"]
    for r in results["bench"]["student"]:
        lines.append(f"| {r['backend']} | {r['precision']} | {r['median_ms']:.3f} | "
                     f"{r['p10_ms']:.3f}–{r['p90_ms']:.3f} | {r['images_per_s']:.0f} |")
    lines += ["", "## 4. Choosing a model", "", "![Pareto](pareto.png)", "",
              "## Step times (s)", "", " | ".join(f"{k} {v:.0f}" for k, v in seconds.items()), ""]
    return "\n".join(lines) + "\n"
