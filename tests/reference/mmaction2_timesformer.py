"""mmaction2's TimeSformer (divided space-time), re-implemented from its definitions in
``mmaction/models/backbones/timesformer.py`` and ``mmaction/models/common/transformer.py``
(``DividedTemporalAttentionWithNorm``, ``DividedSpatialAttentionWithNorm``, ``FFNWithNorm``):
patch tokens in (p t) order, ``nn.MultiheadAttention`` sequence-first, ``temporal_fc``, the
spatial cls results averaged over frames, ``TimeSformerHead``. It runs from the checkpoint's
own parameter names. The oracle for :mod:`vidcls.convert.timesformer_mmaction2`."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def mma_timesformer_forward(p: dict, x, heads):
    """mmaction2's TimeSformer (divided space-time) from its definition: patches in
    (p t) order, nn.MultiheadAttention (sequence-first), temporal_fc, FFNWithNorm."""
    def ln(y, name):
        return F.layer_norm(y, y.shape[-1:], p[name + ".weight"], p[name + ".bias"], 1e-6)

    def mha(y, name):  # y (L, N, E)
        attn = nn.MultiheadAttention(y.shape[-1], heads)
        attn.load_state_dict({k: p[f"{name}.{k}"] for k in ("in_proj_weight", "in_proj_bias",
                                                            "out_proj.weight", "out_proj.bias")})
        return attn.eval()(y, y, y)[0]

    b, t = x.shape[:2]
    y = F.conv2d(x.reshape(b * t, *x.shape[2:]), p["backbone.patch_embed.projection.weight"],
                 p["backbone.patch_embed.projection.bias"], stride=16)
    y = y.flatten(2).transpose(1, 2)  # (b t) p m
    y = torch.cat([p["backbone.cls_token"].expand(b * t, -1, -1), y], 1) + p["backbone.pos_embed"]
    cls = y[:b, :1]
    n = y.shape[1] - 1
    y = y[:, 1:].reshape(b, t, n, -1).transpose(1, 2).reshape(b * n, t, -1)  # (b p) t m
    y = (y + p["backbone.time_embed"]).reshape(b, n * t, -1)  # b (p t) m
    q = torch.cat([cls, y], 1)
    for i in range(2):
        pre = f"backbone.transformer_layers.layers.{i}."
        # DividedTemporalAttentionWithNorm
        cls_tok, qt = q[:, :1], q[:, 1:]
        h = ln(qt.reshape(b * n, t, -1), pre + "attentions.0.norm").permute(1, 0, 2)
        res = mha(h, pre + "attentions.0.attn").permute(1, 0, 2)
        res = F.linear(res, p[pre + "attentions.0.temporal_fc.weight"],
                       p[pre + "attentions.0.temporal_fc.bias"]).reshape(b, n * t, -1)
        q = torch.cat([cls_tok, qt + res], 1)
        # DividedSpatialAttentionWithNorm
        cls_tok, qs = q[:, :1], q[:, 1:]
        cls_rep = cls_tok.repeat(1, t, 1).reshape(b * t, 1, -1)
        qs = qs.reshape(b, n, t, -1).transpose(1, 2).reshape(b * t, n, -1)  # (b t) p m
        h = ln(torch.cat([cls_rep, qs], 1), pre + "attentions.1.norm").permute(1, 0, 2)
        res = mha(h, pre + "attentions.1.attn").permute(1, 0, 2)
        res_cls = res[:, 0].reshape(b, t, -1).mean(1, keepdim=True)
        res_p = res[:, 1:].reshape(b, t, n, -1).transpose(1, 2).reshape(b, n * t, -1)
        q = q + torch.cat([res_cls, res_p], 1)
        # FFNWithNorm
        h = ln(q, pre + "ffns.0.norm")
        h = F.linear(F.gelu(F.linear(h, p[pre + "ffns.0.layers.0.0.weight"],
                                     p[pre + "ffns.0.layers.0.0.bias"])),
                     p[pre + "ffns.0.layers.1.weight"], p[pre + "ffns.0.layers.1.bias"])
        q = q + h
    feat = ln(q, "backbone.norm")[:, 0]
    return F.linear(feat, p["cls_head.fc_cls.weight"], p["cls_head.fc_cls.bias"])
