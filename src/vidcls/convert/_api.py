"""What ``vidcls.convert`` exports, loaded on first use (see the package docstring): the
``--from`` name -> converter table, :func:`convert` and :func:`convert_checkpoint`, and the
re-exported helpers of the converter modules (the imports this module does not use itself are
those re-exports)."""
from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any, Callable

from vidcls.convert._common import ConversionWarning, Converted, resolve_classes
from vidcls.convert._io import load_torch_file, read_paddle_params
from vidcls.convert.detect import check_format, detect_format
from vidcls.convert.formats import AUTO, FORMAT_NAMES
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

#: ``--from`` name -> converter; the names (and their order) are ``formats.FORMAT_NAMES``.
FORMATS: dict[str, Callable[..., Converted]] = dict(zip(FORMAT_NAMES, (
    convert_tsm_official,
    convert_tsm_mmaction2,
    convert_tsm_paddle,
    convert_timesformer_official,
    convert_timesformer_hf,
    convert_timesformer_mmaction2,
    convert_torchvision_resnet,
    convert_timm_vit,
), strict=True))


def convert(src: str | Path, fmt: str = AUTO, **options: Any) -> Converted:
    """Convert the checkpoint ``src`` of format ``fmt`` (see ``FORMATS``) in memory.

    ``fmt="auto"`` reads the format from the file and its keys (:func:`.detect.detect_format`);
    an explicit format the file does not look like is refused, naming the one it looks like.
    ``options`` are the converter's keyword arguments (``num_frames``, ``shift_div``,
    ``classes``, ...); one the format does not use is an error, not silently ignored. A setting
    the file does not store and no option gives falls back to a default with a
    :class:`ConversionWarning`; ``source["assumed"]`` of the result records those defaults.
    """
    if fmt != AUTO and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)} "
                         f"(or {AUTO}: read it from the file)")
    if fmt == AUTO:
        fmt = detect_format(src)
    else:
        check_format(src, fmt)
    fn = FORMATS[fmt]
    accepted = set(inspect.signature(fn).parameters) - {"src"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"format {fmt} does not use {', '.join(unknown)}; it accepts "
                         f"{', '.join(sorted(accepted))}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConversionWarning)
        conv = fn(src, **options)
    assumed = {}
    for w in caught:  # the defaults are recorded, and every warning reaches the caller
        if isinstance(w.message, ConversionWarning):
            assumed[w.message.setting] = w.message.value
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    conv.source = {"format": fmt, **conv.source, **({"assumed": assumed} if assumed else {})}
    return conv


def convert_checkpoint(src: str | Path, dst: str | Path, fmt: str = AUTO, *,
                       provenance: dict | None = None, expect_num_classes: int | None = None,
                       **options: Any) -> Path:
    """Convert ``src`` (format ``fmt``, by default read from the file) and write the vidcls
    checkpoint directory ``dst`` (``model.safetensors`` + ``meta.json`` with the model's build
    options, class names, preprocessing and the conversion's source and assumed defaults).

    ``provenance``: more facts for ``meta["source"]`` (the model zoo records its entry, URL,
    digest and license). ``expect_num_classes``: fail, writing nothing, when the file's head
    has another class count (a download that is not the model it was published as)."""
    conv = convert(src, fmt, **options)
    if expect_num_classes is not None and conv.model.num_classes != expect_num_classes:
        raise ValueError(f"{src} has {conv.model.num_classes} classes where "
                         f"{expect_num_classes} were expected: it is not the model it is named as")
    source = {"file": str(src), **(provenance or {}),
              **{k: v for k, v in conv.source.items() if v is not None}}
    meta = build_meta(conv.model, classes=conv.classes, preprocessing=conv.preprocessing,
                      source=source)
    return save_model_checkpoint(dst, conv.model, meta)
