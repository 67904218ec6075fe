"""EfficientNet's compound scaling on a small CNN (Chapter 1, 01b: "EfficientNet's compound scaling, tried").

EfficientNet (Tan & Le, 2019) grows a baseline network along three axes at once with one coefficient φ:
depth × α^φ, width × β^φ, input resolution × γ^φ, with α·β²·γ² ≈ 2 so that each step of φ about doubles the
FLOPs (a convolution's cost grows linearly with depth and with the square of width and of resolution). The
paper's constants, found by a grid search on its baseline B0, are α = 1.2, β = 1.1, γ = 1.15.

`ScalableCNN` is a plain three-stage CNN (Conv-BN-ReLU layers, the map halved between stages, global average
pooling); `compound_scaled` builds it for a given φ and returns the resolution it should see.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import nn

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15      # EfficientNet's depth, width and resolution bases


class ScalableCNN(nn.Module):
    """Three stages of ``depth`` 3×3 Conv-BN-ReLU layers at ``width``, 2·width, 4·width channels; input resized
    to ``resolution`` (bilinear) so one data set serves every scaled model."""

    def __init__(self, depth: int = 2, width: int = 16, resolution: int = 28, num_classes: int = 10,
                 in_channels: int = 1):
        super().__init__()
        if min(depth, width, resolution, num_classes, in_channels) < 1:
            raise ValueError("depth, width, resolution, num_classes and in_channels must all be ≥ 1")
        self.resolution = resolution
        layers, channels = [], in_channels
        for stage in range(3):
            out = width * 2 ** stage
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                layers += [nn.Conv2d(channels, out, 3, stride, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
                channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))

    def forward(self, x):
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        return self.head(self.features(x))


def compound_scaled(phi: float, depth: int = 2, width: int = 16, resolution: int = 28,
                    alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA) -> ScalableCNN:
    """The baseline (depth, width, resolution) scaled by α^φ, β^φ, γ^φ — depth rounded up, width and resolution
    to the nearest integer, as EfficientNet rounds them."""
    if phi < 0:
        raise ValueError(f"phi must be ≥ 0 (0 is the baseline), got {phi}")
    return ScalableCNN(depth=math.ceil(depth * alpha ** phi), width=round(width * beta ** phi),
                       resolution=round(resolution * gamma ** phi))


__all__ = ["ALPHA", "BETA", "GAMMA", "ScalableCNN", "compound_scaled"]
