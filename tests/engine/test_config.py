"""Config system: YAML + key=value overrides + validation with clear errors."""
from pathlib import Path

import pytest
import yaml

from vidcls.engine.config import (Config, ConfigError, load_config, resolve_accumulation,
                                  save_config)

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def write(tmp_path, data) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_defaults_and_overrides(tmp_path):
    p = write(tmp_path, {"model": {"name": "tsm_resnet18", "shift_div": 8},
                         "train": {"epochs": 3}})
    cfg = load_config(p, ["train.epochs=5", "model.shift_div=4", "train.lr=0.1",
                          "data.mean=[0.5,0.5,0.5]", "model.pretrained=null"])
    assert cfg.train.epochs == 5
    assert cfg.model.options == {"shift_div": 4}
    assert cfg.train.lr == 0.1 and isinstance(cfg.train.lr, float)
    assert cfg.data.mean == [0.5, 0.5, 0.5]
    assert cfg.model.pretrained is None
    # ints are accepted for floats and converted
    assert load_config(p, ["train.lr=1"]).train.lr == 1.0


def test_round_trip(tmp_path):
    cfg = load_config(write(tmp_path, {"model": {"name": "tsm_resnet18", "shift_mode":
                                                 "unidirectional"}, "seed": 3}))
    save_config(cfg, tmp_path / "out.yaml")
    again = load_config(tmp_path / "out.yaml")
    assert again == cfg
    assert yaml.safe_load((tmp_path / "out.yaml").read_text())["model"]["shift_mode"] == \
        "unidirectional"


@pytest.mark.parametrize("override, fragment", [
    (["train.epoch=5"], "train.epoch: unknown key (did you mean 'epochs'?)"),
    (["trian.epochs=5"], "trian: unknown key (did you mean 'train'?)"),
    (["train.epochs=five"], "train.epochs: expected int, got 'five'"),
    (["train.epochs=2.5"], "train.epochs: expected int"),
    (["train.optimizer=adam"], "train.optimizer: 'adam' is not valid; choose one of: sgd, adamw"),
    (["train.precision=fp8"], "choose one of: fp32, bf16, fp16"),
    (["data.format=webdataset"], "data.format: 'webdataset' is not valid"),
    (["train.nesterov=1"], "train.nesterov: expected bool"),
    (["data.mean=[0.5,0.5]"], "data.mean: needs 3 values"),
    (["train.lr=-1"], "train.lr: must be > 0"),
    (["train.milestones=[40,20]"], "train.milestones: must be increasing"),
    (["model.shfit_div=4"], "model.shfit_div: unknown key (did you mean 'shift_div'?)"),
    (["model.shift_mode=sideways"], "shift_mode"),
    (["model.num_frames=4"], "model.num_frames: set by data.num_frames"),
    (["model.name=tsm_resnet9000"], "unknown model 'tsm_resnet9000'"),
    (["eval.num_crops=5"], "eval.num_crops: 5 is not valid; choose one of: 1, 3, 10"),
    (["train.accumulate_steps=2", "train.global_batch_size=64"], "set only one of them"),
    (["train"], "is not KEY=VALUE"),
])
def test_errors_name_the_key_and_choices(tmp_path, override, fragment):
    p = write(tmp_path, {"model": {"name": "tsm_resnet18"}})
    with pytest.raises(ConfigError) as err:
        load_config(p, override)
    assert fragment in str(err.value)


def test_tsn_rejects_shift_options(tmp_path):
    p = write(tmp_path, {"model": {"name": "tsn_resnet18", "shift_div": 8}})
    with pytest.raises(ConfigError, match="model.shift_div"):
        load_config(p)


def test_missing_file_and_bad_top_level(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(tmp_path / "list.yaml")


def test_accumulation_from_global_batch():
    cfg = Config()
    cfg.train.global_batch_size = 64
    assert resolve_accumulation(cfg.train, 8, 2) == 4
    assert resolve_accumulation(cfg.train, 64, 1) == 1
    with pytest.raises(ConfigError, match="not a multiple of data.batch_size x processes"):
        resolve_accumulation(cfg.train, 6, 2)
    cfg.train.global_batch_size = None
    cfg.train.accumulate_steps = 3
    assert resolve_accumulation(cfg.train, 8, 2) == 3


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    assert cfg.model.name
    text = path.read_text()
    if not path.name.startswith(("demo", "test")):
        assert "expected" in text.lower(), f"{path.name} must cite the numbers it should reach"
