"""Atomic training checkpoints, readable with torch.load(weights_only=True).

A checkpoint holds the model, optimizer, scheduler, EMA, RNG states, epoch, metrics and the
model's name + spec overrides (as JSON), so ``--resume`` continues exactly and a checkpoint
from another model is recognised before anything is loaded.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import WeightsError
from ..files import atomic_write


def save_checkpoint(path: Path, **state) -> None:
    with atomic_write(path, ".pt") as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, expect_model: str | None = None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no checkpoint at {path}; start without --resume")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"checkpoint {path} is unreadable ({str(e).splitlines()[0][:160]})") from None
    meta = json.loads(ckpt.get("meta", "{}"))
    if expect_model and meta.get("model") != expect_model:
        raise WeightsError(f"checkpoint {path} is from model {meta.get('model')!r}, not "
                           f"{expect_model!r}; use another --out directory or the same --model")
    ckpt["meta"] = meta
    return ckpt
