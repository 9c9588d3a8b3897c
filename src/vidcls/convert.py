"""Foreign checkpoints -> vidcls models.

Small converter functions that work on plain state dicts (``{name: tensor}``), so each step can
be tested and reused on its own:

* ``read_state_dict(path)``: a weight file (.safetensors, or a torch pickle read with
  ``weights_only=True``) -> state dict, unwrapping the usual containers.
* HF transformers TimeSformer: ``hf_timesformer_state_dict`` (key renaming),
  ``timesformer_kwargs_from_hf_config`` and ``timesformer_from_hf`` (model or state dict +
  config -> a ready ``TimeSformer``).
* Reference TimeSformer (facebookresearch) checkpoints: ``reference_timesformer_state_dict``.
* timm image ViT -> TimeSformer initialisation: ``timm_vit_to_timesformer_state_dict`` /
  ``timesformer_from_timm_vit`` (spatial attention copied into temporal attention, as the
  reference's ``load_pretrained`` does).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

__all__ = [
    "read_state_dict", "hf_timesformer_state_dict", "timesformer_kwargs_from_hf_config",
    "timesformer_from_hf", "reference_timesformer_state_dict",
    "timm_vit_to_timesformer_state_dict", "timesformer_from_timm_vit",
    "load_timesformer_weights",
]

StateDict = dict[str, Tensor]


# --------------------------------------------------------------------------------- reading
def read_state_dict(path: str | Path) -> StateDict:
    """Read a weight file without unpickling arbitrary objects.

    ``.safetensors`` via safetensors; anything else via ``torch.load(weights_only=True)``.
    Containers ``{"model" | "state_dict" | "model_state" | "module": {...}}`` are unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return dict(load_file(str(path)))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict", "model_state", "module"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return dict(obj)


def strip_prefix(state_dict: Mapping[str, Tensor], *prefixes: str) -> StateDict:
    """Remove the first matching prefix (e.g. ``module.`` from DDP, ``model.``) from every key."""
    out = {}
    for k, v in state_dict.items():
        for p in prefixes:
            if k.startswith(p):
                k = k[len(p):]
                break
        out[k] = v
    return out


# ------------------------------------------------------------------- HF transformers
# HF TimesformerForVideoClassification names -> ours (= the reference's). Applied in order on
# keys already stripped of ``timesformer.``; the first matching rule wins.
_HF_RULES: list[tuple[str, str]] = [
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

_HF_ATTENTION = {"divided_space_time": "divided", "joint_space_time": "joint",
                 "space_only": "space"}


def hf_timesformer_state_dict(state_dict: Mapping[str, Tensor]) -> StateDict:
    """Rename an HF ``TimesformerForVideoClassification`` / ``TimesformerModel`` state dict to
    vidcls (reference) names. Unknown keys raise, so nothing is silently dropped."""
    out = {}
    for key, value in strip_prefix(state_dict, "timesformer.").items():
        for pattern, repl in _HF_RULES:
            new, n = re.subn(pattern, repl, key)
            if n:
                out[new] = value
                break
        else:
            raise KeyError(f"unexpected key {key!r} in the HF TimeSformer state dict")
    return out


def timesformer_kwargs_from_hf_config(config: Any) -> dict[str, Any]:
    """``TimesformerConfig`` (object or dict) -> ``TimeSformer(**kwargs)`` arguments."""
    cfg = config if isinstance(config, Mapping) else config.to_dict()
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"hidden_act={cfg['hidden_act']!r} is not supported; vidcls's "
                         f"TimeSformer uses exact GELU ('gelu')")
    if cfg.get("num_channels", 3) != 3:
        raise ValueError(f"num_channels={cfg['num_channels']} is not supported; RGB (3) only")
    attention = cfg.get("attention_type", "divided_space_time")
    if attention not in _HF_ATTENTION:
        raise ValueError(f"unknown HF attention_type {attention!r}; expected one of "
                         f"{sorted(_HF_ATTENTION)}")
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
        attention=_HF_ATTENTION[attention],
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


def timesformer_from_hf(model_or_state_dict: Any, config: Any = None):
    """An HF transformers TimeSformer -> an equivalent vidcls ``TimeSformer`` (eval mode).

    Accepts a ``TimesformerForVideoClassification`` / ``TimesformerModel`` instance, or a state
    dict together with its ``TimesformerConfig`` (or config dict). A ``TimesformerModel`` (no
    classifier) gives a model with ``num_classes=0`` (``forward`` returns the cls feature).
    """
    from vidcls.models.timesformer import TimeSformer

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
    if "head.weight" not in state:
        kwargs["num_classes"] = 0
    model = TimeSformer(**kwargs)
    model.load_state_dict(state, strict=True)
    return model.eval()


# ----------------------------------------------------------- reference TimeSformer
def reference_timesformer_state_dict(state_dict: Mapping[str, Tensor]) -> StateDict:
    """facebookresearch/TimeSformer checkpoint (``model_state`` of a ``.pyth``) -> our names.

    Our names are the reference's; only the wrapper prefixes (``module.``, ``model.``) go.
    """
    sd = strip_prefix(state_dict, "module.")
    return strip_prefix(sd, "model.")


