"""End to end on a tiny synthetic dataset: train -> eval -> predict (TSM and TimeSformer),
corrupt files, NaN handling, signals and bit-exact resume after SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import vidcls
import vidcls.predict  # noqa: F401  (the module is callable: vidcls.predict(...))
from vidcls.cli import main
from vidcls.data.synthetic import generate
from vidcls.engine.checkpoint import load_model, read_meta
from vidcls.engine.config import load_config
from vidcls.engine.trainer import TrainingDiverged, fit

REPO = Path(__file__).resolve().parents[2]
TINY_TIMESFORMER = {"name": "timesformer_base", "embed_dim": 32, "depth": 2, "num_heads": 2,
                    "patch_size": 8, "img_size": 32, "drop_path_rate": 0.0}



@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    info = generate(root, "temporal", num_classes=4, videos_per_class=5, num_frames=8, size=32,
                    workers=1)
    assert info["num_train"] == 16 and info["num_val"] == 4
    return root


def write_config(path: Path, root: Path, out: Path, model: dict, **sections) -> Path:
    cfg = {
        "model": model,
        "data": {"format": "list", "root": str(root), "num_frames": 4, "batch_size": 4,
                 "workers": 0, "input_size": 32, "resize": 32, "crop": "multiscale",
                 "flip": False, **sections.pop("data", {})},
        "train": {"epochs": 2, "optimizer": "sgd", "lr": 0.01, "log_every": 1,
                  "tensorboard": False, **sections.pop("train", {})},
        "output_dir": str(out), "device": "cpu", "seed": 1, **sections,
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("model, train", [
    ({"name": "tsm_resnet18", "dropout": 0.2}, {"channels_last": True, "partial_bn": True}),
    (TINY_TIMESFORMER, {"precision": "bf16", "optimizer": "adamw", "lr": 1e-3}),
], ids=["tsm", "timesformer-bf16"])
def test_train_eval_predict(tmp_path, synth, model, train, capsys):
    out = tmp_path / "run"
    cfg_path = write_config(tmp_path / "c.yaml", synth, out, model,
                            train={"tensorboard": True, **train})
    assert main(["train", str(cfg_path), "--no-progress"]) == 0
    # run directory: resolved config, metrics log, TensorBoard, last + best checkpoints
    assert load_config(out / "config.yaml").model.name == model["name"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert all(0 <= r["val_top1"] <= 100 and r["train_loss"] > 0 for r in epochs)
    assert any(r["kind"] == "train" and "clips_per_s" in r for r in records)
    assert list((out / "tensorboard").iterdir())
    for name in ("last", "best"):
        assert (out / "checkpoints" / name / "model.safetensors").is_file()
    assert (out / "checkpoints" / "last" / "train_state.json").is_file()
    meta = read_meta(out / "checkpoints" / "last")
    assert meta["classes"] == (synth / "classes.txt").read_text().split("\n")[:4]
    assert meta["epoch"] == 2 and meta["preprocessing"]["num_frames"] == 4
    assert meta["preprocessing"]["input_size"] == 32

    # eval: multi-view, all output files; top-1 matches a recomputation from predictions
    eval_dir = tmp_path / "eval"
    capsys.readouterr()
    assert main(["eval", str(cfg_path), "--checkpoint", str(out), "--out", str(eval_dir),
                 "--clips", "2", "--crops", "3", "--json", "--no-progress"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["views"] == 6 and metrics["num_videos"] == 4
    for f in ("metrics.json", "predictions.csv", "predictions.json", "confusion_matrix.csv",
              "confusion_matrix.png"):
        assert (eval_dir / f).is_file(), f
    preds = json.loads((eval_dir / "predictions.json").read_text())
    assert len(preds) == 4
    assert metrics["top1"] == pytest.approx(100 * sum(p["correct"] for p in preds) / 4)
    cm_rows = (eval_dir / "confusion_matrix.csv").read_text().strip().split("\n")
    assert len(cm_rows) == 5 and sum(int(v) for r in cm_rows[1:] for v in r.split(",")[1:]) == 4

    # predict: CLI JSON and the Python API agree with eval's 1-view scores
    video = preds[0]["video"]
    capsys.readouterr()
    assert main(["predict", video, "--checkpoint", str(out / "checkpoints" / "last"),
                 "--top-k", "3", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    api = vidcls.predict([video], out / "checkpoints" / "last", top_k=3)
    assert cli == api == vidcls.predict.predict(video, out / "checkpoints" / "last", top_k=3)
    assert len(api[0]["predictions"]) == 3
    both = vidcls.predict([video, tmp_path / "missing.mp4"], out / "checkpoints" / "last")
    assert both[0]["predictions"] and both[1]["predictions"] == []
    assert both[1]["error"] == "file not found"
    probs = [p["probability"] for p in api[0]["predictions"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    # independent recomputation: decode + preprocess by hand, run the loaded model
    model_, meta = load_model(out / "checkpoints" / "last")
    from vidcls.data.video import open_video

    with open_video(video) as reader:
        n = reader.num_frames
        tick = n / 4
        frames = reader.get_frames([int(tick * i + tick / 2) for i in range(4)])  # (4, H, W, 3)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255  # (T, 3, 32, 32)
    mean = torch.tensor(meta["preprocessing"]["mean"]).view(3, 1, 1)
    std = torch.tensor(meta["preprocessing"]["std"]).view(3, 1, 1)
    with torch.no_grad():
        p = model_(((x - mean) / std)[None]).softmax(-1)[0]
    top = p.topk(3)
    assert [d["index"] for d in api[0]["predictions"]] == top.indices.tolist()
    assert probs == pytest.approx(top.values.tolist(), abs=1e-5)


def test_gradient_accumulation_matches_large_batch(tmp_path, synth):
    """batch 2 x 2 accumulation steps == batch 4 (LayerNorm model: no batch statistics)."""
    weights = []
    for batch, accum in ((4, 1), (2, 2)):
        out = tmp_path / f"b{batch}"
        cfg = load_config(write_config(tmp_path / "c.yaml", synth, out, TINY_TIMESFORMER,
                                       data={"batch_size": batch},
                                       train={"accumulate_steps": accum, "epochs": 1,
                                              "momentum": 0.9, "tensorboard": False}))
        result = fit(cfg, progress=False)
        assert result.epochs_done == 1
        weights.append(load_file(out / "checkpoints" / "last" / "model.safetensors"))
    worst = max((weights[0][k] - weights[1][k]).abs().max().item() for k in weights[0])
    assert worst < 1e-5


def test_pretrained_imagenet_weights_are_loaded(tmp_path, synth):
    """model.pretrained: a torchvision-named ResNet-18 file initialises the backbone."""
    from safetensors.torch import save_file

    from vidcls.engine.trainer import Trainer
    from vidcls.models import create_model

    torch.manual_seed(123)
    donor = create_model("tsn_resnet18", num_classes=4).backbone.state_dict()
    donor = {k: v for k, v in donor.items()}
    donor["fc.weight"] = torch.zeros(1000, 512)  # an ImageNet classifier is skipped
    donor["fc.bias"] = torch.zeros(1000)
    path = tmp_path / "resnet18-imagenet.safetensors"
    save_file(donor, str(path))
    cfg = load_config(write_config(tmp_path / "c.yaml", synth, tmp_path / "run",
                                   {"name": "tsm_resnet18", "pretrained": str(path)}))
    trainer = Trainer(cfg, progress=False)
    got = trainer.model.backbone.state_dict()
    for k in ("conv1.weight", "layer1.0.conv1.weight", "layer4.1.bn2.running_var"):
        assert torch.equal(got[k], donor[k]), k
    bad = load_config(write_config(tmp_path / "c.yaml", synth, tmp_path / "run",
                                   {"name": "tsm_resnet18", "pretrained": "missing.pth"}))
    with pytest.raises(ValueError, match="model.pretrained: file 'missing.pth' not found"):
        Trainer(bad, progress=False)


def test_corrupt_files_train_to_the_end(tmp_path, synth, capsys):
    """Unreadable videos are replaced, reported at epoch end, and never stop the run."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "videos").symlink_to(synth / "videos")
    (data / "classes.txt").write_text((synth / "classes.txt").read_text())
    (data / "empty.mp4").write_bytes(b"")
    (data / "text.mp4").write_text("this is not a video\n")
    good = (synth / "videos" / "c00_00000.mp4").read_bytes()
    (data / "truncated.mp4").write_bytes(good[: len(good) // 3])
    train = (synth / "train.txt").read_text()
    (data / "train.txt").write_text(train + "empty.mp4 0\ntext.mp4 1\nmissing.mp4 2\n")
    (data / "val.txt").write_text((synth / "val.txt").read_text() + "truncated.mp4 3\n")
    out = tmp_path / "run"
    cfg = write_config(tmp_path / "c.yaml", data, out, {"name": "tsm_resnet18"},
                       train={"epochs": 1})
    assert main(["train", str(cfg), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "3 unreadable training file(s) were replaced by other clips" in err
    for name in ("empty.mp4", "text.mp4", "missing.mp4"):
        assert name in err
    # validation does not score a replacement clip under the bad file's name: it skips it
    assert "1 unreadable validation file(s) were skipped (not scored):" in err
    assert "truncated.mp4" in err and "skipped: 1" in err
    record = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert record["kind"] == "epoch" and record["bad_files"] == 4
    assert record["val_skipped"] == 1 and record["val_num_videos"] == 4
    assert (out / "checkpoints" / "last" / "model.safetensors").is_file()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, synth):
    out = tmp_path / "run"
    cfg = load_config(write_config(tmp_path / "c.yaml", synth, out, {"name": "tsm_resnet18"},
                                   train={"epochs": 3}))
    torch.manual_seed(0)
    from vidcls.models import create_model

    model = create_model("tsm_resnet18", num_classes=4, num_frames=4)
    calls = {"n": 0}
    real_head = model.forward_head

    def head(feats, *a, **k):  # the loss turns NaN in epoch 2 (4 training steps per epoch)
        logits = real_head(feats, *a, **k)
        if model.training:
            calls["n"] += 1
            if calls["n"] == 6:
                return logits * float("nan")
        return logits
    model.forward_head = head
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2.*last good "
                                               r"checkpoint is kept"):
        fit(cfg, model=model, progress=False)
    last = out / "checkpoints" / "last"
    assert read_meta(last)["epoch"] == 1
    weights = load_file(last / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


# --------------------------------------------------------------------------------------
# Resume exactness (subprocesses: a real SIGKILL / SIGTERM)
# --------------------------------------------------------------------------------------

def _train_cmd(cfg: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vidcls", "train", str(cfg), "--no-progress", *extra]


def _env():
    # same thread count in every run: float sums are only reproducible with the same split
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _wait_for(predicate, proc, timeout=120.0):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return True
        if proc.poll() is not None:
            return predicate()
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the training subprocess")


def _epoch_of(out: Path) -> int:
    try:
        return json.loads((out / "checkpoints" / "last" / "meta.json").read_text())["epoch"]
    except (FileNotFoundError, ValueError):
        return -1


@pytest.fixture(scope="module")
def resume_setup(synth, tmp_path_factory):
    """One uninterrupted 3-epoch run (dropout, random crops and flips all active)."""
    tmp = tmp_path_factory.mktemp("resume")
    cfg = write_config(tmp / "c.yaml", synth, tmp / "full",
                       {"name": "tsm_resnet18", "dropout": 0.5},
                       data={"flip": True, "flip_label_map": {0: 1}},
                       train={"epochs": 3, "deterministic": True, "momentum": 0.9,
                              "scheduler": "cosine", "warmup_epochs": 1})
    subprocess.run(_train_cmd(cfg), check=True, env=_env(), capture_output=True)
    full = load_file(tmp / "full" / "checkpoints" / "last" / "model.safetensors")
    return tmp, cfg, full


def _assert_bit_identical(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"


def test_resume_after_sigkill_is_bit_exact(resume_setup):
    tmp, cfg, full = resume_setup
    out = tmp / "killed"
    proc = subprocess.Popen(_train_cmd(cfg, f"output_dir={out}"), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: _epoch_of(out) >= 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _epoch_of(out)
    assert 1 <= killed_at < 3, "the run must be killed before it finishes"
    done = subprocess.run(_train_cmd(cfg, f"output_dir={out}", "--resume"), env=_env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"resumed from {out / 'checkpoints' / 'last'} at epoch {killed_at + 1}" in done.stderr
    _assert_bit_identical(load_file(out / "checkpoints" / "last" / "model.safetensors"), full)
    history = read_meta(out / "checkpoints" / "last")
    assert history["epoch"] == 3


def test_sigterm_saves_mid_epoch_and_resume_is_exact(resume_setup):
    tmp, cfg, full = resume_setup
    out = tmp / "term"
    proc = subprocess.Popen(_train_cmd(cfg, f"output_dir={out}"), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    # wait for the second optimizer step of epoch 2 (4 steps per epoch), then stop
    _wait_for(lambda: metrics.exists() and '"step": 6,' in metrics.read_text(), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "continue with --resume" in err
    meta = read_meta(out / "checkpoints" / "last")
    assert meta["epoch"] == 1 and meta["batches_done"] in (2, 3)  # position inside epoch 2
    done = subprocess.run(_train_cmd(cfg, f"output_dir={out}", "--resume"), env=_env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    _assert_bit_identical(load_file(out / "checkpoints" / "last" / "model.safetensors"), full)


# ------------------------------------------------------------------ train --init (fine-tuning)
def test_init_from_checkpoint_keeps_backbone_and_renews_a_new_head(tmp_path, synth):
    from vidcls.engine.checkpoint import init_from_checkpoint, save_model_checkpoint
    from vidcls.engine.trainer import Trainer
    from vidcls.models import create_model

    torch.manual_seed(3)
    source = create_model("tsm_resnet18", num_classes=7, num_frames=4)   # e.g. a converted model
    save_model_checkpoint(tmp_path / "src", source, classes=[f"c{i}" for i in range(7)])
    cfg_path = write_config(tmp_path / "c.yaml", synth, tmp_path / "run",
                            {"name": "tsm_resnet18"}, train={"epochs": 1})
    cfg = load_config(cfg_path, [f"model.init={tmp_path / 'src'}"])
    trainer = Trainer(cfg, progress=False)          # 4 classes: the 7-class head is not taken
    ours, theirs = trainer.model.state_dict(), source.state_dict()
    assert ours["head.weight"].shape == (4, 512)
    for key, value in theirs.items():
        if not key.startswith("head."):
            assert torch.equal(ours[key], value), key

    # the CLI flag goes through the same path and trains to the end
    assert main(["train", str(cfg_path), "--init", str(tmp_path / "src"), "--no-progress"]) == 0

    # the wrong architecture is a clear error, not a silent partial load
    vit = create_model("timesformer_base", num_classes=4, num_frames=4,
                       **{k: v for k, v in TINY_TIMESFORMER.items() if k != "name"})
    with pytest.raises(ValueError, match="does not fit model tsm_resnet18"):
        init_from_checkpoint(create_model("tsm_resnet18", num_classes=4),
                             save_model_checkpoint(tmp_path / "vit", vit))
    assert main(["train", str(cfg_path), "--init", str(tmp_path / "nowhere")]) == 2


def test_init_resamples_timesformer_embeddings(tmp_path):
    from vidcls.engine.checkpoint import init_from_checkpoint, save_model_checkpoint
    from vidcls.models import create_model

    arch = {k: v for k, v in TINY_TIMESFORMER.items() if k != "name"}
    source = create_model("timesformer_base", num_classes=4, num_frames=4, **arch)
    torch.nn.init.normal_(source.time_embed)
    path = save_model_checkpoint(tmp_path / "vit", source)
    target = create_model("timesformer_base", num_classes=4, num_frames=8,
                          **{**arch, "img_size": 48})
    assert init_from_checkpoint(target, path) == []
    assert target.time_embed.shape[1] == 8 and target.pos_embed.shape[1] == 1 + 6 * 6
    torch.testing.assert_close(target.time_embed.mean(1), source.time_embed.mean(1))


def test_train_precision_auto_follows_the_device(tmp_path, synth, monkeypatch):
    """train.precision=auto resolves like inference's auto (bf16 where native, else fp32;
    VIDCLS_PRECISION pins it), and the resolved precision is what training autocasts with."""
    from vidcls.engine.runtime import native_bf16
    from vidcls.engine.trainer import Trainer

    cfg = load_config(write_config(tmp_path / "c.yaml", synth, tmp_path / "run", TINY_TIMESFORMER,
                                   train={"precision": "auto", "epochs": 1}))
    assert Trainer(cfg, progress=False).precision == "fp32"  # the suite pins auto = fp32
    monkeypatch.setenv("VIDCLS_PRECISION", "bf16")
    assert Trainer(cfg, progress=False).precision == "bf16"
    monkeypatch.delenv("VIDCLS_PRECISION")
    want = "bf16" if native_bf16("cpu") else "fp32"
    assert Trainer(cfg, progress=False).precision == want
