"""A plain, hand-written CIFAR ResNet (He et al. 2015, Sec. 4.2) used as the speed/memory baseline.

Written in the style of the widely used akamaster/pytorch_resnet_cifar10 ``resnet.py``: a ``BasicBlock``
(conv-BN-ReLU-conv-BN, ``out += shortcut(x)``, ReLU) with the parameter-free option-A shortcut (stride-2
subsampling plus zero-padded channels), three stages of width 16/32/64, global average pooling and a linear
head. It deliberately does not import horesnet, so it measures what a user would otherwise write by hand.
ResNet-56 has 853,018 parameters with 10 classes, as in the paper.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

RESNET56_PARAMS = 853_018


class OptionAShortcut(nn.Module):
    """Option A: ``x[:, :, ::2, ::2]`` zero-padded with ``planes // 4`` channels on each side (akamaster)."""

    def __init__(self, planes: int):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = OptionAShortcut(planes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        out = F.relu(out)
        return out


class CifarResNet(nn.Module):
    def __init__(self, num_blocks: list[int], num_classes: int = 10):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(32, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(64, num_blocks[2], stride=2)
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def _make_layer(self, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes * BasicBlock.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def resnet56(num_classes: int = 10) -> CifarResNet:
    """ResNet-56: n = 9 basic blocks per stage (6n + 2 = 56 layers)."""
    return CifarResNet([9, 9, 9], num_classes)


if __name__ == "__main__":
    n = sum(p.numel() for p in resnet56().parameters())
    assert n == RESNET56_PARAMS, n
    print(f"ResNet-56 baseline: {n:,} parameters")
