"""Image-classification weights -> the initialisation of a video model (``train --init``).

* torchvision ImageNet ResNet / MobileNetV2 (``conv1.weight``, ``layer1.0.conv1.weight``,
  ``features.*``; ``fc`` / ``classifier`` dropped) -> a TSM or TSN: the names become
  ``backbone.*`` (``models.tsn.checkpoint_filter_fn``), the video head keeps its fresh init.
* timm image ViT (``vit_base_patch16_224`` names) -> a TimeSformer, inflated as the reference's
  ``load_pretrained`` does (``models.timesformer.checkpoint_filter_fn``): spatial attention
  copied into every earlier attention stage, time embedding and stage projections zero, the
  position grid resampled to the crop size.

Both load through the one weight path; these converters only pick the architecture and write
a checkpoint with a fresh head for the video classes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from torch import Tensor, nn

from vidcls.convert._common import (Converted, backbone_arch, init_num_classes, load_converted,
                                    reject_options, resolve_classes, timesformer_builder_name,
                                    timesformer_preprocessing, tsm_preprocessing,
                                    vit_architecture)
from vidcls.models import create_model
from vidcls.models._weights import load_filtered, read_state_dict, strip_prefix
from vidcls.models.timesformer import TimeSformer, checkpoint_filter_fn

__all__ = ["convert_torchvision_resnet", "convert_timm_vit", "timesformer_from_timm_vit",
           "load_timesformer_weights"]


def convert_torchvision_resnet(src: str | Path, *, model: str | None = None,
                               num_classes: int | None = None, num_frames: int = 8,
                               shift_div: int | None = None, shift_place: str | None = None,
                               shift_mode: str | None = None, classes: Any = None) -> Converted:
    """A torchvision ImageNet ResNet / MobileNetV2 state dict -> a TSM (or TSN, ``model=
    "tsn_..."``) initialised from it, with a fresh head: the start of ``train --init``. The
    shift options (default 1/8, residual, bidirectional) are refused for a TSN."""
    sd = strip_prefix(read_state_dict(src), "module.")
    arch = backbone_arch("backbone." + k for k in sd if not k.startswith(("fc.", "classifier.")))
    name = model or f"tsm_{arch}"
    if not name.endswith(f"_{arch}") or not name.startswith(("tsm_", "tsn_")):
        raise ValueError(f"{src} holds {arch} weights; model={name!r} needs other ones "
                         f"(use tsm_{arch} or tsn_{arch})")
    k = init_num_classes(num_classes, classes)
    shift = dict(shift_div=shift_div, shift_place=shift_place, shift_mode=shift_mode)
    if name.startswith("tsn_"):
        reject_options(f"{name} has no temporal shift", **shift)
    options = {} if name.startswith("tsn_") else {k: v for k, v in shift.items() if v is not None}
    net = load_converted(create_model(name, num_classes=k, num_frames=num_frames, **options),
                         sd, src, init=True)
    return Converted(net, resolve_classes(classes, k, "init"), tsm_preprocessing(num_frames),
                     {"arch": arch, "init": "imagenet"})


def convert_timm_vit(src: str | Path, *, num_classes: int | None = None, num_frames: int = 8,
                     attention: str = "divided", img_size: int | None = None,
                     num_heads: int | None = None, classes: Any = None) -> Converted:
    """A timm image ViT (``vit_base_patch16_224`` names) -> a TimeSformer initialised as the
    reference does (spatial attention copied into the temporal one, time embedding and
    ``temporal_fc`` zero, position grid resampled to ``img_size``), with a fresh head. The
    builder is the one whose defaults are ``num_frames`` x ``img_size``."""
    sd = strip_prefix(read_state_dict(src), "module.", "model.")
    vit = vit_architecture(sd, num_heads, src, what="timm ViT")
    vit["img_size"] = img_size or vit["img_size"]
    k = init_num_classes(num_classes, classes)
    net = create_model(timesformer_builder_name(num_frames, vit["img_size"]), num_classes=k,
                       num_frames=num_frames, attention=attention, **vit)
    timesformer_from_timm_vit(sd, net)
    return Converted(net.eval(), resolve_classes(classes, k, "init"),
                     timesformer_preprocessing(net), {"init": "timm-vit"})


def timesformer_from_timm_vit(vit_state: Mapping[str, Tensor], model: TimeSformer
                              ) -> TimeSformer:
    """Initialise ``model`` (a ``TimeSformer``) from timm image-ViT weights, in place; returns
    it. Only ``time_embed``, the ``*_fc`` stage projections and (when the class count differs)
    the head keep the model's own initialisation."""
    load_filtered(model, vit_state, checkpoint_filter_fn, source="timm ViT weights")
    return model


def load_timesformer_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a weight file into a TimeSformer ``model`` (a TimeSformer checkpoint, ours or the
    reference's, or a timm image ViT), in place; returns it. Kept for compatibility: the same
    as ``create_model(name, pretrained=path)``."""
    load_filtered(model, read_state_dict(path), checkpoint_filter_fn, source=repr(str(path)))
    return model
