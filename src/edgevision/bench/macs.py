"""Multiply-accumulate counts with torch.utils.flop_counter (FLOPs / 2), computed on the meta
device so even the largest model costs no memory or arithmetic."""
from __future__ import annotations

from unittest import mock

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode


def count_macs(name_or_model, resolution: int | tuple[int, int] | None = None,
               fused_attention: bool = True, **create_kwargs) -> int:
    """MACs of one forward pass at batch 1.

    Pass a registered name (the model is then built on the meta device) or a model (run as is,
    on its own device). ``resolution`` defaults to the model's input_config.
    ``fused_attention=False`` leaves out the matrix products inside
    ``F.scaled_dot_product_attention`` — the convention of the reference table (models.csv),
    whose MobileViT v1 figures count only convolutions and linear layers.
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
    attn = [0]
    sdpa = F.scaled_dot_product_attention

    def counted_sdpa(q, k, v, *args, **kwargs):  # QK^T and AV products, as MACs
        attn[0] += q.shape[:-1].numel() * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        return sdpa(q, k, v, *args, **kwargs)
    try:
        with mock.patch.object(F, "scaled_dot_product_attention", counted_sdpa), \
                FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
    macs = counter.get_total_flops() // 2
    return macs if fused_attention else macs - attn[0]
