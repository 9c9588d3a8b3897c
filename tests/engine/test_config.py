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
    (["train.precision=fp8"], "choose one of: auto, fp32, bf16, fp16"),
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


@pytest.mark.parametrize("spelling", ["1e-3", "1E-3", ".001", "1.0e-3", "0.001", "1e-03"])
def test_float_keys_accept_the_usual_spellings(tmp_path, spelling):
    """YAML 1.1 reads 1e-3 as a string; the config reads it as the number it is, in files,
    in overrides and in lists of floats."""
    p = tmp_path / "c.yaml"
    p.write_text(f"model:\n  name: tsm_resnet18\ntrain:\n  lr: {spelling}\n"
                 f"  betas: [0.9, {spelling}]\n  weight_decay: {spelling}\n")
    cfg = load_config(p)
    assert cfg.train.lr == cfg.train.weight_decay == pytest.approx(1e-3)
    assert cfg.train.betas == [0.9, pytest.approx(1e-3)]
    assert isinstance(cfg.train.lr, float)
    over = load_config(write(tmp_path, {"model": {"name": "tsm_resnet18"}}),
                       [f"train.lr={spelling}", f"train.clip_grad_norm={spelling}"])
    assert over.train.lr == over.train.clip_grad_norm == pytest.approx(1e-3)
    assert load_config(p, ["train.lr=5"]).train.lr == 5.0
    # a Python dict with the string (e.g. read from JSON) is converted the same way
    assert load_config(data={"train": {"lr": spelling}}).train.lr == pytest.approx(1e-3)


@pytest.mark.parametrize("overrides, fragment", [
    (["data.input_size=7"], "data.input_size: 7 is below what tsm_resnet18 takes; its feature "
                            "map shrinks 32x, so use data.input_size >= 32"),
    (["data.input_size=31"], "use data.input_size >= 32"),
    (["model.name=timesformer_base", "model.patch_size=8", "model.img_size=32",
      "model.embed_dim=32", "model.depth=1", "model.num_heads=2", "data.input_size=12"],
     "data.input_size: 12 does not fit timesformer_base: clip is 12x12; TimeSformer needs H and "
     "W to be positive multiples of patch_size=8"),
    (["model.name=timesformer_base", "model.patch_size=8", "model.img_size=32",
      "model.embed_dim=32", "model.depth=1", "model.num_heads=2", "data.input_size=4"],
     "positive multiples of patch_size=8"),
    (["output_dir="], "config key output_dir: empty; give the run directory, e.g. "
                      "output_dir=runs/my_run"),
    (['output_dir=""'], "config key output_dir: empty"),
    (['output_dir="  "'], "config key output_dir: empty"),
    (['data.root=""'], "config key data.root: empty; give the dataset folder"),
    (['data.val_ann=""'], "config key data.val_ann: empty; give a path or null"),
    (['model.init=""'], "config key model.init: empty"),
    (["device=tpu"], "config key device: 'tpu' is not a device vidcls runs on; use auto, cpu, "
                     "cuda, cuda:N or mps"),
    (["device=gpu"], "is not a device vidcls runs on"),
    (["train.lr=[0.1,"], "override 'train.lr=[0.1,': YAML syntax error at line 1, column 6"),
])
def test_sizes_paths_and_devices_are_checked(tmp_path, overrides, fragment):
    p = write(tmp_path, {"model": {"name": "tsm_resnet18"}})
    with pytest.raises(ConfigError) as err:
        load_config(p, overrides)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_smallest_sizes_the_models_take_are_accepted(tmp_path):
    p = write(tmp_path, {"model": {"name": "tsm_resnet18"}})
    assert load_config(p, ["data.input_size=32", "data.resize=32"]).data.input_size == 32
    # the check runs the model in eval mode: a 1-frame clip has no batch statistics to need
    assert load_config(p, ["model.name=tsn_mobilenetv2", "data.num_frames=1",
                           "data.input_size=32", "data.resize=32"]).data.num_frames == 1
    tiny_vit = ["model.name=timesformer_base", "model.patch_size=8", "model.img_size=32",
                "model.embed_dim=32", "model.depth=1", "model.num_heads=2"]
    assert load_config(p, tiny_vit + ["data.input_size=8", "data.resize=8"]).data.input_size == 8
    assert load_config(p, tiny_vit + ["data.input_size=48"]).data.input_size == 48
    for device in ("auto", "cpu", "cuda", "cuda:1", "mps"):
        assert load_config(p, [f"device={device}"]).device == device


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("model:\n  name: tsm_resnet18\ntrain:\n  lr: 0.1\n   epochs: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert msg.startswith(f"config file {p}: YAML syntax error at line 5, column 10: ")
    assert "\n" not in msg
    p.write_text("data: {root: data\n")
    with pytest.raises(ConfigError, match="broken.yaml: YAML syntax error at line 2, column 1"):
        load_config(p)
