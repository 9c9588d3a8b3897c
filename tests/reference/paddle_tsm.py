"""PaddleVideo's TSM, re-implemented from its definitions: ``paddle.nn.functional.temporal_shift``
(as documented: the mirror of the TSM authors' shift), ``paddlevideo/modeling/backbones/
resnet_tsm.py`` (ResNetTSM-50, a shift before every bottleneck's first conv) and
``heads/tsm_head.py`` (a Linear stored ``(in, out)``, average consensus), plus a writer of its
structured parameter names. The oracle for :mod:`vidcls.convert.tsm_paddle`."""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F


def paddle_shift(x, seg_num, shift_ratio):
    """``paddle.nn.functional.temporal_shift`` as documented: pad T by one zero frame on each
    side, slice1 = x[:, :T, :C1], slice2 = x[:, 2:T+2, C1:C2], slice3 = x[:, 1:T+1, C2:]."""
    nt, c, h, w = x.shape
    x = x.reshape(nt // seg_num, seg_num, c, h, w)
    pad = F.pad(x, (0, 0, 0, 0, 0, 0, 1, 1))  # (N, T+2, C, H, W)
    c1, c2 = int(c * shift_ratio), int(c * 2 * shift_ratio)
    out = torch.cat([pad[:, :seg_num, :c1], pad[:, 2:seg_num + 2, c1:c2],
                     pad[:, 1:seg_num + 1, c2:]], dim=2)
    return out.reshape(nt, c, h, w)


def paddle_resnet_tsm_forward(p: dict, x, seg_num):
    """PaddleVideo ResNetTSM-50 + TSMHead from parameter names (resnet_tsm.py, tsm_head.py)."""
    def conv_bn(y, name, stride=1, act=True):
        w = p[f"{name}._conv.weight"]
        y = F.conv2d(y, w, stride=stride, padding=(w.shape[-1] - 1) // 2)
        y = F.batch_norm(y, p[f"{name}._batch_norm._mean"], p[f"{name}._batch_norm._variance"],
                         p[f"{name}._batch_norm.weight"], p[f"{name}._batch_norm.bias"],
                         training=False, eps=1e-5)
        return F.relu(y) if act else y

    y = x.reshape(-1, *x.shape[2:])
    y = F.max_pool2d(conv_bn(y, "backbone.conv", 2), 3, 2, 1)
    for stage, blocks in enumerate([3, 4, 6, 3]):
        for i in range(blocks):
            name = f"backbone.res{stage + 2}{chr(97 + i)}"
            stride = 2 if i == 0 and stage != 0 else 1
            shifted = paddle_shift(y, seg_num, 1.0 / seg_num)
            z = conv_bn(conv_bn(conv_bn(shifted, f"{name}.conv0"), f"{name}.conv1", stride),
                        f"{name}.conv2", act=False)
            short = conv_bn(y, f"{name}.short", stride, act=False) if i == 0 else y
            y = F.relu(short + z)
    feats = y.mean((2, 3))  # avgpool
    score = feats @ p["head.fc.weight"] + p["head.fc.bias"]  # paddle Linear: (in, out)
    return score.reshape(-1, seg_num, score.shape[-1]).mean(1)


def to_paddle(model) -> dict:
    """Independent writer: vidcls ResNet-50 names -> PaddleVideo structured names (numpy)."""
    bn = {"weight": "weight", "bias": "bias", "running_mean": "_mean", "running_var": "_variance"}
    out = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        if key == "head.weight":
            out["head.fc.weight"] = value.t().numpy()
            continue
        if key == "head.bias":
            out["head.fc.bias"] = value.numpy()
            continue
        k = key[len("backbone."):]
        m = re.match(r"^(conv1|bn1)\.(\w+)$", k)
        if m:
            name = "conv._conv.weight" if m[1] == "conv1" else f"conv._batch_norm.{bn[m[2]]}"
        else:
            m = re.match(r"^layer(\d)\.(\d+)\.(conv|bn|downsample\.)(\d)\.(\w+)$", k)
            block = f"res{int(m[1]) + 1}{chr(97 + int(m[2]))}"
            if m[3] == "downsample.":
                layer, part = "short", "_conv" if m[4] == "0" else "_batch_norm"
            else:
                layer, part = f"conv{int(m[4]) - 1}", "_conv" if m[3] == "conv" else "_batch_norm"
            leaf = "weight" if part == "_conv" else bn[m[5]]
            name = f"{block}.{layer}.{part}.{leaf}"
        out["backbone." + name] = value.numpy().copy()
    return out


def paddlevideo_config(num_seg: int, num_classes: int = 400, backbone: str = "ResNetTSM") -> str:
    """A training YAML in the layout of PaddleVideo's ``configs/recognition/tsm/
    tsm_k400_frames.yaml`` (``MODEL.backbone.num_seg``, the sampler's ``num_seg``)."""
    return f"""MODEL: #MODEL field
    framework: "Recognizer2D"
    backbone:
        name: "{backbone}"
        pretrained: "data/ResNet50_pretrain.pdparams"
        num_seg: {num_seg}
        depth: 50
    head:
        name: "TSMHead"
        num_classes: {num_classes}
        in_channels: 2048
        drop_ratio: 0.5
        std: 0.001

DATASET:
    batch_size: 16
    num_workers: 4
    test:
        format: "FrameDataset"
        data_prefix: "data/k400/rawframes"
        file_path: "data/k400/val_frames.list"
        suffix: 'img_{{:05}}.jpg'

PIPELINE:
    test:
        decode:
            name: "FrameDecoder"
        sample:
            name: "Sampler"
            num_seg: {num_seg}
            seg_len: 1
            valid_mode: True
        transform:
            - Scale:
                short_size: 256
                fixed_ratio: False
            - CenterCrop:
                target_size: 224
            - Image2Array:
            - Normalization:
                mean: [0.485, 0.456, 0.406]
                std: [0.229, 0.224, 0.225]
"""
