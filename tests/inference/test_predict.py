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
    torch.testing.assert_close(pred.probabilities(views), expected, atol=1e-6, rtol=0)
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
