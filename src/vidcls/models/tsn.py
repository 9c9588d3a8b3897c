"""TSN and TSM video recognizers: a 2-D backbone run on every frame, a linear head, and the
average of the per-frame logits (segment consensus). TSM = TSN + temporal shifts.

Model layout and state-dict keys (identical for TSN and TSM, because the shift is parameter-free
and sits in ``nn.Identity`` slots of the backbone blocks, see :mod:`vidcls.models.resnet`)::

    backbone.*   torchvision names, e.g. backbone.conv1.weight, backbone.layer1.0.conv1.weight,
                 backbone.features.3.conv.0.0.weight (MobileNetV2); the backbone's own
                 classifier (fc / classifier) is removed (nn.Identity, no keys)
    head.weight  (num_classes, num_features)   the new linear layer (TSM repo: ``new_fc``)
    head.bias    (num_classes,)

Where the shift goes (``shift_place``):

* ``"residual"`` (default, TSM repo ``blockres``): ``block.shift_branch``, on the residual branch
  right before the block's first conv; the identity path keeps the unshifted input.
  ResNet-101 shifts every other block of each stage, as the TSM authors' code does for deep
  ResNets (``n_round = 2`` when layer3 has >= 23 blocks).
* ``"inplace"`` (TSM repo ``block``): ``block.shift_main``, the block input on the main path,
  so the identity path carries the shifted tensor too.

On MobileNetV2 only the inverted residual blocks with an identity connection are shifted (10 of
17), like the TSM authors' online demo.

``shift_mode="unidirectional"`` shifts only past -> present (channels ``[0, fold)`` take frame
``t-1``); such a model can be streamed frame by frame with :class:`vidcls.streaming.OnlineTSM`.
``temporal_pool=True`` (TSM repo option, ResNet only) max-pools time by 2 after ``layer1``.

The number of frames ``T`` is read from the input at every forward: ``num_frames`` is the
nominal value (sampling default, checkpoint metadata), not a constraint.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidcls.models._preprocessing import IMAGENET
from vidcls.models._registry import register_model
from vidcls.models._weights import classifier_keys
from vidcls.models.mobilenetv2 import MobileNetV2, mobilenet_v2
from vidcls.models.resnet import ResNet, resnet18, resnet34, resnet50, resnet101
from vidcls.ops.temporal_shift import SHIFT_MODES, TemporalShift, is_exporting

__all__ = ["TSN", "TemporalPoolStage", "SHIFT_PLACES", "checkpoint_filter_fn",
           "tsn_resnet18", "tsn_resnet34", "tsn_resnet50", "tsn_resnet101", "tsn_mobilenetv2",
           "tsm_resnet18", "tsm_resnet34", "tsm_resnet50", "tsm_resnet101", "tsm_mobilenetv2"]

SHIFT_PLACES = ("residual", "inplace")
_BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "resnet101": resnet101,
    "mobilenetv2": mobilenet_v2,
}
# The TSM authors shift every n-th block of each stage with residual placement: n = 2 for
# ResNets whose layer3 has >= 23 blocks (ResNet-101), 1 otherwise.
_RESIDUAL_SHIFT_EVERY = {"resnet101": 2}


class TemporalPoolStage(nn.Sequential):
    """A ResNet stage preceded by a temporal max-pool (kernel 3, stride 2, padding 1 over time),
    the TSM repo's ``temporal_pool``. Subclassing ``nn.Sequential`` with the stage's own blocks
    keeps their state-dict keys (``layer2.0.conv1.weight``)."""

    def __init__(self, stage: nn.Sequential, num_frames: int):
        super().__init__(*stage)
        self.num_frames = num_frames  # frames entering the pool; set by TSN at every forward

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(temporal_max_pool(x, self.num_frames))


def temporal_max_pool(x: Tensor, num_frames: int) -> Tensor:
    """``(N*T, C, H, W)`` -> ``(N*T/2, C, H, W)``: max over frames ``2t-1, 2t, 2t+1``."""
    channels, height, width = x.shape[1:]
    x5 = x.reshape(-1, num_frames, channels, height, width).transpose(1, 2)  # (N, C, T, H, W)
    x5 = F.max_pool3d(x5, kernel_size=(3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0))
    return x5.transpose(1, 2).reshape(-1, channels, height, width)  # (N*T/2, C, H, W)


class TSN(nn.Module):
    """Temporal Segment Network (optionally with temporal shifts = TSM).

    Input ``(B, T, 3, H, W)`` normalised frames -> logits ``(B, num_classes)``.
    ``forward_features`` gives per-frame pooled features ``(B, T', C)`` (``T' = T``, or ``T/2``
    with ``temporal_pool``); ``forward_head`` applies dropout + ``head`` and the average
    consensus; ``forward_frames`` gives per-frame logits ``(B, T', K)`` before the consensus.
    """

    def __init__(self, backbone: ResNet | MobileNetV2, *, arch: str, num_classes: int,
                 num_frames: int = 8, dropout: float = 0.5, temporal_pool: bool = False):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if temporal_pool and not isinstance(backbone, ResNet):
            raise ValueError(f"temporal_pool is implemented for ResNet backbones only, not {arch!r}"
                             " (set temporal_pool=False)")
        self.arch = arch
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.temporal_pool = temporal_pool
        self.tsm: dict[str, Any] | None = None  # shift options once make_tsm() ran
        self.preprocessing = IMAGENET.replace(num_frames=num_frames)
        self.backbone = backbone
        self.num_features = backbone.num_features
        if temporal_pool:
            backbone.layer2 = TemporalPoolStage(backbone.layer2, num_frames)
        self.dropout = nn.Dropout(p=dropout)
        self.reset_classifier(num_classes)

    # ------------------------------------------------------------------ shift insertion
    def make_tsm(self, shift_div: int = 8, shift_place: str = "residual",
                 shift_mode: str = "bidirectional") -> "TSN":
        """Put a :class:`TemporalShift` into the backbone's blocks (in place; returns self)."""
        if self.tsm is not None:
            raise ValueError("this model already has temporal shifts")
        if not isinstance(shift_div, int) or isinstance(shift_div, bool) or shift_div < 2:
            raise ValueError(f"shift_div must be an integer >= 2 (8 moves 1/8 of the channels each"
                             f" way, 2 shifts everything), got {shift_div!r}")
        if shift_place not in SHIFT_PLACES:
            raise ValueError(f"shift_place {shift_place!r} is unknown; use one of {SHIFT_PLACES}")
        if shift_mode not in SHIFT_MODES:
            raise ValueError(f"shift_mode {shift_mode!r} is unknown; use one of {SHIFT_MODES}")
        every = _RESIDUAL_SHIFT_EVERY.get(self.arch, 1) if shift_place == "residual" else 1
        stages = self.backbone.stages if isinstance(self.backbone, ResNet) else [
            self.backbone.residual_blocks()]
        for stage in stages:
            blocks = [b for b in stage if getattr(b, "use_res_connect", True)]
            for i, block in enumerate(blocks):
                if i % every:
                    continue
                shift = TemporalShift(block.in_channels, shift_div, shift_mode, self.num_frames)
                if shift_place == "residual":
                    block.shift_branch = shift
                else:
                    block.shift_main = shift
        self.tsm = dict(shift_div=shift_div, shift_place=shift_place, shift_mode=shift_mode)
        return self

    def temporal_shifts(self) -> list[TemporalShift]:
        """The shift modules in execution order (empty for TSN)."""
        return [m for m in self.backbone.modules() if isinstance(m, TemporalShift)]

    def _set_num_frames(self, num_frames: Any) -> None:
        """Tell the parameter-free temporal modules how many frames each clip has now."""
        if isinstance(self.backbone, ResNet):
            after_pool = num_frames // 2 if self.temporal_pool else num_frames
            per_stage = [(self.backbone.layer1, num_frames)] + [
                (stage, after_pool) for stage in self.backbone.stages[1:]]
            if self.temporal_pool:
                self.backbone.layer2.num_frames = num_frames
        else:
            per_stage = [(self.backbone.features, num_frames)]
        for stage, frames in per_stage:
            for m in stage.modules():
                if isinstance(m, TemporalShift):
                    m.num_frames = frames

    # ------------------------------------------------------------------ forward
    def _check_clip(self, x: Tensor) -> None:
        if x.dim() != 5:
            raise ValueError(f"expected a clip batch (B, T, 3, H, W), got shape {tuple(x.shape)}"
                             " (a single clip needs x.unsqueeze(0))")
        if is_exporting():  # sizes are traced values: checking them would freeze the graph
            return
        if x.shape[2] != 3:
            raise ValueError(f"expected 3 colour channels at dim 2 of (B, T, 3, H, W), got shape "
                             f"{tuple(x.shape)} (frames must be channel-first RGB)")
        if self.temporal_pool and x.shape[1] % 2:
            raise ValueError(f"temporal_pool halves the frames after layer1 and needs an even "
                             f"frame count; got T={x.shape[1]} (use an even num_frames or "
                             f"temporal_pool=False)")

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, T, 3, H, W)`` -> per-frame pooled features ``(B, T', C)``."""
        self._check_clip(x)
        num_frames = x.shape[1]
        self._set_num_frames(num_frames)
        frames = x.flatten(0, 1)  # (B*T, 3, H, W)
        feats = self.backbone.forward_features(frames)  # (B*T', C)
        frames_out = num_frames // 2 if self.temporal_pool else num_frames
        return feats.reshape(-1, frames_out, feats.shape[-1])  # (B, T', C)

    def forward_head(self, feats: Tensor, pre_logits: bool = False) -> Tensor:
        """``(B, T', C)`` features -> logits ``(B, K)``: the average consensus of the per-frame
        logits (``pre_logits=True``: the frame-averaged features ``(B, C)`` the head sees)."""
        feats = self.dropout(feats)
        if pre_logits:
            return feats.mean(dim=1)  # (B, C)
        return self.head(feats).mean(dim=1)  # (B, T', K) -> (B, K)

    def forward_frames(self, x: Tensor) -> Tensor:
        """Per-frame logits ``(B, T', K)``; their mean over frames is ``forward(x)``."""
        return self.head(self.dropout(self.forward_features(x)))  # (B, T', K)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised head for ``num_classes`` classes (fine-tuning)."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes)
        nn.init.normal_(self.head.weight, 0, 0.001)  # the TSM repo's new_fc init
        nn.init.zeros_(self.head.bias)
        if getattr(self, "build_config", None):
            self.build_config = {**self.build_config, "num_classes": num_classes}

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


# ---------------------------------------------------------------------- weights
_IMAGE_CLASSIFIERS = ("fc.", "classifier.")  # torchvision ResNet / MobileNetV2 heads


def checkpoint_filter_fn(state_dict: Mapping[str, Tensor], model: "TSN"
                         ) -> tuple[dict[str, Tensor], list[str]]:
    """Weights for ``pretrained=`` / ``train --init`` -> this model's names.

    * a torchvision ImageNet state dict (``conv1.weight``, ``layer1.0...``, ``features.*``):
      becomes ``backbone.*``; its ImageNet classifier (``fc.*`` / ``classifier.*``) is dropped
      and the video head keeps its own init;
    * a vidcls TSN/TSM state dict (``backbone.*``, ``head.*``): taken as is, except a head of
      another class count (fine-tuning), which keeps its init.

    Returns ``(state_dict, keys left at their init)``.
    """
    head = classifier_keys(model)
    if not any(k.startswith("backbone.") for k in state_dict):
        state = {f"backbone.{k}": v for k, v in state_dict.items()
                 if not k.startswith(_IMAGE_CLASSIFIERS)}
        return state, head
    state = dict(state_dict)
    own = model.state_dict()
    if any(k in state and state[k].shape != own[k].shape for k in head):
        for k in head:
            state.pop(k, None)
        return state, head
    return state, []


# ---------------------------------------------------------------------- builders
_SHIFT_OPTIONS = ("shift_div", "shift_place", "shift_mode")
_register = register_model(filter_fn=checkpoint_filter_fn)


def _build(arch: str, *, num_classes: int, num_frames: int, dropout: float, temporal_pool: bool,
           tsm: dict[str, Any] | None) -> TSN:
    if not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
    backbone = _BACKBONES[arch](num_classes=0)
    model = TSN(backbone, arch=arch, num_classes=num_classes, num_frames=num_frames,
                dropout=dropout, temporal_pool=temporal_pool)
    if tsm is not None:
        model.make_tsm(**tsm)
    return model


def _tsn(arch: str, num_classes: int, num_frames: int, dropout: float, temporal_pool: bool,
         options: dict[str, Any]) -> TSN:
    if options:
        shift = sorted(set(options) & set(_SHIFT_OPTIONS))
        if shift:
            raise ValueError(f"{', '.join(shift)} is a TSM option; tsn_{arch} has no temporal "
                             f"shift (use tsm_{arch})")
        raise ValueError(f"tsn_{arch} got unknown options {sorted(options)}; it accepts "
                         "num_classes, num_frames, dropout, temporal_pool, pretrained")
    return _build(arch, num_classes=num_classes, num_frames=num_frames, dropout=dropout,
                  temporal_pool=temporal_pool, tsm=None)


def _tsm(arch: str, num_classes: int, num_frames: int, dropout: float, temporal_pool: bool,
         shift_div: int, shift_place: str, shift_mode: str) -> TSN:
    return _build(arch, num_classes=num_classes, num_frames=num_frames, dropout=dropout,
                  temporal_pool=temporal_pool,
                  tsm=dict(shift_div=shift_div, shift_place=shift_place, shift_mode=shift_mode))


@_register
def tsn_resnet18(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                 temporal_pool: bool = False, **options) -> TSN:
    return _tsn("resnet18", num_classes, num_frames, dropout, temporal_pool, options)


@_register
def tsn_resnet34(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                 temporal_pool: bool = False, **options) -> TSN:
    return _tsn("resnet34", num_classes, num_frames, dropout, temporal_pool, options)


@_register
def tsn_resnet50(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                 temporal_pool: bool = False, **options) -> TSN:
    return _tsn("resnet50", num_classes, num_frames, dropout, temporal_pool, options)


@_register
def tsn_resnet101(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                  temporal_pool: bool = False, **options) -> TSN:
    return _tsn("resnet101", num_classes, num_frames, dropout, temporal_pool, options)


@_register
def tsn_mobilenetv2(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                    temporal_pool: bool = False, **options) -> TSN:
    return _tsn("mobilenetv2", num_classes, num_frames, dropout, temporal_pool, options)


@_register
def tsm_resnet18(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                 shift_div: int = 8, shift_place: str = "residual",
                 shift_mode: str = "bidirectional", temporal_pool: bool = False) -> TSN:
    return _tsm("resnet18", num_classes, num_frames, dropout, temporal_pool,
                shift_div, shift_place, shift_mode)


@_register
def tsm_resnet34(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                 shift_div: int = 8, shift_place: str = "residual",
                 shift_mode: str = "bidirectional", temporal_pool: bool = False) -> TSN:
    return _tsm("resnet34", num_classes, num_frames, dropout, temporal_pool,
                shift_div, shift_place, shift_mode)


@_register
def tsm_resnet50(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                 shift_div: int = 8, shift_place: str = "residual",
                 shift_mode: str = "bidirectional", temporal_pool: bool = False) -> TSN:
    return _tsm("resnet50", num_classes, num_frames, dropout, temporal_pool,
                shift_div, shift_place, shift_mode)


@_register
def tsm_resnet101(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                  shift_div: int = 8, shift_place: str = "residual",
                  shift_mode: str = "bidirectional", temporal_pool: bool = False) -> TSN:
    return _tsm("resnet101", num_classes, num_frames, dropout, temporal_pool,
                shift_div, shift_place, shift_mode)


@_register
def tsm_mobilenetv2(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                    shift_div: int = 8, shift_place: str = "residual",
                    shift_mode: str = "bidirectional", temporal_pool: bool = False) -> TSN:
    return _tsm("mobilenetv2", num_classes, num_frames, dropout, temporal_pool,
                shift_div, shift_place, shift_mode)
