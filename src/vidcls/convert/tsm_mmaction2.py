"""mmaction2 ``ResNetTSM`` + ``TSMHead`` checkpoints -> vidcls TSN / TSM.

mmcv wraps every conv + BN pair in a ``ConvModule`` (``conv1.conv``, ``conv1.bn``) and the
shift in the TSM authors' ``TemporalShift(net)``, so the layout, renamed by :data:`RULES`
after the ``.net`` level is read (:data:`SHIFT_PATTERNS`) and dropped, is::

    backbone.conv1.conv.weight                  backbone.conv1.weight
    backbone.conv1.bn.running_mean              backbone.bn1.running_mean
    backbone.layer1.0.conv1.conv.net.weight     backbone.layer1.0.conv1.weight  (residual shift)
    backbone.layer1.0.net.conv1.conv.weight     backbone.layer1.0.conv1.weight  (block shift)
    backbone.layer1.0.conv2.bn.weight           backbone.layer1.0.bn2.weight
    backbone.layer2.0.downsample.conv.weight    backbone.layer2.0.downsample.0.weight
    backbone.layer2.0.downsample.bn.bias        backbone.layer2.0.downsample.1.bias
    backbone.layer2.net.0...                    backbone.layer2.0...            (temporal pool)
    cls_head.fc_cls.weight                      head.weight

mmaction2's shift is the TSM authors' (group 0 from t+1, group 1 from t-1), so the weights need
no other change. ``shift_div`` / ``num_segments`` are read from the config the checkpoint
stores in ``meta`` (else the ``1x1x8`` of its config or file name: 8 clips = segments), class
names from ``meta`` (:mod:`._configs`); a default used instead is announced.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vidcls.convert._common import (Converted, assume, backbone_arch, build_tsn,
                                    check_shift_sites, load_converted, reject_options,
                                    rename_keys, resolve_classes, shift_sites, single_place,
                                    strip_net, tsm_preprocessing)
from vidcls.convert._configs import (config_names, config_text, config_value, meta_classes,
                                     sampling_from_name)
from vidcls.convert._io import load_torch_file
from vidcls.models._weights import strip_prefix, unwrap_state_dict

__all__ = ["convert_tsm_mmaction2", "RULES", "SHIFT_PATTERNS"]

#: mmaction2 names (temporal pool and ``.net`` levels already dropped) -> vidcls names
RULES = [
    (r"^cls_head\.fc_cls\.", "head."),
    (r"^backbone\.conv1\.conv\.", "backbone.conv1."),
    (r"^backbone\.conv1\.bn\.", "backbone.bn1."),
    (r"^backbone\.(layer\d\.\d+)\.conv(\d)\.conv\.", r"backbone.\1.conv\2."),
    (r"^backbone\.(layer\d\.\d+)\.conv(\d)\.bn\.", r"backbone.\1.bn\2."),
    (r"^backbone\.(layer\d\.\d+)\.downsample\.conv\.", r"backbone.\1.downsample.0."),
    (r"^backbone\.(layer\d\.\d+)\.downsample\.bn\.", r"backbone.\1.downsample.1."),
    (r"^backbone\.", "backbone."),  # anything else under backbone: reported by the loader
]
#: ``(key pattern capturing the block, shift place)`` of the ``TemporalShift(net)`` wrapper
SHIFT_PATTERNS = [(r"^backbone\.(layer\d\.\d+)\.conv1\.conv\.net\.", "residual"),
                  (r"^backbone\.(layer\d\.\d+)\.net\.", "inplace")]
_TEMPORAL_POOL = r"^backbone\.layer2\.net\."  # the TemporalPool(layer2) wrapper


def _config_int(text: str, name: str) -> int | None:
    """``name`` from a stored config; a config that leaves it out means mmaction2's default
    (8 for both ``num_segments`` and ``shift_div`` of ``ResNetTSM``), no config means None."""
    if not text:
        return None
    return int(config_value(text, name) or 8)


def _segments_from_name(ckpt, src) -> int:
    """Segments from mmaction2's ``1x1xN`` config naming (clip length 1, interval 1, N clips)."""
    named = sampling_from_name(config_names(ckpt, src))
    if named and named[:2] == (1, 1):
        return named[2]
    return assume("num_frames", 8, f"{src} stores no config in its meta and no 1x1xN config "
                  "name (its num_segments)")


def convert_tsm_mmaction2(src: str | Path, *, num_frames: int | None = None,
                          shift_div: int | None = None, classes: Any = None) -> Converted:
    """mmaction2 ``ResNetTSM`` + ``TSMHead`` checkpoints (see the module docstring).

    ``shift_div`` / ``num_segments`` come from the config stored in the checkpoint's ``meta``
    when present (default 8), overridable.
    """
    ckpt = load_torch_file(src)
    text = config_text(ckpt)
    state = strip_prefix(unwrap_state_dict(ckpt, src), "module.")
    if any(re.match(r"^backbone\.layer\d+\.\d+\.conv\.\d", k) for k in state):
        raise ValueError(f"{src} looks like mmaction2's MobileNetV2TSM; tsm-mmaction2 converts "
                         "ResNetTSM checkpoints")
    temporal_pool = any(re.match(_TEMPORAL_POOL, k) for k in state)
    state = {re.sub(_TEMPORAL_POOL, "backbone.layer2.", k): v for k, v in state.items()}
    sites = shift_sites(state, SHIFT_PATTERNS)
    out = rename_keys({strip_net(k): v for k, v in state.items()}, RULES, lambda key: ValueError(
        f"{src}: unexpected key {key!r} (expected backbone.* and cls_head.fc_cls.*)"))
    arch = backbone_arch(out)
    place = single_place(sites, src)
    if "head.weight" not in out:
        raise ValueError(f"{src} has no cls_head.fc_cls classifier")
    num_classes = out["head.weight"].shape[0]
    frames = num_frames or _config_int(text, "num_segments") or _segments_from_name(ckpt, src)
    if place is None:
        reject_options(f"{src} has no temporal shift (a TSN)", shift_div=shift_div)
        div = 8  # unused by a TSN
    else:
        div = shift_div or _config_int(text, "shift_div") or assume(
            "shift_div", 8, f"{src} stores no config in its meta")
    model = build_tsn(arch, num_classes=num_classes, num_frames=frames, place=place,
                      shift_div=div, temporal_pool=temporal_pool)
    if place is not None:
        check_shift_sites(model, sites, src)
    load_converted(model, out, src)
    names = resolve_classes(classes if classes is not None else meta_classes(ckpt),
                            num_classes, Path(src).name, source=src)
    return Converted(model, names, tsm_preprocessing(frames),
                     {"arch": arch, "shift_place": place, "shift_div": div if place else None,
                      "num_frames": frames, "temporal_pool": temporal_pool})
