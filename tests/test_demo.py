"""``vidcls demo --quick``: every step runs and the run directory holds what the README says."""
import json
from pathlib import Path

import pytest
import yaml

from vidcls.cli import main
from vidcls.demo import FULL, demo_config
from vidcls.engine.config import load_config

REPO = Path(__file__).resolve().parents[1]


def test_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    for step in range(1, 7):
        assert f"[{step}/6]" in text
    assert "TSN resnet18 (no shift)" in text and "TSM resnet18 (online" in text
    assert "streamed result" in text

    summary = json.loads((out / "summary.json").read_text())
    for label in ("TSN", "TSM"):
        run = out / label.lower()
        assert (run / "checkpoints" / "last" / "model.safetensors").is_file()
        assert (run / "metrics.jsonl").is_file() and (run / "train.log").is_file()
        for f in ("confusion_matrix.png", "confusion_matrix.csv", "predictions.csv",
                  "metrics.json"):
            assert (run / "eval_val" / f).is_file(), f
        m = summary["models"][label]["eval"]
        assert 0 <= m["top1"] <= 100 and m["num_videos"] == 4
        assert summary["prediction"][label]["predictions"]
    assert (out / "curves.png").is_file() and (out / "summary.md").is_file()
    for name in ("accuracy.png", "explain_tsn.png", "explain_tsm.png"):  # the report's plots too
        assert (out / name).stat().st_size > 1000 and name in summary["plots"], name
    # online TSM streamed frame by frame == the offline model on the same frames
    assert summary["stream"]["max_abs_diff_vs_offline"] < 1e-4
    assert summary["stream"]["frames"] == 4
    # the demo's TSM is the online-capable (unidirectional) model; TSN has no shift
    tsm_cfg = yaml.safe_load((out / "tsm" / "config.yaml").read_text())
    assert tsm_cfg["model"]["shift_mode"] == "unidirectional"
    assert yaml.safe_load((out / "tsn" / "config.yaml").read_text())["model"]["name"] == \
        "tsn_resnet18"
    # same budget for both: identical configs apart from the model and output directory
    tsn_cfg = yaml.safe_load((out / "tsn" / "config.yaml").read_text())
    for cfg in (tsm_cfg, tsn_cfg):
        cfg.pop("model"), cfg.pop("output_dir")
    assert tsm_cfg == tsn_cfg


@pytest.mark.parametrize("label", ["tsm", "tsn"])
def test_shipped_demo_configs_match_the_demo(label):
    """configs/demo_{tsm,tsn}.yaml are the demo's recipe, for `vidcls train` users."""
    shipped = load_config(REPO / "configs" / f"demo_{label}.yaml")
    built = demo_config(f"{label}_{FULL.backbone}", Path(shipped.data.root),
                        Path(shipped.output_dir), FULL)
    assert shipped == built
