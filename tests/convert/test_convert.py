"""Converters: every format is checked on a checkpoint written in the exact layout of the
original (keys, nesting, file format). Where the layout encodes semantics (where the TSM shift
sits, Paddle's mirrored shift, mmaction2's attention), the expected logits come from a small
re-implementation of the original forward written here from its definition, not from vidcls."""
from __future__ import annotations

import json
import os
import pickle
import re
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vidcls.convert import (FORMATS, convert, convert_checkpoint, load_torch_file,
                            parse_tsm_filename, read_paddle_params)
from vidcls.engine.checkpoint import load_model, read_meta
from vidcls.models import create_model
from vidcls.models.resnet import resnet18
from vidcls.resources import class_names



def _calibrate(model: nn.Module, clip_shape, seed: int = 0) -> nn.Module:
    """Batch-norm statistics from random clips and random BN affine parameters, so every
    channel matters and a misplaced or permuted weight shows in the logits."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
            m.weight.data.uniform_(0.5, 1.5, generator=g)
            m.bias.data.normal_(0, 0.2, generator=g)
    model.train()
    with torch.no_grad():
        model(torch.randn(*clip_shape, generator=g))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.weight.data.normal_(0, m.weight.shape[1] ** -0.5, generator=g)
            m.bias.data.normal_(0, 0.1, generator=g)
    return model.eval()


# =============================================================================== TSM authors
def ref_shift(x, n_segment, fold_div):
    """The TSM authors' TemporalShift.shift (zeros + three slice copies)."""
    nt, c, h, w = x.shape
    x = x.reshape(nt // n_segment, n_segment, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]  # shift left: channels [0, fold) take frame t+1
    out[:, 1:, fold:2 * fold] = x[:, :-1, fold:2 * fold]  # shift right
    out[:, :, 2 * fold:] = x[:, :, 2 * fold:]
    return out.reshape(nt, c, h, w)


class RefTemporalShift(nn.Module):
    """``TemporalShift(net)`` of the TSM repo: shift, then run the wrapped ``net``."""

    def __init__(self, net, n_segment, n_div):
        super().__init__()
        self.net, self.n_segment, self.fold_div = net, n_segment, n_div

    def forward(self, x):
        return self.net(ref_shift(x, self.n_segment, self.fold_div))


class RefTSN(nn.Module):
    """The TSM repo's TSN wrapper: ``base_model`` (fc replaced by dropout), ``new_fc``,
    average consensus over segments."""

    def __init__(self, base_model, feature_dim, num_class, num_segments):
        super().__init__()
        self.base_model = base_model
        self.num_segments = num_segments
        self.new_fc = nn.Linear(feature_dim, num_class)

    def forward(self, x):  # x (B, T, 3, H, W)
        base_out = self.new_fc(self.base_model(x.reshape(-1, *x.shape[2:])))
        return base_out.reshape(-1, self.num_segments, base_out.shape[-1]).mean(1)


def make_ref_resnet_tsm(place: str, n_segment: int, n_div: int, num_class: int) -> RefTSN:
    """ResNet-18 (torchvision layout) + ``make_temporal_shift`` as in the TSM repo."""
    base = resnet18(num_classes=1000)  # torchvision names; shift slots stay nn.Identity
    base.fc = nn.Dropout(0.5)
    for stage in (base.layer1, base.layer2, base.layer3, base.layer4):
        for i, block in enumerate(stage):
            if place == "blockres":
                block.conv1 = RefTemporalShift(block.conv1, n_segment, n_div)
            else:
                stage[i] = RefTemporalShift(block, n_segment, n_div)
    return RefTSN(base, 512, num_class, n_segment)


def save_tsm_checkpoint(path, model: nn.Module):
    """What the TSM repo's main.py saves (model wrapped in DataParallel: ``module.``)."""
    sd = OrderedDict(("module." + k, v) for k, v in model.state_dict().items())
    torch.save({"epoch": 50, "arch": "resnet18", "state_dict": sd, "best_prec1": 71.2,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.01}]}}, path)


