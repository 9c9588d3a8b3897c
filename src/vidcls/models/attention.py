"""Self-attention over video token grids, for the five TimeSformer attention schemes.

A clip of ``T`` frames cut into an ``h x w`` grid of patches is a token grid ``(B, T, N, D)``
with ``N = h * w`` (row-major, the order ``Conv2d(...).flatten(2)`` produces), plus one
classification ("cls") token ``(B, 1, D)`` kept apart from the grid.

Every attention scheme of the paper is a sequence of *stages*; each stage splits the grid into
independent groups of tokens and runs ordinary multi-head self-attention inside every group.
A :class:`Partition` says how a stage groups the tokens, one rule per grid axis ``(t, y, x)``:

* ``SEQ``        the whole axis lies inside every group (tokens attend along it);
* ``GROUP``      every index along the axis is its own group (no attention across it);
* ``HALVES``     the axis is cut into 2 contiguous halves of ``ceil(n / 2)`` indices and each
                 half is its own group (a local window);
* ``STRIDE2``    indices with the same parity form a group (``i ≡ i' mod 2``): a dilated,
                 stride-2 sampling of the whole axis.

Token ``a`` attends to token ``b`` in a stage iff, on every axis, the pair satisfies the rule:
``SEQ`` always, ``GROUP`` ``a == b``, ``HALVES`` ``a // ceil(n/2) == b // ceil(n/2)``,
``STRIDE2`` ``a % 2 == b % 2`` (an axis of size 1 trivially satisfies every rule).

The schemes (stages in order; the cls token takes part in the *last* stage only, see below):

* ``space``   (S):    ``FRAME``  (t GROUP, y SEQ, x SEQ) — within each frame. The TimeSformer model
  runs it with frames folded into the batch, each frame keeping its own cls token, as the
  reference code does.
* ``joint``   (ST):   ``JOINT`` (all SEQ) — every token attends to all ``T*N + 1`` tokens.
* ``divided`` (T+S):  ``TIME`` (t SEQ, y GROUP, x GROUP) — the patches at one spatial position
  across frames, cls excluded — then ``FRAME``.
* ``local_global`` (L+G): ``LOCAL`` (t SEQ, y HALVES, x HALVES) — all frames of one
  ``ceil(h/2) x ceil(w/2)`` quadrant of the patch grid, cls excluded — then ``GLOBAL``
  (t STRIDE2, y STRIDE2, x STRIDE2) — the whole clip sampled with stride 2 in time and space,
  i.e. the 8 (or fewer, for axes of size 1) parity classes ``(t%2, y%2, x%2)``. On grids of at
  least 4 x 4 patches the two stages together reach every token, at ``T*N/4 + T*N/8``
  comparisons per token instead of ``T*N``. No reference code exists for this scheme: we read
  the paper's "neighbouring F x H/2 x W/2 patches" as the fixed quadrant a patch lies in (not a
  sliding window, which would need a mask over the whole clip) and its "stride of 2 patches" as
  Child et al.'s strided pattern (attend to the positions congruent mod 2).
* ``axial`` (T+W+H):  ``TIME``, then ``WIDTH`` (t GROUP, y GROUP, x SEQ) — the patches of one row
  of one frame, cls excluded — then ``HEIGHT`` (t GROUP, y SEQ, x GROUP) — one column of one frame.

The cls token in the last stage: it is prepended to *every* group of that stage as an extra
query and key (so every patch also attends to it), and its update is the mean of its outputs over
the groups. For ``divided`` this is exactly the reference code's "repeat the cls token per frame,
then average"; for ``joint`` (one group) it is plain attention over all tokens.

Axes that a rule cannot split evenly (odd sizes under ``HALVES``/``STRIDE2``) are zero-padded to
an even size and the padded tokens are masked out as keys; their outputs are dropped.

Attention goes through ``torch.nn.functional.scaled_dot_product_attention`` on strided views of
the qkv projection (no ``(L, L)`` matrix stored, no q/k/v copies), except where two plain
batched matmuls are measurably faster: short sequences on CPU, and the spatial stage in bf16
(:func:`use_matmul_attention` says when, and why).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidcls.models.inference_linear import InferenceLinear
from vidcls.ops.cpu_features import cpu_flags

__all__ = [
    "Attention", "Partition", "SEQ", "GROUP", "HALVES", "STRIDE2",
    "JOINT", "FRAME", "TIME", "WIDTH", "HEIGHT", "LOCAL", "GLOBAL", "VARIANT_STAGES",
    "grouped_attention", "use_matmul_attention", "MATMUL_ATTENTION_MAX_SCORES",
]

SEQ, GROUP, HALVES, STRIDE2 = "seq", "group", "halves", "stride2"
_RULES = (SEQ, GROUP, HALVES, STRIDE2)


class Attention(nn.Module):
    """Multi-head self-attention over a batch of sequences ``(S, L, D)``, via SDPA.

    Parameter names (``qkv``, ``proj``) match the reference TimeSformer / timm ViT so their
    checkpoints load 1:1.
    """

    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim={dim} is not divisible by num_heads={num_heads}; "
                             f"choose num_heads dividing {dim}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_drop = attn_drop
        self.qkv = InferenceLinear(dim, dim * 3, bias=qkv_bias)
        self.proj = InferenceLinear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, project: bool = True) -> Tensor:
        """``x (S, L, D)`` -> ``(S, L, D)``; ``attn_mask`` (bool, True = may attend) broadcasts
        to ``(S, heads, L, L)``. ``project=False`` returns the heads before ``proj`` (for a
        caller that folds ``proj`` into its own next linear map)."""
        S, L, D = x.shape
        qkv = self.qkv(x)  # (S, L, 3 * D)
        dropout_p = self.attn_drop if self.training else 0.0
        if use_matmul_attention(qkv, S * self.num_heads, L, dropout_p):
            out = self._matmul_attention(qkv, attn_mask)  # (S, L, D)
        else:
            q, k, v = self._heads(qkv)  # each (S, heads, L, head_dim)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                                 dropout_p=dropout_p)  # (S, heads, L, hd)
            # The fused kernels return (S, L, heads, head_dim) memory: usually a view.
            out = out.transpose(1, 2).reshape(S, L, D)  # (S, L, D)
        return self.proj_drop(self.proj(out)) if project else out

    def _heads(self, qkv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``qkv (S, L, 3 * D)`` -> ``q, k, v`` strided views, each ``(S, heads, L, head_dim)``
        (SDPA accepts any stride with a contiguous last dim: splitting heads costs no copy)."""
        S, L, _ = qkv.shape
        qkv = qkv.view(S, L, 3, self.num_heads, self.head_dim)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (S, heads, L, head_dim)

    def _matmul_attention(self, qkv: Tensor, attn_mask: Tensor | None) -> Tensor:
        """Attention as two batched matmuls around a softmax (see ``use_matmul_attention``):
        ``qkv (S, L, 3 * D)`` -> ``(S, L, D)``, the same values as SDPA's."""
        S, L, _ = qkv.shape
        H, hd = self.num_heads, self.head_dim
        # One copy puts every head's q, k, v in its own contiguous (L, hd) block.
        q, k, v = (qkv.view(S, L, 3, H, hd).permute(2, 0, 3, 1, 4)
                   .reshape(3, S * H, L, hd).unbind(0))  # each (S*H, L, hd)
        # beta=0: the expanded 0-d "input" is never read; the scale rides on the GEMM.
        scores = torch.baddbmm(q.new_zeros(()).expand(S * H, L, L), q, k.transpose(1, 2),
                               beta=0, alpha=hd ** -0.5)  # (S*H, L, L)
        keep = None
        if attn_mask is not None:
            keep = attn_mask.expand(S, H, L, L).reshape(S * H, L, L)
        out = torch.bmm(_softmax_last(scores, keep), v)  # (S*H, L, hd)
        return out.view(S, H, L, hd).transpose(1, 2).reshape(S, L, H * hd)  # (S, L, D)

    def probs(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """The attention probabilities ``forward`` uses but SDPA does not return: ``x (S, L, D)``
        -> ``softmax(q k^T / sqrt(head_dim))`` ``(S, heads, L, L)`` in float32, rows summing to
        1, masked keys 0 (for explanations: ``vidcls.inference.explain``)."""
        q, k, _ = self._heads(self.qkv(x))  # each (S, heads, L, head_dim)
        scores = (q @ k.transpose(-2, -1)) * self.head_dim ** -0.5  # (S, heads, L, L)
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        return scores.float().softmax(dim=-1)


# Above this many score elements per call the matmul path's (S*heads, L, L) matrix costs more
# memory traffic than SDPA's fused kernel saves (e.g. joint attention over a whole clip).
MATMUL_ATTENTION_MAX_SCORES = 1 << 25


def use_matmul_attention(qkv: Tensor, batch_heads: int, seq_len: int, dropout_p: float) -> bool:
    """Whether two plain matmuls beat SDPA for this shape, on this device (measured: CPU,
    torch 2.13, ``benchmarks/bench_timesformer.py``).

    On CPU, SDPA's flash kernel is tiled for long sequences. TimeSformer's temporal stage is
    thousands of 8-token sequences, where the tiling is pure overhead (bmm + softmax is 1.5-3x
    faster in fp32 and bf16). The 197-token spatial stage in bf16 depends on the machine kind:
    with AVX-512-BF16 alone oneDNN's bf16 GEMMs beat the flash kernel's inner products ~2x,
    with AMX tiles the flash kernel wins (4-26 % of the whole forward pass in two runs,
    measured in the model) because the GEMMs are no longer the bottleneck and the matmul path's score matrix
    costs more memory traffic than it saves. Long sequences (joint attention over a clip) keep
    SDPA, which never stores the score matrix; so do CUDA (its flash kernels win at every
    shape) and attention dropout in training.
    """
    if qkv.device.type != "cpu" or dropout_p > 0.0:
        return False
    if batch_heads * seq_len * seq_len > MATMUL_ATTENTION_MAX_SCORES:
        return False
    if seq_len <= 32:
        return True
    reduced = qkv.dtype in (torch.bfloat16, torch.float16)
    return reduced and seq_len <= 512 and "amx_bf16" not in cpu_flags()


def _softmax_last(scores: Tensor, keep: Tensor | None = None) -> Tensor:
    """``softmax(scores, -1)`` for ``(S, L, L)`` scores (``keep``: bool, False = masked key),
    fast also for short rows.

    The CPU kernel vectorises along the rows it normalises; for the temporal stage's 8-key rows
    (tens of thousands of them) that is per-row overhead, 2-4x slower than normalising the
    transposed ``(L, L, S)`` layout, where every step covers ``S`` rows at once. The two
    transposing copies are tiny (``L * L * S`` elements)."""
    if keep is not None:
        scores = scores.masked_fill(~keep, float("-inf"))
    if scores.shape[-1] > 32 or scores.device.type != "cpu":
        return scores.softmax(dim=-1)
    across = scores.permute(1, 2, 0).contiguous()  # (L, L, S): rows side by side
    return across.softmax(dim=1).permute(2, 0, 1).contiguous()  # (S, L, L)


@dataclass(frozen=True)
class Partition:
    """How one attention stage groups the ``(t, y, x)`` token grid (see the module docstring)."""

    name: str
    t: str
    y: str
    x: str

    def __post_init__(self):
        for rule in (self.t, self.y, self.x):
            if rule not in _RULES:
                raise ValueError(f"unknown partition rule {rule!r}; use one of {_RULES}")

    def axis_plan(self, rule: str, n: int) -> tuple[int, int, bool]:
        """Split an axis of size ``n`` into ``(outer, inner)`` with index ``= o * inner + i``.

        Returns ``(outer, inner, outer_is_group)``; the other factor runs along the sequence.
        ``outer * inner >= n``; the excess is padding.
        """
        if rule == SEQ:
            return 1, n, True
        if rule == GROUP:
            return n, 1, True
        if rule == HALVES:  # contiguous windows of ceil(n/2): outer index = which window
            inner = math.ceil(n / 2)
            return math.ceil(n / inner), inner, True
        # STRIDE2: inner index = parity = the group, outer index runs along the sequence
        inner = min(2, n)
        return math.ceil(n / inner), inner, False

    def plan(self, T: int, h: int, w: int):
        """Padded sizes and the permutation that puts group factors first (see ``split``)."""
        plans = [self.axis_plan(r, n) for r, n in ((self.t, T), (self.y, h), (self.x, w))]
        # After padding, the grid is viewed as (B, t_o, t_i, y_o, y_i, x_o, x_i, D):
        # factor k of axis a sits at dim 1 + 2a + k.
        group_dims, seq_dims = [], []
        for a, (_, _, outer_is_group) in enumerate(plans):
            outer_dim, inner_dim = 1 + 2 * a, 2 + 2 * a
            group_dims.append(outer_dim if outer_is_group else inner_dim)
            seq_dims.append(inner_dim if outer_is_group else outer_dim)
        perm = (0, *group_dims, *seq_dims, 7)
        return plans, perm

    def num_groups(self, T: int, h: int, w: int) -> int:
        plans, perm = self.plan(T, h, w)
        sizes = [s for o, i, _ in plans for s in (o, i)]
        return math.prod(sizes[d - 1] for d in perm[1:4])

    def split(self, x: Tensor, grid: tuple[int, int]) -> tuple[Tensor, Tensor | None]:
        """``(B, T, N, D)`` -> groups ``(B, G, L, D)`` and a key mask ``(G, L)`` (bool, True =
        real token) or ``None`` when nothing was padded."""
        B, T, N, D = x.shape
        h, w = grid
        plans, perm = self.plan(T, h, w)
        pad_t, pad_h, pad_w = (o * i for o, i, _ in plans)
        x = x.reshape(B, T, h, w, D)  # (B, T, h, w, D); a view for grids from the model
        mask = None
        if (pad_t, pad_h, pad_w) != (T, h, w):
            x = F.pad(x, (0, 0, 0, pad_w - w, 0, pad_h - h, 0, pad_t - T))
            valid = torch.zeros(1, pad_t, pad_h, pad_w, 1, dtype=torch.bool, device=x.device)
            valid[:, :T, :h, :w] = True
            mask = self._to_groups(valid, plans, perm)[0, :, :, 0]  # (G, L)
        return self._to_groups(x, plans, perm), mask

    @staticmethod
    def _to_groups(x: Tensor, plans, perm) -> Tensor:
        B, D = x.shape[0], x.shape[-1]
        sizes = [s for o, i, _ in plans for s in (o, i)]
        x = x.reshape(B, *sizes, D)  # (B, t_o, t_i, y_o, y_i, x_o, x_i, D)
        x = x.permute(perm)       # (B, g_t, g_y, g_x, s_t, s_y, s_x, D)
        G = math.prod(x.shape[1:4])
        return x.reshape(B, G, -1, D)  # (B, G, L, D): a copy only when the permute needs one

    def merge(self, groups: Tensor, T: int, grid: tuple[int, int]) -> Tensor:
        """Inverse of ``split``: ``(B, G, L, D)`` -> ``(B, T, N, D)`` (padding dropped)."""
        B, D = groups.shape[0], groups.shape[-1]
        h, w = grid
        plans, perm = self.plan(T, h, w)
        sizes = [s for o, i, _ in plans for s in (o, i)]
        x = groups.reshape(B, *(sizes[d - 1] for d in perm[1:7]), D)  # (B, g.., s.., D)
        inverse = [perm.index(d) for d in range(8)]
        x = x.permute(inverse)  # (B, t_o, t_i, y_o, y_i, x_o, x_i, D)
        x = x.reshape(B, sizes[0] * sizes[1], sizes[2] * sizes[3], sizes[4] * sizes[5], D)
        x = x[:, :T, :h, :w]  # drop padding; (B, T, h, w, D)
        return x.reshape(B, T, h * w, D)  # (B, T, N, D)


JOINT = Partition("joint", SEQ, SEQ, SEQ)
FRAME = Partition("frame", GROUP, SEQ, SEQ)
TIME = Partition("time", SEQ, GROUP, GROUP)
WIDTH = Partition("width", GROUP, GROUP, SEQ)
HEIGHT = Partition("height", GROUP, SEQ, GROUP)
LOCAL = Partition("local", SEQ, HALVES, HALVES)
GLOBAL = Partition("global", STRIDE2, STRIDE2, STRIDE2)

# attention scheme -> ((prefix, partition) of each residual stage before the last, last stage).
# A stage with prefix p owns parameters ``{p}_norm1``, ``{p}_attn``, ``{p}_fc`` on the block; the
# last stage uses the ViT names ``norm1`` / ``attn`` so image-ViT weights and the reference
# TimeSformer checkpoints (divided / joint / space) map 1:1.
VARIANT_STAGES: dict[str, tuple[tuple[tuple[str, Partition], ...], Partition]] = {
    "divided": ((("temporal", TIME),), FRAME),
    "joint": ((), JOINT),
    "space": ((), FRAME),
    "local_global": ((("local", LOCAL),), GLOBAL),
    "axial": ((("temporal", TIME), ("width", WIDTH)), HEIGHT),
}


def grouped_attention(attn: Attention, norm: nn.Module, x: Tensor, grid: tuple[int, int],
                      partition: Partition, cls: Tensor | None = None,
                      drop_path: nn.Module | None = None,
                      fc: nn.Module | None = None,
                      fused_proj_fc: tuple[Tensor, Tensor] | None = None,
                      ) -> tuple[Tensor, Tensor | None]:
    """One attention stage: ``fc(drop_path(attn(norm(tokens))))`` inside every group.

    x: ``(B, T, N, D)``; cls: ``(B, 1, D)`` or None. Returns the residual updates
    ``(dx (B, T, N, D), dcls (B, 1, D) or None)``; the caller adds them. ``drop_path`` is applied
    per group, as the reference code does per frame / per spatial position; ``fc`` (the
    reference's ``temporal_fc``) runs before the groups are merged back, while the tokens are
    still contiguous. ``fused_proj_fc = (W, b)`` (inference only) replaces ``fc(attn.proj(.))``
    with the single equivalent linear map.
    """
    B, T, N, D = x.shape
    groups, mask = partition.split(x, grid)  # (B, G, L, D), (G, L) or None
    G = groups.shape[1]
    if cls is not None:
        # The cls token joins every group: (B, G, 1 + L, D). This cat is the stage's one copy.
        groups = torch.cat([cls.unsqueeze(1).expand(B, G, 1, D), groups], dim=2)
        if mask is not None:
            mask = torch.cat([mask.new_ones(G, 1), mask], dim=1)  # (G, 1 + L)
    seq = groups.reshape(B * G, groups.shape[2], D)  # (B*G, L', D)
    attn_mask = None
    if mask is not None:
        # (B*G, 1, 1, L'): padded keys are never attended to.
        attn_mask = mask.unsqueeze(0).expand(B, G, mask.shape[1]).reshape(B * G, 1, 1, -1)
    if fused_proj_fc is not None:
        out = attn(norm(seq), attn_mask=attn_mask, project=False)  # (B*G, L', D)
        out = F.linear(out, *fused_proj_fc)
    else:
        out = attn(norm(seq), attn_mask=attn_mask)  # (B*G, L', D)
        if drop_path is not None:
            out = drop_path(out)
        if fc is not None:
            out = fc(out)
    out = out.view(B, G, -1, D)  # (B, G, L', D)
    dcls = None
    if cls is not None:
        dcls = out[:, :, 0].mean(dim=1, keepdim=True)  # (B, 1, D): average over groups
        out = out[:, :, 1:]  # (B, G, L, D)
    return partition.merge(out, T, grid), dcls
