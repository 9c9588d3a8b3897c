"""``timesformer-mmaction2``: random weights in mmaction2's layout reproduce a re-implementation of
mmaction2's forward from its definitions (:mod:`reference.mmaction2_timesformer`)."""
from __future__ import annotations

from collections import OrderedDict

import torch

from reference.mmaction2_timesformer import mma_timesformer_forward
from vidcls.convert import convert


def test_timesformer_mmaction2_matches_reference_forward(tmp_path):
    g = torch.Generator().manual_seed(0)
    d, t, n = 32, 4, 4

    def r(*shape, std=0.2):
        return torch.randn(*shape, generator=g) * std

    p = {"backbone.patch_embed.projection.weight": r(d, 3, 16, 16, std=0.05),
         "backbone.patch_embed.projection.bias": r(d), "backbone.cls_token": r(1, 1, d),
         "backbone.pos_embed": r(1, n + 1, d), "backbone.time_embed": r(1, t, d),
         "backbone.norm.weight": 1 + r(d), "backbone.norm.bias": r(d),
         "cls_head.fc_cls.weight": r(5, d), "cls_head.fc_cls.bias": r(5)}
    for i in range(2):
        pre = f"backbone.transformer_layers.layers.{i}."
        for a in ("attentions.0.", "attentions.1."):
            p.update({pre + a + "norm.weight": 1 + r(d), pre + a + "norm.bias": r(d),
                      pre + a + "attn.in_proj_weight": r(3 * d, d),
                      pre + a + "attn.in_proj_bias": r(3 * d),
                      pre + a + "attn.out_proj.weight": r(d, d),
                      pre + a + "attn.out_proj.bias": r(d)})
        p.update({pre + "attentions.0.temporal_fc.weight": r(d, d),
                  pre + "attentions.0.temporal_fc.bias": r(d),
                  pre + "ffns.0.norm.weight": 1 + r(d), pre + "ffns.0.norm.bias": r(d),
                  pre + "ffns.0.layers.0.0.weight": r(4 * d, d),
                  pre + "ffns.0.layers.0.0.bias": r(4 * d),
                  pre + "ffns.0.layers.1.weight": r(d, 4 * d), pre + "ffns.0.layers.1.bias": r(d)})
    path = tmp_path / "timesformer_divST_4x32x1_kinetics400.pth"
    config = "model = dict(backbone=dict(type='TimeSformer', num_frames=4, num_heads=2))"
    torch.save({"meta": {"config": config}, "state_dict": OrderedDict(p)}, path)
    conv = convert(path, "timesformer-mmaction2")
    assert conv.model.blocks[0].attn.num_heads == 2  # read from the stored config
    assert conv.preprocessing.std == (0.5, 0.5, 0.5)
    x = torch.randn(2, t, 3, 32, 32, generator=g)
    with torch.no_grad():
        expected = mma_timesformer_forward(p, x, heads=2)
        torch.testing.assert_close(conv.model(x), expected, atol=1e-4, rtol=1e-4)
