"""Transformer in Transformer (TNT; Han et al., NeurIPS 2021): a ViT whose patches ("visual sentences") are also
read, each on its own, by a small Transformer over their sub-patches ("visual words").

Introduced in Chapter 3 (03b); both Transformers are `utils.models.vit`'s pre-norm `Block`. Blocks:

- `TNTBlock` — the inner block over the m words of every patch (all patches of the batch as one batch of short
  sequences, so attention never crosses a patch border); each patch's words flattened (m·c), projected by one
  linear layer to d and added to that patch's embedding; then the outer block over the patch embeddings;
- `TNT` — word embeddings (a linear map of each s×s×C sub-patch, done as a convolution with kernel = stride = s)
  plus word positions shared by every patch; patch embeddings that start at zero (as in the paper) behind a
  class token, plus patch positions; a stack of `TNTBlock`; LayerNorm; a linear head on the class token.

The paper's equations, not its released code: that code also LayerNorms the words before each projection and
starts the patch embeddings from a projection of the words (about 0.15 M more parameters for TNT-S).

Shapes: image (B, C, H, W), patch p, word s; N = (H/p)·(W/p) patches, m = (p/s)² words per patch;
words (B·N, m, c), patches (B, 1 + N, d).
"""

from __future__ import annotations

import torch
from torch import nn

from .vit import Block


class TNTBlock(nn.Module):
    """(words (B·N, m, c), patches (B, 1 + N, d)) → both updated: inner block, projection added, outer block."""

    def __init__(self, outer_dim: int, inner_dim: int, words: int, outer_heads: int, inner_heads: int,
                 mlp_ratio: float = 4.0):
        super().__init__()
        self.inner = Block(inner_dim, inner_heads, mlp_ratio)                  # attends among one patch's words
        self.project = nn.Linear(words * inner_dim, outer_dim)                 # FC(Vec(Y)): m·c → d
        self.outer = Block(outer_dim, outer_heads, mlp_ratio)                  # attends among the patches

    def forward(self, words, patches):
        batch, length, _ = patches.shape
        if words.dim() != 3 or len(words) != batch * (length - 1):
            raise ValueError(f"need words (B·N, m, c) for patches (B, 1 + N, d) = {tuple(patches.shape)}, i.e. "
                             f"{batch * (length - 1)} word sequences; got words {tuple(words.shape)}")
        words = self.inner(words)[0]
        detail = self.project(words.reshape(batch, length - 1, -1))           # (B, N, d)
        patches = torch.cat([patches[:, :1], patches[:, 1:] + detail], dim=1)  # the class token has no words
        return words, self.outer(patches)[0]


class TNT(nn.Module):
    """A TNT classifier: images (B, C, H, W) → logits (B, num_classes). TNT-S is ``image_size=224, patch_size=16,
    word_size=4, in_channels=3, num_classes=1000, outer_dim=384, inner_dim=24, depth=12, outer_heads=6,
    inner_heads=4``."""

    def __init__(self, image_size: int = 28, patch_size: int = 4, word_size: int = 2, in_channels: int = 1,
                 num_classes: int = 10, outer_dim: int = 64, inner_dim: int = 16, depth: int = 2,
                 outer_heads: int = 4, inner_heads: int = 2, mlp_ratio: float = 4.0):
        super().__init__()
        if image_size % patch_size or patch_size % word_size:
            raise ValueError(f"image_size={image_size} must be a multiple of patch_size={patch_size}, and that of "
                             f"word_size={word_size}: each patch is cut into whole words")
        self.image_size, self.patch_size, self.word_size = image_size, patch_size, word_size
        self.num_patches = (image_size // patch_size) ** 2
        self.num_words = (patch_size // word_size) ** 2
        self.word_embed = nn.Conv2d(in_channels, inner_dim, word_size, stride=word_size)  # FC(Vec(x)) per word
        self.word_position = nn.Parameter(torch.zeros(1, self.num_words, inner_dim))      # shared by all patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, outer_dim))
        self.patch_position = nn.Parameter(torch.zeros(1, 1 + self.num_patches, outer_dim))
        self.blocks = nn.ModuleList(TNTBlock(outer_dim, inner_dim, self.num_words, outer_heads, inner_heads,
                                             mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(outer_dim)
        self.head = nn.Linear(outer_dim, num_classes)
        for p in (self.word_position, self.cls_token, self.patch_position):
            nn.init.trunc_normal_(p, std=0.02)

    def words(self, x) -> torch.Tensor:
        """Images (B, C, H, W) → word embeddings + word positions (B·N, m, c), patches in row-major order."""
        if x.dim() != 4 or x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"TNT was built for (B, C, {self.image_size}, {self.image_size}) images (its patch "
                             f"positions are a fixed table); got {tuple(x.shape)}: resize the images")
        grid = self.word_embed(x)                                              # (B, c, H/s, W/s)
        batch, channels, side, _ = grid.shape
        k, patches_per_side = self.patch_size // self.word_size, side // (self.patch_size // self.word_size)
        grid = grid.view(batch, channels, patches_per_side, k, patches_per_side, k)
        words = grid.permute(0, 2, 4, 3, 5, 1).reshape(batch * self.num_patches, k * k, channels)
        return words + self.word_position

    def encode(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """Images → (words (B·N, m, c), normalised patch tokens (B, 1 + N, d)) after the last block."""
        words = self.words(x)
        start = torch.zeros(len(x), self.num_patches, self.cls_token.shape[-1], device=x.device, dtype=words.dtype)
        patches = torch.cat([self.cls_token.expand(len(x), -1, -1).to(words.dtype), start], dim=1)
        patches = patches + self.patch_position.to(words.dtype)
        for block in self.blocks:
            words, patches = block(words, patches)
        return words, self.norm(patches)

    def forward(self, x):
        return self.head(self.encode(x)[1][:, 0])
