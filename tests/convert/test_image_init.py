"""``torchvision-resnet`` / ``timm-vit``: image weights become the initialisation of a video model
with a fresh head."""
from __future__ import annotations

import pytest
import torch

from helpers.convert import tiny_timesformer
from vidcls.convert import convert, convert_checkpoint
from vidcls.engine.checkpoint import load_model
from vidcls.models.resnet import resnet18


def test_torchvision_resnet_and_timm_vit_init(tmp_path):
    torch.manual_seed(0)
    image = resnet18(num_classes=1000)
    torch.save(image.state_dict(), tmp_path / "resnet18-f37072fd.pth")
    out = convert_checkpoint(tmp_path / "resnet18-f37072fd.pth", tmp_path / "init",
                             "torchvision-resnet", num_classes=5, num_frames=4)
    model, meta = load_model(out)
    assert meta["model"]["name"] == "tsm_resnet18" and model.head.weight.shape == (5, 512)
    assert torch.equal(model.backbone.layer3[1].conv2.weight, image.layer3[1].conv2.weight)
    assert meta["classes"] == ["0", "1", "2", "3", "4"]

    vit = tiny_timesformer("space", classes=1000)  # a space-only model is a plain ViT
    timm_sd = {k: v for k, v in vit.state_dict().items()}
    assert not any("temporal" in k or k == "time_embed" for k in timm_sd)
    torch.save(timm_sd, tmp_path / "vit_tiny.pth")
    conv = convert(tmp_path / "vit_tiny.pth", "timm-vit", num_classes=3, num_frames=4,
                   num_heads=2)
    blk = conv.model.blocks[1]
    assert torch.equal(blk.temporal_attn.qkv.weight, vit.blocks[1].attn.qkv.weight)
    assert torch.equal(blk.attn.proj.weight, vit.blocks[1].attn.proj.weight)
    assert blk.temporal_fc.weight.abs().sum() == 0 and conv.model.head.weight.shape == (3, 32)


def test_timm_vit_init_records_true_builder(tmp_path):
    """An image ViT inflated to 16 frames x 448 px is a timesformer_hr, to 4 x 32 a -B."""
    torch.save(tiny_timesformer("space", classes=1000).state_dict(), tmp_path / "vit_tiny.pth")
    hr = convert(tmp_path / "vit_tiny.pth", "timm-vit", num_classes=3, num_frames=16,
                 img_size=448, num_heads=2)
    assert hr.model.build_config["name"] == "timesformer_hr"
    assert hr.model.pos_embed.shape[1] == 1 + 28 * 28
    base = convert(tmp_path / "vit_tiny.pth", "timm-vit", num_classes=3, num_frames=4,
                   num_heads=2)
    assert base.model.build_config["name"] == "timesformer_base"


def test_shift_options_for_a_tsn_init_are_refused(tmp_path):
    torch.save(resnet18(num_classes=1000).state_dict(), tmp_path / "resnet18.pth")
    conv = convert(tmp_path / "resnet18.pth", "torchvision-resnet", model="tsn_resnet18",
                   num_classes=4)
    assert conv.model.build_config["name"] == "tsn_resnet18"
    with pytest.raises(ValueError, match=r"shift_div \(--shift-div\), shift_mode "
                                         r"\(--shift-mode\) do not apply: tsn_resnet18 has no "
                                         "temporal shift; leave them out"):
        convert(tmp_path / "resnet18.pth", "torchvision-resnet", model="tsn_resnet18",
                num_classes=4, shift_div=4, shift_mode="unidirectional")
    tsm = convert(tmp_path / "resnet18.pth", "torchvision-resnet", num_classes=4, shift_div=4)
    assert tsm.model.build_config["shift_div"] == 4
