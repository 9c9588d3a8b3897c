"""Which frames to read: TSN segment sampling, dense clip sampling, multi-clip tests.

Pure functions of ``(num_frames, total, mode, rng)``; every sampler returns an ``int64`` array of
shape ``(num_clips, frames_per_clip)`` with 0-based frame indices in ``[0, total)``, one row per
view. Videos shorter than the request get repeated indices (never an error), like the reference
code.

Segment sampling (TSN / TSM, Wang et al. 2016): split the video into ``num_frames`` equal
segments of ``tick = total / num_frames`` frames.
  - train: one uniformly random frame inside each segment: ``floor(tick * (s + u))``, u ~ U[0, 1).
    (The TSM repo uses integer segment lengths and ignores the tail; float segments cover the
    whole video and give the same result when ``total`` is a multiple of ``num_frames``.)
  - test: segment centres ``int(tick * s + tick / 2)`` (identical to the TSM repo).
  - ``twice``: the TSM repo's "twice sample" test: starts ``int(tick * s)`` then centres, 2 views.
  - ``num_clips > 1`` at test: view ``c`` takes the point at fraction ``(c + 0.5) / num_clips``
    inside each segment (``num_clips=1`` gives the centres).

Dense sampling (I3D / SlowFast / TimeSformer, and TSM's ``dense_sample``): ``clip_len`` frames
``frame_interval`` apart, a window spanning ``(clip_len - 1) * frame_interval + 1`` frames.
  - train: the window starts uniformly at random among the positions where it fits.
  - test: ``num_clips`` windows whose starts are spread uniformly (the centres of
    ``num_clips`` equal parts of the valid start range; one clip = the middle window).
  - a video shorter than the window loops (``index % total``), as TSM and mmaction2 do.
"""
from __future__ import annotations

import numpy as np


def _check(total: int, n: int, what: str) -> None:
    if total < 1:
        raise ValueError(f"video has {total} frames; need at least 1 to sample from")
    if n < 1:
        raise ValueError(f"{what} must be >= 1, got {n}")


def segment_indices(num_frames: int, total: int, *, train: bool,
                    rng: np.random.Generator | None = None, num_clips: int = 1,
                    twice: bool = False) -> np.ndarray:
    """TSN segment sampling; returns ``(views, num_frames)`` frame indices (see module doc)."""
    _check(total, num_frames, "num_frames")
    tick = total / num_frames
    starts = tick * np.arange(num_frames)  # (num_frames,) float segment starts
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        rows = [np.floor(starts + tick * rng.random((num_frames,)))
                for _ in range(num_clips)]
    elif twice:
        rows = [starts, starts + tick / 2.0]
    else:
        _check(total, num_clips, "num_clips")
        rows = [starts + tick * (c + 0.5) / num_clips for c in range(num_clips)]
    out = np.stack(rows).astype(np.int64)  # (views, num_frames)
    return np.clip(out, 0, total - 1)


def dense_indices(clip_len: int, total: int, *, frame_interval: int = 1, train: bool,
                  rng: np.random.Generator | None = None, num_clips: int = 1) -> np.ndarray:
    """Dense clip sampling; returns ``(num_clips, clip_len)`` frame indices (see module doc)."""
    _check(total, clip_len, "clip_len")
    _check(total, num_clips, "num_clips")
    if frame_interval < 1:
        raise ValueError(f"frame_interval must be >= 1, got {frame_interval}")
    span = (clip_len - 1) * frame_interval + 1
    max_start = max(total - span, 0)
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        starts = rng.integers(0, max_start + 1, size=num_clips)
    else:
        starts = np.floor((np.arange(num_clips) + 0.5) * (max_start + 1) / num_clips)
    offsets = np.arange(clip_len) * frame_interval  # (clip_len,)
    out = starts.astype(np.int64)[:, None] + offsets[None, :]  # (num_clips, clip_len)
    return out % total


def sample_indices(total: int, *, mode: str = "segment", num_frames: int = 8, train: bool,
                   rng: np.random.Generator | None = None, num_clips: int = 1,
                   twice: bool = False, clip_len: int | None = None,
                   frame_interval: int = 1) -> np.ndarray:
    """Dispatch to ``segment_indices`` / ``dense_indices``; ``(views, frames)`` indices.

    For ``mode="dense"`` the clip length is ``clip_len`` (default ``num_frames``).
    """
    if mode == "segment":
        return segment_indices(num_frames, total, train=train, rng=rng, num_clips=num_clips,
                               twice=twice)
    if mode == "dense":
        return dense_indices(clip_len or num_frames, total, frame_interval=frame_interval,
                             train=train, rng=rng, num_clips=num_clips)
    raise ValueError(f"unknown sampling mode {mode!r}; use 'segment' or 'dense'")
