"""Model cost summary: parameters, FLOPs per clip and the input a model expects.

FLOPs are counted by running the model once on the ``meta`` device under
``torch.utils.flop_counter.FlopCounterMode``: no memory is allocated and no arithmetic runs,
so even TimeSformer-L at 96x224 is summarised instantly. The papers quote "FLOPs" as
multiply-accumulates (TSM-R50 8 frames: 33 G; TimeSformer 8x224: 196 G per view), so we
report GMACs under that name and the raw FLOP count (2 per MAC) beside it.

These are the package's one parameter counter and one FLOP counter: ``vidcls info``, the
benchmarks and the demo import :func:`count_parameters` and :func:`count_flops` instead of
counting on their own.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from vidcls.models import create_model


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters (trainable or not; shared tensors once, as ``parameters()`` does)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs (2 per multiply-add) of one forward pass on an input of ``input_shape``."""
    device = next(model.parameters()).device
    x = torch.zeros(input_shape, device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


def model_info(name: str, *, num_frames: int | None = None, size: int | None = None,
               num_classes: int = 400, **options: Any) -> dict[str, Any]:
    """Parameters, GFLOPs per clip and input spec of model ``name`` (built on the meta device)."""
    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes, num_frames=num_frames, **options)
    model.eval()
    frames = model.num_frames
    prep = model.preprocessing  # the model card: its crop size unless ``size`` is given
    height, width = (size, size) if size else prep.crop_hw
    shape = (1, frames, 3, height, width)
    flops = count_flops(model, shape)
    return {
        "model": name,
        "options": options,
        "num_classes": num_classes,
        "params": count_parameters(model),
        "input_shape": list(shape),
        "gflops_paper": flops / 2e9,
        "gflops_raw": flops / 1e9,
        "preprocessing": prep.to_dict(),
    }


def format_info(info: dict[str, Any]) -> str:
    prep = info["preprocessing"]
    opts = ", ".join(f"{k}={v}" for k, v in info["options"].items()) or "defaults"
    lines = [
        f"model        {info['model']} ({opts})",
        f"parameters   {info['params'] / 1e6:.2f} M",
        f"GFLOPs/clip  {info['gflops_paper']:.1f} (multiply-adds, the papers' convention; "
        f"{info['gflops_raw']:.1f} G raw FLOPs)",
        f"input        (B, T, 3, H, W) = {tuple(info['input_shape'])}, float",
        f"preprocess   resize short side {prep['resize']}, crop {prep['input_size']}, "
        f"mean {tuple(prep['mean'])}, std {tuple(prep['std'])}",
        f"output       logits (B, {info['num_classes']})",
    ]
    return "\n".join(lines)
