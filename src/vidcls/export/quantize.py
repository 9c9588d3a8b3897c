"""int8 post-training quantization of an online export, calibrated on the frames of a few clips.

onnxruntime's static quantization: weights int8 per output channel, activations uint8 with
one scale per tensor, chosen from the ranges the fp32 model shows on calibration data (the
``MinMax`` method), written as QuantizeLinear / DequantizeLinear pairs (QDQ) that onnxruntime
runs as int8 convolutions (VNNI where the CPU has it). The shift caches are activations like
any other: the calibration streams each clip frame by frame through the fp32 step, so every
frame is seen with the caches a real stream would carry.

The graph is first put through onnxruntime's quantization pre-processing (shape inference,
constant folding): on the traced graph as it is, TSM-MobileNetV2 int8 runs 2x *slower* than
fp32 (its ReLU6 clips stay unfused between the QDQ pairs); pre-processed, 1.6x faster.

How close int8 is to fp32 is a measurement, not a promise: :func:`int8_agreement` gives the
share of frames whose top-1 class is the same and the largest softmax difference, on clips
you choose (``vidcls export --int8`` prints it on the calibration clips).

Calibration input (:func:`calibration_sources`): video files, frame folders, folders of videos,
or text lists of those (one per line, ``#`` comments; relative paths from the list's folder;
a trailing label column is ignored).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from vidcls.data.sources import iter_frames
from vidcls.data.transforms import normalize
from vidcls.data.video import VIDEO_EXTENSIONS
from vidcls.export.metadata import read_onnx_metadata, set_metadata
from vidcls.export.sessions import OnnxStreamSession
from vidcls.models import Preprocessing

__all__ = ["calibration_sources", "calibration_clips", "quantize_online", "int8_agreement",
           "LIST_SUFFIXES"]

#: a calibration path with one of these suffixes is a list of paths, not a video
LIST_SUFFIXES = (".txt", ".lst", ".list", ".csv")


def _list_entries(path: Path) -> list[Path]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read the calibration list {path} ({err}); give a text file "
                         "with one video per line") from None
    entries = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for text in (line, line.split(",")[0].strip(), line.rsplit(None, 1)[0]):
            candidate = Path(text) if Path(text).is_absolute() else path.parent / text
            if candidate.exists():
                entries.append(candidate)
                break
        else:
            raise ValueError(f"calibration list {path}: {line!r} does not exist (paths are "
                             f"read relative to {path.parent})")
    return entries


def calibration_sources(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The videos / frame folders named by ``paths`` (see the module docstring); a missing
    path, an unreadable list or no source at all raises a one-line ``ValueError``."""
    sources: list[Path] = []
    for text in paths:
        path = Path(text)
        if not path.exists():
            raise ValueError(f"calibration input {path} does not exist; give video files, "
                             "frame folders or a text list of them")
        if path.is_dir():
            videos = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
            sources += videos or [path]  # no videos inside: a frame folder
        elif path.suffix.lower() in LIST_SUFFIXES:
            sources += _list_entries(path)
        else:
            sources.append(path)
    if not sources:
        raise ValueError("no calibration clips: give a few videos (or a list of them) that "
                         "look like what the model will see")
    return sources


def calibration_clips(sources: Sequence[str | os.PathLike], preprocessing: Preprocessing, *,
                      frames: int = 16) -> list[np.ndarray]:
    """The first ``frames`` frames of each source, as the stream preprocesses them:
    ``float32 (T, 3, S, S)`` each (the model card's test transform, normalised)."""
    transform = preprocessing.eval_transform(num_crops=1)
    clips = []
    for source in sources:
        rgb = []
        try:
            for frame in iter_frames(source):
                rgb.append(frame)
                if len(rgb) == frames:
                    break
        except Exception as err:  # PyAV's errors have many types; one line for the user
            raise ValueError(f"cannot decode calibration clip {source}: {err}") from None
        if not rgb:
            raise ValueError(f"calibration clip {source} has no frames")
        clip = transform(np.stack(rgb))  # (T, 3, S, S) uint8
        clips.append(normalize(clip, preprocessing.mean, preprocessing.std).numpy())
    return clips


def _stream_feeds(session: OnnxStreamSession, clips: Sequence[np.ndarray]) -> Iterator[dict]:
    """The inputs of every step of every clip, with the caches of the fp32 stream."""
    for clip in clips:
        state = session.initial_state(1)
        for frame in clip:
            frame = np.ascontiguousarray(frame[None], dtype=np.float32)  # (1, 3, S, S)
            yield {"frame": frame, **dict(zip(session.state_names, state))}
            _, state = session.step_with_state(frame, state)


def quantize_online(fp32_path: str | Path, out_path: str | Path,
                    clips: Sequence[np.ndarray]) -> Path:
    """Write the int8 form of the online export ``fp32_path`` to ``out_path``, calibrated on
    ``clips`` (``float32 (T, 3, S, S)`` each, preprocessed: :func:`calibration_clips`). The
    ``vidcls.*`` metadata is kept; ``vidcls.quantization`` records how it was made."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not clips:
        raise ValueError("no calibration clips: give a few videos that look like what the "
                         "model will see")
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    meta = onnx.load(str(fp32_path), load_external_data=False).metadata_props
    props = {p.key: p.value for p in meta}
    if read_onnx_metadata(fp32_path).get("kind") != "online":
        raise ValueError(f"{fp32_path} is not an online export; int8 is for online ones "
                         "(export with --online)")
    session = OnnxStreamSession(fp32_path)

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = _stream_feeds(session, clips)

        def get_next(self):
            return next(self.feeds, None)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vidcls-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out_path), _Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
    proto = onnx.load(str(out_path))
    props["vidcls.quantization"] = json.dumps({
        "method": "onnxruntime static, QDQ, weights int8 per channel, activations uint8",
        "calibration_clips": len(clips),
        "calibration_frames": int(sum(len(c) for c in clips))})
    set_metadata(proto, props)
    onnx.save(proto, str(out_path))
    return out_path


def int8_agreement(fp32_path: str | Path, int8_path: str | Path,
                   clips: Sequence[np.ndarray]) -> dict:
    """Stream ``clips`` through both exports; per frame, compare the top-1 class and the
    softmax. Returns ``{"frames", "top1_agreement" (fraction), "max_prob_diff"}``."""
    sessions = [OnnxStreamSession(fp32_path), OnnxStreamSession(int8_path)]
    same, total, max_diff = 0, 0, 0.0
    for clip in clips:
        for session in sessions:
            session.reset()
        for frame in clip:
            logits = [torch.from_numpy(s.step(frame[None]))[0] for s in sessions]  # (K,) each
            probs = [x.double().softmax(0) for x in logits]
            same += int(logits[0].argmax() == logits[1].argmax())
            max_diff = max(max_diff, float((probs[0] - probs[1]).abs().max()))
            total += 1
    return {"frames": total, "top1_agreement": same / max(total, 1), "max_prob_diff": max_diff}

