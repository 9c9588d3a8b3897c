"""Config -> model and datasets: what ``fit`` and ``vidcls eval`` build from a config.

Order matters: the class list comes from the annotations (the model needs ``num_classes``),
while crop size and normalisation default to the *model's* preprocessing. So the engine reads
records first (``read_split``), builds the model (``build_model``), then builds the datasets
with ``dataset_preprocessing``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from torch import nn

from vidcls.data.dataset import VideoClipDataset
from vidcls.data.formats import annotation_file, build_records
from vidcls.data.transforms import build_train_transform
from vidcls.engine import checkpoint as ckpt
from vidcls.engine.config import Config, ConfigError
from vidcls.models import Preprocessing


def split_ann(cfg: Config, split: str) -> str | None:
    d = cfg.data
    if split == "train":
        return d.train_ann
    if split == "test":
        return d.test_ann or d.val_ann
    return d.val_ann


def read_split(cfg: Config, split: str):
    """``(records, classes)`` of one split (``train`` / ``val`` / ``test``)."""
    d = cfg.data
    ann = split_ann(cfg, split)
    # "test" falls back to the validation annotations when none are given
    split_name = "val" if split == "test" and not d.test_ann else split
    key = {"train": "data.train_ann", "val": "data.val_ann"}.get(split, "data.test_ann")
    if split == "test" and not d.test_ann:
        key = "data.val_ann"
    try:
        records, classes = build_records(d.format, root=d.root, ann_file=ann, split=split_name,
                                         **d.format_options)
    except FileNotFoundError as err:
        raise ConfigError(f"{err} (check data.root={d.root!r} and {key})") from None
    except ValueError as err:
        if "has no samples" not in str(err):
            raise ConfigError(f"{err} (check {key})") from None
        where = f"{key}={ann!r}" if ann else f"the {split} annotations under data.root={d.root!r}"
        raise ConfigError(f"the {split} list is empty: {where} names no video; add samples "
                          f"or point {key} at a list that has them") from None
    return records, classes


def split_source(cfg: Config, split: str) -> str:
    """What a split's records come from, for messages (its annotation file when known)."""
    d = cfg.data
    split_name = "val" if split == "test" and not d.test_ann else split
    ann = annotation_file(d.format, d.root, split_name, split_ann(cfg, split))
    return str(ann) if ann else f"{d.format}:{d.root} ({split})"


def is_multi_label(cfg: Config, *record_lists) -> bool:
    """``data.multi_label``, or (null) whether any record has several labels."""
    if cfg.data.multi_label is not None:
        return cfg.data.multi_label
    return any(isinstance(r.label, list) for records in record_lists for r in records)


def build_model(cfg: Config, num_classes: int, *, verbose: bool = True) -> nn.Module:
    """``cfg.model`` with a ``num_classes`` head; ``model.pretrained`` / ``model.init`` loaded.

    ``verbose`` reports which ``init`` weights were not taken (rank 0 only under ``torchrun``).
    """
    from vidcls.models import create_model

    m = cfg.model
    options = dict(m.options)
    if m.pretrained:
        if not Path(m.pretrained).is_file():
            raise ConfigError(f"config key model.pretrained: file {m.pretrained!r} not found")
        options["pretrained"] = m.pretrained
    model = create_model(m.name, num_classes=num_classes, num_frames=cfg.data.num_frames,
                         **options)
    if m.init:
        skipped = ckpt.init_from_checkpoint(model, m.init)
        if skipped and verbose:
            print(f"vidcls: initialised from {m.init}; new head for {num_classes} "
                  f"classes ({', '.join(skipped)} not taken)", file=sys.stderr)
    return model


def dataset_preprocessing(cfg: Config, model_prep: Preprocessing) -> Preprocessing:
    """The model's card, with what the config sets (``data.mean/std/input_size/resize``, when
    not null) and the config's frame sampling: the card a trained checkpoint records."""
    d = cfg.data
    size = d.input_size if d.input_size is not None else model_prep.input_size
    resize = d.resize if d.resize is not None else model_prep.resize
    if resize < min(size if isinstance(size, (list, tuple)) else (size,)):
        raise ConfigError(f"config keys data.resize={resize} < data.input_size={size}: the "
                          "short side must be at least the crop size")
    try:
        return model_prep.replace(mean=d.mean, std=d.std, input_size=size, resize=resize,
                                  num_frames=d.num_frames, sampling=d.sampling,
                                  clip_len=d.clip_len or d.num_frames,
                                  frame_interval=d.frame_interval)
    except ValueError as err:
        raise ConfigError(f"config section data: {err}") from None


def _reader_kwargs(cfg: Config) -> dict:
    d = cfg.data
    return dict(filename_tmpl=d.filename_tmpl, start_index=d.start_index, cache_mb=d.cache_mb)


def build_train_dataset(cfg: Config, records, classes, prep: Preprocessing, *,
                        multi_label: bool | None = None, source: str | None = None
                        ) -> VideoClipDataset:
    """Random crops and flips; an unreadable video is replaced by the next one."""
    d = cfg.data
    options = {}
    if d.crop == "multiscale":
        options["scales"] = tuple(d.scales)
    if d.crop == "resize_crop":
        options["short_side"] = tuple(d.short_side)
    flip_map = {int(k): int(v) for k, v in (d.flip_label_map or {}).items()}
    transform = build_train_transform(d.crop, size=prep.input_size, resize=prep.resize,
                                      flip=d.flip, flip_label_map=flip_map or None, **options)
    return VideoClipDataset(records, classes, num_frames=d.num_frames, sampling=d.sampling,
                            clip_len=d.clip_len, frame_interval=d.frame_interval, train=True,
                            transform=transform, seed=cfg.seed, multi_label=multi_label,
                            source=source or split_source(cfg, "train"), **_reader_kwargs(cfg))


def build_eval_dataset(cfg: Config, records, classes, prep: Preprocessing, *, num_clips: int = 1,
                       num_crops: int = 1, twice: bool = False, multi_label: bool | None = None,
                       source: str | None = None) -> VideoClipDataset:
    """Deterministic test views: ``num_clips`` clips (2 with ``twice``) x ``num_crops`` crops,
    sampled and cropped as the model card ``prep`` says. An unreadable video is skipped
    (reported, left out of the metrics), never replaced by another video's clip."""
    return VideoClipDataset(records, classes, **prep.sampling_options(), train=False,
                            transform=prep.eval_transform(num_crops), num_clips=num_clips,
                            twice=twice, seed=cfg.seed, substitute_bad=False,
                            multi_label=multi_label, source=source or split_source(cfg, "val"),
                            **_reader_kwargs(cfg))
