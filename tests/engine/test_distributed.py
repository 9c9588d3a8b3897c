"""The sharded sampler and the one-process behaviour of the DDP helpers.

(Two real processes are exercised end to end in ``test_ddp.py``.)
"""
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
