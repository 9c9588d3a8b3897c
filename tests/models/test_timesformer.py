"""TimeSformer: parity with HF transformers (divided / joint / space), correct results for clips
of another length or size (interpolated embeddings), the model contract, parameter counts,
initialisation and image-ViT weight loading."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vidcls.convert import (hf_timesformer_state_dict, timesformer_from_hf,
                            timesformer_from_timm_vit, timm_vit_to_timesformer_state_dict)
from vidcls.models import Preprocessing, create_model
from vidcls.models.timesformer import (ATTENTION_TYPES, TimeSformer, resize_pos_embed,
                                       resize_time_embed, timesformer_base, timesformer_hr,
                                       timesformer_large)

transformers = pytest.importorskip("transformers")

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4)
HF_TYPES = {"divided": "divided_space_time", "joint": "joint_space_time", "space": "space_only"}


def hf_model(attention: str, *, num_frames=4, image_size=32, seed=0):
    """A small random HF TimeSformer with non-zero temporal_fc and time embedding."""
    torch.manual_seed(seed)
    cfg = transformers.TimesformerConfig(
        image_size=image_size, patch_size=8, hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=128, num_frames=num_frames, num_labels=7,
        attention_type=HF_TYPES[attention])
    model = transformers.TimesformerForVideoClassification(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "temporal_dense" in name or "time_embeddings" in name or "layernorm" in name:
                p.add_(torch.randn_like(p) * 0.2)
    return model


def hf_logits(model, x):
    """HF logits, made comparable for ``space_only``: HF classifies every frame's cls token;
    the reference (and vidcls) average the frame tokens over time before the norm and head."""
    with torch.no_grad():
        if model.config.attention_type != "space_only":
            return model(x).logits
        B, T = x.shape[:2]
        last = model(x, output_hidden_states=True).hidden_states[-1]  # (B*T, 1+N, D), pre-norm
        cls = last[:, 0].reshape(B, T, -1).mean(1)
        return model.classifier(model.timesformer.layernorm(cls))


@pytest.mark.parametrize("attention", ["divided", "joint", "space"])
def test_parity_with_hf_transformers(attention):
    hf = hf_model(attention)
    ours = timesformer_from_hf(hf)
    assert ours.attention == attention and ours.num_frames == 4 and ours.num_classes == 7
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        got = ours(x)
    assert got.shape == (2, 7)
    torch.testing.assert_close(got, hf_logits(hf, x), atol=1e-4, rtol=1e-4)


def test_hf_space_only_returns_per_frame_logits_ours_per_clip():
    """Why the space parity above averages: HF returns (B*T, K); we return (B, K)."""
    hf = hf_model("space")
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        assert hf(x).logits.shape == (8, 7)
        assert timesformer_from_hf(hf)(x).shape == (2, 7)


def test_conversion_from_state_dict_and_config():
    hf = hf_model("divided")
    ours = timesformer_from_hf(hf.state_dict(), hf.config)
    x = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x).logits, atol=1e-4, rtol=1e-4)
    sd = hf_timesformer_state_dict(hf.state_dict())
    assert "blocks.1.temporal_fc.weight" in sd and "head.weight" in sd
    with pytest.raises(ValueError, match="config"):
        timesformer_from_hf(hf.state_dict())
    with pytest.raises(KeyError, match="unexpected key"):
        hf_timesformer_state_dict({"timesformer.foo.bar": torch.zeros(1)})


@pytest.mark.parametrize("attention", ["divided", "joint"])
def test_other_length_and_size_use_interpolated_embeddings(attention):
    """A 6-frame 48x48 clip through a model configured for 4 frames at 32x32 must equal an HF
    model configured for 6 x 48 whose embeddings are the interpolated ones (bicubic on the patch
    grid, cls position kept; linear along time). HF itself cannot run the mismatched clip
    correctly: its layers reshape with the configured sizes."""
    hf = hf_model(attention)
    ours = timesformer_from_hf(hf, pos_interpolation="bicubic", time_interpolation="linear")
    ref = hf_model(attention, num_frames=6, image_size=48, seed=1)
    sd = hf.state_dict()
    pos = sd["timesformer.embeddings.position_embeddings"]  # (1, 1 + 4*4, D)
    grid = pos[:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(6, 6), mode="bicubic", align_corners=False)
    sd["timesformer.embeddings.position_embeddings"] = torch.cat(
        [pos[:, :1], grid.flatten(2).transpose(1, 2)], 1)
    time = sd["timesformer.embeddings.time_embeddings"]  # (1, 4, D)
    sd["timesformer.embeddings.time_embeddings"] = F.interpolate(
        time.transpose(1, 2), size=6, mode="linear", align_corners=False).transpose(1, 2)
    ref.load_state_dict(sd)
    x = torch.randn(2, 6, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x).logits, atol=1e-4, rtol=1e-4)
    # Fewer frames and a non-square clip work too (no reference to compare against here).
    with torch.no_grad():
        assert torch.isfinite(ours(torch.randn(1, 3, 3, 24, 40))).all()


def test_resize_embeddings():
    pos = torch.randn(1, 1 + 4 * 4, 5)
    assert resize_pos_embed(pos, (4, 4), (4, 4)) is pos
    up = resize_pos_embed(pos, (4, 4), (8, 6))
    assert up.shape == (1, 1 + 48, 5) and torch.equal(up[:, 0], pos[:, 0])
    # A constant grid stays constant; a ramp along x stays monotone after bicubic resampling.
    const = torch.ones(1, 17, 2)
    torch.testing.assert_close(resize_pos_embed(const, (4, 4), (7, 3)), torch.ones(1, 22, 2))
    time = torch.arange(4.0).view(1, 4, 1)
    t8 = resize_time_embed(time, 8)[0, :, 0]
    # align_corners=False: new frame i sits at old position (i + 0.5) / 2 - 0.5, clamped.
    expected = ((torch.arange(8.0) + 0.5) / 2 - 0.5).clamp(0, 3)
    torch.testing.assert_close(t8, expected)
    assert resize_time_embed(time, 4) is time


@pytest.mark.parametrize("attention", ATTENTION_TYPES)
def test_every_variant_trains_on_tiny_clips(attention):
    torch.manual_seed(0)
    model = TimeSformer(num_classes=3, num_frames=4, attention=attention, drop_rate=0.1,
                        attn_drop_rate=0.1, drop_path_rate=0.2, dropout=0.1, **TINY).train()
    # 3 frames, 40x24: odd token grids (5 x 3), so local_global pads and masks.
    x = torch.randn(2, 3, 3, 40, 24, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 2])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("attention", ATTENTION_TYPES)
def test_model_contract(attention):
    model = TimeSformer(num_classes=5, num_frames=2, attention=attention, **TINY).eval()
    x = torch.randn(2, 2, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(x)
        n_tok = 1 + (1 if attention == "space" else 2) * 16
        assert feats.shape == (2, n_tok, 32)
        torch.testing.assert_close(model(x), model.forward_head(feats))
        assert model.forward_head(feats, pre_logits=True).shape == (2, 32)
    assert model.num_classes == 5 and model.num_frames == 2
    assert model.preprocessing == Preprocessing(mean=(0.45,) * 3, std=(0.225,) * 3,
                                                input_size=32, resize=32, num_frames=2)


def test_space_classifies_frames_independently_then_averages():
    """space: each frame is its own ViT pass (own cls token, no time embedding); the clip
    feature is the mean over frames, taken before the final norm."""
    torch.manual_seed(0)
    model = TimeSformer(num_classes=0, attention="space", **TINY).eval()
    model.norm = torch.nn.Identity()
    x = torch.randn(1, 3, 3, 32, 32)
    with torch.no_grad():
        per_frame = torch.stack([model(x[:, t:t + 1]) for t in range(3)]).mean(0)
        torch.testing.assert_close(model(x), per_frame, atol=1e-5, rtol=1e-5)


def test_one_frame_divided_equals_image_vit_at_init():
    """temporal_fc and time_embed start at zero, so a divided model on one frame is exactly the
    image ViT with the same weights (which is what the space model computes on one frame)."""
    torch.manual_seed(0)
    div = TimeSformer(num_classes=4, attention="divided", **TINY).eval()
    space = TimeSformer(num_classes=4, attention="space", **TINY).eval()
    space.load_state_dict({k: v for k, v in div.state_dict().items() if k in space.state_dict()})
    x = torch.randn(2, 1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(div(x), space(x), atol=1e-5, rtol=1e-5)


def test_initialisation():
    model = TimeSformer(attention="axial", **TINY)
    for blk in model.blocks:
        for name in ("temporal_fc", "width_fc"):
            assert getattr(blk, name).weight.abs().sum() == 0
    assert model.time_embed.abs().sum() == 0
    assert 0.01 < model.pos_embed.std() < 0.03 and model.pos_embed.abs().max() <= 2.0
    assert 0.01 < model.blocks[0].attn.qkv.weight.std() < 0.03
    assert model.blocks[0].drop_path.p == 0 and model.blocks[-1].drop_path.p == pytest.approx(0.1)
    assert TimeSformer(attention="space", **TINY).time_embed is None


def vit_b_params(classes: int, frames: int, stages: int, time: bool = True) -> int:
    """ViT-B/16 at 224 plus ``stages`` extra attention stages per block, written out."""
    D, L, P, N = 768, 12, 16, 196
    patch = 3 * P * P * D + D
    embeds = D + (N + 1) * D + (frames * D if time else 0)
    ln = 2 * D
    attn = 3 * D * D + 3 * D + D * D + D
    mlp = D * 4 * D + 4 * D + 4 * D * D + D
    stage = ln + attn + D * D + D  # norm1 + attn + fc
    block = ln + attn + ln + mlp + stages * stage
    return patch + embeds + L * block + ln + D * classes + classes


def test_parameter_counts_on_meta_device():
    counts = {}
    with torch.device("meta"):
        for attention in ATTENTION_TYPES:
            m = timesformer_base(num_classes=400, attention=attention)
            counts[attention] = sum(p.numel() for p in m.parameters())
        hr = sum(p.numel() for p in timesformer_hr(num_classes=400).parameters())
        large = sum(p.numel() for p in timesformer_large(num_classes=400).parameters())
    assert counts["divided"] == vit_b_params(400, 8, stages=1)
    # The paper quotes 121.4M; the reference architecture (= HF's, checked below) has 121.57M.
    assert abs(counts["divided"] / 1e6 - 121.4) < 0.2
    assert counts["joint"] == vit_b_params(400, 8, stages=0)
    assert counts["space"] == vit_b_params(400, 8, stages=0, time=False)
    assert counts["local_global"] == counts["divided"]
    assert counts["axial"] == vit_b_params(400, 8, stages=2)
    assert counts["space"] < counts["joint"] < counts["divided"] < counts["axial"]
    # HR: 28x28 grid and 16 frames; L: 96 frames. Same weights otherwise.
    assert hr == counts["divided"] + (784 - 196) * 768 + 8 * 768
    with torch.device("meta"):
        for attention, hf_type in HF_TYPES.items():
            cfg = transformers.TimesformerConfig(num_labels=400, attention_type=hf_type)
            hf = transformers.TimesformerForVideoClassification(cfg)
            assert counts[attention] == sum(p.numel() for p in hf.parameters()), attention
    assert large == counts["divided"] + 88 * 768


def test_builders_and_factory():
    with torch.device("meta"):
        hr = timesformer_hr()
        large = timesformer_large(attention="joint")
    assert (hr.num_frames, hr.img_size, hr.preprocessing.input_size) == (16, (448, 448), 448)
    assert hr.preprocessing.resize == 448
    assert (large.num_frames, large.attention) == (96, "joint")
    model = create_model("timesformer_base", num_classes=3, num_frames=2, attention="axial",
                         **TINY)
    assert model.num_frames == 2 and model.attention == "axial"
    assert model(torch.randn(1, 2, 3, 32, 32)).shape == (1, 3)


def test_clear_errors():
    model = TimeSformer(num_classes=2, **TINY)
    with pytest.raises(ValueError, match="expected a clip batch"):
        model(torch.randn(1, 3, 2, 32, 32))
    with pytest.raises(ValueError, match="multiples of patch_size=8"):
        model(torch.randn(1, 2, 3, 30, 32))
    with pytest.raises(ValueError, match="unknown attention"):
        TimeSformer(attention="sparse")
    with pytest.raises(ValueError, match="patch_size"):
        TimeSformer(img_size=30, patch_size=8)


def timm_vit_state_dict(D=32, depth=2, grid=4, patch=8, classes=10, seed=0):
    """Random weights under timm ``vit_*_patch*`` names (timm itself is not a dependency)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.1

    sd = {"cls_token": r(1, 1, D), "pos_embed": r(1, 1 + grid * grid, D),
          "patch_embed.proj.weight": r(D, 3, patch, patch), "patch_embed.proj.bias": r(D),
          "norm.weight": 1 + r(D), "norm.bias": r(D), "head.weight": r(classes, D),
          "head.bias": r(classes)}
    for i in range(depth):
        b = f"blocks.{i}."
        sd.update({b + "norm1.weight": 1 + r(D), b + "norm1.bias": r(D),
                   b + "attn.qkv.weight": r(3 * D, D), b + "attn.qkv.bias": r(3 * D),
                   b + "attn.proj.weight": r(D, D), b + "attn.proj.bias": r(D),
                   b + "norm2.weight": 1 + r(D), b + "norm2.bias": r(D),
                   b + "mlp.fc1.weight": r(4 * D, D), b + "mlp.fc1.bias": r(4 * D),
                   b + "mlp.fc2.weight": r(D, 4 * D), b + "mlp.fc2.bias": r(D)})
    return sd


