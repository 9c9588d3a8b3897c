"""``--from auto`` and wrong formats: the format is read from the file and its keys
(:mod:`vidcls.convert.detect`, torch-free), every format's test file converts without
``--from``, a file given to the wrong format is refused naming the one it looks like, and a file
no format reads gets one line."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch

from helpers.convert import VIDEO_FORMATS, tiny_timesformer, write_format_file
from vidcls.convert import convert, detect_format
from vidcls.engine.checkpoint import load_model, read_meta
from vidcls.models.resnet import resnet18


def _flags(options: dict) -> list[str]:
    return [part for k, v in options.items() for part in (f"--{k.replace('_', '-')}", str(v))]


@pytest.mark.parametrize("fmt", VIDEO_FORMATS)
def test_every_format_is_detected_and_converts_without_from(tmp_path, fmt, capsys):
    from vidcls.cli import main

    path, options = write_format_file(fmt, tmp_path / "src")
    assert detect_format(path) == fmt
    rc = main(["convert", str(path), str(tmp_path / "out"), *_flags(options)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"from {fmt}" in captured.out
    assert read_meta(tmp_path / "out")["source"]["format"] == fmt
    load_model(tmp_path / "out")


def test_legacy_torch_files_and_npz_are_read(tmp_path):
    """The TSM authors' published files predate torch's zip format; Paddle weights may come as
    ``.npz``."""
    path, _ = write_format_file("tsm-official", tmp_path / "zip")
    legacy = tmp_path / "TSM_kinetics_RGB_resnet18_shift4_blockres_avg_segment4_e50.pth"
    torch.save(torch.load(path, weights_only=True), legacy, _use_new_zipfile_serialization=False)
    assert legacy.read_bytes()[:1] == b"\x80"  # a pickle, not a zip archive
    assert detect_format(legacy) == "tsm-official"

    from vidcls.convert import read_paddle_params

    pdparams, _ = write_format_file("tsm-paddle", tmp_path / "paddle")
    npz = tmp_path / "weights.npz"
    np.savez(npz, **{k: v.numpy() for k, v in read_paddle_params(pdparams).items()})
    assert detect_format(npz) == "tsm-paddle"


def test_detection_imports_no_torch(tmp_path):
    path, _ = write_format_file("timesformer-mmaction2", tmp_path)
    code = ("import sys; from vidcls.convert import detect_format; "
            f"assert detect_format({str(path)!r}) == 'timesformer-mmaction2'; "
            "heavy = sorted(m for m in ('torch', 'numpy') if m in sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_container_rule_is_the_loaders():
    from vidcls.convert.detect import CONTAINER_KEYS
    from vidcls.models._weights import CONTAINER_KEYS as LOADER_KEYS

    assert CONTAINER_KEYS == LOADER_KEYS


@pytest.mark.parametrize("source, given", [
    ("timesformer-mmaction2", "tsm-official"),  # was: "[0, 0, 0, 0] basic blocks"
    ("timesformer-mmaction2", "timesformer-official"),  # was: "'cls_token' is missing"
    ("timesformer-hf", "timesformer-official"),  # was: "checkpoint DIR does not exist"
    ("tsm-paddle", "tsm-official"),  # was: a 45-line traceback
    ("tsm-official", "tsm-paddle"),  # was: "persistent id instruction"
    ("timesformer-official", "timesformer-mmaction2"),
    ("tsm-mmaction2", "tsm-official"),
    ("tsm-official", "torchvision-resnet"),  # a video checkpoint given to an image format
    ("timesformer-official", "timm-vit"),
])
def test_a_wrong_format_names_the_one_the_file_looks_like(tmp_path, source, given):
    path, _ = write_format_file(source, tmp_path)
    with pytest.raises(ValueError, match=f"is not a {given} checkpoint: it looks like a "
                                         f"{source} checkpoint; use --from {source}$"):
        convert(path, given)


def test_image_weights_are_never_picked_automatically(tmp_path):
    torch.save(resnet18(num_classes=1000).state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(ValueError, match="image weights.*torchvision-resnet.*--num-classes"):
        convert(tmp_path / "resnet18.pth")
    vit = tmp_path / "vit.pth"
    torch.save(tiny_timesformer("space", classes=10).state_dict(), vit)
    with pytest.raises(ValueError, match="looks like a timm-vit checkpoint"):
        convert(vit)
    with pytest.raises(ValueError, match=r"looks like a torchvision-resnet checkpoint \(image "
                                         r"weights\); use --from torchvision-resnet"):
        convert(tmp_path / "resnet18.pth", "timm-vit")
    assert convert(vit, "timm-vit", num_classes=3, num_heads=2).model.num_classes == 3


def _unreadable(tmp_path):
    (tmp_path / "config.yaml").write_text("MODEL:\n  backbone:\n    num_seg: 8\n")
    (tmp_path / "notes.txt").write_text("not weights\n")
    (tmp_path / "random.pth").write_bytes(os.urandom(4096))
    (tmp_path / "pickle_like.pth").write_bytes(b"\x80\x04" + os.urandom(200))
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    return {"config.yaml": "a YAML text file", "notes.txt": "a text file",
            "random.pth": "not a torch, PaddlePaddle or safetensors weight file",
            "pickle_like.pth": "not a torch", "empty.pth": "the file is empty",
            "folder": "a directory but not"}


@pytest.mark.parametrize("fmt", ["auto", "tsm-official", "tsm-paddle", "timesformer-hf"])
def test_a_file_no_format_reads_is_one_line(tmp_path, fmt):
    for name, why in _unreadable(tmp_path).items():
        with pytest.raises(ValueError) as info:
            convert(tmp_path / name, fmt)
        message = str(info.value)
        assert "\n" not in message and why in message, message
        if name != "folder":
            assert message.startswith(f"{tmp_path / name} is not a checkpoint vidcls can read (")


def test_cli_on_a_yaml_is_one_line(tmp_path, capsys):
    from vidcls.cli import main

    (tmp_path / "some.yaml").write_text("DATA:\n  NUM_FRAMES: 8\n")
    assert main(["convert", str(tmp_path / "some.yaml"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a checkpoint vidcls can read (a YAML" in err
    assert not (tmp_path / "out").exists()


def test_unknown_keys_and_vidcls_checkpoints(tmp_path):
    torch.save({"state_dict": OrderedDict(w=torch.ones(2))}, tmp_path / "odd.pth")
    with pytest.raises(ValueError, match=r"no vidcls format recognises \(keys w\); give the "
                                         "format with --from"):
        convert(tmp_path / "odd.pth")
    path, options = write_format_file("tsm-mmaction2", tmp_path / "src")
    from vidcls.convert import convert_checkpoint

    out = convert_checkpoint(path, tmp_path / "ckpt", **options)
    with pytest.raises(ValueError, match="already a vidcls checkpoint; use it as it is"):
        convert(out)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert(tmp_path / "missing.pth")


def test_convert_checkpoint_records_provenance_and_checks_the_class_count(tmp_path):
    import json

    from vidcls.convert import convert_checkpoint

    path, options = write_format_file("tsm-mmaction2", tmp_path / "src")
    out = convert_checkpoint(path, tmp_path / "ckpt", provenance={"zoo": "x", "license": "MIT"},
                             **options)
    source = json.loads((out / "meta.json").read_text())["source"]
    assert source["zoo"] == "x" and source["license"] == "MIT" and source["file"] == str(path)
    classes = convert(path, **options).model.num_classes
    with pytest.raises(ValueError, match=f"has {classes} classes where {classes + 1} were"):
        convert_checkpoint(path, tmp_path / "bad", expect_num_classes=classes + 1, **options)
    assert not (tmp_path / "bad").exists()
