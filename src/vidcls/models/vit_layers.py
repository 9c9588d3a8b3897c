"""ViT building blocks of TimeSformer, in the reference's parameter names: stochastic depth,
the feed-forward MLP and the patch embedding (the attention stages live in
:mod:`vidcls.models.attention`, the block that chains them in :mod:`vidcls.models.timesformer`).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

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
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc1(x)  # (..., hidden): the largest activation of the block
        if not in_eager_inference():
            h = self.act(h)
        else:
            # Inference: nothing needs the pre-activation, so GELU in place saves one
            # (tokens x 4D) buffer, the peak of the whole forward pass.
            h = torch.ops.aten.gelu_(h)
        return self.drop(self.fc2(self.drop(h)))


class PatchEmbed(nn.Module):
    """Per-frame ``P x P`` patches -> ``D``-dim tokens via a stride-``P`` conv (``patch_embed.proj``)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        """``(B*T, C, H, W)`` -> ``(B*T, D, H/P, W/P)``."""
        return self.proj(x)