@pytest.mark.parametrize("attention", ["divided", "axial", "local_global"])
def test_init_from_timm_vit(attention):
    vit = timm_vit_state_dict()
    model = timesformer_from_timm_vit(vit, TimeSformer(num_classes=5, attention=attention,
                                                       **TINY))
    blk = model.blocks[1]
    for prefix, _ in blk.stages:  # every earlier stage starts as a copy of the spatial one
        stage_attn = getattr(blk, f"{prefix}_attn")
        assert torch.equal(stage_attn.qkv.weight, vit["blocks.1.attn.qkv.weight"])
        assert torch.equal(getattr(blk, f"{prefix}_norm1").bias, vit["blocks.1.norm1.bias"])
        assert getattr(blk, f"{prefix}_fc").weight.abs().sum() == 0
    assert torch.equal(model.pos_embed, vit["pos_embed"])
    assert model.head.weight.shape == (5, 32)  # 10-class head dropped
    if attention != "divided":
        return
    # With zero stage projections and time embedding, one frame = the image ViT (divided only:
    # the last stage of the other schemes is not full-frame attention).
    space = TimeSformer(num_classes=10, attention="space", **TINY).eval()
    space.load_state_dict(vit)
    model.head = space.head
    x = torch.randn(2, 1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), space(x), atol=1e-5, rtol=1e-5)


