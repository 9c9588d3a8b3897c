"""OpenVINO sessions for the same ONNX exports (``pip install 'vidcls[openvino]'``).

Why a second runtime: on a CPU that computes bf16 natively (AVX-512-BF16, AMX), OpenVINO's CPU
plugin runs the online step in bf16 at 1.6-1.9x onnxruntime's fp32 frames per second
(onnxruntime has no bf16 convolutions on a CPU); at fp32 it is no faster than onnxruntime
(0.92-1.01x, ``benchmarks/bench_online.py``). So ``precision`` follows the project's rule:
``auto`` is bf16 where the CPU computes it natively, fp32 elsewhere; ``fp32`` forces fp32.

OpenVINO reads the ONNX file itself (no conversion step): the graph, its state names and
shapes are the ONNX export's (:mod:`vidcls.export`). Each batch size gets its own compiled
model with static shapes (OpenVINO's fast path). The shift caches live in two sets of numpy
arrays shared with two infer requests -- one reads the set the other writes -- swapped each
frame, so no cache is copied or allocated per frame.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidcls.engine.runtime import resolve_precision
from vidcls.export.metadata import read_onnx_metadata

__all__ = ["OpenVinoStreamSession", "OpenVinoClassifier"]

#: vidcls precision -> OpenVINO's INFERENCE_PRECISION_HINT
_HINTS = {"fp32": "f32", "bf16": "bf16"}


def _require_openvino():
    try:
        import openvino as ov
    except ImportError:
        raise ValueError("the openvino backend needs OpenVINO: pip install 'vidcls[openvino]' "
                         "(or use --backend onnx)") from None
    return ov


def _read(path: str | Path):
    """The ONNX graph, read once (the file may be a temporary export that goes away)."""
    ov = _require_openvino()
    return ov.Core().read_model(str(path))


class _Compiled:
    """``source`` (a read model) compiled at batch ``batch`` (static shapes) with the session's
    settings."""

    def __init__(self, source, batch: int, threads: int | None, precision: str):
        ov = _require_openvino()
        core = ov.Core()
        model = source.clone()
        self.shapes = {i.get_any_name(): [batch, *[d.get_length()
                                                   for d in list(i.get_partial_shape())[1:]]]
                       for i in model.inputs}
        model.reshape(self.shapes)
        config = {"INFERENCE_PRECISION_HINT": _HINTS[precision], "PERFORMANCE_HINT": "LATENCY",
                  "NUM_STREAMS": 1}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.model = core.compile_model(model, "CPU", config)
        self.tensor = ov.Tensor


def _precision(precision: str) -> str:
    resolved = resolve_precision(precision, torch.device("cpu"))
    if resolved not in _HINTS:
        raise ValueError(f"the openvino backend runs fp32 or bf16, not {resolved}")
    return resolved


class OpenVinoStreamSession:
    """An online export run frame by frame by OpenVINO: ``step(frame (B, 3, S, S)) -> logits
    (B, K)`` (numpy), ``reset()``; the same interface as
    :class:`~vidcls.export.sessions.OnnxStreamSession`."""

    def __init__(self, path: str | Path, *, threads: int | None = None,
                 precision: str = "auto"):
        self.source, self.threads = _read(path), threads
        self.precision = _precision(precision)
        self.meta = read_onnx_metadata(path)
        if self.meta.get("kind") != "online":
            raise ValueError(f"{path} is not an online export (export it with online=True / "
                             "vidcls export --online)")
        self.state_names: list[str] = list(self.meta["state_names"])
        self._compiled: dict[int, tuple] = {}
        self._batch: int | None = None

    def _buffers(self, batch: int) -> tuple:
        if batch not in self._compiled:
            compiled = _Compiled(self.source, batch, self.threads, self.precision)
            frame = np.zeros(compiled.shapes["frame"], np.float32)
            sets = [[np.zeros(compiled.shapes[n], np.float32) for n in self.state_names]
                    for _ in range(2)]
            requests = []
            for k in range(2):  # request k reads set k and writes set 1 - k
                request = compiled.model.create_infer_request()
                request.set_tensor("frame", compiled.tensor(frame, shared_memory=True))
                for name, read, write in zip(self.state_names, sets[k], sets[1 - k]):
                    request.set_tensor(name, compiled.tensor(read, shared_memory=True))
                    request.set_tensor(name.replace("_in_", "_out_"),
                                       compiled.tensor(write, shared_memory=True))
                requests.append(request)
            self._compiled[batch] = (compiled, frame, sets, requests, [0])
        return self._compiled[batch]

    def reset(self) -> None:
        self._batch = None

    def step(self, frame) -> np.ndarray:
        frame = frame.numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
        if frame.ndim != 4:
            raise ValueError(f"step expects one frame per stream, (B, 3, H, W); got shape "
                             f"{frame.shape}")
        _, shared, sets, requests, current = self._buffers(frame.shape[0])
        if self._batch != frame.shape[0]:  # a new stream: zero caches
            for group in sets:
                for cache in group:
                    cache[:] = 0
            current[0], self._batch = 0, frame.shape[0]
        np.copyto(shared, frame)
        request = requests[current[0]]
        request.infer()
        current[0] ^= 1
        return np.array(request.get_tensor("logits").data, copy=True)


class OpenVinoClassifier:
    """An offline export run by OpenVINO: ``__call__(clip (B, T, 3, S, S)) -> logits (B, K)``."""

    def __init__(self, path: str | Path, *, threads: int | None = None,
                 precision: str = "auto"):
        self.source, self.threads = _read(path), threads
        self.precision = _precision(precision)
        self.meta = read_onnx_metadata(path)
        if self.meta.get("kind") != "offline":
            raise ValueError(f"{path} is an {self.meta.get('kind')!r} export; "
                             "OpenVinoClassifier runs offline ones")
        self._compiled: dict[int, object] = {}

    def __call__(self, clip) -> np.ndarray:
        clip = clip.numpy() if isinstance(clip, torch.Tensor) else np.asarray(clip)
        batch = clip.shape[0]
        if batch not in self._compiled:
            self._compiled[batch] = _Compiled(self.source, batch, self.threads,
                                              self.precision).model.create_infer_request()
        request = self._compiled[batch]
        request.infer({"clip": np.ascontiguousarray(clip, dtype=np.float32)})
        return np.array(request.get_tensor("logits").data, copy=True)
