"""Multi-process training with torch.distributed, launched by torchrun (env:// rendezvous).

``torchrun --nproc_per_node=N -m edgevision train ...`` on one machine; several machines run the
same command with ``--nnodes``, ``--node_rank`` and ``--rdzv_endpoint`` (see docs/training.md).
The backend follows the model's device (device.ddp_backend: nccl on a GPU, gloo on the CPU).
Only rank 0 writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def local_rank() -> int:
    """This process's index on its machine (0 outside torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def setup(backend: str = "gloo") -> DistInfo:
    """Join the torchrun job, if any, with ``backend`` (gloo or nccl)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank())


def all_reduce_mean(value: float, info: DistInfo) -> float:
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def ranks_agree(model: torch.nn.Module, info: DistInfo) -> bool:
    """True if every rank holds the same trainable weights (a float64 checksum per parameter).

    BN running statistics are buffers: DDP re-broadcasts them from rank 0 before each forward,
    so after the last step they legitimately differ; rank 0's are the ones saved."""
    if not info.enabled:
        return True
    with torch.no_grad():
        local = torch.stack([p.detach().double().sum() for p in model.parameters()]).to(_comm_device())
    gathered = [torch.zeros_like(local) for _ in range(info.world_size)]
    dist.all_gather(gathered, local)
    return all(torch.equal(gathered[0], g) for g in gathered[1:])


def _comm_device() -> torch.device:
    """nccl reduces tensors on the process's GPU, gloo on the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
