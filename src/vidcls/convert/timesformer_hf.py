"""HF transformers TimeSformer (``TimesformerForVideoClassification``) -> vidcls TimeSformer.

HF renamed the reference's layers; :data:`RULES` maps them back (the reference's names are
vidcls')::

    timesformer.embeddings.position_embeddings                     pos_embed
    timesformer.embeddings.patch_embeddings.projection.weight      patch_embed.proj.weight
    timesformer.encoder.layer.0.temporal_attention.attention.qkv.*  blocks.0.temporal_attn.qkv.*
    timesformer.encoder.layer.0.temporal_dense.*                   blocks.0.temporal_fc.*
    timesformer.encoder.layer.0.layernorm_before.*                 blocks.0.norm1.*
    timesformer.encoder.layer.0.intermediate.dense.*               blocks.0.mlp.fc1.*
    timesformer.layernorm.*                                        norm.*
    classifier.*                                                   head.*

The architecture comes from the ``TimesformerConfig``. HF's embeddings module fits the
position and time embeddings to other clips with ``F.interpolate(mode="nearest")`` (as the
reference), so checkpoints converted by :func:`convert_timesformer_hf` record nearest
interpolation and compute what HF computes at other sizes. (At another frame count HF's encoder
layers reshape with the *configured* count and mix tokens up; the converted model computes what
an HF model configured for that count, holding the nearest-resized embeddings, computes.)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from torch import Tensor

from vidcls.convert._common import (HALF_NORM, NEAREST, REFERENCE_ATTENTION, Converted,
                                    build_timesformer, reject_options, rename_keys,
                                    resolve_classes, timesformer_preprocessing)
from vidcls.models._weights import StateDict, read_state_dict, strip_prefix
from vidcls.models.timesformer import TimeSformer

__all__ = ["hf_timesformer_state_dict", "timesformer_kwargs_from_hf_config",
           "timesformer_from_hf", "convert_timesformer_hf", "RULES"]

#: HF ``TimesformerForVideoClassification`` names (``timesformer.`` stripped) -> vidcls names
RULES = [
    (r"^embeddings\.cls_token$", "cls_token"),
    (r"^embeddings\.position_embeddings$", "pos_embed"),
    (r"^embeddings\.time_embeddings$", "time_embed"),
    (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"^encoder\.layer\.(\d+)\.attention\.attention\.qkv\.", r"blocks.\1.attn.qkv."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layer\.(\d+)\.temporal_attention\.attention\.qkv\.",
     r"blocks.\1.temporal_attn.qkv."),
    (r"^encoder\.layer\.(\d+)\.temporal_attention\.output\.dense\.",
     r"blocks.\1.temporal_attn.proj."),
    (r"^encoder\.layer\.(\d+)\.temporal_dense\.", r"blocks.\1.temporal_fc."),
    (r"^encoder\.layer\.(\d+)\.temporal_layernorm\.", r"blocks.\1.temporal_norm1."),
    (r"^encoder\.layer\.(\d+)\.layernorm_before\.", r"blocks.\1.norm1."),
    (r"^encoder\.layer\.(\d+)\.layernorm_after\.", r"blocks.\1.norm2."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"blocks.\1.mlp.fc1."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"blocks.\1.mlp.fc2."),
    (r"^layernorm\.", "norm."),
    (r"^classifier\.", "head."),
]

def hf_timesformer_state_dict(state_dict: Mapping[str, Tensor]) -> StateDict:
    """Rename an HF ``TimesformerForVideoClassification`` / ``TimesformerModel`` state dict to
    vidcls (reference) names. Unknown keys raise, so nothing is silently dropped."""
    return rename_keys(strip_prefix(state_dict, "timesformer."), RULES, lambda key: KeyError(
        f"unexpected key {key!r} in the HF TimeSformer state dict"))


def timesformer_kwargs_from_hf_config(config: Any) -> dict[str, Any]:
    """``TimesformerConfig`` (object or dict) -> ``TimeSformer(**kwargs)`` arguments."""
    cfg = config if isinstance(config, Mapping) else config.to_dict()
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"hidden_act={cfg['hidden_act']!r} is not supported; vidcls's "
                         f"TimeSformer uses exact GELU ('gelu')")
    if cfg.get("num_channels", 3) != 3:
        raise ValueError(f"num_channels={cfg['num_channels']} is not supported; RGB (3) only")
    attention = cfg.get("attention_type", "divided_space_time")
    if attention not in REFERENCE_ATTENTION:
        raise ValueError(f"unknown HF attention_type {attention!r}; expected one of "
                         f"{sorted(REFERENCE_ATTENTION)}")
    image_size, patch_size = cfg.get("image_size", 224), cfg.get("patch_size", 16)
    if not isinstance(patch_size, int):
        patch_size = tuple(patch_size)
        if patch_size[0] != patch_size[1]:
            raise ValueError(f"non-square patch_size={patch_size} is not supported")
        patch_size = patch_size[0]
    hidden = cfg.get("hidden_size", 768)
    num_labels = cfg.get("num_labels", getattr(config, "num_labels", None))
    if num_labels is None:  # a config dict from to_dict() stores only id2label
        num_labels = len(cfg.get("id2label") or {}) or 2
    return dict(
        num_classes=num_labels,
        num_frames=cfg.get("num_frames", 8),
        attention=REFERENCE_ATTENTION[attention],
        img_size=image_size if isinstance(image_size, int) else tuple(image_size),
        patch_size=patch_size,
        embed_dim=hidden,
        depth=cfg.get("num_hidden_layers", 12),
        num_heads=cfg.get("num_attention_heads", 12),
        mlp_ratio=cfg.get("intermediate_size", 4 * hidden) / hidden,
        qkv_bias=cfg.get("qkv_bias", True),
        drop_rate=cfg.get("hidden_dropout_prob", 0.0),
        attn_drop_rate=cfg.get("attention_probs_dropout_prob", 0.0),
        drop_path_rate=cfg.get("drop_path_rate", 0.0),
        norm_eps=cfg.get("layer_norm_eps", 1e-6),
    )


def timesformer_from_hf(model_or_state_dict: Any, config: Any = None,
                        **options: Any) -> TimeSformer:
    """An HF transformers TimeSformer -> an equivalent vidcls ``TimeSformer`` (eval mode).

    Accepts a ``TimesformerForVideoClassification`` / ``TimesformerModel`` instance, or a state
    dict together with its ``TimesformerConfig`` (or config dict). A ``TimesformerModel`` (no
    classifier) gives a model with ``num_classes=0`` (``forward`` returns the cls feature).
    ``options`` change the built model (``num_frames``, ``img_size``: embeddings resampled;
    ``pos_interpolation`` / ``time_interpolation``, by default ``nearest`` as HF resizes).
    """
    if isinstance(model_or_state_dict, Mapping):
        if config is None:
            raise ValueError("converting an HF state dict needs its config: "
                             "timesformer_from_hf(state_dict, config)")
        hf_state = model_or_state_dict
    else:
        hf_state = model_or_state_dict.state_dict()
        config = config if config is not None else model_or_state_dict.config
    state = hf_timesformer_state_dict(hf_state)
    kwargs = timesformer_kwargs_from_hf_config(config)
    kwargs["num_classes"] = state["head.weight"].shape[0] if "head.weight" in state else 0
    return build_timesformer(kwargs, state, "the HF TimeSformer", **{**NEAREST, **options})


def _hf_dir_files(src: Path) -> tuple[Path, Path]:
    config = src / "config.json"
    weights = next((src / n for n in ("model.safetensors", "pytorch_model.bin")
                    if (src / n).is_file()), None)
    if not config.is_file() or weights is None:
        raise FileNotFoundError(f"{src} is not a save_pretrained directory (needs config.json "
                                "and model.safetensors or pytorch_model.bin)")
    return config, weights


def convert_timesformer_hf(src: str | Path, *, config: Any = None, num_frames: int | None = None,
                           img_size: int | None = None, classes: Any = None) -> Converted:
    """HF transformers ``TimesformerForVideoClassification``: a ``save_pretrained`` directory
    (``config.json`` + ``model.safetensors`` / ``pytorch_model.bin``, optional
    ``preprocessor_config.json``), or a weight file with ``config`` (path to config.json or a
    dict). Class names come from ``id2label``; normalisation from the preprocessor config,
    else 0.5 / 0.5 (what the HF TimeSformer checkpoints were converted with). The embeddings
    are resized with nearest interpolation, as HF does (module docstring)."""
    src = Path(src)
    prep_cfg: dict = {}
    if src.is_dir():
        reject_options(f"{src} is a save_pretrained directory with its own config.json",
                       config=config)
        config_path, weights = _hf_dir_files(src)
        cfg = json.loads(config_path.read_text(encoding="utf-8"))
        if (src / "preprocessor_config.json").is_file():
            prep_cfg = json.loads((src / "preprocessor_config.json").read_text(encoding="utf-8"))
    else:
        if config is None:
            raise ValueError(f"{src} is a weight file; pass its HF config "
                             "(config=PATH/config.json)")
        weights = src
        cfg = config if isinstance(config, Mapping) else json.loads(
            Path(config).read_text(encoding="utf-8"))
    model = timesformer_from_hf(read_state_dict(weights), cfg, num_frames=num_frames,
                                img_size=img_size, **NEAREST)
    if model.num_classes == 0:
        raise ValueError(f"{src} is a TimesformerModel without a classifier; convert a "
                         "TimesformerForVideoClassification")
    if classes is None and cfg.get("id2label"):
        id2label = {int(k): v for k, v in cfg["id2label"].items()}
        if sorted(id2label) == list(range(model.num_classes)):
            classes = [id2label[i] for i in range(model.num_classes)]
    names = resolve_classes(classes, model.num_classes, src.name, source=src)
    return Converted(model, names, _hf_preprocessing(model, prep_cfg),
                     {"attention": model.attention})


def _hf_preprocessing(model: TimeSformer, prep_cfg: Mapping[str, Any]):
    """The recipe of an HF ``preprocessor_config.json`` (mean, std, shortest edge, square
    crop); what it lacks is the reference's, with 0.5 / 0.5 normalisation."""
    size, crop = prep_cfg.get("size") or {}, prep_cfg.get("crop_size") or {}
    resize = size.get("shortest_edge") if isinstance(size, Mapping) else None
    square = isinstance(crop, Mapping) and "height" in crop and crop["height"] == crop.get("width")
    prep = timesformer_preprocessing(model, sampling="segment",
                                     mean=prep_cfg.get("image_mean", HALF_NORM["mean"]),
                                     std=prep_cfg.get("image_std", HALF_NORM["std"]))
    return prep.replace(resize=None if resize is None else int(resize),
                        input_size=int(crop["height"]) if square else None)
