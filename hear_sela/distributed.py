"""Process-group setup and collectives: the only module that knows about ranks.

Every helper degrades to the single-process case when torch.distributed is not initialised, so solver and training
code call them unconditionally.
"""

from __future__ import annotations

import datetime
import os
from typing import Literal

import torch
import torch.distributed as dist

ReduceOp = Literal["sum", "max", "min"]
_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    return rank() == 0


def resolve_device(name: str, what: str = "train.device") -> torch.device:
    """auto | cpu | cuda -> this process's device (cuda: the local rank's GPU). `what` names the setting in errors."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{what}=cuda but no CUDA device is available")
        return torch.device("cuda", local_rank())
    if name != "cpu":
        raise ValueError(f"{what} must be auto, cpu or cuda, got {name!r}")
    return torch.device("cpu")


def init_from_env(backend: str | None = None, timeout_s: float = 1800.0) -> bool:
    """Initialise from torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT). Returns True when distributed.

    nccl when CUDA is available, else gloo, so the same code path is testable on CPU.
    """
    if is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return True


def shutdown() -> None:
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def all_reduce(tensor: torch.Tensor, op: ReduceOp = "sum") -> torch.Tensor:
    """In-place all-reduce that returns its argument; identity in a single process."""
    if is_initialized() and world_size() > 1:
        dist.all_reduce(tensor, op=_OPS[op])
    return tensor


def all_gather_cat(tensor: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Concatenate every rank's tensor along `dim`; shapes may differ along `dim` only."""
    if not (is_initialized() and world_size() > 1):
        return tensor
    sizes = torch.tensor([tensor.shape[dim]], device=tensor.device)
    all_sizes = [torch.zeros_like(sizes) for _ in range(world_size())]
    dist.all_gather(all_sizes, sizes)
    biggest = int(max(s.item() for s in all_sizes))
    pad_shape = list(tensor.shape)
    pad_shape[dim] = biggest - tensor.shape[dim]
    padded = torch.cat([tensor, tensor.new_zeros(pad_shape)], dim=dim)
    gathered = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(gathered, padded)
    return torch.cat([g.narrow(dim, 0, int(s.item())) for g, s in zip(gathered, all_sizes)], dim=dim)


def broadcast(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    if is_initialized() and world_size() > 1:
        dist.broadcast(tensor, src=src)
    return tensor


def shard_range(n: int, world: int | None = None, r: int | None = None) -> tuple[int, int]:
    """Contiguous [start, stop) slice of n items for rank r; no padding, no duplicates (sizes differ by <= 1)."""
    world = world_size() if world is None else world
    r = rank() if r is None else r
    base, extra = divmod(n, world)
    start = r * base + min(r, extra)
    return start, start + base + (1 if r < extra else 0)
