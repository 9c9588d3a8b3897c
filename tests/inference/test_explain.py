"""``vidcls explain``: attention probabilities equal HF transformers' ``output_attentions``,
attention rollout equals a dense reference built from the attention rules of the paper, Grad-CAM
equals the class activation map it reduces to on TSN/TSM, and the CLI writes a PNG grid and an
mp4 of the right sizes."""
from __future__ import annotations

import json
import math

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidcls.cli import main
from vidcls.data.synthetic import render_video
from vidcls.data.writer import write_video
from vidcls.engine.checkpoint import save_model_checkpoint
from vidcls.inference.explain import (_AttentionRecorder, attention_rollout, explain_clip,
                                      grad_cam, object_focus)
from vidcls.models import create_model
from vidcls.models.attention import GROUP, HALVES, SEQ, STRIDE2
from vidcls.viz import colorize, overlay_heatmaps

ATTENTIONS = ("space", "joint", "divided", "local_global", "axial")


def tiny_timesformer(attention: str, *, frames=3, size=32, depth=2, seed=0):
    torch.manual_seed(seed)
    m = create_model("timesformer_base", num_classes=3, num_frames=frames, attention=attention,
                     img_size=size, patch_size=8, embed_dim=32, depth=depth, num_heads=2,
                     drop_path_rate=0.0)
    with torch.no_grad():  # the zero-initialised stage projections would hide stage bugs
        for name, p in m.named_parameters():
            if name.endswith("_fc.weight") or name.endswith("_fc.bias") or name == "time_embed":
                p.normal_(0, 0.3)
    return m.eval()


# --------------------------------------------------------------------------- attention probs
@pytest.mark.parametrize("attention", ["divided", "joint", "space"])
def test_recorded_attention_equals_hf_output_attentions(attention):
    transformers = pytest.importorskip("transformers")
    from vidcls.convert import timesformer_from_hf

    hf_type = {"divided": "divided_space_time", "joint": "joint_space_time",
               "space": "space_only"}[attention]
    torch.manual_seed(0)
    cfg = transformers.TimesformerConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, num_frames=3, num_labels=5, attention_type=hf_type,
        attn_implementation="eager")
    hf = transformers.TimesformerForVideoClassification(cfg).eval()
    ours = timesformer_from_hf(hf).eval()
    x = torch.randn(2, 3, 3, 32, 32)
    rec = _AttentionRecorder(ours)
    with torch.no_grad():
        ours(x)
        hf_att = hf(x, output_attentions=True).attentions  # last stage of each block
    rec.remove()
    last = [r for r in rec.records if r["with_cls"]]
    assert len(last) == 2
    T, N = 3, 16
    for r, a in zip(last, hf_att):
        expected = a.mean(dim=1)  # heads averaged
        if attention == "joint":  # HF orders joint tokens (patch, frame); we use (frame, patch)
            perm = torch.tensor([0] + [1 + n * T + t for t in range(T) for n in range(N)])
            expected = expected[:, perm][:, :, perm]
        torch.testing.assert_close(r["probs"], expected, atol=1e-5, rtol=1e-5)


