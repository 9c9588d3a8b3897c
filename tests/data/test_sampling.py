"""Frame-index sampling against the reference formulas."""
from __future__ import annotations

import numpy as np
import pytest

from vidcls.data.sampling import dense_indices, sample_indices, segment_indices


def tsm_test_offsets(total: int, n: int) -> list[int]:
    """TSM repo, TSNDataSet._get_test_indices (new_length=1, 0-based), for total > n."""
    tick = total / float(n)
    return [int(tick / 2.0 + tick * x) for x in range(n)]


def tsm_twice_offsets(total: int, n: int) -> list[int]:
    tick = total / float(n)
    return [int(tick * x) for x in range(n)] + [int(tick / 2.0 + tick * x) for x in range(n)]


@pytest.mark.parametrize("total", [9, 16, 37, 100, 301])
@pytest.mark.parametrize("n", [1, 3, 8])
def test_segment_test_indices_match_tsm(total, n):
    got = segment_indices(n, total, train=False)
    assert got.shape == (1, n)
    assert got[0].tolist() == tsm_test_offsets(total, n)
    twice = segment_indices(n, total, train=False, twice=True)
    assert twice.shape == (2, n)
    assert twice.reshape(-1).tolist() == tsm_twice_offsets(total, n)


def test_segment_train_draws_one_uniform_frame_per_segment():
    rng = np.random.default_rng(0)
    total, n = 80, 8  # segments of 10 frames
    draws = np.concatenate([segment_indices(n, total, train=True, rng=rng) for _ in range(2000)])
    assert draws.shape == (2000, n)
    for s in range(n):
        col = draws[:, s]
        assert col.min() == 10 * s and col.max() == 10 * s + 9  # stays in its segment
        counts = np.bincount(col - 10 * s, minlength=10)
        assert counts.min() > 150  # ~200 each: uniform, every frame reachable


def test_segment_sampling_is_a_function_of_the_rng():
    a = segment_indices(8, 100, train=True, rng=np.random.default_rng(5))
    b = segment_indices(8, 100, train=True, rng=np.random.default_rng(5))
    c = segment_indices(8, 100, train=True, rng=np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("total", [1, 2, 3, 7])
@pytest.mark.parametrize("train", [True, False])
def test_short_videos_repeat_indices(total, train):
    got = segment_indices(8, total, train=train, rng=np.random.default_rng(0))[0]
    assert got.shape == (8,)
    assert got.min() >= 0 and got.max() < total
    assert np.all(np.diff(got) >= 0)  # still in temporal order
    if not train:
        assert set(got.tolist()) == set(range(total))  # spread over the whole video


def test_multi_clip_segment_views_are_spread_inside_segments():
    got = segment_indices(4, 40, train=False, num_clips=5)  # segments of 10 frames
    assert got.shape == (5, 4)
    assert got[:, 0].tolist() == [1, 3, 5, 7, 9]  # (c + 0.5) / 5 of the way into each segment
    assert np.array_equal(got[2], segment_indices(4, 40, train=False)[0])  # middle = centre


def test_dense_train_window():
    rng = np.random.default_rng(0)
    starts = []
    for _ in range(500):
        idx = dense_indices(8, 100, frame_interval=4, train=True, rng=rng)
        assert idx.shape == (1, 8)
        assert np.all(np.diff(idx[0]) == 4)
        assert idx[0, -1] <= 99
        starts.append(idx[0, 0])
    assert min(starts) == 0 and max(starts) == 100 - 29  # span (8-1)*4+1 = 29 frames


def test_dense_test_clips_spread_uniformly():
    idx = dense_indices(8, 100, frame_interval=2, train=False, num_clips=3)
    assert idx.shape == (3, 8)
    span = 7 * 2 + 1
    starts = idx[:, 0]
    # centres of 3 equal parts of the valid start range [0, 100 - 15]
    assert starts.tolist() == [int((c + 0.5) * (100 - span + 1) / 3) for c in range(3)]
    one = dense_indices(8, 100, frame_interval=2, train=False)
    assert one[0, 0] == (100 - span + 1) // 2  # a single clip is the middle window


def test_dense_short_video_loops():
    idx = dense_indices(8, 5, frame_interval=2, train=False)[0]
    assert idx.tolist() == [(2 * k) % 5 for k in range(8)]


def test_sample_indices_dispatch_and_errors():
    assert np.array_equal(sample_indices(50, mode="segment", num_frames=4, train=False),
                          segment_indices(4, 50, train=False))
    assert np.array_equal(sample_indices(50, mode="dense", clip_len=4, frame_interval=3,
                                         train=False),
                          dense_indices(4, 50, frame_interval=3, train=False))
    with pytest.raises(ValueError, match="unknown sampling mode 'tsn'"):
        sample_indices(50, mode="tsn", train=False)
    with pytest.raises(ValueError, match="0 frames"):
        segment_indices(8, 0, train=False)