def test_timm_vit_pos_embed_resampled_and_bad_keys_rejected():
    vit = timm_vit_state_dict()
    sd = timm_vit_to_timesformer_state_dict(vit, attention="divided", grid_size=(6, 6),
                                            num_classes=10)
    assert sd["pos_embed"].shape == (1, 37, 32) and "head.weight" in sd
    assert torch.equal(sd["blocks.0.temporal_attn.proj.bias"], vit["blocks.0.attn.proj.bias"])
    with pytest.raises(KeyError, match="unexpected keys"):
        timm_vit_to_timesformer_state_dict({**vit, "blocks.0.ls1.gamma": torch.ones(32)},
                                           attention="divided", grid_size=(4, 4), num_classes=10)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_pretrained_file(tmp_path, suffix):
    vit = timm_vit_state_dict()
    path = tmp_path / f"vit{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file(vit, str(path))
    else:
        torch.save({"model": vit}, path)
    model = timesformer_base(num_classes=10, pretrained=path, img_size=48, patch_size=8,
                             embed_dim=32, depth=2, num_heads=4)
    assert torch.equal(model.blocks[0].temporal_attn.qkv.weight, vit["blocks.0.attn.qkv.weight"])
    assert model.pos_embed.shape == (1, 37, 32)  # 4x4 grid resampled to 6x6
    # A saved TimeSformer state dict (with the reference's "model." prefix) round-trips.
    path2 = tmp_path / "tsf.pth"
    torch.save({"model_state": {f"model.{k}": v for k, v in model.state_dict().items()}}, path2)
    again = timesformer_base(num_classes=10, pretrained=path2, img_size=48, patch_size=8,
                             embed_dim=32, depth=2, num_heads=4)
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k