def test_attention_probs_are_what_forward_attends_with():
    from vidcls.models.attention import Attention

    torch.manual_seed(0)
    attn = Attention(16, num_heads=2).eval()
    x = torch.randn(3, 5, 16)
    mask = torch.ones(3, 1, 1, 5, dtype=torch.bool)
    mask[..., -1] = False  # the last key is padding
    p = attn.probs(x, mask)  # (S, heads, L, L)
    assert p.shape == (3, 2, 5, 5) and (p[..., -1] == 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(3, 2, 5))
    v = attn.qkv(x).view(3, 5, 3, 2, 8)[:, :, 2].transpose(1, 2)  # (S, heads, L, head_dim)
    heads = (p @ v).transpose(1, 2).reshape(3, 5, 16)  # (S, L, D) before proj
    with torch.no_grad():
        torch.testing.assert_close(heads, attn(x, mask, project=False), atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------- rollout
def _rule(rule: str, n: int, a: int, b: int) -> bool:
    if rule == SEQ:
        return True
    if rule == GROUP:
        return a == b
    if rule == HALVES:
        half = math.ceil(n / 2)
        return a // half == b // half
    assert rule == STRIDE2
    return a % 2 == b % 2


def _stage_mask(partition, T: int, h: int, w: int) -> torch.Tensor:
    """(TN, TN) bool from the rules in the attention module's docstring, token by token."""
    coords = [(t, y, x) for t in range(T) for y in range(h) for x in range(w)]
    m = torch.zeros(len(coords), len(coords), dtype=torch.bool)
    for i, a in enumerate(coords):
        for j, b in enumerate(coords):
            m[i, j] = all(_rule(r, n, p, q) for r, n, p, q in
                          zip((partition.t, partition.y, partition.x), (T, h, w), a, b))
    return m


def _heads(attn, z):
    B, L, D = z.shape
    qkv = attn.qkv(z).view(B, L, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    return qkv[0], qkv[1], qkv[2]  # (B, H, L, hd)


def _dense_clip(model, cls, x, grid):
    """Naive forward of the blocks over dense (1+TN) token matrices; returns the final cls
    token and the per-stage attention matrices (heads averaged, cls row/col included)."""
    B, T, N, D = x.shape
    h, w = grid
    patches = x.reshape(B, T * N, D)
    mats = []
    for blk in model.blocks:
        stages = [(p, part, False) for p, part in blk.stages] + [("", blk.last_partition, True)]
        for prefix, part, with_cls in stages:
            attn = getattr(blk, f"{prefix}_attn" if prefix else "attn")
            norm = getattr(blk, f"{prefix}_norm1" if prefix else "norm1")
            M = _stage_mask(part, T, h, w)  # (TN, TN)
            A = torch.zeros(B, 1 + T * N, 1 + T * N)
            if not with_cls:
                q, k, v = _heads(attn, norm(patches))
                s = (q @ k.transpose(-2, -1)) / math.sqrt(attn.head_dim)
                p = s.masked_fill(~M, float("-inf")).softmax(-1)  # (B, H, TN, TN)
                out = (p @ v).transpose(1, 2).reshape(B, T * N, D)
                patches = patches + getattr(blk, f"{prefix}_fc")(attn.proj(out))
                A[:, 0, 0] = 1.0
                A[:, 1:, 1:] = p.mean(1)
            else:
                z = torch.cat([cls, patches], dim=1)  # (B, 1+TN, D)
                q, k, v = _heads(attn, norm(z))
                s = (q @ k.transpose(-2, -1)) / math.sqrt(attn.head_dim)  # (B, H, L, L)
                Mp = torch.cat([torch.ones(T * N, 1, dtype=torch.bool), M], dim=1)  # + cls key
                p_rows = s[:, :, 1:].masked_fill(~Mp, float("-inf")).softmax(-1)
                # cls: one softmax per group (cls + the group's tokens), averaged over groups
                groups = torch.unique(M, dim=0)  # (G, TN): each row = one group's members
                p_cls = torch.zeros(B, attn.num_heads, 1 + T * N)
                for g in groups:
                    keys = torch.cat([torch.tensor([True]), g])
                    p_cls += s[:, :, 0].masked_fill(~keys, float("-inf")).softmax(-1)
                p_cls /= len(groups)
                out_p = (p_rows @ v).transpose(1, 2).reshape(B, T * N, D)
                out_c = (p_cls[:, :, None] @ v).transpose(1, 2).reshape(B, 1, D)
                patches = patches + attn.proj(out_p)
                cls = cls + attn.proj(out_c)
                A[:, 0] = p_cls.mean(1)
                A[:, 1:] = p_rows.mean(1)
            mats.append(A)
        tokens = torch.cat([cls, patches], dim=1)
        tokens = tokens + blk.mlp(blk.norm2(tokens))
        cls, patches = tokens[:, :1], tokens[:, 1:]
    return cls, mats


def _dense_reference(model, x):
    """(relevance (B, T, h, w), logits) from dense matrices: R = prod(0.5 I + 0.5 A)."""
    B, T, _, H, W = x.shape
    grid = (H // 8, W // 8)
    captured = {}
    handle = model.blocks[0].register_forward_pre_hook(
        lambda m, args: captured.update(cls=args[0], x=args[1]))
    model(x)
    handle.remove()
    cls, toks = captured["cls"], captured["x"]  # (B', 1, D), (B', T', N, D)
    cls_out, mats = _dense_clip(model, cls, toks, grid)
    L = mats[0].shape[-1]
    R = torch.eye(L).expand(cls.shape[0], L, L)
    for A in mats:
        R = (0.5 * torch.eye(L) + 0.5 * A) @ R
    rel = R[:, 0, 1:]  # (B', T'N)
    if model.attention == "space":  # one 1-frame clip per frame; final cls = their mean
        rel = rel.reshape(B, T, -1) / T
        cls_out = cls_out.reshape(B, T, -1).mean(1, keepdim=True)
    logits = model.head(model.norm(cls_out[:, 0]))
    return rel.reshape(B, T, *grid), logits


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_rollout_equals_dense_reference(attention):
    # 3 frames of a 4x5 patch grid: odd sizes exercise the padded (masked) groups too
    model = tiny_timesformer(attention, frames=3)
    x = torch.randn(2, 3, 3, 32, 40)
    with torch.no_grad():
        rel, logits = attention_rollout(model, x)
        ref, ref_logits = _dense_reference(model, x)
    assert rel.shape == (2, 3, 4, 5)
    # the naive forward reproduces the model, so its attention matrices are the model's
    torch.testing.assert_close(ref_logits, logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(rel, ref, atol=1e-5, rtol=1e-4)
    assert (rel >= 0).all()
    share = rel.sum(dim=(1, 2, 3))  # the cls token keeps the rest
    assert ((share > 0) & (share < 1)).all()


def test_rollout_of_joint_model_equals_hf_attention_product():
    """Independent of our grouping code: HF's joint attention matrices, multiplied."""
    transformers = pytest.importorskip("transformers")
    from vidcls.convert import timesformer_from_hf

    torch.manual_seed(1)
    cfg = transformers.TimesformerConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=64, num_frames=2, num_labels=3, attention_type="joint_space_time",
        attn_implementation="eager")
    hf = transformers.TimesformerForVideoClassification(cfg).eval()
    ours = timesformer_from_hf(hf).eval()
    x = torch.randn(1, 2, 3, 32, 32)
    with torch.no_grad():
        rel, _ = attention_rollout(ours, x)
        atts = hf(x, output_attentions=True).attentions
    L = atts[0].shape[-1]
    R = torch.eye(L)
    for a in atts:
        R = (0.5 * torch.eye(L) + 0.5 * a[0].mean(0)) @ R
    T, N = 2, 16
    hf_rel = R[0, 1:].reshape(N, T).T.reshape(1, T, 4, 4)  # HF order (patch, frame)
    torch.testing.assert_close(rel, hf_rel, atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- Grad-CAM
@pytest.mark.parametrize("name", ["tsn_resnet18", "tsm_resnet18", "tsm_mobilenetv2"])
def test_grad_cam_equals_class_activation_map(name):
    """After the last conv stage a TSN/TSM only averages (space, then frames) and applies the
    linear head, so d logit_k / d A = W_k / (T h w): Grad-CAM = ReLU(sum_c W_kc A_c) / (T h w),
    the class activation map of Zhou et al."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=4, num_frames=3, dropout=0.0).eval()
    with torch.no_grad():
        model.head.weight.normal_(0, 0.5)
    x = torch.randn(2, 3, 3, 64, 64)
    acts = {}
    layer = model.backbone.layer4 if hasattr(model.backbone, "layer4") else \
        model.backbone.features[-1]
    handle = layer.register_forward_hook(lambda m, a, o: acts.update(a=o.detach().clone()))
    target = torch.tensor([1, 3])
    last = "layer4" if hasattr(model.backbone, "layer4") else "features.18"
    cam, logits = grad_cam(model, x, target, layer=last)
    handle.remove()
    A = acts["a"]  # (B*T, C, h, w)
    h, w = A.shape[-2:]
    W = model.head.weight[target].repeat_interleave(3, dim=0)  # (B*T, C)
    expected = F.relu((W[:, :, None, None] * A).sum(1)) / (3 * h * w)
    assert cam.shape == (2, 3, h, w)
    torch.testing.assert_close(cam, expected.reshape(2, 3, h, w), atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(logits, model(x), atol=1e-5, rtol=1e-5)


def test_grad_cam_defaults_to_predicted_class_and_works_under_no_grad():
    model = create_model("tsm_resnet18", num_classes=3, num_frames=2).eval()
    x = torch.randn(1, 2, 3, 32, 32)
    with torch.no_grad():
        cam, logits = grad_cam(model, x)
        ref, _ = grad_cam(model, x, int(logits.argmax()))
    torch.testing.assert_close(cam, ref)
    # 32 pixels: layer4 is 1x1, so the last stage with a >= 7x7 map (layer1, 8x8) is used
    assert grad_cam.last_layer == "layer1" and cam.shape == (1, 2, 8, 8)
    cam, _ = grad_cam(model, torch.randn(1, 2, 3, 224, 224))
    assert grad_cam.last_layer == "layer4" and cam.shape == (1, 2, 7, 7)
    with pytest.raises(ValueError, match="unknown layer 'layer5'"):
        grad_cam(model, x, layer="layer5")


def test_method_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="needs a TimeSformer"):
        explain_clip(create_model("tsn_resnet18", num_classes=2, num_frames=2),
                     torch.randn(2, 3, 32, 32), method="rollout")
    with pytest.raises(ValueError, match="rollout"):
        explain_clip(tiny_timesformer("divided", depth=1), torch.randn(3, 3, 32, 32),
                     method="gradcam")


# --------------------------------------------------------------------------- rendering + CLI
def test_colorize_and_overlay_ranges():
    c = colorize(np.array([0.0, 0.5, 1.0]))
    assert c.shape == (3, 3) and c.min() >= 0 and c.max() <= 1
    assert c[0, 2] > c[0, 0] and c[2, 0] > c[2, 2]  # low = blue, high = red
    frames = np.full((2, 16, 12, 3), 100, dtype=np.uint8)
    heat = torch.rand(2, 4, 3)
    out = overlay_heatmaps(frames, heat, alpha=0.4)
    assert out.shape == frames.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(overlay_heatmaps(frames, heat, alpha=0.0), frames)
    with pytest.raises(ValueError, match="one map per frame"):
        overlay_heatmaps(frames, heat[:1])


def test_object_focus():
    clip = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
    for t in range(4):  # a bright 4x4 square moving right over a black background
        clip[t, :, 6:10, 2 + 3 * t:6 + 3 * t] = 255
    on = torch.zeros(4, 16, 16)
    for t in range(4):
        on[t, 6:10, 2 + 3 * t:6 + 3 * t] = 1.0
    obj_share = float((clip.float().sum(1) > 0).float().mean())
    assert object_focus(clip, on) == pytest.approx(1 / obj_share, rel=0.05)  # all heat on it
    assert object_focus(clip, torch.ones(4, 16, 16)) == pytest.approx(1.0, rel=1e-4)
    assert object_focus(clip, 1 - on) < 0.2
    assert object_focus(torch.zeros_like(clip), on) is None  # nothing moves


def _checkpoint(tmp_path, model, name):
    path = tmp_path / name
    save_model_checkpoint(path, model, classes=["moving right", "moving left", "approaching"],
                          preprocessing=dict(input_size=32, resize=32, num_frames=4,
                                             sampling="segment"))
    return path


def _video(tmp_path):
    frames = render_video("temporal", 0, 0, num_classes=4, num_frames=8, size=32, seed=0)
    path = tmp_path / "clip.mp4"
    write_video(path, frames)
    return path


def _read_video(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.mark.parametrize("model_name", ["timesformer", "tsm"])
def test_explain_cli_writes_grid_png_and_overlay_mp4(tmp_path, capsys, model_name):
    if model_name == "timesformer":
        model = create_model("timesformer_base", num_classes=3, num_frames=4, img_size=32,
                             patch_size=8, embed_dim=16, depth=1, num_heads=2)
        extra = []
    else:
        model = create_model("tsm_resnet18", num_classes=3, num_frames=4)
        extra = ["--class", "moving left"]
    ckpt = _checkpoint(tmp_path, model, "ckpt")
    video = _video(tmp_path)
    out = tmp_path / "explained"
    assert main(["explain", str(video), "--checkpoint", str(ckpt), "--output", str(out),
                 *extra, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["method"] == ("rollout" if model_name == "timesformer" else "gradcam")
    assert record["frames"] == 4
    if model_name == "tsm":
        assert record["explained_class"] == "moving left"
    png = _read_video(out / "explain.png")  # PyAV reads PNG too
    assert png.shape[0] == 1 and png.shape[-1] == 3 and png[0].std() > 0
    mp4 = _read_video(out / "explain.mp4")
    # 4 frames, each: frame | overlay, upscaled to >= 224 pixels
    assert mp4.shape == (4, 224, 448, 3)
    assert np.abs(mp4[:, :, :224].astype(int) - mp4[:, :, 224:].astype(int)).mean() > 5
    assert json.loads((out / "explain.json").read_text())["video"] == str(video)


def test_explain_cli_errors(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, create_model("tsn_resnet18", num_classes=3, num_frames=4), "c")
    video = _video(tmp_path)
    assert main(["explain", str(tmp_path / "nope.mp4"), "--checkpoint", str(ckpt),
                 "--output", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["explain", str(video), "--checkpoint", str(ckpt), "--output",
                 str(tmp_path / "o"), "--class", "flying"]) == 2
    assert "not one of the checkpoint's classes" in capsys.readouterr().err
    assert main(["explain", str(video), "--checkpoint", str(ckpt), "--output",
                 str(tmp_path / "o"), "--method", "rollout"]) == 2
    assert "needs a TimeSformer" in capsys.readouterr().err
