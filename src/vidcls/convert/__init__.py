"""Foreign checkpoints -> vidcls checkpoints (``vidcls convert SRC DST --from FORMAT``).

One module per source format, each with its literal rename table (as HF keeps a
``convert_<model>_to_pytorch.py`` beside each model):

=========================  ===========================================================
``tsm-official``           :mod:`.tsm_official` (TSM authors, incl. the online demo)
``tsm-mmaction2``          :mod:`.tsm_mmaction2`
``tsm-paddle``             :mod:`.tsm_paddle` (PaddleVideo, mirrored shift)
``timesformer-official``   :mod:`.timesformer_official` (facebookresearch ``.pyth``)
``timesformer-hf``         :mod:`.timesformer_hf` (HF transformers)
``timesformer-mmaction2``  :mod:`.timesformer_mmaction2`
``torchvision-resnet``     :mod:`.image_init` (ImageNet init for ``train --init``)
``timm-vit``               :mod:`.image_init`
=========================  ===========================================================

Each ``convert_<format>(src, **options)`` reads one published layout without running code from
it (:mod:`._io`), renames its keys to vidcls names, builds the matching registered model (so the
checkpoint records how to rebuild it, with the true builder name) and loads through the one
weight path, ``models._weights.load_filtered``: a key that does not fit is an error listing the
missing and unexpected keys, never a silently random layer. It returns a :class:`Converted`
(model, class names, the :class:`~vidcls.models.Preprocessing` the source was trained with);
:func:`convert_checkpoint` writes it as a checkpoint directory that predict / eval / stream /
train --init read. Shared helpers live in :mod:`._common`.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

from vidcls.convert._common import Converted, resolve_classes
from vidcls.convert._io import load_torch_file, read_paddle_params
from vidcls.convert.image_init import (convert_timm_vit, convert_torchvision_resnet,
                                       load_timesformer_weights, timesformer_from_timm_vit)
from vidcls.convert.timesformer_hf import (convert_timesformer_hf, hf_timesformer_state_dict,
                                           timesformer_from_hf,
                                           timesformer_kwargs_from_hf_config)
from vidcls.convert.timesformer_mmaction2 import convert_timesformer_mmaction2
from vidcls.convert.timesformer_official import (convert_timesformer_official,
                                                 reference_timesformer_state_dict)
from vidcls.convert.tsm_mmaction2 import convert_tsm_mmaction2
from vidcls.convert.tsm_official import convert_tsm_official, parse_tsm_filename
from vidcls.convert.tsm_paddle import convert_tsm_paddle, mirror_shift_channels
from vidcls.engine.checkpoint import build_meta, save_model_checkpoint
from vidcls.models._weights import read_state_dict
from vidcls.models.timesformer import timm_vit_to_timesformer_state_dict

__all__ = [
    "read_state_dict", "hf_timesformer_state_dict", "timesformer_kwargs_from_hf_config",
    "timesformer_from_hf", "reference_timesformer_state_dict",
    "timm_vit_to_timesformer_state_dict", "timesformer_from_timm_vit",
    "load_timesformer_weights",
    "FORMATS", "Converted", "convert", "convert_checkpoint", "load_torch_file",
    "read_paddle_params", "parse_tsm_filename", "mirror_shift_channels", "resolve_classes",
    "convert_tsm_official", "convert_tsm_mmaction2", "convert_tsm_paddle",
    "convert_timesformer_official", "convert_timesformer_hf", "convert_timesformer_mmaction2",
    "convert_torchvision_resnet", "convert_timm_vit",
]

#: ``--from`` name -> converter
FORMATS: dict[str, Callable[..., Converted]] = {
    "tsm-official": convert_tsm_official,
    "tsm-mmaction2": convert_tsm_mmaction2,
    "tsm-paddle": convert_tsm_paddle,
    "timesformer-official": convert_timesformer_official,
    "timesformer-hf": convert_timesformer_hf,
    "timesformer-mmaction2": convert_timesformer_mmaction2,
    "torchvision-resnet": convert_torchvision_resnet,
    "timm-vit": convert_timm_vit,
}


def convert(src: str | Path, fmt: str, **options: Any) -> Converted:
    """Convert the checkpoint ``src`` of format ``fmt`` (see ``FORMATS``) in memory.

    ``options`` are the converter's keyword arguments (``num_frames``, ``shift_div``,
    ``classes``, ...); one the format does not use is an error, not silently ignored.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    fn = FORMATS[fmt]
    accepted = set(inspect.signature(fn).parameters) - {"src"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"format {fmt} does not use {', '.join(unknown)}; it accepts "
                         f"{', '.join(sorted(accepted))}")
    return fn(src, **options)


def convert_checkpoint(src: str | Path, dst: str | Path, fmt: str, **options: Any) -> Path:
    """Convert ``src`` and write the vidcls checkpoint directory ``dst`` (``model.safetensors``
    + ``meta.json`` with the model's build options, class names and preprocessing)."""
    conv = convert(src, fmt, **options)
    source = {"format": fmt, "file": str(src), **{k: v for k, v in conv.source.items()
                                                   if v is not None}}
    meta = build_meta(conv.model, classes=conv.classes, preprocessing=conv.preprocessing,
                      source=source)
    return save_model_checkpoint(dst, conv.model, meta)
