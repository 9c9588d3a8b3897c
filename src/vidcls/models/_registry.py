"""``@register_model`` / ``create_model`` / ``list_models``: model name -> builder.

Each builder registers itself where it is defined (timm's pattern), so the list of models cannot
drift from the code. Registration wraps the builder so that *every* way of building a model --
``create_model("tsm_resnet50")`` or calling ``tsm_resnet50()`` directly -- records how it was
built on the model (``model.build_config``: name, class and frame counts, architecture options)
and accepts ``pretrained=``. That record is what checkpoints store to rebuild the network, so a
model built either way can be saved and loaded.

``pretrained`` is an initialisation, not architecture: it is loaded through the family's
``checkpoint_filter_fn`` (:func:`vidcls.models._weights.load_filtered`) and never recorded.
"""
from __future__ import annotations

import functools
import inspect
import os
from typing import Any, Callable

from torch import nn

from vidcls.models._weights import FilterFn, load_filtered, read_state_dict

__all__ = ["register_model", "create_model", "list_models", "get_builder", "get_filter_fn",
           "load_pretrained"]

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_FILTERS: dict[str, FilterFn | None] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *,
                   filter_fn: FilterFn | None = None):
    """Decorator: add ``fn`` to the registry under its own name.

    ``filter_fn(state_dict, model) -> (state_dict, fresh_keys)`` adapts foreign weight layouts
    for ``pretrained=``. Use as ``@register_model`` or ``@register_model(filter_fn=...)``.
    """
    if fn is None:
        return functools.partial(register_model, filter_fn=filter_fn)
    name = fn.__name__
    if name in _BUILDERS:
        raise ValueError(f"model {name!r} is registered twice")

    @functools.wraps(fn)
    def builder(*, pretrained: str | os.PathLike | None = None, **kwargs: Any) -> nn.Module:
        model = fn(**kwargs)
        options = {k: v for k, v in kwargs.items() if k not in ("num_classes", "num_frames")}
        model.build_config = {"name": name, "num_classes": model.num_classes,
                              "num_frames": model.num_frames, **options}
        if pretrained is not None:
            load_pretrained(model, pretrained)
        return model

    signature = inspect.signature(fn)
    if "pretrained" not in signature.parameters:
        extra = inspect.Parameter("pretrained", inspect.Parameter.KEYWORD_ONLY, default=None)
        params = list(signature.parameters.values())
        var_kw = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
        params = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
        builder.__signature__ = signature.replace(parameters=params + [extra] + var_kw)
    _BUILDERS[name] = builder
    _FILTERS[name] = filter_fn
    return builder


def list_models() -> list[str]:
    """All model names ``create_model`` accepts, sorted."""
    return sorted(_BUILDERS)


def get_builder(name: str) -> Callable[..., nn.Module]:
    try:
        return _BUILDERS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; choose one of: {', '.join(list_models())}") from None


def get_filter_fn(name: str) -> FilterFn | None:
    """The ``checkpoint_filter_fn`` registered with builder ``name``."""
    get_builder(name)
    return _FILTERS[name]


def load_pretrained(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Initialise a registered model from a weight file or vidcls checkpoint directory, through
    its family's filter; returns the keys left at their own initialisation."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"pretrained weight file {path!r} does not exist (a published "
                                "model by name? vidcls.create_model(..., pretrained=NAME) and "
                                "vidcls.load_model(NAME) take those; `vidcls models` lists them)")
    filter_fn = get_filter_fn(model.build_config["name"])
    return load_filtered(model, read_state_dict(path), filter_fn, source=repr(path))


def create_model(name: str, *, num_classes: int = 400, num_frames: int | None = None,
                 pretrained: str | os.PathLike | None = None, **options: Any) -> nn.Module:
    """Build a video classifier by name.

    Input of every model: a float clip batch ``(B, T, 3, H, W)``; output: logits ``(B, num_classes)``.
    ``num_frames=None`` keeps the architecture's reference frame count (8 for TSN/TSM and
    TimeSformer-B, 16 for -HR, 96 for -L). ``options`` are architecture options, e.g.
    ``shift_div=4`` for TSM or ``attention="joint"`` for TimeSformer. ``pretrained``: a weight
    file (torchvision / timm image weights, a reference or vidcls checkpoint) to start from.
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    builder = get_builder(name)
    kwargs = dict(options)
    if num_frames is not None:
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
        kwargs["num_frames"] = num_frames
    return builder(num_classes=num_classes, pretrained=pretrained, **kwargs)
