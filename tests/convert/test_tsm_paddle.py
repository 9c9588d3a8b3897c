"""``tsm-paddle``: PaddleVideo weights (``.pdparams`` pickle and ``.npz``) reproduce a
re-implementation of Paddle's own forward with its mirrored shift (:mod:`reference.paddle_tsm`)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from helpers.convert import calibrate
from reference.paddle_tsm import paddle_resnet_tsm_forward, paddlevideo_config, to_paddle
from vidcls.convert import convert, read_paddle_params
from vidcls.models import create_model


def test_tsm_paddle_mirrored_shift_matches_paddle_forward(tmp_path):
    torch.manual_seed(0)
    src = calibrate(create_model("tsm_resnet50", num_classes=5, num_frames=4, shift_div=4),
                    (2, 4, 3, 32, 32))
    params = to_paddle(src)
    assert "backbone.res3a.short._batch_norm._variance" in params
    path = tmp_path / "ppTSM_k400_r50.pdparams"
    names = {k: f"param_{i}" for i, k in enumerate(params)}
    with open(path, "wb") as f:  # what paddle.save(state_dict) writes
        pickle.dump({**params, "StructuredToParameterName@@": names}, f, protocol=4)

    x = torch.randn(1, 4, 3, 32, 32)
    ref = {k: torch.from_numpy(v) for k, v in params.items()}
    with torch.no_grad():
        expected = paddle_resnet_tsm_forward(ref, x, seg_num=4)
        naive = src(x)  # same weights, TSM authors' shift direction
    assert (naive - expected).abs().max() > 1e-3  # the direction matters ...
    conv = convert(path, "tsm-paddle", num_frames=4)
    assert conv.model.build_config["shift_div"] == 4
    with torch.no_grad():  # ... and the converted weights reproduce Paddle's model exactly
        torch.testing.assert_close(conv.model(x), expected, atol=1e-4, rtol=1e-4)
    npz = tmp_path / "weights.npz"  # the same parameters as .npz read identically
    np.savez(npz, **params)
    from_npz, from_pickle = read_paddle_params(npz), read_paddle_params(path)
    assert from_npz.keys() == from_pickle.keys() == params.keys()
    assert all(torch.equal(from_npz[k], from_pickle[k]) for k in params)


def test_tsm_paddle_needs_its_segment_count(tmp_path, capsys):
    """A .pdparams stores no segment count and Paddle's shift width is 1/num_seg: without
    num_frames or the PaddleVideo config a 4-segment model would be read as 8 and be wrong."""
    torch.manual_seed(0)
    src = calibrate(create_model("tsm_resnet50", num_classes=5, num_frames=4, shift_div=4),
                    (2, 4, 3, 32, 32))
    params = to_paddle(src)
    path = tmp_path / "tsm_k400.pdparams"
    with open(path, "wb") as f:
        pickle.dump(params, f, protocol=4)
    for fmt in ("tsm-paddle", "auto"):
        with pytest.raises(ValueError, match=r"stores no segment count.*give num_frames "
                                             r"\(--num-frames.*or config \(--config"):
            convert(path, fmt)

    config = tmp_path / "tsm_k400_frames.yaml"
    config.write_text(paddlevideo_config(num_seg=4, num_classes=5))
    conv = convert(path, config=config)
    assert (conv.model.build_config["shift_div"], conv.model.num_frames) == (4, 4)
    x = torch.randn(1, 4, 3, 32, 32)
    ref = {k: torch.from_numpy(v) for k, v in params.items()}
    with torch.no_grad():
        torch.testing.assert_close(conv.model(x), paddle_resnet_tsm_forward(ref, x, seg_num=4),
                                   atol=1e-4, rtol=1e-4)
    longer = convert(path, config=config, num_frames=8)  # evaluate 8 frames, shift as trained
    assert (longer.model.build_config["shift_div"], longer.model.num_frames) == (4, 8)

    other = tmp_path / "pptsm.yaml"
    other.write_text(paddlevideo_config(num_seg=8, backbone="ResNetTweaksTSM"))
    with pytest.raises(ValueError, match="describes a ResNetTweaksTSM; tsm-paddle converts "
                                         "ResNetTSM"):
        convert(path, config=other)
    (tmp_path / "bad.yaml").write_text("MODEL:\n  backbone:\n    name: ResNetTSM\n")
    with pytest.raises(ValueError, match="has no MODEL.backbone.num_seg"):
        convert(path, config=tmp_path / "bad.yaml")

    from vidcls.cli import main

    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "tsm-paddle needs --num-frames or --config" in help_text
