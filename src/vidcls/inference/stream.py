"""``vidcls stream``: classify a live video frame by frame with an online TSM.

    >>> from vidcls.inference.stream import stream_predictions
    >>> for rec in stream_predictions("clip.mp4", "ckpt/", backend="torch"):
    ...     print(rec["frame"], rec["label"], f"{rec['latency_ms']:.1f} ms")

A source is a video file, a frame folder, a camera (``0`` or ``/dev/video0``) or anything
PyAV opens (``rtsp://``, ``http://`` URLs), read by ``vidcls.data.sources``. Every frame is
preprocessed by the checkpoint's own test transform (``Preprocessing.eval_transform``: short
side resized to ``resize``, centre crop ``input_size``), normalised with its mean/std, and fed
to the model's step function: one 2-D CNN frame of compute, the shift caches carried over
(:class:`vidcls.models.online_tsm.OnlineTSM`, or its ONNX export with ``backend="onnx"``
(onnxruntime) or ``backend="openvino"`` (OpenVINO: bf16 where the CPU computes it natively,
1.6-1.9x onnxruntime's fp32 there; ``benchmarks/bench_online.py``)). The
prediction is the arg-max of the logits averaged over the last
``smooth`` frames (the TSM authors' demo averages 12).

Models: a unidirectional TSM streams exactly (per-frame logits equal the offline
unidirectional model's); a TSN has independent frames and streams too. A bidirectional TSM
looks at future frames and TimeSformer at whole clips, so both are refused with a clear error
(:func:`vidcls.models.online_tsm.check_streamable`).

Each frame gives a record: ``frame`` (index), ``time`` (seconds, from the stream's timestamps
when it has them), ``label``, ``index``, ``score`` (softmax of the smoothed logits),
``top`` (the ``top_k`` labels), ``latency_ms`` (preprocess + model), ``fps`` (frames handled
per second of wall time over the last second). :class:`StreamStats` gives the summary.
"""
from __future__ import annotations

import os
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from vidcls.data.sources import iter_frames, open_source  # iter_frames: re-exported
from vidcls.data.transforms import normalize
from vidcls.data.writer import VideoWriter
from vidcls.engine.checkpoint import load_model, read_preprocessing
from vidcls.engine.inference import prepare_for_inference
from vidcls.engine.runtime import autocast_context, resolve_precision
from vidcls.models.online_tsm import OnlineTSM, check_streamable

__all__ = ["StreamPredictor", "StreamStats", "AnnotatedWriter", "open_source", "iter_frames",
           "stream_predictions", "overlay_text", "BACKENDS"]

BACKENDS = ("torch", "onnx", "openvino")


# ------------------------------------------------------------------------------ backends
class _TorchBackend:
    """OnlineTSM step (TSN: the backbone on one frame; its frames are independent)."""

    def __init__(self, model: nn.Module, precision: str = "fp32"):
        self.model = model
        self.precision = precision
        self.online = OnlineTSM(model) if model.tsm is not None else None

    def reset(self) -> None:
        if self.online is not None:
            self.online.reset()

    @torch.no_grad()
    def __call__(self, frame: torch.Tensor) -> np.ndarray:
        with autocast_context(torch.device("cpu"), self.precision):
            if self.online is not None:
                logits = self.online.step(frame)  # (1, K)
            else:
                feats = self.model.backbone.forward_features(frame)  # (1, C)
                logits = self.model.forward_head(feats[:, None])  # (1, 1, C) -> (1, K)
        return logits[0].float().cpu().numpy()


class _OnnxBackend:
    """The same step through an ONNX runtime: the online export for TSM (shift caches as
    inputs/outputs), a one-frame offline export for TSN. ``runtime="onnxruntime"`` (fp32, or
    int8 for an int8 export) or ``"openvino"`` (``precision``: fp32, or bf16 where native)."""

    def __init__(self, model: nn.Module, meta: dict, size: int, onnx_path: str | Path | None,
                 threads: int | None, runtime: str = "onnxruntime", precision: str = "fp32"):
        from vidcls.export import export_onnx

        self.runtime, self.precision = runtime, precision
        online = model.tsm is not None
        if onnx_path is None:  # export now; the session holds the graph, the file can go
            with tempfile.TemporaryDirectory(prefix="vidcls-stream-") as tmp:
                path = Path(tmp) / "model.onnx"
                export_onnx(model, path, online=online, input_size=size, num_frames=1,
                            meta=meta)
                self._open(path, online, threads)
        else:
            if not Path(onnx_path).is_file():
                raise FileNotFoundError(f"ONNX file {onnx_path} does not exist; export one with "
                                        f"`vidcls export CKPT --online -o {onnx_path}` or drop "
                                        f"--onnx to export on the fly")
            self._open(onnx_path, online, threads)

    def _open(self, path: str | Path, online: bool, threads: int | None) -> None:
        if self.runtime == "openvino":
            from vidcls.export.openvino_session import (OpenVinoClassifier,
                                                        OpenVinoStreamSession)
            stream_cls, clip_cls = OpenVinoStreamSession, OpenVinoClassifier
            options = {"threads": threads, "precision": self.precision}
        else:
            from vidcls.export import OnnxClassifier, OnnxStreamSession
            stream_cls, clip_cls = OnnxStreamSession, OnnxClassifier
            options = {"threads": threads}
        if online:
            self.session = stream_cls(path, **options)
            self.run = self.session.step
        else:
            classifier = clip_cls(path, **options)
            self.session = None
            self.run = lambda frame: classifier(frame[:, None])  # (1, 1, 3, S, S)

    def reset(self) -> None:
        if self.session is not None:
            self.session.reset()

    def __call__(self, frame: torch.Tensor) -> np.ndarray:
        return np.asarray(self.run(frame.numpy()))[0]


