"""The temporal shift of TSM (Lin, Gan, Han, ICCV 2019): pure tensor code, no model knowledge.

Activations of a 2-D CNN run on ``N`` clips of ``T`` frames are laid out ``(N*T, C, H, W)``.
The shift moves a few channel groups one frame along time, so that the next 2-D convolution
mixes neighbouring frames (a temporal conv of kernel 3 split into free data movement plus the
conv's own multiply-accumulate). With ``fold = C // shift_div``:

* bidirectional (offline): channels ``[0, fold)`` take frame ``t+1``, channels
  ``[fold, 2*fold)`` take frame ``t-1``, the rest stay; missing boundary frames are zeros.
  This is exactly the TSM authors' ``TemporalShift.shift``.
* unidirectional (online): channels ``[0, fold)`` take frame ``t-1`` (zeros at ``t = 0``), the rest
  stay. It is what the authors' online demo computes frame by frame: each block caches the first
  ``fold`` channels of the current frame and feeds them to the next one.

Three implementations with identical results:

* eager (the default path): a custom autograd function that writes every output element
  exactly once -- moved channels are copied from the neighbouring frame, only the boundary frame
  of the moved groups is zeroed, the unshifted channels are copied once. Its backward is the
  opposite shift, so training moves the same small amount of memory (the reference code builds a
  full zero tensor and then overwrites it, and autograd through slice assignment allocates a full
  zero gradient per slice). The output keeps the input's memory format (``channels_last`` too).
* in place (inference only, :meth:`TemporalShift.shift_in_place`): the residual placement
  needs the unshifted input again only after the branch's first conv has read the shifted one,
  so the block shifts its input in place, runs the conv and moves the channels back. Only the
  moved quarter of the channels is copied (twice) and no full-size tensor is allocated: on 2
  threads an out-of-place shift's new tensor alone costs TSM-R50 4-9 % of TSN's latency
  (``benchmarks/bench_shift_cost.py``). Used for NCHW activations; in ``channels_last`` the
  moved channels are strided in every pixel and the out-of-place copy is faster.
* export (used while tracing for ONNX / ``torch.export``): ``torch.cat`` of slices plus
  ``zeros_like`` of just the boundary frame, shape arithmetic only through ``reshape(-1, ...)``,
  so the legacy tracer emits no TracerWarning and the graph keeps a dynamic batch dimension.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["temporal_shift", "shift_fold", "is_exporting", "in_eager_inference", "TemporalShift",
           "SHIFT_MODES", "branch_on_shifted"]

#: accepted values of ``mode`` / ``shift_mode``
SHIFT_MODES = ("bidirectional", "unidirectional")


def shift_fold(channels: int, shift_div: int) -> int:
    """Channels moved per direction: ``channels // shift_div`` (the TSM authors' ``fold``)."""
    return channels // shift_div


def _check_args(x: torch.Tensor, num_frames: int, shift_div: int) -> None:
    if x.dim() != 4:
        raise ValueError(
            f"temporal_shift expects activations (N*T, C, H, W), got shape {tuple(x.shape)}")
    if not isinstance(shift_div, int) or shift_div < 2:
        raise ValueError(f"shift_div must be an integer >= 2 (8 moves 1/8 each way), got {shift_div!r}")
    if is_exporting():  # sizes are traced values here; comparing them would freeze the graph
        return
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if x.shape[0] % num_frames:
        raise ValueError(f"{x.shape[0]} frames are not a whole number of clips of num_frames="
                         f"{num_frames}; the batch dimension must be N*T")


# ----------------------------------------------------------------------------- eager path
def _move_group(out: torch.Tensor, x: torch.Tensor, c0: int, c1: int, source: int) -> None:
    """Write channels ``[c0, c1)`` of ``out`` from frame ``t + source`` of ``x`` (both (N, T, C, H, W)).

    ``source`` is +1 (take the next frame), -1 (take the previous frame) or 0 (no move). Only
    the one boundary frame that has no source is zero-filled.
    """
    if c1 <= c0:
        return
    if source == 0:
        out[:, :, c0:c1].copy_(x[:, :, c0:c1])
    elif source == 1:
        out[:, :-1, c0:c1].copy_(x[:, 1:, c0:c1])
        out[:, -1:, c0:c1].zero_()
    else:
        out[:, 1:, c0:c1].copy_(x[:, :-1, c0:c1])
        out[:, :1, c0:c1].zero_()


