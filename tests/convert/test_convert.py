"""The package's entry points: ``FORMATS`` (its names importable without torch), ``convert``
(unknown formats and options refused) and the ``vidcls convert`` command writing a checkpoint
that loads."""
from __future__ import annotations

import json

import pytest
import torch

from helpers.convert import tiny_timesformer
from vidcls.convert import FORMATS
from vidcls.engine.checkpoint import read_meta
from vidcls.models import create_model


def test_cli_convert(tmp_path, capsys):
    from vidcls.cli import main

    model = tiny_timesformer("divided")
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


def test_a_converted_checkpoint_without_its_head_is_an_error():
    """Converters are strict: the fine-tuning rule (a missing or other-sized head stays fresh)
    of ``pretrained=`` must never hide a head the conversion lost."""
    from vidcls.convert._common import load_converted

    for model in (create_model("tsm_resnet18", num_classes=4), tiny_timesformer()):
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
        with pytest.raises(ValueError, match=r"does not fit model \w+.*missing keys "
                                             r"\['head.bias', 'head.weight'\]"):
            load_converted(model, state, "ckpt.pth")
    assert load_converted(model, state, "ckpt.pth", init=True) is model  # ImageNet-style init


def test_formats_pair_each_name_with_its_converter():
    """``FORMATS`` zips the torch-free ``FORMAT_NAMES`` with the converters in order; a
    converter out of place would answer for another format."""
    from vidcls.convert import FORMAT_NAMES

    assert tuple(FORMATS) == FORMAT_NAMES
    for name, fn in FORMATS.items():
        assert fn.__name__ == "convert_" + name.replace("-", "_"), name


def test_unknown_names_are_refused():
    import vidcls.convert
    from vidcls.convert import convert

    with pytest.raises(ValueError, match="unknown format 'tsm-caffe'; choose one of: "
                                         r"tsm-official, .*, timm-vit \(or auto: read it "
                                         r"from the file\)"):
        convert("ckpt.pth", "tsm-caffe")
    with pytest.raises(AttributeError, match="no attribute 'convert_tsm_caffe'"):
        vidcls.convert.convert_tsm_caffe  # the lazy loader knows its names


def test_the_format_names_import_without_torch():
    import subprocess
    import sys

    code = ("import sys; from vidcls.convert.formats import FORMAT_NAMES; "
            "assert len(FORMAT_NAMES) == 8; assert 'torch' not in sys.modules, 'torch'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_prints_the_defaults_it_used(tmp_path, capsys):
    """One warning line per setting the file does not store, naming the default and the
    option; meta.json records them."""
    from reference.tsm_repo import make_ref_resnet_tsm, save_tsm_checkpoint
    from vidcls.cli import main

    torch.manual_seed(0)
    save_tsm_checkpoint(tmp_path / "ckpt.pth.tar",
                        make_ref_resnet_tsm("blockres", n_segment=8, n_div=8, num_class=4))
    assert main(["convert", str(tmp_path / "ckpt.pth.tar"), str(tmp_path / "out")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 3, warnings
    assert all(line.startswith("vidcls convert: warning: ") for line in warnings)
    assert any("shift_div: " in line and "using 8 (set it with --shift-div" in line
               for line in warnings)
    assert read_meta(tmp_path / "out")["source"]["assumed"] == {
        "num_frames": 8, "shift_div": 8, "classes": "index names 0..3"}
    (tmp_path / "names.txt").write_text("a\nb\nc\nd\n")
    assert main(["convert", str(tmp_path / "ckpt.pth.tar"), str(tmp_path / "out2"),
                 "--num-frames", "8", "--shift-div", "8", "--classes",
                 str(tmp_path / "names.txt")]) == 0
    assert "warning" not in capsys.readouterr().err  # given options: nothing assumed
    assert "assumed" not in read_meta(tmp_path / "out2")["source"]
