"""mmaction2 ``TimeSformer`` + ``TimeSformerHead`` checkpoints -> vidcls TimeSformer.

mmaction2 builds the blocks from mmcv bricks: ``nn.MultiheadAttention`` (``in_proj_weight`` =
q, k, v stacked like ``qkv``; ``out_proj`` = ``proj``). Divided space-time layers hold
``attentions.0`` (temporal, with ``temporal_fc``), ``attentions.1`` (spatial) and
``ffns.0`` (with its norm); joint / space-only layers ``norms.0/1``, ``attentions.0`` and
``ffns.0``. :func:`rules` gives the literal table for each (``L`` =
``backbone.transformer_layers.layers.N``)::

    L.attentions.0.attn.in_proj_weight      blocks.N.temporal_attn.qkv.weight
    L.attentions.0.temporal_fc.weight       blocks.N.temporal_fc.weight
    L.attentions.1.norm.bias                blocks.N.norm1.bias
    L.ffns.0.layers.0.0.weight              blocks.N.mlp.fc1.weight
    backbone.patch_embed.projection.weight  patch_embed.proj.weight
    cls_head.fc_cls.weight                  head.weight

What the weights do not show comes from the checkpoint's stored config (:mod:`._configs`):
the backbone's ``num_frames`` (a space-only model has no time embedding), ``num_heads``,
``attention_type`` (checked against the layers), the test pipeline's ``SampleFrames``
(``clip_len``, ``frame_interval``), ``Resize`` / ``crop_size`` and the normalisation
``mean`` / ``std`` (0..255 units); without a config, the ``8x32x1`` of the config or file
name; class names from ``meta``. Explicit options win. mmaction2 never resizes the embeddings
(its clips have the trained size and length), so the converted model keeps vidcls' default
interpolation for other clips.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from vidcls.convert._common import (HALF_NORM, REFERENCE_ATTENTION, Converted, Rule, assume,
                                    build_timesformer, rename_keys, resolve_classes,
                                    timesformer_kwargs_from_state, timesformer_preprocessing)
from vidcls.convert._configs import (config_list, config_names, config_section, config_text,
                                     config_value, meta_classes, sampling_from_name)
from vidcls.convert._io import load_torch_file
from vidcls.models import Preprocessing
from vidcls.models._weights import strip_prefix, unwrap_state_dict

__all__ = ["convert_timesformer_mmaction2", "rules"]

_LAYER = r"^backbone\.transformer_layers\.layers\.(\d+)\."


def rules(divided: bool) -> list[Rule]:
    """mmaction2 names -> vidcls names, for divided space-time or joint / space-only layers."""
    shared = [(r"^backbone\.patch_embed\.projection\.", "patch_embed.proj."),
              (r"^backbone\.(cls_token|pos_embed|time_embed)$", r"\1"),
              (r"^backbone\.norm\.", "norm."), (r"^cls_head\.fc_cls\.", "head."),
              (_LAYER + r"ffns\.0\.layers\.0\.0\.", r"blocks.\1.mlp.fc1."),
              (_LAYER + r"ffns\.0\.layers\.1\.", r"blocks.\1.mlp.fc2.")]
    if divided:  # DividedTemporalAttentionWithNorm, DividedSpatialAttentionWithNorm, FFNWithNorm
        return shared + [
            (_LAYER + r"attentions\.0\.norm\.", r"blocks.\1.temporal_norm1."),
            (_LAYER + r"attentions\.0\.attn\.in_proj_", r"blocks.\1.temporal_attn.qkv."),
            (_LAYER + r"attentions\.0\.attn\.out_proj\.", r"blocks.\1.temporal_attn.proj."),
            (_LAYER + r"attentions\.0\.temporal_fc\.", r"blocks.\1.temporal_fc."),
            (_LAYER + r"attentions\.1\.norm\.", r"blocks.\1.norm1."),
            (_LAYER + r"attentions\.1\.attn\.in_proj_", r"blocks.\1.attn.qkv."),
            (_LAYER + r"attentions\.1\.attn\.out_proj\.", r"blocks.\1.attn.proj."),
            (_LAYER + r"ffns\.0\.norm\.", r"blocks.\1.norm2.")]
    # BaseTransformerLayer('norm', 'self_attn', 'norm', 'ffn') with MultiheadAttention
    return shared + [
        (_LAYER + r"norms\.0\.", r"blocks.\1.norm1."),
        (_LAYER + r"norms\.1\.", r"blocks.\1.norm2."),
        (_LAYER + r"attentions\.0\.attn\.in_proj_", r"blocks.\1.attn.qkv."),
        (_LAYER + r"attentions\.0\.attn\.out_proj\.", r"blocks.\1.attn.proj.")]


def _int(value: str | None) -> int | None:
    return int(value) if value else None


def convert_timesformer_mmaction2(src: str | Path, *, num_heads: int | None = None,
                                  num_frames: int | None = None, img_size: int | None = None,
                                  frame_interval: int | None = None,
                                  classes: Any = None) -> Converted:
    """An mmaction2 TimeSformer checkpoint (see the module docstring): heads, frames, sampling,
    crop, normalisation and class names from its stored config and meta when present, else
    defaults that are announced (``embed_dim // 64`` heads, 0.5 / 0.5 normalisation)."""
    ckpt = load_torch_file(src)
    text = config_text(ckpt)
    raw = strip_prefix(unwrap_state_dict(ckpt, src), "module.")
    divided = any(".attentions.1." in k for k in raw)
    state = rename_keys(raw, rules(divided), lambda key: ValueError(
        f"{src}: unexpected key {key!r} for an mmaction2 TimeSformer"))
    kwargs = timesformer_kwargs_from_state(
        state, num_heads or _int(config_value(text, "num_heads")), src)
    attention = config_value(text, "attention_type", r"['\"](\w+)['\"]")
    if attention is not None and REFERENCE_ATTENTION.get(attention) != kwargs["attention"]:
        raise ValueError(f"{src}: its config says attention_type={attention!r} but its weights "
                         f"are a {kwargs['attention']!r} model")
    test = config_section(text, "test_pipeline") or config_section(text, "val_pipeline") or text
    named = sampling_from_name(config_names(ckpt, src))
    frames = (num_frames or _int(config_value(text, "num_frames")) or kwargs["num_frames"]
              or _int(config_value(test, "clip_len")) or (named and named[0])
              or assume("num_frames", 8, f"{src} is a space-only model (no time embedding to "
                        "show its frames) and stores no config"))
    model = build_timesformer(kwargs, state, src, num_frames=frames, img_size=img_size)
    names = resolve_classes(classes if classes is not None else meta_classes(ckpt),
                            model.num_classes, Path(src).name, source=src)
    interval = (frame_interval or _int(config_value(test, "frame_interval"))
                or (named and named[1]) or None)
    return Converted(model, names, _mmaction2_preprocessing(model, text, test, interval,
                                                            img_size, src),
                     {"attention": model.attention, "num_heads": kwargs["num_heads"]})


def _mmaction2_preprocessing(model, text: str, test: str, interval: int | None,
                             img_size: int | None, src: Any) -> Preprocessing:
    """The test recipe of the stored config: ``Resize(scale=(-1, S))``, ``crop_size``, the
    normalisation in 0..255 units (mmaction2's TimeSformer: 127.5 / 127.5 = 0.5 / 0.5)."""
    crop = img_size or _int(config_value(test, "crop_size"))
    resize = None if img_size else _int(config_value(test, "scale", r"\(\s*-1\s*,\s*(\d+)\s*\)"))
    if crop and resize and resize < crop:
        resize = crop
    mean, std = config_list(text, "mean"), config_list(text, "std")
    norm = (dict(mean=[v / 255 for v in mean], std=[v / 255 for v in std])
            if mean and std and len(mean) == len(std) == 3 else HALF_NORM)
    return timesformer_preprocessing(model, frame_interval=interval, input_size=crop,
                                     resize=resize, source=src, **norm)
