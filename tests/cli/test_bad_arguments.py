"""Every subcommand given bad arguments: a non-zero exit, exactly one line on stderr that names
the problem, and no traceback (table-driven: one row per mistake a user makes)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from helpers.models import tiny_model
from helpers.videos import encode, moving_frames
from vidcls.cli import main
from vidcls.engine.checkpoint import save_model_checkpoint


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """What the rows refer to: a video, checkpoints (good, online, truncated), configs (good,
    broken YAML, empty validation list), a text file, an existing output file."""
    d = tmp_path_factory.mktemp("bad_args")
    video = encode(d / "clip.mp4", moving_frames(8, 32, 32))
    ckpt = save_model_checkpoint(d / "ckpt", tiny_model("tsm_resnet18", num_frames=2))
    online = save_model_checkpoint(d / "online", tiny_model("tsm_resnet18", num_frames=2,
                                                            shift_mode="unidirectional"))
    damaged = save_model_checkpoint(d / "damaged", tiny_model("tsn_resnet18"))
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (d / "data").mkdir()
    (d / "data" / "train.txt").write_text("clip.mp4 0\n")
    (d / "data" / "val.txt").write_text("")
    (d / "data" / "classes.txt").write_text("a\nb\nc\n")
    (d / "data" / "clip.mp4").write_bytes(video.read_bytes())
    good = d / "good.yaml"
    good.write_text(f"model:\n  name: tsn_resnet18\ndata:\n  format: list\n  root: {d / 'data'}\n"
                    f"  num_frames: 2\n  input_size: 32\n  resize: 32\n"
                    f"output_dir: {d / 'run'}\n")
    broken = d / "broken.yaml"
    broken.write_text("model:\n  name: tsn_resnet18\n   bad_indent: [1, 2\n")
    text = d / "notes.txt"
    text.write_text("not a checkpoint\n")
    existing = d / "existing.png"
    existing.write_bytes(b"png")
    return {"video": str(video), "ckpt": str(ckpt), "online": str(online),
            "damaged": str(damaged), "good": str(good), "broken": str(broken),
            "text": str(text), "existing": str(existing), "dir": str(d),
            "file_as_dir": str(text / "sub"), "missing": str(d / "missing.mp4")}


# (argv with {placeholders}, a word the one-line error must contain)
ROWS = [
    ("info no_such_model", "unknown model"),
    ("info tsm_resnet50 -o shift_div", "KEY=VALUE"),
    ("info tsm_resnet50 -o no_such_option=1", "no_such_option"),
    ("models --dataset nope", "known:"),
    ("synth {file_as_dir} --videos-per-class 2", "sub"),
    ("synth {dir}/s --num-classes 0", "num"),
    ("data check {missing}", "missing"),
    ("data info list:{missing}", "missing"),
    ("train {missing}.yaml", "missing.mp4.yaml"),
    ("train {broken}", "line"),
    ("train {good} device=tpu", "tpu"),
    ("train {good} train.lr=fast", "train.lr"),
    ("train {good} data.input_size=7", "input_size"),
    ("train {good} output_dir=", "output_dir"),
    ("train {good} no_such.key=1", "no_such"),
    ("eval {good} --checkpoint {ckpt}", "empty"),
    ("eval {good} --checkpoint {missing}", "missing"),
    ("predict {video} --checkpoint {damaged}", "damaged"),
    ("predict {video} --checkpoint {missing}", "missing"),
    ("predict {video} --checkpoint {ckpt} --device cuda", "cuda"),
    ("predict {video} --checkpoint {ckpt} --device tpu", "tpu"),
    ("predict {video}", "--checkpoint"),
    ("predict {video} --checkpoint {ckpt} --precision fp16", "fp16"),
    ("predict {video} --checkpoint {ckpt} --precision int8", "precision"),
    ("predict {video} --model no-such-model", "unknown model"),
    ("convert {good} {dir}/out1", "not a checkpoint"),
    ("convert {text} {dir}/out2", "not a checkpoint"),
    ("convert {missing} {dir}/out3", "missing"),
    ("export {missing}", "missing"),
    ("export {ckpt} --online", "unidirectional"),
    ("stream {missing} --checkpoint {online}", "missing"),
    ("stream {video} --checkpoint {online} --backend onnx --onnx {missing}.onnx", "onnx"),
    ("stream {video} --checkpoint {ckpt}", "unidirectional"),
    ("explain {video} --checkpoint {ckpt} -o {existing}", "existing"),
    ("explain {missing} --checkpoint {ckpt} -o {dir}/ex", "missing"),
    ("bench accuracy --preset nope", "nope"),
    ("bench report --accuracy {missing}", "missing"),
    ("demo --epochs 0", "epochs"),
    ("no-such-command", "no-such-command"),
]


@pytest.mark.parametrize("argv,word", ROWS, ids=[r[0].split(" {")[0] + f"-{i}"
                                                 for i, r in enumerate(ROWS)])
def test_bad_arguments_give_one_line(files, argv, word, capsys):
    args = [a.format(**files) for a in argv.split(" ")]
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert code not in (0, None), f"exit status {code}: {captured}"
    assert "Traceback" not in captured.err
    assert len(err) == 1, f"expected one line on stderr, got:\n{captured.err}"
    assert word.format(**files).lower() in err[0].lower(), err[0]
    assert err[0].startswith("vidcls"), err[0]


def test_a_real_process_prints_no_traceback(files):
    """The same rule end to end in a fresh interpreter (the import path included)."""
    result = subprocess.run([sys.executable, "-m", "vidcls", "predict", files["video"],
                             "--checkpoint", files["damaged"]], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
