"""Fine-tuning from published weights vs the same run from random weights, on one folder.

The folder defaults to views cut from the real photos installed packages ship (one class per
photo: matplotlib, scikit-learn, scikit-image), written as train/ and val/ ImageFolder splits;
--data takes your own. Both runs use the same recipe, seed and epochs.

usage: .venv/bin/python benchmarks/finetune.py [--model tf_efficientnet_lite0] [--data DIR]
       [--epochs 3] [--resolution 128] [--freeze-epochs 1]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from edgevision.bench.latency import cpu_description
from edgevision.datasets.photos import write_image_folder
from edgevision.text import table
from edgevision.train import TrainConfig, train


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--pretrained", default=True, help="tag (default: the model's default)")
    ap.add_argument("--data", help="ImageFolder with train/ and val/ (default: photo views)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--freeze-epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--train-per-class", type=int, default=16)
    ap.add_argument("--val-per-class", type=int, default=8)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else write_image_folder(
            Path(tmp) / "photos", {"train": args.train_per_class, "val": args.val_per_class}, seed=11)
        classes = sorted(p.name for p in (data / "train").iterdir())
        rows = []
        for label, kw in (("pretrained", dict(pretrained=args.pretrained, freeze_epochs=args.freeze_epochs)),
                          ("from scratch", {})):
            cfg = TrainConfig(model=args.model, out=str(Path(tmp) / label.replace(" ", "_")),
                              data=str(data), epochs=args.epochs, batch_size=16, lr=args.lr,
                              warmup_epochs=0, resolution=args.resolution, workers=0, **kw)
            t0 = time.perf_counter()
            res = train(cfg, log=lambda *a: None)
            rows.append([label, f"{res['best_top1']:.1f}", f"{res['val_top1']:.1f}",
                         f"{time.perf_counter() - t0:.0f}"])
            print(f"{label}: best val top-1 {res['best_top1']:.1f} %", flush=True)
    print(f"\n{args.model}, {len(classes)} classes ({'photo views' if not args.data else data}), "
          f"{args.epochs} epochs at {args.resolution} px, lr {args.lr}; {cpu_description()}")
    print(table(rows, ["start", "best val top-1 %", "last val top-1 %", "seconds"], right={1, 2, 3}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
