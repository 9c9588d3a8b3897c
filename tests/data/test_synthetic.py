"""Synthetic datasets: files and lists, determinism, and what makes a class (motion vs look)."""
from __future__ import annotations

import colorsys
import json

import numpy as np
import pytest
from helpers.videos import reference_decode

from vidcls.data import synthetic as S
from vidcls.data.formats import build_records


@pytest.fixture(scope="module")
def temporal(tmp_path_factory):
    out = tmp_path_factory.mktemp("temporal")
    info = S.generate(out, "temporal", num_classes=4, videos_per_class=5, num_frames=8,
                      size=32, seed=7, val_fraction=0.4, workers=2)
    return out, info


def test_files_lists_and_classes(temporal):
    out, info = temporal
    assert info["classes"] == ["moving right", "moving left", "approaching", "receding"]
    assert (info["num_train"], info["num_val"]) == (12, 8)
    train = (out / "train.txt").read_text().splitlines()
    assert train[0] == "videos/c00_00000.mp4 0" and len(train) == 12
    assert (out / "classes.txt").read_text().splitlines() == info["classes"]
    records, classes = build_records("list", root=out, split="val")
    assert classes == info["classes"] and len(records) == 8
    assert sorted(r.label for r in records) == [0, 0, 1, 1, 2, 2, 3, 3]  # stratified
    assert len(list((out / "videos").glob("*.mp4"))) == 20
    assert not list((out / "videos").glob("*.tmp*"))
    meta = json.loads((out / "synth.json").read_text())
    assert meta["options"]["seed"] == 7 and info["flip_label_map"] == {0: 1}


