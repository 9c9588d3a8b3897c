"""Tiny models for tests: every registered name at a size that runs in milliseconds on a CPU.

TSN / TSM keep their real backbones (they have no width option) and only get small clips;
TimeSformer builders get a 2-block, 32-dim ViT on 32 px frames (patch 8)."""
from __future__ import annotations

import torch

from vidcls.models import create_model

#: architecture options that shrink any TimeSformer builder
TINY_TIMESFORMER = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
#: the frame size tiny clips use
TINY_SIZE = 32


def tiny_options(name: str) -> dict:
    """Options that make ``create_model(name, ...)`` tiny."""
    return dict(TINY_TIMESFORMER) if name.startswith("timesformer") else {}


def tiny_model(name: str, *, num_classes: int = 3, num_frames: int = 2, seed: int = 0, **options):
    """``create_model(name)`` at tiny size with seeded weights, in eval mode."""
    torch.manual_seed(seed)
    return create_model(name, num_classes=num_classes, num_frames=num_frames,
                        **{**tiny_options(name), **options}).eval()


def tiny_clip(batch: int = 1, frames: int = 2, size: int = TINY_SIZE, seed: int = 0):
    """A normalised-looking random clip ``(B, T, 3, H, W)``."""
    return torch.randn(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(seed))


def calibrated_model(name: str, *, num_classes: int = 5, size: int = TINY_SIZE, **options):
    """A model whose batch-norm statistics fit random clips and whose head gives visible
    logits, so a wrong shift or a frozen shape shows in the outputs (eval mode)."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=num_classes, num_frames=4, **options)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 4, 3, size, size))
        model.head.weight.normal_(0, model.head.weight.shape[1] ** -0.5)
    return model.eval()
