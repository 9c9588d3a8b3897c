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

mmaction2 never resizes the embeddings (its clips have the trained size and length), so the
converted model keeps vidcls' default interpolation for other clips.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from vidcls.convert._common import (HALF_NORM, Converted, Rule, build_timesformer,
                                    config_text, config_value, rename_keys, resolve_classes,
                                    timesformer_kwargs_from_state, timesformer_preprocessing)
from vidcls.convert._io import load_torch_file
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


def convert_timesformer_mmaction2(src: str | Path, *, num_heads: int | None = None,
                                  num_frames: int | None = None, img_size: int | None = None,
                                  classes: Any = None) -> Converted:
    """An mmaction2 TimeSformer checkpoint (see the module docstring). ``num_heads`` is read
    from the stored config when present (else ``embed_dim // 64``); normalisation
    127.5 / 127.5 = 0.5 / 0.5."""
    ckpt = load_torch_file(src)
    text = config_text(ckpt)
    raw = strip_prefix(unwrap_state_dict(ckpt, src), "module.")
    divided = any(".attentions.1." in k for k in raw)
    state = rename_keys(raw, rules(divided), lambda key: ValueError(
        f"{src}: unexpected key {key!r} for an mmaction2 TimeSformer"))
    heads = num_heads or (int(config_value(text, "num_heads") or 0) or None)
    kwargs = timesformer_kwargs_from_state(state, heads, src)
    model = build_timesformer(kwargs, state, src, num_frames=num_frames, img_size=img_size)
    names = resolve_classes(classes, model.num_classes, Path(src).name)
    return Converted(model, names, timesformer_preprocessing(model, **HALF_NORM),
                     {"attention": model.attention, "num_heads": kwargs["num_heads"]})
