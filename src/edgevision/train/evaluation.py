"""Evaluation: loss, top-1/top-5 and the confusion matrix of a model over a loader, and
``run_eval`` (trained weights on the validation split, as ``edgevision eval`` runs it)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..factory import create_model
from .data import build_datasets, make_loader
from .device import resolve_device
from .plots import plot_confusion


@torch.no_grad()
def evaluate(model: nn.Module, loader, num_classes: int, bf16: bool = False,
             device: torch.device | str = "cpu") -> dict:
    """Loss, top-1/top-5 (%) and the confusion matrix of ``model`` (on ``device``) over ``loader``."""
    model.eval()
    device = torch.device(device)
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    total, loss_sum, top1, top5 = 0, 0.0, 0, 0
    for x, y in loader:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(x.to(device, non_blocking=True))
        out = (out[0] + out[1]) / 2 if isinstance(out, (tuple, list)) else out
        out = out.float().cpu()
        loss_sum += F.cross_entropy(out, y, reduction="sum").item()
        k = min(5, num_classes)
        pred = out.topk(k, dim=1).indices
        top1 += (pred[:, 0] == y).sum().item()
        top5 += (pred == y[:, None]).any(1).sum().item()
        np.add.at(conf, (y.numpy(), pred[:, 0].numpy()), 1)
        total += len(y)
    return dict(loss=loss_sum / max(total, 1), top1=100.0 * top1 / max(total, 1),
                top5=100.0 * top5 / max(total, 1), confusion=conf, n=total)


def run_eval(model_name: str, weights: str, data: str = "embedded", resolution: int | None = None,
             batch_size: int = 128, val_size: int = 1200, out_png: str | None = None, workers: int = 2,
             device: str = "auto") -> dict:
    """top-1/top-5 of ``weights`` on the validation split, and a confusion-matrix PNG."""
    from ..weights import create_with_weights
    from ..weights.pretrained import parse_ref
    dev = resolve_device(device)
    model = create_with_weights(model_name, weights)
    probe = model if parse_ref(weights) is not None else create_model(model_name, num_classes=1)
    size = resolution or (96 if data == "embedded" else probe.input_config.resolution)
    if size < probe.input_config.min_size:
        raise ConfigError(f"--resolution {size} is below {model_name}'s minimum input size "
                          f"{probe.input_config.min_size}")
    _, val, classes = build_datasets(data, probe.input_config, size, 0, 1, val_size)
    if model.num_classes != len(classes):
        raise ConfigError(f"the weights have {model.num_classes} classes and {data} has "
                          f"{len(classes)}; evaluate weights trained on this data")
    res = evaluate(model.to(dev), make_loader(val, batch_size, False, workers, 0, 0), model.num_classes,
                   device=dev)
    if out_png:
        plot_confusion(res["confusion"], classes if len(classes) == model.num_classes else
                       [str(i) for i in range(model.num_classes)], Path(out_png),
                       f"{model_name}: top-1 {res['top1']:.2f}%")
    res["classes"], res["device"] = classes, str(dev)
    return res