# ----------------------------------------------------------------- timm image ViT
_TIMM_VIT_KEY = re.compile(
    r"^(cls_token|pos_embed|patch_embed\.proj\.(weight|bias)|norm\.(weight|bias)"
    r"|head\.(weight|bias)"
    r"|blocks\.\d+\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias))$")


def timm_vit_to_timesformer_state_dict(vit_state: Mapping[str, Tensor], *, attention: str,
                                       grid_size: tuple[int, int], num_classes: int,
                                       pos_interpolation: str = "bicubic") -> StateDict:
    """A timm image ViT state dict -> a TimeSformer state dict (without ``time_embed`` and the
    zero-initialised ``*_fc``, which keep the model's own init).

    As in the reference's ``load_pretrained``: every earlier attention stage (``temporal_attn``,
    ``local_attn``, ``width_attn``) and its ``*_norm1`` start as copies of the block's spatial
    ``attn`` / ``norm1``. The position embedding is resampled to ``grid_size``; the head is
    dropped when its class count differs from ``num_classes``.
    """
    from vidcls.models.attention import VARIANT_STAGES
    from vidcls.models.timesformer import resize_pos_embed

    sd = strip_prefix(vit_state, "module.", "model.")
    unknown = [k for k in sd if not _TIMM_VIT_KEY.match(k)]
    if unknown:
        raise KeyError(f"not a plain timm ViT state dict (cls token, learned pos_embed, no "
                       f"layer scale / registers); unexpected keys: {unknown[:5]}")
    out = dict(sd)
    pos = out["pos_embed"]
    old_n = pos.shape[1] - 1
    side = int(round(old_n ** 0.5))
    if side * side != old_n:
        raise ValueError(f"pos_embed has {old_n} patch positions, not a square grid; "
                         f"cannot infer the pretraining grid")
    out["pos_embed"] = resize_pos_embed(pos, (side, side), grid_size, pos_interpolation)
    if "head.weight" in out and (num_classes == 0 or out["head.weight"].shape[0] != num_classes):
        del out["head.weight"], out["head.bias"]
    prefixes = [p for p, _ in VARIANT_STAGES[attention][0]]
    for key in list(sd):
        m = re.match(r"^(blocks\.\d+\.)(attn|norm1)(\..*)$", key)
        if m:
            for p in prefixes:
                out[f"{m[1]}{p}_{m[2]}{m[3]}"] = sd[key].clone()
    return out


def timesformer_from_timm_vit(vit_state: Mapping[str, Tensor], model):
    """Initialise ``model`` (a ``TimeSformer``) from timm image-ViT weights, in place; returns
    it. Only ``time_embed``, the ``*_fc`` stage projections and (when the class count differs)
    the head keep the model's own initialisation."""
    sd = timm_vit_to_timesformer_state_dict(
        vit_state, attention=model.attention, grid_size=model.grid_size,
        num_classes=model.num_classes, pos_interpolation=model.pos_interpolation)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    allowed = re.compile(r"^(time_embed|head\.(weight|bias)|blocks\.\d+\.\w+_fc\.(weight|bias))$")
    bad = [k for k in missing if not allowed.match(k)]
    if bad or unexpected:
        raise KeyError(f"timm ViT weights do not fit this TimeSformer: missing {bad[:5]}, "
                       f"unexpected {list(unexpected)[:5]} (check embed_dim/depth/patch_size)")
    return model


def load_timesformer_weights(model, path: str | Path):
    """Load a weight file into ``model``: a TimeSformer checkpoint (ours or the reference's,
    recognised by ``time_embed`` / stage keys) or an image ViT with timm names."""
    sd = read_state_dict(path)
    sd = reference_timesformer_state_dict(sd)
    if any(k == "time_embed" or "_attn." in k for k in sd):
        from vidcls.models.timesformer import resize_pos_embed, resize_time_embed
        pos = sd.get("pos_embed")
        if pos is not None and pos.shape != model.pos_embed.shape:
            side = int(round((pos.shape[1] - 1) ** 0.5))
            sd["pos_embed"] = resize_pos_embed(pos, (side, side), model.grid_size,
                                               model.pos_interpolation)
        if "time_embed" in sd and model.time_embed is not None:
            sd["time_embed"] = resize_time_embed(sd["time_embed"], model.num_frames,
                                                 model.time_interpolation)
        head = sd.get("head.weight")
        if head is not None and head.shape[0] != model.num_classes:
            del sd["head.weight"], sd["head.bias"]
        missing, unexpected = model.load_state_dict(sd, strict=False)
        bad = [k for k in missing if not k.startswith("head.")]
        if bad or unexpected:
            raise KeyError(f"{path} does not fit this TimeSformer: missing {bad[:5]}, "
                           f"unexpected {list(unexpected)[:5]}")
        return model
    return timesformer_from_timm_vit(sd, model)