def test_videos_are_h264_and_faithful(temporal):
    out, _ = temporal
    frames = reference_decode(out / "videos" / "c02_00003.mp4")
    assert frames.shape == (8, 32, 32, 3)
    rendered = S.render_video("temporal", 2, 3, num_classes=4, num_frames=8, size=32, seed=7)
    assert np.abs(frames.astype(int) - rendered.astype(int)).mean() < 2.0
    import av

    with av.open(str(out / "videos" / "c02_00003.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264"


def test_generate_reuses_matching_output_and_is_deterministic(temporal, tmp_path):
    out, info = temporal
    again = S.generate(out, "temporal", num_classes=4, videos_per_class=5, num_frames=8,
                       size=32, seed=7, val_fraction=0.4)
    assert again["seconds"] == 0.0 and again["num_train"] == 12
    other = S.generate(tmp_path / "copy", "temporal", num_classes=4, videos_per_class=5,
                       num_frames=8, size=32, seed=7, val_fraction=0.4, workers=1)
    for name in ("c00_00001.mp4", "c03_00004.mp4"):  # same seed, other worker count: same
        np.testing.assert_array_equal(reference_decode(out / "videos" / name),
                                      reference_decode(tmp_path / "copy" / "videos" / name))
    assert other["seconds"] > 0
    a = S.render_video("temporal", 0, 1, num_classes=4, seed=7)
    b = S.render_video("temporal", 0, 1, num_classes=4, seed=8)
    assert not np.array_equal(a, b)


def test_second_class_of_a_pair_is_the_first_played_backwards():
    """Any frame (and the set of frames) is identically distributed within a pair."""
    for pair, (_, _, motion, direction) in enumerate(S.TEMPORAL_PAIRS):
        for i in range(2):
            b = S.render_video("temporal", 2 * pair + 1, i, num_classes=16, num_frames=6,
                               size=32)
            rng = np.random.default_rng([0, S.KINDS.index("temporal"), 2 * pair + 1, i])
            forward = S._temporal_frames(rng, motion, direction, 6, 32)
            np.testing.assert_array_equal(b, forward[::-1])


@pytest.mark.parametrize("motion,direction,key,sign", [
    ("translate", (1.0, 0.0), "cx", 1), ("translate", (0.0, 1.0), "cy", 1),
    ("scale", None, "radius", 1), ("rotate", None, "angle", 1), ("fade", None, "alpha", 1),
    ("stretch", None, "sx", 1)])
def test_first_classes_move_as_named(motion, direction, key, sign):
    for seed in range(5):
        traj = S.temporal_trajectory(np.random.default_rng(seed), motion, direction, 8, 64)
        values = np.array([p[key] for p in traj])
        assert np.all(np.diff(values) * sign > 0)
        if motion == "translate":  # a large, visible displacement
            assert values[-1] - values[0] > 0.35 * 64
        others = [k for k in traj[0] if k != key and k not in ("sy",)]
        for k in others:  # nothing else changes over time
            assert len({round(p[k], 6) for p in traj}) == 1, (motion, k)


def test_positive_angle_is_clockwise_on_screen():
    scene = S._Scene(np.random.default_rng(0), 32, "circle", "solid")
    # "solid" paints the object's u > 0 half in color1: at angle 0 that is the right half
    right = scene.render(16, 16, 12, angle=0.0).astype(int)
    down = scene.render(16, 16, 12, angle=np.pi / 2).astype(int)
    c1 = np.round(scene.color1 * 255).astype(int)
    assert np.abs(right[16, 24] - c1).max() <= 2 and np.abs(right[16, 8] - c1).max() > 30
    assert np.abs(down[24, 16] - c1).max() <= 2 and np.abs(down[8, 16] - c1).max() > 30


def test_appearance_class_is_the_shape():
    names = S.class_names("appearance", 4)
    assert names == ["circle", "square", "triangle", "star"]
    assert S.class_names("appearance", 10)[8] == "striped circle"
    a = S.render_video("appearance", 1, 0, num_classes=4, num_frames=4, size=32)
    b = S.render_video("appearance", 1, 1, num_classes=4, num_frames=4, size=32)
    assert a.shape == (4, 32, 32, 3) and not np.array_equal(a, b)  # random look within a class
    assert S.flip_label_map("appearance", 8) == {}
    # each class's object colour lies in its own band of hues, disjoint from the others'
    bands = [S.appearance_hue_band(c, 4) for c in range(4)]
    assert all(lo < hi <= nxt for (lo, hi), (nxt, _) in zip(bands, bands[1:]))
    for c in range(4):
        frames = S.render_video("appearance", c, 3, num_classes=4, num_frames=2, size=64)
        pixels = frames[0].reshape(-1, 3).astype(float) / 255
        sat = pixels.max(1) - pixels.min(1)
        obj = pixels[sat > 0.8]  # the saturated object; the background is dull
        assert len(obj) > 20, c
        hues = np.array([colorsys.rgb_to_hsv(*p)[0] for p in obj])
        lo, hi = bands[c]
        # the main colour is in the band (a striped object's second colour is elsewhere)
        assert np.mean((hues >= lo - 0.02) & (hues <= hi + 0.02)) > 0.3, (c, np.median(hues))
    tmap = S.flip_label_map("temporal", 16)
    names = S.class_names("temporal", 16)
    assert {names[k]: names[v] for k, v in tmap.items()} == {
        "moving right": "moving left", "rotating clockwise": "rotating anticlockwise",
        "moving down-right": "moving down-left", "moving up-left": "moving up-right"}


def test_bad_options():
    with pytest.raises(ValueError, match="2..16 classes"):
        S.class_names("temporal", 17)
    with pytest.raises(ValueError, match="unknown synthetic kind 'motion'"):
        S.class_names("motion", 4)
    with pytest.raises(ValueError, match="size must be even"):
        S.generate("/nonexistent", "temporal", num_classes=2, size=33)


# --------------------------------------------------------------------------- objects
def _moving_pixels(frames: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels that change over the video (the background and still objects
    don't)."""
    f = frames.astype(int)
    return (np.abs(f - f[:1]).sum(-1) > 30).any(0)


def test_objects_classes_and_pairs():
    assert S.class_names("objects", 4) == ["circle moving right", "circle moving left",
                                           "square moving right", "square moving left"]
    assert S.flip_label_map("objects", 4) == {0: 1, 2: 3}
    with pytest.raises(ValueError, match="classes in pairs.*num_classes=3"):
        S.class_names("objects", 3)
    with pytest.raises(ValueError, match="objects synthetic data has 2..8 classes"):
        S.class_names("objects", 10)
    # the second class of a pair is a video of the first played backwards
    for label in (1, 3):
        b = S.render_video("objects", label, 2, num_classes=4, num_frames=6, size=32)
        rng = np.random.default_rng([0, S.KINDS.index("objects"), label, 2])
        np.testing.assert_array_equal(b, S._objects_frames(rng, label, 4, 6, 32)[::-1])


@pytest.mark.parametrize("num_classes,size", [(4, 32), (8, 64)])
def test_objects_one_shape_of_several_moves_its_way(num_classes, size):
    """Several objects, one moving: which one (its colour family: its shape) and which way
    is the class; the others stand still, so no single frame tells the class."""
    n_objects = max(3, num_classes // 2)
    for label in range(0, num_classes, 2):
        lo, hi = S.appearance_hue_band(label // 2, 8)
        for index in range(2):
            v = S.render_video("objects", label, index, num_classes=num_classes, num_frames=8,
                               size=size)
            moving = _moving_pixels(v)
            rows = np.nonzero(moving.any(1))[0]
            # one lane: the moving pixels span at most one lane's height (+ antialiasing)
            assert 0 < rows.max() - rows.min() <= size / n_objects + 2, (label, index)
            cols = np.nonzero(moving.any(0))[0]
            assert cols.max() - cols.min() > 0.4 * size  # a large, visible displacement
            # it moves right: its pixels' mean column grows from the first to the last frame
            median = np.median(v.astype(int), axis=0)  # the frame without the mover
            first, last = (np.abs(v[k].astype(int) - median).sum(-1) > 30 for k in (0, -1))
            assert np.nonzero(first)[1].mean() + 0.15 * size < np.nonzero(last)[1].mean()
            # ...and it is the shape of the pair, in its colour family
            pix = v[0][first & moving].reshape(-1, 3).astype(float) / 255
            sat = pix[(pix.max(1) - pix.min(1)) > 0.8]
            hues = np.array([colorsys.rgb_to_hsv(*p)[0] for p in sat])
            assert np.mean((hues >= lo - 0.02) & (hues <= hi + 0.02)) > 0.3, (label, index)
            # the still objects: several saturated blobs outside the mover's lane
            still = v[0].reshape(-1, 3).astype(float) / 255
            still = still[~moving.reshape(-1)]
            assert ((still.max(1) - still.min(1)) > 0.6).sum() > 20


def test_objects_dataset_is_written(tmp_path):
    info = S.generate(tmp_path, "objects", num_classes=2, videos_per_class=2, num_frames=4,
                      size=32, val_fraction=0.5, workers=1)
    assert info["classes"] == ["circle moving right", "circle moving left"]
    assert (info["num_train"], info["num_val"]) == (2, 2)
    frames = reference_decode(tmp_path / "videos" / "c01_00001.mp4")
    rendered = S.render_video("objects", 1, 1, num_classes=2, num_frames=4, size=32)
    assert np.abs(frames.astype(int) - rendered.astype(int)).mean() < 2.0
