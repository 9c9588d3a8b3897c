"""``tsm-official``: checkpoints in the TSM authors' exact layout (DataParallel ``module.``,
``TemporalShift(net)`` wrappers, ``new_fc``) and the online demo's MobileNetV2, checked against
re-implementations of their forwards (:mod:`reference.tsm_repo`,
:mod:`reference.mobilenetv2_online_demo`)."""
from __future__ import annotations

import warnings
from collections import OrderedDict

import pytest
import torch
from torch import nn

from helpers.convert import calibrate
from reference.mobilenetv2_online_demo import RefInvertedResidual, RefMobileNetV2
from reference.tsm_repo import (RefTemporalShift, RefTSN, make_ref_resnet_tsm,
                                save_main_py_checkpoints, save_tsm_checkpoint, store_name)
from vidcls.convert import ConversionWarning, convert, convert_checkpoint, parse_tsm_filename
from vidcls.engine.checkpoint import load_model
from vidcls.models import create_model
from vidcls.models.resnet import resnet18
from vidcls.resources import class_names


@pytest.mark.parametrize("place", ["blockres", "block"])
def test_tsm_official_matches_reference_forward(tmp_path, place):
    torch.manual_seed(0)
    ref = calibrate(make_ref_resnet_tsm(place, n_segment=4, n_div=4, num_class=400),
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
    assert conv.preprocessing.mean == (0.485, 0.456, 0.406)
    assert conv.preprocessing.resize == 256 and conv.preprocessing.input_size == 224

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
    # main.py's checkpoint/<store_name>/ckpt.best.pth.tar: the settings are the folder's
    name = store_name("something", "resnet50", num_segments=16, shift_div=4, dense_sample=True)
    assert name == "TSM_something_RGB_resnet50_shift4_blockres_avg_segment16_e45_dense"
    info = parse_tsm_filename(f"/work/temporal-shift-module/checkpoint/{name}/ckpt.best.pth.tar")
    assert info == {"temporal_pool": False, "non_local": False, "dense": True, "shift_div": 4,
                    "shift_place": "residual", "num_frames": 16, "dataset": "something",
                    "modality": "RGB", "arch": "resnet50"}
    name = store_name("kinetics", "resnet50", num_segments=8, shift_div=8, shift_place="block",
                      temporal_pool=True, lr_type="cos", non_local=True, suffix="run2")
    info = parse_tsm_filename(f"checkpoint/{name}/ckpt.pth.tar")
    assert (info["shift_place"], info["temporal_pool"], info["non_local"]) == \
        ("inplace", True, True)
    # a file name with settings wins over its folder; no settings anywhere: nothing parsed
    assert parse_tsm_filename(f"checkpoint/{name}/TSM_kinetics_RGB_resnet18_avg_segment5_e50.pth"
                              )["num_frames"] == 5
    assert parse_tsm_filename("runs/exp1/ckpt.pth.tar") == {
        "temporal_pool": False, "non_local": False, "dense": False}


def test_main_py_checkpoint_reads_its_settings_from_the_folder(tmp_path):
    """``main.py`` saves ``checkpoint/<store_name>/ckpt.pth.tar``: shift_div=4 read from the
    folder gives the reference's logits (the default 8 would not), with the segment count,
    dense sampling and the dataset's class names, and no default announced."""
    torch.manual_seed(0)
    ref = calibrate(make_ref_resnet_tsm("blockres", n_segment=4, n_div=4, num_class=400),
                    (2, 4, 3, 32, 32))
    name = store_name("kinetics", "resnet18", num_segments=4, shift_div=4, dense_sample=True)
    best = save_main_py_checkpoints(tmp_path, name, ref)
    x = torch.randn(2, 4, 3, 32, 32)
    for path in (best, best.with_name("ckpt.pth.tar")):
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConversionWarning)
            conv = convert(path)
        cfg = conv.model.build_config
        assert (cfg["shift_div"], cfg["num_frames"]) == (4, 4)
        prep = conv.preprocessing
        assert (prep.sampling, prep.clip_len, prep.frame_interval) == ("dense", 4, 16)
        assert conv.classes == class_names("kinetics400")
        with torch.no_grad():
            torch.testing.assert_close(conv.model(x), ref(x), atol=1e-5, rtol=1e-5)
    # explicit options win over the folder's settings
    conv = convert(best, "tsm-official", num_frames=8, shift_div=8)
    assert (conv.model.build_config["num_frames"], conv.model.build_config["shift_div"]) == (8, 8)


