"""DeepLab v3 / v3+ (Chen et al., 2017 and 2018), small: atrous convolution, ASPP and a light decoder.

Introduced in Chapter 5 (05_segmentation).

- *Atrous* (dilated) convolution with rate r spaces a k×k kernel's taps r pixels apart: the window
  spans r·(k−1)+1 pixels for the same k² weights and no loss of resolution. DeepLab stops striding
  after an *output stride* of 8 (or 16) and dilates the later convolutions instead, so the feature map
  stays fine while the receptive field keeps growing.
- *ASPP* (atrous spatial pyramid pooling) looks at the same feature map through parallel branches: a
  1×1 convolution, 3×3 atrous convolutions at several rates, and image-level pooling (global context),
  concatenated and mixed by a 1×1 convolution — context at several scales in one layer.
- v3+ adds a *decoder*: the ASPP output, upsampled ×2, is concatenated with reduced low-level features
  (stride 4) and refined by two 3×3 *depthwise-separable* convolutions (a per-channel 3×3 then a 1×1 that
  mixes channels: about 9·C + C·C' weights instead of 9·C·C'), which sharpens object boundaries.

The backbone here is a small residual network (Chapter 1's `BasicBlock`) with output stride 8.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import BasicBlock


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1, dilation: int = 1,
                 groups: int = 1) -> nn.Sequential:
    """Conv → BN → ReLU with "same" padding for any dilation."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, stride=stride,
                                   padding=dilation * (kernel - 1) // 2, dilation=dilation, groups=groups,
                                   bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class SeparableConv(nn.Sequential):
    """Depthwise 3×3 (one filter per channel, optionally atrous) → pointwise 1×1, each with BN and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1):
        super().__init__(conv_bn_relu(in_channels, in_channels, 3, dilation=dilation, groups=in_channels),
                         conv_bn_relu(in_channels, out_channels, 1))


class AtrousBlock(BasicBlock):
    """Chapter 1's residual `BasicBlock` with both 3×3 convolutions dilated by ``dilation``, stride 1."""

    def __init__(self, channels: int, dilation: int):
        super().__init__(channels, channels)
        for conv in (self.conv1, self.conv2):
            conv.dilation, conv.padding = (dilation, dilation), (dilation, dilation)


class Backbone(nn.Module):
    """Stem (stride 2) → stage at stride 4 (the low-level features) → stride 8 → atrous stages at stride 8.

    Returns ``(low_level, high_level)``: ``width`` channels at stride 4, ``4·width`` at stride 8.
    """

    def __init__(self, in_channels: int = 1, width: int = 16, dilations=(2, 4)):
        super().__init__()
        self.stem = conv_bn_relu(in_channels, width, 3, stride=2)
        self.stride4 = nn.Sequential(BasicBlock(width, width, stride=2), BasicBlock(width, width))
        self.stride8 = nn.Sequential(BasicBlock(width, 2 * width, stride=2), BasicBlock(2 * width, 4 * width))
        self.atrous = nn.Sequential(*[AtrousBlock(4 * width, d) for d in dilations])

    def forward(self, x):
        low = self.stride4(self.stem(x))
        return low, self.atrous(self.stride8(low))


class ImagePooling(nn.Module):
    """ASPP's global branch: average the whole map, 1×1 conv, broadcast back to every position."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.project = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                     nn.ReLU(inplace=True))  # no BN: one value per channel and image

    def forward(self, x):
        return self.project(x).expand(-1, -1, *x.shape[-2:])


class ASPP(nn.Module):
    """1×1 branch + one 3×3 atrous branch per rate + image pooling, concatenated, then 1×1 to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, rates=(2, 4, 6), separable: bool = True):
        super().__init__()
        atrous = [SeparableConv(in_channels, out_channels, r) if separable else
                  conv_bn_relu(in_channels, out_channels, 3, dilation=r) for r in rates]
        self.branches = nn.ModuleList([conv_bn_relu(in_channels, out_channels, 1), *atrous,
                                       ImagePooling(in_channels, out_channels)])
        self.project = nn.Sequential(conv_bn_relu(len(self.branches) * out_channels, out_channels, 1),
                                     nn.Dropout(0.1))

    def forward(self, x):
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class DeepLabV3Plus(nn.Module):
    """Backbone (output stride 8) → ASPP → [v3+: ×2 upsample, concat low-level, 2 separable convs] → logits.

    With ``decoder=False`` it is DeepLab v3: the ASPP logits upsampled ×8 straight to the input size.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 16, rates=(2, 4, 6),
                 decoder: bool = True):
        super().__init__()
        aspp_channels, low_channels = 4 * width, width
        self.backbone = Backbone(in_channels, width)
        self.aspp = ASPP(4 * width, aspp_channels, rates)
        self.decoder = decoder
        if decoder:
            self.reduce = conv_bn_relu(width, low_channels, 1)
            self.refine = nn.Sequential(SeparableConv(aspp_channels + low_channels, aspp_channels),
                                        SeparableConv(aspp_channels, aspp_channels))
        self.classifier = nn.Conv2d(aspp_channels, num_classes, 1)

    def forward(self, x):
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"input {x.shape[-2]}×{x.shape[-1]} is not divisible by the output stride 8: "
                             "pad or resize the image")
        low, high = self.backbone(x)
        features = self.aspp(high)
        if self.decoder:
            features = F.interpolate(features, size=low.shape[-2:], mode="bilinear", align_corners=False)
            features = self.refine(torch.cat([features, self.reduce(low)], dim=1))
        return F.interpolate(self.classifier(features), size=x.shape[-2:], mode="bilinear", align_corners=False)
