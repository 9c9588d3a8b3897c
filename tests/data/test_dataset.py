"""VideoClipDataset (items, views, epochs, cache), collate_clips, bad files in a DataLoader."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from helpers.videos import encode, make_bad_files, moving_frames, reference_decode, write_rawframes
from torch.utils.data import DataLoader

from vidcls.data.bad_files import BadFileReport
from vidcls.data.dataset import VideoClipDataset, collate_clips
from vidcls.data.formats import VideoRecord
from vidcls.data.sampling import sample_indices
from vidcls.data.transforms import build_test_transform, build_train_transform
from vidcls.data.video import VideoDecodeError


# --------------------------------------------------------------------------- the dataset
@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Four real videos (different lengths) and their reference frames."""
    d = tmp_path_factory.mktemp("clips")
    paths = [encode(d / f"v{i}.mp4", moving_frames(n, 40, 56, seed=i), gop=6)
             for i, n in enumerate([30, 24, 5, 40])]
    return paths, [reference_decode(p) for p in paths]


def test_items_hold_the_sampled_frames(clips):
    paths, refs = clips
    records = [VideoRecord(str(p), i % 2) for i, p in enumerate(paths)]
    ds = VideoClipDataset(records, ["a", "b"], num_frames=8, train=False)  # no transform
    for i in range(len(ds)):
        item = ds[i]
        idx = sample_indices(len(refs[i]), num_frames=8, train=False)[0]
        expected = torch.from_numpy(refs[i][idx]).permute(0, 3, 1, 2)  # (T, 3, H, W)
        assert torch.equal(item["clip"], expected)
        assert item["label"] == i % 2 and item["index"] == i and item["bad"] == []
    # the 5-frame video gives 8 frames with repeats, no crash
    assert ds[2]["clip"].shape == (8, 3, 40, 56)


def test_views_shapes_and_order(clips):
    paths, refs = clips
    records = [VideoRecord(str(p), 0) for p in paths]
    ds = VideoClipDataset(records, ["a"], num_frames=4, train=False, num_clips=2,
                          transform=build_test_transform(32, 40, num_crops=3))
    item = ds[0]
    assert item["clip"].shape == (6, 4, 3, 32, 32) and item["clip"].dtype == torch.uint8
    # view order is clip-major: views 0..2 are the 3 crops of clip 0
    single = VideoClipDataset(records, ["a"], num_frames=4, train=False, num_clips=2,
                              transform=build_test_transform(32, 40, num_crops=1))[0]["clip"]
    assert torch.equal(item["clip"][1], single[0]) and torch.equal(item["clip"][4], single[1])
    twice = VideoClipDataset(records, ["a"], num_frames=4, train=False, twice=True,
                             transform=build_test_transform(32, 40))[3]["clip"]
    assert twice.shape == (2, 4, 3, 32, 32)
    dense = VideoClipDataset(records, ["a"], num_frames=4, sampling="dense", frame_interval=3,
                             train=False, num_clips=3)
    clip = dense[3]["clip"]  # (3, 4, 3, H, W), no transform
    idx = sample_indices(40, mode="dense", clip_len=4, frame_interval=3, train=False,
                         num_clips=3)
    expected = torch.from_numpy(refs[3][idx.reshape(-1)]).permute(0, 3, 1, 2)
    assert torch.equal(clip.reshape(-1, 3, 40, 56), expected)


def test_train_items_are_random_per_epoch_and_reproducible(clips):
    paths, _ = clips
    records = [VideoRecord(str(p), 0) for p in paths]
    t = build_train_transform("multiscale", size=32, resize=40, flip=True)
    ds = VideoClipDataset(records, ["a"], num_frames=4, train=True, transform=t, seed=3)
    a, b = ds[0]["clip"], ds[0]["clip"]
    assert a.shape == (4, 3, 32, 32) and torch.equal(a, b)  # same epoch: same draw
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["clip"], a)


def test_multilabel_and_collate(clips):
    paths, _ = clips
    records = [VideoRecord(str(paths[0]), [0, 2]), VideoRecord(str(paths[1]), 1)]
    ds = VideoClipDataset(records, ["a", "b", "c"], num_frames=4, train=False,
                          transform=build_test_transform(32, 40))
    batch = collate_clips([ds[0], ds[1]])
    assert batch["clip"].shape == (2, 4, 3, 32, 32)
    assert torch.equal(batch["label"], torch.tensor([[1.0, 0, 1], [0, 1, 0]]))
    assert batch["index"].tolist() == [0, 1] and batch["bad"] == []
    single = collate_clips([VideoClipDataset(records[1:], ["a", "b"], num_frames=4,
                                             train=False, transform=build_test_transform(32, 40)
                                             )[0]])
    assert single["label"].dtype == torch.long
    raw = VideoClipDataset([VideoRecord(str(paths[0]), 0)], ["a"], num_frames=4, train=False)
    with pytest.raises(ValueError, match="different shapes"):
        collate_clips([raw[0], {**raw[0], "clip": raw[0]["clip"][:, :, :8]}])


