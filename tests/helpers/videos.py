"""Small video files for the data tests, encoded with PyAV on the fly (fast, deterministic)."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def moving_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """``uint8 (n, h, w, 3)``: a smooth random texture panning 1 px right and 1/2 px down per
    frame, so every frame differs from its neighbours (an off-by-one shows) and the encoder
    finds motion to predict (P and B frames)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h + n, w + n, 3)).astype(np.int32)
    base = (base + np.roll(base, 1, 0) + np.roll(base, 1, 1) + np.roll(base, 1, (0, 1))) // 4
    frames = [base[i // 2: i // 2 + h, i: i + w] for i in range(n)]
    out = np.stack(frames).astype(np.uint8)
    out[:, :4, :4] = (np.arange(n) * 37 % 256)[:, None, None, None]  # per-frame marker
    return out


def encode(path, frames: np.ndarray, *, codec: str = "libx264", fmt: str | None = None,
           pix_fmt: str = "yuv420p", rate: int = 25, gop: int | None = 5,
           bframes: int | None = None, options: dict | None = None,
           container_options: dict | None = None, pts: list[int] | None = None,
           display_ccw: int | None = None, rotate_tag: int | None = None) -> Path:
    """Encode ``uint8 (T, H, W, 3)`` frames to ``path``. ``pts`` (in 1/rate units) makes a
    variable-frame-rate stream. A phone's rotation flag: ``display_ccw`` writes a display
    matrix (counter-clockwise degrees, what FFmpeg reads back as ``frame.rotation``; a
    portrait iPhone clip has -90), ``rotate_tag`` an old-style ``rotate`` tag (clockwise;
    Matroska keeps it)."""
    path = Path(path)
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as c:
        s = c.add_stream(codec, rate=rate)
        s.height, s.width = frames.shape[1:3]
        s.pix_fmt = pix_fmt
        if display_ccw is not None:
            s.set_display_rotation(display_ccw)
        if rotate_tag is not None:
            s.metadata["rotate"] = str(rotate_tag)
        if gop is not None:
            s.codec_context.gop_size = gop
        if bframes is not None:
            s.codec_context.max_b_frames = bframes
        s.options = dict(options or {})
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if pts is not None:
                frame.pts = pts[i]
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


X264_BFRAMES = {"preset": "veryfast", "x264-params": "bframes=3:b-pyramid=normal:scenecut=0"}


def reference_decode(path) -> np.ndarray:
    """Every frame of a plain sequential PyAV decode: the ground truth for frame indices."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def write_rawframes(directory, frames: np.ndarray, tmpl: str = "img_{:05d}.jpg",
                    start: int = 1) -> Path:
    """Write frames as images (jpg/png from the template's extension)."""
    from PIL import Image

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(frames):
        Image.fromarray(img).save(d / tmpl.format(i + start), quality=95)
    return d


def write_audio_only(path) -> Path:
    """An mp4 holding one AAC audio stream and no video."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate = 16000
            frame.pts = i * 1024
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return Path(path)


def make_bad_files(directory, good: Path) -> dict[str, Path]:
    """One file of each bad kind, next to a copy source ``good`` (a faststart-less mp4)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    data = good.read_bytes()
    out = {"missing": d / "missing.mp4", "empty": d / "empty.mp4",
           "truncated": d / "truncated.mp4", "not_video": d / "notes.mp4",
           "audio_only": d / "audio.mp4", "undecodable": d / "garbled.mp4"}
    out["empty"].write_bytes(b"")
    out["truncated"].write_bytes(data[: len(data) * 6 // 10])
    out["not_video"].write_text("this is a text file, not a video\n" * 20)
    write_audio_only(out["audio_only"])
    # valid container, video payload replaced by noise: opens, then fails to decode
    faststart = d / "faststart.mp4"
    encode(faststart, moving_frames(12, 32, 32), container_options={"movflags": "faststart"})
    raw = bytearray(faststart.read_bytes())
    start = raw.find(b"mdat") + 8
    raw[start:] = np.random.default_rng(0).integers(0, 256, len(raw) - start,
                                                    dtype=np.uint8).tobytes()
    out["undecodable"].write_bytes(bytes(raw))
    faststart.unlink()
    return out
