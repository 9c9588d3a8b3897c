"""Encoding RGB frames to an H.264 video: the one video writer of vidcls (on PyAV).

``write_video(path, frames, fps)`` writes a whole clip (the synthetic datasets, the side-by-side
``explain.mp4``); ``VideoWriter`` takes frames one at a time (the annotated output of
``vidcls stream``, whose length is not known in advance). Both share one set of options:

- defaults keep colours faithful: ``pix_fmt="yuv444p"`` (no chroma subsampling, so small
  coloured shapes and heat maps stay intact), ``crf=10``, ``preset="ultrafast"``;
- ``pix_fmt="yuv420p"``, ``crf=23``, ``preset="veryfast"`` give a smaller file that every
  player opens (the stream overlay video).

Chroma-subsampled formats (anything but yuv444p) need even sizes, so frames are cropped to even
height and width there. The frame size is taken from the first frame.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np


class VideoWriter:
    """Write ``uint8 (H, W, 3)`` RGB frames one by one to ``path`` (libx264).

    ``threads``: encoder threads; ``1`` when the caller parallelises over files (a process pool
    rendering a dataset), ``None`` leaves FFmpeg's default. The parent folder is created.
    """

    def __init__(self, path: str | os.PathLike, fps: float | None = 12, *,
                 pix_fmt: str = "yuv444p", crf: int = 10, preset: str = "ultrafast",
                 threads: int | None = 1):
        self.path = Path(path)
        self.fps = fps or 25.0
        self.pix_fmt = pix_fmt
        self.options = {"preset": preset, "crf": str(crf)}
        self.threads = threads
        self._container = None
        self._stream = None

    def _open(self, height: int, width: int) -> None:
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), "w")
        rate = Fraction(self.fps).limit_denominator(1001)  # 29.97 -> 30000/1001
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = self.pix_fmt
        self._stream.options = dict(self.options)
        if self.threads is not None:
            self._stream.thread_type = "AUTO"
            self._stream.codec_context.thread_count = self.threads

    def _encodable(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` cropped to even sizes when the pixel format subsamples chroma."""
        if self.pix_fmt != "yuv444p":
            rgb = rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2]
        return np.ascontiguousarray(rgb)

    def write(self, rgb: np.ndarray) -> None:
        """Encode one ``uint8 (H, W, 3)`` frame (the first one fixes the video's size)."""
        import av

        rgb = self._encodable(rgb)
        if self._container is None:
            self._open(rgb.shape[0], rgb.shape[1])
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file (nothing is written when no frame came)."""
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 12, **options
                ) -> None:
    """Encode ``uint8 (T, H, W, 3)`` frames into ``path``; ``options`` as for ``VideoWriter``
    (default: H.264 yuv444p, crf 10, ultrafast, one encoder thread)."""
    with VideoWriter(path, fps, **options) as writer:
        for img in frames:
            writer.write(img)
