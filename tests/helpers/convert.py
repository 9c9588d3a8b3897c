"""Shared by the converter tests (tests/convert/): BN calibration that makes every channel
count, and the tiny TimeSformer whose state dicts stand for foreign checkpoints."""
from __future__ import annotations

import torch
from torch import nn

from vidcls.models import create_model


def calibrate(model: nn.Module, clip_shape, seed: int = 0) -> nn.Module:
    """Batch-norm statistics from random clips and random BN affine parameters, so every
    channel matters and a misplaced or permuted weight shows in the logits."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
            m.weight.data.uniform_(0.5, 1.5, generator=g)
            m.bias.data.normal_(0, 0.2, generator=g)
    model.train()
    with torch.no_grad():
        model(torch.randn(*clip_shape, generator=g))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.weight.data.normal_(0, m.weight.shape[1] ** -0.5, generator=g)
            m.bias.data.normal_(0, 0.1, generator=g)
    return model.eval()


TINY = dict(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2)


def tiny_timesformer(attention="divided", frames=4, classes=5, seed=0):
    torch.manual_seed(seed)
    model = create_model("timesformer_base", num_classes=classes, num_frames=frames,
                         attention=attention, **TINY).eval()
    with torch.no_grad():  # zero-initialised parts get values, so they count
        for name, p in model.named_parameters():
            if "_fc." in name or name == "time_embed":
                p.normal_(0, 0.2)
    return model
