"""The attention stages over (B, T, N, D) token grids: their neighbourhoods match the documented
rules (by probing and against naive masked attention), split/merge are exact inverses, SDPA
matches the textbook formula, and every scheme trains (forward + backward, no NaN)."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from vidcls.models.attention import (FRAME, GLOBAL, HEIGHT, JOINT, LOCAL, TIME, VARIANT_STAGES,
                                     WIDTH, Attention, grouped_attention)

# Grids (T, h, w): even, odd (padding + masks for HALVES / STRIDE2), and degenerate axes.
GRIDS = [(4, 4, 4), (3, 5, 3), (2, 3, 4), (1, 1, 2), (5, 2, 1)]
PARTITIONS = [JOINT, FRAME, TIME, WIDTH, HEIGHT, LOCAL, GLOBAL]


def documented_neighbours(name: str, a, b, grid) -> bool:
    """May token ``a`` attend to token ``b`` (both ``(t, y, x)``)? Written from the module
    docstring of vidcls.models.attention, independently of its implementation."""
    T, h, w = grid
    (ta, ya, xa), (tb, yb, xb) = a, b
    if name == "joint":
        return True
    if name == "frame":
        return ta == tb
    if name == "time":
        return (ya, xa) == (yb, xb)
    if name == "width":
        return ta == tb and ya == yb
    if name == "height":
        return ta == tb and xa == xb
    if name == "local":  # all frames of one ceil(h/2) x ceil(w/2) quadrant
        hh, hw = math.ceil(h / 2), math.ceil(w / 2)
        return ya // hh == yb // hh and xa // hw == xb // hw
    if name == "global":  # same parity in t, y and x
        return (ta % 2, ya % 2, xa % 2) == (tb % 2, yb % 2, xb % 2)
    raise AssertionError(name)


def coords(grid):
    T, h, w = grid
    return list(itertools.product(range(T), range(h), range(w)))  # token order (t, y, x)


def expected_pattern(name, grid) -> torch.Tensor:
    cs = coords(grid)
    return torch.tensor([[documented_neighbours(name, a, b, grid) for b in cs] for a in cs])


def make_stage(dim=8, heads=2, seed=0):
    torch.manual_seed(seed)
    attn = Attention(dim, heads)
    norm = nn.LayerNorm(dim, eps=1e-6)
    with torch.no_grad():  # non-trivial LayerNorm affine and biases
        for p in [*attn.parameters(), *norm.parameters()]:
            p.add_(torch.randn_like(p) * 0.3)
    return attn.eval(), norm.eval()


@pytest.mark.parametrize("grid", GRIDS, ids=str)
@pytest.mark.parametrize("part", PARTITIONS, ids=lambda p: p.name)
def test_split_merge_roundtrip_and_groups_follow_the_rule(part, grid):
    T, h, w = grid
    B, D = 2, 3
    x = torch.randn(B, T, h * w, D)
    groups, mask = part.split(x, (h, w))
    assert torch.equal(part.merge(groups, T, (h, w)), x)
    # Tag every token with its index and check group membership against the documented rule.
    idx = torch.arange(T * h * w, dtype=torch.float32).view(1, T, h * w, 1)
    g, mask = part.split(idx, (h, w))
    g = g[0, :, :, 0].long()  # (G, L)
    valid = mask if mask is not None else torch.ones_like(g, dtype=torch.bool)
    assert valid.any(dim=1).all(), "a group holds only padding"
    group_of = {}
    for gi in range(g.shape[0]):
        for li in range(g.shape[1]):
            if valid[gi, li]:
                group_of[int(g[gi, li])] = gi
    assert sorted(group_of) == list(range(T * h * w)), "tokens lost or duplicated"
    cs = coords(grid)
    for i, j in itertools.product(range(len(cs)), repeat=2):
        same = group_of[i] == group_of[j]
        assert same == documented_neighbours(part.name, cs[i], cs[j], grid), (cs[i], cs[j])
    assert part.num_groups(T, h, w) == g.shape[0]


@pytest.mark.parametrize("grid", [(4, 4, 4), (3, 5, 3)], ids=str)
@pytest.mark.parametrize("part", PARTITIONS, ids=lambda p: p.name)
@pytest.mark.parametrize("with_cls", [False, True], ids=["no_cls", "cls"])
def test_probing_matches_documented_neighbourhood(part, grid, with_cls):
    """Perturb one input token at a time; the outputs that change must be exactly the tokens
    whose documented neighbourhood contains it (the cls token, when it takes part, is a
    neighbour of every patch and sees every patch)."""
    T, h, w = grid
    n, D = T * h * w, 8
    attn, norm = make_stage(D)
    torch.manual_seed(1)
    base_x, base_cls = torch.randn(1, T, h * w, D), torch.randn(1, 1, D)
    # Batch element 0: unperturbed; element 1 + i: token i perturbed (i == n: the cls token).
    k = n + 1 if with_cls else n
    x = base_x.repeat(k + 1, 1, 1, 1)
    cls = base_cls.repeat(k + 1, 1, 1)
    flat = x.view(k + 1, n, D)
    for i in range(n):
        flat[1 + i, i] += torch.randn(D)
    if with_cls:
        cls[1 + n, 0] += torch.randn(D)
    with torch.no_grad():
        dx, dcls = grouped_attention(attn, norm, x, (h, w), part, cls=cls if with_cls else None)
    out = dx.reshape(k + 1, n, D)
    changed = (out[1:] - out[:1]).abs().amax(-1) > 1e-6
    # changed[i, j]: output token j moved when input i was perturbed  <=>  j attends to i.
    pattern = expected_pattern(part.name, grid).T
    assert torch.equal(changed[:n], pattern)
    if with_cls:
        assert changed[n].all(), "perturbing cls must move every patch (cls joins every group)"
        cls_changed = (dcls[1:] - dcls[:1]).abs().amax(-1).squeeze(-1) > 1e-6
        assert cls_changed.all(), "cls must see every patch and itself"
    else:
        assert dcls is None


def naive_stage(attn: Attention, norm: nn.LayerNorm, x, cls, grid, name):
    """Textbook masked softmax attention over the explicit (N*T) x (N*T) neighbourhood matrix;
    the cls token (if given) is a key of every patch, and its update is the mean over the
    neighbourhood classes of its attention over {cls} + class."""
    T, h, w = grid
    B, _, N, D = x.shape
    H, Dh = attn.num_heads, attn.head_dim
    tokens = torch.cat([cls, x.reshape(B, T * N, D)], 1) if cls is not None else x.reshape(B, -1, D)
    q, k, v = attn.qkv(norm(tokens)).view(B, -1, 3, H, Dh).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / math.sqrt(Dh)  # (B, H, L, L)
    nb = expected_pattern(name, grid)
    off = 1 if cls is not None else 0

    def attend(query_rows, key_mask):
        """Rows ``query_rows`` attend to the keys where ``key_mask`` (rows x L) is True."""
        s = scores[:, :, query_rows].masked_fill(~key_mask, float("-inf"))
        return torch.softmax(s, -1) @ v  # (B, H, rows, Dh)

    keys = torch.zeros(T * N, tokens.shape[1], dtype=torch.bool)
    keys[:, off:] = nb  # patch j attends to its documented neighbourhood ...
    if cls is not None:
        keys[:, 0] = True  # ... and to the cls token
    out = attend(slice(off, None), keys)  # (B, H, T*N, Dh)
    out = attn.proj(out.transpose(1, 2).reshape(B, T * N, D)).view(B, T, N, D)
    if cls is None:
        return out, None
    classes = {tuple(row.tolist()) for row in nb}  # equivalence classes of the partition
    cls_outs = []
    for c in classes:
        keys = torch.tensor((True,) + c).unsqueeze(0)  # {cls} + class
        cls_outs.append(attend([0], keys)[:, :, 0])  # (B, H, Dh)
    cls_out = torch.stack(cls_outs).mean(0)
    return out, attn.proj(cls_out.reshape(B, 1, D))


@pytest.mark.parametrize("grid", [(4, 4, 4), (3, 5, 3), (2, 3, 1)], ids=str)
@pytest.mark.parametrize("part", PARTITIONS, ids=lambda p: p.name)
def test_stage_equals_naive_masked_attention(part, grid):
    T, h, w = grid
    attn, norm = make_stage(12, heads=3, seed=2)
    x, cls = torch.randn(2, T, h * w, 12), torch.randn(2, 1, 12)
    with torch.no_grad():
        for c in (None, cls):
            got, got_cls = grouped_attention(attn, norm, x, (h, w), part, cls=c)
            ref, ref_cls = naive_stage(attn, norm, x, c, grid, part.name)
            torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
            if c is not None:
                torch.testing.assert_close(got_cls, ref_cls, atol=1e-5, rtol=1e-5)


def test_attention_module_matches_textbook_formula():
    attn, _ = make_stage(16, heads=4)
    x = torch.randn(3, 7, 16)
    with torch.no_grad():
        q, k, v = attn.qkv(x).view(3, 7, 3, 4, 4).permute(2, 0, 3, 1, 4)
        ref = torch.softmax(q @ k.transpose(-1, -2) * 4 ** -0.5, -1) @ v
        ref = attn.proj(ref.transpose(1, 2).reshape(3, 7, 16))
        torch.testing.assert_close(attn(x), ref, atol=1e-5, rtol=1e-5)


def test_attention_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="num_heads"):
        Attention(10, 3)


@pytest.mark.parametrize("variant", list(VARIANT_STAGES))
@pytest.mark.parametrize("grid", [(4, 4, 4), (3, 3, 5)], ids=str)
def test_every_variant_forward_backward(variant, grid):
    """All stages of a scheme in sequence, with gradients to the input and every parameter."""
    T, h, w = grid
    pre, last = VARIANT_STAGES[variant]
    torch.manual_seed(0)
    stages = [(make_stage(8, seed=i), p) for i, (_, p) in enumerate(pre)]
    last_stage = make_stage(8, seed=9)
    for (a, nrm), _ in stages:
        a.train()
    x = torch.randn(2, T, h * w, 8, requires_grad=True)
    cls = torch.randn(2, 1, 8, requires_grad=True)
    y = x
    for (a, nrm), p in stages:
        y = y + grouped_attention(a, nrm, y, (h, w), p)[0]
    dx, dcls = grouped_attention(*last_stage, y, (h, w), last, cls=cls)
    y, c = y + dx, cls + dcls
    assert y.shape == x.shape and c.shape == cls.shape
    (y.square().mean() + c.square().mean()).backward()
    params = [p for (a, nrm), _ in stages for p in [*a.parameters(), *nrm.parameters()]]
    params += [*last_stage[0].parameters(), *last_stage[1].parameters()]
    for t in [x, cls, *params]:
        assert t.grad is not None and torch.isfinite(t.grad).all()
    assert torch.isfinite(y).all() and x.grad.abs().sum() > 0


# --------------------------------------------------------------------------- kernel choice
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("seq_len,masked", [(8, False), (8, True), (50, False), (50, True)])
def test_matmul_attention_equals_sdpa(dtype, seq_len, masked):
    """The plain bmm + softmax path (chosen per shape) gives SDPA's values, masks included."""
    from vidcls.models.attention import Attention
    torch.manual_seed(0)
    attn = Attention(32, 4).eval()
    x = torch.randn(6, seq_len, 32) * 3
    mask = None
    if masked:
        mask = torch.ones(6, 1, 1, seq_len, dtype=torch.bool)
        mask[:, ..., -3:] = False  # the last three keys are padding
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=dtype == torch.bfloat16):
        qkv = attn.qkv(x)
        fast = attn._matmul_attention(qkv, mask)
        q, k, v = attn._heads(qkv)
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        ref = ref.transpose(1, 2).reshape(6, seq_len, 32)
    if dtype == torch.float32:
        torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    else:  # bf16 probabilities (SDPA keeps them in fp32): a few outputs move by one bf16 step
        torch.testing.assert_close(fast.float(), ref.float(), atol=0.1, rtol=0.05)
        assert (fast.float() - ref.float()).abs().mean() < 5e-3


def test_attention_kernel_choice_per_shape_and_machine_kind(monkeypatch):
    from vidcls.models import attention as A
    fp32 = torch.zeros(1, 1, 3)
    bf16 = fp32.bfloat16()
    monkeypatch.setattr(A, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert A.use_matmul_attention(fp32, 2352 * 12, 8, 0.0)  # temporal stage: always matmul
    assert not A.use_matmul_attention(fp32, 96, 197, 0.0)  # spatial fp32: SDPA
    assert A.use_matmul_attention(bf16, 96, 197, 0.0)  # spatial bf16 without AMX: matmul
    assert not A.use_matmul_attention(bf16, 12 * 16, 3137, 0.0)  # joint: SDPA, no (L, L)
    assert not A.use_matmul_attention(fp32, 2352, 8, 0.1)  # attention dropout: SDPA
    monkeypatch.setattr(A, "cpu_flags", lambda: frozenset({"avx512_bf16", "amx_bf16"}))
    assert not A.use_matmul_attention(bf16, 96, 197, 0.0)  # AMX: the flash kernel wins
    assert A.use_matmul_attention(bf16, 2352 * 12, 8, 0.0)
