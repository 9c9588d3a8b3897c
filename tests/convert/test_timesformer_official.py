"""``timesformer-official``: facebookresearch ``.pyth`` checkpoints; the converted model records
the true builder and the reference's nearest resizing of the embeddings."""
from __future__ import annotations

import warnings
from collections import OrderedDict

import pytest
import torch

import torch.nn.functional as F

from helpers.convert import TINY, tiny_timesformer
from reference.timesformer_repo import reference_config, save_reference_pyth
from vidcls.convert import ConversionWarning, convert, convert_checkpoint
from vidcls.engine.checkpoint import load_model
from vidcls.models import create_model


def save_reference_checkpoint(path, model):
    """What the reference's ``checkpoint.py`` saves: ``model_state`` under ``model.``."""
    state = OrderedDict(("model." + k, v) for k, v in model.state_dict().items())
    torch.save({"epoch": 15, "model_state": state, "optimizer_state": {}}, path)
    return path


@pytest.mark.parametrize("attention", ["divided", "space"])
def test_timesformer_official(tmp_path, attention):
    model = tiny_timesformer(attention)
    cfg = reference_config(MODEL__NUM_CLASSES=5, DATA__NUM_FRAMES=4, DATA__TRAIN_CROP_SIZE=32,
                           DATA__TEST_CROP_SIZE=32, TIMESFORMER__ATTENTION_TYPE={
                               "divided": "divided_space_time", "space": "space_only"}[attention])
    path = save_reference_pyth(tmp_path / "TimeSformer_divST_4x32_32_K400.pyth", model, cfg)
    conv = convert(path, "timesformer-official", num_heads=2)
    assert conv.model.attention == attention
    assert conv.preprocessing.mean == (0.45, 0.45, 0.45)
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(conv.model(x), model(x), atol=1e-5, rtol=1e-5)
    if attention == "divided":  # frames differ: the time embedding is interpolated
        longer = convert(path, "timesformer-official", num_heads=2, num_frames=8)
        assert longer.model.time_embed.shape[1] == 8
        x8 = torch.randn(1, 8, 3, 32, 32)
        # ... as the reference does it (nearest; the source stands in for the reference)
        model.pos_interpolation = model.time_interpolation = "nearest"
        with torch.no_grad():
            torch.testing.assert_close(longer.model(x8), model(x8), atol=1e-5, rtol=1e-5)


def nearest_embeddings(state: dict, grid: tuple[int, int], frames: int) -> dict:
    """The reference's resizing (``vit.py`` forward_features), by hand: the patch part of
    ``pos_embed`` as a 2-D grid and ``time_embed`` along time, both ``mode="nearest"``; the
    cls position kept."""
    state = dict(state)
    pos = state["pos_embed"]  # (1, 1 + h*w, D)
    side = int((pos.shape[1] - 1) ** 0.5)
    patches = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)  # (1, D, h, w)
    patches = F.interpolate(patches, size=grid, mode="nearest")  # (1, D, h', w')
    state["pos_embed"] = torch.cat([pos[:, :1], patches.flatten(2).transpose(1, 2)], 1)
    time = state["time_embed"].transpose(1, 2)  # (1, D, T)
    state["time_embed"] = F.interpolate(time, size=frames, mode="nearest").transpose(1, 2)
    return state


