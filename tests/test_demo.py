"""``vidcls demo --quick``: every step runs and the run directory holds what the README says."""
import json
import re
from pathlib import Path

import pytest
import yaml

from vidcls.cli import main
from vidcls.demo import (FULL, check_claim, demo_config, fresh_run_dir, pair_metrics,
                         pair_videos)
from vidcls.engine.config import load_config

REPO = Path(__file__).resolve().parents[1]


def test_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    for step in range(1, 7):
        assert f"[{step}/6]" in text
    assert "TSN resnet18 (no shift)" in text and "TSM resnet18 (online" in text
    assert "streamed result" in text
    # the first held-out video of each class pair is shown, predicted and streamed
    assert "video 1/2: videos/c00_" in text and "video 2/2: videos/c02_" in text
    assert text.count("streamed result") == 2
    assert "claim: TSM top-1" in text and "not checked at --quick size" in text
    assert re.search(r"vidcls demo finished in \d+\.\d min on \w+ \(\d+ CPU cores", text)
    assert "within" in text.split("[4/6]")[1]

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
    assert [v["true"] for v in summary["videos"]] == ["moving right", "approaching"]
    for v in summary["videos"]:
        assert v["TSN"]["predictions"] and v["TSM"]["predictions"]
        assert v["stream"]["frames"] == 4 and v["stream"]["max_abs_diff_vs_offline"] < 1e-4
    assert summary["machine"]["cpu_capability"] and summary["seconds"] > 0
    assert summary["claim"]["holds"] is None and summary["ok"]
    for label in ("TSN", "TSM"):
        m = summary["models"][label]["eval"]
        assert 0 <= m["pair_acc"] <= 100 and m["top1"] <= m["pair_acc"]
    # the demo's TSM is the online-capable (unidirectional) model; TSN has no shift
    tsm_cfg = yaml.safe_load((out / "tsm" / "config.yaml").read_text())
    assert tsm_cfg["model"]["shift_mode"] == "unidirectional"
    assert tsm_cfg["seed"] == 1 and summary["seed"] == 1  # --seed trains both with it
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


def test_pair_videos_are_the_first_held_out_video_of_each_pair(tmp_path):
    val = tmp_path / "val.txt"
    val.write_text("v/c00_8.mp4 0\nv/c00_9.mp4 0\nv/c01_8.mp4 1\nv/c02_8.mp4 2\n"
                   "v/c03_8.mp4 3\n")
    assert pair_videos(val) == [("v/c00_8.mp4", 0), ("v/c02_8.mp4", 2)]


def test_pair_metrics_within_pair_is_top1_among_the_right_pair(tmp_path):
    preds = tmp_path / "predictions.json"
    # labels 0..3 (pairs 0-1, 2-3): right, right pair / wrong class, right pair / wrong
    # class, wrong pair -> top-1 25 %, right pair 75 %, within pair 1/3
    preds.write_text(json.dumps([{"label": 0, "pred": 0}, {"label": 1, "pred": 0},
                                 {"label": 2, "pred": 3}, {"label": 3, "pred": 1}]))
    m = pair_metrics(preds, top1=25.0)
    assert m["pair_acc"] == 75.0 and m["within_pair_acc"] == pytest.approx(100 / 3)
    preds.write_text(json.dumps([{"label": 0, "pred": 2}, {"label": 3, "pred": 1}]))
    m = pair_metrics(preds, top1=0.0)  # never the right pair: within pair is undefined
    assert m["pair_acc"] == 0.0 and m["within_pair_acc"] != m["within_pair_acc"]  # NaN
    assert check_claim({"TSM": {"eval": {"top1": 100.0}},
                        "TSN": {"eval": {"within_pair_acc": m["within_pair_acc"]}}}
                       )["holds"] is False


def _results(tsm_top1, tsn_within):
    return {"TSM": {"eval": {"top1": tsm_top1, "within_pair_acc": 100.0}},
            "TSN": {"eval": {"top1": tsn_within / 2, "within_pair_acc": tsn_within}}}


@pytest.mark.parametrize("tsm, tsn, holds", [(95.0, 60.0, True), (99.2, 41.7, True),
                                             (91.7, 41.7, False), (100.0, 62.5, False)])
def test_claim_is_tsm_at_least_95_and_tsn_within_pair_at_most_60(tsm, tsn, holds):
    claim = check_claim(_results(tsm, tsn))
    assert claim["holds"] is holds
    assert ("did NOT hold" in claim["text"]) is not holds


def test_a_full_run_whose_claim_fails_exits_1(monkeypatch):
    import vidcls.demo

    monkeypatch.setattr(vidcls.demo, "run_demo", lambda **kw: {"ok": False})
    assert main(["demo", "--no-progress"]) == 1


def test_a_second_demo_replaces_only_training_runs(tmp_path):
    from vidcls.engine.rundir import LOCK_FILE

    run = tmp_path / "tsm"
    (run / "checkpoints" / "last").mkdir(parents=True)
    (run / "metrics.jsonl").write_text("{}\n")
    (run / "bad_files.txt").write_text("")
    (run / LOCK_FILE).write_text("")  # left behind by a killed training: not held
    assert fresh_run_dir(run) and not run.exists()
    assert not fresh_run_dir(run)
    (run / "my_notes.txt").parent.mkdir()
    (run / "my_notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a vidcls training run"):
        fresh_run_dir(run)
    assert (run / "my_notes.txt").is_file()


def test_a_second_demo_does_not_delete_a_training_in_progress(tmp_path):
    from vidcls.engine.rundir import RunDirLock

    run = tmp_path / "tsm"
    (run / "checkpoints").mkdir(parents=True)
    with RunDirLock(run):  # a training of another demo into the same --out
        with pytest.raises(ValueError, match="in use by another training"):
            fresh_run_dir(run)
    assert (run / "checkpoints").is_dir()
