"""The typed model card: one record, strict reading, one eval transform."""
import numpy as np
import pytest
import torch

from vidcls.models import IMAGENET, TIMESFORMER, Preprocessing


def test_round_trip_through_a_dict():
    prep = TIMESFORMER.replace(num_frames=16, sampling="dense", clip_len=16, frame_interval=4)
    assert Preprocessing.from_dict(prep.to_dict()) == prep
    assert prep.to_dict()["mean"] == [0.45, 0.45, 0.45]  # JSON-friendly lists
    non_square = IMAGENET.replace(input_size=(224, 320), resize=256)
    assert Preprocessing.from_dict(non_square.to_dict()) == non_square


def test_a_misspelled_key_is_an_error_never_a_default():
    data = IMAGENET.to_dict()
    data["samplng"] = "dense"
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['samplng'\]"):
        Preprocessing.from_dict(data)
    with pytest.raises(ValueError, match="unknown key"):
        IMAGENET.replace(mena=(0, 0, 0))


def test_missing_keys_come_from_the_model_card():
    prep = Preprocessing.from_dict({"input_size": 112, "resize": 128}, base=IMAGENET)
    assert prep.mean == IMAGENET.mean and prep.input_size == 112 and prep.resize == 128


@pytest.mark.parametrize("bad, match", [
    (dict(sampling="random"), "sampling='random' is unknown"),
    (dict(resize=100), "resize=100 < input_size=224"),
    (dict(num_frames=0), "num_frames must be a positive integer"),
    (dict(std=(0.2, 0.2, 0.0)), "std > 0"),
])
def test_bad_values_are_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        IMAGENET.replace(**bad)


def test_eval_transform_and_sampling_options():
    prep = IMAGENET.replace(input_size=32, resize=40, num_frames=4)
    transform = prep.eval_transform(num_crops=3)
    frames = np.zeros((4, 48, 64, 3), dtype=np.uint8)
    assert transform(frames).shape == (3, 4, 3, 32, 32)
    assert prep.sampling_options() == dict(num_frames=4, sampling="segment", clip_len=4,
                                           frame_interval=1)
    with pytest.raises(ValueError, match="square"):
        IMAGENET.replace(input_size=(224, 320), resize=256).eval_transform()
    assert isinstance(prep.eval_transform()(frames), torch.Tensor)
