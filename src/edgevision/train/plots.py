"""Training curves and confusion matrices as PNG (matplotlib, headless)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..files import atomic_write


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_curves(metrics_jsonl: Path, out_png: Path) -> Path:
    rows = [json.loads(line) for line in Path(metrics_jsonl).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("kind") == "epoch"]
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    ep = [r["epoch"] + 1 for r in rows]
    a.plot(ep, [r["train_loss"] for r in rows], marker="o", label="train loss")
    a.plot(ep, [r["val_loss"] for r in rows], marker="o", label="val loss")
    a.set_xlabel("epoch"), a.set_ylabel("loss"), a.legend(), a.grid(alpha=0.3)
    b.plot(ep, [r["val_top1"] for r in rows], marker="o", label="val top-1")
    if any("val_top1_ema" in r for r in rows):
        b.plot(ep, [r.get("val_top1_ema", np.nan) for r in rows], marker="o", label="val top-1 (EMA)")
    b.set_xlabel("epoch"), b.set_ylabel("top-1 %"), b.legend(), b.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_write(out_png, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out_png


def plot_confusion(matrix: np.ndarray, classes: list[str], out_png: Path, title: str = "") -> Path:
    plt = _plt()
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * n, 0.8 + 0.45 * n))
    norm = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_write(out_png, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out_png
