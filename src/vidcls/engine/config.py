"""Experiment configuration: one YAML file fully describes a run.

The schema is a handful of plain dataclasses. ``load_config(path, overrides)`` reads the YAML,
applies ``key=value`` overrides (``train.epochs=5 model.shift_div=4``) and validates every key
against the dataclasses, so a typo or a wrong type fails before any work starts, with the key's
full path and the valid choices. There are deliberately no registries and no ``_base_``
inheritance: what you read in the file is the whole experiment.

The ``model`` section is open: besides ``name`` and ``pretrained``, every key is an
architecture option handed to ``create_model`` (``shift_div``, ``attention``, ``dropout`` ...).
Those keys are checked against the builder's signature instead of a dataclass, and
``data.input_size`` against what the model takes (measured on the model, shapes only).

Numbers are read as a person writes them: ``1e-3`` is a float (YAML 1.1 alone would make it a
string). A YAML syntax error names the file, line and column.

Long because: the schema is the documentation (every key is a dataclass field with its
comment), and the loader, the type coercion and the value checks read those fields and stay
next to them.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from vidcls.data.formats import FORMATS


class ConfigError(ValueError):
    """A config key is unknown, has the wrong type or an invalid value."""


# YAML 1.1 (PyYAML) reads a float only with a dot and a signed exponent, so ``1e-3``, ``1E-3``
# and ``1.0e3`` arrive as strings; every other reader (Python, JSON, YAML 1.2) takes them as
# numbers, and so does the config: both in files and in KEY=VALUE overrides.
_MANTISSA = r"[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)"
_EXPONENT_FLOAT = re.compile(rf"^{_MANTISSA}[eE][-+]?[0-9]+$")
_NUMBER = re.compile(rf"^{_MANTISSA}(?:[eE][-+]?[0-9]+)?$")


class _ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads exponent floats without a dot (``1e-3``) as floats."""


_ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT,
                                    list("-+0123456789."))


def parse_yaml(text: str):
    """One YAML document with the config's number rules (``1e-3`` is a float)."""
    return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 (a SafeLoader subclass)


@dataclass
class ModelConfig:
    """Which network to build. Extra YAML keys become ``options`` (architecture arguments)."""

    name: str = "tsm_resnet50"
    # ImageNet weights to start from: a torchvision ResNet / MobileNetV2 file or a timm ViT-B/16
    # file (handed to the builder as ``pretrained=path``).
    pretrained: Optional[str] = None
    # A vidcls checkpoint (e.g. from ``vidcls convert``) to start from; a head of another
    # class count is re-initialised (fine-tuning). CLI: ``vidcls train CONFIG --init CKPT``.
    init: Optional[str] = None
    options: dict = field(default_factory=dict)


@dataclass
class DataConfig:
    """Where the videos are, how clips are sampled, batched and augmented."""

    format: Literal[FORMATS] = "list"  # type: ignore[valid-type]
    root: str = "data"
    train_ann: Optional[str] = None  # annotation file of the training split (format-specific)
    val_ann: Optional[str] = None
    test_ann: Optional[str] = None  # default: val_ann
    # Several labels per video (BCE loss, sigmoid outputs, mAP); null = when any annotation
    # line has several labels.
    multi_label: Optional[bool] = None
    format_options: dict = field(default_factory=dict)  # extra build_records keywords
    num_frames: int = 8  # frames per clip (T); also the model's num_frames
    sampling: Literal["segment", "dense"] = "segment"
    clip_len: Optional[int] = None  # dense sampling: frames spanned / frame_interval (default T)
    frame_interval: int = 1
    batch_size: int = 8  # clips per process per step
    workers: int = 2
    # Keep decoded videos in memory, up to this many MB per split (0 = off): for small datasets
    # trained for many epochs, where decoding every epoch costs more than the model.
    cache_mb: float = 0.0
    # Preprocessing; null = the model's own (model.preprocessing).
    input_size: Optional[int] = None
    resize: Optional[int] = None
    mean: Optional[list[float]] = None
    std: Optional[list[float]] = None
    # Training augmentation (vidcls.data.transforms): "multiscale" = TSM's multi-scale crop,
    # "random_resized" = Inception crop, "resize_crop" = short side jittered in ``short_side``
    # then a random crop (TimeSformer / SlowFast), "center" = no random crop.
    crop: Literal["multiscale", "random_resized", "resize_crop", "center"] = "multiscale"
    scales: list[float] = field(default_factory=lambda: [1.0, 0.875, 0.75, 0.66])
    short_side: Optional[list[int]] = None  # resize_crop range, e.g. [256, 320]
    flip: bool = True
    # Labels a horizontal flip exchanges ({left: right}); needed on direction datasets.
    flip_label_map: Optional[dict] = None
    # Rawframe folders: file name template and first index (null = detected).
    filename_tmpl: Optional[str] = None
    start_index: Optional[int] = None


