"""DenseNet (Huang et al., 2016): each layer receives the concatenation of every earlier layer's output.

Introduced in Chapter 1 (01b). A dense block of L layers with growth rate k turns C channels into
C + L·k; transition layers (1×1 convolution + 2×2 average pooling) shrink channels and resolution between
blocks. Features are reused instead of re-learnt, so each layer can be narrow.
"""

import torch
from torch import nn


class DenseLayer(nn.Module):
    """BN → ReLU → 3×3 conv producing ``growth`` new channels, concatenated to its input."""

    def __init__(self, in_channels: int, growth: int):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
                                  nn.Conv2d(in_channels, growth, 3, padding=1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.body(x)], dim=1)


def dense_block(in_channels: int, layers: int, growth: int) -> nn.Sequential:
    return nn.Sequential(*[DenseLayer(in_channels + i * growth, growth) for i in range(layers)])


def transition(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
                         nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.AvgPool2d(2))


class DenseNetSmall(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, growth: int = 12, layers: int = 3):
        super().__init__()
        c = 2 * growth
        stages = [nn.Conv2d(in_channels, c, 3, padding=1, bias=False)]
        for i in range(3):
            stages.append(dense_block(c, layers, growth))
            c += layers * growth
            if i < 2:
                stages.append(transition(c, c // 2))                      # 28 → 14 → 7
                c //= 2
        stages += [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    def forward(self, x):
        return self.head(self.features(x))
