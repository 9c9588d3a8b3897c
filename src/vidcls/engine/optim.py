"""Optimizer, learning-rate schedule, partial BN and loss: the recipe side of training.

Parameter groups follow the TSM / timm practice: biases and normalisation parameters (every
parameter with fewer than 2 dimensions, plus what a model lists in ``no_weight_decay()``) get no
weight decay, and the classifier can get a larger learning rate (``head_lr_mult``) when
fine-tuning from ImageNet weights.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from vidcls.engine.config import TrainConfig

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model under a DDP / compile wrapper."""
    while True:
        if isinstance(getattr(model, "module", None), nn.Module):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def head_parameter_names(model: nn.Module) -> set[str]:
    """Names of the classifier's parameters (every vidcls model has ``get_classifier()``)."""
    model = unwrap(model)
    ids = {id(p) for p in model.get_classifier().parameters()}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def parameter_groups(model: nn.Module, train: TrainConfig, lr: float) -> list[dict]:
    """Split trainable parameters into (decay / no-decay) x (body / head) groups."""
    model = unwrap(model)
    head = head_parameter_names(model) if train.head_lr_mult != 1.0 else set()
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = train.no_decay_bias_norm and (p.ndim <= 1 or name in skip
                                                 or name.split(".")[-1] in skip)
        groups.setdefault((name in head, no_decay), []).append(p)
    out = []
    for (is_head, no_decay), params in sorted(groups.items()):
        out.append({
            "params": params,
            "name": ("head" if is_head else "body") + ("_no_decay" if no_decay else ""),
            "lr": lr * (train.head_lr_mult if is_head else 1.0),
            "weight_decay": 0.0 if no_decay else train.weight_decay,
        })
    if not out:
        raise ValueError("the model has no trainable parameters (all requires_grad=False)")
    return out


def build_optimizer(model: nn.Module, train: TrainConfig, lr: float) -> torch.optim.Optimizer:
    groups = parameter_groups(model, train, lr)
    if train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=train.momentum, nesterov=train.nesterov,
                               weight_decay=train.weight_decay)
    if train.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(train.betas),
                                 weight_decay=train.weight_decay)
    raise ValueError(f"unknown optimizer {train.optimizer!r}; choose sgd or adamw")


class LRSchedule:
    """Per-optimizer-step learning rate: linear warm-up, then step decay or cosine.

    Stepping per iteration (not per epoch) makes warm-up smooth with few epochs. Each group's
    rate is ``base_lr x factor(step)``; the state is one integer, so resuming is exact.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, kind: str, steps_per_epoch: int,
                 epochs: int, milestones: list[int] = (), gamma: float = 0.1,
                 warmup_epochs: float = 0.0, warmup_start_factor: float = 0.1,
                 min_lr_ratio: float = 0.0):
        if kind not in ("step", "cosine", "constant"):
            raise ValueError(f"unknown lr scheduler {kind!r}; choose step, cosine or constant")
        self.optimizer = optimizer
        self.kind = kind
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.total_steps = self.steps_per_epoch * epochs
        self.milestones = [m * self.steps_per_epoch for m in milestones]
        self.gamma = gamma
        self.warmup_steps = int(round(warmup_epochs * self.steps_per_epoch))
        self.warmup_start_factor = warmup_start_factor
        self.min_lr_ratio = min_lr_ratio
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def factor(self, step: int) -> float:
        if self.kind == "step":
            f = self.gamma ** sum(step >= m for m in self.milestones)
        elif self.kind == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, max(0.0, (step - self.warmup_steps) / span))
            cosine = 0.5 * (1 + math.cos(math.pi * progress))
            f = self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine
        else:
            f = 1.0
        if step < self.warmup_steps:
            alpha = step / self.warmup_steps
            f *= self.warmup_start_factor + (1 - self.warmup_start_factor) * alpha
        return f

    def _apply(self) -> None:
        f = self.factor(self.last_step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.last_step = int(state["last_step"])
        self.base_lrs = list(state.get("base_lrs", self.base_lrs))
        self._apply()


def build_scheduler(optimizer, train: TrainConfig, steps_per_epoch: int, lr: float) -> LRSchedule:
    return LRSchedule(optimizer, kind=train.scheduler, steps_per_epoch=steps_per_epoch,
                      epochs=train.epochs, milestones=train.milestones, gamma=train.gamma,
                      warmup_epochs=train.warmup_epochs,
                      warmup_start_factor=train.warmup_start_factor,
                      min_lr_ratio=train.min_lr / lr if lr > 0 else 0.0)


def effective_lr(train: TrainConfig, global_batch: int) -> float:
    """``train.lr``, scaled linearly from ``lr_batch_size`` clips to the real global batch."""
    if train.lr_batch_size is None:
        return train.lr
    return train.lr * global_batch / train.lr_batch_size


# --------------------------------------------------------------------------------------
# Partial BN (TSM): freeze every BatchNorm but the first
# --------------------------------------------------------------------------------------

def batchnorm_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in unwrap(model).modules() if isinstance(m, _BN_TYPES)]


def freeze_partial_bn(model: nn.Module) -> int:
    """Stop gradients to all BN affine parameters except the first BN's; returns how many.

    With few clips per GPU, batch statistics of a video batch are noisy; TSM keeps the
    ImageNet statistics and affine parameters of every BN but the first (which must adapt to
    the new input distribution). Call ``set_partial_bn_eval`` after every ``model.train()``.
    """
    frozen = batchnorm_layers(model)[1:]
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    return len(frozen)


def set_partial_bn_eval(model: nn.Module) -> None:
    """Put every BN but the first in eval mode so its running statistics stay fixed."""
    for m in batchnorm_layers(model)[1:]:
        m.eval()


# --------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------

def classification_loss(logits: torch.Tensor, target: torch.Tensor,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy for class indices; BCE-with-logits for multi-hot float targets."""
    logits = logits.float()
    if target.is_floating_point():  # multi-label, (B, K)
        if label_smoothing:
            target = target * (1 - label_smoothing) + 0.5 * label_smoothing
        return nn.functional.binary_cross_entropy_with_logits(logits, target)
    return nn.functional.cross_entropy(logits, target, label_smoothing=label_smoothing)
