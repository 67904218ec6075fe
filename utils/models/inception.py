"""GoogLeNet's Inception block (Szegedy et al., 2014) in a small network.

Introduced in Chapter 1 (01b). Four parallel paths — 1×1; 1×1 → 3×3; 1×1 → 5×5; 3×3 max-pool → 1×1 —
concatenated along channels: several scales at once, with 1×1 convolutions keeping the cost down.
"""

import torch
from torch import nn


def conv_bn(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class Inception(nn.Module):
    """``c1``, ``(c2_reduce, c2)``, ``(c3_reduce, c3)``, ``c4``: the widths of the four paths."""

    def __init__(self, in_channels: int, c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int):
        super().__init__()
        self.path1 = conv_bn(in_channels, c1, 1)
        self.path2 = nn.Sequential(conv_bn(in_channels, c2[0], 1), conv_bn(c2[0], c2[1], 3))
        self.path3 = nn.Sequential(conv_bn(in_channels, c3[0], 1), conv_bn(c3[0], c3[1], 5))
        self.path4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_bn(in_channels, c4, 1))
        self.out_channels = c1 + c2[1] + c3[1] + c4

    def forward(self, x):
        return torch.cat([self.path1(x), self.path2(x), self.path3(x), self.path4(x)], dim=1)


class GoogLeNetSmall(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        first = Inception(64, 32, (32, 48), (8, 16), 16)
        second = Inception(first.out_channels, 48, (48, 96), (16, 32), 32)
        self.features = nn.Sequential(
            conv_bn(in_channels, 64, 3), nn.MaxPool2d(2),                 # 14×14
            first, nn.MaxPool2d(2),                                       # 7×7
            second,
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(second.out_channels, num_classes))

    def forward(self, x):
        return self.head(self.features(x))
