"""Checkpoint I/O: safetensors + JSON round trips, atomic swaps, no unpickling."""
import json
import pickle
from pathlib import Path

import pytest
import torch

from vidcls.engine import checkpoint as ckpt
from vidcls.engine.optim import LRSchedule
from vidcls.models import create_model


def tiny_tsm(**kw):
    torch.manual_seed(0)
    return create_model("tsm_resnet18", num_classes=5, num_frames=4, **kw)


def test_model_round_trip_rebuilds_from_meta(tmp_path, monkeypatch):
    model = tiny_tsm(shift_div=4, shift_mode="unidirectional").eval()
    classes = [f"c{i}" for i in range(5)]
    path = ckpt.save_model_checkpoint(tmp_path / "ck", model, classes=classes,
                                      preprocessing={"input_size": 32, "resize": 36},
                                      epoch=3, metrics={"top1": 50.0})
    meta = json.loads((path / "meta.json").read_text())
    assert meta["model"] == {"name": "tsm_resnet18", "num_classes": 5, "num_frames": 4,
                             "shift_div": 4, "shift_mode": "unidirectional"}
    assert meta["preprocessing"]["input_size"] == 32 and meta["epoch"] == 3

    # Loading must never unpickle: make any pickle use fail loudly.
    def boom(*a, **k):
        raise AssertionError("checkpoint loading used pickle")
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(torch, "load", boom)
    loaded, meta2 = ckpt.load_model(tmp_path / "ck")
    assert meta2["classes"] == classes and loaded.classes == classes
    assert loaded.preprocessing.input_size == 32 and loaded.preprocessing.resize == 36
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert not loaded.training
    # unidirectional option survived: the shifts are really unidirectional
    assert all(s.mode == "unidirectional" for s in loaded.temporal_shifts())


def test_resolve_accepts_run_dir_file_and_old(tmp_path):
    model = tiny_tsm()
    run = tmp_path / "run"
    ckpt.save_model_checkpoint(run / "checkpoints" / "last", model)
    assert ckpt.resolve_checkpoint_dir(run) == run / "checkpoints" / "last"
    ckpt.save_model_checkpoint(run / "checkpoints" / "best", model)
    assert ckpt.resolve_checkpoint_dir(run) == run / "checkpoints" / "best"
    f = run / "checkpoints" / "best" / "model.safetensors"
    assert ckpt.resolve_checkpoint_dir(f) == f.parent
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        ckpt.resolve_checkpoint_dir(tmp_path / "missing")


def test_swap_is_atomic_under_crashes(tmp_path):
    """A crash at any point of the swap leaves a loadable checkpoint (old or new)."""
    model = tiny_tsm()
    target = tmp_path / "last"
    ckpt.save_model_checkpoint(target, model, epoch=1)
    # crash while assembling the new one: a half-written .tmp dir is ignored and replaced
    tmp = target.with_name("last.tmp")
    tmp.mkdir()
    (tmp / "model.safetensors").write_bytes(b"garbage")
    assert ckpt.read_meta(target)["epoch"] == 1
    ckpt.save_model_checkpoint(target, model, epoch=2)
    assert ckpt.read_meta(target)["epoch"] == 2 and not tmp.exists()
    # crash between "last -> last.old" and "last.tmp -> last": only last.old exists
    target.rename(target.with_name("last.old"))
    assert ckpt.read_meta(target)["epoch"] == 2
    assert ckpt.load_model(target)[1]["epoch"] == 2
    ckpt.save_model_checkpoint(target, model, epoch=3)
    assert ckpt.read_meta(target)["epoch"] == 3
    assert not target.with_name("last.old").exists()
    assert not any(p.name.startswith(".") for p in target.iterdir())  # no temp files left


def test_foreign_meta_rejected(tmp_path):
    model = tiny_tsm()
    path = ckpt.save_model_checkpoint(tmp_path / "ck", model)
    meta = json.loads((path / "meta.json").read_text())
    meta["format"] = "something-else"
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="not a vidcls checkpoint"):
        ckpt.load_model(path)


def test_meta_requires_matching_class_names():
    with pytest.raises(ValueError, match="3 class names for a model with 5 classes"):
        ckpt.build_meta(tiny_tsm(), classes=["a", "b", "c"])


