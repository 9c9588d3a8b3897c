"""The TSM repo's MobileNetV2 and its online demo, re-implemented from their definitions:
``archs/mobilenet_v2.py`` (``InvertedResidual`` with a flat ``conv`` Sequential of 5 or 8
layers, torchvision's inverted-residual settings) and ``online_demo/mobilenet_v2_tsm.py``
(``InvertedResidualWithShift``: the block caches the first 1/8 of its input channels and
takes the previous frame's cache in their place; ``forward(x, *shift_buffer)`` returns the
logits and the new buffers). The oracle for the online-demo branch of
:mod:`vidcls.convert.tsm_official`."""
from __future__ import annotations

import torch
from torch import nn


class RefInvertedResidual(nn.Module):
    """The TSM repo's InvertedResidual (flat ``conv`` Sequential of 5 or 8 layers); with
    ``online=True`` the online demo's InvertedResidualWithShift (forward(x, shift_buffer))."""

    def __init__(self, inp, oup, stride, t, online=False):
        super().__init__()
        hidden = inp * t
        self.use_res_connect = stride == 1 and inp == oup
        self.online = online and self.use_res_connect and t != 1
        layers = [] if t == 1 else [nn.Conv2d(inp, hidden, 1, 1, 0, bias=False),
                                    nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x, shift_buffer=None):
        if self.online:  # the demo: cached 1/8 of the previous frame + 7/8 of this one
            c = x.shape[1]
            x1, x2 = x[:, :c // 8], x[:, c // 8:]
            return x + self.conv(torch.cat((shift_buffer, x2), dim=1)), x1
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class RefMobileNetV2(nn.Module):
    SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
               [6, 160, 3, 2], [6, 320, 1, 1]]

    def __init__(self, n_class, online=False):
        super().__init__()
        feats = [nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32),
                               nn.ReLU6(inplace=True))]
        inp = 32
        for t, c, n, s in self.SETTING:
            for i in range(n):
                feats.append(RefInvertedResidual(inp, c, s if i == 0 else 1, t, online))
                inp = c
        feats.append(nn.Sequential(nn.Conv2d(inp, 1280, 1, 1, 0, bias=False),
                                   nn.BatchNorm2d(1280), nn.ReLU6(inplace=True)))
        self.features = nn.ModuleList(feats) if online else nn.Sequential(*feats)
        self.classifier = nn.Linear(1280, n_class)

    def forward(self, x, *shift_buffer):
        if not isinstance(self.features, nn.ModuleList):
            return self.classifier(self.features(x).mean(3).mean(2))
        buffers, out, i = list(shift_buffer), [], 0
        for f in self.features:
            if isinstance(f, RefInvertedResidual) and f.online:
                x, s = f(x, buffers[i])
                out.append(s)
                i += 1
            else:
                x = f(x)
        return (self.classifier(x.mean(3).mean(2)), *out)
