"""VGG (Simonyan & Zisserman, 2014): blocks of stacked 3×3 convolutions, each block ending in 2×2 max pooling.

Introduced in Chapter 1 (01b). Two stacked 3×3 convolutions see 5×5 and three see 7×7, with fewer
parameters and more non-linearities than one large kernel.
"""

from torch import nn


def vgg_block(in_channels: int, out_channels: int, convs: int) -> nn.Sequential:
    layers = []
    for i in range(convs):
        layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1),
                   nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class VGG(nn.Module):
    """``stages`` is a list of (convolutions, channels); the default gives 28 → 14 → 7 → 3."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1,
                 stages=((1, 32), (2, 64), (2, 128))):
        super().__init__()
        blocks, channels = [], in_channels
        for convs, width in stages:
            blocks.append(vgg_block(channels, width, convs))
            channels = width
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * 3 * 3, 256), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(256, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
