"""PyTorch DDP plumbing: process group from ``torchrun``'s environment, sharded sampling,
reductions. With no ``WORLD_SIZE`` in the environment everything degrades to one process.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass
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


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group ``torchrun`` describes (gloo on CPU, NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(rank=int(os.environ["RANK"]), world_size=world,
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return info


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum over processes in place (a no-op with one process)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_cat(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate tensors from every process along dim 0, in rank order.

    The lengths may differ (a process that skipped unreadable videos scored fewer): each is
    padded to the longest (at least 1 row, collectives dislike empty tensors) and trimmed."""
    if not info.enabled:
        return tensor
    sizes = [torch.zeros(1, dtype=torch.long) for _ in range(info.world_size)]
    dist.all_gather(sizes, torch.tensor([tensor.shape[0]], dtype=torch.long))
    longest = max(1, max(int(n) for n in sizes))
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in range(info.world_size)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[: int(n)] for part, n in zip(parts, sizes)])


def all_gather_strings(items: list[str], info: DistInfo) -> list[str]:
    """Concatenate every process's list of strings (e.g. unreadable files), in rank order."""
    if not info.enabled:
        return items
    out: list[list[str]] = [None] * info.world_size  # type: ignore[list-item]
    dist.all_gather_object(out, items)
    return [s for part in out for s in part]


class ShardedSampler(Sampler[int]):
    """Deterministic shuffled (or ordered) indices, split across processes.

    The order depends only on ``(seed, epoch)``, so a resumed run sees the same batches as an
    uninterrupted one. The index list is padded by wrapping to a multiple of
    ``num_replicas`` and rank ``r`` takes ``indices[r::num_replicas]``: with per-process batch
    ``b``, the union of the ranks' ``i``-th batches is exactly the ``i``-th batch of size
    ``b x num_replicas`` a single process would see. ``skip`` drops the first ``skip`` indices of
    this rank (mid-epoch resume).
    """

    def __init__(self, size: int, *, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0):
        if size < 1:
            raise ValueError("cannot sample from an empty dataset (check the annotation file)")
        self.size = size
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.skip = 0
        self.per_rank = -(-size // num_replicas)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch = epoch
        self.skip = skip

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        total = self.per_rank * self.num_replicas
        order = (order * (-(-total // self.size)))[:total]  # pad by wrapping around
        return order[self.rank::self.num_replicas][self.skip:]

    def __iter__(self):
        return iter(self.indices())

    def __len__(self) -> int:
        return self.per_rank - self.skip
