"""``tsm-mmaction2``: a vidcls TSM written in mmaction2's layout by an independent writer
(:mod:`reference.mmaction2_tsm`), with mmengine metadata that plain ``weights_only`` loading
refuses, converts back to the same function."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.convert import calibrate
from reference.mmaction2_tsm import to_mmaction2_tsm
from vidcls.convert import ConversionWarning, convert
from vidcls.models import create_model


class HistoryBuffer:  # stands for mmengine's class, which the loader must not need to import
    def __init__(self):
        self.data = np.arange(3.0)


def test_tsm_mmaction2_round_trip_with_foreign_metadata(tmp_path):
    torch.manual_seed(0)
    model = calibrate(create_model("tsm_resnet18", num_classes=6, num_frames=4, shift_div=4),
                      (2, 4, 3, 32, 32))
    sd = to_mmaction2_tsm(model)
    assert "backbone.layer1.0.conv1.conv.net.weight" in sd
    assert "backbone.layer2.0.downsample.bn.running_var" in sd
    config = ("model = dict(type='Recognizer2D', backbone=dict(type='ResNetTSM', depth=18, "
              "num_segments=4, shift_div=4), cls_head=dict(type='TSMHead', num_classes=6))")
    path = tmp_path / "tsm_r18_1x1x4_kinetics_rgb.pth"
    torch.save({"meta": {"config": config, "mmcv_version": "1.7.0",
                         "message_hub": HistoryBuffer(), "best_score": np.float64(0.7)},
                "state_dict": sd, "optimizer": {"state": {}, "param_groups": []}}, path)
    with pytest.raises(Exception):  # plain weights_only loading refuses the metadata ...
        torch.load(path, weights_only=True)
    conv = convert(path, "tsm-mmaction2")  # ... the restricted loader reads around it
    assert conv.model.build_config["shift_div"] == 4 and conv.model.num_frames == 4
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(conv.model(x), model(x), atol=1e-5, rtol=1e-5)


def test_tsm_mmaction2_settings_from_names_and_defaults(tmp_path):
    """Without a stored config the ``1x1xN`` config naming gives the segments (mmcv's
    ``meta["config_name"]``, else the published file name); a default is announced; a shift
    option for an unshifted model (a TSN) is refused; class names come from ``meta``."""
    torch.manual_seed(0)
    sd = to_mmaction2_tsm(create_model("tsm_resnet18", num_classes=3, num_frames=4))
    path = tmp_path / "latest.pth"
    torch.save({"meta": {"config_name": "tsm_r18_1x1x4_50e_kinetics400_rgb.py",
                         "CLASSES": ["a", "b", "c"]}, "state_dict": sd}, path)
    with pytest.warns(ConversionWarning, match="shift_div: .* using 8 .*--shift-div"):
        conv = convert(path)
    assert conv.model.num_frames == 4 and conv.classes == ["a", "b", "c"]
    assert conv.source["assumed"] == {"shift_div": 8}
    named = tmp_path / "tsm_r18_1x1x16_50e_kinetics400_rgb_20200607-af7fb746.pth"
    torch.save({"state_dict": sd}, named)
    assert convert(named, shift_div=8, classes=list("abc")).model.num_frames == 16

    tsn = to_mmaction2_tsm(create_model("tsn_resnet18", num_classes=3, num_frames=4))
    tsn = {k.replace(".conv.net.", ".conv."): v for k, v in tsn.items()}
    torch.save({"meta": {"cfg": "num_segments=4"}, "state_dict": tsn}, path)
    assert convert(path, classes=list("abc")).model.build_config["name"] == "tsn_resnet18"
    with pytest.raises(ValueError, match=r"shift_div \(--shift-div\) does not apply: .* no "
                                         r"temporal shift"):
        convert(path, shift_div=4)
