"""PaddleVideo ``ResNetTSM`` + ``TSMHead`` weights (``.pdparams`` / ``.npz``) -> vidcls TSM.

PaddleVideo names its layers by block (``res4b12`` = stage 4, block 12; ``res2a`` = block 0),
with ``ConvBNLayer`` pairs ``conv0..2`` (torchvision ``conv1..3``) and ``short`` (the
downsample); renamed by :func:`paddle_key`::

    backbone.conv._conv.weight                backbone.conv1.weight
    backbone.conv._batch_norm._mean           backbone.bn1.running_mean
    backbone.res2a.conv0._conv.weight         backbone.layer1.0.conv1.weight
    backbone.res3a.short._batch_norm._variance backbone.layer2.0.downsample.1.running_var
    backbone.res4b12.conv2._batch_norm.weight backbone.layer3.12.bn3.weight
    head.fc.weight  (in, out)                 head.weight  (out, in): transposed

Paddle's ``temporal_shift`` is the mirror of the TSM authors' (and vidcls'), so the weights are
rewritten by :func:`mirror_shift_channels` to compute the same function with vidcls' shift.

A ``.pdparams`` stores no segment count, and Paddle's shift width is ``1 / num_seg``: a
16-segment model read as 8 loads and is silently wrong. So the count is required: ``num_frames``,
or the PaddleVideo training YAML (``config=``, its ``MODEL.backbone.num_seg``).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from vidcls.convert._common import (Converted, backbone_arch, build_tsn, load_converted,
                                    resolve_classes, tsm_preprocessing)
from vidcls.convert._configs import cfg_get, paddle_config
from vidcls.convert._io import read_paddle_params
from vidcls.models._weights import StateDict

__all__ = ["convert_tsm_paddle", "mirror_shift_channels", "paddle_key"]


def _paddle_block(name: str) -> tuple[int, int]:
    """PaddleVideo block names -> (stage 1..4, index): res2a -> (1, 0), res4b12 -> (3, 12)."""
    m = re.match(r"^res(\d)([a-z])(\d*)$", name)
    if not m:
        raise ValueError(f"unexpected PaddleVideo block name {name!r}")
    index = int(m[3]) if m[3] else ord(m[2]) - ord("a")
    return int(m[1]) - 1, index


_PADDLE_BN = {"weight": "weight", "bias": "bias", "_mean": "running_mean",
              "_variance": "running_var"}


def paddle_key(key: str) -> str:
    """One PaddleVideo backbone key (without ``backbone.``) -> its torchvision name."""
    m = re.match(r"^conv\.(_conv|_batch_norm)\.(\w+)$", key)
    if m:
        return "conv1.weight" if m[1] == "_conv" else f"bn1.{_PADDLE_BN[m[2]]}"
    m = re.match(r"^(res\w+)\.(conv\d|short)\.(_conv|_batch_norm)\.(\w+)$", key)
    if not m or (m[3] == "_batch_norm" and m[4] not in _PADDLE_BN):
        raise ValueError(f"unexpected key backbone.{key} (expected PaddleVideo ResNetTSM names "
                         "like res2a.conv0._conv.weight; pp-TSM's ResNetTweaksTSM is not "
                         "supported)")
    stage, index = _paddle_block(m[1])
    if m[2] == "short":
        layer, bn = "downsample.0", "downsample.1"
    else:
        n = int(m[2][4:]) + 1  # paddle conv0/1/2 = torchvision conv1/2/3
        layer, bn = f"conv{n}", f"bn{n}"
    leaf = "weight" if m[3] == "_conv" else _PADDLE_BN[m[4]]
    return f"layer{stage}.{index}.{layer if m[3] == '_conv' else bn}.{leaf}"


def mirror_shift_channels(state: Mapping[str, Tensor], model: nn.Module) -> StateDict:
    """ResNet weights trained with the *mirrored* shift -> weights for vidcls' shift.

    PaddlePaddle's ``temporal_shift`` fills channel group ``[0, f)`` from frame ``t-1`` and
    ``[f, 2f)`` from ``t+1``; the TSM authors' shift (vidcls, mmaction2) does the opposite.
    With ``P`` the swap of those two groups, ``mirrored(x) = P shift(P x)``. So the network
    is run on permuted activations: every residual stream (the stem output and each stage's
    output, ``C`` channels, ``f = C // shift_div``) is stored with its two groups swapped.
    Layers writing a stream permute their output channels (conv rows, BN vectors), layers
    reading one permute their input channels (conv / head columns). ``P`` depends only on
    ``C``, so identity shortcuts stay consistent; permutations are exact, so the logits are
    identical (tested against a reference forward with Paddle's shift).

    Permuting only the input channels of the shifted conv would not do: after our shift, the
    conv's input holds group 0 of frame ``t+1`` and group 1 of ``t-1``, while Paddle's conv
    reads group 0 of ``t-1`` -- a value our shifted tensor does not contain anywhere.
    """
    div = model.tsm["shift_div"]
    out = dict(state)

    def perm(channels: int) -> Tensor:
        f = channels // div
        return torch.cat([torch.arange(f, 2 * f), torch.arange(0, f),
                          torch.arange(2 * f, channels)])

    def rows(prefix: str, p: Tensor, bn: bool) -> None:
        if bn:
            for leaf in ("weight", "bias", "running_mean", "running_var"):
                out[f"{prefix}.{leaf}"] = out[f"{prefix}.{leaf}"][p]
        else:
            out[f"{prefix}.weight"] = out[f"{prefix}.weight"][p]

    def cols(key: str, p: Tensor) -> None:
        out[key] = out[key][:, p]

    backbone = model.backbone
    p_prev = perm(backbone.bn1.num_features)
    rows("backbone.conv1", p_prev, False)
    rows("backbone.bn1", p_prev, True)
    for s, stage in enumerate(backbone.stages, start=1):
        for b, block in enumerate(stage):
            pre = f"backbone.layer{s}.{b}."
            last = "3" if hasattr(block, "conv3") else "2"
            p_in = p_prev
            p_out = perm(getattr(block, f"bn{last}").num_features)
            cols(pre + "conv1.weight", p_in)
            rows(pre + f"conv{last}", p_out, False)
            rows(pre + f"bn{last}", p_out, True)
            if block.downsample is not None:
                cols(pre + "downsample.0.weight", p_in)
                rows(pre + "downsample.0", p_out, False)
                rows(pre + "downsample.1", p_out, True)
            p_prev = p_out
    cols("head.weight", p_prev)
    return out


def training_segments(config: str | Path | None, src: Any) -> int | None:
    """``MODEL.backbone.num_seg`` of a PaddleVideo config (None without one)."""
    if config is None:
        return None
    cfg = paddle_config(config)
    backbone = cfg_get(cfg, "MODEL.backbone.name")
    if backbone is not None and backbone != "ResNetTSM":
        raise ValueError(f"{config} describes a {backbone}; tsm-paddle converts ResNetTSM "
                         f"(the model of {src})")
    segments = (cfg_get(cfg, "MODEL.backbone.num_seg")
                or cfg_get(cfg, "PIPELINE.test.sample.num_seg"))
    if not isinstance(segments, int) or segments < 1:
        raise ValueError(f"{config} has no MODEL.backbone.num_seg (the segment count)")
    return segments


def convert_tsm_paddle(src: str | Path, *, config: str | Path | None = None,
                       num_frames: int | None = None, shift_div: int | None = None,
                       classes: Any = None) -> Converted:
    """PaddleVideo ``ResNetTSM`` + ``TSMHead`` weights (``.pdparams`` or ``.npz``).

    Paddle shifts every bottleneck block with
    ``temporal_shift(x, num_seg, 1 / num_seg)`` -- so ``shift_div = num_seg`` -- and its
    shift is the mirror of the TSM authors': the weights are rewritten by
    :func:`mirror_shift_channels` so vidcls' shift computes the same function.

    The training segment count is required (the file does not store it): ``config`` (the
    PaddleVideo YAML; ``MODEL.backbone.num_seg``) or ``num_frames``. ``num_frames`` defaults
    to the config's count; ``shift_div`` to the training count (give ``num_frames`` with the
    config to evaluate with another frame count).
    """
    segments = training_segments(config, src)
    if segments is None and num_frames is None:
        raise ValueError(f"{src}: a .pdparams stores no segment count, and Paddle's shift width "
                         "is 1/num_seg: give num_frames (--num-frames, the training segments) "
                         "or config (--config, the PaddleVideo YAML)")
    raw = read_paddle_params(src)
    body, out = {}, {}
    for key, value in raw.items():
        if key.startswith("backbone."):
            body[key[len("backbone."):]] = value
        elif key == "head.fc.weight":
            out["head.weight"] = value.t().contiguous()  # paddle Linear stores (in, out)
        elif key == "head.fc.bias":
            out["head.bias"] = value
        else:
            raise ValueError(f"{src}: unexpected key {key!r} (expected backbone.* and head.fc.*)")
    for key, value in body.items():
        out["backbone." + paddle_key(key)] = value
    arch = backbone_arch(out)
    if arch != "resnet50":
        raise ValueError(f"{src} is a PaddleVideo {arch}; only its ResNet-50 TSM converts (its "
                         "ResNet-18/34 blocks are not shifted, and its ResNet-101 shifts every "
                         "block where the TSM authors' and vidcls' shift every second one)")
    if "head.weight" not in out:
        raise ValueError(f"{src} has no head.fc classifier")
    num_classes = out["head.weight"].shape[0]
    frames = num_frames or segments
    div = shift_div or segments or frames
    model = build_tsn(arch, num_classes=num_classes, num_frames=frames, place="residual",
                       shift_div=div, temporal_pool=False)
    for block in model.backbone.residual_blocks():  # paddle: int(C*r) and int(2*C*r)
        c = block.in_channels
        if int(c * (1.0 / div)) != c // div or int(c * 2.0 / div) != 2 * (c // div):
            raise ValueError(f"shift_div={div} does not split {c} channels into equal groups "
                             "the way Paddle does; use a divisor of the channel counts")
    load_converted(model, mirror_shift_channels(out, model), src)
    names = resolve_classes(classes, num_classes, Path(src).name, source=src)
    return Converted(model, names, tsm_preprocessing(frames),
                     {"arch": arch, "shift_place": "residual", "shift_div": div,
                      "num_frames": frames, "mirrored_shift": True})
