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


def mma_timesformer_params(*, dim=32, frames=4, patches=4, classes=5, layers=2, seed=0,
                           attention="divided_space_time") -> dict:
    """Random weights in mmaction2's TimeSformer + TimeSformerHead names: divided layers hold
    ``attentions.0`` (temporal, with ``temporal_fc``), ``attentions.1`` and ``ffns.0`` with
    its norm; joint / space-only ones mmcv's ``BaseTransformerLayer`` (``norms.0/1``,
    ``attentions.0``, ``ffns.0``); space-only has no ``time_embed``."""
    g = torch.Generator().manual_seed(seed)
    d = dim

    def r(*shape, std=0.2):
        return torch.randn(*shape, generator=g) * std

    def mha(prefix):
        return {prefix + "attn.in_proj_weight": r(3 * d, d), prefix + "attn.in_proj_bias": r(3 * d),
                prefix + "attn.out_proj.weight": r(d, d), prefix + "attn.out_proj.bias": r(d)}

    p = {"backbone.patch_embed.projection.weight": r(d, 3, 16, 16, std=0.05),
         "backbone.patch_embed.projection.bias": r(d), "backbone.cls_token": r(1, 1, d),
         "backbone.pos_embed": r(1, patches + 1, d),
         "backbone.norm.weight": 1 + r(d), "backbone.norm.bias": r(d),
         "cls_head.fc_cls.weight": r(classes, d), "cls_head.fc_cls.bias": r(classes)}
    if attention != "space_only":
        p["backbone.time_embed"] = r(1, frames, d)
    for i in range(layers):
        pre = f"backbone.transformer_layers.layers.{i}."
        ffn = {pre + "ffns.0.layers.0.0.weight": r(4 * d, d),
               pre + "ffns.0.layers.0.0.bias": r(4 * d),
               pre + "ffns.0.layers.1.weight": r(d, 4 * d), pre + "ffns.0.layers.1.bias": r(d)}
        if attention == "divided_space_time":
            for a in ("attentions.0.", "attentions.1."):
                p.update({pre + a + "norm.weight": 1 + r(d), pre + a + "norm.bias": r(d),
                          **mha(pre + a)})
            p.update({pre + "attentions.0.temporal_fc.weight": r(d, d),
                      pre + "attentions.0.temporal_fc.bias": r(d),
                      pre + "ffns.0.norm.weight": 1 + r(d), pre + "ffns.0.norm.bias": r(d)})
        else:
            for n in ("norms.0.", "norms.1."):
                p.update({pre + n + "weight": 1 + r(d), pre + n + "bias": r(d)})
            p.update(mha(pre + "attentions.0."))
        p.update(ffn)
    return p


def mma_timesformer_config(*, num_frames=8, img_size=224, attention_type="divided_space_time",
                           num_heads=None, num_classes=400, clip_len=8, frame_interval=32,
                           test_scale=224, crop_size=224) -> str:
    """A config text as mmengine's ``cfg.pretty_text`` stores it in ``meta["cfg"]``, laid out
    like ``configs/recognition/timesformer/timesformer_*_8xb8-8x32x1-15e_kinetics400-rgb.py``
    (the training pipeline first, with other values, so a reader must take the test one)."""
    heads = "" if num_heads is None else f"\n        num_heads={num_heads},"
    return f"""model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='TimeSformer',
        pretrained='https://download.openmmlab.com/mmaction/recognition/timesformer/vit_base_patch16_224.pth',
        num_frames={num_frames},
        img_size={img_size},
        patch_size=16,
        embed_dims=768,{heads}
        in_channels=3,
        dropout_ratio=0.0,
        transformer_layers=None,
        attention_type='{attention_type}',
        norm_cfg=dict(type='LN', eps=1e-06)),
    cls_head=dict(
        type='TimeSformerHead',
        num_classes={num_classes},
        in_channels=768,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        format_shape='NCTHW'))
train_pipeline = [
    dict(type='DecordInit', io_backend='disk'),
    dict(type='SampleFrames', clip_len={clip_len}, frame_interval={2 * frame_interval},
         num_clips=1),
    dict(type='DecordDecode'),
    dict(type='RandomRescale', scale_range=(256, 320)),
    dict(type='RandomCrop', size={crop_size}),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='DecordInit', io_backend='disk'),
    dict(
        type='SampleFrames',
        clip_len={clip_len},
        frame_interval={frame_interval},
        num_clips=1,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, {test_scale})),
    dict(type='ThreeCrop', crop_size={crop_size}),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
"""