def test_defaults_used_for_an_unnamed_checkpoint_are_announced(tmp_path):
    torch.manual_seed(0)
    ref = make_ref_resnet_tsm("blockres", n_segment=8, n_div=8, num_class=10).eval()
    (tmp_path / "run1").mkdir()
    path = tmp_path / "run1" / "ckpt.pth.tar"
    save_tsm_checkpoint(path, ref)
    with pytest.warns(ConversionWarning) as record:
        conv = convert(path)
    messages = [str(w.message) for w in record if issubclass(w.category, ConversionWarning)]
    assert len(messages) == 3, messages
    assert any(m.startswith("num_frames: ") and "using 8 (set it with --num-frames" in m
               for m in messages)
    assert any(m.startswith("shift_div: ") and "using 8 (set it with --shift-div" in m
               and "main.py's settings name" in m for m in messages)
    assert any(m.startswith("classes: ") and "--classes" in m for m in messages)
    assert conv.source["assumed"] == {"num_frames": 8, "shift_div": 8,
                                      "classes": "index names 0..9"}
    with warnings.catch_warnings():  # options given: nothing is assumed
        warnings.simplefilter("error", ConversionWarning)
        conv = convert(path, num_frames=8, shift_div=8, classes=[str(i) for i in range(10)])
    assert "assumed" not in conv.source


def test_options_that_do_not_apply_are_errors(tmp_path):
    """The online demo's shift is fixed, a TSN has none: a shift option would be ignored."""
    torch.manual_seed(0)
    demo = tmp_path / "mobilenetv2_jester_online.pth.tar"
    torch.save(RefMobileNetV2(27).state_dict(), demo)
    for option in ({"shift_div": 4}, {"shift_place": "inplace"}):
        with pytest.raises(ValueError, match=f"{next(iter(option))} .* does not apply: .* "
                                             "online demo's MobileNetV2, whose shift is fixed"):
            convert(demo, "tsm-official", **option)
    base = resnet18(num_classes=1000)
    base.fc = nn.Dropout(0.5)
    tsn = tmp_path / "TSM_kinetics_RGB_resnet18_avg_segment5_e50.pth"
    save_tsm_checkpoint(tsn, RefTSN(base, 512, 400, 5))
    assert convert(tsn).model.build_config["name"] == "tsn_resnet18"
    with pytest.raises(ValueError, match=r"shift_div \(--shift-div\) does not apply: .* has no "
                                         r"temporal shift \(a TSN\); leave it out"):
        convert(tsn, shift_div=4)


# --------------------------------------------------------------------- MobileNetV2, TSM repo


def test_tsm_official_online_demo_mobilenetv2(tmp_path):
    """The online demo's checkpoint: stepping the converted OnlineTSM equals the demo's own
    step function with its shift buffers."""
    from vidcls.models.online_tsm import OnlineTSM

    torch.manual_seed(0)
    ref = RefMobileNetV2(27, online=True)
    offline_twin = RefMobileNetV2(27)  # same weights, plain forward, to calibrate BN
    offline_twin.load_state_dict(ref.state_dict())
    calibrate(offline_twin, (8, 3, 32, 32))
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
    ref = calibrate(RefTSN(base, 1280, 7, 4), (2, 4, 3, 32, 32))
    path = tmp_path / "TSM_jester_RGB_mobilenetv2_shift8_blockres_avg_segment4_e25.pth"
    save_tsm_checkpoint(path, ref)
    conv = convert(path, "tsm-official")
    assert conv.model.build_config["name"] == "tsm_mobilenetv2"
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(conv.model(x), ref(x), atol=1e-5, rtol=1e-5)


def test_resnet101_shift_sites_every_second_block():
    """The TSM authors shift every second block of ResNet-101 (n_round = 2); a checkpoint
    shifting every block does not fit vidcls' tsm_resnet101 and is refused."""
    from vidcls.convert._common import check_shift_sites, shift_sites
    from vidcls.convert.tsm_official import SHIFT_PATTERNS

    model = create_model("tsm_resnet101", num_classes=10)
    blocks = [(s, b) for s, n in enumerate([3, 4, 23, 3], start=1) for b in range(n)]
    every_second = [f"backbone.layer{s}.{b}.conv1.net.weight" for s, b in blocks if b % 2 == 0]
    check_shift_sites(model, shift_sites(every_second, SHIFT_PATTERNS), "ckpt")
    every = [f"backbone.layer{s}.{b}.conv1.net.weight" for s, b in blocks]
    with pytest.raises(ValueError, match="only in the file"):
        check_shift_sites(model, shift_sites(every, SHIFT_PATTERNS), "ckpt")
