"""Adversarial inputs: the 8 annotation parsers, the config loader and the video reader fed
generated and mutated inputs (hypothesis). The only exceptions that may escape are the
documented ones -- ``ValueError`` (incl. ``ConfigError``, ``VideoDecodeError``) and
``FileNotFoundError`` -- and the reader never hangs (a time limit per file).

``make test`` runs a short search (``VIDCLS_FUZZ_EXAMPLES``, default 25 per target); the
``slow`` run (``VIDCLS_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py``) searches longer.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.videos import encode, moving_frames
from vidcls.data.formats import FORMATS, build_records
from vidcls.data.video import open_video
from vidcls.engine.config import load_config

EXAMPLES = int(os.environ.get("VIDCLS_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
DOCUMENTED = (ValueError, FileNotFoundError)

# pieces real annotation lines are made of, plus the odd things users' files contain
_TOKENS = st.sampled_from(["0", "1", "-1", "7", "99999999999999999999", "3.5", "1e3", "a b.mp4",
                           "v.mp4", '"q t.mp4"', "'x", "dir/", "", " ", "\t", ",", ";", "#",
                           "label", "{", "}", "[", "]", ":", '"id"', '"template"', "\x00",
                           "é", "𝔘", "../../etc/passwd", "/abs/path.avi", "NaN", "None"])
_LINE = st.one_of(st.lists(_TOKENS, max_size=6).map(" ".join),
                  st.lists(_TOKENS, max_size=6).map(",".join), st.text(max_size=40))
_TEXT = st.lists(_LINE, max_size=8).map("\n".join)
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=4)
                     | st.dictionaries(st.sampled_from(["id", "label", "template",
                                                        "placeholders", "x", "0"]) | st.text(
                                                            max_size=4), c, max_size=4),
                     max_leaves=12).map(json.dumps)
_NAME = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
                min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))


@contextmanager
def scratch():
    d = Path(tempfile.mkdtemp(prefix="vidcls-fuzz-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _parse(fmt: str, root: Path, ann: Path | None = None) -> None:
    try:
        build_records(fmt, root=root, ann_file=ann)
    except DOCUMENTED:
        pass


def test_every_format_is_fuzzed():
    assert set(FORMATS) == {"folder", "list", "rawframes", "kinetics", "sthv2", "ucf101",
                            "hmdb51", "jester"}


@FUZZ
@given(fmt=st.sampled_from(["list", "rawframes", "kinetics"]), text=_TEXT)
def test_list_style_annotations(fmt, text):
    with scratch() as root:
        (root / "v.mp4").write_bytes(b"")
        (root / "a b.mp4").write_bytes(b"")
        ann = root / ("ann.csv" if fmt == "kinetics" else "ann.txt")
        ann.write_text(text, encoding="utf-8")
        _parse(fmt, root, ann)


@FUZZ
@given(labels=_JSON | _TEXT, ann=_JSON | _TEXT)
def test_something_something_json(labels, ann):
    with scratch() as root:
        (root / "labels.json").write_text(labels, encoding="utf-8")
        (root / "train.json").write_text(ann, encoding="utf-8")
        _parse("sthv2", root)


@FUZZ
@given(class_ind=_TEXT, split=_TEXT)
def test_ucf101_lists(class_ind, split):
    with scratch() as root:
        (root / "ucfTrainTestlist").mkdir()
        (root / "ucfTrainTestlist" / "classInd.txt").write_text(class_ind, encoding="utf-8")
        (root / "ucfTrainTestlist" / "trainlist01.txt").write_text(split, encoding="utf-8")
        _parse("ucf101", root)


@FUZZ
@given(names=st.lists(_NAME, min_size=1, max_size=3, unique=True), text=_TEXT)
def test_hmdb51_split_files(names, text):
    with scratch() as root:
        (root / "splits").mkdir()
        for name in names:
            (root / "splits" / f"{name}_test_split1.txt").write_text(text, encoding="utf-8")
        _parse("hmdb51", root)


@FUZZ
@given(labels=_TEXT, ann=_TEXT)
def test_jester_csv(labels, ann):
    with scratch() as root:
        (root / "labels.csv").write_text(labels, encoding="utf-8")
        (root / "train.csv").write_text(ann, encoding="utf-8")
        _parse("jester", root)


@FUZZ
@given(tree=st.dictionaries(_NAME, st.lists(_NAME, max_size=3), max_size=4))
def test_folder_per_class(tree):
    with scratch() as root:
        for cls, files in tree.items():
            (root / cls).mkdir(exist_ok=True)
            for f in files:
                (root / cls / (f + ".mp4")).write_bytes(b"\x00")
        _parse("folder", root)


_YAML_KEYS = st.sampled_from(["model", "data", "train", "eval", "name", "lr", "epochs",
                              "num_frames", "input_size", "output_dir", "device", "seed",
                              "optimizer", "batch_size", "root", "format", "bogus"])
_YAML_VALUES = st.one_of(st.integers(-5, 10**6), st.floats(allow_nan=True), st.booleans(),
                         st.none(), st.text(max_size=10), st.sampled_from(
                             ["1e-3", ".001", "tsm_resnet18", "cpu", "tpu", "[1, 2", "{a: b}",
                              "adamw", "cosine", "list", "- x", "&a *a"]))


@FUZZ
@given(doc=st.recursive(_YAML_VALUES, lambda c: st.dictionaries(_YAML_KEYS, c, max_size=5),
                        max_leaves=15),
       raw=st.text(max_size=60), use_raw=st.booleans())
def test_config_loader(doc, raw, use_raw):
    import yaml

    with scratch() as d:
        path = d / "c.yaml"
        path.write_text(raw if use_raw else yaml.safe_dump(doc), encoding="utf-8")
        try:
            load_config(path)
        except DOCUMENTED:
            pass


@FUZZ
@given(overrides=st.lists(st.tuples(st.sampled_from(
    ["train.lr", "train.epochs", "data.input_size", "model.name", "device", "output_dir",
     "data.num_frames", "nope", "train", "model.shift_div", ""]), _YAML_VALUES.map(str)),
    max_size=4))
def test_config_overrides(overrides):
    try:
        load_config(None, [f"{k}={v}" for k, v in overrides])
    except DOCUMENTED:
        pass


@pytest.fixture(scope="module")
def seed_videos(tmp_path_factory):
    """Real files of the containers users have: H.264 mp4, VP9 webm, MPEG-4 avi."""
    d = tmp_path_factory.mktemp("fuzz_seeds")
    frames = moving_frames(10, 32, 48)
    return [encode(d / "a.mp4", frames).read_bytes(),
            encode(d / "b.webm", frames, codec="libvpx-vp9", gop=None).read_bytes(),
            encode(d / "c.avi", frames, codec="mpeg4").read_bytes()]


@contextmanager
def time_limit(seconds: int):
    def stop(signum, frame):
        raise AssertionError(f"the reader hung for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@FUZZ
@given(which=st.integers(0, 2), data=st.data())
def test_mutated_videos_never_escape_or_hang(seed_videos, which, data):
    raw = bytearray(seed_videos[which])
    kind = data.draw(st.sampled_from(["truncate", "flip", "zero_run", "splice"]))
    at = data.draw(st.integers(0, len(raw) - 1))
    if kind == "truncate":
        raw = raw[:at]
    elif kind == "flip":
        for offset in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=40)):
            raw[offset] ^= 0xFF
    elif kind == "zero_run":
        raw[at:at + data.draw(st.integers(1, 4096))] = b"\x00" * 16
    else:
        raw[at:at] = seed_videos[(which + 1) % 3][: data.draw(st.integers(1, 4096))]
    suffix = (".mp4", ".webm", ".avi")[which]
    with scratch() as d, time_limit(20):
        path = d / f"m{suffix}"
        path.write_bytes(bytes(raw))
        try:
            with open_video(path) as reader:
                n = reader.num_frames
                frames = reader.get_frames([0, max(0, n // 2), max(0, n - 1)])
                assert frames.ndim == 4 and frames.shape[-1] == 3
        except DOCUMENTED:
            pass
