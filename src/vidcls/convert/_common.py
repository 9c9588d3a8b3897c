"""What the per-source converters share.

* :class:`Converted`: the model, its class names and the preprocessing its source used.
* Settings the source does not store: :func:`assume` warns (:class:`ConversionWarning`) which
  default is used and which option sets it; :func:`reject_options` refuses options that do not
  apply to the file at hand (they would be silently ignored).
* Class names: :func:`resolve_classes` (a list, a text file, a shipped dataset, or a guess).
* Key renaming by literal rule tables: :func:`rename_key` / :func:`rename_keys`.
* Loading: :func:`load_converted`, the one weight path (``models._weights.load_filtered`` with
  the family's ``checkpoint_filter_fn``), then eval mode.
* TSN / TSM: which backbone a state dict is (:func:`backbone_arch`), where a source shifts
  (:func:`shift_sites`, checked against the model by :func:`check_shift_sites`), building the
  model (:func:`build_tsn`) and the TSM recipe (:func:`tsm_preprocessing`).
* TimeSformer: the architecture read from a state dict's shapes, the registered builder whose
  defaults match it (a converted 16 x 448 checkpoint records ``timesformer_hr``), and the
  reference recipe (:func:`timesformer_preprocessing`).

The configs stored in checkpoints are read in :mod:`._configs`.
"""
from __future__ import annotations

import inspect
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from torch import Tensor, nn

from vidcls.models import IMAGENET, INCEPTION, TIMESFORMER, Preprocessing, create_model
from vidcls.models._registry import get_builder, get_filter_fn
from vidcls.models._weights import StateDict, key_report, load_filtered
from vidcls.models.attention import VARIANT_STAGES
from vidcls.models.timesformer import (TimeSformer, timesformer_base, timesformer_hr,
                                       timesformer_large)
from vidcls.ops.temporal_shift import TemporalShift
from vidcls.resources import DATASETS, class_names, dataset_for_num_classes

#: ``(regex, replacement)``: the first rule whose pattern matches a key renames it
Rule = tuple[str, str]


@dataclass
class Converted:
    """A converted model with what it needs to predict: class names and the preprocessing
    its source was trained with; ``source`` records the settings read from the file."""

    model: nn.Module
    classes: list[str]
    preprocessing: Preprocessing
    source: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------ settings
class ConversionWarning(UserWarning):
    """A setting the checkpoint does not store fell back to a default: the converted model may
    be wrong if the default is. ``setting`` / ``value`` say which and what was used
    (``convert()`` records them as ``source["assumed"]`` in the checkpoint's meta.json)."""

    def __init__(self, message: str, setting: str, value: Any):
        super().__init__(message)
        self.setting, self.value = setting, value


def option_name(setting: str) -> str:
    """How a user sets ``setting``: the command-line flag and the keyword argument."""
    return f"--{setting.replace('_', '-')} / {setting}="


def assume(setting: str, value: Any, why: str) -> Any:
    """Use the default ``value`` for ``setting`` and say so (``why``: what the file lacks);
    returns ``value``."""
    warnings.warn(ConversionWarning(f"{setting}: {why}; using {value} (set it with "
                                    f"{option_name(setting)})", setting, value), stacklevel=3)
    return value


def reject_options(why: str, **options: Any) -> None:
    """Refuse the given (not None) ``options`` with ``why`` they do not apply to this file."""
    given = [k for k, v in options.items() if v is not None]
    if given:
        names = ", ".join(f"{k} ({option_name(k).split(' / ')[0]})" for k in given)
        verb, it = ("does", "it") if len(given) == 1 else ("do", "them")
        raise ValueError(f"{names} {verb} not apply: {why}; leave {it} out")


# ------------------------------------------------------------------------------ class names
def class_list(classes: Any) -> list[str]:
    """``classes`` as given (list, text file, shipped dataset name) -> names, unchecked."""
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


def resolve_classes(classes: Any, num_classes: int, hint: str = "", *,
                    source: Any = None) -> list[str]:
    """Class names for a converted checkpoint: ``classes`` may be a list, a text file (one
    name per line, in label order) or a shipped dataset name (``kinetics400``, ``jester``);
    None guesses a shipped list from the class count and ``hint`` (the file name), else
    index names ``"0", "1", ...``. With ``source`` (a converted file, not an initialisation)
    a list the hint does not name is announced by :func:`assume`."""
    if classes is None:
        dataset = dataset_for_num_classes(num_classes, hint)
        names = class_names(dataset) if dataset else [str(i) for i in range(num_classes)]
        if source is not None and not (dataset and hint):  # a non-empty hint named it
            guess = (f"the {dataset} list" if dataset else
                     f"index names 0..{num_classes - 1}")
            assume("classes", guess, f"{source} stores no class names"
                   + (f" (guessed from its {num_classes} classes)" if dataset else ""))
    else:
        names = class_list(classes)
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for a checkpoint with {num_classes} classes; "
                         "give exactly one name per class, in label order")
    return names