def _shift_eager(x5: torch.Tensor, fold: int, sources: tuple[int, int]) -> torch.Tensor:
    """Shift ``x5 (N, T, C, H, W)``: group ``[0, fold)`` from ``t + sources[0]``, group
    ``[fold, 2*fold)`` from ``t + sources[1]``; every output element is written once."""
    out = torch.empty_like(x5)  # keeps x5's strides (channels_last stays channels_last)
    channels = x5.shape[2]
    fold = min(fold, channels)
    _move_group(out, x5, 0, fold, sources[0])
    second_end = min(2 * fold, channels) if sources[1] != 0 else fold
    _move_group(out, x5, fold, second_end, sources[1])
    _move_group(out, x5, second_end, channels, 0)
    return out


def _sources(bidirectional: bool, backward: bool) -> tuple[int, int]:
    """Frame offsets that groups 0 and 1 read from; the backward pass reads the other way."""
    if bidirectional:
        return (-1, 1) if backward else (1, -1)
    return (1, 0) if backward else (-1, 0)


class _TemporalShiftFunction(torch.autograd.Function):
    """Shift whose gradient is the opposite shift (also minimal data movement)."""

    @staticmethod
    def forward(ctx, x5: torch.Tensor, fold: int, bidirectional: bool, backward: bool):
        ctx.fold, ctx.bidirectional, ctx.backward = fold, bidirectional, backward
        return _shift_eager(x5, fold, _sources(bidirectional, backward))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # Going through apply() again keeps higher-order gradients available.
        grad_in = _TemporalShiftFunction.apply(grad, ctx.fold, ctx.bidirectional, not ctx.backward)
        return grad_in, None, None, None


# ----------------------------------------------------------------------------- export path
def _zeros_boundary(group: torch.Tensor) -> torch.Tensor:
    """Zeros shaped like one frame of ``group (N, T, c, H, W)``: only the boundary is allocated."""
    return torch.zeros_like(group[:, :1])


def _shift_cat(x5: torch.Tensor, fold: int, bidirectional: bool) -> torch.Tensor:
    """Same result as ``_shift_eager`` built from slices and ``torch.cat`` (traces cleanly)."""
    first = x5[:, :, :fold]
    if bidirectional:
        second = x5[:, :, fold:2 * fold]
        from_next = torch.cat([first[:, 1:], _zeros_boundary(first)], dim=1)
        from_prev = torch.cat([_zeros_boundary(second), second[:, :-1]], dim=1)
        return torch.cat([from_next, from_prev, x5[:, :, 2 * fold:]], dim=2)
    from_prev = torch.cat([_zeros_boundary(first), first[:, :-1]], dim=1)
    return torch.cat([from_prev, x5[:, :, fold:]], dim=2)


def is_exporting() -> bool:
    """True while tracing / exporting (legacy ONNX tracer, torch.export): sizes may be traced values."""
    return (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
            or torch.compiler.is_exporting())


def in_eager_inference() -> bool:
    """True when nothing records the computation: no autograd (which saves inputs for the
    backward pass), no tracing, exporting or compiling (graphs keep the functional form). The
    one condition under which vidcls updates activations in place."""
    return not (torch.is_grad_enabled() or is_exporting() or torch.compiler.is_compiling())