# ------------------------------------------------------------------------------ predictor
class StreamPredictor:
    """Frame-in, prediction-out: preprocessing, the model step, smoothing.

    ``StreamPredictor(checkpoint, backend="torch" | "onnx" | "openvino", smooth=12)``;
    ``step(rgb uint8 (H, W, 3)) -> record dict`` (see the module docstring); ``reset()`` starts
    a new stream. ``onnx_path`` reuses an online export instead of exporting on the fly (also
    an int8 one, ``vidcls export --online --int8``, with ``backend="onnx"``);
    ``warmup`` runs one blank frame first so the first real frame's latency is representative.
    """

    def __init__(self, checkpoint: str | Path | None = None, *, model: nn.Module | None = None,
                 meta: dict | None = None, backend: str = "torch", smooth: int = 12,
                 top_k: int = 1, onnx_path: str | Path | None = None,
                 threads: int | None = None, warmup: bool = True, precision: str = "auto"):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; use one of {BACKENDS}")
        if smooth < 1:
            raise ValueError(f"smooth must be >= 1 frame, got {smooth}")
        owned = model is None  # loaded here: its batch norms may be folded (torch backend)
        if model is None:
            if checkpoint is None:
                raise ValueError("give a checkpoint (or a model with its meta)")
            model, meta = load_model(checkpoint)
        if meta is None:
            raise ValueError("a model passed directly needs its meta (classes, preprocessing)")
        model = model.eval().float().cpu()
        check_streamable(model)
        self.model, self.meta = model, meta
        self.classes = list(meta["classes"])
        self.multi_label = bool(meta.get("multi_label", False))
        self.preprocessing = read_preprocessing(meta, model)
        self._transform = self.preprocessing.eval_transform(num_crops=1)  # square crops only
        self.size = self.preprocessing.crop_hw[0]
        self.mean, self.std = self.preprocessing.mean, self.preprocessing.std
        self.smooth = int(smooth)
        self.top_k = max(1, min(int(top_k), len(self.classes)))
        self.backend_name = backend
        if backend == "torch":  # the fast path: channels_last CNN, native bf16 where there is
            self.precision = prepare_for_inference(model, torch.device("cpu"), precision,
                                                   fold_batchnorm=owned)
            self.backend = _TorchBackend(model, self.precision)
        elif backend == "openvino":  # bf16 where native too (OpenVINO's inference precision)
            self.precision = resolve_precision(precision, torch.device("cpu"))
            self.backend = _OnnxBackend(model, meta, self.size, onnx_path, threads,
                                        runtime="openvino", precision=self.precision)
        else:  # onnxruntime runs the graph as exported: fp32 (or an int8 export)
            self.precision = "fp32"
            self.backend = _OnnxBackend(model, meta, self.size, onnx_path, threads)
        self._history: deque[np.ndarray] = deque(maxlen=self.smooth)
        self._count = 0
        if warmup:  # first-call costs (kernel selection, cache shapes) stay out of the stats
            self.backend(torch.zeros(1, 3, self.size, self.size))
            self.reset()

    def reset(self) -> None:
        self.backend.reset()
        self._history.clear()
        self._count = 0

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        """``uint8 (H, W, 3)`` -> normalised ``(1, 3, S, S)``: the checkpoint's test transform."""
        clip = self._transform(np.ascontiguousarray(rgb)[None])  # (1, 3, S, S) uint8
        return normalize(clip, self.mean, self.std)  # (1, 3, S, S) float

    def step(self, rgb: np.ndarray, time_s: float | None = None) -> dict:
        start = time.perf_counter()
        logits = self.backend(self.preprocess(rgb))  # (K,)
        latency = (time.perf_counter() - start) * 1e3
        self._history.append(np.asarray(logits, dtype=np.float64))
        smoothed = np.mean(self._history, axis=0)  # (K,) mean of the last `smooth` frames
        if self.multi_label:  # independent classes: each its own sigmoid, as predict gives
            probs = 1.0 / (1.0 + np.exp(-smoothed))
        else:
            probs = np.exp(smoothed - smoothed.max())
            probs /= probs.sum()
        order = np.argsort(-smoothed)[:self.top_k]
        record = {"frame": self._count, "time": time_s, "label": self.classes[int(order[0])],
                  "index": int(order[0]), "score": float(probs[order[0]]),
                  "top": [{"label": self.classes[int(i)], "index": int(i),
                           "score": float(probs[i])} for i in order],
                  "latency_ms": latency, "logits": np.asarray(logits)}
        self._count += 1
        return record


