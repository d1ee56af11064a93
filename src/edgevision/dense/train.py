"""Training and evaluation for detection (COCO-style mAP with torchmetrics/pycocotools) and
segmentation (mIoU), reusing the classification trainer's optimizer, schedule, checkpoints and
metrics log."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..errors import ConfigError
from ..options import option
from ..train.checkpoint import save_checkpoint
from ..train.loop import TrainingDiverged, build_optimizer, cosine_lambda
from .data import DENSE_CLASSES, EmbeddedDense, check_target, collate
from .models import build_detector, build_segmenter


@dataclass(frozen=True)
class DenseConfig:
    """Options of dense training. The command line reaches them through ``edgevision train --task
    detection|segmentation``, whose shared options (and their defaults) are TrainConfig's; the
    fields without a "help" line are not on the command line."""

    task: str = option(help="detection or segmentation", choices=("detection", "segmentation"))
    model: str = option(help="backbone: any registered model")
    out: str = option(help="run directory (checkpoints, metrics.jsonl)")
    detector: str = option("retinanet", "detection head (with --task detection)",
                           choices=("retinanet", "fasterrcnn", "ssdlite"))
    epochs: int = option(6, "training epochs")
    batch_size: int = option(8, "images per step")
    lr: float = option(1e-3, "peak learning rate (after warm-up)")
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    resolution: int = option(128, "image size")
    train_size: int = option(800, "embedded: images per epoch")
    val_size: int = option(160, "embedded: validation images")
    workers: int = option(2, "data-loader worker processes")
    seed: int = option(0, "seed of weights, data order and augmentation")
    backbone_weights: str | None = option(None, "backbone weights, e.g. a classifier trained with "
                                          "`edgevision train`", flag="--weights")


def _targets(ts, h, w):
    return [check_target({"boxes": t["boxes"], "labels": t["labels"]}, h, w) for t in ts]


@torch.no_grad()
def evaluate_detection(model, loader) -> dict:
    from torchmetrics.detection import MeanAveragePrecision
    metric = MeanAveragePrecision(iou_type="bbox", backend="pycocotools")
    model.eval()
    for imgs, ts in loader:
        out = model(list(imgs))
        metric.update([{k: o[k] for k in ("boxes", "scores", "labels")} for o in out],
                      [{"boxes": t["boxes"], "labels": t["labels"]} for t in ts])
    r = metric.compute()
    return {"map": float(r["map"]) * 100, "map_50": float(r["map_50"]) * 100}


@torch.no_grad()
def evaluate_segmentation(model, loader, num_classes: int) -> dict:
    model.eval()
    inter = np.zeros(num_classes + 1)
    union = np.zeros(num_classes + 1)
    for imgs, ts in loader:
        pred = model(torch.stack(imgs)).argmax(1)
        gt = torch.stack([t["semantic"] for t in ts])
        if pred.shape != gt.shape:
            raise ConfigError(f"mask size {tuple(gt.shape[1:])} does not match the prediction {tuple(pred.shape[1:])}")
        for c in range(num_classes + 1):
            p, g = pred == c, gt == c
            inter[c] += (p & g).sum().item()
            union[c] += (p | g).sum().item()
    iou = inter / np.maximum(union, 1)
    present = union > 0
    return {"miou": float(iou[present].mean() * 100), "iou_per_class": [round(float(v) * 100, 2) for v in iou]}


def train_dense(cfg: DenseConfig, log=print) -> dict:
    if cfg.task not in ("detection", "segmentation"):
        raise ConfigError(f"unknown task {cfg.task!r}; use detection or segmentation")
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    k = len(DENSE_CLASSES)
    if cfg.task == "detection":
        model = build_detector(cfg.detector, cfg.model, k, cfg.resolution, cfg.backbone_weights)
    else:
        model = build_segmenter(cfg.model, k, cfg.backbone_weights)
    train_ds = EmbeddedDense("train", cfg.train_size, cfg.resolution, cfg.seed, hflip=True)
    val_ds = EmbeddedDense("val", cfg.val_size, cfg.resolution, cfg.seed)
    val = DataLoader(val_ds, cfg.batch_size, shuffle=False, num_workers=cfg.workers, collate_fn=collate)
    opt = build_optimizer(model, cfg)
    steps = len(train_ds) // cfg.batch_size
    if steps == 0:
        raise ConfigError(f"batch size {cfg.batch_size} is larger than the training set")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_lambda(steps * cfg.epochs, steps // 2, cfg.lr, cfg.lr * 0.01))
    best, result = -1.0, {}
    ce = torch.nn.CrossEntropyLoss()
    for epoch in range(cfg.epochs):
        torch.manual_seed(cfg.seed * 7919 + epoch)
        g = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        loader = DataLoader(train_ds, cfg.batch_size, shuffle=True, drop_last=True, generator=g,
                            num_workers=cfg.workers, collate_fn=collate)
        model.train()
        t0, tot, n = time.perf_counter(), 0.0, 0
        for imgs, ts in tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, mininterval=1.0):
            if cfg.task == "detection":
                losses = model(list(imgs), _targets(ts, cfg.resolution, cfg.resolution))
                loss = sum(losses.values())
            else:
                loss = ce(model(torch.stack(imgs)), torch.stack([t["semantic"] for t in ts]))
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"loss became {loss.item()} at epoch {epoch + 1}; lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            sched.step()
            tot, n = tot + loss.item(), n + 1
        ev = evaluate_detection(model, val) if cfg.task == "detection" else evaluate_segmentation(model, val, k)
        score = ev["map"] if cfg.task == "detection" else ev["miou"]
        row = {"kind": "epoch", "epoch": epoch, "train_loss": round(tot / max(n, 1), 5),
               "seconds": round(time.perf_counter() - t0, 1), **{k2: v for k2, v in ev.items() if k2 != "iou_per_class"}}
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        meta = json.dumps({"task": cfg.task, "config": asdict(cfg), "classes": list(DENSE_CLASSES)})
        save_checkpoint(out / "last.pt", model=model.state_dict(), epoch=epoch, meta=meta)
        if score > best:
            best = score
            save_checkpoint(out / "best.pt", model=model.state_dict(), epoch=epoch, meta=meta, score=score)
        log(f"epoch {epoch + 1}/{cfg.epochs}: loss {row['train_loss']:.4f}  " +
            (f"mAP {ev['map']:.2f}  mAP50 {ev['map_50']:.2f}" if cfg.task == "detection" else f"mIoU {ev['miou']:.2f}"))
        result = dict(row, best=best)
    return result
