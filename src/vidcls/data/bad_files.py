"""Bad files: ``BadFileReport`` (the list of unusable videos, from training or a scan) and
the scan itself, ``check_records`` (``vidcls data check``).

During training ``VideoClipDataset`` replaces a bad file by the next record and names it in
the item's ``bad`` field; ``BadFileReport.update(batch)`` gathers those (from any
``DataLoader`` worker) into one report per epoch.

A scan finds the same files before training starts. Each record is checked in a worker
process (decoding is CPU-bound and a crashing decoder must not take the scan down):

  - ``mode="open"``: open the file and index its frames (catches missing, empty, non-video,
    audio-only and truncated files: the cheap checks);
  - ``mode="sample"`` (default): also decode the frames a test-time segment sampler reads
    (``num_frames`` segment centres) plus the last frame;
  - ``mode="full"``: decode every frame sequentially and compare the count with the index
    (catches damage in the middle of a file; as slow as decoding the dataset once).

The result is a ``BadFileReport`` (the same one training prints at the end of an epoch). The
scan also notes videos stored with a rotation flag (phone videos: ``rotated``), which the
readers turn upright.
"""
from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from .formats import VideoRecord
from .sampling import segment_indices
from .video import VideoDecodeError, VideoReader, open_video

logger = logging.getLogger("vidcls.data")


class NoUsableVideos(ValueError):
    """Every video a split served failed to decode: nothing to train on or to score.

    ``bad`` holds the ``"path: reason"`` entries, ``total`` the number of files; ``report``
    is where the bad-file report was written (``with_report``)."""

    def __init__(self, source: str, bad: Sequence[str], total: int, report: str | None = None):
        self.source, self.bad, self.total, self.report = source, list(bad), total, report
        failed = len({b.partition(": ")[0] for b in self.bad})
        what = f"all {total} files" if failed >= total else f"{failed} of {total} files"
        where = f" {report}" if report else ""
        super().__init__(f"no usable videos in {source}: {what} failed to decode (see the "
                         f"bad-file report{where}; `vidcls data check` lists them too)")

    def with_report(self, path: str | os.PathLike) -> "NoUsableVideos":
        """The same error, naming the report file written for it."""
        return NoUsableVideos(self.source, self.bad, self.total, str(path))


class BadFileReport:
    """Aggregates the ``bad`` entries of batches (from any worker) into one report per epoch.

    >>> report = BadFileReport()
    >>> for batch in loader: report.update(batch); ...
    >>> report.log()  # "2 bad files replaced 5 times: ..."
    """

    def __init__(self):
        self.files: dict[str, str] = {}  # path -> reason (first seen)
        self.substitutions = 0  # every replacement, including repeats of the same file
        self.checked = 0  # files looked at (``vidcls data check``)
        self.rotated: dict[str, int] = {}  # path -> clockwise degrees (``vidcls data check``)

    def add(self, path: str, reason: str) -> None:
        self.substitutions += 1
        self.files.setdefault(str(path), reason)

    def update(self, bad) -> "BadFileReport":
        """Add a batch dict (its ``"bad"`` list), a list of ``"path: reason"`` strings or of
        ``(path, reason)`` pairs, or another report."""
        if isinstance(bad, BadFileReport):
            self.substitutions += bad.substitutions
            self.checked += bad.checked
            for p, r in bad.files.items():
                self.files.setdefault(p, r)
            self.rotated.update(bad.rotated)
            return self
        if isinstance(bad, dict):
            bad = bad.get("bad", [])
        for item in bad:
            if isinstance(item, str):
                path, _, reason = item.partition(": ")
            else:
                path, reason = item
            self.add(path, reason)
        return self

    def __len__(self) -> int:
        return len(self.files)

    def summary(self, limit: int | None = 20) -> str:
        if not self.files:
            return "no bad files" + (f" ({self.checked} checked)" if self.checked else "")
        head = f"{len(self.files)} bad file{'s' * (len(self.files) != 1)}"
        if self.checked:
            head += f" of {self.checked} checked"
        if self.substitutions > len(self.files):
            head += f", replaced {self.substitutions} times"
        items = sorted(self.files.items())
        lines = [f"  {p}: {r}" for p, r in items[:limit]]
        if limit is not None and len(items) > limit:
            lines.append(f"  ... and {len(items) - limit} more")
        return head + ":\n" + "\n".join(lines)

    def rotation_summary(self) -> str:
        """``"rotated 90°: 2, rotated 270°: 1 (turned upright when read)"``, or ``""``."""
        if not self.rotated:
            return ""
        counts: dict[int, int] = {}
        for degrees in self.rotated.values():
            counts[degrees] = counts.get(degrees, 0) + 1
        parts = ", ".join(f"rotated {d}°: {n}" for d, n in sorted(counts.items()))
        return f"{parts} (phone videos; their frames are turned upright when read)"

    def log(self, log: logging.Logger | None = None, prefix: str = "") -> None:
        """Warn with the summary when there were bad files (silent otherwise)."""
        if self.files:
            (log or logger).warning("%s%s", prefix, self.summary())

    def write(self, path: str | os.PathLike) -> None:
        """Write ``path<TAB>reason`` lines (or JSON when the name ends in .json)."""
        p = Path(path)
        if p.suffix == ".json":
            p.write_text(json.dumps({"checked": self.checked, "substitutions": self.substitutions,
                                     "bad_files": self.files, "rotated": self.rotated},
                                    indent=2) + "\n")
        else:
            p.write_text("".join(f"{k}\t{v}\n" for k, v in sorted(self.files.items())))


# --------------------------------------------------------------------------- the scan
MODES = ("open", "sample", "full")


def inspect_video(path: str, *, mode: str = "sample", num_frames: int = 8,
                  known_frames: int | None = None, filename_tmpl: str | None = None
                  ) -> tuple[str | None, int]:
    """``(why path is unusable or None, its rotation in clockwise degrees)``."""
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
                        return f"only {n} of {total} frames decode (damaged stream)", 0
                else:
                    reader.get_frames(range(total))
            return None, reader.rotation
    except VideoDecodeError as e:
        return e.reason, 0
    except Exception as e:  # anything else a broken file can provoke
        return f"{type(e).__name__}: {e}".splitlines()[0][:200], 0


def check_video(path: str, *, mode: str = "sample", num_frames: int = 8,
                known_frames: int | None = None, filename_tmpl: str | None = None
                ) -> str | None:
    """Why ``path`` (a video file or frame folder) is unusable, or ``None`` when it is fine."""
    return inspect_video(path, mode=mode, num_frames=num_frames, known_frames=known_frames,
                         filename_tmpl=filename_tmpl)[0]


def _check_one(args: tuple) -> tuple[str, str | None, int]:
    path, kwargs = args
    return (path, *inspect_video(path, **kwargs))


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
        for n, (path, reason, rotation) in enumerate(results, 1):
            report.checked += 1
            if reason is not None:
                report.add(path, reason)
            if rotation:
                report.rotated[path] = rotation
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
