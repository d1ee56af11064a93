"""Where a model runs and in which precision: ``--device``, mixed precision and the distributed
backend, each decided by a pure function of what torch reports, so every branch is testable on a
machine without a GPU.
"""
from __future__ import annotations

import re

import torch

from ..errors import ConfigError

DEVICE_HELP = "auto (the GPU if torch sees one, else the CPU), cpu, cuda or cuda:N"


def resolve_device(spec: str = "auto", local_rank: int = 0, cuda_count: int | None = None) -> torch.device:
    """The device ``--device spec`` names. "auto" is the GPU of this process (``local_rank`` under
    torchrun) when torch sees one, else the CPU; ``cuda_count`` defaults to what torch sees."""
    if cuda_count is None:
        cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    spec = (spec or "auto").strip().lower()
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "auto":
        return torch.device("cuda", local_rank % cuda_count) if cuda_count else torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if not m:
        raise ConfigError(f"unknown --device {spec!r}; use {DEVICE_HELP}")
    if cuda_count == 0:
        raise ConfigError(f"--device {spec}: torch sees no CUDA device on this machine (a CPU-only "
                          f"torch build, or no GPU/driver); use --device cpu or auto")
    index = int(m.group(1)) if m.group(1) is not None else local_rank % cuda_count
    if index >= cuda_count:
        raise ConfigError(f"--device {spec}: this machine has {cuda_count} CUDA device(s), "
                          f"cuda:0 to cuda:{cuda_count - 1}")
    return torch.device("cuda", index)


def autocast_dtype(device: torch.device, amp: bool = False, bf16: bool = False,
                   bf16_supported: bool | None = None) -> torch.dtype | None:
    """The autocast dtype of a run (None: full fp32). ``--bf16`` asks for bf16 on any device;
    ``--amp`` takes bf16 on the CPU and on GPUs that support it, fp16 on older GPUs."""
    if bf16:
        return torch.bfloat16
    if not amp:
        return None
    if device.type != "cuda":
        return torch.bfloat16
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    return torch.bfloat16 if bf16_supported else torch.float16


def needs_grad_scaler(device: torch.device, dtype: torch.dtype | None) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range."""
    return device.type == "cuda" and dtype == torch.float16


def ddp_backend(device: torch.device) -> str:
    """nccl for a model on a GPU, gloo for one on the CPU (nccl cannot reduce CPU tensors)."""
    return "nccl" if device.type == "cuda" else "gloo"


def describe(device: torch.device, dtype: torch.dtype | None) -> str:
    """E.g. "cuda:0, bf16 autocast" or "cpu, fp32"."""
    precision = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[dtype]
    return f"{device}, {precision}"
