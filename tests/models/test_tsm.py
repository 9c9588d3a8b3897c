"""TSN / TSM models: torchvision-compatible backbones, zero-cost shift, options, errors."""
from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vidcls.models import Preprocessing, create_model
from vidcls.models.mobilenetv2 import mobilenet_v2
from vidcls.models.resnet import resnet18, resnet34, resnet50, resnet101
from vidcls.models.tsn import TemporalPoolStage
from vidcls.ops import TemporalShift

BACKBONES = ["resnet18", "resnet34", "resnet50", "resnet101", "mobilenetv2"]
ALL_NAMES = [f"{kind}_{b}" for kind in ("tsn", "tsm") for b in BACKBONES]


# ------------------------------------------------------------------ torchvision key spec
def _bn(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def torchvision_resnet_spec(layers, bottleneck, num_classes=1000):
    """Key -> shape of torchvision.models.resnetXX().state_dict(), from its published design."""
    spec = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    inplanes, expansion = 64, 4 if bottleneck else 1
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for j in range(blocks):
            p = f"layer{stage}.{j}"
            if bottleneck:
                spec[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
                spec.update(_bn(f"{p}.bn1", planes))
                spec[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                spec.update(_bn(f"{p}.bn2", planes))
                spec[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
                spec.update(_bn(f"{p}.bn3", planes * 4))
            else:
                spec[f"{p}.conv1.weight"] = (planes, inplanes, 3, 3)
                spec.update(_bn(f"{p}.bn1", planes))
                spec[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                spec.update(_bn(f"{p}.bn2", planes))
            if j == 0 and (stage > 1 or inplanes != planes * expansion):
                spec[f"{p}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                spec.update(_bn(f"{p}.downsample.1", planes * expansion))
            inplanes = planes * expansion
    spec["fc.weight"] = (num_classes, 512 * expansion)
    spec["fc.bias"] = (num_classes,)
    return spec


def torchvision_mobilenetv2_spec(num_classes=1000):
    spec = {"features.0.0.weight": (32, 3, 3, 3), **_bn("features.0.1", 32)}
    inp, idx = 32, 1
    for t, c, n, s in [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
                       [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]:
        for _ in range(n):
            p, hidden, k = f"features.{idx}.conv", inp * t, 0
            if t != 1:
                spec[f"{p}.0.0.weight"] = (hidden, inp, 1, 1)
                spec.update(_bn(f"{p}.0.1", hidden))
                k = 1
            spec[f"{p}.{k}.0.weight"] = (hidden, 1, 3, 3)  # depthwise
            spec.update(_bn(f"{p}.{k}.1", hidden))
            spec[f"{p}.{k + 1}.weight"] = (c, hidden, 1, 1)
            spec.update(_bn(f"{p}.{k + 2}", c))
            inp, idx = c, idx + 1
    spec["features.18.0.weight"] = (1280, 320, 1, 1)
    spec.update(_bn("features.18.1", 1280))
    spec["classifier.1.weight"] = (num_classes, 1280)
    spec["classifier.1.bias"] = (num_classes,)
    return spec


SPECS = {
    "resnet18": (resnet18, lambda: torchvision_resnet_spec([2, 2, 2, 2], False), 122, 11_689_512),
    "resnet34": (resnet34, lambda: torchvision_resnet_spec([3, 4, 6, 3], False), 218, 21_797_672),
    "resnet50": (resnet50, lambda: torchvision_resnet_spec([3, 4, 6, 3], True), 320, 25_557_032),
    "resnet101": (resnet101, lambda: torchvision_resnet_spec([3, 4, 23, 3], True), 626, 44_549_160),
    "mobilenetv2": (mobilenet_v2, torchvision_mobilenetv2_spec, 314, 3_504_872),
}


@pytest.mark.parametrize("arch", BACKBONES)
def test_backbone_matches_torchvision_state_dict(arch):
    build, spec_fn, n_entries, n_params = SPECS[arch]
    spec = spec_fn()
    # entry counts and parameter totals as published for torchvision's ImageNet models
    assert len(spec) == n_entries
    assert sum(int(torch.tensor(s).prod()) for k, s in spec.items()
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))) == n_params
    with torch.device("meta"):
        model = build()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == spec


def _fake_torchvision_state(arch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(s, generator=g) if s else torch.tensor(7))
            for k, s in SPECS[arch][1]().items()}


@pytest.mark.parametrize("arch", ["resnet18", "mobilenetv2"])
def test_torchvision_state_dict_loads_strict(arch):
    state = _fake_torchvision_state(arch)
    model = SPECS[arch][0]()
    model.load_state_dict(state, strict=True)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("arch", ["resnet18", "mobilenetv2"])
def test_pretrained_file_loads_into_backbone(tmp_path, arch, suffix):
    state = _fake_torchvision_state(arch)
    path = tmp_path / f"{arch}{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file
        save_file(state, str(path))
    model = create_model(f"tsm_{arch}", num_classes=5, pretrained=str(path))
    backbone = model.backbone.state_dict()
    head_prefix = ("fc.", "classifier.")
    assert set(backbone) == {k for k in state if not k.startswith(head_prefix)}
    for k, v in backbone.items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    assert model.head.weight.shape == (5, model.num_features)


def test_pretrained_with_wrong_keys_is_a_clear_error(tmp_path):
    state = _fake_torchvision_state("resnet18")
    state["layer1.0.conv1.net.weight"] = state.pop("layer1.0.conv1.weight")
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"missing keys \['backbone.layer1.0.conv1.weight'\].*unexpected"):
        create_model("tsn_resnet18", pretrained=str(path))
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        create_model("tsn_resnet18", pretrained=str(tmp_path / "nope.pth"))


def test_tsn_and_tsm_share_state_dict_keys():
    tsn, tsm = create_model("tsn_resnet50", num_classes=3), create_model("tsm_resnet50", num_classes=3)
    assert list(tsn.state_dict()) == list(tsm.state_dict())
    assert "backbone.layer1.0.conv1.weight" in tsm.state_dict()
    assert {k for k in tsm.state_dict() if not k.startswith("backbone.")} == {"head.weight", "head.bias"}
    tsm.load_state_dict(tsn.state_dict(), strict=True)


# ------------------------------------------------------------------ zero cost
def _flops(model, x):
    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    return counter.get_total_flops()


@pytest.mark.parametrize("arch", BACKBONES)
def test_tsm_adds_no_parameters_and_no_flops(arch):
    with torch.device("meta"):
        tsn = create_model(f"tsn_{arch}", num_classes=10, num_frames=2)
        tsm = create_model(f"tsm_{arch}", num_classes=10, num_frames=2)
        x = torch.empty(1, 2, 3, 32, 32)
    assert len(tsm.temporal_shifts()) > 0
    n_params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n_params(tsm) == n_params(tsn)
    tsn_flops, tsm_flops = _flops(tsn, x), _flops(tsm, x)
    assert tsn_flops > 0
    assert tsm_flops == tsn_flops


def test_shift_sites_follow_the_authors_code():
    counts = {b: len(create_model(f"tsm_{b}", num_classes=2).temporal_shifts())
              for b in ["resnet18", "resnet50", "mobilenetv2"]}
    assert counts == {"resnet18": 8, "resnet50": 16, "mobilenetv2": 10}
    with torch.device("meta"):
        r101 = create_model("tsm_resnet101", num_classes=2)
        r101_inplace = create_model("tsm_resnet101", num_classes=2, shift_place="inplace")
    # residual: every other block of each stage (n_round=2): 2 + 2 + 12 + 2
    assert len(r101.temporal_shifts()) == 18
    assert len(r101_inplace.temporal_shifts()) == 33
    shifted = [i for i, b in enumerate(r101.backbone.layer3) if isinstance(b.shift_branch, TemporalShift)]
    assert shifted == list(range(0, 23, 2))
    mb = create_model("tsm_mobilenetv2", num_classes=2)
    sites = [i for i, m in enumerate(mb.backbone.features) if isinstance(getattr(m, "shift_branch", None), TemporalShift)]
    assert sites == [3, 5, 6, 8, 9, 10, 12, 13, 15, 16]  # the blocks with an identity connection
    fold = [s.fold for s in mb.temporal_shifts()]
    assert fold == [3, 4, 4, 8, 8, 8, 12, 12, 20, 20]  # the online demo's buffer channels


def test_shift_options_reach_every_shift():
    model = create_model("tsm_resnet18", num_classes=2, shift_div=4, shift_place="inplace",
                         shift_mode="unidirectional")
    blocks = model.backbone.residual_blocks()
    assert all(isinstance(b.shift_main, TemporalShift) for b in blocks)
    assert all(isinstance(b.shift_branch, torch.nn.Identity) for b in blocks)
    assert {(s.shift_div, s.mode) for s in model.temporal_shifts()} == {(4, "unidirectional")}
    assert model.tsm == dict(shift_div=4, shift_place="inplace", shift_mode="unidirectional")


def test_model_shift_equals_definition_inside_the_network():
    """The first shifted conv of a real TSM sees exactly the shifted block input."""
    def naive_shift(x, frames, shift_div, _bidirectional):  # definition, frame by frame
        x5, fold = x.reshape(-1, frames, *x.shape[1:]), x.shape[1] // shift_div
        out = x5.clone()
        for t in range(frames):
            out[:, t, :fold] = x5[:, t + 1, :fold] if t + 1 < frames else 0
            out[:, t, fold:2 * fold] = x5[:, t - 1, fold:2 * fold] if t > 0 else 0
        return out.reshape(x.shape)

    model = create_model("tsm_resnet18", num_classes=3, num_frames=3, shift_div=4).eval()
    block = model.backbone.layer2[1]
    seen = {}
    block.register_forward_pre_hook(lambda m, a: seen.update(inp=a[0].clone()))
    block.conv1.register_forward_pre_hook(lambda m, a: seen.update(conv=a[0].clone()))
    with torch.no_grad():
        model(torch.randn(2, 3, 3, 32, 32))
    torch.testing.assert_close(seen["conv"], naive_shift(seen["inp"], 3, 4, True))


# ------------------------------------------------------------------ forward contract
@pytest.mark.parametrize("name", ALL_NAMES)
def test_forward_backward_every_model(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=6, num_frames=2)
    assert model.num_classes == 6 and model.num_frames == 2
    assert model.preprocessing == Preprocessing(mean=(0.485, 0.456, 0.406),
                                                std=(0.229, 0.224, 0.225), input_size=224,
                                                resize=256, num_frames=2, sampling="segment")
    x = torch.randn(1, 2, 3, 32, 32, requires_grad=True)
    out = model(x)
    assert out.shape == (1, 6) and torch.isfinite(out).all()
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert model.head.weight.grad is not None
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_forward_frames_mean_is_forward_and_dropout_default():
    model = create_model("tsm_resnet18", num_classes=4, num_frames=4).eval()
    assert model.dropout.p == 0.5
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        frames, clip = model.forward_frames(x), model(x)
        feats = model.forward_features(x)
    assert frames.shape == (2, 4, 4) and feats.shape == (2, 4, 512)
    torch.testing.assert_close(frames.mean(1), clip)
    torch.testing.assert_close(model.forward_head(feats), clip)


def test_temporal_shift_changes_the_output_and_tsn_frames_are_independent():
    torch.manual_seed(0)
    tsn = create_model("tsn_resnet18", num_classes=4, num_frames=4).eval()
    tsm = create_model("tsm_resnet18", num_classes=4, num_frames=4).eval()
    tsm.load_state_dict(tsn.state_dict())
    x = torch.randn(1, 4, 3, 32, 32)
    y = x.clone()
    y[:, 3] = torch.randn(3, 32, 32)  # change the last frame only
    with torch.no_grad():
        a, b = tsn.forward_frames(x), tsn.forward_frames(y)
        torch.testing.assert_close(a[:, :3], b[:, :3])  # TSN: other frames unaffected
        c, d = tsm.forward_frames(x), tsm.forward_frames(y)
        assert (c[:, 2] - d[:, 2]).abs().max() > 1e-6  # TSM: the neighbour sees it
        assert (c - a).abs().max() > 1e-6


def test_any_clip_length_works():
    model = create_model("tsm_resnet18", num_classes=3, num_frames=8).eval()
    for frames in (1, 3, 5):
        assert model(torch.randn(2, frames, 3, 32, 32)).shape == (2, 3)


def test_temporal_pool_halves_frames_after_layer1():
    model = create_model("tsm_resnet18", num_classes=3, num_frames=4, temporal_pool=True).eval()
    assert isinstance(model.backbone.layer2, TemporalPoolStage)
    assert "backbone.layer2.0.conv1.weight" in model.state_dict()
    rows = {}
    model.backbone.layer1.register_forward_hook(lambda m, a, o: rows.update(layer1=o.shape[0]))
    model.backbone.layer2[0].register_forward_pre_hook(lambda m, a: rows.update(layer2=a[0].shape[0]))
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        out, frames = model(x), model.forward_frames(x)
    assert rows == {"layer1": 8, "layer2": 4}
    assert out.shape == (2, 3) and frames.shape == (2, 2, 3)
    assert {s.num_frames for s in model.backbone.layer1.modules() if isinstance(s, TemporalShift)} == {4}
    assert {s.num_frames for s in model.backbone.layer3.modules() if isinstance(s, TemporalShift)} == {2}
    with pytest.raises(ValueError, match="even frame count; got T=3"):
        model(torch.randn(2, 3, 3, 32, 32))
    with pytest.raises(ValueError, match="ResNet backbones only"):
        create_model("tsm_mobilenetv2", temporal_pool=True)


def test_temporal_pool_is_a_max_over_neighbouring_frames():
    from vidcls.models.tsn import temporal_max_pool

    x = torch.randn(2 * 4, 3, 2, 2)
    x5 = x.reshape(2, 4, 3, 2, 2)
    want = torch.stack([torch.maximum(x5[:, 0], x5[:, 1]),
                        x5[:, 1:4].amax(1)], dim=1).reshape(4, 3, 2, 2)
    torch.testing.assert_close(temporal_max_pool(x, 4), want)


def test_channels_last_gives_the_same_result():
    model = create_model("tsm_resnet18", num_classes=3, num_frames=2).eval()
    x = torch.randn(1, 2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_deepcopy_is_independent():
    model = create_model("tsm_resnet18", num_classes=3, num_frames=4).eval()
    clone = copy.deepcopy(model)
    assert all(a is not b for a, b in zip(model.temporal_shifts(), clone.temporal_shifts()))
    x = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), model(x))


# ------------------------------------------------------------------ errors
def test_bad_inputs_are_clear_errors():
    model = create_model("tsm_resnet18", num_classes=3)
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\).*unsqueeze"):
        model(torch.randn(4, 3, 32, 32))
    with pytest.raises(ValueError, match="3 colour channels"):
        model(torch.randn(1, 4, 1, 32, 32))


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="shift_div is a TSM option.*tsm_resnet18"):
        create_model("tsn_resnet18", shift_div=8)
    with pytest.raises(ValueError, match="unknown options"):
        create_model("tsn_resnet18", foo=1)
    with pytest.raises(ValueError, match="shift_div must be an integer >= 2"):
        create_model("tsm_resnet18", shift_div=1)
    with pytest.raises(ValueError, match="shift_place 'middle'"):
        create_model("tsm_resnet18", shift_place="middle")
    with pytest.raises(ValueError, match="shift_mode 'future'"):
        create_model("tsm_resnet18", shift_mode="future")
    with pytest.raises(ValueError, match="dropout"):
        create_model("tsm_resnet18", dropout=1.5)
