"""``create_model`` / ``list_models``: model name -> builder function, nothing else.

Builders live next to their architecture (``tsn.py``, ``timesformer.py``) and only set
architecture arguments. The factory records how a model was built on the model itself
(``model.build_config``) so checkpoints can rebuild it without guessing.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from torch import nn

# name -> (module, builder function). Imported lazily so importing vidcls stays cheap.
_MODELS: dict[str, tuple[str, str]] = {
    **{f"tsn_{b}": ("vidcls.models.tsn", f"tsn_{b}") for b in
       ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenetv2")},
    **{f"tsm_{b}": ("vidcls.models.tsn", f"tsm_{b}") for b in
       ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenetv2")},
    **{name: ("vidcls.models.timesformer", name) for name in
       ("timesformer_base", "timesformer_hr", "timesformer_large")},
}


def list_models() -> list[str]:
    """All model names ``create_model`` accepts, sorted."""
    return sorted(_MODELS)


def get_builder(name: str) -> Callable[..., nn.Module]:
    try:
        module_name, fn_name = _MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; choose one of: {', '.join(list_models())}"
        ) from None
    return getattr(importlib.import_module(module_name), fn_name)


def create_model(name: str, *, num_classes: int = 400, num_frames: int | None = None,
                 **options: Any) -> nn.Module:
    """Build a video classifier by name.

    Input of every model: a float clip batch ``(B, T, 3, H, W)``; output: logits ``(B, num_classes)``.
    ``num_frames=None`` keeps the architecture's reference frame count (8 for TSN/TSM and
    TimeSformer-B, 16 for -HR, 96 for -L). ``options`` are architecture options, e.g.
    ``shift_div=4`` for TSM or ``attention="joint"`` for TimeSformer.
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    builder = get_builder(name)
    kwargs = dict(options)
    if num_frames is not None:
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
        kwargs["num_frames"] = num_frames
    model = builder(num_classes=num_classes, **kwargs)
    # ``pretrained`` is an initialisation file, not architecture: the trained weights travel
    # with the checkpoint, so rebuilding must not need (or re-read) that file.
    arch_options = {k: v for k, v in options.items() if k != "pretrained"}
    model.build_config = {"name": name, "num_classes": num_classes,
                          "num_frames": model.num_frames, **arch_options}
    return model
