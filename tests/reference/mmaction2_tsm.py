"""mmaction2's ``ResNetTSM`` + ``TSMHead`` key layout, written from its definitions
(mmcv ``ConvModule`` = ``conv`` + ``bn``; the TSM authors' ``TemporalShift(net)`` on
``conv1.conv`` for residual shifts; ``downsample.conv`` / ``downsample.bn``; ``cls_head.fc_cls``)
independently of :mod:`vidcls.convert.tsm_mmaction2`."""
from __future__ import annotations

import re
from collections import OrderedDict


def to_mmaction2_tsm(model) -> OrderedDict:
    """Independent writer: vidcls TSM ResNet -> mmaction2 ResNetTSM + TSMHead keys."""
    out = OrderedDict()
    for key, value in model.state_dict().items():
        k = key.replace("backbone.", "")
        if key.startswith("head."):
            out["cls_head.fc_cls." + key[5:]] = value
            continue
        k = re.sub(r"^conv1\.", "conv1.conv.", k)
        k = re.sub(r"^bn1\.", "conv1.bn.", k)
        k = re.sub(r"^(layer\d\.\d+)\.conv1\.", r"\1.conv1.conv.net.", k)  # blockres shift
        k = re.sub(r"^(layer\d\.\d+)\.conv(\d)\.(?!conv)", r"\1.conv\2.conv.", k)
        k = re.sub(r"^(layer\d\.\d+)\.bn(\d)\.", r"\1.conv\2.bn.", k)
        k = re.sub(r"^(layer\d\.\d+)\.downsample\.0\.", r"\1.downsample.conv.", k)
        k = re.sub(r"^(layer\d\.\d+)\.downsample\.1\.", r"\1.downsample.bn.", k)
        out["backbone." + k] = value
    return out
