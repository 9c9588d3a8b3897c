"""2-D MobileNetV2 with torchvision's parameter names (a torchvision state dict loads with
``strict=True``): ``features.0`` stem, ``features.1..17`` inverted residual blocks
(``features.N.conv.*``), ``features.18`` 1x1 conv to 1280, ``classifier.1`` the linear layer.

It is the backbone of the TSM authors' online (streaming) demo. As in :mod:`vidcls.models.resnet`,
each inverted residual block has two parameter-free TSM slots, ``nn.Identity`` in a plain
network: ``shift_main`` (block input, main path: "in-place") and ``shift_branch`` (before the
block's first conv, residual branch only: "residual"). TSM uses them only in blocks that have a
residual connection, like the authors' code.
"""
from __future__ import annotations

from torch import Tensor, nn

from vidcls.ops.temporal_shift import branch_on_shifted

__all__ = ["MobileNetV2", "InvertedResidual", "mobilenet_v2"]


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's channel rounding (nearest multiple of ``divisor``, never 10% below)."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


class ConvBNReLU6(nn.Sequential):
    """Conv (no bias) + BN + ReLU6; children ``0/1/2`` as torchvision's ``Conv2dNormActivation``."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1):
        super().__init__(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride, (kernel_size - 1) // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_planes),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> project (1x1, linear), residual when shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual stride must be 1 or 2, got {stride}")
        hidden_dim = int(round(inp * expand_ratio))
        self.stride = stride
        self.in_channels = inp
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(inp, hidden_dim, kernel_size=1))  # pw
        layers += [
            ConvBNReLU6(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),  # dw
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),  # pw-linear
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup
        self.shift_main: nn.Module = nn.Identity()
        self.shift_branch: nn.Module = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if self.use_res_connect:
            x = self.shift_main(x)
            return x + branch_on_shifted(self.conv, self.shift_branch, x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0). ``num_classes=0`` drops the classifier: the network then
    returns pooled features ``(N, 1280)``."""

    # t (expansion), c (channels), n (repeats), s (first stride)
    SETTING = [
        [1, 16, 1, 1],
        [6, 24, 2, 2],
        [6, 32, 3, 2],
        [6, 64, 4, 2],
        [6, 96, 3, 1],
        [6, 160, 3, 2],
        [6, 320, 1, 1],
    ]

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        input_channel = 32
        self.num_features = 1280
        features: list[nn.Module] = [ConvBNReLU6(3, input_channel, stride=2)]
        for t, c, n, s in self.SETTING:
            output_channel = make_divisible(c)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel,
                                                 s if i == 0 else 1, expand_ratio=t))
                input_channel = output_channel
        features.append(ConvBNReLU6(input_channel, self.num_features, kernel_size=1))
        self.features = nn.Sequential(*features)
        if num_classes > 0:
            self.classifier = nn.Sequential(nn.Dropout(dropout),
                                            nn.Linear(self.num_features, num_classes))
        else:
            self.classifier = nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's init
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def residual_blocks(self) -> list[InvertedResidual]:
        """Inverted residual blocks that have an identity connection, in execution order."""
        return [m for m in self.features if isinstance(m, InvertedResidual) and m.use_res_connect]

    def forward_features(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` images -> ``(N, 1280)`` globally pooled features."""
        x = self.features(x)
        return nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)  # (N, C)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.forward_features(x))


def mobilenet_v2(*, num_classes: int = 1000) -> MobileNetV2:
    return MobileNetV2(num_classes=num_classes)
