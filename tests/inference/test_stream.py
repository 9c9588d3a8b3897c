"""``vidcls stream`` on generated videos and frame folders, with both backends: per-frame
outputs equal the offline unidirectional model on the same preprocessed frames, smoothing is
the mean of the last k logits, ``output=`` writes the annotated video, and the CLI writes JSON
records, an annotated video and a summary, also when interrupted."""
from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
from PIL import Image

from vidcls.data.sources import iter_frames
from vidcls.data.transforms import build_test_transform, normalize
from vidcls.data.writer import write_video
from vidcls.engine.checkpoint import save_model_checkpoint
from vidcls.models import create_model
from helpers.models import calibrated_model
from vidcls.inference.stream import StreamPredictor, StreamStats, stream_predictions

PREP = {"input_size": 32, "resize": 36}


def _checkpoint(tmp_path, name="tsm_resnet18", **options):
    model = calibrated_model(name, num_classes=4, **options)
    return save_model_checkpoint(tmp_path / name, model, preprocessing=PREP,
                                 classes=["left", "right", "up", "down"])


def _video(tmp_path, frames=8, h=40, w=52):
    """A moving gradient with a square: every frame differs, 40x52 (not square, so resize
    and centre crop both act)."""
    yy, xx = np.mgrid[0:h, 0:w]
    clip = []
    for t in range(frames):
        img = np.stack([(xx * 5 + t * 20) % 256, (yy * 6) % 256, np.full_like(xx, 40 * t % 256)],
                       -1).astype(np.uint8)
        img[10:20, 4 + 4 * t:14 + 4 * t] = 255
        clip.append(img)
    path = tmp_path / "clip.mp4"
    write_video(path, np.stack(clip), fps=10)
    return path


def _expected_frame_logits(model, frames: np.ndarray) -> torch.Tensor:
    """Offline reference: the test transform on the whole clip, then the offline model's
    per-frame logits (unidirectional shift: frame t sees frames <= t only)."""
    clip = build_test_transform(size=32, resize=36)(frames)  # (T, 3, 32, 32) uint8
    x = normalize(clip, model.preprocessing.mean, model.preprocessing.std)
    with torch.no_grad():
        return model.forward_frames(x[None])[0]  # (T, K)


def test_torch_stream_equals_offline_model_and_smooths(tmp_path):
    from vidcls.engine.checkpoint import load_model

    ckpt = _checkpoint(tmp_path, shift_mode="unidirectional")
    video = _video(tmp_path)
    frames = np.stack(list(iter_frames(video)))
    assert frames.shape == (8, 40, 52, 3)
    model, _ = load_model(ckpt)
    expected = _expected_frame_logits(model, frames)

    stats = StreamStats()
    records = list(stream_predictions(video, ckpt, smooth=3, top_k=2, stats=stats,
                                      precision="fp32"))  # exact: the fp32 path
    assert [r["frame"] for r in records] == list(range(8))
    got = torch.from_numpy(np.stack([r["logits"] for r in records])).float()
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    for t, rec in enumerate(records):  # arg-max of the mean of the last 3 frames' logits
        smoothed = expected[max(0, t - 2):t + 1].mean(0)
        assert rec["index"] == int(smoothed.argmax())
        assert rec["label"] == ["left", "right", "up", "down"][rec["index"]]
        assert rec["score"] == pytest.approx(float(smoothed.softmax(0).max()), abs=1e-5)
        assert len(rec["top"]) == 2 and rec["latency_ms"] > 0 and rec["fps"] > 0
    assert records[3]["time"] == pytest.approx(0.3, abs=1e-6)  # from the stream's timestamps
    summary = stats.summary()
    assert summary["frames"] == 8 and summary["p95_latency_ms"] >= summary["mean_latency_ms"] * 0.5
    assert summary["fps"] > 0


