"""The TSM authors' checkpoints (mit-han-lab/temporal-shift-module) -> vidcls TSN / TSM.

Offline models (``TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50.pth``): the
``TSN`` wrapper of their ``ops/models.py`` saved by ``main.py`` under DataParallel. The key
layout, renamed by :data:`RULES`::

    module.base_model.conv1.weight                 backbone.conv1.weight
    module.base_model.layer1.0.conv1.net.weight    backbone.layer1.0.conv1.weight   (blockres)
    module.base_model.layer1.0.net.conv1.weight    backbone.layer1.0.conv1.weight   (block)
    module.base_model.layer2.net.0.conv1.weight    backbone.layer2.0.conv1.weight   (tpool)
    module.new_fc.weight                           head.weight
    module.base_model.fc.weight                    head.weight        (trained with dropout=0)

``.net`` is the ``TemporalShift(net)`` wrapper: where it sits tells where the shifts are
(:data:`SHIFT_PATTERNS`), which must be exactly where the vidcls model shifts.

The online demo's ``mobilenetv2_jester_online.pth.tar`` (a bare MobileNetV2 state dict with a
flat ``features.N.conv.K`` sequence and ``classifier``) becomes a unidirectional
``tsm_mobilenetv2`` (:data:`ONLINE_DEMO_RULES`, then :func:`mobilenet_flat_to_nested`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from torch import Tensor

from vidcls.convert._common import (Converted, assume, backbone_arch, build_tsn,
                                    check_shift_sites, load_converted, reject_options,
                                    rename_keys, resolve_classes, shift_sites, single_place,
                                    strip_net, tsm_preprocessing)
from vidcls.convert._io import load_torch_file
from vidcls.models._weights import StateDict, strip_prefix, unwrap_state_dict

__all__ = ["convert_tsm_official", "parse_tsm_filename", "tsm_settings_name", "RULES",
           "ONLINE_DEMO_RULES", "SHIFT_PATTERNS", "mobilenet_flat_to_nested"]

#: the TSM repo's names (``module.`` and ``base_model.`` already stripped) -> vidcls names
RULES = [
    (r"^new_fc\.", "head."),  # TSN.new_fc: the new linear layer (dropout > 0)
    (r"^(?:fc|classifier)\.", "head."),  # dropout = 0: the base model's own last layer
    (r"^layer2\.net\.", "backbone.layer2."),  # TemporalPool(layer2) wrapper (tpool)
    (r"^", "backbone."),
]
#: the online demo's MobileNetV2 names -> vidcls names
ONLINE_DEMO_RULES = [(r"^classifier\.", "head."), (r"^", "backbone.")]
#: ``(key pattern capturing the block, shift place)`` of the ``TemporalShift(net)`` wrapper
SHIFT_PATTERNS = [(r"^backbone\.(layer\d\.\d+)\.conv1\.net\.", "residual"),
                  (r"^backbone\.(layer\d\.\d+)\.net\.", "inplace"),
                  (r"^backbone\.(features\.\d+)\.conv\.0\.net\.", "residual")]
#: shift placement words of the authors' file names
_TSM_PLACES = {"blockres": "residual", "block": "inplace"}
# MobileNetV2 flat ``conv.K`` index -> torchvision nesting, with and without the expansion
_EXPAND = {0: "0.0", 1: "0.1", 3: "1.0", 4: "1.1", 6: "2", 7: "3"}
_NO_EXPAND = {0: "0.0", 1: "0.1", 3: "1", 4: "2"}  # the t=1 block: dw, bn, relu, pw, bn


def _has_settings(name: str) -> bool:
    return "TSM_" in name or re.search(r"(?:^|_)(?:shift|segment)\d+(?:_|\.|$)", name) is not None


def tsm_settings_name(path: str | Path) -> str:
    """The name that carries a TSM authors' checkpoint's settings: the file name (published
    files: ``TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50.pth``), else its
    folder's -- their ``main.py`` saves ``checkpoint/<store_name>/ckpt.pth.tar`` and
    ``ckpt.best.pth.tar``, the settings in the folder name. '' when neither carries any."""
    path = Path(path)
    return next((name for name in (path.name, path.parent.name) if _has_settings(name)), "")


def parse_tsm_filename(path: str | Path) -> dict:
    """Settings the TSM authors encode in checkpoint names (``main.py``'s store name
    ``TSM_<dataset>_<modality>_<arch>[_shift<div>_<place>][_tpool]_<consensus>_segment<N>_e<E>
    [_<pretrain>][_<lr_type>][_dense][_nl][_<suffix>]``), read from the file name or, for
    ``checkpoint/<store_name>/ckpt.pth.tar``, its folder's (:func:`tsm_settings_name`) the way
    their ``test_models.py`` reads its ``--weights`` path: dataset, modality, arch, shift_div,
    shift_place, num_frames (segments), temporal_pool (``tpool``), non_local (``nl``) and dense
    (``dense``: I3D-style dense sampling). Settings the name lacks are absent."""
    name = tsm_settings_name(path)
    tokens = re.sub(r"(\.(?:pth|tar|pt|pkl|ckpt))+$", "", name).split("_")
    info: dict[str, Any] = {"temporal_pool": "tpool" in tokens, "non_local": "nl" in tokens,
                            "dense": "dense" in tokens}
    i = next((j for j, token in enumerate(tokens) if token.startswith("shift")), None)
    if i is not None:
        digits = tokens[i][len("shift"):]
        if digits.isdigit():
            info["shift_div"] = int(digits)
        if i + 1 < len(tokens) and tokens[i + 1] in _TSM_PLACES:
            info["shift_place"] = _TSM_PLACES[tokens[i + 1]]
    segments = next((m for token in tokens if (m := re.fullmatch(r"segment(\d+)", token))), None)
    if segments:
        info["num_frames"] = int(segments[1])
    if "TSM_" in name:
        fields = name.split("TSM_", 1)[1].split("_")
        if len(fields) >= 3:
            info["dataset"], info["modality"], info["arch"] = fields[:3]
    return info


def mobilenet_flat_to_nested(state: Mapping[str, Tensor]) -> StateDict:
    """MobileNetV2 of the TSM repo / online demo (flat ``features.N.conv.K``: conv, bn, relu,
    conv, bn, relu, conv, bn) -> torchvision nesting (``conv.0.0``, ``conv.0.1``, ...)."""
    with_expand = {m[1] for k in state
                   if (m := re.match(r"^backbone\.features\.(\d+)\.conv\.7\.", k))}
    out = {}
    for key, value in state.items():
        m = re.match(r"^(backbone\.features\.(\d+)\.conv\.)(\d+)\.(.*)$", key)
        if m:
            table = _EXPAND if m[2] in with_expand else _NO_EXPAND
            if int(m[3]) not in table:
                raise ValueError(f"unexpected MobileNetV2 key {key!r} (expected the flat "
                                 "conv/bn sequence of the TSM repo's InvertedResidual)")
            key = f"{m[1]}{table[int(m[3])]}.{m[4]}"
        out[key] = value
    return out


def _unknown(key: str) -> Exception:  # the catch-all rules match every key
    return ValueError(f"unexpected key {key!r}")


def convert_tsm_official(src: str | Path, *, num_frames: int | None = None,
                         shift_div: int | None = None, shift_place: str | None = None,
                         classes: Any = None) -> Converted:
    """The TSM authors' checkpoints (see the module docstring).

    Where the shifts sit is read from the keys and must match the vidcls model (ResNet-101
    shifts every second block); ``shift_div``, the segment count, dense sampling and the
    dataset come from the file or folder name as in their test script
    (:func:`parse_tsm_filename`); explicit options win, and a default used for lack of them
    is announced (:class:`ConversionWarning`).

    The online demo's MobileNetV2 becomes a unidirectional ``tsm_mobilenetv2``: its
    ``InvertedResidualWithShift`` caches the first ``C // 8`` channels of each shifted block's
    input and feeds them to the next frame, which is vidcls' unidirectional residual shift.
    Its shift is fixed, so ``shift_div`` / ``shift_place`` are refused for it.
    """
    state = strip_prefix(unwrap_state_dict(load_torch_file(src), src), "module.")
    if not any(k.startswith("base_model.") for k in state) and "classifier.weight" in state:
        reject_options(f"{src} is the TSM online demo's MobileNetV2, whose shift is fixed "
                       "(1/8 of the channels, residual, unidirectional)",
                       shift_div=shift_div, shift_place=shift_place)
        return _convert_online_demo(src, state, num_frames=num_frames, classes=classes)
    info = parse_tsm_filename(src)
    if info.get("modality", "RGB") != "RGB":
        raise ValueError(f"{src} is a {info['modality']} model; vidcls converts RGB models only")
    if info["non_local"]:
        raise ValueError(f"{src} has non-local blocks (_nl), which vidcls does not implement")
    body = strip_prefix(state, "base_model.")
    temporal_pool = any(k.startswith("layer2.net.") for k in body)
    out = rename_keys(body, RULES, _unknown)
    sites = shift_sites(out, SHIFT_PATTERNS)
    out = {strip_net(k): v for k, v in out.items()}
    arch = backbone_arch(out)
    if arch == "mobilenetv2":
        out = mobilenet_flat_to_nested(out)
    place = single_place(sites, src)
    if shift_place is not None and place is not None and shift_place != place:
        raise ValueError(f"shift_place={shift_place!r} contradicts {src}, whose keys show "
                         f"{place!r} shifts")
    if place is None and "shift_div" in info:
        raise ValueError(f"the name {tsm_settings_name(src)!r} of {src} says it is shifted, but "
                         "it has no TemporalShift (.net) keys")
    if "head.weight" not in out:
        raise ValueError(f"{src} has no classifier (new_fc / fc / classifier)")
    num_classes = out["head.weight"].shape[0]
    name = tsm_settings_name(src)

    def why(part: str) -> str:
        if name:
            return f"{src}: its settings name {name!r} has no {part}"
        return (f"{src}: neither the file nor its folder carries main.py's settings name "
                "(TSM_<dataset>_RGB_<arch>_shift<div>_<place>_avg_segment<N>_e<E>)")

    frames = num_frames or info.get("num_frames") or assume("num_frames", 8, why("segment<N>"))
    if place is None:
        reject_options(f"{src} has no temporal shift (a TSN)", shift_div=shift_div,
                       shift_place=shift_place)
        div = 8  # unused by a TSN
    else:
        div = shift_div or info.get("shift_div") or assume("shift_div", 8, why("shift<div>"))
    model = build_tsn(arch, num_classes=num_classes, num_frames=frames, place=place,
                      shift_div=div, temporal_pool=temporal_pool)
    if place is not None:
        check_shift_sites(model, sites, src)
    load_converted(model, out, src)
    names = resolve_classes(classes, num_classes, info.get("dataset", Path(src).name),
                            source=src)
    return Converted(model, names, tsm_preprocessing(frames, info["dense"]),
                     {"arch": arch, "shift_place": place, "shift_div": div if place else None,
                      "num_frames": frames, "temporal_pool": temporal_pool})


def _convert_online_demo(src, state: StateDict, *, num_frames: int | None,
                         classes: Any) -> Converted:
    out = rename_keys(state, ONLINE_DEMO_RULES, _unknown)
    if backbone_arch(out) != "mobilenetv2":
        raise ValueError(f"{src}: a bare state dict with a classifier is read as the TSM online "
                         "demo's MobileNetV2, but its keys are not MobileNetV2's")
    out = mobilenet_flat_to_nested(out)
    num_classes = out["head.weight"].shape[0]
    frames = num_frames or assume("num_frames", 8, f"{src}, the online demo's model, runs frame "
                                  "by frame and stores no clip length")
    # The demo shifts c // 8 channels (fixed), in every residual block with expansion.
    model = build_tsn("mobilenetv2", num_classes=num_classes, num_frames=frames,
                      place="residual", shift_div=8, temporal_pool=False,
                      shift_mode="unidirectional")
    load_converted(model, out, src)
    names = resolve_classes(classes, num_classes, "jester" if num_classes == 27 else "",
                            source=src)
    return Converted(model, names, tsm_preprocessing(frames),
                     {"arch": "mobilenetv2", "online_demo": True, "shift_div": 8,
                      "shift_mode": "unidirectional"})
