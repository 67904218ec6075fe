"""Swin Transformer (Liu et al., 2021): attention inside local windows, shifted every other block, in stages
that halve the resolution — a Transformer with a CNN's pyramid.

Introduced in Chapter 3 (03b); the window machinery lives in `utils.swin_parts`. Blocks, smallest first:

- `WindowAttention` — Chapter 3a's `MultiHeadAttention` per window, plus relative position bias and the
  shifted-window mask, both passed as one float mask added to the logits;
- `SwinBlock` — (optionally cyclically shifted) window attention and an MLP, each pre-norm and residual;
- `SwinTransformer` — patch embedding, stages of blocks joined by `PatchMerging`, average pool, linear head;
- `SwinSegmenter` — its feature pyramid, each stage projected to one width, upsampled and summed (a light FPN-style
  decoder), scored per pixel: what Swin's hierarchy gives dense prediction that a plain ViT's single scale does not.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..swin_parts import PatchMerging, RelativePositionBias, shifted_window_mask, window_partition, window_reverse
from .transformer import FeedForward, MultiHeadAttention
from .vit import PatchEmbed


class WindowAttention(nn.Module):
    """Self-attention within each window: windows (B·nW, M², C) → same shape (and weights (B·nW, heads, M², M²))."""

    def __init__(self, dim: int, num_heads: int, window_size: int):
        super().__init__()
        self.num_heads = num_heads
        self.attn = MultiHeadAttention(dim, num_heads)
        self.relative_bias = RelativePositionBias(window_size, num_heads)

    def forward(self, windows, mask=None, need_weights: bool = False):
        """mask: bool (nW, M², M²) from `shifted_window_mask`, or None (no shift)."""
        bias = self.relative_bias()                                               # (heads, M², M²)
        if mask is not None:
            bias = bias.masked_fill(~mask[:, None], float("-inf"))               # (nW, heads, M², M²)
            images = len(windows) // len(mask)
            bias = bias.expand(images, *bias.shape).reshape(-1, *bias.shape[1:])  # (B·nW, heads, M², M²)
        device = windows.device.type
        if torch.is_autocast_enabled(device):  # the fused kernel wants the mask in the logits' dtype
            bias = bias.to(torch.get_autocast_dtype(device))
        return self.attn(windows, mask=bias, need_weights=need_weights)


class SwinBlock(nn.Module):
    """x + WindowAttention(LN(x)) over (shifted) windows, then x + MLP(LN(x)); tokens (B, H·W, C).

    A map no larger than the window gets one window covering it, and no shift (nothing to connect).
    """

    def __init__(self, dim: int, num_heads: int, resolution, window_size: int = 7, shift_size: int = 0,
                 mlp_ratio: float = 2.0):
        super().__init__()
        self.resolution = tuple(resolution)
        if min(self.resolution) <= window_size:
            window_size, shift_size = min(self.resolution), 0
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1, self.attn = nn.LayerNorm(dim), WindowAttention(dim, num_heads, window_size)
        self.norm2, self.mlp = nn.LayerNorm(dim), FeedForward(dim, int(dim * mlp_ratio))
        mask = shifted_window_mask(*self.resolution, window_size, shift_size) if shift_size else None
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x, need_weights: bool = False):
        """Returns (x, weights (B·nW, heads, M², M²) or None)."""
        (height, width), s = self.resolution, self.shift_size
        if x.shape[1] != height * width:
            raise ValueError(f"this block was built for {height}×{width}={height * width} tokens, got {x.shape[1]}")
        shortcut = x
        x = self.norm1(x).view(len(x), height, width, -1)
        if s:  # cyclic shift: the windows now straddle the previous layer's window borders
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        attended, weights = self.attn(window_partition(x, self.window_size), self.mask, need_weights)
        x = window_reverse(attended, self.window_size, height, width)
        if s:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        x = shortcut + x.reshape(shortcut.shape)
        return x + self.mlp(self.norm2(x)), weights


class SwinTransformer(nn.Module):
    """A small Swin classifier: stage i has ``depths[i]`` blocks (alternately W-MSA and SW-MSA) of width
    ``dim·2^i`` at resolution (image/patch)/2^i; `PatchMerging` between stages."""

    def __init__(self, image_size: int = 28, patch_size: int = 2, in_channels: int = 1, num_classes: int = 10,
                 dim: int = 32, depths=(2, 2), num_heads=(2, 4), window_size: int = 7, mlp_ratio: float = 2.0):
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} need one entry per stage")
        self.patch_embed = PatchEmbed(patch_size, in_channels, dim)
        self.embed_norm = nn.LayerNorm(dim)
        side = image_size // patch_size
        self.stages, self.merges = nn.ModuleList(), nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            self.stages.append(nn.ModuleList(
                SwinBlock(dim, heads, (side, side), window_size, 0 if j % 2 == 0 else window_size // 2, mlp_ratio)
                for j in range(depth)))
            if i < len(depths) - 1:
                self.merges.append(PatchMerging(dim))
                dim, side = 2 * dim, side // 2
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def features(self, x) -> list[torch.Tensor]:
        """The feature pyramid: one (B, H_i, W_i, C_i) map per stage — what a dense-prediction head would use."""
        x = self.embed_norm(self.patch_embed(x))
        side = int(x.shape[1] ** 0.5)
        maps = []
        for i, stage in enumerate(self.stages):
            for block in stage:
                x, _ = block(x)
            maps.append(x.view(len(x), side, side, -1))
            if i < len(self.merges):
                x = self.merges[i](maps[-1]).flatten(1, 2)
                side //= 2
        return maps

    def forward(self, x):
        last = self.features(x)[-1]
        return self.head(self.norm(last.flatten(1, 2)).mean(dim=1))


class SwinSegmenter(nn.Module):
    """Semantic segmentation on a `SwinTransformer`'s pyramid: (B, C, H, W) → logits (B, num_classes, H, W).

    Stage i's map (stride patch·2^i, width dim·2^i) goes through a 1×1 convolution to ``dim`` channels and is
    upsampled to the first stage's grid; the sum is scored by BN, ReLU and a 1×1 convolution, then upsampled to the
    image. ``swin_options`` go to `SwinTransformer`.
    """

    def __init__(self, num_classes: int, image_size: int = 32, patch_size: int = 2, in_channels: int = 1,
                 dim: int = 32, **swin_options):
        super().__init__()
        self.backbone = SwinTransformer(image_size, patch_size, in_channels, num_classes, dim=dim, **swin_options)
        self.backbone.head = nn.Identity()                   # the classifier head is not used: no dead parameters
        stages = len(self.backbone.stages)
        self.lateral = nn.ModuleList(nn.Conv2d(dim * 2 ** i, dim, 1) for i in range(stages))
        self.head = nn.Sequential(nn.BatchNorm2d(dim), nn.ReLU(), nn.Conv2d(dim, num_classes, 1))

    def forward(self, x):
        pyramid = self.backbone.features(x)                                    # [(B, H_i, W_i, C_i)]
        size = pyramid[0].shape[1:3]
        fused = sum(F.interpolate(lateral(level.permute(0, 3, 1, 2)), size=size, mode="bilinear",
                                  align_corners=False) for lateral, level in zip(self.lateral, pyramid))
        return F.interpolate(self.head(fused), size=x.shape[-2:], mode="bilinear", align_corners=False)
