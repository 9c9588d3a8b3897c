"""``vidcls predict --list``: a library predicted in batches with decoding workers, one JSON
line per video (bad files as error lines), resumable, and 2 torchrun processes writing the same
lines as 1."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers.models import calibrated_model
from helpers.videos import encode, moving_frames
from vidcls.cli import main
from vidcls.engine.checkpoint import save_model_checkpoint
from vidcls.inference.batch import library_videos, predict_library
from vidcls.inference.predict import predict


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    d = tmp_path_factory.mktemp("library")
    (d / "videos" / "sub").mkdir(parents=True)
    videos = [encode(d / "videos" / f"v{i}.mp4", moving_frames(8, 32, 40, seed=i))
              for i in range(5)]
    videos.append(encode(d / "videos" / "sub" / "a b.mp4", moving_frames(8, 32, 40, seed=9)))
    (d / "videos" / "broken.mp4").write_bytes(b"")
    listing = d / "list.txt"
    listing.write_text("".join(f"videos/{p.name} 0\n" for p in videos[:5])
                       + "videos/sub/a b.mp4 1\nvideos/broken.mp4 2\n")
    ckpt = save_model_checkpoint(d / "ckpt", calibrated_model("tsm_resnet18", num_classes=5))
    return d, listing, ckpt


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_lines_equal_single_video_predictions_and_errors_are_lines(library, tmp_path):
    d, listing, ckpt = library
    out = tmp_path / "preds.jsonl"
    summary = predict_library(listing, ckpt, out, batch_size=3, workers=2, precision="fp32",
                              progress=False)
    lines = _lines(out)
    assert [r["video"] for r in lines] == library_videos(listing)
    assert summary["written"] == 7 and summary["errors"] == 1
    assert "error" in lines[-1] and lines[-1]["video"].endswith("broken.mp4")
    single = predict([r["video"] for r in lines[:-1]], ckpt, precision="fp32")
    for got, want in zip(lines, single):
        assert [p["label"] for p in got["predictions"]] == [p["label"] for p in want["predictions"]]
        assert got["predictions"][0]["probability"] == pytest.approx(
            want["predictions"][0]["probability"], abs=1e-5)


def test_a_rerun_skips_what_is_done(library, tmp_path):
    d, listing, ckpt = library
    out = tmp_path / "preds.jsonl"
    out.write_text(json.dumps({"video": library_videos(listing)[0], "predictions": []}) + "\n"
                   + '{"video": "torn')  # a crash mid-line
    s = predict_library(listing, ckpt, out, workers=0, progress=False)
    assert s["done_before"] == 1 and s["written"] == 6
    assert predict_library(listing, ckpt, out, workers=0, progress=False)["written"] == 0


def test_a_folder_and_the_cli(library, tmp_path, capsys):
    d, listing, ckpt = library
    assert len(library_videos(d / "videos")) == 7
    out = tmp_path / "p.jsonl"
    assert main(["predict", "--list", str(d / "videos"), "--output", str(out), "--checkpoint",
                 str(ckpt), "--no-progress", "--workers", "0"]) == 0
    assert len(_lines(out)) == 7 and "1 unreadable" in capsys.readouterr().err
    assert main(["predict", "--list", str(listing), "--checkpoint", str(ckpt)]) == 2
    assert "--output" in capsys.readouterr().err
    assert main(["predict", "--list", str(tmp_path / "nope.txt"), "--output", str(out),
                 "--checkpoint", str(ckpt)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_two_torchrun_processes_write_the_lines_of_one(library, tmp_path):
    d, listing, ckpt = library
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    predict_library(listing, ckpt, one, workers=0, precision="fp32", progress=False)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "vidcls",
         "predict", "--list", str(listing), "--output", str(two), "--checkpoint", str(ckpt),
         "--workers", "0", "--precision", "fp32", "--no-progress"],
        capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    a, b = _lines(one), _lines(two)
    assert [r["video"] for r in a] == [r["video"] for r in b]
    for x, y in zip(a, b):
        assert x.get("error") == y.get("error")
        assert [p["label"] for p in x.get("predictions", [])] == \
            [p["label"] for p in y.get("predictions", [])]
    assert not list(tmp_path.glob("*.part"))
