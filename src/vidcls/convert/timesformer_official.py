"""facebookresearch/TimeSformer checkpoints (``.pyth``) -> vidcls TimeSformer.

A ``.pyth`` is what the reference's ``timesformer/utils/checkpoint.py`` ``save_checkpoint``
writes: ``{'epoch', 'model_state': {...}, 'optimizer_state': ..., 'cfg': cfg.dump()}``. vidcls
keeps the reference's parameter names, so the rename table (:data:`RULES`) only drops the
wrappers::

    model.time_embed                            time_embed
    model.blocks.0.temporal_attn.qkv.weight     blocks.0.temporal_attn.qkv.weight
    module.model.head.weight                    head.weight      (saved under DataParallel)

The architecture is read from the shapes; what they do not show comes from the stored yacs
config (:func:`._configs.reference_cfg`): ``DATA.NUM_FRAMES`` (the frames of a space-only model,
which has no time embedding), ``DATA.SAMPLING_RATE``, ``DATA.TEST_CROP_SIZE`` (and the test
scale: the crop size for 3 spatial crops, else ``TRAIN_JITTER_SCALES[0]``), ``DATA.MEAN`` /
``STD``, ``TRAIN.DATASET`` (``ssv2`` samples one frame per segment), checked against
``MODEL.NUM_CLASSES`` and ``TIMESFORMER.ATTENTION_TYPE``. The reference fits its embeddings to
other clip sizes and lengths with ``F.interpolate(mode="nearest")`` (``vit.py``'s
``forward_features``), so the converted model records ``pos_interpolation="nearest",
time_interpolation="nearest"`` and reproduces the reference at every size and frame count.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from torch import Tensor

from vidcls.convert._common import (NEAREST, REFERENCE_ATTENTION, Converted, assume,
                                    build_timesformer, rename_keys, resolve_classes,
                                    timesformer_kwargs_from_state, timesformer_preprocessing)
from vidcls.convert._configs import cfg_get, reference_cfg
from vidcls.convert._io import load_torch_file
from vidcls.models import Preprocessing
from vidcls.models._weights import StateDict, unwrap_state_dict

__all__ = ["convert_timesformer_official", "reference_timesformer_state_dict", "RULES"]

#: reference names -> vidcls names (the same, without the wrappers)
RULES = [(r"^(?:module\.)?(?:model\.)?", "")]


def reference_timesformer_state_dict(state_dict: Mapping[str, Tensor]) -> StateDict:
    """facebookresearch/TimeSformer checkpoint (``model_state`` of a ``.pyth``) -> our names."""
    return rename_keys(state_dict, RULES, KeyError)


def convert_timesformer_official(src: str | Path, *, num_heads: int | None = None,
                                 num_frames: int | None = None, img_size: int | None = None,
                                 frame_interval: int | None = None,
                                 classes: Any = None) -> Converted:
    """A reference ``.pyth`` (see the module docstring). ``num_heads``, not stored, defaults
    to ``embed_dim // 64``; ``num_frames`` / ``img_size`` resize the embeddings as the reference
    does (nearest); frames, sampling, crop and normalisation come from the stored cfg, else the
    reference's K400 recipe (announced). Explicit options win over the cfg."""
    ckpt = load_torch_file(src)
    cfg = reference_cfg(ckpt, src)
    state = reference_timesformer_state_dict(unwrap_state_dict(ckpt, src))
    kwargs = timesformer_kwargs_from_state(state, num_heads, src)
    _check_cfg(cfg, kwargs, src)
    frames = num_frames or cfg_get(cfg, "DATA.NUM_FRAMES") or kwargs["num_frames"] or assume(
        "num_frames", 8, f"{src} is a space-only model (no time embedding to show its frames) "
        f"and {'its cfg has no DATA.NUM_FRAMES' if cfg else 'stores no cfg'}")
    model = build_timesformer(kwargs, state, src, num_frames=int(frames), img_size=img_size,
                              **NEAREST)
    names = resolve_classes(classes, model.num_classes, Path(src).name, source=src)
    return Converted(model, names, _reference_preprocessing(model, cfg, src, img_size,
                                                            frame_interval),
                     {"attention": model.attention, "num_heads": kwargs["num_heads"]})


def _check_cfg(cfg: dict, kwargs: dict, src: Any) -> None:
    """The stored cfg must describe the weights it was saved with."""
    classes = cfg_get(cfg, "MODEL.NUM_CLASSES")
    if classes is not None and int(classes) != kwargs["num_classes"]:
        raise ValueError(f"{src}: its cfg says MODEL.NUM_CLASSES={classes} but its head has "
                         f"{kwargs['num_classes']} classes")
    attention = cfg_get(cfg, "TIMESFORMER.ATTENTION_TYPE")
    if attention is not None and REFERENCE_ATTENTION.get(attention) != kwargs["attention"]:
        raise ValueError(f"{src}: its cfg says TIMESFORMER.ATTENTION_TYPE={attention!r} but its "
                         f"weights are a {kwargs['attention']!r} model")


def _reference_preprocessing(model, cfg: dict, src: Any, img_size: int | None,
                             frame_interval: int | None) -> Preprocessing:
    """The reference's test recipe from its cfg (``kinetics.py`` / ``ssv2.py``): ``TEST_CROP_SIZE``
    crops of the short side scaled to the crop (3 spatial crops) or to
    ``TRAIN_JITTER_SCALES[0]`` (1 crop); Kinetics samples ``NUM_FRAMES`` frames
    ``SAMPLING_RATE`` apart, SSv2 one per segment."""
    if not cfg:
        return timesformer_preprocessing(model, frame_interval=frame_interval, source=src)
    crop = img_size or cfg_get(cfg, "DATA.TEST_CROP_SIZE") or min(model.img_size)
    scales = cfg_get(cfg, "DATA.TRAIN_JITTER_SCALES") or [crop]
    three_crops = (cfg_get(cfg, "TEST.NUM_SPATIAL_CROPS") or 3) > 1
    resize = crop if img_size or three_crops else max(int(scales[0]), crop)
    dataset = cfg_get(cfg, "TEST.DATASET") or cfg_get(cfg, "TRAIN.DATASET") or "kinetics"
    sampling = "segment" if str(dataset).lower() == "ssv2" else "dense"
    interval = frame_interval or cfg_get(cfg, "DATA.SAMPLING_RATE")
    return timesformer_preprocessing(
        model, sampling=sampling, frame_interval=None if interval is None else int(interval),
        input_size=int(crop), resize=int(resize), mean=cfg_get(cfg, "DATA.MEAN"),
        std=cfg_get(cfg, "DATA.STD"), source=src)
