"""Online TSM: classify a live stream frame by frame with a unidirectional TSM model.

A unidirectional shift only moves channels from the past to the present (channels
``[0, fold)`` of frame ``t`` come from frame ``t-1``). So a stream can be processed one frame
at a time at the cost of one 2-D CNN frame: every shifted block caches the first ``fold``
channels of its input and, at the next frame, puts the cached channels in place of the current
frame's first ``fold`` channels (7/8 current + 1/8 previous) -- the TSM authors' online demo.

Exact property (tested): streaming the frames of a clip gives the offline unidirectional
model's per-frame logits, ``stack([step(x[:, t]) for t in range(T)], 1) == model.forward_frames(x)``,
and their mean is ``model(x)`` (eval mode; dropout and batch-norm batch statistics would differ
in train mode).

The state is explicit: a list of tensors, one per shifted block, shape ``(B, fold, h, w)``.
``step_with_state(frame, state) -> (logits, new_state)`` is a pure function of its inputs, and
``OnlineTSM.forward(frame, *state) -> (logits, *new_state)`` is the same as a module call, ready
for ONNX export with the state as explicit inputs and outputs; ``step`` keeps the state for you.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from vidcls.models.tsn import TSN
from vidcls.ops.temporal_shift import TemporalShift

__all__ = ["OnlineTSM"]


class _Handoff:
    """Attached to every TemporalShift during one frame: gives each its cached channels and
    collects the channels to cache for the next frame (so the state never lives in modules)."""

    def __init__(self, shifts: list[TemporalShift], state: list[Tensor] | None):
        self.index = {id(s): i for i, s in enumerate(shifts)}
        self.state = state
        self.new_state: list[Tensor | None] = [None] * len(shifts)
        self.shapes: list[tuple[int, ...] | None] = [None] * len(shifts)

    def __call__(self, shift: TemporalShift, x: Tensor) -> Tensor:
        i = self.index[id(shift)]
        if self.state is None:  # shape probe: record what the cache will look like
            self.shapes[i] = (shift.fold, *x.shape[2:])
            return x
        shifted, self.new_state[i] = shift.online_step(x, self.state[i])
        return shifted


class OnlineTSM(nn.Module):
    """Frame-by-frame wrapper around a unidirectional TSM model (``tsm_*(shift_mode=
    "unidirectional")``, without ``temporal_pool``).

    ``reset()`` starts a new stream; ``step(frame (B, 3, H, W)) -> logits (B, K)`` consumes one
    normalised frame. For explicit state: ``initial_state(batch, height, width)`` and
    ``step_with_state(frame, state) -> (logits, new_state)``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        if not isinstance(model, TSN):
            raise ValueError(f"OnlineTSM needs a TSM model (vidcls TSN with temporal shifts), got "
                             f"{type(model).__name__}")
        if model.tsm is None:
            raise ValueError(f"OnlineTSM needs a TSM model; {model.arch} TSN has no temporal "
                             "shift (its frames are independent: use model.forward_frames)")
        if model.tsm["shift_mode"] != "unidirectional":
            raise ValueError(f"OnlineTSM needs shift_mode='unidirectional' (past -> present); this "
                             f"model is {model.tsm['shift_mode']!r}, which looks at future frames "
                             "(build it with shift_mode='unidirectional')")
        if model.temporal_pool:
            raise ValueError("OnlineTSM cannot stream a temporal_pool model: the pooling mixes "
                             "frames in blocks of 2 (build it with temporal_pool=False)")
        self.model = model
        self._shifts = model.temporal_shifts()
        self._shapes: dict[tuple[int, int], list[tuple[int, ...]]] = {}
        self._state: list[Tensor] | None = None
        self._stream_shape: tuple[int, ...] | None = None

    @property
    def num_states(self) -> int:
        """Number of cached tensors (one per shifted block)."""
        return len(self._shifts)

    def _run_backbone(self, frame: Tensor, handoff: _Handoff) -> Tensor:
        for shift in self._shifts:
            shift.online = handoff
        try:
            return self.model.backbone.forward_features(frame)  # (B, C)
        finally:
            for shift in self._shifts:
                shift.online = None

    def state_shapes(self, height: int, width: int) -> list[tuple[int, ...]]:
        """Per-block cache shapes without the batch dimension, ``(fold, h, w)``, for frames of
        ``height x width`` (found once per size by one probe frame through the backbone)."""
        key = (int(height), int(width))
        if key not in self._shapes:
            param = next(self.model.parameters())
            probe = torch.zeros(1, 3, *key, device=param.device, dtype=param.dtype)
            handoff = _Handoff(self._shifts, None)
            was_training = self.model.training
            self.model.eval()  # the probe must not touch batch-norm running statistics
            try:
                with torch.no_grad():
                    self._run_backbone(probe, handoff)
            finally:
                self.model.train(was_training)
            self._shapes[key] = list(handoff.shapes)
        return self._shapes[key]

    def initial_state(self, batch: int, height: int, width: int, *,
                      device: torch.device | str | None = None,
                      dtype: torch.dtype | None = None) -> list[Tensor]:
        """Zero caches for a new stream (the offline shift's zero padding before frame 0)."""
        param = next(self.model.parameters())
        device = param.device if device is None else device
        dtype = param.dtype if dtype is None else dtype
        return [torch.zeros(batch, *shape, device=device, dtype=dtype)
                for shape in self.state_shapes(height, width)]

    def step_with_state(self, frame: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """One frame ``(B, 3, H, W)`` and the caches -> ``(logits (B, K), new caches)``."""
        if frame.dim() != 4:
            raise ValueError(f"step expects one frame per stream, (B, 3, H, W); got shape "
                             f"{tuple(frame.shape)} (for a whole clip use the offline model)")
        if len(state) != len(self._shifts):
            raise ValueError(f"state has {len(state)} tensors; this model has {len(self._shifts)} "
                             "shifted blocks (start from initial_state(batch, height, width))")
        handoff = _Handoff(self._shifts, list(state))
        feats = self._run_backbone(frame, handoff)  # (B, C)
        logits = self.model.forward_head(feats[:, None], pre_consensus=True)[:, 0]  # (B, K)
        return logits, handoff.new_state

    def forward(self, frame: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        """``(frame, *state) -> (logits, *new_state)``: the export-friendly step."""
        logits, new_state = self.step_with_state(frame, list(state))
        return (logits, *new_state)

    def reset(self) -> None:
        """Forget the past: the next ``step`` starts a new stream."""
        self._state = None
        self._stream_shape = None

    @torch.no_grad()
    def step(self, frame: Tensor) -> Tensor:
        """Consume one frame ``(B, 3, H, W)`` of the stream; return its logits ``(B, K)``."""
        if frame.dim() != 4:
            raise ValueError(f"step expects one frame per stream, (B, 3, H, W); got shape "
                             f"{tuple(frame.shape)}")
        if self._state is None:
            batch, _, height, width = frame.shape
            self._state = self.initial_state(batch, height, width, device=frame.device,
                                             dtype=frame.dtype)
            self._stream_shape = tuple(frame.shape)
        elif tuple(frame.shape) != self._stream_shape:
            raise ValueError(f"frame shape {tuple(frame.shape)} differs from the stream's earlier "
                             f"frames {self._stream_shape}; call reset() before starting a stream "
                             "of another size")
        logits, self._state = self.step_with_state(frame, self._state)
        return logits
