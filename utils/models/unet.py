"""U-Net (Ronneberger et al., 2015) and U-Net++ (Zhou et al., 2018): encoder–decoders with skip connections.

Introduced in Chapter 5 (05_segmentation). Both keep the input's height and width, so the input side
must be divisible by 2**depth; they return logits ``N×num_classes×H×W``.

- U-Net: a contracting path (two 3×3 convolutions, then 2×2 max-pooling) and an expanding path
  (2×2 transposed convolution, *concatenate* the encoder map of the same scale, two 3×3 convolutions).
  The skip hands the decoder the fine "where", the deep path the coarse "what". We pad the convolutions
  ("same") where the paper used valid ones and cropped the skips: the output then covers the whole input.
- U-Net++: the skip becomes a dense ladder of nodes X[i][j] (scale i, j-th node along the skip), each
  fed with every earlier node of its row and the upsampled node below-left, which narrows the semantic
  gap between encoder and decoder maps. With ``deep_supervision`` each top node X[0][j] has its own
  1×1 head: in training the model returns the list of all heads' logits (one loss each); in eval it
  returns the head ``prune_to`` (1…depth), so a shallower, faster sub-network can serve inference.
- RSU (U²-Net's ReSidual U-block, Qin et al., 2020): a convolution gives F, a small U-Net of height L runs on F
  (its deepest level dilated instead of pooled), and F is added back — a U inside a residual block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DoubleConv(nn.Sequential):
    """(3×3 conv → BN → ReLU) × 2, the unit of both networks."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ConvBNReLU(nn.Sequential):
    """One 3×3 convolution (dilated by ``dilation``, padded to keep the size) → BN → ReLU: U²-Net's REBNCONV."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1):
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class RSU(nn.Module):
    """RSU-L: x (B, in, H, W) → (B, out, H, W) = F + U(F), F = ConvBNReLU(x).

    U is a U-Net of ``height`` levels on F: encoder convolutions with 2×2 max-pooling between the first
    ``height`` − 1 levels, a dilation-2 convolution at the bottom (context without pooling further), and a decoder
    that concatenates each encoder map with the bilinearly upsampled map below, as U-Net does. H and W must be
    divisible by 2**(height − 2).
    """

    def __init__(self, height: int, in_channels: int, mid_channels: int, out_channels: int):
        super().__init__()
        if height < 2:
            raise ValueError(f"height={height}: an RSU needs at least 2 levels (one pooled level and the dilated bottom)")
        self.height = height
        self.conv_in = ConvBNReLU(in_channels, out_channels)
        self.encoder = nn.ModuleList([ConvBNReLU(out_channels, mid_channels)] +
                                     [ConvBNReLU(mid_channels, mid_channels) for _ in range(height - 2)])
        self.bottom = ConvBNReLU(mid_channels, mid_channels, dilation=2)
        self.decoder = nn.ModuleList([ConvBNReLU(2 * mid_channels, mid_channels) for _ in range(height - 2)] +
                                     [ConvBNReLU(2 * mid_channels, out_channels)])
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        _check_side(x, self.height - 2)
        residual = self.conv_in(x)
        skips, h = [], residual
        for i, block in enumerate(self.encoder):
            h = block(h if i == 0 else self.pool(h))
            skips.append(h)
        h = self.bottom(h)                                     # same size as the last encoder map, dilated
        for block in self.decoder:
            skip = skips.pop()
            if h.shape[-2:] != skip.shape[-2:]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        return residual + h


def _check_side(x: torch.Tensor, depth: int) -> None:
    if x.shape[-1] % 2 ** depth or x.shape[-2] % 2 ** depth:
        raise ValueError(f"input {x.shape[-2]}×{x.shape[-1]} is not divisible by 2**depth = {2 ** depth}: "
                         "pad or resize the image, or build the model with a smaller depth")


class UNet(nn.Module):
    """U-Net with ``depth`` down-samplings; level i has ``width · 2**i`` channels."""

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 16, depth: int = 3):
        super().__init__()
        channels = [width * 2 ** i for i in range(depth + 1)]
        self.depth = depth
        self.down = nn.ModuleList([DoubleConv(in_channels, channels[0])] +
                                  [DoubleConv(channels[i], channels[i + 1]) for i in range(depth)])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList([nn.ConvTranspose2d(channels[i + 1], channels[i], 2, stride=2)
                                 for i in reversed(range(depth))])
        # input: the upsampled map and the skip, concatenated (channels[i] each)
        self.fuse = nn.ModuleList([DoubleConv(2 * channels[i], channels[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(channels[0], num_classes, 1)

    def forward(self, x):
        _check_side(x, self.depth)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, fuse in zip(self.up, self.fuse):
            x = fuse(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)


class UNetPlusPlus(nn.Module):
    """U-Net++: nested dense skips X[i][j], bilinear upsampling, optional deep supervision."""

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 16, depth: int = 3,
                 deep_supervision: bool = True, prune_to: int | None = None):
        super().__init__()
        if prune_to is not None and not 1 <= prune_to <= depth:
            raise ValueError(f"prune_to must be between 1 and depth={depth}, not {prune_to}")
        channels = [width * 2 ** i for i in range(depth + 1)]
        self.depth, self.deep_supervision = depth, deep_supervision
        self.prune_to = prune_to or depth
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        # node "i_j" at scale i and position j takes j maps of channels[i] plus one of channels[i + 1]
        self.nodes = nn.ModuleDict()
        for i in range(depth + 1):
            self.nodes[f"{i}_0"] = DoubleConv(in_channels if i == 0 else channels[i - 1], channels[i])
        for j in range(1, depth + 1):
            for i in range(depth + 1 - j):
                self.nodes[f"{i}_{j}"] = DoubleConv(j * channels[i] + channels[i + 1], channels[i])
        self.heads = nn.ModuleList([nn.Conv2d(channels[0], num_classes, 1) for _ in range(depth)])

    def forward(self, x):
        _check_side(x, self.depth)
        # in eval, a pruned network computes only the nodes its head needs: columns j ≤ prune_to
        last = self.depth if self.training else self.prune_to
        grid: dict[tuple[int, int], torch.Tensor] = {}
        for i in range(last + 1):
            grid[i, 0] = self.nodes[f"{i}_0"](x if i == 0 else self.pool(grid[i - 1, 0]))
            # every node on the anti-diagonal ending at (0, i) is ready once X[i][0] exists
            for j in range(1, i + 1):
                row = i - j
                inputs = [grid[row, k] for k in range(j)] + [self.upsample(grid[row + 1, j - 1])]
                grid[row, j] = self.nodes[f"{row}_{j}"](torch.cat(inputs, dim=1))
        if self.training and self.deep_supervision:
            return [head(grid[0, j + 1]) for j, head in enumerate(self.heads)]
        return self.heads[last - 1](grid[0, last])
