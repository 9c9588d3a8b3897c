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

import os
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidcls.models.mobilenetv2 import MobileNetV2, mobilenet_v2
from vidcls.models.resnet import ResNet, resnet18, resnet34, resnet50, resnet101
from vidcls.ops.temporal_shift import SHIFT_MODES, TemporalShift, is_exporting

__all__ = ["TSN", "TemporalPoolStage", "SHIFT_PLACES", "load_backbone_weights",
           "tsn_resnet18", "tsn_resnet34", "tsn_resnet50", "tsn_resnet101", "tsn_mobilenetv2",
           "tsm_resnet18", "tsm_resnet34", "tsm_resnet50", "tsm_resnet101", "tsm_mobilenetv2"]

SHIFT_PLACES = ("residual", "inplace")
IMAGENET_PREPROCESSING = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                              input_size=224, resize=256)
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
        self.preprocessing = dict(IMAGENET_PREPROCESSING)
        self.backbone = backbone
        self.num_features = backbone.num_features
        if temporal_pool:
            backbone.layer2 = TemporalPoolStage(backbone.layer2, num_frames)
        self.dropout = nn.Dropout(p=dropout)
        self.head = nn.Linear(self.num_features, num_classes)
        nn.init.normal_(self.head.weight, 0, 0.001)  # the TSM repo's new_fc init
        nn.init.zeros_(self.head.bias)

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

    def forward_head(self, feats: Tensor, pre_consensus: bool = False) -> Tensor:
        """``(B, T', C)`` features -> logits ``(B, K)`` (``(B, T', K)`` if ``pre_consensus``)."""
        logits = self.head(self.dropout(feats))  # (B, T', K)
        return logits if pre_consensus else logits.mean(dim=1)

    def forward_frames(self, x: Tensor) -> Tensor:
        """Per-frame logits ``(B, T', K)``; their mean over frames is ``forward(x)``."""
        return self.forward_head(self.forward_features(x), pre_consensus=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


# ---------------------------------------------------------------------- weights
def _read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained weight file {path!r} does not exist")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # common wrappers around a state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path!r} holds a {type(state).__name__}, not a state dict")
    return state


def load_backbone_weights(backbone: nn.Module, path: str | os.PathLike) -> None:
    """Load a torchvision ImageNet state dict (``.pth`` or ``.safetensors``) into ``backbone``.

    Strict, except that the ImageNet classifier (``fc.*`` / ``classifier.*``) is skipped: the
    video model has its own head.
    """
    state = {k: v for k, v in _read_state_dict(path).items()
             if not k.startswith(("fc.", "classifier."))}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{os.fspath(path)!r} does not match the {type(backbone).__name__} backbone: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
            f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''} (expected torchvision "
            f"parameter names, e.g. a torchvision resnet50 / mobilenet_v2 state dict)")


# ---------------------------------------------------------------------- builders
_SHIFT_OPTIONS = ("shift_div", "shift_place", "shift_mode")


def _build(arch: str, *, num_classes: int, num_frames: int, dropout: float, temporal_pool: bool,
           pretrained: str | os.PathLike | None, tsm: dict[str, Any] | None) -> TSN:
    if not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
    backbone = _BACKBONES[arch](num_classes=0)
    if pretrained is not None:
        load_backbone_weights(backbone, pretrained)
    model = TSN(backbone, arch=arch, num_classes=num_classes, num_frames=num_frames,
                dropout=dropout, temporal_pool=temporal_pool)
    if tsm is not None:
        model.make_tsm(**tsm)
    return model


def _tsn(arch: str, num_classes: int, num_frames: int, dropout: float, temporal_pool: bool,
         pretrained, options: dict[str, Any]) -> TSN:
    if options:
        shift = sorted(set(options) & set(_SHIFT_OPTIONS))
        if shift:
            raise ValueError(f"{', '.join(shift)} is a TSM option; tsn_{arch} has no temporal "
                             f"shift (use tsm_{arch})")
        raise ValueError(f"tsn_{arch} got unknown options {sorted(options)}; it accepts "
                         "num_classes, num_frames, dropout, temporal_pool, pretrained")
    return _build(arch, num_classes=num_classes, num_frames=num_frames, dropout=dropout,
                  temporal_pool=temporal_pool, pretrained=pretrained, tsm=None)


def _tsm(arch: str, num_classes: int, num_frames: int, dropout: float, temporal_pool: bool,
         pretrained, shift_div: int, shift_place: str, shift_mode: str) -> TSN:
    return _build(arch, num_classes=num_classes, num_frames=num_frames, dropout=dropout,
                  temporal_pool=temporal_pool, pretrained=pretrained,
                  tsm=dict(shift_div=shift_div, shift_place=shift_place, shift_mode=shift_mode))


def tsn_resnet18(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                 temporal_pool: bool = False, pretrained=None, **options) -> TSN:
    return _tsn("resnet18", num_classes, num_frames, dropout, temporal_pool, pretrained, options)


def tsn_resnet34(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                 temporal_pool: bool = False, pretrained=None, **options) -> TSN:
    return _tsn("resnet34", num_classes, num_frames, dropout, temporal_pool, pretrained, options)


def tsn_resnet50(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                 temporal_pool: bool = False, pretrained=None, **options) -> TSN:
    return _tsn("resnet50", num_classes, num_frames, dropout, temporal_pool, pretrained, options)


def tsn_resnet101(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                  temporal_pool: bool = False, pretrained=None, **options) -> TSN:
    return _tsn("resnet101", num_classes, num_frames, dropout, temporal_pool, pretrained, options)


def tsn_mobilenetv2(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                    temporal_pool: bool = False, pretrained=None, **options) -> TSN:
    return _tsn("mobilenetv2", num_classes, num_frames, dropout, temporal_pool, pretrained, options)


def tsm_resnet18(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                 shift_div: int = 8, shift_place: str = "residual",
                 shift_mode: str = "bidirectional", temporal_pool: bool = False,
                 pretrained=None) -> TSN:
    return _tsm("resnet18", num_classes, num_frames, dropout, temporal_pool, pretrained,
                shift_div, shift_place, shift_mode)


def tsm_resnet34(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                 shift_div: int = 8, shift_place: str = "residual",
                 shift_mode: str = "bidirectional", temporal_pool: bool = False,
                 pretrained=None) -> TSN:
    return _tsm("resnet34", num_classes, num_frames, dropout, temporal_pool, pretrained,
                shift_div, shift_place, shift_mode)


def tsm_resnet50(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                 shift_div: int = 8, shift_place: str = "residual",
                 shift_mode: str = "bidirectional", temporal_pool: bool = False,
                 pretrained=None) -> TSN:
    return _tsm("resnet50", num_classes, num_frames, dropout, temporal_pool, pretrained,
                shift_div, shift_place, shift_mode)


def tsm_resnet101(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                  shift_div: int = 8, shift_place: str = "residual",
                  shift_mode: str = "bidirectional", temporal_pool: bool = False,
                  pretrained=None) -> TSN:
    return _tsm("resnet101", num_classes, num_frames, dropout, temporal_pool, pretrained,
                shift_div, shift_place, shift_mode)


def tsm_mobilenetv2(*, num_classes: int = 400, num_frames: int = 8, dropout: float = 0.5,
                    shift_div: int = 8, shift_place: str = "residual",
                    shift_mode: str = "bidirectional", temporal_pool: bool = False,
                    pretrained=None) -> TSN:
    return _tsm("mobilenetv2", num_classes, num_frames, dropout, temporal_pool, pretrained,
                shift_div, shift_place, shift_mode)
