"""``--model NAME`` wherever ``--checkpoint DIR`` is accepted, and the facade's
``vidcls.load_model`` / ``vidcls.create_model(pretrained=NAME)``: a published model fetched
through the mirror from 127.0.0.1 on first use, from the cache after."""
from __future__ import annotations

import json

import pytest
import torch

import vidcls
from helpers.file_server import FileServer
from helpers.videos import encode, moving_frames
from helpers.zoo_files import write_entry_source
from vidcls.cli import main
from vidcls.zoo import get_entry

NAME = "tsm-mobilenetv2-jester-online"  # the smallest entry: an online MobileNetV2


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo_cli")
    write_entry_source(get_entry(NAME), root / "www", root / "hub")
    with FileServer(root / "www", hf_root=root / "hub") as server:
        yield server


@pytest.fixture
def zoo(published, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDCLS_MIRROR", published.url + "/")
    monkeypatch.setenv("VIDCLS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VIDCLS_OFFLINE", raising=False)
    published.requests.clear()
    return published


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return encode(tmp_path_factory.mktemp("v") / "clip.mp4", moving_frames(12, 64, 80))


def test_predict_with_model_name_then_from_cache(zoo, video, capsys):
    assert main(["predict", str(video), "--model", NAME, "--json", "--top-k", "3"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first[0]["predictions"]) == 3
    from vidcls.resources import class_names

    assert first[0]["predictions"][0]["label"] in class_names("jester")
    assert zoo.paths() == ["/projects/tsm/models/mobilenetv2_jester_online.pth.tar"]
    zoo.requests.clear()
    assert main(["predict", str(video), "--model", NAME, "--json", "--top-k", "3",
                 "--offline"]) == 0
    assert json.loads(capsys.readouterr().out) == first and zoo.requests == []


def test_offline_without_cache_is_one_line(zoo, video, capsys):
    assert main(["predict", str(video), "--model", NAME, "--offline"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mobilenetv2_jester_online.pth.tar" in err
    assert "downloads are off" in err and zoo.requests == []


def test_unknown_and_conflicting_model_options(zoo, video, capsys):
    assert main(["predict", str(video), "--model", "tsm-r50-kinetic400"]) == 2
    assert "did you mean tsm-r50-kinetics400" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --checkpoint and --model exclude each other
        main(["predict", str(video), "--model", NAME, "--checkpoint", "x"])


def test_stream_explain_export_and_init_take_model(zoo, video, tmp_path, capsys):
    assert main(["stream", str(video), "--model", NAME, "--json", "--max-frames", "4"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len([x for x in lines if "frame" in x]) == 4
    assert main(["explain", str(video), "--model", NAME, "-o", str(tmp_path / "ex"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outputs"]
    out = tmp_path / "online.onnx"
    assert main(["export", "--model", NAME, "--online", "-o", str(out), "--no-verify"]) == 0
    assert out.is_file()
    assert main(["export"]) == 2
    assert "--model NAME" in capsys.readouterr().err
    # train --init NAME resolves to the cached checkpoint (downloaded once in this test)
    from vidcls.cli.train import init_source

    assert init_source(NAME).endswith(f"checkpoints/{NAME}")
    assert init_source("some/dir") == "some/dir"
    assert zoo.paths().count("/projects/tsm/models/mobilenetv2_jester_online.pth.tar") == 1


def test_facade_load_model_and_create_model(zoo):
    model = vidcls.load_model(NAME)
    assert model.classes[0] == "Doing other things" and len(model.classes) == 27
    assert model.preprocessing.input_size == 224 and not model.training
    same = vidcls.create_model("tsm_mobilenetv2", pretrained=NAME)
    assert same.build_config["shift_mode"] == "unidirectional" and same.num_classes == 27
    assert same.classes == model.classes
    x = torch.randn(1, 8, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(same.eval()(x), model(x))
    tuned = vidcls.create_model("tsm_mobilenetv2", pretrained=NAME, num_classes=5)
    assert tuned.num_classes == 5  # a fresh head for fine-tuning, the backbone from the zoo
    torch.testing.assert_close(tuned.backbone.features[0][0].weight,
                               model.backbone.features[0][0].weight)
    with pytest.raises(FileNotFoundError, match="vidcls.create_model"):
        vidcls.models.create_model("tsm_mobilenetv2", pretrained=NAME)
