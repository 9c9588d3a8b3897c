"""``timesformer-mmaction2``: random weights in mmaction2's layout reproduce a re-implementation of
mmaction2's forward from its definitions (:mod:`reference.mmaction2_timesformer`)."""
from __future__ import annotations

import warnings
from collections import OrderedDict

import pytest
import torch

from reference.mmaction2_timesformer import (mma_timesformer_config, mma_timesformer_forward,
                                             mma_timesformer_params)
from vidcls.convert import ConversionWarning, convert


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


def test_the_stored_config_and_meta_give_frames_sampling_crop_and_classes(tmp_path):
    """mmengine stores ``meta["cfg"]`` (the config text) and ``meta["dataset_meta"]``: a
    4-frame space-only model (no time embedding) sampled 4 x 16, tested at 40 -> 32, with its
    class names -- not 8 x 32 and 0..4."""
    params = mma_timesformer_params(attention="space_only")
    config = mma_timesformer_config(num_frames=4, img_size=32, attention_type="space_only",
                                    num_heads=2, num_classes=5, clip_len=4, frame_interval=16,
                                    test_scale=40, crop_size=32)
    names = ["run", "jump", "swim", "sit", "fly"]
    path = tmp_path / "epoch_15.pth"
    torch.save({"meta": {"cfg": config, "dataset_meta": {"classes": names}, "epoch": 15},
                "state_dict": OrderedDict(params), "message_hub": {}}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConversionWarning)
        conv = convert(path)
    assert conv.model.num_frames == 4 and conv.model.attention == "space"
    assert conv.model.blocks[0].attn.num_heads == 2 and conv.classes == names
    prep = conv.preprocessing
    assert (prep.sampling, prep.clip_len, prep.frame_interval) == ("dense", 4, 16)
    assert (prep.resize, prep.input_size, prep.std) == (40, 32, (0.5, 0.5, 0.5))
    explicit = convert(path, num_frames=8, frame_interval=4, classes=list("abcde"))
    assert explicit.model.num_frames == 8 and explicit.preprocessing.frame_interval == 4
    assert explicit.classes == list("abcde")

    wrong = tmp_path / "wrong.pth"
    torch.save({"meta": {"cfg": config.replace("'space_only'", "'divided_space_time'")},
                "state_dict": OrderedDict(params)}, wrong)
    with pytest.raises(ValueError, match="attention_type='divided_space_time' but its weights "
                                         "are a 'space' model"):
        convert(wrong)


def test_mmcv_checkpoints_give_their_config_name_and_classes(tmp_path):
    """mmcv (mmaction2 0.x) stores no config text but ``meta["config_name"]`` and
    ``meta["CLASSES"]``; without any, the defaults are announced."""
    params = mma_timesformer_params(attention="space_only")
    path = tmp_path / "latest.pth"
    torch.save({"meta": {"config_name": "timesformer_spaceOnly_4x16x1_15e_kinetics400_rgb.py",
                         "CLASSES": ("a", "b", "c", "d", "e"), "mmcv_version": "1.7.0"},
                "state_dict": OrderedDict(params)}, path)
    conv = convert(path, num_heads=2)
    assert conv.model.num_frames == 4 and conv.preprocessing.frame_interval == 16
    assert conv.classes == list("abcde")
    bare = tmp_path / "bare.pth"
    torch.save({"state_dict": OrderedDict(params)}, bare)
    with pytest.warns(ConversionWarning) as record:
        conv = convert(bare, num_heads=2)
    assert conv.source["assumed"] == {"num_frames": 8, "classes": "index names 0..4",
                                      "frame_interval": 32}
    assert any("num_frames: " in str(w.message) and "--num-frames" in str(w.message)
               for w in record)
