"""facebookresearch/TimeSformer checkpoints (``.pyth``) -> vidcls TimeSformer.

A ``.pyth`` is ``{'model_state': {...}, 'optimizer_state': ..., 'cfg': ...}``. vidcls keeps the
reference's parameter names, so the rename table (:data:`RULES`) only drops the wrappers::

    model.time_embed                            time_embed
    model.blocks.0.temporal_attn.qkv.weight     blocks.0.temporal_attn.qkv.weight
    module.model.head.weight                    head.weight      (saved under DataParallel)

The architecture is read from the shapes. The reference fits its embeddings to other clip
sizes and lengths with ``F.interpolate(mode="nearest")`` (``vit.py``'s ``forward_features``),
so the converted model records ``pos_interpolation="nearest", time_interpolation="nearest"``
and reproduces the reference at every size and frame count, not only the trained one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from torch import Tensor

from vidcls.convert._common import (NEAREST, Converted, build_timesformer, rename_keys,
                                    resolve_classes, timesformer_kwargs_from_state,
                                    timesformer_preprocessing)
from vidcls.convert._io import load_torch_file
from vidcls.models._weights import StateDict, unwrap_state_dict

__all__ = ["convert_timesformer_official", "reference_timesformer_state_dict", "RULES"]

#: reference names -> vidcls names (the same, without the wrappers)
RULES = [(r"^(?:module\.)?(?:model\.)?", "")]


def reference_timesformer_state_dict(state_dict: Mapping[str, Tensor]) -> StateDict:
    """facebookresearch/TimeSformer checkpoint (``model_state`` of a ``.pyth``) -> our names."""
    return rename_keys(state_dict, RULES, KeyError)


def convert_timesformer_official(src: str | Path, *, num_heads: int | None = None,
                                 num_frames: int | None = None, img_size: int | None = None,
                                 classes: Any = None) -> Converted:
    """A reference ``.pyth`` (see the module docstring). ``num_heads``, not stored, defaults
    to ``embed_dim // 64``; ``num_frames`` / ``img_size`` resize the embeddings as the reference
    does (nearest). Normalisation 0.45 / 0.225; 8 frames 32 apart for K400 models."""
    state = reference_timesformer_state_dict(unwrap_state_dict(load_torch_file(src), src))
    kwargs = timesformer_kwargs_from_state(state, num_heads, src)
    model = build_timesformer(kwargs, state, src, num_frames=num_frames, img_size=img_size,
                              **NEAREST)
    names = resolve_classes(classes, model.num_classes, Path(src).name)
    return Converted(model, names, timesformer_preprocessing(model),
                     {"attention": model.attention, "num_heads": kwargs["num_heads"]})