def test_flip_label_map_through_the_dataset(clips):
    paths, _ = clips
    t = build_train_transform("center", size=32, resize=40, flip=True, flip_label_map={0: 1})
    ds = VideoClipDataset([VideoRecord(str(paths[0]), 0)] * 40, ["left", "right"],
                          num_frames=2, train=True, transform=t)
    labels = [ds[i]["label"] for i in range(40)]
    assert 5 < sum(labels) < 35  # flipped items carry the swapped label


def test_rawframe_records(tmp_path):
    frames = moving_frames(10, 24, 32)
    write_rawframes(tmp_path / "r" / "clip1", frames, "{:05d}.jpg")
    write_rawframes(tmp_path / "r" / "clip2", frames[:6], "img_{:05d}.png")
    records = [VideoRecord(str(tmp_path / "r" / "clip1"), 0),
               VideoRecord(str(tmp_path / "r" / "clip2"), 1, num_frames=6)]
    ds = VideoClipDataset(records, ["a", "b"], num_frames=3, train=False)
    idx = sample_indices(6, num_frames=3, train=False)[0]
    np.testing.assert_array_equal(ds[1]["clip"].permute(0, 2, 3, 1).numpy(), frames[idx])
    assert ds[0]["clip"].shape == (3, 3, 24, 32)


# --------------------------------------------------------------------------- bad data
@pytest.fixture(scope="module")
def bad_dataset(tmp_path_factory, clips):
    paths, _ = clips
    d = tmp_path_factory.mktemp("baddata")
    bad = make_bad_files(d, paths[0])
    records = []
    for i, (kind, path) in enumerate(bad.items()):
        records.append(VideoRecord(str(paths[i % 4]), 0))
        records.append(VideoRecord(str(path), 1))
    records.append(VideoRecord(str(d / "no_frames_here"), 1))  # empty frame folder
    (d / "no_frames_here").mkdir()
    return records, bad


EXPECTED_REASONS = {"missing": "file not found", "empty": "empty file",
                    "truncated": "not a readable video", "not_video": "not a readable video",
                    "audio_only": "no video stream", "undecodable": "decoding failed"}


def test_bad_files_in_a_multi_worker_dataloader(bad_dataset):
    records, bad = bad_dataset
    ds = VideoClipDataset(records, ["good", "bad"], num_frames=4, train=True,
                          transform=build_train_transform("multiscale", size=32, resize=40))
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate_clips)
    report = BadFileReport()
    seen = []
    for batch in loader:
        report.update(batch)
        seen += batch["index"].tolist()
        assert batch["clip"].shape[1:] == (4, 3, 32, 32)
        # every served item is a good one: the substitutes are the next (good) records
        assert (batch["label"] == 0).all()
    assert sorted(seen) == list(range(len(records)))  # nothing lost, nothing crashed
    # 7 bad files; item 11 (undecodable) skips record 12 (bad too) as well: 8 replacements
    assert len(report) == 7 and report.substitutions == 8
    for kind, path in bad.items():
        assert EXPECTED_REASONS[kind] in report.files[str(path)], (kind, report.files)
    assert "no frame images" in report.files[records[-1].path]
    text = report.summary()
    assert text.startswith("7 bad files") and str(bad["audio_only"]) in text