def test_onnx_backend_equals_torch_on_a_frame_folder(tmp_path):
    ckpt = _checkpoint(tmp_path, shift_mode="unidirectional")
    folder = tmp_path / "frames"
    folder.mkdir()
    frames = list(iter_frames(_video(tmp_path, frames=6)))
    for i, img in enumerate(frames, start=1):
        Image.fromarray(img).save(folder / f"img_{i:05d}.png")
    torch_recs = list(stream_predictions(folder, ckpt, backend="torch", smooth=1,
                                        precision="fp32"))
    onnx_recs = list(stream_predictions(folder, ckpt, backend="onnx", smooth=1,
                                         threads=1))
    assert len(torch_recs) == len(onnx_recs) == 6
    np.testing.assert_allclose(np.stack([r["logits"] for r in onnx_recs]),
                               np.stack([r["logits"] for r in torch_recs]), atol=1e-4, rtol=0)
    assert [r["index"] for r in onnx_recs] == [r["index"] for r in torch_recs]


@pytest.mark.parametrize("name", ["tsm_resnet18", "tsn_resnet18"])
def test_openvino_backend_equals_torch(tmp_path, name):
    """OpenVINO runs the same ONNX export: at fp32 the logits are PyTorch's (TSM: the online
    step with its caches; TSN: the one-frame export); at ``auto`` (bf16 where native) the same
    top-1 on most frames."""
    pytest.importorskip("openvino")
    from vidcls.engine.runtime import native_bf16

    options = {"shift_mode": "unidirectional"} if name.startswith("tsm") else {}
    ckpt = _checkpoint(tmp_path, name=name, **options)
    video = _video(tmp_path)
    torch_recs = list(stream_predictions(video, ckpt, smooth=1, precision="fp32"))
    ov_recs = list(stream_predictions(video, ckpt, backend="openvino", smooth=1, threads=1,
                                      precision="fp32"))
    np.testing.assert_allclose(np.stack([r["logits"] for r in ov_recs]),
                               np.stack([r["logits"] for r in torch_recs]), atol=1e-3, rtol=0)
    if native_bf16():
        fast = list(stream_predictions(video, ckpt, backend="openvino", smooth=1, threads=1))
        same = [a["index"] == b["index"] for a, b in zip(fast, torch_recs)]
        assert sum(same) >= 6, same  # 8 frames


