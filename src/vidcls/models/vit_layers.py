"""ViT building blocks of TimeSformer, in the reference's parameter names: stochastic depth,
the feed-forward MLP and the patch embedding (the attention stages live in
:mod:`vidcls.models.attention`, the block that chains them in :mod:`vidcls.models.timesformer`).
"""
from __future__ import annotations

import threading

import torch
from torch import Tensor, nn

from vidcls.models.inference_linear import InferenceLinear
from vidcls.ops.temporal_shift import in_eager_inference

__all__ = ["pair", "DropPath", "Mlp", "PatchEmbed"]


def pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    v = tuple(int(i) for i in v)
    if len(v) != 2:
        raise ValueError(f"expected an int or a pair (height, width), got {v!r}")
    return v


class DropPath(nn.Module):
    """Stochastic depth: zero the whole residual branch of a random sample (training only)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    """Transformer feed-forward: fc1 -> GELU -> fc2 (reference names ``mlp.fc1`` / ``mlp.fc2``)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = InferenceLinear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = InferenceLinear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        if in_eager_inference() and not self.training:
            return self._forward_inference(x)
        h = self.act(self.fc1(x))  # (..., hidden): the largest activation of the block
        return self.drop(self.fc2(self.drop(h)))

    def _forward_inference(self, x: Tensor) -> Tensor:
        """The same values, with the hidden activation written into a reused scratch buffer
        and GELU applied in place.

        Why: the ``(tokens, hidden)`` activation is the largest tensor of the forward pass
        (19 MB fp32 per block for TimeSformer-B at 8 x 224). Allocated fresh per block, the CPU
        allocator hands back unmapped pages and the GEMM's first write into every page
        faults; the scratch buffer stays mapped and warm between blocks and calls.
        """
        weight, bias = self.fc1.compute_weights(x.device.type)
        x2 = x.reshape(-1, x.shape[-1])  # (tokens, D)
        if x2.dtype != weight.dtype:
            if not torch.is_autocast_enabled(x.device.type):
                return self.fc2(self.act(self.fc1(x)))  # the plain path (and its dtype error)
            x2 = x2.to(weight.dtype)  # what autocast does for F.linear
        h = _scratch((x2.shape[0], weight.shape[0]), weight.dtype, x.device)  # (tokens, hidden)
        if bias is None:
            torch.mm(x2, weight.t(), out=h)
        else:
            torch.addmm(bias, x2, weight.t(), out=h)
        torch.ops.aten.gelu_(h, approximate=self.act.approximate)
        return self.fc2(h).view(*x.shape[:-1], -1)  # (..., D): a new tensor, h is not kept


_SCRATCH = threading.local()  # per thread: concurrent forward passes never share a buffer


def _scratch(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """A thread's reusable buffer of ``shape`` (contents undefined): the latest one of each
    dtype and device is kept, so a model in steady state allocates nothing here."""
    buffers = getattr(_SCRATCH, "buffers", None)
    if buffers is None:
        buffers = _SCRATCH.buffers = {}
    key = (dtype, device)
    buf = buffers.get(key)
    if buf is None or buf.shape != shape:
        buf = buffers[key] = None  # free the old one first
        buf = buffers[key] = torch.empty(shape, dtype=dtype, device=device)
    return buf


class PatchEmbed(nn.Module):
    """Per-frame ``P x P`` patches -> ``D``-dim tokens via a stride-``P`` conv (``patch_embed.proj``)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        """``(B*T, C, H, W)`` -> ``(B*T, D, H/P, W/P)``."""
        return self.proj(x)
