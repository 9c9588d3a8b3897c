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

Whole-checkpoint converters (``vidcls convert SRC DST --from FORMAT``, section at the end):
``convert(src, fmt, **options)`` / ``convert_checkpoint(src, dst, fmt, **options)`` for the
formats in ``FORMATS``: ``tsm-official`` (incl. the online-demo MobileNetV2), ``tsm-mmaction2``,
``tsm-paddle``, ``timesformer-official``, ``timesformer-hf``, ``timesformer-mmaction2``,
``torchvision-resnet``, ``timm-vit``. Foreign pickles are read without running their code
(``load_torch_file``, ``read_paddle_params``).
"""
from __future__ import annotations

import inspect
import json
import math
import pickle
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

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


# =============================================================================================
# Foreign checkpoint formats -> vidcls checkpoints (``vidcls convert SRC DST --from FORMAT``)
# =============================================================================================
# Each ``convert_<format>(src, **options)`` reads one published layout, renames its keys to
# vidcls names, builds the matching model with ``create_model`` (so the checkpoint records how
# to rebuild it) and loads the weights strictly: a key that does not fit is an error that lists
# the missing and unexpected keys, never a silently random layer. It returns a ``Converted``
# (model, class names, the preprocessing the source was trained with); ``convert_checkpoint``
# writes it as a vidcls checkpoint directory that predict / eval / stream / train --init read.

# ------------------------------------------------------------- reading foreign files safely
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _Opaque:
    """Inert stand-in for a pickled object of a class outside the allowlist (mmengine's
    ``HistoryBuffer`` in a checkpoint's ``meta``, ``argparse.Namespace``, ...). It records what
    the pickle hands it and never runs code: such objects only ever sit in metadata."""

    _qualname = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.__dict__["args"] = args
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__["state"] = state

    def __setitem__(self, key, value):  # dict subclasses are rebuilt with SETITEMS
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value):  # list subclasses are rebuilt with APPEND(S)
        self.__dict__.setdefault("list", []).append(value)

    def extend(self, values):
        self.__dict__.setdefault("list", []).extend(values)

    def __repr__(self) -> str:
        return f"<opaque {self._qualname}>"


def _allowed_globals() -> dict[str, Any]:
    """The globals ``torch.load(weights_only=True)`` accepts (tensor rebuilders, storages,
    dtypes, OrderedDict, ...): known to be safe to call."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals
        return dict(_get_allowed_globals())
    except Exception:  # private API moved: the few names plain tensors need
        import collections
        return {"collections.OrderedDict": collections.OrderedDict, "torch.Size": torch.Size,
                "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
                "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allowlisted globals (torch's ``weights_only`` set plus numpy array
    reconstruction); any other class becomes an inert ``_Opaque`` subclass, so no other
    callable is ever imported or called."""

    def find_class(self, module: str, name: str):
        allowed = _allowed_globals().get(f"{module}.{name}")
        if allowed is not None:
            return allowed
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        return type(name, (_Opaque,), {"_qualname": f"{module}.{name}"})


_restricted_pickle = types.ModuleType("vidcls_restricted_pickle")
_restricted_pickle.Unpickler = _RestrictedUnpickler
_restricted_pickle.UnpicklingError = pickle.UnpicklingError
_restricted_pickle.load = lambda f, **kw: _RestrictedUnpickler(f, **kw).load()


def load_torch_file(path: str | Path) -> Any:
    """``torch.load`` a foreign checkpoint without executing anything from it.

    ``weights_only=True`` first. Checkpoints whose metadata pickles other classes (mmengine's
    message hub, numpy scalars, config objects) are then read with ``_RestrictedUnpickler``:
    tensors and plain containers come back as usual, unknown objects as inert placeholders.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        return torch.load(path, map_location="cpu", weights_only=False,
                          pickle_module=_restricted_pickle)


class _NumpyUnpickler(pickle.Unpickler):
    """For PaddlePaddle ``.pdparams``: numpy arrays and plain containers only; anything else
    is refused (a parameter file has no reason to reference other code)."""

    _EXTRA = {("collections", "OrderedDict"), ("builtins", "tuple"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS or (module, name) in self._EXTRA:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a .pdparams file holds only numpy arrays "
            "(this one references other code; it may be malicious)")


def read_paddle_params(path: str | Path) -> StateDict:
    """PaddlePaddle weights -> ``{name: tensor}``, without running code from the file.

    ``.pdparams`` is what ``paddle.save(layer.state_dict(), path)`` writes: a pickled dict of
    numpy arrays (some Paddle versions store ``(name, array)`` tuples, and a
    ``StructuredToParameterName@@`` name table, which is skipped). It is read with an
    unpickler that only reconstructs numpy arrays. ``.npz`` (``np.savez`` of the same dict) is
    read with ``allow_pickle=False``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"paddle weight file {path} does not exist")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            obj = {k: archive[k] for k in archive.files}
    else:
        with open(path, "rb") as f:
            try:
                obj = _NumpyUnpickler(f).load()
            except pickle.UnpicklingError as err:
                raise ValueError(f"{path}: {err}") from None
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a dict of parameters")
    out = {}
    for key, value in obj.items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], np.ndarray):
            value = value[1]
        if isinstance(value, np.ndarray):
            out[key] = torch.from_numpy(np.array(value, copy=True))
    return out


# ------------------------------------------------------------------- shared helpers
@dataclass
class Converted:
    """A converted model with what it needs to predict: class names and the preprocessing
    its source was trained with; ``source`` records the settings read from the file."""

    model: nn.Module
    classes: list[str]
    preprocessing: dict
    source: dict = field(default_factory=dict)


IMAGENET_PREP = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), input_size=224,
                     resize=256)
_TSM_PLACES = {"blockres": "residual", "block": "inplace"}


def _unwrap(obj: Any, path: Any) -> StateDict:
    """The state dict inside a checkpoint container (``state_dict`` / ``model_state`` / ...)."""
    for key in ("state_dict", "model_state", "model", "module"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{path} does not hold a state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    if len(tensors) != len(obj):
        bad = [k for k in obj if k not in tensors][:5]
        raise ValueError(f"{path}: entries {bad} of the state dict are not tensors")
    return tensors


def _key_report(missing: Iterable[str], unexpected: Iterable[str], limit: int = 8) -> str:
    def show(keys):
        keys = sorted(keys)
        more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
        return f"{len(keys)}: {', '.join(keys[:limit])}{more}" if keys else "none"
    return f"missing keys ({show(missing)}); unexpected keys ({show(unexpected)})"


def _load_converted(model: nn.Module, state: Mapping[str, Tensor], source: Any) -> None:
    """Strict load with an error that lists what does not fit (old files without BN
    ``num_batches_tracked`` are fine)."""
    name = getattr(model, "build_config", {}).get("name", type(model).__name__)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(f"{source} does not fit {name} after conversion: "
                         f"{_key_report(missing, unexpected)}")
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in state
             if state[k].shape != expected[k].shape]
    if wrong:
        raise ValueError(f"{source} does not fit {name}: shape mismatch at {', '.join(wrong[:5])}"
                         " (checkpoint vs model)")
    model.load_state_dict(state, strict=False)
    model.eval()


def resolve_classes(classes: Any, num_classes: int, hint: str = "") -> list[str]:
    """Class names for a converted checkpoint: ``classes`` may be a list, a text file (one
    name per line, in label order) or a shipped dataset name (``kinetics400``, ``jester``);
    None guesses a shipped list from the class count and ``hint`` (the file name), else
    index names ``"0", "1", ...``."""
    from vidcls.resources import class_names, dataset_for_num_classes

    if classes is None:
        dataset = dataset_for_num_classes(num_classes, hint)
        names = class_names(dataset) if dataset else [str(i) for i in range(num_classes)]
    else:
        names = _class_list(classes)
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for a checkpoint with {num_classes} classes; "
                         "give exactly one name per class, in label order")
    return names


def _backbone_arch(keys: Iterable[str]) -> str:
    """Which 2-D backbone a vidcls-named state dict (``backbone.*``) belongs to."""
    keys = list(keys)
    if any(k.startswith("backbone.features.") for k in keys):
        return "mobilenetv2"
    counts = []
    for stage in range(1, 5):
        idx = {int(m[1]) for k in keys if (m := re.match(rf"^backbone\.layer{stage}\.(\d+)\.", k))}
        counts.append(max(idx) + 1 if idx else 0)
    bottleneck = any(k.startswith("backbone.layer1.0.conv3.") for k in keys)
    table = {((2, 2, 2, 2), False): "resnet18", ((3, 4, 6, 3), False): "resnet34",
             ((3, 4, 6, 3), True): "resnet50", ((3, 4, 23, 3), True): "resnet101"}
    arch = table.get((tuple(counts), bottleneck))
    if arch is None:
        raise ValueError(f"cannot tell the backbone: its stages have {counts} "
                         f"{'bottleneck' if bottleneck else 'basic'} blocks; vidcls has "
                         "ResNet-18/34/50/101 and MobileNetV2")
    return arch


def _strip_net(key: str) -> str:
    """Drop the ``.net`` level the TSM authors' ``TemporalShift(net)`` wrapper adds."""
    return re.sub(r"\.net(?=\.)", "", key)


def _shift_sites(keys: Iterable[str], patterns: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """``{(block, place)}`` of the blocks a source shifts, from its ``.net`` wrapper keys."""
    sites = set()
    for key in keys:
        for pattern, place in patterns:
            m = re.match(pattern, key)
            if m:
                sites.add((m[1], place))
    return sites


def _model_shift_sites(model: nn.Module) -> set[tuple[str, str]]:
    from vidcls.ops.temporal_shift import TemporalShift

    sites = set()
    for name, module in model.backbone.named_modules():
        if isinstance(module, TemporalShift):
            block, slot = name.rsplit(".", 1)
            sites.add((block, "residual" if slot == "shift_branch" else "inplace"))
    return sites


def _check_shift_sites(model: nn.Module, sites: set[tuple[str, str]], source: Any) -> None:
    """The blocks the source shifts must be exactly the blocks the vidcls model shifts."""
    ours = _model_shift_sites(model)
    if ours != sites:
        only_src, only_ours = sorted(sites - ours)[:4], sorted(ours - sites)[:4]
        raise ValueError(f"{source} shifts other blocks than {model.build_config['name']} with "
                         f"{model.tsm}: only in the file {only_src}, only in vidcls {only_ours}")


def _single_place(sites: set[tuple[str, str]], source: Any) -> str | None:
    places = {p for _, p in sites}
    if len(places) > 1:
        raise ValueError(f"{source} mixes residual and in-place shifts; vidcls models use one "
                         "placement for all blocks")
    return places.pop() if places else None


def _mobilenet_flat_to_nested(state: Mapping[str, Tensor]) -> StateDict:
    """MobileNetV2 of the TSM repo / online demo (flat ``features.N.conv.K``: conv, bn, relu,
    conv, bn, relu, conv, bn) -> torchvision nesting (``conv.0.0``, ``conv.0.1``, ...)."""
    expand = {0: "0.0", 1: "0.1", 3: "1.0", 4: "1.1", 6: "2", 7: "3"}
    no_expand = {0: "0.0", 1: "0.1", 3: "1", 4: "2"}  # the t=1 block: dw, bn, relu, pw, bn
    with_expand = {m[1] for k in state
                   if (m := re.match(r"^backbone\.features\.(\d+)\.conv\.7\.", k))}
    out = {}
    for key, value in state.items():
        m = re.match(r"^(backbone\.features\.(\d+)\.conv\.)(\d+)\.(.*)$", key)
        if m:
            table = expand if m[2] in with_expand else no_expand
            if int(m[3]) not in table:
                raise ValueError(f"unexpected MobileNetV2 key {key!r} (expected the flat "
                                 "conv/bn sequence of the TSM repo's InvertedResidual)")
            key = f"{m[1]}{table[int(m[3])]}.{m[4]}"
        out[key] = value
    return out


def _build_tsn(arch: str, *, num_classes: int, num_frames: int, place: str | None,
               shift_div: int, temporal_pool: bool, shift_mode: str = "bidirectional"):
    from vidcls.models import create_model

    if place is None:
        return create_model(f"tsn_{arch}", num_classes=num_classes, num_frames=num_frames,
                            temporal_pool=temporal_pool)
    return create_model(f"tsm_{arch}", num_classes=num_classes, num_frames=num_frames,
                        shift_div=shift_div, shift_place=place, shift_mode=shift_mode,
                        temporal_pool=temporal_pool)


def _tsm_prep(num_frames: int, dense: bool = False) -> dict:
    if dense:  # the TSM repo's dense_sample: T frames 64 // T apart
        return {**IMAGENET_PREP, "num_frames": num_frames, "sampling": "dense",
                "clip_len": num_frames, "frame_interval": max(1, 64 // num_frames)}
    return {**IMAGENET_PREP, "num_frames": num_frames, "sampling": "segment"}


# ------------------------------------------------------------------- TSM authors
def parse_tsm_filename(name: str | Path) -> dict:
    """Settings the TSM authors encode in checkpoint names, read the way their
    ``test_models.py`` does: ``TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50.pth``
    -> dataset, modality, arch, shift_div, shift_place, num_frames (segments), temporal_pool
    (``tpool``), non_local (``_nl``) and dense (``_dense``: I3D-style dense sampling)."""
    stem = Path(name).name
    info: dict[str, Any] = {"temporal_pool": "tpool" in stem, "non_local": "_nl" in stem,
                            "dense": "_dense" in stem}
    if "shift" in stem:
        parts = stem.split("_")
        i = next(j for j, p in enumerate(parts) if "shift" in p)
        digits = parts[i].replace("shift", "")
        if digits.isdigit():
            info["shift_div"] = int(digits)
        if i + 1 < len(parts) and parts[i + 1] in _TSM_PLACES:
            info["shift_place"] = _TSM_PLACES[parts[i + 1]]
    m = re.search(r"segment(\d+)", stem)
    if m:
        info["num_frames"] = int(m[1])
    if "TSM_" in stem:
        fields = stem.split("TSM_", 1)[1].split("_")
        if len(fields) >= 3:
            info["dataset"], info["modality"], info["arch"] = fields[:3]
    return info


_OFFICIAL_SHIFT_PATTERNS = [(r"^backbone\.(layer\d\.\d+)\.conv1\.net\.", "residual"),
                            (r"^backbone\.(layer\d\.\d+)\.net\.", "inplace"),
                            (r"^backbone\.(features\.\d+)\.conv\.0\.net\.", "residual")]


def convert_tsm_official(src: str | Path, *, num_frames: int | None = None,
                         shift_div: int | None = None, shift_place: str | None = None,
                         classes: Any = None) -> Converted:
    """The TSM authors' checkpoints (mit-han-lab/temporal-shift-module).

    Offline ``.pth(.tar)`` = ``{epoch, arch, state_dict, ...}`` with keys
    ``module.base_model.layer1.0.conv1.net.weight`` (``.net``: the ``TemporalShift`` wrapper, on
    the shifted conv for ``blockres``, on the block for ``block``), head ``module.new_fc.*``
    (``base_model.fc`` / ``base_model.classifier`` when trained without dropout). Where the
    shifts sit is read from the keys and must match the vidcls model (ResNet-101 shifts every
    second block); ``shift_div`` and the segment count come from the file name as in their
    test script (``..._shift8_blockres_avg_segment8_...``), overridable.

    The online demo's ``mobilenetv2_jester_online.pth.tar`` (a bare state dict ``features.N.conv.K``
    + ``classifier``, 27 Jester classes) becomes a unidirectional ``tsm_mobilenetv2``: its
    ``InvertedResidualWithShift`` caches the first ``C // 8`` channels of each shifted block's
    input and feeds them to the next frame, which is vidcls' unidirectional residual shift.
    """
    state = strip_prefix(_unwrap(load_torch_file(src), src), "module.")
    if not any(k.startswith("base_model.") for k in state) and "classifier.weight" in state:
        return _convert_tsm_online_demo(src, state, num_frames=num_frames, classes=classes)
    info = parse_tsm_filename(src)
    if info.get("modality", "RGB") != "RGB":
        raise ValueError(f"{src} is a {info['modality']} model; vidcls converts RGB models only")
    if info["non_local"]:
        raise ValueError(f"{src} has non-local blocks (_nl), which vidcls does not implement")
    body = strip_prefix(state, "base_model.")
    out: StateDict = {}
    temporal_pool = False
    for key, value in body.items():
        if key.startswith("layer2.net."):  # TemporalPool(layer2) wrapper
            temporal_pool, key = True, "layer2." + key[len("layer2.net."):]
        if key.startswith("new_fc."):
            out["head." + key[len("new_fc."):]] = value
        elif key.startswith(("fc.", "classifier.")) and "new_fc.weight" not in body:
            out["head." + key.split(".", 1)[1]] = value  # trained with dropout=0
        else:
            out["backbone." + key] = value
    sites = _shift_sites(out, _OFFICIAL_SHIFT_PATTERNS)
    out = {_strip_net(k): v for k, v in out.items()}
    arch = _backbone_arch(out)
    if arch == "mobilenetv2":
        out = _mobilenet_flat_to_nested(out)
    place = _single_place(sites, src)
    if shift_place is not None and place is not None and shift_place != place:
        raise ValueError(f"shift_place={shift_place!r} contradicts {src}, whose keys show "
                         f"{place!r} shifts")
    if place is None and "shift_div" in info:
        raise ValueError(f"the file name of {src} says it is shifted, but it has no "
                         "TemporalShift (.net) keys")
    if "head.weight" not in out:
        raise ValueError(f"{src} has no classifier (new_fc / fc / classifier)")
    num_classes = out["head.weight"].shape[0]
    frames = num_frames or info.get("num_frames", 8)
    div = shift_div or info.get("shift_div", 8)
    model = _build_tsn(arch, num_classes=num_classes, num_frames=frames, place=place,
                       shift_div=div, temporal_pool=temporal_pool)
    if place is not None:
        _check_shift_sites(model, sites, src)
    _load_converted(model, out, src)
    names = resolve_classes(classes, num_classes, info.get("dataset", Path(src).name))
    return Converted(model, names, _tsm_prep(frames, info["dense"]),
                     {"arch": arch, "shift_place": place, "shift_div": div if place else None,
                      "num_frames": frames, "temporal_pool": temporal_pool})


def _convert_tsm_online_demo(src, state: StateDict, *, num_frames: int | None,
                             classes: Any) -> Converted:
    out = {("head." + k[len("classifier."):]) if k.startswith("classifier.") else "backbone." + k: v
           for k, v in state.items()}
    if _backbone_arch(out) != "mobilenetv2":
        raise ValueError(f"{src}: a bare state dict with a classifier is read as the TSM online "
                         "demo's MobileNetV2, but its keys are not MobileNetV2's")
    out = _mobilenet_flat_to_nested(out)
    num_classes = out["head.weight"].shape[0]
    frames = num_frames or 8
    # The demo shifts c // 8 channels (fixed), in every residual block with expansion.
    model = _build_tsn("mobilenetv2", num_classes=num_classes, num_frames=frames,
                       place="residual", shift_div=8, temporal_pool=False,
                       shift_mode="unidirectional")
    _load_converted(model, out, src)
    names = resolve_classes(classes, num_classes, "jester" if num_classes == 27 else "")
    return Converted(model, names, _tsm_prep(frames),
                     {"arch": "mobilenetv2", "online_demo": True, "shift_div": 8,
                      "shift_mode": "unidirectional"})


# ------------------------------------------------------------------- mmaction2 TSM
_MMA_TSM_RULES = [
    (r"^conv1\.conv\.", "conv1."), (r"^conv1\.bn\.", "bn1."),
    (r"^(layer\d\.\d+)\.conv(\d)\.conv\.", r"\1.conv\2."),
    (r"^(layer\d\.\d+)\.conv(\d)\.bn\.", r"\1.bn\2."),
    (r"^(layer\d\.\d+)\.downsample\.conv\.", r"\1.downsample.0."),
    (r"^(layer\d\.\d+)\.downsample\.bn\.", r"\1.downsample.1."),
]
_MMA_SHIFT_PATTERNS = [(r"^(layer\d\.\d+)\.conv1\.conv\.net\.", "residual"),
                       (r"^(layer\d\.\d+)\.net\.", "inplace")]


def _config_text(ckpt: Any) -> str:
    """The config an mmaction2 / mmengine checkpoint carries in ``meta`` (or '')."""
    meta = ckpt.get("meta") if isinstance(ckpt, Mapping) else None
    if isinstance(meta, Mapping):
        for key in ("config", "cfg"):
            if isinstance(meta.get(key), str):
                return meta[key]
    return ""


def _config_value(text: str, name: str, pattern: str = r"(\d+)") -> str | None:
    m = re.search(rf"\b{name}\s*[=:]\s*{pattern}", text)
    return m[1] if m else None


def _rename(key: str, rules: list[tuple[str, str]]) -> str:
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return key


def convert_tsm_mmaction2(src: str | Path, *, num_frames: int | None = None,
                          shift_div: int | None = None, classes: Any = None) -> Converted:
    """mmaction2 ``ResNetTSM`` + ``TSMHead`` checkpoints.

    Keys ``backbone.conv1.conv.weight`` / ``backbone.conv1.bn.*`` (mmcv ``ConvModule``),
    ``backbone.layer1.0.conv1.conv.net.weight`` (residual shift on ``conv1.conv``) or
    ``backbone.layer1.0.net.conv1.conv.weight`` (``block``), ``downsample.conv`` /
    ``downsample.bn``, head ``cls_head.fc_cls.*``. mmaction2's shift is the TSM authors'
    (group 0 from t+1, group 1 from t-1). ``shift_div`` / ``num_segments`` are read from the
    config stored in the checkpoint's ``meta`` when present (default 8).
    """
    ckpt = load_torch_file(src)
    text = _config_text(ckpt)
    state = strip_prefix(_unwrap(ckpt, src), "module.")
    if any(re.match(r"^backbone\.layer\d+\.\d+\.conv\.\d", k) for k in state):
        raise ValueError(f"{src} looks like mmaction2's MobileNetV2TSM; tsm-mmaction2 converts "
                         "ResNetTSM checkpoints")
    out: StateDict = {}
    temporal_pool = False
    for key, value in state.items():
        if key.startswith("cls_head.fc_cls."):
            out["head." + key[len("cls_head.fc_cls."):]] = value
        elif key.startswith("backbone."):
            key = key[len("backbone."):]
            if key.startswith("layer2.net."):
                temporal_pool, key = True, "layer2." + key[len("layer2.net."):]
            out["backbone." + key] = value
        else:
            raise ValueError(f"{src}: unexpected key {key!r} (expected backbone.* and "
                             "cls_head.fc_cls.*)")
    sites = _shift_sites((k[len("backbone."):] for k in out if k.startswith("backbone.")),
                         _MMA_SHIFT_PATTERNS)
    out = {_strip_net(k): v for k, v in out.items()}
    out = {("backbone." + _rename(k[len("backbone."):], _MMA_TSM_RULES))
           if k.startswith("backbone.") else k: v for k, v in out.items()}
    arch = _backbone_arch(out)
    place = _single_place(sites, src)
    if "head.weight" not in out:
        raise ValueError(f"{src} has no cls_head.fc_cls classifier")
    num_classes = out["head.weight"].shape[0]
    frames = num_frames or int(_config_value(text, "num_segments") or 8)
    div = shift_div or int(_config_value(text, "shift_div") or 8)
    model = _build_tsn(arch, num_classes=num_classes, num_frames=frames, place=place,
                       shift_div=div, temporal_pool=temporal_pool)
    if place is not None:
        _check_shift_sites(model, sites, src)
    _load_converted(model, out, src)
    names = resolve_classes(classes, num_classes, Path(src).name)
    return Converted(model, names, _tsm_prep(frames),
                     {"arch": arch, "shift_place": place, "shift_div": div if place else None,
                      "num_frames": frames, "temporal_pool": temporal_pool})


# ------------------------------------------------------------------- PaddleVideo TSM
def _paddle_block(name: str) -> tuple[int, int]:
    """PaddleVideo block names -> (stage 1..4, index): res2a -> (1, 0), res4b12 -> (3, 12)."""
    m = re.match(r"^res(\d)([a-z])(\d*)$", name)
    if not m:
        raise ValueError(f"unexpected PaddleVideo block name {name!r}")
    index = int(m[3]) if m[3] else ord(m[2]) - ord("a")
    return int(m[1]) - 1, index


_PADDLE_BN = {"weight": "weight", "bias": "bias", "_mean": "running_mean",
              "_variance": "running_var"}


def _paddle_key(key: str) -> str:
    m = re.match(r"^conv\.(_conv|_batch_norm)\.(\w+)$", key)
    if m:
        return "conv1.weight" if m[1] == "_conv" else f"bn1.{_PADDLE_BN[m[2]]}"
    m = re.match(r"^(res\w+)\.(conv\d|short)\.(_conv|_batch_norm)\.(\w+)$", key)
    if not m or (m[3] == "_batch_norm" and m[4] not in _PADDLE_BN):
        raise ValueError(f"unexpected key backbone.{key} (expected PaddleVideo ResNetTSM names "
                         "like res2a.conv0._conv.weight; pp-TSM's ResNetTweaksTSM is not "
                         "supported)")
    stage, index = _paddle_block(m[1])
    if m[2] == "short":
        layer, bn = "downsample.0", "downsample.1"
    else:
        n = int(m[2][4:]) + 1  # paddle conv0/1/2 = torchvision conv1/2/3
        layer, bn = f"conv{n}", f"bn{n}"
    leaf = "weight" if m[3] == "_conv" else _PADDLE_BN[m[4]]
    return f"layer{stage}.{index}.{layer if m[3] == '_conv' else bn}.{leaf}"


def mirror_shift_channels(state: Mapping[str, Tensor], model: nn.Module) -> StateDict:
    """ResNet weights trained with the *mirrored* shift -> weights for vidcls' shift.

    PaddlePaddle's ``temporal_shift`` fills channel group ``[0, f)`` from frame ``t-1`` and
    ``[f, 2f)`` from ``t+1``; the TSM authors' shift (vidcls, mmaction2) does the opposite.
    With ``P`` the swap of those two groups, ``mirrored(x) = P shift(P x)``. So the network
    is run on permuted activations: every residual stream (the stem output and each stage's
    output, ``C`` channels, ``f = C // shift_div``) is stored with its two groups swapped.
    Layers writing a stream permute their output channels (conv rows, BN vectors), layers
    reading one permute their input channels (conv / head columns). ``P`` depends only on
    ``C``, so identity shortcuts stay consistent; permutations are exact, so the logits are
    identical (tested against a reference forward with Paddle's shift).

    Permuting only the input channels of the shifted conv would not do: after our shift, the
    conv's input holds group 0 of frame ``t+1`` and group 1 of ``t-1``, while Paddle's conv
    reads group 0 of ``t-1`` -- a value our shifted tensor does not contain anywhere.
    """
    div = model.tsm["shift_div"]
    out = dict(state)

    def perm(channels: int) -> Tensor:
        f = channels // div
        return torch.cat([torch.arange(f, 2 * f), torch.arange(0, f),
                          torch.arange(2 * f, channels)])

    def rows(prefix: str, p: Tensor, bn: bool) -> None:
        if bn:
            for leaf in ("weight", "bias", "running_mean", "running_var"):
                out[f"{prefix}.{leaf}"] = out[f"{prefix}.{leaf}"][p]
        else:
            out[f"{prefix}.weight"] = out[f"{prefix}.weight"][p]

    def cols(key: str, p: Tensor) -> None:
        out[key] = out[key][:, p]

    backbone = model.backbone
    p_prev = perm(backbone.bn1.num_features)
    rows("backbone.conv1", p_prev, False)
    rows("backbone.bn1", p_prev, True)
    for s, stage in enumerate(backbone.stages, start=1):
        for b, block in enumerate(stage):
            pre = f"backbone.layer{s}.{b}."
            last = "3" if hasattr(block, "conv3") else "2"
            p_in = p_prev
            p_out = perm(getattr(block, f"bn{last}").num_features)
            cols(pre + "conv1.weight", p_in)
            rows(pre + f"conv{last}", p_out, False)
            rows(pre + f"bn{last}", p_out, True)
            if block.downsample is not None:
                cols(pre + "downsample.0.weight", p_in)
                rows(pre + "downsample.0", p_out, False)
                rows(pre + "downsample.1", p_out, True)
            p_prev = p_out
    cols("head.weight", p_prev)
    return out


def convert_tsm_paddle(src: str | Path, *, num_frames: int | None = None,
                       shift_div: int | None = None, classes: Any = None) -> Converted:
    """PaddleVideo ``ResNetTSM`` + ``TSMHead`` weights (``.pdparams`` or ``.npz``).

    Keys ``backbone.conv._conv.weight``, ``backbone.res2a.conv0._batch_norm._mean``,
    ``backbone.res2a.short._conv.weight``, ..., head ``head.fc.weight`` stored ``(in, out)``
    (transposed here). Paddle shifts every bottleneck block with
    ``temporal_shift(x, num_seg, 1 / num_seg)`` -- so ``shift_div = num_seg`` (8) -- and its
    shift is the mirror of the TSM authors': the weights are rewritten by
    :func:`mirror_shift_channels` so vidcls' shift computes the same function.
    ``num_frames`` is the training segment count (default 8); ``shift_div`` defaults to it
    (pass it explicitly to evaluate with another frame count).
    """
    raw = read_paddle_params(src)
    body, out = {}, {}
    for key, value in raw.items():
        if key.startswith("backbone."):
            body[key[len("backbone."):]] = value
        elif key == "head.fc.weight":
            out["head.weight"] = value.t().contiguous()  # paddle Linear stores (in, out)
        elif key == "head.fc.bias":
            out["head.bias"] = value
        else:
            raise ValueError(f"{src}: unexpected key {key!r} (expected backbone.* and head.fc.*)")
    for key, value in body.items():
        out["backbone." + _paddle_key(key)] = value
    arch = _backbone_arch(out)
    if arch != "resnet50":
        raise ValueError(f"{src} is a PaddleVideo {arch}; only its ResNet-50 TSM converts (its "
                         "ResNet-18/34 blocks are not shifted, and its ResNet-101 shifts every "
                         "block where the TSM authors' and vidcls' shift every second one)")
    if "head.weight" not in out:
        raise ValueError(f"{src} has no head.fc classifier")
    num_classes = out["head.weight"].shape[0]
    frames = num_frames or 8
    div = shift_div or frames
    model = _build_tsn(arch, num_classes=num_classes, num_frames=frames, place="residual",
                       shift_div=div, temporal_pool=False)
    for block in model.backbone.residual_blocks():  # paddle: int(C*r) and int(2*C*r)
        c = block.in_channels
        if int(c * (1.0 / div)) != c // div or int(c * 2.0 / div) != 2 * (c // div):
            raise ValueError(f"shift_div={div} does not split {c} channels into equal groups "
                             "the way Paddle does; use a divisor of the channel counts")
    _load_converted(model, mirror_shift_channels(out, model), src)
    names = resolve_classes(classes, num_classes, Path(src).name)
    return Converted(model, names, _tsm_prep(frames),
                     {"arch": arch, "shift_place": "residual", "shift_div": div,
                      "num_frames": frames, "mirrored_shift": True})


# ------------------------------------------------------------------- TimeSformer
# Reference (facebookresearch) recipe: 8 frames x 32 apart, 0.45 / 0.225, short side = crop.
_TIMESFORMER_INTERVAL = {8: 32, 16: 16, 96: 4}


def _timesformer_prep(model, mean, std, *, dense: bool = True) -> dict:
    size = model.img_size[0] if model.img_size[0] == model.img_size[1] else list(model.img_size)
    prep = {"mean": tuple(mean), "std": tuple(std), "input_size": size,
            "resize": min(model.img_size), "num_frames": model.num_frames}
    if dense and model.num_frames in _TIMESFORMER_INTERVAL:
        prep.update(sampling="dense", clip_len=model.num_frames,
                    frame_interval=_TIMESFORMER_INTERVAL[model.num_frames])
    return prep


def _timesformer_kwargs_from_state(state: Mapping[str, Tensor], num_heads: int | None) -> dict:
    """Architecture of a TimeSformer state dict in vidcls/reference names."""
    from vidcls.models.attention import VARIANT_STAGES

    for key in ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight"):
        if key not in state:
            raise ValueError(f"not a TimeSformer state dict: {key!r} is missing")
    embed = state["cls_token"].shape[-1]
    patch = state["patch_embed.proj.weight"].shape[-1]
    depth = 1 + max(int(m[1]) for k in state if (m := re.match(r"^blocks\.(\d+)\.", k)))
    n = state["pos_embed"].shape[1] - 1
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"pos_embed has {n} patch positions, not a square grid")
    prefixes = {m[1] for k in state if (m := re.match(r"^blocks\.0\.(\w+)_attn\.", k))}
    has_time = "time_embed" in state
    attention = next((name for name, (stages, _) in VARIANT_STAGES.items()
                      if {p for p, _ in stages} == prefixes
                      and (name != "space" or not has_time) and (name != "joint" or has_time)),
                     None)
    if attention is None:
        raise ValueError(f"cannot tell the attention scheme from stages {sorted(prefixes)}")
    heads = num_heads or max(1, embed // 64)
    if embed % heads:
        raise ValueError(f"embed_dim={embed} is not divisible by num_heads={heads}")
    if "head.weight" not in state:
        raise ValueError("the TimeSformer checkpoint has no classification head")
    return dict(num_classes=state["head.weight"].shape[0],
                num_frames=state["time_embed"].shape[1] if has_time else 8,
                attention=attention, img_size=side * patch, patch_size=patch, embed_dim=embed,
                depth=depth, num_heads=heads,
                mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / embed,
                qkv_bias="blocks.0.attn.qkv.bias" in state)


def _build_timesformer(kwargs: dict, state: StateDict, source: Any, *,
                       num_frames: int | None = None, img_size: int | None = None):
    """Create the vidcls TimeSformer for ``kwargs``; embeddings are interpolated when
    ``num_frames`` / ``img_size`` differ from the checkpoint's (time linearly, the 2-D
    position grid bicubically, as the model does at run time)."""
    from vidcls.models import create_model
    from vidcls.models.timesformer import resize_pos_embed, resize_time_embed

    kwargs, state = dict(kwargs), dict(state)
    if num_frames and num_frames != kwargs["num_frames"]:
        if "time_embed" in state:
            state["time_embed"] = resize_time_embed(state["time_embed"], num_frames)
        kwargs["num_frames"] = num_frames
    if img_size and img_size != kwargs["img_size"]:
        if img_size % kwargs["patch_size"]:
            raise ValueError(f"img_size={img_size} is not a multiple of the patch size "
                             f"{kwargs['patch_size']}")
        old = kwargs["img_size"] // kwargs["patch_size"]
        new = img_size // kwargs["patch_size"]
        state["pos_embed"] = resize_pos_embed(state["pos_embed"], (old, old), (new, new))
        kwargs["img_size"] = img_size
    num_classes, frames = kwargs.pop("num_classes"), kwargs.pop("num_frames")
    model = create_model("timesformer_base", num_classes=num_classes, num_frames=frames, **kwargs)
    _load_converted(model, state, source)
    return model


def convert_timesformer_official(src: str | Path, *, num_heads: int | None = None,
                                 num_frames: int | None = None, img_size: int | None = None,
                                 classes: Any = None) -> Converted:
    """facebookresearch/TimeSformer ``.pyth``: ``{'model_state': {'model.time_embed',
    'model.blocks.0.temporal_attn.qkv.weight', ...}, 'cfg': ...}``. vidcls uses the
    reference's parameter names, so only the ``model.`` / ``module.`` prefixes go; the
    architecture is read from the shapes (``num_heads``, not stored, defaults to
    ``embed_dim // 64``). Normalisation 0.45 / 0.225; 8 frames 32 apart for K400 models."""
    from vidcls.models.timesformer import MEAN, STD

    state = reference_timesformer_state_dict(_unwrap(load_torch_file(src), src))
    kwargs = _timesformer_kwargs_from_state(state, num_heads)
    model = _build_timesformer(kwargs, state, src, num_frames=num_frames, img_size=img_size)
    names = resolve_classes(classes, model.num_classes, Path(src).name)
    return Converted(model, names, _timesformer_prep(model, MEAN, STD),
                     {"attention": model.attention, "num_heads": kwargs["num_heads"]})


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
    else 0.5 / 0.5 (what the HF TimeSformer checkpoints were converted with)."""
    src = Path(src)
    prep_cfg: dict = {}
    if src.is_dir():
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
    raw = read_state_dict(weights) if weights.suffix == ".safetensors" else _unwrap(
        load_torch_file(weights), weights)
    state = hf_timesformer_state_dict(raw)
    if "head.weight" not in state:
        raise ValueError(f"{src} is a TimesformerModel without a classifier; convert a "
                         "TimesformerForVideoClassification")
    kwargs = timesformer_kwargs_from_hf_config(cfg)
    kwargs["num_classes"] = state["head.weight"].shape[0]
    model = _build_timesformer(kwargs, state, src, num_frames=num_frames, img_size=img_size)
    if classes is None and cfg.get("id2label"):
        id2label = {int(k): v for k, v in cfg["id2label"].items()}
        if sorted(id2label) == list(range(model.num_classes)):
            classes = [id2label[i] for i in range(model.num_classes)]
    names = resolve_classes(classes, model.num_classes, src.name)
    mean = tuple(prep_cfg.get("image_mean", (0.5, 0.5, 0.5)))
    std = tuple(prep_cfg.get("image_std", (0.5, 0.5, 0.5)))
    prep = _timesformer_prep(model, mean, std, dense=False)
    size, crop = prep_cfg.get("size") or {}, prep_cfg.get("crop_size") or {}
    if isinstance(size, Mapping) and "shortest_edge" in size:
        prep["resize"] = int(size["shortest_edge"])
    if isinstance(crop, Mapping) and "height" in crop and crop.get("height") == crop.get("width"):
        prep["input_size"] = int(crop["height"])
    return Converted(model, names, prep, {"attention": model.attention})


def _mma_timesformer_rules(divided: bool) -> list[tuple[str, str]]:
    layer = r"^backbone\.transformer_layers\.layers\.(\d+)\."
    rules = [(r"^backbone\.patch_embed\.projection\.", "patch_embed.proj."),
             (r"^backbone\.(cls_token|pos_embed|time_embed)$", r"\1"),
             (r"^backbone\.norm\.", "norm."), (r"^cls_head\.fc_cls\.", "head."),
             (layer + r"ffns\.0\.layers\.0\.0\.", r"blocks.\1.mlp.fc1."),
             (layer + r"ffns\.0\.layers\.1\.", r"blocks.\1.mlp.fc2.")]
    if divided:  # DividedTemporalAttentionWithNorm, DividedSpatialAttentionWithNorm, FFNWithNorm
        rules += [(layer + r"attentions\.0\.norm\.", r"blocks.\1.temporal_norm1."),
                  (layer + r"attentions\.0\.attn\.in_proj_", r"blocks.\1.temporal_attn.qkv."),
                  (layer + r"attentions\.0\.attn\.out_proj\.", r"blocks.\1.temporal_attn.proj."),
                  (layer + r"attentions\.0\.temporal_fc\.", r"blocks.\1.temporal_fc."),
                  (layer + r"attentions\.1\.norm\.", r"blocks.\1.norm1."),
                  (layer + r"attentions\.1\.attn\.in_proj_", r"blocks.\1.attn.qkv."),
                  (layer + r"attentions\.1\.attn\.out_proj\.", r"blocks.\1.attn.proj."),
                  (layer + r"ffns\.0\.norm\.", r"blocks.\1.norm2.")]
    else:  # BaseTransformerLayer('norm', 'self_attn', 'norm', 'ffn') with MultiheadAttention
        rules += [(layer + r"norms\.0\.", r"blocks.\1.norm1."),
                  (layer + r"norms\.1\.", r"blocks.\1.norm2."),
                  (layer + r"attentions\.0\.attn\.in_proj_", r"blocks.\1.attn.qkv."),
                  (layer + r"attentions\.0\.attn\.out_proj\.", r"blocks.\1.attn.proj.")]
    return rules


def convert_timesformer_mmaction2(src: str | Path, *, num_heads: int | None = None,
                                  num_frames: int | None = None, img_size: int | None = None,
                                  classes: Any = None) -> Converted:
    """mmaction2 ``TimeSformer`` + ``TimeSformerHead``: ``nn.MultiheadAttention`` weights
    (``in_proj_weight`` = q, k, v stacked, like ``qkv``; ``out_proj`` = ``proj``) in
    ``backbone.transformer_layers.layers.N.attentions.{0: temporal, 1: spatial}`` with
    ``temporal_fc``, ``ffns.0.{norm, layers.0.0, layers.1}``; joint / space-only models use
    ``norms.0/1`` and ``attentions.0``. ``num_heads`` is read from the stored config when
    present (else ``embed_dim // 64``); normalisation 127.5 / 127.5 = 0.5 / 0.5."""
    ckpt = load_torch_file(src)
    text = _config_text(ckpt)
    raw = strip_prefix(_unwrap(ckpt, src), "module.")
    divided = any(".attentions.1." in k for k in raw)
    rules = _mma_timesformer_rules(divided)
    state = {}
    for key, value in raw.items():
        new = _rename(key, rules)
        if new == key:
            raise ValueError(f"{src}: unexpected key {key!r} for an mmaction2 TimeSformer")
        state[new] = value
    heads = num_heads or (int(_config_value(text, "num_heads") or 0) or None)
    kwargs = _timesformer_kwargs_from_state(state, heads)
    model = _build_timesformer(kwargs, state, src, num_frames=num_frames, img_size=img_size)
    names = resolve_classes(classes, model.num_classes, Path(src).name)
    return Converted(model, names, _timesformer_prep(model, (0.5,) * 3, (0.5,) * 3),
                     {"attention": model.attention, "num_heads": kwargs["num_heads"]})


# ------------------------------------------------------------------- image weights (init)
def _class_list(classes: Any) -> list[str]:
    """``classes`` as given (list, text file, shipped dataset name) -> names, unchecked."""
    from vidcls.resources import DATASETS, class_names

    if isinstance(classes, (str, Path)) and str(classes) in DATASETS:
        return class_names(str(classes))
    if isinstance(classes, (str, Path)):
        p = Path(classes)
        if not p.is_file():
            raise FileNotFoundError(f"class list {p} does not exist (give a text file with one "
                                    f"name per line, or one of: {', '.join(DATASETS)})")
        return [line.strip() for line in p.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    return [str(c) for c in classes]


def _init_num_classes(num_classes: int | None, classes: Any) -> int:
    """Class count of a model initialised from image weights (which carry none)."""
    if num_classes is not None:
        return num_classes
    if classes is None:
        raise ValueError("image weights have no video classes: give num_classes (and "
                         "optionally classes)")
    return len(_class_list(classes))


def convert_torchvision_resnet(src: str | Path, *, model: str | None = None,
                               num_classes: int | None = None, num_frames: int = 8,
                               shift_div: int = 8, shift_place: str = "residual",
                               shift_mode: str = "bidirectional", classes: Any = None) -> Converted:
    """A torchvision ImageNet ResNet / MobileNetV2 state dict -> a TSM (or TSN, ``model=
    "tsn_..."``) initialised from it, with a fresh head: the start of ``train --init``."""
    from vidcls.models import create_model

    sd = read_state_dict(src)
    sd = {k: v for k, v in strip_prefix(sd, "module.").items()
          if not k.startswith(("fc.", "classifier."))}
    arch = _backbone_arch("backbone." + k for k in sd)
    name = model or f"tsm_{arch}"
    if not name.endswith(f"_{arch}") or not name.startswith(("tsm_", "tsn_")):
        raise ValueError(f"{src} holds {arch} weights; model={name!r} needs other ones "
                         f"(use tsm_{arch} or tsn_{arch})")
    k = _init_num_classes(num_classes, classes)
    options = {} if name.startswith("tsn_") else dict(shift_div=shift_div,
                                                        shift_place=shift_place,
                                                        shift_mode=shift_mode)
    net = create_model(name, num_classes=k, num_frames=num_frames, **options)
    state = {**{f"backbone.{key}": v for key, v in sd.items()},
             "head.weight": net.head.weight.detach().clone(),
             "head.bias": net.head.bias.detach().clone()}
    _load_converted(net, state, src)
    return Converted(net, resolve_classes(classes, k, "init"), _tsm_prep(num_frames),
                     {"arch": arch, "init": "imagenet"})


def convert_timm_vit(src: str | Path, *, num_classes: int | None = None, num_frames: int = 8,
                     attention: str = "divided", img_size: int | None = None,
                     num_heads: int | None = None, classes: Any = None) -> Converted:
    """A timm image ViT (``vit_base_patch16_224`` names) -> a TimeSformer initialised as the
    reference does (spatial attention copied into the temporal one, time embedding and
    ``temporal_fc`` zero, position grid resampled to ``img_size``), with a fresh head."""
    from vidcls.models import create_model
    from vidcls.models.timesformer import MEAN, STD

    sd = strip_prefix(read_state_dict(src), "module.", "model.")
    for key in ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight"):
        if key not in sd:
            raise ValueError(f"{src} is not a timm ViT state dict ({key!r} is missing)")
    embed = sd["cls_token"].shape[-1]
    patch = sd["patch_embed.proj.weight"].shape[-1]
    depth = 1 + max(int(m[1]) for key in sd if (m := re.match(r"^blocks\.(\d+)\.", key)))
    side = math.isqrt(sd["pos_embed"].shape[1] - 1)
    k = _init_num_classes(num_classes, classes)
    net = create_model("timesformer_base", num_classes=k, num_frames=num_frames,
                       attention=attention, img_size=img_size or side * patch,
                       patch_size=patch, embed_dim=embed, depth=depth,
                       num_heads=num_heads or max(1, embed // 64),
                       mlp_ratio=sd["blocks.0.mlp.fc1.weight"].shape[0] / embed,
                       qkv_bias="blocks.0.attn.qkv.bias" in sd)
    timesformer_from_timm_vit(sd, net)
    return Converted(net.eval(), resolve_classes(classes, k, "init"),
                     _timesformer_prep(net, MEAN, STD),
                     {"init": "timm-vit"})


# ------------------------------------------------------------------- entry points
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
    from vidcls.engine.checkpoint import build_meta, save_model_checkpoint

    conv = convert(src, fmt, **options)
    source = {"format": fmt, "file": str(src), **{k: v for k, v in conv.source.items()
                                                   if v is not None}}
    meta = build_meta(conv.model, classes=conv.classes, preprocessing=conv.preprocessing,
                      source=source)
    return save_model_checkpoint(dst, conv.model, meta)