def test_openvino_backend_missing_is_one_line(tmp_path, monkeypatch, capsys):
    import builtins

    from vidcls.cli import main

    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_openvino)
    ckpt = _checkpoint(tmp_path, shift_mode="unidirectional")
    assert main(["stream", str(_video(tmp_path, frames=2)), "--checkpoint", str(ckpt),
                 "--backend", "openvino"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'vidcls[openvino]'" in err and len(err.splitlines()) == 1


def test_tsn_streams_and_offline_models_are_refused(tmp_path):
    from vidcls.engine.checkpoint import load_model

    video = _video(tmp_path, frames=4)
    tsn = _checkpoint(tmp_path, name="tsn_resnet18")
    model, _ = load_model(tsn)
    recs = list(stream_predictions(video, tsn, smooth=1, precision="fp32"))
    got = torch.from_numpy(np.stack([r["logits"] for r in recs])).float()
    expected = _expected_frame_logits(model, np.stack(list(iter_frames(video))))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)

    with pytest.raises(ValueError, match="unidirectional"):
        StreamPredictor(_checkpoint(tmp_path, name="tsm_resnet18"))
    torch.manual_seed(0)
    ts = create_model("timesformer_base", num_classes=2, num_frames=2, img_size=32,
                      patch_size=16, embed_dim=32, depth=1, num_heads=2)
    with pytest.raises(ValueError, match="whole clips"):
        StreamPredictor(save_model_checkpoint(tmp_path / "ts", ts))
    with pytest.raises(FileNotFoundError, match="no video"):
        list(stream_predictions(tmp_path / "missing.mp4", tsn))


def test_cli_stream_json_annotated_video_and_interrupt(tmp_path, capsys, monkeypatch):
    from vidcls.cli import main

    ckpt = _checkpoint(tmp_path, shift_mode="unidirectional")
    video = _video(tmp_path)
    out = tmp_path / "annotated.mp4"
    rc = main(["stream", str(video), "--checkpoint", str(ckpt), "--json", "--output", str(out),
               "--max-frames", "6", "--smooth", "2"])
    assert rc == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["frame"] for r in lines[:-1]] == list(range(6))
    assert {"label", "score", "latency_ms", "fps", "time"} <= set(lines[0])
    assert lines[-1]["summary"]["frames"] == 6 and not lines[-1]["summary"]["interrupted"]
    with av.open(str(out)) as container:
        written = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(written) == 6 and written[0].shape == (40, 52, 3)
    original = next(iter_frames(video))
    band = np.abs(written[0][:8].astype(int) - original[:8].astype(int)).mean()
    assert band > 20  # the label band is drawn over the top rows

    real_step = StreamPredictor.step
    calls = []

    def step_then_ctrl_c(self, rgb, time_s=None):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_step(self, rgb, time_s)

    monkeypatch.setattr(StreamPredictor, "step", step_then_ctrl_c)
    assert main(["stream", str(video), "--checkpoint", str(ckpt)]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("frame ") == 3
    assert "3 frames" in captured.err and "interrupted" in captured.err


def test_stream_predictions_writes_the_annotated_video(tmp_path):
    ckpt = _checkpoint(tmp_path, shift_mode="unidirectional")
    video = _video(tmp_path)
    out = tmp_path / "out" / "annotated.mp4"
    records = list(stream_predictions(video, ckpt, max_frames=5, output=out))
    assert len(records) == 5 and "image" not in records[0]
    with av.open(str(out)) as container:
        assert float(container.streams.video[0].average_rate) == 10  # the source's fps
        written = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(written) == 5 and written[0].shape == (40, 52, 3)
    original = next(iter_frames(video))
    assert np.abs(written[0][:8].astype(int) - original[:8].astype(int)).mean() > 20  # the band
    assert np.abs(written[0][-8:].astype(int) - original[-8:].astype(int)).mean() < 20


def test_stream_predictions_with_a_missing_source_writes_nothing(tmp_path):
    ckpt = _checkpoint(tmp_path, shift_mode="unidirectional")
    out = tmp_path / "annotated.mp4"
    records = stream_predictions(tmp_path / "missing.mp4", ckpt, output=out)
    with pytest.raises(FileNotFoundError, match="no video"):
        next(records)
    assert not out.exists()


def test_cli_stream_names_a_missing_source_in_one_line(tmp_path, capsys):
    from vidcls.cli import main

    ckpt = _checkpoint(tmp_path, shift_mode="unidirectional")
    for extra in ([], ["--output", str(tmp_path / "out.mp4")]):
        assert main(["stream", str(tmp_path / "missing.mp4"), "--checkpoint", str(ckpt),
                     *extra]) == 2
        err = capsys.readouterr().err
        assert err == f"vidcls stream: error: no video, frame folder or device at " \
                      f"{str(tmp_path / 'missing.mp4')!r}\n"


def test_multi_label_stream_and_explain_give_sigmoid_scores():
    """A multi-label checkpoint's classes are independent: stream and explain score them with
    a sigmoid each, as predict does, never a softmax that sums to 1."""
    from vidcls.engine.checkpoint import build_meta
    from vidcls.inference.explain import explain_clip

    model = calibrated_model("tsm_resnet18", num_classes=4, shift_mode="unidirectional")
    meta = {**build_meta(model, classes=list("abcd")), "multi_label": True}
    stream = StreamPredictor(model=model, meta=meta, smooth=1, top_k=4)
    rec = stream.step(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    expected = 1 / (1 + np.exp(-np.asarray(rec["logits"], dtype=np.float64)))
    scores = {t["index"]: t["score"] for t in rec["top"]}
    assert all(abs(scores[i] - expected[i]) < 1e-6 for i in range(4))
    x = torch.randn(4, 3, 32, 32)
    ex = explain_clip(model, x, multi_label=True)
    assert ex.probs.sum() != pytest.approx(1.0, abs=1e-3)
    with torch.no_grad():
        torch.testing.assert_close(ex.probs, torch.sigmoid(model(x[None])[0]), atol=1e-5,
                                   rtol=1e-5)
