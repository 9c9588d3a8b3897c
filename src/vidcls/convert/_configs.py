"""The training configs that checkpoints carry (or come with), read without running them.

Why: the settings a state dict cannot show -- frames, sampling, crop size, class names, the
segment count Paddle's shift depends on -- are in the source's own config; guessing them gives
a model that loads and is silently wrong.

* TimeSformer reference (facebookresearch): ``save_checkpoint`` stores ``"cfg": cfg.dump()``,
  the yacs ``CfgNode`` as YAML text (``yaml.safe_dump``); a pickled ``CfgNode`` (forks saving
  ``cfg`` itself) arrives from the restricted unpickler as an inert placeholder holding its
  items, read here as a plain dict. :func:`reference_cfg`, :func:`cfg_get`.
* mmaction2: the config text in ``meta`` (mmengine: ``meta["cfg"]``, ``cfg.pretty_text``;
  some writers ``meta["config"]``), class names in ``meta["dataset_meta"]["classes"]``
  (mmengine) or ``meta["CLASSES"]`` (mmcv), and the config file name (``meta["config_name"]``,
  mmcv; ``meta["experiment_name"]``, mmengine; published files are named after their config)
  whose ``8x32x1`` is clip length x frame interval x clips. :func:`config_text` and friends.
* PaddleVideo: the training YAML (``MODEL.backbone.num_seg``), given by the user.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from vidcls.models._weights import _Opaque

__all__ = ["plain", "reference_cfg", "cfg_get", "config_text", "config_value",
           "config_section", "config_list", "meta_classes", "config_names",
           "sampling_from_name", "paddle_config"]


def plain(obj: Any) -> Any:
    """A restored config as plain dicts / lists: a pickled ``CfgNode`` (a dict subclass the
    restricted unpickler turns into an inert placeholder holding its items) becomes a dict."""
    if isinstance(obj, _Opaque):
        items = obj.__dict__.get("items")
        return plain(items) if items is not None else None
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


# ------------------------------------------------------------------ TimeSformer reference
def reference_cfg(ckpt: Any, source: Any) -> dict:
    """The yacs config of a reference ``.pyth`` (``ckpt["cfg"]``) as nested dicts; {} when the
    file has none."""
    raw = ckpt.get("cfg") if isinstance(ckpt, Mapping) else None
    if isinstance(raw, str):
        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ValueError(f"{source}: its stored cfg is not the YAML of cfg.dump(): "
                             f"{str(err).splitlines()[0]}") from None
    raw = plain(raw)
    return raw if isinstance(raw, dict) else {}


def cfg_get(cfg: Mapping[str, Any], dotted: str) -> Any:
    """``cfg_get(cfg, "DATA.NUM_FRAMES")``; None when any level is missing."""
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


# ------------------------------------------------------------------ mmaction2 / mmengine
def _meta(ckpt: Any) -> Mapping:
    meta = plain(ckpt.get("meta")) if isinstance(ckpt, Mapping) else None
    return meta if isinstance(meta, Mapping) else {}


def config_text(ckpt: Any) -> str:
    """The config an mmaction2 / mmengine checkpoint carries in ``meta`` (or '')."""
    meta = _meta(ckpt)
    for key in ("cfg", "config"):
        if isinstance(meta.get(key), str):
            return meta[key]
    return ""


def config_value(text: str, name: str, pattern: str = r"(\d+)") -> str | None:
    """``name = VALUE`` / ``name: VALUE`` in a stored config text (first match)."""
    m = re.search(rf"\b{name}\s*[=:]\s*{pattern}", text)
    return m[1] if m else None


def config_section(text: str, name: str) -> str:
    """The bracketed value of ``name = [...]`` (e.g. ``test_pipeline``) in a config text, so
    that a setting is read from the test pipeline rather than the training one; '' if absent."""
    m = re.search(rf"\b{name}\s*=\s*\[", text)
    if not m:
        return ""
    depth = 0
    for i in range(m.end() - 1, len(text)):
        depth += {"[": 1, "]": -1}.get(text[i], 0)
        if depth == 0:
            return text[m.end() - 1:i + 1]
    return text[m.end() - 1:]


def config_list(text: str, name: str) -> list[float] | None:
    """``name=[a, b, c]`` in a config text as numbers (first match), else None."""
    raw = config_value(text, name, r"(\[[^\]]*\])")
    try:
        values = ast.literal_eval(raw) if raw else None
    except (ValueError, SyntaxError):
        return None
    return [float(v) for v in values] if isinstance(values, list) else None


def meta_classes(ckpt: Any) -> list[str] | None:
    """Class names an mmaction2 checkpoint stores: ``meta["dataset_meta"]["classes"]``
    (mmengine) or ``meta["CLASSES"]`` (mmcv); None when it stores none."""
    meta = _meta(ckpt)
    dataset_meta = meta.get("dataset_meta")
    names = dataset_meta.get("classes") if isinstance(dataset_meta, Mapping) else None
    names = names if names is not None else meta.get("CLASSES")
    if isinstance(names, (list, tuple)) and names and all(isinstance(n, str) for n in names):
        return list(names)
    return None


def config_names(ckpt: Any, src: str | Path) -> list[str]:
    """Names that describe an mmaction2 run, most specific first: ``meta["config_name"]``
    (mmcv), ``meta["experiment_name"]`` (mmengine), then the file name."""
    meta = _meta(ckpt)
    names = [meta.get(k) for k in ("config_name", "experiment_name")]
    return [n for n in names if isinstance(n, str)] + [Path(src).name]


def sampling_from_name(names: list[str]) -> tuple[int, int, int] | None:
    """``(clip_len, frame_interval, num_clips)`` from mmaction2's config naming (``..._8x32x1_``
    TimeSformer, ``..._1x1x8_`` TSM; ``8xb8`` is GPUs x batch and does not match)."""
    for name in names:
        m = re.search(r"(?<![\dx])(\d+)x(\d+)x(\d+)(?![\dx])", name)
        if m:
            return int(m[1]), int(m[2]), int(m[3])
    return None


# ------------------------------------------------------------------ PaddleVideo
def paddle_config(path: str | Path) -> dict:
    """A PaddleVideo training YAML (``configs/recognition/tsm/*.yaml``) as a dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PaddleVideo config {path} does not exist")
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a YAML file: {str(err).splitlines()[0]}") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("MODEL"), dict):
        raise ValueError(f"{path} is not a PaddleVideo config (no MODEL section)")
    return cfg