@dataclass
class TrainConfig:
    """Optimisation, schedule, precision and logging."""

    epochs: int = 50
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.01
    # When set, ``lr`` is the rate for this many clips per optimizer step and is scaled linearly
    # with the real global batch (Goyal et al.): lr * global_batch / lr_batch_size.
    lr_batch_size: Optional[int] = None
    momentum: float = 0.9
    nesterov: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 1e-4
    no_decay_bias_norm: bool = True  # biases and norm parameters get no weight decay
    head_lr_mult: float = 1.0  # lr multiplier of the classifier (TSM fine-tuning uses 5)
    scheduler: Literal["step", "cosine", "constant"] = "step"
    milestones: list[int] = field(default_factory=lambda: [20, 40])  # epochs (step scheduler)
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    warmup_start_factor: float = 0.1  # lr multiplier at the first warm-up step
    min_lr: float = 0.0  # cosine floor
    label_smoothing: float = 0.0
    clip_grad_norm: Optional[float] = None
    # Gradient accumulation: either give the steps directly or the global batch to reach
    # (batch_size x processes x steps).
    accumulate_steps: Optional[int] = None
    global_batch_size: Optional[int] = None
    partial_bn: bool = False  # freeze every BatchNorm but the first (TSM)
    # auto: bf16 where the device computes it natively (AVX-512-BF16 / AMX CPUs, CUDA with
    # bf16), else fp32. The default stays fp32 so a config trains to the same numbers on every
    # machine kind.
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool = False
    sync_bn: bool = False
    eval_every: int = 1  # epochs between validations (the last epoch is always validated)
    log_every: int = 10  # steps between metrics-log lines
    max_steps_per_epoch: Optional[int] = None  # cap optimizer steps per epoch (quick runs)
    deterministic: bool = False  # torch.use_deterministic_algorithms for bit-exact reruns
    tensorboard: bool = True


@dataclass
class EvalConfig:
    """Test-time views for ``vidcls eval`` (validation during training uses 1 clip x 1 crop)."""

    num_clips: int = 1
    num_crops: Literal[1, 3, 10] = 1
    twice: bool = False  # twice-sampling (TSM on Something-Something): 2 shifted clips
    batch_size: Optional[int] = None  # default: data.batch_size
    # The validation metric that picks checkpoints/best (multi-label runs select on mAP, or on
    # loss when that is asked for).
    best_metric: Literal["top1", "top5", "mean_class_acc", "mAP", "loss"] = "top1"


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output_dir: str = "runs/default"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps

    def to_dict(self) -> dict:
        """Plain dict in the YAML layout (model options flattened back into ``model``)."""
        out = dataclasses.asdict(self)
        options = out["model"].pop("options")
        out["model"].update(options)
        return out


# --------------------------------------------------------------------------------------
# Loading, overrides, validation
# --------------------------------------------------------------------------------------

def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                *, data: dict | None = None) -> Config:
    """Read YAML ``path`` (or the mapping ``data``), apply ``key=value`` overrides, validate."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} not found (give a YAML file, e.g. "
                              f"configs/demo_tsm.yaml)")
        try:
            raw = parse_yaml(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(_yaml_error_message(f"config file {path}", err)) from None
    else:
        raw = dict(data or {})
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path}: top level must be a mapping of sections, "
                          f"got {type(raw).__name__}")
    for item in overrides or []:
        apply_override(raw, item)
    return from_dict(raw)


def _yaml_error_message(where: str, err: yaml.YAMLError) -> str:
    """``where: YAML syntax error at line L, column C: problem`` (1-based, as editors count)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{where}: YAML syntax error{at}: {problem} (fix it there)"


