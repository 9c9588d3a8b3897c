"""The models a server holds: each checkpoint loaded once at start-up, with its input spec.

A :class:`ServedModel` wraps a :class:`vidcls.inference.predict.Predictor` (the model, its
classes and model card) and knows whether the model can stream (``vidcls stream``'s rule,
:func:`vidcls.models.online_tsm.check_streamable`). A running server calls a model's weights
-- a batch of uploaded clips, a Grad-CAM heat map, one frame of a live stream -- from that
model's single inference thread only (``ServerState.threads``). One thread per model is not
only simpler: online TSM swaps the shift modules of the shared network for the duration of a
frame, and Grad-CAM hooks its layers, so two calls on one model at once would see each other's
state.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

from vidcls.engine.runtime import resolve_device
from vidcls.inference.predict import Predictor
from vidcls.inference.stream import StreamPredictor
from vidcls.models.online_tsm import check_streamable

__all__ = ["ServedModel", "model_name_for"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def model_name_for(checkpoint: str | Path) -> str:
    """The name a checkpoint directory is served under: its folder name (for a run's
    ``.../NAME/checkpoints/best`` the run's name)."""
    path = Path(checkpoint)
    if path.name in ("best", "last") and path.parent.name == "checkpoints":
        path = path.parent.parent
    return path.resolve().name if path.name in ("", ".", "..") else path.name


class ServedModel:
    """One loaded checkpoint under a ``name``: what ``/v1/models`` lists and requests pick.

    ``stream_error`` is None when the model streams, else why not (one line, for the 422).
    The model for streaming is the same network on a CPU server; on a GPU server it is a CPU
    copy, since :class:`~vidcls.inference.stream.StreamPredictor` steps on the CPU.
    """

    def __init__(self, name: str, predictor: Predictor, *, checkpoint: str | None = None):
        if not _NAME.fullmatch(name):
            raise ValueError(f"model name {name!r} is not usable in a URL: use letters, digits, "
                             f"'.', '_' or '-' (give one with --checkpoint NAME=DIR)")
        self.name, self.predictor, self.checkpoint = name, predictor, checkpoint
        self.precision = predictor.precision  # resolved by the Predictor (engine's rule)
        try:
            check_streamable(predictor.model)
            self.stream_error = None
        except ValueError as err:
            self.stream_error = str(err)
        self._stream_model = None

    @classmethod
    def load(cls, name: str, checkpoint: str | Path, *, device: str = "auto",
             precision: str = "auto") -> "ServedModel":
        """Load ``checkpoint`` (a directory, see :mod:`vidcls.engine.checkpoint`) once. ``precision``: ``auto`` (bf16 where ``device`` computes it
        natively, else fp32), ``fp32``, ``bf16`` or ``fp16`` (CUDA), as for ``vidcls predict``."""
        predictor = Predictor(checkpoint, device=resolve_device(device, option="--device "),
                              precision=precision)
        return cls(name, predictor, checkpoint=str(checkpoint))

    # ------------------------------------------------------------------ facts
    @property
    def classes(self) -> list[str]:
        return self.predictor.classes

    @property
    def streamable(self) -> bool:
        return self.stream_error is None

    def spec(self, *, stream_max_fps: float) -> dict:
        """The ``/v1/models`` entry: classes and the input the model expects."""
        prep = self.predictor.preprocessing
        build = self.predictor.meta.get("model", {})
        return {"name": self.name, "arch": build.get("name"), "classes": self.classes,
                "num_classes": len(self.classes),
                "multi_label": self.predictor.multi_label,
                "input": {"num_frames": prep.num_frames, "sampling": prep.sampling,
                          "resize": prep.resize, "crop": list(prep.crop_hw),
                          "mean": list(prep.mean), "std": list(prep.std)},
                "device": str(self.predictor.device), "precision": self.precision,
                "stream": ({"supported": True, "max_fps": stream_max_fps} if self.streamable
                           else {"supported": False, "reason": self.stream_error})}

    # ------------------------------------------------------------------ streaming
    def stream_predictor(self, *, smooth: int = 12, top_k: int = 5) -> StreamPredictor:
        """A fresh per-connection stream state on this model (call in the model's thread)."""
        if self.stream_error is not None:
            raise ValueError(self.stream_error)
        if self._stream_model is None:
            model = self.predictor.model
            self._stream_model = model if self.predictor.device.type == "cpu" else \
                copy.deepcopy(model).cpu()
        precision = self.precision if self.predictor.device.type == "cpu" else "auto"
        return StreamPredictor(model=self._stream_model, meta=self.predictor.meta,
                               smooth=smooth, top_k=top_k, warmup=False, precision=precision)