def init_num_classes(num_classes: int | None, classes: Any) -> int:
    """Class count of a model initialised from image weights (which carry none)."""
    if num_classes is not None:
        return num_classes
    if classes is None:
        raise ValueError("image weights have no video classes: give num_classes (and "
                         "optionally classes)")
    return len(class_list(classes))


# ------------------------------------------------------------------------------ renaming
def rename_key(key: str, rules: Iterable[Rule]) -> str | None:
    """``key`` renamed by the first rule that matches it; None when none does."""
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return None


def rename_keys(state: Mapping[str, Tensor], rules: Iterable[Rule],
                unknown: Callable[[str], Exception]) -> StateDict:
    """Every key of ``state`` renamed by ``rules``; a key no rule matches raises
    ``unknown(key)``, two keys landing on one name raise too (nothing is silently dropped)."""
    rules = list(rules)
    out: StateDict = {}
    origin: dict[str, str] = {}
    for key, value in state.items():
        new = rename_key(key, rules)
        if new is None:
            raise unknown(key)
        if new in out:
            raise ValueError(f"keys {origin[new]!r} and {key!r} both become {new!r}; the file "
                             "holds two layers where the model has one")
        out[new], origin[new] = value, key
    return out


# ------------------------------------------------------------------------------ loading
def load_converted(model: nn.Module, state: Mapping[str, Tensor], source: Any, *,
                   init: bool = False) -> nn.Module:
    """Load renamed weights through the one weight path: the family's
    ``checkpoint_filter_fn`` (TimeSformer: embeddings fitted to the model with its recorded
    interpolation modes), then the strict key report. Returns the model in eval mode.

    A converted checkpoint must provide every weight, the head included: a key the filter
    would leave at its fresh init is an error, unless ``init`` (an ImageNet initialisation,
    whose video head is new by design)."""
    filter_fn = get_filter_fn(model.build_config["name"])
    fresh = load_filtered(model, state, filter_fn, source=source)
    if fresh and not init:
        raise ValueError(f"{source} does not fit model {model.build_config['name']} after "
                         f"conversion: {key_report(fresh, [])}")
    return model.eval()


# ------------------------------------------------------------------------------ TSN / TSM
#: ``(stages' block counts, bottleneck?)`` -> backbone
_RESNETS = {((2, 2, 2, 2), False): "resnet18", ((3, 4, 6, 3), False): "resnet34",
            ((3, 4, 6, 3), True): "resnet50", ((3, 4, 23, 3), True): "resnet101"}


def backbone_arch(keys: Iterable[str]) -> str:
    """Which 2-D backbone a vidcls-named state dict (``backbone.*``) belongs to."""
    keys = list(keys)
    if any(k.startswith("backbone.features.") for k in keys):
        return "mobilenetv2"
    counts = []
    for stage in range(1, 5):
        idx = {int(m[1]) for k in keys if (m := re.match(rf"^backbone\.layer{stage}\.(\d+)\.", k))}
        counts.append(max(idx) + 1 if idx else 0)
    bottleneck = any(k.startswith("backbone.layer1.0.conv3.") for k in keys)
    arch = _RESNETS.get((tuple(counts), bottleneck))
    if arch is None:
        raise ValueError(f"cannot tell the backbone: its stages have {counts} "
                         f"{'bottleneck' if bottleneck else 'basic'} blocks; vidcls has "
                         "ResNet-18/34/50/101 and MobileNetV2")
    return arch


def strip_net(key: str) -> str:
    """Drop the ``.net`` level the TSM authors' ``TemporalShift(net)`` wrapper adds."""
    return re.sub(r"\.net(?=\.)", "", key)


def shift_sites(keys: Iterable[str], patterns: Iterable[Rule]) -> set[tuple[str, str]]:
    """``{(block, place)}`` of the blocks a source shifts, from its ``.net`` wrapper keys;
    ``patterns`` are ``(regex capturing the block name, place)``."""
    patterns = list(patterns)
    sites = set()
    for key in keys:
        for pattern, place in patterns:
            m = re.match(pattern, key)
            if m:
                sites.add((m[1], place))
    return sites