@pytest.mark.parametrize("opt_name", ["sgd", "adamw"])
def test_train_state_round_trip_continues_identically(tmp_path, opt_name):
    """Restored optimizer/scheduler/RNG state gives the same next steps as the original."""
    def make():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8),
                                  torch.nn.Linear(8, 3))
        if opt_name == "sgd":
            opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        else:
            opt = torch.optim.AdamW(net.parameters(), lr=0.01, betas=(0.8, 0.99))
        sched = LRSchedule(opt, kind="cosine", steps_per_epoch=2, epochs=3, warmup_epochs=1)
        return net, opt, sched

    def step(net, opt, sched):
        x = torch.randn(4, 6)  # consumes the torch RNG: checks the RNG restore too
        net(x).square().mean().backward()
        opt.step()
        opt.zero_grad()
        sched.step()

    net, opt, sched = make()
    for _ in range(3):
        step(net, opt, sched)
    tensors, obj = ckpt.pack_train_state(optimizer=opt, scheduler=sched,
                                         progress={"epoch": 1})
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    json.dumps(obj)  # all JSON-able
    for _ in range(3):
        step(net, opt, sched)
    expected = {k: v.clone() for k, v in net.state_dict().items()}

    net2, opt2, sched2 = make()
    torch.manual_seed(123)  # scramble the RNG: restore must fix it
    net2.load_state_dict(weights)
    from safetensors.torch import load, save
    tensors = load(save(tensors))
    obj = json.loads(json.dumps(obj))
    prog = ckpt.restore_train_state(tensors, obj, optimizer=opt2, scheduler=sched2)
    assert prog == {"epoch": 1} and sched2.last_step == 3
    for _ in range(3):
        step(net2, opt2, sched2)
    for k in expected:
        torch.testing.assert_close(net2.state_dict()[k], expected[k], rtol=0, atol=0)


FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint_v0_1_timesformer_tiny"


def test_a_checkpoint_written_by_v0_1_still_loads_and_predicts_the_same():
    """``fixtures/checkpoint_v0_1_timesformer_tiny`` was written by ``vidcls train`` of release
    0.1 (before the restructuring); its logits on a fixed input were recorded then."""

    model, meta = ckpt.load_model(FIXTURE)
    expected = json.loads((FIXTURE / "expected_logits.json").read_text())
    x = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), torch.tensor(expected["logits"]), rtol=0,
                                   atol=1e-6)
    prep = model.preprocessing
    assert (prep.input_size, prep.resize, prep.num_frames, prep.sampling) == (32, 32, 4, "segment")
    assert model.classes == ["moving right", "moving left", "approaching", "receding"]
    assert meta["model"]["name"] == "timesformer_base"


def test_a_misspelled_preprocessing_key_in_meta_is_an_error(tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(FIXTURE, bad)
    meta = json.loads((bad / "meta.json").read_text())
    meta["preprocessing"]["frame_intervall"] = 2
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"meta.json.*unknown key\(s\) \['frame_intervall'\]"):
        ckpt.load_model(bad)


@pytest.mark.parametrize("keep", [0.5, 5 / 1e9])
def test_a_truncated_weight_file_is_named_as_damaged(tmp_path, keep, capsys):
    """A half-copied model.safetensors: one line naming the checkpoint and the damage, from
    load_model, init_from_checkpoint and the CLI."""
    from vidcls.cli import main

    path = ckpt.save_model_checkpoint(tmp_path / "ck", tiny_tsm())
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: max(5, int(len(data) * keep))])
    with pytest.raises(ValueError) as err:
        ckpt.load_model(path)
    msg = str(err.value)
    assert msg.startswith(f"checkpoint {path} is damaged (truncated model.safetensors): ")
    assert "copy or convert it again" in msg and "\n" not in msg
    with pytest.raises(ValueError, match=r"is damaged \(truncated model.safetensors\)"):
        ckpt.init_from_checkpoint(tiny_tsm(), path)
    assert main(["predict", str(tmp_path / "v.mp4"), "--checkpoint", str(path)]) == 2
    out = capsys.readouterr().err
    assert out.startswith("vidcls predict: error: checkpoint ") and out.count("\n") == 1


def test_an_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """An exception or Ctrl-C while the files are written: the half-written NAME.tmp is
    removed and NAME is still the previous checkpoint."""
    first = tiny_tsm()
    path = ckpt.save_model_checkpoint(tmp_path / "last", first, epoch=1)
    real_write = ckpt.atomic_write_bytes
    calls = []

    def interrupted(p, data):
        calls.append(p)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_write(p, data)

    monkeypatch.setattr(ckpt, "atomic_write_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_model_checkpoint(tmp_path / "last", tiny_tsm(), epoch=2)
    assert not (tmp_path / "last.tmp").exists()
    assert ckpt.read_meta(path)["epoch"] == 1
    model, _ = ckpt.load_model(path)
    for k, v in first.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
