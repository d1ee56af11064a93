"""Multiply-accumulate counts with torch.utils.flop_counter (FLOPs / 2), computed on the meta
device so even the largest model costs no memory or arithmetic."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_macs(name_or_model, resolution: int | tuple[int, int] | None = None, **create_kwargs) -> int:
    """MACs of one forward pass at batch 1.

    Pass a registered name (the model is then built on the meta device) or a model (run as is,
    on its own device). ``resolution`` defaults to the model's input_config.
    """
    from ..factory import create_model
    if isinstance(name_or_model, str):
        with torch.device("meta"):
            model = create_model(name_or_model, **create_kwargs)
    else:
        model = name_or_model
    if resolution is None:
        resolution = model.input_config.input_size[1:]
    h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
    device = next(model.parameters()).device
    x = torch.zeros(1, model.input_config.input_size[0], h, w, device=device)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