# ----------------------------------------------------------------------------- public API
def temporal_shift(x: torch.Tensor, num_frames: int, shift_div: int = 8,
                   bidirectional: bool = True) -> torch.Tensor:
    """Shift part of the channels of ``x (N*T, C, H, W)`` by one frame along time.

    ``num_frames`` is ``T`` (frames per clip); ``fold = C // shift_div`` channels move each way
    (bidirectional) or from the past only (unidirectional). Returns a new tensor of ``x``'s
    shape; ``x`` is not modified. See the module docstring for the exact semantics.
    """
    _check_args(x, num_frames, shift_div)
    # While tracing, sizes are traced values: keep them as tensors (no int(), which would warn
    # and freeze them); slicing and reshape accept them and record the shape arithmetic.
    channels, height, width = x.shape[1:]
    x5 = x.reshape(-1, num_frames, channels, height, width)  # (N, T, C, H, W)
    if is_exporting() or torch.compiler.is_compiling():
        # compilers fuse the functional form into its neighbours; the eager function's
        # in-place copies would be an opaque graph break
        out = _shift_cat(x5, channels // shift_div, bidirectional)
    else:
        out = _TemporalShiftFunction.apply(x5, shift_fold(channels, shift_div), bidirectional, False)
    return out.reshape(x.shape)  # (N*T, C, H, W)


class TemporalShift(nn.Module):
    """Parameter-free module form of :func:`temporal_shift`, one per shifted block.

    ``channels`` is the channel count it will see (it fixes ``fold`` and the shape of the online
    cache). ``num_frames`` is set by the owning model from the input clip at every forward, so
    any clip length works. Streaming one frame at a time (:mod:`vidcls.models.online_tsm`) swaps
    these modules out for the duration of a frame; this op stays a pure clip-level shift.
    """

    def __init__(self, channels: int, shift_div: int = 8, mode: str = "bidirectional",
                 num_frames: int = 8):
        super().__init__()
        if mode not in SHIFT_MODES:
            raise ValueError(f"shift mode {mode!r} is unknown; use one of {SHIFT_MODES}")
        if not isinstance(shift_div, int) or shift_div < 2:
            raise ValueError(f"shift_div must be an integer >= 2 (8 moves 1/8 each way), got {shift_div!r}")
        self.channels = channels
        self.shift_div = shift_div
        self.mode = mode
        self.num_frames = num_frames

    @property
    def fold(self) -> int:
        return shift_fold(self.channels, self.shift_div)

    @property
    def bidirectional(self) -> bool:
        return self.mode == "bidirectional"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return temporal_shift(x, self.num_frames, self.shift_div, self.bidirectional)

    def can_shift_in_place(self, x: torch.Tensor) -> bool:
        """Whether :meth:`shift_in_place` is the faster exact choice for ``x``: inference (no
        autograd, which would need the unshifted input), not tracing or compiling, NCHW
        activations of whole clips."""
        return (in_eager_inference() and x.dim() == 4 and x.is_contiguous()
                and x.shape[0] % self.num_frames == 0 and self.fold > 0)

    def shift_in_place(self, x: torch.Tensor) -> torch.Tensor:
        """Shift ``x (N*T, C, H, W)`` in place (as ``forward`` would); returns the moved
        channels as they were, for :meth:`undo_shift_in_place` (see the module docstring)."""
        fold = self.fold
        moved_channels = 2 * fold if self.bidirectional else fold
        saved = x[:, :moved_channels].clone()  # (N*T, m, H, W)
        x5 = x.view(-1, self.num_frames, *x.shape[1:])  # (N, T, C, H, W): a view
        s5 = saved.view(-1, self.num_frames, *saved.shape[1:])  # (N, T, m, H, W)
        for group, source in enumerate(_sources(self.bidirectional, backward=False)):
            if source == 0:
                continue
            c0, c1 = group * fold, (group + 1) * fold
            if source == 1:  # frame t takes frame t + 1; the last frame has none
                x5[:, :-1, c0:c1].copy_(s5[:, 1:, c0:c1])
                x5[:, -1:, c0:c1].zero_()
            else:  # frame t takes frame t - 1; the first frame has none
                x5[:, 1:, c0:c1].copy_(s5[:, :-1, c0:c1])
                x5[:, :1, c0:c1].zero_()
        return saved

    def conv1x1_on_shifted(self, conv: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
        """``conv(self(x))`` for a 1x1 convolution ``conv`` and channels_last ``x (N*T, C, H,
        W)`` at inference, without forming the shifted tensor; None where it does not apply.

        Why: in channels_last the moved channels are a strided slice of every pixel, so any
        shift (in place or not) copies the whole activation or most of it (measured: TSM-R50
        4-10 % slower than TSN in channels_last, where NCHW shifts in place for 0-3 %). A 1x1
        convolution is one GEMM over pixels, ``out = X W^T`` with ``X (pixels, C)``; split
        along the channels it is three GEMMs: the unmoved channels of every frame, plus the
        first group read from the next frame's rows and the second from the previous frame's,
        each a strided view of ``X`` (no copy), accumulated into one output. The same
        multiply-adds; frames with no source frame get nothing, as the zero-filled shift.
        """
        if not isinstance(conv, nn.Conv2d) or not self._conv1x1_applies(conv, x):
            return None
        NT, C, H, W = x.shape
        T, fold, rows = self.num_frames, self.fold, H * W
        dtype = (torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu")
                 else x.dtype)
        if x.dtype != dtype:
            return None
        weight = conv.weight.view(conv.out_channels, C).to(dtype)  # (C_out, C)
        bias = None if conv.bias is None else conv.bias.to(dtype)
        pixels = x.permute(0, 2, 3, 1).reshape(NT * rows, C)  # (N*T*H*W, C): a view (CL)
        unmoved = 2 * fold if self.bidirectional else fold
        out = (torch.addmm(bias, pixels[:, unmoved:], weight[:, unmoved:].t()) if bias is not None
               else torch.mm(pixels[:, unmoved:], weight[:, unmoved:].t()))  # (N*T*H*W, C_out)
        per_clip = out.view(NT // T, T * rows, -1)  # (N, T*H*W, C_out)
        clips = pixels.view(NT // T, T * rows, C)  # (N, T*H*W, C)
        for group, source in enumerate(_sources(self.bidirectional, backward=False)):
            if source == 0:
                continue
            c0, c1 = group * fold, (group + 1) * fold
            w = weight[:, c0:c1].t()  # (fold, C_out)
            for n in range(per_clip.shape[0]):
                if source == 1:  # frame t reads frame t + 1; the last frame reads nothing
                    per_clip[n, :-rows].addmm_(clips[n, rows:, c0:c1], w)
                else:  # frame t reads frame t - 1; the first frame reads nothing
                    per_clip[n, rows:].addmm_(clips[n, :-rows, c0:c1], w)
        return out.view(NT, H, W, -1).permute(0, 3, 1, 2)  # (N*T, C_out, H, W), channels_last

    def _conv1x1_applies(self, conv: nn.Conv2d, x: torch.Tensor) -> bool:
        return (in_eager_inference() and x.device.type == "cpu" and x.dim() == 4
                and x.shape[1] == conv.in_channels and conv.kernel_size == (1, 1)
                and conv.stride == (1, 1) and conv.padding in ((0, 0), "valid")
                and conv.groups == 1 and self.fold > 0 and x.shape[0] % self.num_frames == 0
                and self.num_frames > 1 and x.shape[2] * x.shape[3] > 1 and x.shape[1] > 1
                and x.is_contiguous(memory_format=torch.channels_last))

    @staticmethod
    def undo_shift_in_place(x: torch.Tensor, saved: torch.Tensor) -> None:
        """Put back the channels :meth:`shift_in_place` moved: ``x`` is its input again."""
        x[:, :saved.shape[1]].copy_(saved)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, shift_div={self.shift_div}, mode={self.mode}"


def branch_on_shifted(branch, shift: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``branch(shift(x))`` for a residual block's branch, leaving ``x`` as it was.

    When ``branch`` is a 1x1 convolution and ``x`` is channels_last (inference), the shifted
    input is never formed (:meth:`TemporalShift.conv1x1_on_shifted`). When ``shift`` is a
    :class:`TemporalShift` that can work in place on ``x`` (inference, NCHW), ``x`` is shifted
    in place for the duration of ``branch`` (whose first op is a conv that reads it once and
    writes a new tensor) and restored right after, even if ``branch`` fails; otherwise
    ``shift`` runs as a module (the identity for TSN, the online caches while streaming, the
    out-of-place shift elsewhere)."""
    if isinstance(shift, TemporalShift):
        out = shift.conv1x1_on_shifted(branch, x)
        if out is not None:
            return out
        if shift.can_shift_in_place(x):
            saved = shift.shift_in_place(x)
            try:
                return branch(x)
            finally:
                shift.undo_shift_in_place(x, saved)
    return branch(shift(x))
