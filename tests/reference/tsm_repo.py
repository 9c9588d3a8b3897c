"""The TSM authors' offline model (mit-han-lab/temporal-shift-module), re-implemented from
its definitions: ``ops/temporal_shift.py`` (``TemporalShift(net)``: shift, then the wrapped
module; ``make_temporal_shift`` for ``blockres`` / ``block`` placement) and ``ops/models.py``
(``TSN``: ``base_model`` with its fc replaced by dropout, ``new_fc``, average consensus), plus
what their ``main.py`` saves. The oracle for :mod:`vidcls.convert.tsm_official`."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from reference.tsm_shift import temporal_shift_reference_style
from vidcls.models.resnet import resnet18


def ref_shift(x, n_segment, fold_div):
    """The TSM authors' TemporalShift.shift (zeros + three slice copies)."""
    return temporal_shift_reference_style(x, n_segment, fold_div)


class RefTemporalShift(nn.Module):
    """``TemporalShift(net)`` of the TSM repo: shift, then run the wrapped ``net``."""

    def __init__(self, net, n_segment, n_div):
        super().__init__()
        self.net, self.n_segment, self.fold_div = net, n_segment, n_div

    def forward(self, x):
        return self.net(ref_shift(x, self.n_segment, self.fold_div))


class RefTSN(nn.Module):
    """The TSM repo's TSN wrapper: ``base_model`` (fc replaced by dropout), ``new_fc``,
    average consensus over segments."""

    def __init__(self, base_model, feature_dim, num_class, num_segments):
        super().__init__()
        self.base_model = base_model
        self.num_segments = num_segments
        self.new_fc = nn.Linear(feature_dim, num_class)

    def forward(self, x):  # x (B, T, 3, H, W)
        base_out = self.new_fc(self.base_model(x.reshape(-1, *x.shape[2:])))
        return base_out.reshape(-1, self.num_segments, base_out.shape[-1]).mean(1)


def make_ref_resnet_tsm(place: str, n_segment: int, n_div: int, num_class: int) -> RefTSN:
    """ResNet-18 (torchvision layout) + ``make_temporal_shift`` as in the TSM repo."""
    base = resnet18(num_classes=1000)  # torchvision names; shift slots stay nn.Identity
    base.fc = nn.Dropout(0.5)
    for stage in (base.layer1, base.layer2, base.layer3, base.layer4):
        for i, block in enumerate(stage):
            if place == "blockres":
                block.conv1 = RefTemporalShift(block.conv1, n_segment, n_div)
            else:
                stage[i] = RefTemporalShift(block, n_segment, n_div)
    return RefTSN(base, 512, num_class, n_segment)


def save_tsm_checkpoint(path, model: nn.Module):
    """What the TSM repo's main.py saves (model wrapped in DataParallel: ``module.``)."""
    sd = OrderedDict(("module." + k, v) for k, v in model.state_dict().items())
    torch.save({"epoch": 50, "arch": "resnet18", "state_dict": sd, "best_prec1": 71.2,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.01}]}}, path)


def store_name(dataset: str, arch: str, *, num_segments: int, shift_div: int | None = None,
               shift_place: str = "blockres", temporal_pool: bool = False, epochs: int = 45,
               modality: str = "RGB", consensus: str = "avg", pretrain: str = "imagenet",
               lr_type: str = "step", dense_sample: bool = False, non_local: bool = False,
               suffix: str | None = None) -> str:
    """``args.store_name`` as the TSM repo's ``main.py`` builds it (``shift_div`` None: no
    ``--shift``): the folder its checkpoints are saved in."""
    full_arch_name = arch
    if shift_div is not None:
        full_arch_name += f"_shift{shift_div}_{shift_place}"
    if temporal_pool:
        full_arch_name += "_tpool"
    name = "_".join(["TSM", dataset, modality, full_arch_name, consensus,
                     f"segment{num_segments}", f"e{epochs}"])
    if pretrain != "imagenet":
        name += f"_{pretrain}"
    if lr_type != "step":
        name += f"_{lr_type}"
    if dense_sample:
        name += "_dense"
    if non_local:
        name += "_nl"
    if suffix is not None:
        name += f"_{suffix}"
    return name


def save_main_py_checkpoints(root, name: str, model: nn.Module):
    """What ``main.py``'s ``save_checkpoint(state, is_best=True)`` leaves:
    ``root/checkpoint/<store_name>/ckpt.pth.tar`` and its copy ``ckpt.best.pth.tar``; returns
    the best one's path."""
    import shutil
    from pathlib import Path

    folder = Path(root) / "checkpoint" / name
    folder.mkdir(parents=True, exist_ok=True)
    save_tsm_checkpoint(folder / "ckpt.pth.tar", model)
    shutil.copyfile(folder / "ckpt.pth.tar", folder / "ckpt.best.pth.tar")
    return folder / "ckpt.best.pth.tar"
