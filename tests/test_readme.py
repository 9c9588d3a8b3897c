"""Every command in README.md works as written: the test reads the ```bash blocks of the README
itself and runs them in order, in one scratch directory, at toy size.

"At toy size" is the only change: :data:`TOY` gives each README command the arguments that make
it small (appended, or a word replaced), and :data:`PLACEHOLDERS` the files the README leaves to
the reader (``video.mp4``, a downloaded checkpoint). A README command without a ``TOY`` row, or a
row no README command uses, fails the test, so the README and this test cannot drift apart.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.file_server import FileServer
from helpers.videos import encode, moving_frames
from helpers.zoo_files import write_entry_source
from vidcls.cli import main
from vidcls.zoo import get_entry

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

_TINY_TRAIN = ["train.epochs=1", "data.batch_size=2", "eval.batch_size=2"]
# README command -> (replacements {old word: new word}, extra arguments)
TOY: dict[str, tuple[dict[str, str], list[str]]] = {
    "vidcls predict my_video.mp4 --model tsm-r50-kinetics400": ({}, []),
    "vidcls models": ({}, []),
    "vidcls models --dataset sthv2 --json": ({}, []),
    "vidcls synth data/temporal --kind temporal":
        ({}, ["--num-classes", "4", "--videos-per-class", "4", "--frames", "8"]),
    "vidcls data check list:data/temporal/train.txt": ({}, []),
    "vidcls train configs/demo_tsm.yaml data.root=data/temporal output_dir=runs/tsm "
    "train.epochs=5": ({"train.epochs=5": "train.epochs=1"}, _TINY_TRAIN[1:]),
    "torchrun --nproc_per_node 2 -m vidcls train configs/demo_tsm.yaml data.root=data/temporal "
    "output_dir=runs/tsm_ddp": ({}, _TINY_TRAIN + ["--no-progress"]),
    "vidcls eval configs/demo_tsm.yaml data.root=data/temporal --checkpoint runs/tsm --crops 3":
        ({}, ["eval.batch_size=2", "--no-progress"]),
    "vidcls predict video.mp4 --checkpoint runs/tsm --top-k 5 --json": ({}, []),
    "vidcls predict --list data/temporal/train.txt --output preds.jsonl --checkpoint runs/tsm":
        ({}, ["--workers", "0", "--no-progress"]),
    "vidcls convert TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50.pth tsm_k400":
        ({}, []),
    "vidcls export tsm_k400 --format onnx": ({}, ["--input-size", "64", "--num-frames", "2"]),
    "vidcls export runs/tsm --format onnx --online": ({}, []),
    "vidcls export runs/tsm --format onnx --online --int8 --calibrate data/temporal/train.txt":
        ({}, ["--calibrate-frames", "4"]),
    "vidcls stream video.mp4 --checkpoint runs/tsm --backend onnx --output annotated.mp4":
        ({}, ["--max-frames", "6"]),
    "vidcls bench accuracy --preset small": ({"small": "toy"}, ["--only", "table1", "--jobs", "1"]),
    "vidcls bench cost": ({}, ["--quick", "--max-seconds", "0.01", "--no-sweep", "--dtypes",
                               "fp32", "--threads", "1"]),
    "vidcls bench report": ({}, ["--accuracy", "runs/bench/accuracy-toy/results.jsonl",
                                 "--no-explain"]),
    "vidcls explain video.mp4 --checkpoint runs/tsm --output explain/": ({}, []),
}
#: not run here, with the reason
NOT_RUN = {
    "make demo": "the 10-minute demo itself; tests/test_demo.py runs `vidcls demo --quick`",
    "make test": "this test suite",
    "vidcls serve --model tsm-r50-kinetics400 --checkpoint runs/tsm":
        "a server that runs until stopped; tests/serve/test_cli.py starts `vidcls serve` "
        "and stops it",
    "curl -F file=@video.mp4 http://127.0.0.1:8000/v1/predict":
        "needs the server above; tests/serve/test_api.py posts uploads the same way",
}


def readme_commands() -> list[str]:
    """The commands of the README's ```bash blocks, comments and continuation lines dropped."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            command = line.split("  #")[0].split(" # ")[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def test_every_readme_command_has_a_toy_row_and_every_row_a_command():
    commands = readme_commands()
    missing = [c for c in commands if c not in TOY and c not in NOT_RUN]
    unused = [c for c in [*TOY, *NOT_RUN] if c not in commands]
    assert not missing, f"README commands without a TOY row in {__file__}: {missing}"
    assert not unused, f"TOY rows no README command uses any more: {unused}"


def _toy_argv(command: str) -> list[str]:
    replace, extra = TOY[command]
    return [replace.get(word, word) for word in shlex.split(command)] + extra


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A user's directory: the repo's configs, a video of their own, a downloaded TSM
    checkpoint, and the zoo served from 127.0.0.1 through the mirror."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    frames = moving_frames(16, 48, 64)
    encode(tmp_path / "video.mp4", frames)
    encode(tmp_path / "my_video.mp4", frames)
    entry = get_entry("tsm-r50-kinetics400")
    www = tmp_path / "mirror"
    published = write_entry_source(entry, www, www / "hub")
    shutil.copy(published, tmp_path / entry.filename)  # "downloaded by hand" for `convert`
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIDCLS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VIDCLS_OFFLINE", raising=False)
    with FileServer(www) as server:
        monkeypatch.setenv("VIDCLS_MIRROR", server.url + "/")
        yield tmp_path


def test_readme_commands_run_as_written(workdir, capsys):
    for command in readme_commands():
        if command in NOT_RUN:
            continue
        argv = _toy_argv(command)
        if argv[0] == "torchrun":
            result = subprocess.run([sys.executable, "-m", "torch.distributed.run", *argv[1:]],
                                    capture_output=True, text=True, timeout=300,
                                    env={**os.environ, "OMP_NUM_THREADS": "1"})
            assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
            continue
        assert argv[0] == "vidcls", command
        try:
            code = main(argv[1:])
        except SystemExit as exit_:
            code = exit_.code
        out = capsys.readouterr()
        assert code == 0, f"`{' '.join(argv)}` exited {code}:\n{out.err[-3000:]}"
    # what the README says the commands leave behind
    assert (workdir / "runs/tsm/checkpoints/last/meta.json").is_file()
    assert len((workdir / "preds.jsonl").read_text().splitlines()) == len(
        (workdir / "data/temporal/train.txt").read_text().splitlines())
    assert (workdir / "runs/tsm_ddp/checkpoints/last/meta.json").is_file()
    assert (workdir / "tsm_k400/model.onnx").is_file()
    assert (workdir / "annotated.mp4").is_file()
    assert (workdir / "explain/explain.png").is_file()
    assert (workdir / "docs/results.md").is_file()