def apply_override(raw: dict, item: str) -> None:
    """Set ``a.b.c=value`` in the nested dict ``raw``; the value is parsed as YAML."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {item!r} is not KEY=VALUE (e.g. train.epochs=5)")
    try:
        value = parse_yaml(text) if text.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(_yaml_error_message(f"override {item!r}", err)) from None
    node = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {'.'.join(parts[:i + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def from_dict(raw: dict) -> Config:
    """Validate a nested dict against the schema and build the ``Config``."""
    raw = dict(raw)
    model_raw = raw.get("model", {})
    if model_raw is None:
        model_raw = {}
    if not isinstance(model_raw, dict):
        raise ConfigError(f"config key model: expected a section (mapping), got {model_raw!r}")
    model_raw = dict(model_raw)
    options = dict(model_raw.pop("options", None) or {})
    for key in list(model_raw):
        if key not in ("name", "pretrained", "init"):
            options[key] = model_raw.pop(key)
    model_raw["options"] = options
    raw["model"] = model_raw
    cfg = _build(Config, raw, "")
    _check_values(cfg)
    meta_model = _check_model_options(cfg.model, cfg.data.num_frames)
    _check_input_size(cfg, meta_model)
    return cfg


def _build(cls, raw: Any, prefix: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config key {prefix or '<root>'}: expected a section (mapping), "
                          f"got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in raw.items():
        path = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(_unknown_key_message(path, key, list(fields)))
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, path + ".")
        else:
            kwargs[key] = _coerce(value, hint, path)
    return cls(**kwargs)


def _unknown_key_message(path: str, key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"config key {path}: unknown key{hint}; valid keys here: {', '.join(valid)}"


def _type_name(hint) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    if origin is list:
        (inner,) = typing.get_args(hint) or (Any,)
        return f"list of {_type_name(inner)}"
    if origin is dict or hint is dict:
        return "mapping"
    return getattr(hint, "__name__", str(hint))


def _coerce(value: Any, hint, path: str) -> Any:
    """Check ``value`` against the type ``hint``; ints are accepted where floats are expected."""
    origin = typing.get_origin(hint)
    bad = ConfigError(f"config key {path}: expected {_type_name(hint)}, got {value!r} "
                      f"({type(value).__name__})")
    if hint is Any:
        return value
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices or isinstance(value, bool) != any(isinstance(c, bool)
                                                                   for c in choices):
            raise ConfigError(f"config key {path}: {value!r} is not valid; choose one of: "
                              f"{', '.join(str(c) for c in choices)}")
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as err:
                last = err
        raise last
    if origin is list:
        (inner,) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise bad
        return [_coerce(v, inner, f"{path}[{i}]") for i, v in enumerate(value)]
    if hint is dict or origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if hint is float:
        if isinstance(value, str) and _NUMBER.match(value.strip()):
            return float(value.strip().replace("_", ""))  # "1e-3" from a JSON/dict config
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if hint is str:
        if value is None:
            raise ConfigError(f"config key {path}: empty; give "
                              f"{_PATH_KEYS.get(path, 'a value')}")
        if not isinstance(value, str):
            raise bad
        return value
    raise TypeError(f"config schema: unsupported type {hint!r} at {path}")


def _builder_option_names(name: str) -> list[str] | None:
    """Keyword arguments the model builder accepts (None when it takes ``**kwargs``)."""
    from vidcls.models import get_builder

    try:
        builder = get_builder(name)
    except ValueError as err:
        raise ConfigError(f"config key model.name: {err}") from None
    params = inspect.signature(builder).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (inspect.Parameter.KEYWORD_ONLY,
                                                 inspect.Parameter.POSITIONAL_OR_KEYWORD)]


# Path keys that must not be empty, with what to give instead (the optional ones may be null).
_PATH_KEYS = {"output_dir": "the run directory, e.g. output_dir=runs/my_run",
              "data.root": "the dataset folder, e.g. data.root=data/synth"}
_OPTIONAL_PATH_KEYS = ("data.train_ann", "data.val_ann", "data.test_ann", "model.pretrained",
                       "model.init")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")

# Set by the engine from other sections, never by ``model.*``.
_RESERVED_OPTIONS = ("num_classes", "num_frames")


def _check_model_options(model: ModelConfig, num_frames: int):
    """Reject unknown or invalid architecture options now, not after the data is loaded.

    Names are checked against the builder's signature; values by building the model on the
    ``meta`` device (no memory, no arithmetic), which runs the builder's own checks. Returns
    that meta model (``_check_input_size`` runs it).
    """
    valid = _builder_option_names(model.name)
    for key in model.options:
        if key in _RESERVED_OPTIONS:
            where = "data.num_frames" if key == "num_frames" else "the dataset's class list"
            raise ConfigError(f"config key model.{key}: set by {where}, remove it from model")
        if valid is not None and key not in valid:
            choices = [v for v in valid if v not in _RESERVED_OPTIONS + ("pretrained",)]
            raise ConfigError(_unknown_key_message(f"model.{key}", key,
                                                   ["name", "pretrained", "init"] + choices))
    if model.init is not None and not Path(model.init).exists():
        raise ConfigError(f"config key model.init: checkpoint {model.init!r} not found "
                          f"(give a vidcls checkpoint directory, e.g. from vidcls convert)")
    import torch

    from vidcls.models import create_model

    try:
        with torch.device("meta"):
            return create_model(model.name, num_classes=2, num_frames=num_frames,
                                **model.options)
    except (ValueError, TypeError) as err:
        keys = ", ".join(f"model.{k}" for k in model.options) or "model.name"
        raise ConfigError(f"config key {keys}: {err}") from None


def _smallest_conv_map(model, hw: tuple[int, int], num_frames: int) -> int | None:
    """Run ``model`` (on the meta device: shapes only) on a ``hw`` clip and return the smallest
    side of any ``Conv2d`` output (``None``: the model has no convolutions). Raises what the
    model's own input checks raise."""
    import torch

    sides: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sides.append(min(out.shape[-2:])))
             for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    model.eval()  # batch norm of a 1-clip batch: no batch statistics to need
    try:
        with torch.no_grad():
            model(torch.empty(1, num_frames, 3, *hw, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return min(sides) if sides else None


def _check_input_size(cfg: Config, model) -> None:
    """``data.input_size`` must be a crop the model can take.

    Two rules, both measured on the model itself (shapes only, on the meta device): its own
    input checks (TimeSformer: a positive multiple of the patch size), and no crop below its
    total stride, measured at the model's own crop size (ResNet / MobileNetV2: 32, TimeSformer:
    the patch size). A ResNet runs on smaller crops without an error, but its last stages
    then see a single zero-padded pixel: nothing a video model can learn from.
    """
    size = cfg.data.input_size
    if size is None:
        return  # the model's own crop size
    name = cfg.model.name
    try:
        _smallest_conv_map(model, (size, size), cfg.data.num_frames)
    except (ValueError, RuntimeError) as err:
        raise ConfigError(f"config key data.input_size: {size} does not fit {name}: "
                          f"{str(err).splitlines()[0]}") from None
    own_h, own_w = model.preprocessing.crop_hw
    smallest = _smallest_conv_map(model, (own_h, own_w), cfg.data.num_frames)
    if smallest:
        stride = -(-min(own_h, own_w) // smallest)
        if size < stride:
            raise ConfigError(
                f"config key data.input_size: {size} is below what {name} takes; its "
                f"feature map shrinks {stride}x, so use data.input_size >= {stride}")


def _check_values(cfg: Config) -> None:
    """Range checks that types alone cannot express."""
    def positive(path: str, value, allow_none=False):
        if value is None and allow_none:
            return
        if value is None or value <= 0:
            raise ConfigError(f"config key {path}: must be > 0, got {value!r}")

    d, t, e = cfg.data, cfg.train, cfg.eval
    _check_paths(cfg)
    if not _DEVICE.match(cfg.device):
        raise ConfigError(f"config key device: {cfg.device!r} is not a device vidcls runs on; "
                          f"use auto, cpu, cuda, cuda:N or mps")
    positive("data.num_frames", d.num_frames)
    positive("data.batch_size", d.batch_size)
    positive("data.frame_interval", d.frame_interval)
    positive("data.clip_len", d.clip_len, allow_none=True)
    positive("data.input_size", d.input_size, allow_none=True)
    positive("data.resize", d.resize, allow_none=True)
    if d.workers < 0:
        raise ConfigError(f"config key data.workers: must be >= 0, got {d.workers}")
    for key in ("mean", "std"):
        value = getattr(d, key)
        if value is not None and len(value) != 3:
            raise ConfigError(f"config key data.{key}: needs 3 values (R, G, B), got {value}")
    positive("train.epochs", t.epochs)
    positive("train.lr", t.lr)
    positive("train.lr_batch_size", t.lr_batch_size, allow_none=True)
    positive("train.accumulate_steps", t.accumulate_steps, allow_none=True)
    positive("train.global_batch_size", t.global_batch_size, allow_none=True)
    positive("train.eval_every", t.eval_every)
    positive("train.log_every", t.log_every)
    positive("train.max_steps_per_epoch", t.max_steps_per_epoch, allow_none=True)
    positive("train.clip_grad_norm", t.clip_grad_norm, allow_none=True)
    positive("eval.num_clips", e.num_clips)
    positive("eval.batch_size", e.batch_size, allow_none=True)
    if len(t.betas) != 2:
        raise ConfigError(f"config key train.betas: needs 2 values, got {t.betas}")
    if not 0.0 <= t.label_smoothing < 1.0:
        raise ConfigError(f"config key train.label_smoothing: must be in [0, 1), "
                          f"got {t.label_smoothing}")
    if t.warmup_epochs < 0:
        raise ConfigError(f"config key train.warmup_epochs: must be >= 0, got {t.warmup_epochs}")
    if sorted(t.milestones) != list(t.milestones):
        raise ConfigError(f"config key train.milestones: must be increasing, got {t.milestones}")
    if t.accumulate_steps is not None and t.global_batch_size is not None:
        raise ConfigError("config keys train.accumulate_steps and train.global_batch_size: "
                          "set only one of them")
    if d.short_side is not None and (len(d.short_side) != 2 or d.short_side[0] > d.short_side[1]):
        raise ConfigError(f"config key data.short_side: needs [min, max], got {d.short_side}")
    if d.crop == "resize_crop" and d.short_side is None:
        raise ConfigError("config key data.short_side: crop=resize_crop needs the short-side "
                          "range, e.g. data.short_side=[256,320]")
    if not d.scales or any(not 0 < s <= 1 for s in d.scales):
        raise ConfigError(f"config key data.scales: needs values in (0, 1], got {d.scales}")


def _check_paths(cfg: Config) -> None:
    """An empty path would mean the current directory (output_dir) or no file at all."""
    def value(path: str):
        node = cfg
        for part in path.split("."):
            node = getattr(node, part)
        return node

    for key, what in _PATH_KEYS.items():
        if not value(key).strip():
            raise ConfigError(f"config key {key}: empty; give {what}")
    for key in _OPTIONAL_PATH_KEYS:
        v = value(key)
        if v is not None and not v.strip():
            raise ConfigError(f"config key {key}: empty; give a path or null (none)")


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (what the run really used)."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")


def resolve_accumulation(train: TrainConfig, batch_size: int, world_size: int) -> int:
    """Micro-batches per optimizer step, from ``accumulate_steps`` or ``global_batch_size``."""
    if train.accumulate_steps is not None:
        return train.accumulate_steps
    if train.global_batch_size is None:
        return 1
    per_step = batch_size * world_size
    if train.global_batch_size % per_step:
        raise ConfigError(
            f"config key train.global_batch_size: {train.global_batch_size} is not a multiple of "
            f"data.batch_size x processes = {batch_size} x {world_size} = {per_step}; "
            f"change one of them")
    return train.global_batch_size // per_step
