"""`vidcls info`: parameter and FLOP counts match the papers and the CLI reports them."""
import json

import pytest

from vidcls.cli import main
from vidcls.info import model_info


def test_tsm_r50_matches_paper_cost():
    info = model_info("tsm_resnet50")
    # TSM paper: TSM-R50 8 frames, 33 GFLOPs (multiply-adds) and 24.3 M parameters.
    assert info["params"] / 1e6 == pytest.approx(24.3, abs=0.1)
    assert info["gflops_paper"] == pytest.approx(33.0, rel=0.03)
    assert info["input_shape"] == [1, 8, 3, 224, 224]


def test_tsm_costs_nothing_over_tsn_in_info():
    tsn, tsm = model_info("tsn_resnet18"), model_info("tsm_resnet18")
    assert tsn["params"] == tsm["params"]
    assert tsn["gflops_raw"] == tsm["gflops_raw"]


def test_timesformer_cost_near_paper():
    info = model_info("timesformer_base", num_classes=400)
    # TimeSformer paper: 121.4 M parameters, 196 GFLOPs per 8x224 view (they also count
    # softmax/normalisation, which FlopCounterMode does not, hence the tolerance).
    assert info["params"] / 1e6 == pytest.approx(121.4, abs=0.5)
    assert info["gflops_paper"] == pytest.approx(196, rel=0.05)


def test_frames_and_size_change_the_cost():
    base = model_info("tsm_resnet18", num_frames=4, size=224)
    longer = model_info("tsm_resnet18", num_frames=8, size=224)
    larger = model_info("tsm_resnet18", num_frames=4, size=448)
    assert base["input_shape"] == [1, 4, 3, 224, 224]
    assert longer["gflops_raw"] == pytest.approx(2 * base["gflops_raw"], rel=1e-9)
    assert larger["gflops_raw"] == pytest.approx(4 * base["gflops_raw"], rel=0.01)


def test_cli_prints_spec(capsys):
    assert main(["info", "tsm_resnet50", "--frames", "16"]) == 0
    out = capsys.readouterr().out
    assert "24.33 M" in out and "(1, 16, 3, 224, 224)" in out and "logits (B, 400)" in out


def test_cli_json_and_options(capsys):
    assert main(["info", "timesformer_base", "-o", "attention=space", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["options"] == {"attention": "space"}
    # space-only attention has no temporal attention parameters
    assert info["params"] < 100e6


def test_cli_lists_every_model(capsys):
    from vidcls.models import list_models
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for name in list_models():
        assert name in out


def test_cli_bad_model_is_one_clear_line(capsys):
    assert main(["info", "resnet9000"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown model 'resnet9000'" in err and "tsm_resnet50" in err and "\n" not in err


def test_cli_bad_option_format(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["info", "tsm_resnet18", "-o", "shift_div"])
    assert exit_.value.code == 2 and "not KEY=VALUE" in capsys.readouterr().err
