"""int8 post-training quantization of the online export (vidcls.export.quantize): the int8
step streams like the fp32 one (same top-1 on most frames of a synthetic set), keeps the
metadata a stream needs, and ``vidcls export --int8 --calibrate`` reads videos and lists and
answers bad input with one line and exit status 2."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from helpers.models import calibrated_model
from vidcls.data.writer import write_video
from vidcls.engine.checkpoint import save_model_checkpoint
from vidcls.export import OnnxStreamSession, export_onnx, read_onnx_metadata
from vidcls.export.quantize import calibration_sources, int8_agreement, quantize_online


def _clips(count: int, seed: int) -> list[np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(8, 3, 32, 32, generator=g).numpy() for _ in range(count)]


def test_int8_step_agrees_with_fp32_and_keeps_the_stream_metadata(tmp_path):
    model = calibrated_model("tsm_resnet18", num_classes=5, shift_mode="unidirectional")
    fp32 = export_onnx(model, tmp_path / "fp32.onnx", online=True, input_size=32)
    int8 = quantize_online(fp32, tmp_path / "int8.onnx", _clips(3, seed=0))
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    meta, meta_fp32 = read_onnx_metadata(int8), read_onnx_metadata(fp32)
    assert meta["kind"] == "online" and meta["state_shapes"] == meta_fp32["state_shapes"]
    assert meta["quantization"]["calibration_frames"] == 24
    session = OnnxStreamSession(int8, threads=1)
    assert session.step(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 5)
    check = int8_agreement(fp32, int8, _clips(4, seed=1))  # frames it was not calibrated on
    assert check["frames"] == 32 and check["top1_agreement"] >= 0.75
    assert 0 < check["max_prob_diff"] < 0.5  # int8 differs, but not wildly


def _video(path, frames=6):
    yy, xx = np.mgrid[0:40, 0:48]
    clip = [np.stack([(xx * 5 + 20 * t) % 256, (yy * 6) % 256, np.full_like(xx, 30 * t)], -1)
            for t in range(frames)]
    write_video(path, np.stack(clip).astype(np.uint8), fps=10)
    return path


def test_calibration_sources_read_videos_folders_and_lists(tmp_path):
    (tmp_path / "v").mkdir()
    a, b = _video(tmp_path / "v" / "a.mp4"), _video(tmp_path / "v" / "b.mp4")
    listing = tmp_path / "clips.txt"
    listing.write_text("# calibration\nv/a.mp4 3\n\nv/b.mp4\n")
    assert calibration_sources([listing]) == [a, b]  # relative to the list, label ignored
    assert calibration_sources([tmp_path / "v", a]) == [a, b, a]


def test_cli_export_int8_and_bad_calibration_input(tmp_path, capsys):
    from vidcls.cli import main

    model = calibrated_model("tsm_resnet18", num_classes=4, shift_mode="unidirectional")
    ckpt = save_model_checkpoint(tmp_path / "ckpt", model,
                                 preprocessing={"input_size": 32, "resize": 36})
    video = _video(tmp_path / "clip.mp4")
    assert main(["export", str(ckpt), "--online", "--int8", "--calibrate", str(video),
                 "--calibrate-frames", "4", "--no-verify"]) == 0
    out = capsys.readouterr().out
    assert "int8 vs fp32" in out and "4 frames of 1 clips" in out
    assert read_onnx_metadata(ckpt / "model_online_int8.onnx")["kind"] == "online"

    empty, broken, binary = (tmp_path / n for n in ("empty.txt", "broken.txt", "bin.txt"))
    empty.write_text("# nothing yet\n")
    broken.write_text("missing.mp4\n")
    binary.write_bytes(b"\xff\xfe\x00\x81")
    for args, message in [
            (["--online", "--int8"], "needs --calibrate"),
            (["--int8", "--calibrate", str(video)], "add --online"),
            (["--online", "--calibrate", str(video)], "is for --int8"),
            (["--online", "--int8", "--calibrate", str(empty)], "no calibration clips"),
            (["--online", "--int8", "--calibrate", str(broken)], "does not exist"),
            (["--online", "--int8", "--calibrate", str(binary)], "cannot read the calibration"),
            (["--online", "--int8", "--calibrate", str(tmp_path / "nope.mp4")], "does not exist"),
    ]:
        assert main(["export", str(ckpt), "--no-verify", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (args, err)


@pytest.mark.parametrize("name", ["tsm_resnet18"])
def test_int8_refuses_an_offline_export(tmp_path, name):
    model = calibrated_model(name, num_classes=3)
    path = export_onnx(model, tmp_path / "off.onnx", input_size=32)
    with pytest.raises(ValueError, match="not an online export"):
        quantize_online(path, tmp_path / "q.onnx", _clips(1, seed=0))