def test_reference_checkpoint_resizes_embeddings_like_the_reference(tmp_path):
    """A converted reference checkpoint (4 frames x 32 px) run on 6 frames x 64 px equals a
    model built for 6 x 64 whose embeddings are the nearest-resized ones, computed by hand: at
    run time, when converted to that size, and after a save -> load round trip."""
    source = tiny_timesformer("divided")
    path = save_reference_checkpoint(tmp_path / "TimeSformer_divST_4x32_K400.pyth", source)
    conv = convert(path, "timesformer-official", num_heads=2)
    cfg = conv.model.build_config
    assert cfg["pos_interpolation"] == "nearest" and cfg["time_interpolation"] == "nearest"

    torch.manual_seed(1)
    expected_model = create_model("timesformer_base", num_classes=5, num_frames=6,
                                  attention="divided", **{**TINY, "img_size": 64}).eval()
    expected_model.load_state_dict(nearest_embeddings(source.state_dict(), (4, 4), 6))
    x = torch.randn(2, 6, 3, 64, 64)
    with torch.no_grad():
        expected = expected_model(x)
        assert (source(x) - expected).abs().max() > 1e-3  # vidcls' default resizing differs
        torch.testing.assert_close(conv.model(x), expected, atol=1e-5, rtol=1e-5)
        resized = convert(path, "timesformer-official", num_heads=2, num_frames=6, img_size=64)
        assert resized.model.time_embed.shape[1] == 6 and resized.model.grid_size == (4, 4)
        torch.testing.assert_close(resized.model(x), expected, atol=1e-5, rtol=1e-5)
        loaded, meta = load_model(convert_checkpoint(path, tmp_path / "ckpt",
                                                     "timesformer-official", num_heads=2))
        assert meta["model"]["time_interpolation"] == "nearest"
        torch.testing.assert_close(loaded(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("frames, size, name", [
    (16, 448, "timesformer_hr"), (96, 224, "timesformer_large"), (8, 224, "timesformer_base"),
    (16, 224, "timesformer_base"), (4, 32, "timesformer_base")])
def test_converted_timesformer_records_its_true_builder(tmp_path, frames, size, name):
    """The checkpoint names the registered builder whose defaults are its frames x size, and
    rebuilds as it."""
    torch.manual_seed(0)
    source = create_model("timesformer_base", num_classes=3, num_frames=frames, img_size=size,
                          patch_size=16, embed_dim=32, depth=1, num_heads=2)
    path = save_reference_checkpoint(tmp_path / "ts.pyth", source)
    conv = convert(path, "timesformer-official", num_heads=2)
    assert conv.model.build_config["name"] == name
    loaded, meta = load_model(convert_checkpoint(path, tmp_path / "ckpt", "timesformer-official",
                                                 num_heads=2))
    assert meta["model"]["name"] == name
    assert (loaded.num_frames, loaded.img_size) == (frames, (size, size))
    torch.testing.assert_close(loaded.pos_embed, source.pos_embed)


def test_converted_to_hr_size_records_timesformer_hr(tmp_path):
    """Resizing a -B checkpoint to 16 x 448 at conversion makes it a timesformer_hr."""
    torch.manual_seed(0)
    source = create_model("timesformer_base", num_classes=3, patch_size=16, embed_dim=32,
                          depth=1, num_heads=2)
    path = save_reference_checkpoint(tmp_path / "ts.pyth", source)
    conv = convert(path, "timesformer-official", num_heads=2, num_frames=16, img_size=448)
    assert conv.model.build_config["name"] == "timesformer_hr"
    assert conv.model.pos_embed.shape[1] == 1 + 28 * 28 and conv.model.time_embed.shape[1] == 16
    assert conv.preprocessing.frame_interval == 16 and conv.preprocessing.input_size == 448


@pytest.mark.parametrize("pickled_cfg", [False, True])
def test_the_stored_cfg_gives_frames_sampling_and_crop(tmp_path, pickled_cfg):
    """``save_checkpoint`` stores ``cfg.dump()`` (some forks the CfgNode itself): a 4-frame
    space-only model (no time embedding) sampled every 16 frames is recorded as such, not as
    the 8 x 32 default; explicit options still win."""
    model = tiny_timesformer("space")
    cfg = reference_config(DATA__NUM_FRAMES=4, DATA__SAMPLING_RATE=16, DATA__TRAIN_CROP_SIZE=32,
                           DATA__TEST_CROP_SIZE=32, DATA__MEAN=[0.5, 0.4, 0.3],
                           MODEL__NUM_CLASSES=5, TIMESFORMER__ATTENTION_TYPE="space_only")
    path = save_reference_pyth(tmp_path / "TimeSformer_spaceOnly.pyth", model, cfg,
                               pickled_cfg=pickled_cfg)
    if pickled_cfg:
        with pytest.raises(Exception):  # a class the plain weights_only loader refuses
            torch.load(path, weights_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConversionWarning)
        conv = convert(path, num_heads=2, classes=[str(i) for i in range(5)])
    assert conv.model.num_frames == 4 and conv.model.attention == "space"
    prep = conv.preprocessing
    assert (prep.num_frames, prep.sampling, prep.clip_len, prep.frame_interval) == \
        (4, "dense", 4, 16)
    assert (prep.input_size, prep.resize, prep.mean) == (32, 32, (0.5, 0.4, 0.3))
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(conv.model(x), model(x), atol=1e-5, rtol=1e-5)
    explicit = convert(path, num_heads=2, num_frames=6, frame_interval=8, img_size=48)
    assert explicit.model.num_frames == 6 and explicit.model.img_size == (48, 48)
    assert (explicit.preprocessing.frame_interval, explicit.preprocessing.input_size) == (8, 48)


def test_cfg_dataset_and_crops_choose_the_test_recipe(tmp_path):
    model = tiny_timesformer("divided")
    ssv2 = reference_config(TRAIN__DATASET="ssv2", TEST__DATASET="ssv2", DATA__NUM_FRAMES=4,
                            DATA__TRAIN_CROP_SIZE=32, DATA__TEST_CROP_SIZE=32,
                            MODEL__NUM_CLASSES=5)
    path = save_reference_pyth(tmp_path / "ssv2.pyth", model, ssv2)
    assert convert(path, num_heads=2).preprocessing.sampling == "segment"  # ssv2.py: segments
    one_crop = reference_config(TEST__NUM_SPATIAL_CROPS=1, DATA__NUM_FRAMES=4,
                                DATA__TRAIN_CROP_SIZE=32, DATA__TEST_CROP_SIZE=32,
                                DATA__TRAIN_JITTER_SCALES=[40, 48], MODEL__NUM_CLASSES=5)
    path = save_reference_pyth(tmp_path / "one_crop.pyth", model, one_crop)
    prep = convert(path, num_heads=2).preprocessing  # kinetics.py: short side at the jitter min
    assert (prep.resize, prep.input_size, prep.frame_interval) == (40, 32, 8)
    wrong = reference_config(MODEL__NUM_CLASSES=5, TIMESFORMER__ATTENTION_TYPE="space_only")
    path = save_reference_pyth(tmp_path / "wrong.pyth", model, wrong)
    with pytest.raises(ValueError, match="ATTENTION_TYPE='space_only' but its weights are a "
                                         "'divided' model"):
        convert(path, num_heads=2)


def test_without_cfg_the_defaults_are_announced(tmp_path):
    path = save_reference_pyth(tmp_path / "space.pyth", tiny_timesformer("space"))
    with pytest.warns(ConversionWarning) as record:
        conv = convert(path)
    assumed = conv.source["assumed"]
    assert assumed == {"num_heads": 1, "num_frames": 8, "frame_interval": 32,
                       "classes": "index names 0..4"}
    text = " | ".join(str(w.message) for w in record)
    assert "num_frames: " in text and "space-only model" in text and "--num-frames" in text
    assert "num_heads: " in text and "--num-heads" in text