@pytest.mark.parametrize("place", ["blockres", "block"])
def test_tsm_official_matches_reference_forward(tmp_path, place):
    torch.manual_seed(0)
    ref = _calibrate(make_ref_resnet_tsm(place, n_segment=4, n_div=4, num_class=400),
                     (2, 4, 3, 32, 32))
    path = tmp_path / f"TSM_kinetics_RGB_resnet18_shift4_{place}_avg_segment4_e50.pth"
    save_tsm_checkpoint(path, ref)
    assert any(".net." in k for k in torch.load(path, weights_only=True)["state_dict"])

    conv = convert(path, "tsm-official")
    cfg = conv.model.build_config
    assert cfg["name"] == "tsm_resnet18" and cfg["num_frames"] == 4 and cfg["shift_div"] == 4
    assert cfg["shift_place"] == {"blockres": "residual", "block": "inplace"}[place]
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        expected = ref(x)
        torch.testing.assert_close(conv.model(x), expected, atol=1e-5, rtol=1e-5)
    assert conv.classes == class_names("kinetics400")
    assert conv.preprocessing["mean"] == (0.485, 0.456, 0.406)
    assert conv.preprocessing["resize"] == 256 and conv.preprocessing["input_size"] == 224

    # the written checkpoint is what predict / eval / stream load
    out = convert_checkpoint(path, tmp_path / "ckpt", "tsm-official")
    model, meta = load_model(out)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)
    assert meta["classes"][0] == "abseiling" and meta["source"]["format"] == "tsm-official"


def test_tsm_official_rejects_misplaced_shift_and_wrong_filename(tmp_path):
    torch.manual_seed(0)
    ref = make_ref_resnet_tsm("blockres", n_segment=8, n_div=8, num_class=10).eval()
    sd = ref.state_dict()
    # one block without its TemporalShift wrapper: the vidcls model would shift it anyway
    bad = OrderedDict((k.replace("layer3.1.conv1.net.", "layer3.1.conv1."), v)
                      for k, v in sd.items())
    path = tmp_path / "TSM_something_RGB_resnet18_shift8_blockres_avg_segment8_e45.pth"
    torch.save({"state_dict": OrderedDict(("module." + k, v) for k, v in bad.items())}, path)
    with pytest.raises(ValueError, match="shifts other blocks.*layer3.1"):
        convert(path, "tsm-official")
    # a key that fits nowhere is listed
    extra = OrderedDict(("module." + k, v) for k, v in sd.items())
    extra["module.base_model.layer9.0.conv1.weight"] = torch.zeros(1)
    torch.save({"state_dict": extra}, path)
    with pytest.raises(ValueError, match=r"stages have|unexpected keys"):
        convert(path, "tsm-official")
    with pytest.raises(ValueError, match="does not use num_heads"):
        convert(path, "tsm-official", num_heads=4)


def test_parse_tsm_filename():
    info = parse_tsm_filename("TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50.pth")
    assert info == {"temporal_pool": False, "non_local": False, "dense": False, "shift_div": 8,
                    "shift_place": "residual", "num_frames": 8, "dataset": "kinetics",
                    "modality": "RGB", "arch": "resnet50"}
    info = parse_tsm_filename("TSM_something_RGB_resnet50_shift4_block_avg_segment16_e45_tpool.pth")
    assert (info["shift_div"], info["shift_place"], info["num_frames"], info["temporal_pool"]) \
        == (4, "inplace", 16, True)
    assert "shift_div" not in parse_tsm_filename("TSM_kinetics_RGB_resnet50_avg_segment5_e50.pth")
    assert parse_tsm_filename("TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e100_dense"
                              ".pth")["dense"]


