"""onnxruntime sessions for exported models: whole clips, and streams frame by frame.

A stream step hands the shift caches from one frame to the next. Through ``session.run``
every call converts each cache to an onnxruntime value and allocates and copies every output
back to numpy: for TSM-MobileNetV2 (10 caches, ~4 ms a frame) that is about 5 % of the step.
:class:`OnnxStreamSession` binds the caches instead (``IOBinding``): two sets of buffers, one
read while the other is written, swapped each frame, so the caches never leave onnxruntime and
nothing is allocated per frame; only the logits come back as numpy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vidcls.export.metadata import read_onnx_metadata

__all__ = ["onnx_session", "OnnxClassifier", "OnnxStreamSession"]


def onnx_session(path: str | Path, *, threads: int | None = None):
    """An onnxruntime CPU session (``threads``: intra-op threads, default onnxruntime's).

    Graph optimisation is onnxruntime's default, ``ORT_ENABLE_ALL`` (its NCHWc convolution
    layout is 2.4x faster than without on TSM-MobileNetV2 here); errors only in the log.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), sess_options=options,
                                providers=["CPUExecutionProvider"])


class OnnxClassifier:
    """An exported offline model: ``__call__(clip (B, T, 3, S, S) float) -> logits (B, K)``."""

    def __init__(self, path: str | Path, *, threads: int | None = None):
        self.session = onnx_session(path, threads=threads)
        self.meta = read_onnx_metadata(path)
        if self.meta.get("kind") != "offline":
            raise ValueError(f"{path} is an {self.meta.get('kind')!r} export; OnnxClassifier "
                             "runs offline ones (use OnnxStreamSession)")

    def __call__(self, clip) -> np.ndarray:
        clip = clip.numpy() if isinstance(clip, torch.Tensor) else np.asarray(clip)
        return self.session.run(["logits"], {"clip": clip.astype(np.float32)})[0]


class _BoundStream:
    """The two buffer sets of one batch size (see the module docstring)."""

    def __init__(self, session, state_names: list[str], shapes: list[Sequence[int]],
                 num_classes: int, batch: int):
        import onnxruntime as ort

        def zeros(shape):
            return ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, np.float32))
        self.states = [[zeros((batch, *s)) for s in shapes] for _ in range(2)]
        self.logits = zeros((batch, num_classes))
        self.bindings = []
        for k in range(2):  # binding k reads set k and writes set 1 - k
            binding = session.io_binding()
            for name, value in zip(state_names, self.states[k]):
                binding.bind_ortvalue_input(name, value)
            binding.bind_ortvalue_output("logits", self.logits)
            for name, value in zip(state_names, self.states[1 - k]):
                binding.bind_ortvalue_output(name.replace("_in_", "_out_"), value)
            self.bindings.append(binding)
        self.current = 0

    def step(self, session, frame: np.ndarray) -> np.ndarray:
        binding = self.bindings[self.current]
        binding.bind_cpu_input("frame", frame)
        session.run_with_iobinding(binding)
        self.current ^= 1
        return np.array(self.logits.numpy(), copy=True)  # the buffer is rewritten next frame


class OnnxStreamSession:
    """Runs an online export frame by frame, keeping the shift caches between calls.

    ``step(frame (B, 3, S, S)) -> logits (B, K)`` (numpy); ``reset()`` starts a new stream
    (zero caches, the offline shift's zero padding before frame 0). ``step_with_state`` takes
    and returns the caches explicitly (numpy), for callers that keep several streams.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None):
        self.session = onnx_session(path, threads=threads)
        self.meta = read_onnx_metadata(path)
        if self.meta.get("kind") != "online":
            raise ValueError(f"{path} is not an online export (export it with online=True / "
                             "vidcls export --online)")
        self.state_names: list[str] = list(self.meta["state_names"])
        self.state_shapes: list[Sequence[int]] = [tuple(s) for s in self.meta["state_shapes"]]
        self.output_names = ["logits"] + [n.replace("_in_", "_out_") for n in self.state_names]
        self.num_classes = int(self.session.get_outputs()[0].shape[1])
        self._bound: _BoundStream | None = None

    def reset(self) -> None:
        self._bound = None

    def initial_state(self, batch: int = 1) -> list[np.ndarray]:
        return [np.zeros((batch, *shape), np.float32) for shape in self.state_shapes]

    def step_with_state(self, frame: np.ndarray, state: list[np.ndarray]
                        ) -> tuple[np.ndarray, list[np.ndarray]]:
        feed: dict[str, Any] = {"frame": np.ascontiguousarray(frame, dtype=np.float32)}
        feed.update(zip(self.state_names, state))
        logits, *new_state = self.session.run(self.output_names, feed)
        return logits, new_state

    def step(self, frame) -> np.ndarray:
        frame = frame.numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
        if frame.ndim != 4:
            raise ValueError(f"step expects one frame per stream, (B, 3, H, W); got shape "
                             f"{frame.shape}")
        frame = np.ascontiguousarray(frame, dtype=np.float32)
        if self._bound is None or self._bound.logits.shape()[0] != frame.shape[0]:
            self._bound = _BoundStream(self.session, self.state_names, self.state_shapes,
                                       self.num_classes, frame.shape[0])
        return self._bound.step(self.session, frame)