def model_shift_sites(model: nn.Module) -> set[tuple[str, str]]:
    """``{(block, place)}`` of the blocks a vidcls TSM shifts."""
    sites = set()
    for name, module in model.backbone.named_modules():
        if isinstance(module, TemporalShift):
            block, slot = name.rsplit(".", 1)
            sites.add((block, "residual" if slot == "shift_branch" else "inplace"))
    return sites


def check_shift_sites(model: nn.Module, sites: set[tuple[str, str]], source: Any) -> None:
    """The blocks the source shifts must be exactly the blocks the vidcls model shifts."""
    ours = model_shift_sites(model)
    if ours != sites:
        only_src, only_ours = sorted(sites - ours)[:4], sorted(ours - sites)[:4]
        raise ValueError(f"{source} shifts other blocks than {model.build_config['name']} with "
                         f"{model.tsm}: only in the file {only_src}, only in vidcls {only_ours}")


def single_place(sites: set[tuple[str, str]], source: Any) -> str | None:
    """The one shift placement of a source (None: not shifted, a TSN)."""
    places = {p for _, p in sites}
    if len(places) > 1:
        raise ValueError(f"{source} mixes residual and in-place shifts; vidcls models use one "
                         "placement for all blocks")
    return places.pop() if places else None


def build_tsn(arch: str, *, num_classes: int, num_frames: int, place: str | None,
              shift_div: int, temporal_pool: bool, shift_mode: str = "bidirectional") -> nn.Module:
    """``tsn_{arch}`` when the source has no shift (``place`` None), else ``tsm_{arch}``."""
    if place is None:
        return create_model(f"tsn_{arch}", num_classes=num_classes, num_frames=num_frames,
                            temporal_pool=temporal_pool)
    return create_model(f"tsm_{arch}", num_classes=num_classes, num_frames=num_frames,
                        shift_div=shift_div, shift_place=place, shift_mode=shift_mode,
                        temporal_pool=temporal_pool)


