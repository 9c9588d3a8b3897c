"""``Predictor``: clips are sampled, cropped and normalised as the checkpoint's model card says
(no defaults of its own), views are averaged as probabilities, a misspelled card key is an
error, and the old import paths (``vidcls.predict(...)``, ``vidcls.stream``, ``vidcls.explain``)
keep working. The train -> predict round trip through the CLI is in tests/engine/test_e2e.py."""
from __future__ import annotations

import pytest
import torch
from helpers.models import tiny_model
from helpers.videos import encode, moving_frames

from vidcls.engine.checkpoint import save_model_checkpoint
from vidcls.inference.predict import Predictor

CLASSES = ["a", "b", "c"]
DENSE = {"input_size": 32, "resize": 36, "sampling": "dense", "clip_len": 4,
         "frame_interval": 2}


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return encode(tmp_path_factory.mktemp("videos") / "clip.mp4", moving_frames(24, 40, 48))


def _checkpoint(tmp_path, preprocessing=DENSE):
    model = tiny_model("tsm_resnet18", num_frames=4)
    return save_model_checkpoint(tmp_path / "ckpt", model, preprocessing=preprocessing,
                                 classes=CLASSES)


def test_dataset_follows_the_model_card(tmp_path, video):
    pred = Predictor(_checkpoint(tmp_path))
    assert pred.preprocessing.sampling == "dense"  # not the old "segment" fallback
    ds = pred.dataset([str(video)])
    assert (ds.num_frames, ds.sampling, ds.clip_len, ds.frame_interval) == (4, "dense", 4, 2)
    assert ds[0]["clip"].shape == (4, 3, 32, 32)
    three = pred.dataset([str(video)], num_crops=3, num_clips=2)
    assert three[0]["clip"].shape == (6, 4, 3, 32, 32)  # (clips x crops, T, 3, H, W)
    torch.testing.assert_close(pred.mean, torch.tensor(pred.preprocessing.mean))


def test_probabilities_average_the_views_softmax(tmp_path, video):
    pred = Predictor(_checkpoint(tmp_path))
    views = pred.dataset([str(video)], num_crops=3)[0]["clip"]  # uint8 (3, T, 3, 32, 32)
    mean = torch.tensor(pred.preprocessing.mean).view(3, 1, 1)
    std = torch.tensor(pred.preprocessing.std).view(3, 1, 1)
    with torch.no_grad():
        expected = pred.model((views.float() / 255 - mean) / std).softmax(-1).mean(0)
    torch.testing.assert_close(pred.probabilities(views), expected, atol=1e-5, rtol=0)
    top = pred(video, top_k=2, num_crops=3)[0]["predictions"]
    assert [p["index"] for p in top] == expected.topk(2).indices.tolist()


def test_a_misspelled_card_key_is_an_error_not_a_default():
    meta = {"classes": CLASSES, "preprocessing": {"frame_intervall": 2}}
    with pytest.raises(ValueError, match="frame_intervall"):
        Predictor(model=tiny_model("tsm_resnet18", num_frames=4), meta=meta)


def test_old_import_paths_still_work(tmp_path, video):
    import vidcls
    import vidcls.explain
    import vidcls.inference.explain
    import vidcls.inference.stream
    import vidcls.stream
    from vidcls.predict import Predictor as OldPredictor
    from vidcls.predict import predict

    assert OldPredictor is Predictor
    assert vidcls.stream.StreamPredictor is vidcls.inference.stream.StreamPredictor
    assert vidcls.explain.explain_video is vidcls.inference.explain.explain_video
    ckpt = _checkpoint(tmp_path)
    assert vidcls.predict(video, ckpt, top_k=2) == predict(video, ckpt, top_k=2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_an_unavailable_device_is_a_one_line_error(tmp_path, video, capsys):
    from vidcls.cli import main

    ckpt = _checkpoint(tmp_path)
    assert main(["predict", str(video), "--checkpoint", str(ckpt), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vidcls predict: error: --device: 'cuda' requested but CUDA is not "
                          "available") and "use --device cpu or --device auto" in err
    assert err.count("\n") == 1
    assert main(["predict", str(video), "--checkpoint", str(ckpt), "--device", "tpu"]) == 2
    assert "'tpu' is not a device vidcls runs on" in capsys.readouterr().err
    assert Predictor(ckpt, device="auto").device == torch.device("cpu")


def test_multi_label_checkpoints_predict_sigmoid_probabilities(tmp_path, video):
    model = tiny_model("tsm_resnet18", num_frames=4)
    path = save_model_checkpoint(tmp_path / "ml", model, preprocessing=DENSE, classes=CLASSES,
                                 multi_label=True)
    pred = Predictor(path)
    views = pred.dataset([str(video)], num_crops=3)[0]["clip"]  # (3, T, 3, 32, 32)
    mean = torch.tensor(pred.preprocessing.mean).view(3, 1, 1)
    std = torch.tensor(pred.preprocessing.std).view(3, 1, 1)
    with torch.no_grad():
        expected = pred.model((views.float() / 255 - mean) / std).sigmoid().mean(0)
    torch.testing.assert_close(pred.probabilities(views), expected, atol=1e-5, rtol=0)
    result = pred(video, top_k=3, num_crops=3)[0]
    assert result["multi_label"] is True
    assert [p["probability"] for p in result["predictions"]] == pytest.approx(
        sorted(expected.tolist(), reverse=True), abs=1e-5)
    assert "multi_label" not in Predictor(_checkpoint(tmp_path))(video)[0]  # single-label


def test_a_portrait_phone_video_is_predicted_upright(tmp_path):
    """A clip stored landscape with a 90° display rotation gives the model the same input as
    the same clip stored upright (lossless encodes, so the pixels can be compared)."""
    import av
    import numpy as np

    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("this PyAV cannot write a display matrix")

    def lossless(path, frames, display_ccw=None):
        return encode(path, frames, pix_fmt="yuv444p", gop=None, display_ccw=display_ccw,
                      options={"qp": "0", "preset": "ultrafast"})

    stored = moving_frames(16, 40, 56)  # landscape (T, 40, 56, 3)
    upright = np.ascontiguousarray(np.rot90(stored, k=-1, axes=(1, 2)))  # (T, 56, 40, 3)
    phone = lossless(tmp_path / "phone.mp4", stored, display_ccw=-90)  # a portrait iPhone clip
    plain = lossless(tmp_path / "upright.mp4", upright)
    pred = Predictor(_checkpoint(tmp_path))
    a, b = pred.load_clip(phone)[0], pred.load_clip(plain)[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, pred.load_clip(lossless(tmp_path / "flat.mp4", stored))[0])
