"""torchrun / DistributedDataParallel helpers; every one of them is a no-op in a single process."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from .device import resolve_device


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
    """Where this process sits: global rank, rank on its node, number of processes, its device."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(device: str | torch.device | None = None, timeout_minutes: float = 30.0) -> ProcessInfo:
    """Join the process group that torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*).

    nccl on CUDA, gloo on CPU; each process takes GPU `LOCAL_RANK`. Without torchrun (WORLD_SIZE
    unset or 1) nothing is initialised and the device is `device` (auto: CUDA when present).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo", rank=rank, world_size=world_size,
                                timeout=timedelta(minutes=timeout_minutes))
    return ProcessInfo(rank, local_rank, world_size, resolved)


@contextlib.contextmanager
def session(device: str | torch.device | None = None) -> Iterator[ProcessInfo]:
    """`init` for the block; the process group is destroyed after it, also when the block raises. A block that
    ends normally first waits for every process, so that no rank (rank 0 hosts the group's store) tears the
    group down while another still uses it."""
    info = init(device)
    try:
        yield info
        barrier()
    finally:
        cleanup()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def wrap(model: nn.Module, info: ProcessInfo) -> nn.Module:
    """DistributedDataParallel around `model` when several processes train, else `model` itself."""
    if not is_distributed():
        return model
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare network inside a DDP wrapper (or `model` itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def mean(value: float, device: torch.device) -> float:
    """The mean of a float over all processes (every process must call it)."""
    if not is_distributed():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.item() / dist.get_world_size()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()
