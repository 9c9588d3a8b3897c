"""2-D ResNet-18/34/50/101 with torchvision's parameter names (a torchvision state dict loads
with ``strict=True``).

Architecture as ``torchvision.models.resnet`` (v1.5: the Bottleneck strides on its 3x3
``conv2``, the downsample path is ``downsample.0`` conv1x1 + ``downsample.1`` BN). The only
additions are two parameter-free slots per residual block where TSM puts its temporal shift
(:mod:`vidcls.models.tsn`); they are ``nn.Identity`` in a plain 2-D network and never add
state-dict keys, so TSN and TSM checkpoints share torchvision's names:

* ``block.shift_main``   -- applied to the block input on the main path ("in-place" TSM:
  the identity path sees the shifted tensor too);
* ``block.shift_branch`` -- applied to the residual branch only, right before ``conv1``
  ("residual" TSM, the paper's default: the identity path keeps the unshifted activations).

Only ``reshape`` / ``flatten`` are used (never ``.view`` on a possibly non-contiguous tensor),
so the network runs in ``channels_last`` memory format.
"""
from __future__ import annotations

from torch import Tensor, nn

from vidcls.ops.temporal_shift import branch_on_shifted

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet34", "resnet50", "resnet101"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride
        self.in_channels = inplanes
        self.shift_main: nn.Module = nn.Identity()
        self.shift_branch: nn.Module = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.shift_main(x)
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(branch_on_shifted(self.conv1, self.shift_branch, x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride, torchvision's v1.5), 1x1 expand (ResNet-50/101)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        width = planes
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.in_channels = inplanes
        self.shift_main: nn.Module = nn.Identity()
        self.shift_branch: nn.Module = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.shift_main(x)
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(branch_on_shifted(self.conv1, self.shift_branch, x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """ImageNet ResNet: stem, four stages ``layer1..layer4``, global average pool, ``fc``.

    ``num_classes=0`` replaces ``fc`` by ``nn.Identity`` so the network returns pooled features
    ``(N, num_features)`` -- how the TSN/TSM recognizer uses it (its own head is ``head``).
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int],
                 num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = 512 * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        # torchvision's init (He fan-out for convs, BN to identity), so training from scratch
        # behaves like torchvision's.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def stages(self) -> list[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def residual_blocks(self) -> list[nn.Module]:
        """Every residual block in execution order."""
        return [b for stage in self.stages for b in stage]

    def forward_features(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` images -> ``(N, num_features)`` globally pooled features."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)  # (N, C)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.forward_features(x))


_CONFIGS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
}


def _resnet(arch: str, num_classes: int) -> ResNet:
    block, layers = _CONFIGS[arch]
    return ResNet(block, layers, num_classes=num_classes)


def resnet18(*, num_classes: int = 1000) -> ResNet:
    return _resnet("resnet18", num_classes)


def resnet34(*, num_classes: int = 1000) -> ResNet:
    return _resnet("resnet34", num_classes)


def resnet50(*, num_classes: int = 1000) -> ResNet:
    return _resnet("resnet50", num_classes)


def resnet101(*, num_classes: int = 1000) -> ResNet:
    return _resnet("resnet101", num_classes)