# --------------------------------------------------------------------- MobileNetV2, TSM repo
class RefInvertedResidual(nn.Module):
    """The TSM repo's InvertedResidual (flat ``conv`` Sequential of 5 or 8 layers); with
    ``online=True`` the online demo's InvertedResidualWithShift (forward(x, shift_buffer))."""

    def __init__(self, inp, oup, stride, t, online=False):
        super().__init__()
        hidden = inp * t
        self.use_res_connect = stride == 1 and inp == oup
        self.online = online and self.use_res_connect and t != 1
        layers = [] if t == 1 else [nn.Conv2d(inp, hidden, 1, 1, 0, bias=False),
                                    nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x, shift_buffer=None):
        if self.online:  # the demo: cached 1/8 of the previous frame + 7/8 of this one
            c = x.shape[1]
            x1, x2 = x[:, :c // 8], x[:, c // 8:]
            return x + self.conv(torch.cat((shift_buffer, x2), dim=1)), x1
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class RefMobileNetV2(nn.Module):
    SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
               [6, 160, 3, 2], [6, 320, 1, 1]]

    def __init__(self, n_class, online=False):
        super().__init__()
        feats = [nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32),
                               nn.ReLU6(inplace=True))]
        inp = 32
        for t, c, n, s in self.SETTING:
            for i in range(n):
                feats.append(RefInvertedResidual(inp, c, s if i == 0 else 1, t, online))
                inp = c
        feats.append(nn.Sequential(nn.Conv2d(inp, 1280, 1, 1, 0, bias=False),
                                   nn.BatchNorm2d(1280), nn.ReLU6(inplace=True)))
        self.features = nn.ModuleList(feats) if online else nn.Sequential(*feats)
        self.classifier = nn.Linear(1280, n_class)

    def forward(self, x, *shift_buffer):
        if not isinstance(self.features, nn.ModuleList):
            return self.classifier(self.features(x).mean(3).mean(2))
        buffers, out, i = list(shift_buffer), [], 0
        for f in self.features:
            if isinstance(f, RefInvertedResidual) and f.online:
                x, s = f(x, buffers[i])
                out.append(s)
                i += 1
            else:
                x = f(x)
        return (self.classifier(x.mean(3).mean(2)), *out)