def tsm_preprocessing(num_frames: int, dense: bool = False) -> Preprocessing:
    """The TSM authors' recipe: ImageNet statistics, short side 256, centre 224, one frame per
    segment; ``dense`` (their ``dense_sample``): ``num_frames`` frames ``64 // num_frames``
    apart."""
    if dense:
        return IMAGENET.replace(num_frames=num_frames, sampling="dense", clip_len=num_frames,
                                frame_interval=max(1, 64 // num_frames))
    return IMAGENET.replace(num_frames=num_frames)


# ------------------------------------------------------------------------------ TimeSformer
#: What the reference TimeSformer (facebookresearch) and HF transformers do to fit the
#: embeddings to another clip: ``F.interpolate(mode="nearest")`` on the patch grid and along
#: time. Recorded in the model options of checkpoints converted from them, so that a converted
#: model reproduces its source at other sizes and frame counts too.
NEAREST = dict(pos_interpolation="nearest", time_interpolation="nearest")
#: mmaction2's TimeSformer recipe (mean = std = 127.5 in 0..255 units) and the HF checkpoints'
#: image processor default: the INCEPTION preset's statistics
HALF_NORM = dict(mean=INCEPTION.mean, std=INCEPTION.std)
#: the reference's names of the attention schemes (its yacs cfg; HF's and mmaction2's configs)
REFERENCE_ATTENTION = {"divided_space_time": "divided", "joint_space_time": "joint",
                       "space_only": "space"}
#: reference sampling interval per clip length (8 x 32 for K400 -B, 16 x 16 -HR, 96 x 4 -L)
TIMESFORMER_INTERVAL = {8: 32, 16: 16, 96: 4}
_TIMESFORMER_BUILDERS = (timesformer_base, timesformer_hr, timesformer_large)


def vit_architecture(state: Mapping[str, Tensor], num_heads: int | None, source: Any,
                     what: str = "TimeSformer") -> dict:
    """The ViT architecture of a state dict in timm / reference names, read from its shapes:
    ``img_size`` (the square grid of ``pos_embed``), ``patch_size``, ``embed_dim``,
    ``depth``, ``mlp_ratio``, ``qkv_bias``; ``num_heads`` is not stored and defaults to
    ``embed_dim // 64``."""
    for key in ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight"):
        if key not in state:
            raise ValueError(f"{source} is not a {what} state dict ({key!r} is missing)")
    embed = state["cls_token"].shape[-1]
    patch = state["patch_embed.proj.weight"].shape[-1]
    n = state["pos_embed"].shape[1] - 1
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"pos_embed has {n} patch positions, not a square grid")
    heads = num_heads or assume("num_heads", max(1, embed // 64),
                                f"{source} does not store the attention heads "
                                f"(embed_dim {embed} / 64 assumed)")
    if embed % heads:
        raise ValueError(f"embed_dim={embed} is not divisible by num_heads={heads}")
    depth = 1 + max(int(m[1]) for k in state if (m := re.match(r"^blocks\.(\d+)\.", k)))
    return dict(img_size=side * patch, patch_size=patch, embed_dim=embed, depth=depth,
                num_heads=heads, mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / embed,
                qkv_bias="blocks.0.attn.qkv.bias" in state)


def timesformer_kwargs_from_state(state: Mapping[str, Tensor], num_heads: int | None,
                                  source: Any) -> dict:
    """Architecture of a TimeSformer state dict in vidcls/reference names: the ViT's
    (:func:`vit_architecture`), the attention scheme its stages show, class and frame counts
    (``num_frames`` None for a space-only model: it has no time embedding to show it)."""
    vit = vit_architecture(state, num_heads, source)
    prefixes = {m[1] for k in state if (m := re.match(r"^blocks\.0\.(\w+)_attn\.", k))}
    has_time = "time_embed" in state
    attention = next((name for name, (stages, _) in VARIANT_STAGES.items()
                      if {p for p, _ in stages} == prefixes
                      and (name != "space" or not has_time) and (name != "joint" or has_time)),
                     None)
    if attention is None:
        raise ValueError(f"cannot tell the attention scheme from stages {sorted(prefixes)}")
    if "head.weight" not in state:
        raise ValueError(f"{source} has no classification head (head.*)")
    return dict(num_classes=state["head.weight"].shape[0],
                num_frames=state["time_embed"].shape[1] if has_time else None,
                attention=attention, **vit)


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else tuple(size)


def timesformer_builder_name(num_frames: int, img_size: int | tuple[int, int]) -> str:
    """The registered TimeSformer builder whose defaults are ``num_frames`` x ``img_size``
    (16 x 448: ``timesformer_hr``, 96 x 224: ``timesformer_large``), else ``timesformer_base``:
    the checkpoint then names the architecture it really is."""
    for builder in _TIMESFORMER_BUILDERS:
        params = inspect.signature(builder).parameters
        if (params["num_frames"].default == num_frames
                and _hw(params["img_size"].default) == _hw(img_size)):
            return builder.__name__
    return timesformer_base.__name__


def build_timesformer(kwargs: Mapping[str, Any], state: Mapping[str, Tensor], source: Any,
                      **overrides: Any) -> TimeSformer:
    """The vidcls TimeSformer for the architecture ``kwargs`` with ``overrides`` applied
    (None values ignored: another ``num_frames`` / ``img_size``, interpolation modes), built by
    its true builder and loaded with ``state``; ``load_converted`` fits the embeddings to the
    model with the model's interpolation modes."""
    kwargs = {**kwargs, **{k: v for k, v in overrides.items() if v is not None}}
    builder = get_builder(timesformer_builder_name(kwargs["num_frames"], kwargs["img_size"]))
    return load_converted(builder(**kwargs), state, source)  # builder: num_classes=0 allowed


def timesformer_preprocessing(model: TimeSformer, *, sampling: str = "dense",
                              frame_interval: int | None = None,
                              input_size: int | None = None, resize: int | None = None,
                              mean: Any = None, std: Any = None,
                              source: Any = None) -> Preprocessing:
    """The reference recipe for ``model``: 0.45 / 0.225 (or ``mean`` / ``std``), the short
    side scaled to the crop (``input_size``, default the model's; or to ``resize``).

    ``sampling="dense"``: ``T`` frames ``frame_interval`` apart; without an interval, the
    reference's for the clip length (8 x 32, 16 x 16, 96 x 4), else one frame per segment.
    With ``source`` (a converted file whose config is not known) that guess is announced by
    :func:`assume`."""
    size = input_size or model.img_size
    prep = TIMESFORMER.replace(mean=mean, std=std, input_size=size, resize=resize or min(_hw(size)),
                               num_frames=model.num_frames)
    if sampling != "dense":
        return prep
    if frame_interval is None:
        frame_interval = TIMESFORMER_INTERVAL.get(model.num_frames)
        if source is not None:
            why = f"{source} stores no frame sampling"
            assume("frame_interval", frame_interval or "none, one frame per segment",
                   why + (f" (the reference's interval for {model.num_frames} frames)"
                          if frame_interval else ""))
    if frame_interval is None:
        return prep
    return prep.replace(sampling="dense", clip_len=model.num_frames,
                        frame_interval=frame_interval)