def test_grad_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = TimeSformer(num_classes=3, drop_path_rate=0.0, **TINY).train()
    x = torch.randn(2, 4, 3, 32, 32)
    model(x).sum().backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], atol=1e-5, rtol=1e-4)


def test_bf16_autocast_runs_close_to_fp32():
    torch.manual_seed(0)
    model = TimeSformer(num_classes=3, **TINY).eval()
    x = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.1)


def test_inference_fusion_of_proj_and_temporal_fc_matches_training_path():
    """At inference (eval + no autograd) attn.proj and each stage's fc run as one linear map
    (when there are more tokens than channels); it must equal the two-step path."""
    torch.manual_seed(0)
    model = TimeSformer(num_classes=3, attention="axial", **TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    x = torch.randn(2, 4, 3, 32, 32)  # 2*4*16 = 128 tokens > 32 channels
    blk = model.blocks[0]
    assert blk.fused_proj_fc("temporal", 128) is None  # grad enabled
    unfused = model(x)
    with torch.no_grad():
        assert blk.fused_proj_fc("temporal", 16) is None  # would not pay off
        w, b = blk.fused_proj_fc("width", 128)
        h = torch.randn(5, 32)
        torch.testing.assert_close(F.linear(h, w, b), blk.width_fc(blk.width_attn.proj(h)))
        fused = model(x)
    torch.testing.assert_close(fused, unfused.detach(), atol=1e-5, rtol=1e-5)


def test_fused_proj_fc_is_formed_again_when_weights_change():
    """The fused (W, b) is kept between calls; any change to the four parameters (an optimiser
    step, load_state_dict) must give the new weights' product, never the stale one."""
    torch.manual_seed(0)
    model = TimeSformer(num_classes=3, attention="divided", **TINY).eval()
    x = torch.randn(2, 4, 3, 32, 32)
    blk = model.blocks[0]
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
        first = blk.fused_proj_fc("temporal", 128)
        assert blk.fused_proj_fc("temporal", 128)[0] is first[0]  # kept
        model(x)
        blk.temporal_fc.weight.mul_(-1.0)  # in place, as an optimiser step
        second = blk.fused_proj_fc("temporal", 128)
        torch.testing.assert_close(second[0], blk.temporal_fc.weight @ blk.temporal_attn.proj.weight)
        other = TimeSformer(num_classes=3, attention="divided", **TINY).eval()
        other.load_state_dict(model.state_dict())
        blk.temporal_attn.proj.bias.add_(1.0)
        other.load_state_dict(model.state_dict())
        torch.testing.assert_close(model(x), other(x))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert blk.fused_proj_fc("temporal", 128)[0].dtype == torch.bfloat16
        assert blk.fused_proj_fc("temporal", 128)[0].dtype == torch.float32
        fused = model(x)
    unfused = model(x)  # autograd on: the two-step path with the current weights
    torch.testing.assert_close(fused, unfused.detach(), atol=1e-5, rtol=1e-5)
