"""Optimizer groups, lr schedules, partial BN and the loss, against hand-computed references."""
import math

import pytest
import torch

from vidcls.engine.config import TrainConfig
from vidcls.engine.optim import (LRSchedule, build_optimizer, classification_loss,
                                 effective_lr, freeze_partial_bn, parameter_groups,
                                 set_partial_bn_eval)
from vidcls.models import create_model


def tiny_tsm():
    torch.manual_seed(0)
    return create_model("tsm_resnet18", num_classes=4, num_frames=2)


def test_parameter_groups_no_decay_and_head_lr():
    model = tiny_tsm()
    train = TrainConfig(lr=0.1, weight_decay=1e-4, head_lr_mult=5.0)
    groups = {g["name"]: g for g in parameter_groups(model, train, lr=0.1)}
    assert set(groups) == {"body", "body_no_decay", "head", "head_no_decay"}
    assert groups["head"]["params"] == [model.head.weight]
    assert groups["head_no_decay"]["params"] == [model.head.bias]
    assert groups["head"]["lr"] == pytest.approx(0.5) and groups["body"]["lr"] == 0.1
    assert groups["body_no_decay"]["weight_decay"] == 0.0
    assert groups["body"]["weight_decay"] == 1e-4
    # every BN weight/bias is in a no-decay group; every conv weight decays
    no_decay = {id(p) for p in groups["body_no_decay"]["params"]}
    for name, p in model.named_parameters():
        if "bn" in name or name.endswith("bias"):
            assert id(p) in no_decay or id(p) == id(model.head.bias), name
        if "conv" in name:
            assert id(p) in {id(q) for q in groups["body"]["params"]}, name
    n_params = sum(len(g["params"]) for g in groups.values())
    assert n_params == len(list(model.parameters()))
    # one group pair when no multiplier and decay everywhere
    flat = parameter_groups(model, TrainConfig(no_decay_bias_norm=False), lr=0.1)
    assert [g["name"] for g in flat] == ["body"]


def test_build_optimizers():
    model = tiny_tsm()
    sgd = build_optimizer(model, TrainConfig(optimizer="sgd", momentum=0.8, nesterov=True), 0.1)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"]
    adamw = build_optimizer(model, TrainConfig(optimizer="adamw", betas=[0.8, 0.9]), 1e-3)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.8, 0.9)


def test_linear_lr_scaling():
    assert effective_lr(TrainConfig(lr=0.02, lr_batch_size=128), 64) == pytest.approx(0.01)
    assert effective_lr(TrainConfig(lr=0.02), 64) == 0.02


def lrs(kind, steps=20, **kw):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    s = LRSchedule(opt, kind=kind, steps_per_epoch=2, epochs=10, **kw)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        s.step()
    return out


def test_step_schedule_with_warmup():
    got = lrs("step", milestones=[4, 8], gamma=0.1, warmup_epochs=1, warmup_start_factor=0.2)
    want = []
    for step in range(20):
        f = 0.1 ** sum(step >= m * 2 for m in (4, 8))
        if step < 2:
            f *= 0.2 + 0.8 * step / 2
        want.append(f)
    assert got == pytest.approx(want)
    assert got[:3] == pytest.approx([0.2, 0.6, 1.0])
    assert got[7] == 1.0 and got[8] == pytest.approx(0.1) and got[16] == pytest.approx(0.01)


def test_cosine_schedule():
    got = lrs("cosine", warmup_epochs=0, min_lr_ratio=0.1)
    for step, lr in enumerate(got):
        assert lr == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / 20)))
    warm = lrs("cosine", warmup_epochs=2, warmup_start_factor=0.0)
    assert warm[0] == 0.0 and warm[2] == pytest.approx(0.5)
    assert warm[4] == pytest.approx(1.0)  # warm-up done, cosine at its start
    assert warm[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 15 / 16)))


def test_partial_bn_freezes_all_but_first():
    model = tiny_tsm()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert freeze_partial_bn(model) == len(bns) - 1
    assert bns[0].weight.requires_grad and not bns[1].weight.requires_grad
    model.train()
    set_partial_bn_eval(model)
    assert bns[0].training and not any(b.training for b in bns[1:])
    before = [b.running_mean.clone() for b in bns]
    model(torch.randn(2, 2, 3, 32, 32)).sum().backward()
    assert not torch.equal(bns[0].running_mean, before[0])  # first BN adapts
    assert all(torch.equal(b.running_mean, m) for b, m in zip(bns[1:], before[1:]))
    assert all(b.weight.grad is None for b in bns[1:]) and bns[0].weight.grad is not None
    names = [g["name"] for g in parameter_groups(model, TrainConfig(), 0.1)]
    n = sum(len(g["params"]) for g in parameter_groups(model, TrainConfig(), 0.1))
    assert n == sum(p.requires_grad for p in model.parameters()) and names


def test_label_smoothing_loss_matches_definition():
    logits = torch.randn(5, 4)
    target = torch.tensor([0, 3, 1, 1, 2])
    eps = 0.1
    logp = logits.log_softmax(1)
    smooth = torch.full((5, 4), eps / 4)
    smooth[torch.arange(5), target] += 1 - eps
    want = -(smooth * logp).sum(1).mean()
    torch.testing.assert_close(classification_loss(logits, target, eps), want)
    multi = torch.tensor([[1.0, 0, 0, 1]] * 5)
    torch.testing.assert_close(
        classification_loss(logits, multi),
        torch.nn.functional.binary_cross_entropy_with_logits(logits, multi))
