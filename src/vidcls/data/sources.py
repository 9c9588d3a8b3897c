"""Frame sources: a video file, frame folder, camera or URL read frame by frame, in order.

``open_source(source)`` returns a ``FrameSource`` whose ``frames`` iterator yields
``(uint8 (H, W, 3) RGB, time in seconds or None)``; ``iter_frames(source)`` yields just the
frames. Unlike ``VideoReader`` (random access by frame index, for training), a source never
seeks or indexes the file first, so it also works on live input that has no end:

- a frame folder (``img_00001.jpg``...): ``FrameFolderReader``, one frame at a time;
- a camera: ``"0"`` (the platform's first camera: v4l2 / avfoundation / dshow) or
  ``/dev/videoN``;
- anything else PyAV opens: files, ``rtsp://`` / ``http://`` URLs.

A stream that breaks off (a dropped connection, a corrupt tail) ends with a warning instead
of an error. Frames are turned upright by the video's rotation flag (phone videos), as
``VideoReader`` does (``video.frame_to_rgb``).
"""
from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .video import FrameFolderReader, frame_to_rgb, tag_rotation


@dataclass
class FrameSource:
    """Decoded RGB frames ``uint8 (H, W, 3)`` with their times, plus the nominal rate."""

    frames: Iterator[tuple[np.ndarray, float | None]]
    fps: float | None
    name: str
    close: Any = None


def _camera_device(source: str) -> tuple[str, str | None]:
    """``"0"`` -> the platform's first camera (path, FFmpeg input format)."""
    if sys.platform.startswith("linux"):
        return f"/dev/video{source}", "v4l2"
    if sys.platform == "darwin":
        return source, "avfoundation"
    return f"video={source}", "dshow"


def _folder_frames(path: Path) -> FrameSource:
    reader = FrameFolderReader(path)

    def frames():
        for i in range(reader.num_frames):
            yield reader.get_frames([i])[0], None

    return FrameSource(frames(), None, str(path), reader.close)


def _pyav_frames(source: str, input_format: str | None, options: dict | None) -> FrameSource:
    import av

    try:
        container = av.open(source, "r", format=input_format, options=options or {})
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise ValueError(f"cannot open stream {source!r}: {err} (check the path / URL; a camera "
                         "is '0' or /dev/video0)") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{source!r} has no video stream")
    stream = container.streams.video[0]
    if Path(source).is_file():  # frame threading buffers frames: fine for files, not live
        stream.thread_type = "AUTO"
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else None
    rotation = tag_rotation(stream)  # used when frames carry no display matrix

    def frames():
        try:
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base) if frame.pts is not None and \
                    stream.time_base else None
                yield frame_to_rgb(frame, rotation), t
        except av.error.FFmpegError as err:  # a dropped connection or corrupt tail ends the
            warnings.warn(f"stream {source!r} ended early: {err}")  # stream, not the program
        finally:
            container.close()

    return FrameSource(frames(), fps, source, container.close)


def open_source(source: str | os.PathLike, *, input_format: str | None = None,
                options: dict | None = None) -> FrameSource:
    """Open a video file, frame folder, camera index / device or URL for sequential reading."""
    text = os.fspath(source)
    path = Path(text)
    if path.is_dir():
        return _folder_frames(path)
    if text.isdigit() and not path.exists():
        text, default_format = _camera_device(text)
        input_format = input_format or default_format
    elif text.startswith("/dev/video"):
        input_format = input_format or "v4l2"
    elif "://" not in text and not path.exists():
        raise FileNotFoundError(f"no video, frame folder or device at {text!r}")
    return _pyav_frames(text, input_format, options)


def iter_frames(source: str | os.PathLike, **kwargs) -> Iterator[np.ndarray]:
    """Just the RGB frames of ``source`` (see ``open_source``)."""
    src = open_source(source, **kwargs)
    for frame, _ in src.frames:
        yield frame
