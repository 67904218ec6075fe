"""ResNet (He et al., 2015): residual blocks, basic and bottleneck, with projection shortcuts.

Introduced in Chapter 1 (01b); the course's reference CNN, reused by later chapters. A block learns a
correction F(x) and outputs ReLU(F(x) + shortcut(x)); the shortcut is the identity, or a 1×1 strided
convolution (the *projection*) where the shape changes. Gradients flow through the identity paths
unattenuated, so depth stops hurting. ``zero_init_residual`` starts every residual branch's last BatchNorm at
γ = 0 (Goyal et al., 2017; torchvision's option of the same name), so each block starts as the identity.
"""

from torch import nn


class BasicBlock(nn.Module):
    """Two 3×3 convolutions; ``expansion`` 1."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = projection(in_channels, channels, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 → 1×1 expand (×4): deep networks at the cost of shallow ones."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = projection(in_channels, out_channels, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


class PlainBlock(BasicBlock):
    """A BasicBlock with its shortcut removed: the "plain" network of the ResNet paper's degradation experiment."""

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))


def projection(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity when shapes match, else a strided 1×1 convolution + BN that makes them match."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_channels))


class ResNet(nn.Module):
    """A 3×3 stem and three stages (28 → 28 → 14 → 7), global average pooling, one linear layer.

    ``blocks`` per stage, ``width`` channels in the first stage (doubled at each later stage),
    ``block`` BasicBlock or Bottleneck. ``zero_init_residual`` sets γ of the last BatchNorm of every residual
    branch to 0: each block then outputs ReLU(shortcut(x)) at initialisation, the identity where the shortcut is.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32,
                 blocks=(2, 2, 2), block=BasicBlock, zero_init_residual: bool = False):
        super().__init__()
        if zero_init_residual and issubclass(block, PlainBlock):
            raise ValueError("zero_init_residual needs blocks with a shortcut: a PlainBlock with γ = 0 outputs "
                             "zeros; pass block=BasicBlock or Bottleneck, or leave zero_init_residual False")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        stages, channels = [], width
        for i, count in enumerate(blocks):
            stride = 1 if i == 0 else 2
            layers = []
            for j in range(count):
                layers.append(block(channels, width * 2 ** i, stride if j == 0 else 1))
                channels = width * 2 ** i * block.expansion
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:  # γ = 0 and β = 0: the branch adds exactly 0 until training moves γ
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_((m.bn3 if isinstance(m, Bottleneck) else m.bn2).weight)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))