@dataclass
class StreamStats:
    """Running summary: frames, latency mean / p95 (ms), wall-clock frames per second."""

    latencies: list[float] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)
    _recent: deque = field(default_factory=lambda: deque(maxlen=256))

    def add(self, latency_ms: float) -> float:
        """Record one frame; returns the fps over the last second of wall time."""
        now = time.perf_counter()
        self.latencies.append(latency_ms)
        self._recent.append(now)
        while len(self._recent) > 1 and now - self._recent[0] > 1.0:
            self._recent.popleft()
        span = now - self._recent[0]
        if len(self._recent) > 1 and span > 0:
            return (len(self._recent) - 1) / span
        return 1e3 / latency_ms if latency_ms > 0 else 0.0

    def summary(self) -> dict:
        lat = np.asarray(self.latencies, dtype=np.float64)
        wall = time.perf_counter() - self.start
        return {"frames": int(lat.size),
                "mean_latency_ms": float(lat.mean()) if lat.size else None,
                "p95_latency_ms": float(np.percentile(lat, 95)) if lat.size else None,
                "fps": float(lat.size / wall) if wall > 0 and lat.size else None,
                "model_fps": float(1e3 / lat.mean()) if lat.size and lat.mean() > 0 else None,
                "wall_s": wall}


def stream_predictions(source: str | os.PathLike, checkpoint: str | Path | None = None, *,
                       predictor: StreamPredictor | None = None, backend: str = "torch",
                       smooth: int = 12, top_k: int = 1, max_frames: int | None = None,
                       stats: StreamStats | None = None, with_frames: bool = False,
                       input_format: str | None = None, onnx_path: str | Path | None = None,
                       threads: int | None = None,
                       output: str | os.PathLike | None = None,
                       precision: str = "auto") -> Iterator[dict]:
    """Yield one prediction record per frame of ``source`` (see the module docstring).

    ``with_frames=True`` adds the decoded RGB frame as ``record["image"]`` (for drawing);
    ``stats`` collects the summary as frames go by (pass your own to read it afterwards).
    ``output``: also write the video there with each frame's prediction drawn on it
    (:class:`AnnotatedWriter`, :func:`overlay_text`) at the source's frame rate (25 fps when
    the source has none); the file is finished when the stream ends, is closed or is
    interrupted. The source is opened on the first ``next()``, so a missing one raises
    ``FileNotFoundError`` there.
    """
    if predictor is None:
        predictor = StreamPredictor(checkpoint, backend=backend, smooth=smooth, top_k=top_k,
                                    onnx_path=onnx_path, threads=threads, precision=precision)
    stats = stats if stats is not None else StreamStats()
    src = open_source(source, input_format=input_format)
    writer = AnnotatedWriter(output, fps=src.fps) if output is not None else None
    if not stats.latencies:
        stats.start = time.perf_counter()  # wall time counts from the stream, not model loading
    count = 0
    try:
        for rgb, t in src.frames:
            if max_frames is not None and count >= max_frames:
                break
            count += 1
            record = predictor.step(rgb, t)
            record["fps"] = stats.add(record["latency_ms"])
            if writer is not None:
                writer.write(rgb, overlay_text(record))
            if with_frames:
                record["image"] = rgb
            yield record
    finally:
        if src.close is not None:
            src.close()
        if writer is not None:
            writer.close()


# ------------------------------------------------------------------------------ output video
class AnnotatedWriter:
    """Writes frames with the prediction drawn on top (PIL ``ImageDraw``, default font) to an
    H.264 video (``vidcls.data.writer.VideoWriter``: yuv420p, so sizes are cropped to even)."""

    def __init__(self, path: str | Path, fps: float | None = None):
        self.path = Path(path)
        self.fps = fps or 25.0
        self._writer = VideoWriter(self.path, self.fps, pix_fmt="yuv420p", crf=23,
                                   preset="veryfast", threads=None)

    @staticmethod
    def draw(rgb: np.ndarray, text: str) -> np.ndarray:
        """``rgb`` with ``text`` on a dark band at the top."""
        from PIL import Image, ImageDraw, ImageFont

        image = Image.fromarray(np.ascontiguousarray(rgb))
        draw = ImageDraw.Draw(image)
        font = ImageFont.load_default()
        left, top, right, bottom = draw.textbbox((4, 3), text, font=font)
        draw.rectangle((0, 0, image.width, bottom + 3), fill=(0, 0, 0))
        draw.text((4, 3), text, fill=(255, 255, 255), font=font)
        return np.asarray(image)

    def write(self, rgb: np.ndarray, text: str) -> None:
        self._writer.write(self.draw(rgb, text))

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> "AnnotatedWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def overlay_text(record: dict) -> str:
    """The line drawn on annotated frames."""
    return (f"{record['label']}  {100 * record['score']:.0f}%  |  "
            f"{record['latency_ms']:.1f} ms  {record['fps']:.1f} fps")
