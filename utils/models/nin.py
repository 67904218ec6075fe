"""Network in Network (Lin et al., 2013): 1×1 convolutions as per-pixel MLPs, global average pooling as the head.

Introduced in Chapter 1 (01b). The last block outputs one channel per class and averages it over space:
no fully connected layer, far fewer parameters, and any input size works.
"""

from torch import nn


def nin_block(in_channels: int, out_channels: int, kernel_size: int, padding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding), nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 1), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 1), nn.ReLU(inplace=True),
    )


class NiN(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nin_block(in_channels, width, 5, 2), nn.MaxPool2d(2),          # 14×14
            nin_block(width, 2 * width, 3, 1), nn.MaxPool2d(2),            # 7×7
            nin_block(2 * width, 4 * width, 3, 1), nn.Dropout(0.3),
            nn.Conv2d(4 * width, num_classes, 1),                          # one map per class
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.head(self.features(x))