def test_tsm_official_online_demo_mobilenetv2(tmp_path):
    """The online demo's checkpoint: stepping the converted OnlineTSM equals the demo's own
    step function with its shift buffers."""
    from vidcls.streaming import OnlineTSM

    torch.manual_seed(0)
    ref = RefMobileNetV2(27, online=True)
    offline_twin = RefMobileNetV2(27)  # same weights, plain forward, to calibrate BN
    offline_twin.load_state_dict(ref.state_dict())
    _calibrate(offline_twin, (8, 3, 32, 32))
    ref.load_state_dict(offline_twin.state_dict())
    ref.eval()
    path = tmp_path / "mobilenetv2_jester_online.pth.tar"
    torch.save(ref.state_dict(), path)  # the demo loads it with load_state_dict(torch.load())

    conv = convert(path, "tsm-official")
    assert conv.model.build_config["shift_mode"] == "unidirectional"
    assert conv.classes[0] == "Doing other things" and len(conv.classes) == 27
    online = OnlineTSM(conv.model)
    frames = torch.randn(5, 1, 3, 32, 32)
    shapes = [(1, c // 8, s, s) for c, s in
              [(24, 8), (32, 4), (32, 4), (64, 2), (64, 2), (64, 2), (96, 2), (96, 2), (160, 1),
               (160, 1)]]
    buffers = [torch.zeros(s) for s in shapes]
    with torch.no_grad():
        for frame in frames:
            expected, *buffers = ref(frame, *buffers)
            torch.testing.assert_close(online.step(frame), expected, atol=1e-5, rtol=1e-5)
        assert (expected - ref(frame, *[torch.zeros(s) for s in shapes])[0]).abs().max() > 1e-3


def test_tsm_official_offline_mobilenetv2(tmp_path):
    torch.manual_seed(0)
    base = RefMobileNetV2(1000)
    for m in base.features:
        if isinstance(m, RefInvertedResidual) and len(m.conv) == 8 and m.use_res_connect:
            m.conv[0] = RefTemporalShift(m.conv[0], 4, 8)
    base.classifier = nn.Dropout(0.5)
    ref = _calibrate(RefTSN(base, 1280, 7, 4), (2, 4, 3, 32, 32))
    path = tmp_path / "TSM_jester_RGB_mobilenetv2_shift8_blockres_avg_segment4_e25.pth"
    save_tsm_checkpoint(path, ref)
    conv = convert(path, "tsm-official")
    assert conv.model.build_config["name"] == "tsm_mobilenetv2"
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(conv.model(x), ref(x), atol=1e-5, rtol=1e-5)


# =============================================================================== mmaction2 TSM
def to_mmaction2_tsm(model) -> OrderedDict:
    """Independent writer: vidcls TSM ResNet -> mmaction2 ResNetTSM + TSMHead keys."""
    out = OrderedDict()
    for key, value in model.state_dict().items():
        k = key.replace("backbone.", "")
        if key.startswith("head."):
            out["cls_head.fc_cls." + key[5:]] = value
            continue
        k = re.sub(r"^conv1\.", "conv1.conv.", k)
        k = re.sub(r"^bn1\.", "conv1.bn.", k)
        k = re.sub(r"^(layer\d\.\d+)\.conv1\.", r"\1.conv1.conv.net.", k)  # blockres shift
        k = re.sub(r"^(layer\d\.\d+)\.conv(\d)\.(?!conv)", r"\1.conv\2.conv.", k)
        k = re.sub(r"^(layer\d\.\d+)\.bn(\d)\.", r"\1.conv\2.bn.", k)
        k = re.sub(r"^(layer\d\.\d+)\.downsample\.0\.", r"\1.downsample.conv.", k)
        k = re.sub(r"^(layer\d\.\d+)\.downsample\.1\.", r"\1.downsample.bn.", k)
        out["backbone." + k] = value
    return out


class HistoryBuffer:  # stands for mmengine's class, which the loader must not need to import
    def __init__(self):
        self.data = np.arange(3.0)


def test_tsm_mmaction2_round_trip_with_foreign_metadata(tmp_path):
    torch.manual_seed(0)
    model = _calibrate(create_model("tsm_resnet18", num_classes=6, num_frames=4, shift_div=4),
                       (2, 4, 3, 32, 32))
    sd = to_mmaction2_tsm(model)
    assert "backbone.layer1.0.conv1.conv.net.weight" in sd
    assert "backbone.layer2.0.downsample.bn.running_var" in sd
    config = ("model = dict(type='Recognizer2D', backbone=dict(type='ResNetTSM', depth=18, "
              "num_segments=4, shift_div=4), cls_head=dict(type='TSMHead', num_classes=6))")
    path = tmp_path / "tsm_r18_1x1x4_kinetics_rgb.pth"
    torch.save({"meta": {"config": config, "mmcv_version": "1.7.0",
                         "message_hub": HistoryBuffer(), "best_score": np.float64(0.7)},
                "state_dict": sd, "optimizer": {"state": {}, "param_groups": []}}, path)
    with pytest.raises(Exception):  # plain weights_only loading refuses the metadata ...
        torch.load(path, weights_only=True)
    conv = convert(path, "tsm-mmaction2")  # ... the restricted loader reads around it
    assert conv.model.build_config["shift_div"] == 4 and conv.model.num_frames == 4
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(conv.model(x), model(x), atol=1e-5, rtol=1e-5)


def test_restricted_loader_never_runs_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": Evil()}, path)
    loaded = load_torch_file(path)
    assert not marker.exists()
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(2))
    assert "opaque" in repr(loaded["meta"])
    evil_paddle = tmp_path / "evil.pdparams"
    evil_paddle.write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(ValueError, match="refusing to load"):
        read_paddle_params(evil_paddle)
    assert not marker.exists()


