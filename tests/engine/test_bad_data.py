"""Unreadable videos in scoring and in whole splits: ``vidcls eval`` skips a bad file (never
scores another video's clip under its name), a split with no readable video is one clear
error with a bad-file report (also from 2 DataLoader workers), an empty list is a config
error."""
import json
from pathlib import Path

import pytest
import torch
import yaml

from vidcls.cli import main
from vidcls.data.bad_files import NoUsableVideos
from vidcls.data.synthetic import generate
from vidcls.engine.checkpoint import save_model_checkpoint
from vidcls.engine.config import ConfigError, load_config
from vidcls.engine.evaluate import evaluate
from vidcls.engine.trainer import fit
from vidcls.models import create_model


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate(root, "temporal", num_classes=4, videos_per_class=5, num_frames=8, size=32,
             workers=1)
    return root


@pytest.fixture(scope="module")
def checkpoint(synth, tmp_path_factory):
    """A 4-class TSM checkpoint on 4-frame 32 px clips (untrained: scoring is what counts)."""
    torch.manual_seed(0)
    model = create_model("tsm_resnet18", num_classes=4, num_frames=4)
    classes = (synth / "classes.txt").read_text().split("\n")[:4]
    return save_model_checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt", model,
                                 classes=classes, preprocessing={"input_size": 32, "resize": 32})


def dataset_with(tmp_path: Path, synth: Path, *, train_extra: str = "", val_extra: str = "",
                 train: str | None = None, val: str | None = None) -> Path:
    """A copy of the synthetic lists (same videos) with extra lines, and a few bad files."""
    data = tmp_path / "data"
    data.mkdir(parents=True)
    (data / "videos").symlink_to(synth / "videos")
    (data / "classes.txt").write_text((synth / "classes.txt").read_text())
    (data / "empty.mp4").write_bytes(b"")
    (data / "text.mp4").write_text("this is not a video\n")
    (data / "train.txt").write_text(
        (synth / "train.txt").read_text() + train_extra if train is None else train)
    (data / "val.txt").write_text(
        (synth / "val.txt").read_text() + val_extra if val is None else val)
    return data


def write_config(tmp_path: Path, root: Path, **data) -> Path:
    cfg = {"model": {"name": "tsm_resnet18"},
           "data": {"format": "list", "root": str(root), "num_frames": 4, "batch_size": 4,
                    "workers": 0, "input_size": 32, "resize": 32, "flip": False, **data},
           "train": {"epochs": 1, "lr": 0.01, "log_every": 1, "tensorboard": False},
           "output_dir": str(tmp_path / "run"), "device": "cpu", "seed": 1}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_eval_skips_an_unreadable_file_instead_of_scoring_another_clip(tmp_path, synth,
                                                                       checkpoint, capsys):
    data = dataset_with(tmp_path, synth, val_extra="empty.mp4 2\n")
    cfg = write_config(tmp_path, data)
    out = tmp_path / "eval"
    assert main(["eval", str(cfg), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    preds = json.loads((out / "predictions.json").read_text())
    # the 4 readable videos are scored; the empty file is neither a row nor in top-1
    assert metrics["num_videos"] == 4 and metrics["skipped"] == 1 and len(preds) == 4
    assert not any(p["video"].endswith("empty.mp4") for p in preds)
    assert "empty.mp4" not in (out / "predictions.csv").read_text()
    assert metrics["top1"] == pytest.approx(100 * sum(p["correct"] for p in preds) / 4)
    assert metrics["bad_files"] == [f"{data / 'empty.mp4'}: empty file (0 bytes)"]
    assert (out / "bad_files.txt").read_text() == f"{data / 'empty.mp4'}\tempty file (0 bytes)\n"
    top1_line = next(line for line in printed.splitlines() if "top-1" in line)
    assert "(skipped: 1)" in top1_line
    assert "empty.mp4: empty file (0 bytes)" in printed
    # the same scores as evaluating the readable videos alone
    clean = evaluate(load_config(write_config(tmp_path / "clean", dataset_with(
        tmp_path / "clean", synth))), checkpoint, out_dir=tmp_path / "e2", progress=False)
    assert clean["top1"] == metrics["top1"] and clean["loss"] == pytest.approx(metrics["loss"])
    assert clean["skipped"] == 0


def test_training_on_a_list_of_only_broken_files_ends_the_epoch_with_one_error(tmp_path, synth,
                                                                             capsys):
    """2 DataLoader workers, every file broken: no hang, no division by zero, but a one-line
    error naming the list and the bad-file report."""
    broken = "".join(f"{name} {i % 4}\n" for i, name in enumerate(
        ["empty.mp4", "text.mp4", "missing.mp4", "gone.mp4", "empty.mp4", "text.mp4"]))
    data = dataset_with(tmp_path, synth, train=broken)
    cfg = write_config(tmp_path, data, workers=2)
    assert main(["train", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    report = tmp_path / "run" / "bad_files.txt"
    assert err[-1] == (f"vidcls train: error: no usable videos in {data / 'train.txt'}: all 4 "
                       f"files failed to decode (see the bad-file report {report}; "
                       f"`vidcls data check` lists them too)")
    assert "Traceback" not in "\n".join(err)
    assert sorted(report.read_text().splitlines()) == sorted({
        f"{data / 'empty.mp4'}\tempty file (0 bytes)", f"{data / 'gone.mp4'}\tfile not found",
        f"{data / 'missing.mp4'}\tfile not found",
        f"{data / 'text.mp4'}\tnot a readable video (Invalid data found when processing input)"})
    assert not (tmp_path / "run" / "checkpoints" / "last").exists()


def test_validation_and_eval_with_only_broken_files_fail_clearly(tmp_path, synth, checkpoint):
    data = dataset_with(tmp_path, synth, val="empty.mp4 0\ntext.mp4 1\n")
    cfg = load_config(write_config(tmp_path, data))
    with pytest.raises(NoUsableVideos, match=r"no usable videos in .*val.txt: all 2 files "
                                             r"failed to decode \(see the bad-file report "):
        fit(cfg, progress=False)
    assert (tmp_path / "run" / "bad_files.txt").is_file()
    out = tmp_path / "eval"
    with pytest.raises(NoUsableVideos, match=rf"all 2 files failed .*{out / 'bad_files.txt'}"):
        evaluate(cfg, checkpoint, out_dir=out, progress=False)
    assert len((out / "bad_files.txt").read_text().splitlines()) == 2


def test_an_empty_validation_list_is_a_config_error(tmp_path, synth, checkpoint, capsys):
    data = dataset_with(tmp_path, synth, val="# nothing here yet\n")
    cfg = write_config(tmp_path, data, val_ann=str(tmp_path / "data" / "val.txt"))
    assert main(["train", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"the val list is empty: data.val_ann='{tmp_path / 'data' / 'val.txt'}' names no " \
           f"video" in err
    assert main(["eval", str(cfg), "--checkpoint", str(checkpoint), "--no-progress"]) == 2
    assert "the val list is empty" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="the val list is empty"):
        evaluate(load_config(cfg), checkpoint, progress=False)