def test_substitution_is_deterministic_and_logged_once(bad_dataset, caplog):
    records, bad = bad_dataset
    ds = VideoClipDataset(records, ["good", "bad"], num_frames=4, train=False)
    with caplog.at_level(logging.WARNING, logger="vidcls.data"):
        first = ds[1]  # record 1 is the missing file -> record 2 serves it
        again = ds[1]
    assert torch.equal(first["clip"], ds[2]["clip"]) and torch.equal(first["clip"], again["clip"])
    assert first["index"] == 1 and first["bad"] == [f"{bad['missing']}: file not found"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and str(bad["missing"]) in warnings[0]
    assert "file not found" in warnings[0]
    assert ds.bad_files == {str(bad["missing"]): "file not found"} and ds.num_substitutions == 2
    # the last record is bad: the substitute wraps around to record 0
    assert torch.equal(ds[len(ds) - 1]["clip"], ds[0]["clip"])


def test_an_item_with_nothing_readable_is_left_out_of_its_batch(tmp_path, clips):
    """All replacements bad: the item has no clip and collate_clips drops it (the training
    loop then ends the epoch with NoUsableVideos, tests/engine/test_bad_data.py)."""
    records = [VideoRecord(str(tmp_path / f"gone{i}.mp4"), 0) for i in range(3)]
    ds = VideoClipDataset(records, ["a"], num_frames=2, train=False)
    item = ds[0]
    assert item["clip"] is None and len(item["bad"]) == 3
    batch = collate_clips([ds[0], ds[1]])
    assert batch["clip"] is None and batch["skipped"] == [0, 1] and len(batch["bad"]) == 6
    # max_retries=0: no substitution, the decode error itself (for prediction on given files)
    strict = VideoClipDataset(records + [VideoRecord(str(clips[0][0]), 0)], ["a"],
                              num_frames=2, train=False, max_retries=0)
    with pytest.raises(VideoDecodeError, match="gone1.mp4: file not found"):
        strict[1]
    assert strict.bad_files == {records[1].path: "file not found"}
    assert strict[3]["clip"].shape[0] == 2


def test_scoring_datasets_skip_bad_files_instead_of_substituting(tmp_path, clips):
    """substitute_bad=False: a bad file's item is skipped, never served by another video's
    clip (which would be scored under the bad file's name and label)."""
    good = [VideoRecord(str(p), i % 2) for i, p in enumerate(clips[0][:3])]
    records = [good[0], VideoRecord(str(tmp_path / "empty.mp4"), 1), good[1], good[2]]
    (tmp_path / "empty.mp4").write_bytes(b"")
    ds = VideoClipDataset(records, ["a", "b"], num_frames=2, train=False, substitute_bad=False)
    assert ds[1]["clip"] is None and ds[1]["bad"] == [f"{tmp_path / 'empty.mp4'}: empty file "
                                                      f"(0 bytes)"]
    batch = collate_clips([ds[i] for i in range(4)])
    assert batch["index"].tolist() == [0, 2, 3] and batch["skipped"] == [1]
    assert batch["label"].tolist() == [0, 1, 0] and batch["clip"].shape[0] == 3
    assert ds.num_substitutions == 0

def test_frame_cache_gives_identical_items_and_decodes_once(clips, monkeypatch):
    """With ``cache_mb`` each video is decoded once; items are the same as without the cache,
    for training (random sampling and crops) and for test views."""
    import vidcls.data.dataset as dataset_module

    paths, _ = clips
    records = [VideoRecord(str(p), i % 2) for i, p in enumerate(paths)]
    t = build_train_transform("multiscale", size=32, resize=40)
    opened = []
    real_open = dataset_module.open_video

    def counting_open(path, **kw):
        opened.append(path)
        return real_open(path, **kw)

    monkeypatch.setattr(dataset_module, "open_video", counting_open)
    plain = VideoClipDataset(records, ["a", "b"], num_frames=4, train=True, transform=t, seed=1)
    cached = VideoClipDataset(records, ["a", "b"], num_frames=4, train=True, transform=t,
                              seed=1, cache_mb=64)
    for epoch in range(3):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for i in range(len(records)):
            torch.manual_seed(epoch)
            a = plain[i]["clip"]
            torch.manual_seed(epoch)
            assert torch.equal(a, cached[i]["clip"])
    assert len(opened) == 3 * len(records) + len(records)  # plain: every time; cached: once
    test_views = dict(num_frames=4, train=False, num_clips=2)
    ref = VideoClipDataset(records, ["a", "b"], **test_views)
    warm = VideoClipDataset(records, ["a", "b"], cache_mb=64, **test_views)
    assert warm.fill_cache() == len(records)
    opened.clear()
    for i in range(len(records)):
        assert torch.equal(ref[i]["clip"], warm[i]["clip"])
    assert len(opened) == len(records)  # only the uncached dataset opened files
    # a budget smaller than one video caches nothing and still serves items
    tiny = VideoClipDataset(records, ["a", "b"], cache_mb=1e-6, **test_views)
    assert tiny.fill_cache() == 0 and torch.equal(tiny[0]["clip"], ref[0]["clip"])
    assert tiny._cache_left == 0  # closed: later reads decode only the sampled frames