# =============================================================================== PaddleVideo
def paddle_shift(x, seg_num, shift_ratio):
    """``paddle.nn.functional.temporal_shift`` as documented: pad T by one zero frame on each
    side, slice1 = x[:, :T, :C1], slice2 = x[:, 2:T+2, C1:C2], slice3 = x[:, 1:T+1, C2:]."""
    nt, c, h, w = x.shape
    x = x.reshape(nt // seg_num, seg_num, c, h, w)
    pad = F.pad(x, (0, 0, 0, 0, 0, 0, 1, 1))  # (N, T+2, C, H, W)
    c1, c2 = int(c * shift_ratio), int(c * 2 * shift_ratio)
    out = torch.cat([pad[:, :seg_num, :c1], pad[:, 2:seg_num + 2, c1:c2],
                     pad[:, 1:seg_num + 1, c2:]], dim=2)
    return out.reshape(nt, c, h, w)


def paddle_resnet_tsm_forward(p: dict, x, seg_num):
    """PaddleVideo ResNetTSM-50 + TSMHead from parameter names (resnet_tsm.py, tsm_head.py)."""
    def conv_bn(y, name, stride=1, act=True):
        w = p[f"{name}._conv.weight"]
        y = F.conv2d(y, w, stride=stride, padding=(w.shape[-1] - 1) // 2)
        y = F.batch_norm(y, p[f"{name}._batch_norm._mean"], p[f"{name}._batch_norm._variance"],
                         p[f"{name}._batch_norm.weight"], p[f"{name}._batch_norm.bias"],
                         training=False, eps=1e-5)
        return F.relu(y) if act else y

    y = x.reshape(-1, *x.shape[2:])
    y = F.max_pool2d(conv_bn(y, "backbone.conv", 2), 3, 2, 1)
    for stage, blocks in enumerate([3, 4, 6, 3]):
        for i in range(blocks):
            name = f"backbone.res{stage + 2}{chr(97 + i)}"
            stride = 2 if i == 0 and stage != 0 else 1
            shifted = paddle_shift(y, seg_num, 1.0 / seg_num)
            z = conv_bn(conv_bn(conv_bn(shifted, f"{name}.conv0"), f"{name}.conv1", stride),
                        f"{name}.conv2", act=False)
            short = conv_bn(y, f"{name}.short", stride, act=False) if i == 0 else y
            y = F.relu(short + z)
    feats = y.mean((2, 3))  # avgpool
    score = feats @ p["head.fc.weight"] + p["head.fc.bias"]  # paddle Linear: (in, out)
    return score.reshape(-1, seg_num, score.shape[-1]).mean(1)


def to_paddle(model) -> dict:
    """Independent writer: vidcls ResNet-50 names -> PaddleVideo structured names (numpy)."""
    bn = {"weight": "weight", "bias": "bias", "running_mean": "_mean", "running_var": "_variance"}
    out = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        if key == "head.weight":
            out["head.fc.weight"] = value.t().numpy()
            continue
        if key == "head.bias":
            out["head.fc.bias"] = value.numpy()
            continue
        k = key[len("backbone."):]
        m = re.match(r"^(conv1|bn1)\.(\w+)$", k)
        if m:
            name = "conv._conv.weight" if m[1] == "conv1" else f"conv._batch_norm.{bn[m[2]]}"
        else:
            m = re.match(r"^layer(\d)\.(\d+)\.(conv|bn|downsample\.)(\d)\.(\w+)$", k)
            block = f"res{int(m[1]) + 1}{chr(97 + int(m[2]))}"
            if m[3] == "downsample.":
                layer, part = "short", "_conv" if m[4] == "0" else "_batch_norm"
            else:
                layer, part = f"conv{int(m[4]) - 1}", "_conv" if m[3] == "conv" else "_batch_norm"
            leaf = "weight" if part == "_conv" else bn[m[5]]
            name = f"{block}.{layer}.{part}.{leaf}"
        out["backbone." + name] = value.numpy().copy()
    return out


def test_tsm_paddle_mirrored_shift_matches_paddle_forward(tmp_path):
    torch.manual_seed(0)
    src = _calibrate(create_model("tsm_resnet50", num_classes=5, num_frames=4, shift_div=4),
                     (2, 4, 3, 32, 32))
    params = to_paddle(src)
    assert "backbone.res3a.short._batch_norm._variance" in params
    path = tmp_path / "ppTSM_k400_r50.pdparams"
    names = {k: f"param_{i}" for i, k in enumerate(params)}
    with open(path, "wb") as f:  # what paddle.save(state_dict) writes
        pickle.dump({**params, "StructuredToParameterName@@": names}, f, protocol=4)

    x = torch.randn(1, 4, 3, 32, 32)
    ref = {k: torch.from_numpy(v) for k, v in params.items()}
    with torch.no_grad():
        expected = paddle_resnet_tsm_forward(ref, x, seg_num=4)
        naive = src(x)  # same weights, TSM authors' shift direction
    assert (naive - expected).abs().max() > 1e-3  # the direction matters ...
    conv = convert(path, "tsm-paddle", num_frames=4)
    assert conv.model.build_config["shift_div"] == 4
    with torch.no_grad():  # ... and the converted weights reproduce Paddle's model exactly
        torch.testing.assert_close(conv.model(x), expected, atol=1e-4, rtol=1e-4)
    npz = tmp_path / "weights.npz"  # the same parameters as .npz read identically
    np.savez(npz, **params)
    from_npz, from_pickle = read_paddle_params(npz), read_paddle_params(path)
    assert from_npz.keys() == from_pickle.keys() == params.keys()
    assert all(torch.equal(from_npz[k], from_pickle[k]) for k in params)


# =============================================================================== TimeSformer
TINY = dict(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2)


def _tiny_timesformer(attention="divided", frames=4, classes=5, seed=0):
    torch.manual_seed(seed)
    model = create_model("timesformer_base", num_classes=classes, num_frames=frames,
                         attention=attention, **TINY).eval()
    with torch.no_grad():  # zero-initialised parts get values, so they count
        for name, p in model.named_parameters():
            if "_fc." in name or name == "time_embed":
                p.normal_(0, 0.2)
    return model


@pytest.mark.parametrize("attention", ["divided", "space"])
def test_timesformer_official(tmp_path, attention):
    model = _tiny_timesformer(attention)
    path = tmp_path / "TimeSformer_divST_4x32_32_K400.pyth"
    state = OrderedDict(("model." + k, v) for k, v in model.state_dict().items())
    torch.save({"epoch": 15, "model_state": state, "optimizer_state": {},
                "cfg": "MODEL:\n  NUM_CLASSES: 5\nTIMESFORMER:\n  ATTENTION_TYPE: x\n"}, path)
    conv = convert(path, "timesformer-official", num_heads=2)
    assert conv.model.attention == attention
    assert conv.preprocessing["mean"] == (0.45, 0.45, 0.45)
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(conv.model(x), model(x), atol=1e-5, rtol=1e-5)
    if attention == "divided":  # frames differ: the time embedding is interpolated
        longer = convert(path, "timesformer-official", num_heads=2, num_frames=8)
        assert longer.model.time_embed.shape[1] == 8
        x8 = torch.randn(1, 8, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(longer.model(x8), model(x8), atol=1e-5, rtol=1e-5)


def test_timesformer_hf_matches_transformers(tmp_path):
    from transformers import TimesformerConfig, TimesformerForVideoClassification

    torch.manual_seed(0)
    cfg = TimesformerConfig(image_size=32, patch_size=16, num_frames=4, hidden_size=32,
                            num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            num_labels=3, id2label={0: "run", 1: "jump", 2: "swim"},
                            label2id={"run": 0, "jump": 1, "swim": 2})
    hf = TimesformerForVideoClassification(cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "temporal_dense" in name:
                p.normal_(0, 0.2)
    hf.save_pretrained(tmp_path / "hf")
    conv = convert(tmp_path / "hf", "timesformer-hf")
    assert conv.classes == ["run", "jump", "swim"]
    assert conv.preprocessing["mean"] == (0.5, 0.5, 0.5)
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        expected = hf(pixel_values=x).logits
        torch.testing.assert_close(conv.model(x), expected, atol=1e-4, rtol=1e-4)
    # a bare weight file with its config converts the same
    bare = convert(tmp_path / "hf" / "model.safetensors", "timesformer-hf",
                   config=tmp_path / "hf" / "config.json")
    with torch.no_grad():
        torch.testing.assert_close(bare.model(x), expected, atol=1e-4, rtol=1e-4)


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
    assert conv.preprocessing["std"] == (0.5, 0.5, 0.5)
    x = torch.randn(2, t, 3, 32, 32, generator=g)
    with torch.no_grad():
        expected = mma_timesformer_forward(p, x, heads=2)
        torch.testing.assert_close(conv.model(x), expected, atol=1e-4, rtol=1e-4)


# =============================================================================== image weights
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

    vit = _tiny_timesformer("space", classes=1000)  # a space-only model is a plain ViT
    timm_sd = {k: v for k, v in vit.state_dict().items()}
    assert not any("temporal" in k or k == "time_embed" for k in timm_sd)
    torch.save(timm_sd, tmp_path / "vit_tiny.pth")
    conv = convert(tmp_path / "vit_tiny.pth", "timm-vit", num_classes=3, num_frames=4,
                   num_heads=2)
    blk = conv.model.blocks[1]
    assert torch.equal(blk.temporal_attn.qkv.weight, vit.blocks[1].attn.qkv.weight)
    assert torch.equal(blk.attn.proj.weight, vit.blocks[1].attn.proj.weight)
    assert blk.temporal_fc.weight.abs().sum() == 0 and conv.model.head.weight.shape == (3, 32)


def test_cli_convert(tmp_path, capsys):
    from vidcls.cli import main

    model = _tiny_timesformer("divided")
    torch.save({"model_state": model.state_dict()}, tmp_path / "ts.pyth")
    (tmp_path / "names.txt").write_text("a\nb\nc\nd\ne\n")
    rc = main(["convert", str(tmp_path / "ts.pyth"), str(tmp_path / "out"), "--from",
               "timesformer-official", "--num-heads", "2", "--classes",
               str(tmp_path / "names.txt")])
    assert rc == 0 and "timesformer_base" in capsys.readouterr().out
    meta = read_meta(tmp_path / "out")
    assert meta["classes"] == list("abcde") and meta["preprocessing"]["std"] == [0.225] * 3
    rc = main(["convert", str(tmp_path / "ts.pyth"), str(tmp_path / "out2"), "--from",
               "timesformer-official", "--classes", str(tmp_path / "names.txt"),
               "--shift-div", "4"])
    assert rc == 2 and "does not use shift_div" in capsys.readouterr().err
    assert set(FORMATS) == {"tsm-official", "tsm-mmaction2", "tsm-paddle", "timesformer-official",
                            "timesformer-hf", "timesformer-mmaction2", "torchvision-resnet",
                            "timm-vit"}
    json.dumps(meta)  # plain JSON


def test_resnet101_shift_sites_every_second_block():
    """The TSM authors shift every second block of ResNet-101 (n_round = 2); a checkpoint
    shifting every block does not fit vidcls' tsm_resnet101 and is refused."""
    from vidcls.convert import _OFFICIAL_SHIFT_PATTERNS, _check_shift_sites, _shift_sites

    model = create_model("tsm_resnet101", num_classes=10)
    blocks = [(s, b) for s, n in enumerate([3, 4, 23, 3], start=1) for b in range(n)]
    every_second = [f"backbone.layer{s}.{b}.conv1.net.weight" for s, b in blocks if b % 2 == 0]
    _check_shift_sites(model, _shift_sites(every_second, _OFFICIAL_SHIFT_PATTERNS), "ckpt")
    every = [f"backbone.layer{s}.{b}.conv1.net.weight" for s, b in blocks]
    with pytest.raises(ValueError, match="only in the file"):
        _check_shift_sites(model, _shift_sites(every, _OFFICIAL_SHIFT_PATTERNS), "ckpt")
