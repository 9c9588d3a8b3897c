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

How: the temporal shift op knows nothing of streaming. For the duration of one frame,
``OnlineTSM`` puts an :class:`_OnlineShift` into each shifted block's slot (and the original
:class:`~vidcls.ops.TemporalShift` back afterwards); it reads its cache from, and writes the next
one to, the per-frame state hand-off, so no state ever lives in a module.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import Tensor, nn

from vidcls.models.tsn import TSN
from vidcls.ops.temporal_shift import TemporalShift

__all__ = ["OnlineTSM", "check_streamable", "online_shift_step"]


def check_streamable(model: nn.Module) -> None:
    """Raise a one-line ``ValueError`` unless ``model`` can run on a live stream frame by frame:
    a TSN (frames independent) or a unidirectional TSM, without ``temporal_pool``."""
    if not isinstance(model, TSN):
        raise ValueError(f"{type(model).__name__} classifies whole clips and cannot stream frame "
                         "by frame: streaming needs a TSM model (a unidirectional TSM, or a TSN, "
                         "checkpoint); use `vidcls predict` for files")
    if model.tsm is not None and model.tsm["shift_mode"] != "unidirectional":
        raise ValueError("this TSM is bidirectional (offline): each frame looks at the next one, "
                         "so it cannot run on a live stream; use a model built with "
                         "shift_mode='unidirectional' (e.g. a converted online Jester checkpoint)")
    if model.temporal_pool:
        raise ValueError("a temporal_pool model mixes frames in pairs and cannot stream "
                         "(build it with temporal_pool=False)")


def online_shift_step(x: Tensor, cache: Tensor, fold: int) -> tuple[Tensor, Tensor]:
    """One frame ``x (B, C, H, W)`` of the unidirectional shift.

    Returns ``(shifted, new_cache)``: ``shifted`` = the cached ``fold`` channels of the previous
    frame followed by channels ``[fold, C)`` of ``x``; ``new_cache`` = ``x[:, :fold]``.
    """
    shifted = torch.cat([cache, x[:, fold:]], dim=1)  # (B, C, H, W)
    # clone: the cache outlives this forward, so it must not alias an activation buffer
    return shifted, x[:, :fold].clone()


class _Handoff:
    """The state of one frame: gives each shifted block its cached channels and collects the
    channels to cache for the next frame (``state=None``: a shape probe)."""

    def __init__(self, num_blocks: int, state: list[Tensor] | None):
        self.state = state
        self.new_state: list[Tensor | None] = [None] * num_blocks
        self.shapes: list[tuple[int, ...] | None] = [None] * num_blocks

    def __call__(self, index: int, fold: int, x: Tensor) -> Tensor:
        if self.state is None:  # shape probe: record what the cache will look like
            self.shapes[index] = (fold, *x.shape[2:])
            return x
        shifted, self.new_state[index] = online_shift_step(x, self.state[index], fold)
        return shifted


class _OnlineShift(nn.Module):
    """Stands in for block ``index``'s TemporalShift during one frame."""

    def __init__(self, index: int, fold: int, handoff: _Handoff):
        super().__init__()
        self.index, self.fold, self.handoff = index, fold, handoff

    def forward(self, x: Tensor) -> Tensor:
        return self.handoff(self.index, self.fold, x)


class OnlineTSM(nn.Module):
    """Frame-by-frame wrapper around a unidirectional TSM model (``tsm_*(shift_mode=
    "unidirectional")``, without ``temporal_pool``).

    ``reset()`` starts a new stream; ``step(frame (B, 3, H, W)) -> logits (B, K)`` consumes one
    normalised frame. For explicit state: ``initial_state(batch, height, width)`` and
    ``step_with_state(frame, state) -> (logits, new_state)``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        check_streamable(model)
        if model.tsm is None:
            raise ValueError(f"OnlineTSM needs a TSM model; {model.arch} TSN has no temporal "
                             "shift (its frames are independent: use model.forward_frames)")
        self.model = model
        # (parent module, attribute, shift) in execution order
        self._sites: list[tuple[nn.Module, str, TemporalShift]] = []
        for name, module in model.backbone.named_modules():
            if isinstance(module, TemporalShift):
                parent, _, attr = name.rpartition(".")
                self._sites.append((model.backbone.get_submodule(parent), attr, module))
        self._shapes: dict[tuple[int, int], list[tuple[int, ...]]] = {}
        self._state: list[Tensor] | None = None
        self._stream_shape: tuple[int, ...] | None = None

    @property
    def num_states(self) -> int:
        """Number of cached tensors (one per shifted block)."""
        return len(self._sites)

    @contextlib.contextmanager
    def _online_shifts(self, handoff: _Handoff) -> Iterator[None]:
        for i, (parent, attr, shift) in enumerate(self._sites):
            setattr(parent, attr, _OnlineShift(i, shift.fold, handoff))
        try:
            yield
        finally:
            for parent, attr, shift in self._sites:
                setattr(parent, attr, shift)

    def _run_backbone(self, frame: Tensor, handoff: _Handoff) -> Tensor:
        with self._online_shifts(handoff):
            return self.model.backbone.forward_features(frame)  # (B, C)

    def state_shapes(self, height: int, width: int) -> list[tuple[int, ...]]:
        """Per-block cache shapes without the batch dimension, ``(fold, h, w)``, for frames of
        ``height x width`` (found once per size by one probe frame through the backbone)."""
        key = (int(height), int(width))
        if key not in self._shapes:
            param = next(self.model.parameters())
            probe = torch.zeros(1, 3, *key, device=param.device, dtype=param.dtype)
            handoff = _Handoff(self.num_states, None)
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
        if len(state) != self.num_states:
            raise ValueError(f"state has {len(state)} tensors; this model has {self.num_states} "
                             "shifted blocks (start from initial_state(batch, height, width))")
        handoff = _Handoff(self.num_states, list(state))
        feats = self._run_backbone(frame, handoff)  # (B, C)
        logits = self.model.forward_head(feats[:, None])  # one frame: (B, 1, C) -> (B, K)
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
