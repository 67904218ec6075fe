"""LeNet-5 (LeCun et al., 1998): convolutions that share weights, pooling, then fully connected layers.

Introduced in Chapter 1 (01b). Close to the original: 5×5 convolutions, tanh, average pooling, and the
6 → 16 → 120 → 84 → 10 widths; padding 2 makes 28×28 behave like the paper's 32×32 input.
"""

from torch import nn


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),   # 6×14×14
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),                       # 16×5×5
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
