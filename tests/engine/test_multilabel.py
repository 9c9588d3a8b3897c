"""Multi-label runs (several labels per video): BCE training that selects on mAP and says so,
a checkpoint that records it, and sigmoid (independent) probabilities in predict and eval."""
import json

import pytest
import torch
import yaml

from vidcls.cli import main
from vidcls.data.synthetic import generate
from vidcls.engine.checkpoint import load_model, read_meta
from vidcls.engine.config import ConfigError, load_config
from vidcls.engine.trainer import Trainer
from vidcls.inference.predict import Predictor


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-epoch multi-label run: every video has its own class and, for half of them, the
    next one too."""
    tmp = tmp_path_factory.mktemp("multilabel")
    root = tmp / "data"
    generate(root, "temporal", num_classes=4, videos_per_class=3, num_frames=8, size=32,
             workers=1)
    for split in ("train", "val"):
        lines = []
        for i, line in enumerate((root / f"{split}.txt").read_text().splitlines()):
            path, label = line.rsplit(" ", 1)
            extra = f" {(int(label) + 1) % 4}" if i % 2 else ""
            lines.append(f"{path} {label}{extra}\n")
        (root / f"ml_{split}.txt").write_text("".join(lines))
    cfg = {"model": {"name": "tsm_resnet18"},
           "data": {"format": "list", "root": str(root), "train_ann": str(root / "ml_train.txt"),
                    "val_ann": str(root / "ml_val.txt"), "num_frames": 4, "batch_size": 4,
                    "workers": 0, "input_size": 32, "resize": 32, "flip": False},
           "train": {"epochs": 2, "lr": 0.01, "log_every": 1, "tensorboard": False},
           "output_dir": str(tmp / "run"), "device": "cpu", "seed": 1}
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return tmp, path


def test_training_selects_on_map_and_says_so(run, capsys):
    tmp, cfg = run
    assert main(["train", str(cfg), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "multi-label" in err and "val mAP" in err and "train top1" not in err
    assert "best top1" not in err
    records = [json.loads(x) for x in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert all(r["best_metric"] == "mAP" and 0 <= r["val_mAP"] <= 100 for r in epochs)
    best = max(r["val_mAP"] for r in epochs)
    assert f"vidcls train: done, best mAP {best:.2f};" in err
    meta = read_meta(tmp / "run" / "checkpoints" / "best")
    assert meta["multi_label"] is True and meta["best_metric"] == "mAP"
    assert meta["best"] == pytest.approx(best)


def test_predict_gives_independent_sigmoid_probabilities(run, capsys):
    tmp, cfg = run
    ckpt = tmp / "run" / "checkpoints" / "last"
    video = (tmp / "data" / "ml_val.txt").read_text().split()[0]
    video = str(tmp / "data" / video)
    pred = Predictor(ckpt)
    assert pred.multi_label
    clip, x = pred.load_clip(video)
    model, _ = load_model(ckpt)
    with torch.no_grad():
        want = model(x[None])[0].sigmoid()
    torch.testing.assert_close(pred.probabilities(clip), want)
    assert main(["predict", video, "--checkpoint", str(ckpt), "--top-k", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["multi_label"] is True
    probs = sorted(p["probability"] for p in result["predictions"])
    assert probs == pytest.approx(sorted(want.tolist()), abs=1e-5)
    assert sum(probs) != pytest.approx(1.0, abs=1e-3)  # not a softmax distribution
    assert main(["predict", video, "--checkpoint", str(ckpt)]) == 0
    assert "multi-label: each class's own probability" in capsys.readouterr().out


def test_eval_scores_map_and_writes_sigmoid_predictions(run, capsys):
    tmp, cfg = run
    out = tmp / "eval"
    assert main(["eval", str(cfg), "--checkpoint", str(tmp / "run"), "--out", str(out),
                 "--crops", "3", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "multi-label" in printed and "mAP" in printed and "top-1" not in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["multi_label"] is True and "loss" in metrics and "top1" not in metrics
    rows = json.loads((out / "predictions.json").read_text())
    assert len(rows) == metrics["num_videos"]
    classes = (tmp / "data" / "classes.txt").read_text().split("\n")
    listed = (tmp / "data" / "ml_val.txt").read_text().splitlines()
    for row, line in zip(rows, listed):
        assert row["video"].endswith(line.split()[0])
        assert row["labels"] == sorted((classes[int(t)] for t in line.split()[1:]),
                                       key=classes.index)
        assert all(0 <= p <= 1 for p in row["top5_prob"])
        assert row["pred"] == [c for c, p in zip(row["top5"], row["top5_prob"]) if p >= 0.5]


def test_multi_label_config_key(tmp_path, run):
    """data.multi_label=true makes single-label lists multi-hot; mAP is no single-label
    metric."""
    tmp, cfg = run
    single = load_config(cfg, [f"data.train_ann={tmp / 'data' / 'train.txt'}",
                               f"data.val_ann={tmp / 'data' / 'val.txt'}",
                               f"output_dir={tmp_path / 'r'}"])
    assert Trainer(single, progress=False).multi_label is False
    forced = load_config(cfg, [f"data.train_ann={tmp / 'data' / 'train.txt'}",
                               f"data.val_ann={tmp / 'data' / 'val.txt'}",
                               f"output_dir={tmp_path / 'r'}", "data.multi_label=true"])
    trainer = Trainer(forced, progress=False)
    assert trainer.multi_label and trainer.best_metric == "mAP"
    assert trainer.train_set[0]["label"].shape == (4,)  # multi-hot
    with pytest.raises(ConfigError, match="eval.best_metric: mAP needs multi-label data"):
        Trainer(load_config(cfg, [f"data.train_ann={tmp / 'data' / 'train.txt'}",
                                  f"data.val_ann={tmp / 'data' / 'val.txt'}",
                                  "eval.best_metric=mAP"]), progress=False)
