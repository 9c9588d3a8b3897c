"""The sharded sampler and the one-process behaviour of the DDP helpers.

(Two real processes are exercised end to end in ``test_ddp.py``.)
"""
import time

import pytest
import torch

from vidcls.engine.distributed import (DistInfo, ShardedSampler, all_gather_cat,
                                       all_gather_strings, all_reduce_sum)


def test_sharded_sampler_union_equals_single_process():
    single = ShardedSampler(12, shuffle=True, seed=3)
    ranks = [ShardedSampler(12, num_replicas=2, rank=r, shuffle=True, seed=3) for r in (0, 1)]
    for s in [single, *ranks]:
        s.set_epoch(5)
    one = single.indices()
    r0, r1 = ranks[0].indices(), ranks[1].indices()
    assert sorted(one) == list(range(12)) and len(r0) == len(r1) == 6
    for b in range(3):  # per-process batch 2 == single-process batch 4
        assert sorted(r0[2 * b:2 * b + 2] + r1[2 * b:2 * b + 2]) == sorted(one[4 * b:4 * b + 4])
    single.set_epoch(6)
    assert single.indices() != one  # a new order each epoch ...
    single.set_epoch(5)
    assert single.indices() == one  # ... and the same order for the same epoch
    single.set_epoch(5, skip=7)
    assert single.indices() == one[7:] and len(single) == 5
    padded = ShardedSampler(5, num_replicas=2, rank=1, shuffle=False)
    assert padded.indices() == [1, 3, 0] and len(padded) == 3  # wraps to pad


def test_helpers_are_identities_with_one_process():
    info = DistInfo()
    assert not info.enabled and info.is_main
    t = torch.arange(3.0)
    assert all_reduce_sum(t, info) is t and all_gather_cat(t, info) is t
    assert all_gather_strings(["a.mp4: broken"], info) == ["a.mp4: broken"]


def _gather_uneven(rank: int, port: int, out: str) -> None:
    """Rank 0 holds 3 rows, rank 1 none (all its videos were unreadable)."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    info = DistInfo(rank=rank, world_size=2)
    rows = torch.arange(6.0).view(3, 2) if rank == 0 else torch.zeros(0, 2)
    got = all_gather_cat(rows, info)
    idx = all_gather_cat(torch.tensor([rank, rank + 10]), info)
    if rank == 0:
        torch.save({"rows": got, "idx": idx}, out)
    dist.destroy_process_group()


def test_all_gather_cat_takes_parts_of_different_lengths(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "gathered.pt")
    ctx = mp.spawn(_gather_uneven, args=(port, out), nprocs=2, join=False)
    deadline = time.monotonic() + 120  # equal-length gathers of unequal parts hang
    while not ctx.join(timeout=5):  # True once every process ended (raises if one failed)
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("all_gather_cat hung on parts of different lengths")
    got = torch.load(out)
    assert torch.equal(got["rows"], torch.arange(6.0).view(3, 2))
    assert got["idx"].tolist() == [0, 10, 1, 11]
