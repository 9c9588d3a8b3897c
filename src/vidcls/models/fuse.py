"""Inference-only rewrites of a trained CNN that keep its function: batch norm folded into the
convolution before it.

In eval mode a ``BatchNorm2d`` is a fixed per-channel affine map, so ``bn(conv(x))`` is one
convolution with rescaled weights and a bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``). On
a CPU the separate normalisation is a full pass over every activation of the network: folding
it makes TSN/TSM-ResNet-50 1.06x faster in fp32 and 1.15x in bf16 + ``channels_last``
(``benchmarks/bench_precision.py``). The folded model is for inference only (it has no batch
statistics left to train), so only code that owns the model (it loaded it itself) folds it:
:func:`vidcls.engine.inference.prepare_for_inference`.

The pairs are listed per architecture, not guessed from module order: a conv is folded only
where the block's ``forward`` feeds its output straight into that batch norm.
"""
from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from vidcls.models.resnet import BasicBlock, Bottleneck, ResNet

__all__ = ["fold_batchnorm"]

# module type -> (conv attribute, the batch norm attribute applied right after it) in forward()
_NAMED_PAIRS: dict[type, tuple[tuple[str, str], ...]] = {
    ResNet: (("conv1", "bn1"),),
    BasicBlock: (("conv1", "bn1"), ("conv2", "bn2")),
    Bottleneck: (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
}


def _fold_pair(conv: nn.Module, bn: nn.Module) -> nn.Module | None:
    if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
        return fuse_conv_bn_eval(conv.eval(), bn.eval())
    return None


def _fold_named(module: nn.Module) -> int:
    folded = 0
    for conv_name, bn_name in _NAMED_PAIRS.get(type(module), ()):
        fused = _fold_pair(getattr(module, conv_name), getattr(module, bn_name))
        if fused is not None:
            setattr(module, conv_name, fused)
            setattr(module, bn_name, nn.Identity())
            folded += 1
    return folded


def _fold_sequential(seq: nn.Sequential) -> int:
    """Consecutive ``(Conv2d, BatchNorm2d)`` children of a Sequential run one into the other
    (ResNet downsample, MobileNetV2's ConvBNReLU6 and pointwise-linear layers)."""
    folded = 0
    names = list(seq._modules)
    for first, second in zip(names, names[1:]):
        fused = _fold_pair(seq._modules[first], seq._modules[second])
        if fused is not None:
            seq._modules[first] = fused
            seq._modules[second] = nn.Identity()
            folded += 1
    return folded


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every batch norm that directly follows a convolution into it, in place; returns
    how many were folded. Puts ``model`` in eval mode (folding uses the running statistics)."""
    model.eval()
    folded = 0
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            folded += _fold_sequential(module)
        else:
            folded += _fold_named(module)
    return folded
