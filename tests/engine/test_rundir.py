"""The run directory: one training at a time (a lock naming its holder), no silent overwrite
of a run (``--resume`` / ``--overwrite``), resume refuses changed settings, and a second Ctrl-C
while a checkpoint is written keeps the previous one."""
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vidcls.cli import main
from vidcls.data.synthetic import generate
from vidcls.engine import checkpoint as ckpt_module
from vidcls.engine.checkpoint import load_model, read_meta
from vidcls.engine.config import load_config
from vidcls.engine.rundir import LOCK_FILE, RunDirError, RunDirLock
from vidcls.engine.trainer import Trainer, fit


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate(root, "temporal", num_classes=4, videos_per_class=3, num_frames=8, size=32,
             workers=1)
    return root


def write_config(tmp_path: Path, root: Path, **train) -> Path:
    cfg = {"model": {"name": "tsm_resnet18"},
           "data": {"format": "list", "root": str(root), "num_frames": 4, "batch_size": 4,
                    "workers": 0, "input_size": 32, "resize": 32, "flip": False},
           "train": {"epochs": 1, "optimizer": "sgd", "lr": 0.01, "log_every": 1,
                     "tensorboard": False, "max_steps_per_epoch": 1, **train},
           "output_dir": str(tmp_path / "run"), "device": "cpu", "seed": 1}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def epochs_logged(run: Path) -> list[int]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r["epoch"] for r in map(json.loads, lines) if r["kind"] == "epoch"]


def test_a_second_training_into_a_locked_run_dir_stops_at_once(tmp_path, synth, capsys):
    run = tmp_path / "run"
    cfg = write_config(tmp_path, synth)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom vidcls.engine.rundir import RunDirLock\n"
         "RunDirLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(120)",
         str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["train", str(cfg), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert (f"vidcls train: error: output_dir {run} is in use by another training "
                f"(pid {holder.pid} on {socket.gethostname()}, started ") in err
        assert "another output_dir" in err
        assert not (run / "config.yaml").exists() and not (run / "checkpoints").exists()
        with pytest.raises(RunDirError, match=f"pid {holder.pid}"):
            RunDirLock(run).acquire()
    finally:
        holder.kill()  # SIGKILL: the lock file stays behind, the kernel's lock does not
        holder.wait()
    assert (run / LOCK_FILE).is_file()
    assert main(["train", str(cfg), "--no-progress"]) == 0  # a stale file blocks nobody
    assert not (run / LOCK_FILE).exists()  # removed when the run ends


def test_the_lock_is_held_for_the_whole_run(tmp_path, synth, monkeypatch):
    run = tmp_path / "run"
    seen = []
    real_validate = Trainer.validate

    def validate(self):
        try:
            RunDirLock(run).acquire().release()
            seen.append("free")
        except RunDirError as err:
            seen.append(str(err))
        return real_validate(self)

    monkeypatch.setattr(Trainer, "validate", validate)
    fit(load_config(write_config(tmp_path, synth)), progress=False)
    assert len(seen) == 1 and f"pid {os.getpid()} on {socket.gethostname()}" in seen[0]
    RunDirLock(run).acquire().release()  # free again afterwards


def test_an_existing_run_needs_resume_or_overwrite(tmp_path, synth, capsys):
    run = tmp_path / "run"
    cfg = write_config(tmp_path, synth)
    assert main(["train", str(cfg), "--no-progress"]) == 0
    last = run / "checkpoints" / "last"
    before = {p.name: p.read_bytes() for p in last.iterdir()}
    capsys.readouterr()
    assert main(["train", str(cfg), "--no-progress", "train.lr=0.02"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (f"vidcls train: error: output_dir {run} already holds a training run ({last}); "
            f"continue it with --resume, replace it with --overwrite, or train into another "
            f"output_dir") in err
    assert {p.name: p.read_bytes() for p in last.iterdir()} == before  # untouched
    assert epochs_logged(run) == [1]
    # --overwrite replaces the run: new checkpoints, a new metrics log (not appended to)
    assert main(["train", str(cfg), "--no-progress", "--overwrite", "train.lr=0.02"]) == 0
    assert "replacing the previous run" in capsys.readouterr().err
    assert epochs_logged(run) == [1]
    assert read_meta(last)["config"]["train"]["lr"] == 0.02
    # --resume continues it (here: it is finished, so nothing more to do) ...
    assert main(["train", str(cfg), "--no-progress", "--resume", "train.lr=0.02"]) == 0
    # ... and may run it longer
    assert main(["train", str(cfg), "--no-progress", "--resume", "train.lr=0.02",
                 "train.epochs=2"]) == 0
    assert epochs_logged(run) == [1, 2] and read_meta(last)["epoch"] == 2


def test_resume_with_another_optimizer_names_the_changed_settings(tmp_path, synth, capsys):
    cfg = write_config(tmp_path, synth, epochs=2)
    out = tmp_path / "run"
    code = main(["train", str(cfg), "--no-progress", "train.epochs=1"])
    assert code == 0
    capsys.readouterr()
    assert main(["train", str(cfg), "--no-progress", "--resume", "train.optimizer=adamw",
                 "train.weight_decay=0.05"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "KeyError" not in err
    assert (f"cannot resume {out / 'checkpoints' / 'last'}: these settings differ from the "
            f"saved run ({out / 'config.yaml'}): train.optimizer 'sgd' -> 'adamw', "
            f"train.weight_decay 0.0001 -> 0.05; resume with the saved settings, or start "
            f"fresh with --overwrite or another output_dir") in err
    assert main(["train", str(cfg), "--no-progress", "--overwrite",
                 "train.optimizer=adamw"]) == 0


def test_second_ctrl_c_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, synth,
                                                                        monkeypatch, capsys):
    """Ctrl-C in epoch 2 asks for a checkpoint; a second Ctrl-C arrives while it is written:
    the half-written one is dropped, epoch 1's stays, the exit is one line (status 130)."""
    cfg = write_config(tmp_path, synth, epochs=3)
    last = tmp_path / "run" / "checkpoints" / "last"
    armed = {"second": False}
    real_write = ckpt_module.atomic_write_bytes

    def write(path, data):
        if armed["second"]:
            armed["second"] = False
            os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, in the middle of the write
        return real_write(path, data)

    real_epoch = Trainer.train_epoch

    def epoch(self, logger, stop):
        if self.epoch == 1:  # epoch 2: the first Ctrl-C, the loop stops after one step
            os.kill(os.getpid(), signal.SIGINT)
            armed["second"] = True
        return real_epoch(self, logger, stop)

    monkeypatch.setattr(ckpt_module, "atomic_write_bytes", write)
    monkeypatch.setattr(Trainer, "train_epoch", epoch)
    try:
        code = main(["train", str(cfg), "--no-progress"])
    except KeyboardInterrupt:
        pytest.fail("the second Ctrl-C escaped as a KeyboardInterrupt traceback")
    assert code == 128 + signal.SIGINT
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"vidcls train: aborted by a second Ctrl-C; nothing was saved since the "
                       f"last checkpoint, which is intact ({last}, epoch 1; continue with "
                       f"--resume)")
    assert read_meta(last)["epoch"] == 1 and read_meta(last)["batches_done"] == 0
    assert not (last.parent / "last.tmp").exists() and not (last.parent / "last.old").exists()
    load_model(last)
    monkeypatch.undo()
    assert main(["train", str(cfg), "--no-progress", "--resume"]) == 0
    assert read_meta(last)["epoch"] == 3
