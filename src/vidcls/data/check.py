"""Scan a dataset for files that would be skipped during training (``vidcls data check``).

Each record is checked in a worker process (decoding is CPU-bound and a crashing decoder must
not take the scan down):

  - ``mode="open"``: open the file and index its frames (catches missing, empty, non-video,
    audio-only and truncated files: the cheap checks);
  - ``mode="sample"`` (default): also decode the frames a test-time segment sampler reads
    (``num_frames`` segment centres) plus the last frame;
  - ``mode="full"``: decode every frame sequentially and compare the count with the index
    (catches damage in the middle of a file; as slow as decoding the dataset once).

The result is a ``BadFileReport`` (same as the one training prints at the end of an epoch).
"""
from __future__ import annotations

import multiprocessing as mp
import sys
import time
from typing import Sequence

from .datasets import BadFileReport, VideoRecord
from .sampling import segment_indices
from .video import VideoDecodeError, VideoReader, open_video

MODES = ("open", "sample", "full")


def check_video(path: str, *, mode: str = "sample", num_frames: int = 8,
                known_frames: int | None = None, filename_tmpl: str | None = None
                ) -> str | None:
    """Why ``path`` (a video file or frame folder) is unusable, or ``None`` when it is fine."""
    if mode not in MODES:
        raise ValueError(f"unknown check mode {mode!r}; use one of {', '.join(MODES)}")
    try:
        with open_video(path, filename_tmpl=filename_tmpl, num_frames=known_frames) as reader:
            total = reader.num_frames
            if mode == "sample":
                idx = segment_indices(num_frames, total, train=False)[0].tolist()
                reader.get_frames(sorted(set(idx + [total - 1])))
            elif mode == "full":
                if isinstance(reader, VideoReader):
                    n = len(reader.decode_all())
                    if n != total:
                        return f"only {n} of {total} frames decode (damaged stream)"
                else:
                    reader.get_frames(range(total))
    except VideoDecodeError as e:
        return e.reason
    except Exception as e:  # anything else a broken file can provoke
        return f"{type(e).__name__}: {e}".splitlines()[0][:200]
    return None


def _check_one(args: tuple) -> tuple[str, str | None]:
    path, kwargs = args
    return path, check_video(path, **kwargs)


def check_records(records: Sequence[VideoRecord], *, workers: int = 2, mode: str = "sample",
                  num_frames: int = 8, filename_tmpl: str | None = None,
                  progress: bool = False) -> BadFileReport:
    """Check every record (in ``workers`` processes; 0 = in this process)."""
    if mode not in MODES:
        raise ValueError(f"unknown check mode {mode!r}; use one of {', '.join(MODES)}")
    jobs = [(r.path, dict(mode=mode, num_frames=num_frames, known_frames=r.num_frames,
                          filename_tmpl=filename_tmpl)) for r in records]
    report = BadFileReport()
    start = time.monotonic()

    def consume(results):
        for n, (path, reason) in enumerate(results, 1):
            report.checked += 1
            if reason is not None:
                report.add(path, reason)
            if progress and (n % 100 == 0 or n == len(jobs)):
                print(f"\rchecked {n}/{len(jobs)}, {len(report)} bad, "
                      f"{time.monotonic() - start:.0f} s", end="", file=sys.stderr, flush=True)
        if progress:
            print(file=sys.stderr)

    if workers <= 0 or len(jobs) < 2:
        consume(map(_check_one, jobs))
    else:
        with mp.get_context().Pool(min(workers, len(jobs))) as pool:
            chunk = max(1, min(16, len(jobs) // (4 * workers)))
            consume(pool.imap(_check_one, jobs, chunksize=chunk))
    return report
