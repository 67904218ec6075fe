"""Vision Transformer (Dosovitskiy et al., 2020): an image as a sequence of patches, read by a Transformer encoder.

Introduced in Chapter 3 (03b). Blocks, smallest first:

- `PatchEmbed` — cut the image into p×p patches and project each to ``dim`` (one strided convolution);
- `ConvStem` — the hybrid's tokens: a small CNN (stride-2 3×3 convolutions) whose feature-map cells are the tokens;
- `sincos_position_embedding`, `interpolate_position_embedding` — fixed 2-D sinusoids; resizing a
  learned table to a new grid;
- `Block` — pre-norm encoder block: x + MHA(LN(x)), then x + MLP(LN(x)), on Chapter 3a's `MultiHeadAttention`;
- `PoolFormerBlock` — the same skeleton with 3×3 average pooling as the token mixer (MetaFormer);
- `drop_path` — stochastic depth: drop a residual branch for whole samples, rescale the survivors;
- `ViT` — patch embedding (or a conv stem) + positions (+ class token), a stack of blocks, a linear head;
- `SETR` — segmentation with a ViT (Zheng et al., 2021, "naive" head): the patch tokens folded back into their grid,
  two 1×1 convolutions to class scores, bilinearly upsampled to the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .transformer import FeedForward, MultiHeadAttention


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


class PatchEmbed(nn.Module):
    """(B, C, H, W) → (B, N, dim), N = (H/p)·(W/p): a conv with kernel = stride = p is a linear map per patch."""

    def __init__(self, patch_size: int = 4, in_channels: int = 1, dim: int = 64):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        if x.shape[-2] % self.patch_size or x.shape[-1] % self.patch_size:
            raise ValueError(f"image {tuple(x.shape[-2:])} is not a whole number of {self.patch_size}-pixel "
                             f"patches: resize or pad it")
        return self.proj(x).flatten(2).transpose(1, 2)                 # (B, dim, gh, gw) → (B, gh·gw, dim)


class ConvStem(nn.Module):
    """(B, C, H, W) → (B, N, dim) like `PatchEmbed`, but through log2(p) stride-2 3×3 conv + BN + ReLU layers and a
    1×1 projection: each token is a CNN feature-map cell, with locality built in (the ViT paper's hybrid)."""

    def __init__(self, patch_size: int = 4, in_channels: int = 1, dim: int = 64, width: int = 16):
        super().__init__()
        if patch_size < 2 or patch_size & (patch_size - 1):
            raise ValueError(f"patch_size={patch_size}: the conv stem halves the side per layer, so give a power of 2")
        self.patch_size, layers, channels = patch_size, [], in_channels
        for i in range(patch_size.bit_length() - 1):
            layers += [nn.Conv2d(channels, width * 2 ** i, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(width * 2 ** i), nn.ReLU()]
            channels = width * 2 ** i
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Conv2d(channels, dim, 1)

    def forward(self, x):
        if x.shape[-2] % self.patch_size or x.shape[-1] % self.patch_size:
            raise ValueError(f"image {tuple(x.shape[-2:])} is not a whole number of {self.patch_size}-pixel "
                             f"cells: resize or pad it")
        return self.proj(self.convs(x)).flatten(2).transpose(1, 2)


def sincos_position_embedding(grid_size, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """(gh·gw, dim) fixed 2-D embedding: the first half encodes the row, the second the column, each with
    dim/4 frequencies as (sin, cos) pairs — the 1-D sinusoid of the Transformer applied per axis."""
    if dim % 4:
        raise ValueError(f"dim={dim} must be divisible by 4: (sin, cos) pairs for each of two axes")
    gh, gw = _pair(grid_size)
    rows, cols = torch.meshgrid(torch.arange(gh, dtype=torch.float32), torch.arange(gw, dtype=torch.float32),
                                indexing="ij")
    frequency = temperature ** (-torch.arange(dim // 4) / (dim // 4))            # (dim/4,)
    parts = []
    for axis in (rows, cols):
        angle = axis.flatten()[:, None] * frequency                              # (N, dim/4)
        parts += [angle.sin(), angle.cos()]
    return torch.cat(parts, dim=1)


def interpolate_position_embedding(table: torch.Tensor, old_grid, new_grid) -> torch.Tensor:
    """(gh·gw, dim) learned table → (gh'·gw', dim), resampled as a 2-D map for fine-tuning at a higher resolution:
    bicubically, as timm does (ViT's official code interpolates linearly; its paper says only "2-D interpolation")."""
    (gh, gw), (nh, nw) = _pair(old_grid), _pair(new_grid)
    if table.shape[0] != gh * gw:
        raise ValueError(f"table has {table.shape[0]} rows, not {gh}×{gw}={gh * gw}")
    if (gh, gw) == (nh, nw):
        return table
    grid = table.T.reshape(1, -1, gh, gw)                                         # (1, dim, gh, gw)
    grid = F.interpolate(grid, size=(nh, nw), mode="bicubic", align_corners=False)
    return grid.reshape(-1, nh * nw).T


class Block(nn.Module):
    """x + MHA(LN(x)), then x + MLP(LN(x)); returns (x, attention weights or None)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 2.0, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), MultiHeadAttention(dim, num_heads, dropout)
        self.norm2, self.mlp = nn.LayerNorm(dim), FeedForward(dim, int(dim * mlp_ratio), dropout)

    def forward(self, x, mask=None, need_weights: bool = False):
        attended, weights = self.attn(self.norm1(x), mask=mask, need_weights=need_weights)
        x = x + attended
        return x + self.mlp(self.norm2(x)), weights


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth on a residual branch's output x (B, ...): each sample's branch is zeroed with probability
    ``p`` and the kept ones are divided by 1 − p, so the expectation is unchanged; the identity in eval.
    Draws the same random numbers as ``torchvision.ops.stochastic_depth(x, p, "row", training)``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"drop probability p={p} must be in [0, 1]")
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * (mask / keep if keep > 0 else mask)


class PoolFormerBlock(nn.Module):
    """x + (AvgPool₃ₓ₃(LN(x)) − LN(x)), then x + MLP(LN(x)) on a square grid of tokens (B, side², dim): the
    Transformer block with attention swapped for parameter-free pooling (Yu et al., 2022). Subtracting the
    input leaves only the neighbours' contribution (the residual already carries x)."""

    def __init__(self, dim: int, mlp_ratio: float = 2.0, pool_size: int = 3):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)
        self.norm2, self.mlp = nn.LayerNorm(dim), FeedForward(dim, int(dim * mlp_ratio))

    def mix(self, x):
        """(B, side², dim) → (B, side², dim): each token's 3×3-neighbourhood mean minus itself."""
        side = int(round(x.shape[1] ** 0.5))
        if side * side != x.shape[1]:
            raise ValueError(f"PoolFormerBlock needs a square grid of tokens and no class token, got {x.shape[1]}")
        grid = x.transpose(1, 2).reshape(len(x), -1, side, side)
        return (self.pool(grid) - grid).flatten(2).transpose(1, 2)

    def forward(self, x, mask=None, need_weights: bool = False):
        x = x + self.mix(self.norm1(x))
        return x + self.mlp(self.norm2(x)), None


class ViT(nn.Module):
    """A Vision Transformer classifier.

    ``pool``: "cls" (a learned class token, read out after the last block) or "mean" (global average of
    the patch tokens). ``position``: "learned" (one vector per patch, 1-D), "learned2d" (a row vector and
    a column vector, each dim/2, concatenated), "sincos" (fixed 2-D sinusoids) or "none".
    An input of another size works: the position table is interpolated (learned) or recomputed (sincos).
    ``stem``: "patch" (`PatchEmbed`) or "conv" (`ConvStem`, the hybrid). ``mixer``: "attention" (`Block`) or
    "pool" (`PoolFormerBlock`, which needs ``pool="mean"``: no class token on the grid).
    """

    POOLS = ("cls", "mean")
    POSITIONS = ("learned", "learned2d", "sincos", "none")
    STEMS = ("patch", "conv")
    MIXERS = ("attention", "pool")

    def __init__(self, image_size: int = 28, patch_size: int = 4, in_channels: int = 1, num_classes: int = 10,
                 dim: int = 64, depth: int = 4, num_heads: int = 4, mlp_ratio: float = 2.0,
                 dropout: float = 0.0, pool: str = "cls", position: str = "learned", stem: str = "patch",
                 mixer: str = "attention"):
        super().__init__()
        if pool not in self.POOLS:
            raise ValueError(f"pool must be one of {self.POOLS}, not {pool!r}")
        if position not in self.POSITIONS:
            raise ValueError(f"position must be one of {self.POSITIONS}, not {position!r}")
        if stem not in self.STEMS or mixer not in self.MIXERS:
            raise ValueError(f"stem must be one of {self.STEMS} and mixer one of {self.MIXERS}, not {stem!r}, {mixer!r}")
        if mixer == "pool" and pool == "cls":
            raise ValueError('mixer="pool" pools over the patch grid, which has no place for a class token: '
                             'pass pool="mean"')
        self.patch_size, self.pool, self.position = patch_size, pool, position
        self.grid_size = _pair(image_size // patch_size)
        gh, gw = self.grid_size
        self.patch_embed = (PatchEmbed if stem == "patch" else ConvStem)(patch_size, in_channels, dim)
        self.num_prefix_tokens = 1 if pool == "cls" else 0
        if pool == "cls":
            # The class token's own position vector: with "learned" the table has N + 1 rows, as in the paper.
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            self.cls_position = nn.Parameter(torch.zeros(1, 1, dim))
        if position == "learned":
            self.position_table = nn.Parameter(torch.zeros(gh * gw, dim))
        elif position == "learned2d":
            self.row_table = nn.Parameter(torch.zeros(gh, dim // 2))
            self.col_table = nn.Parameter(torch.zeros(gw, dim - dim // 2))
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, dropout) if mixer == "attention"
                                    else PoolFormerBlock(dim, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self._init_weights()

    def _init_weights(self):
        # Token and position vectors start small; linear layers keep PyTorch's default (Kaiming-uniform)
        # init, which on small data trains markedly faster than ViT's trunc-normal(0.02).
        for p in (getattr(self, n, None) for n in ("cls_token", "cls_position", "position_table",
                                                  "row_table", "col_table")):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)

    def position_embedding(self, grid_size=None) -> torch.Tensor:
        """(gh·gw, dim) position vectors of the patches for a ``grid_size`` grid (default: the training grid)."""
        grid = _pair(grid_size) if grid_size is not None else self.grid_size
        dim = self.norm.normalized_shape[0]
        device = self.norm.weight.device
        if self.position == "learned":
            return interpolate_position_embedding(self.position_table, self.grid_size, grid)
        if self.position == "learned2d":
            rows = F.interpolate(self.row_table.T[None], size=grid[0], mode="linear")[0].T
            cols = F.interpolate(self.col_table.T[None], size=grid[1], mode="linear")[0].T
            return torch.cat([rows[:, None].expand(-1, grid[1], -1), cols[None].expand(grid[0], -1, -1)],
                             dim=-1).reshape(grid[0] * grid[1], dim)
        if self.position == "sincos":
            return sincos_position_embedding(grid, dim).to(device)
        return torch.zeros(grid[0] * grid[1], dim, device=device)

    def tokens(self, x) -> torch.Tensor:
        """Images (B, C, H, W) → the encoder's input (B, num_prefix_tokens + N, dim)."""
        patches = self.patch_embed(x)                                              # (B, N, dim)
        grid = (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)
        patches = patches + self.position_embedding(grid).to(patches.dtype)
        if self.pool == "cls":
            cls = (self.cls_token + self.cls_position).expand(len(x), -1, -1).to(patches.dtype)
            patches = torch.cat([cls, patches], dim=1)
        return patches

    def encode(self, x) -> torch.Tensor:
        """Images (B, C, H, W) → the last block's normalised tokens (B, num_prefix_tokens + N, dim)."""
        x = self.tokens(x)
        for block in self.blocks:
            x, _ = block(x)
        return self.norm(x)

    def forward(self, x, return_attention: bool = False):
        """Logits (B, classes); with ``return_attention`` also the per-layer weights (B, heads, N, N)."""
        x = self.tokens(x)
        attentions = []
        for block in self.blocks:
            x, weights = block(x, need_weights=return_attention)
            attentions.append(weights)
        x = self.norm(x)
        features = x[:, 0] if self.pool == "cls" else x.mean(dim=1)
        logits = self.head(features)
        return (logits, attentions) if return_attention else logits


class SETR(nn.Module):
    """Semantic segmentation with a plain ViT encoder: (B, C, H, W) → logits (B, num_classes, H, W).

    The N patch tokens of the last block are folded back into their (H/p)×(W/p) grid — a single-scale feature map at
    stride p — and SETR's naive head (1×1 conv, BN, ReLU, 1×1 conv to classes) scores each cell; bilinear
    upsampling by p gives the full-resolution map. ``encoder_options`` go to `ViT` (no class token: pool="mean").
    """

    def __init__(self, num_classes: int, image_size: int = 32, patch_size: int = 4, in_channels: int = 1,
                 **encoder_options):
        super().__init__()
        self.encoder = ViT(image_size, patch_size, in_channels, num_classes, pool="mean", **encoder_options)
        self.encoder.head = nn.Identity()                    # the classifier head is not used: no dead parameters
        dim = self.encoder.norm.normalized_shape[0]
        self.head = nn.Sequential(nn.Conv2d(dim, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(),
                                  nn.Conv2d(dim, num_classes, 1))

    def forward(self, x):
        tokens = self.encoder.encode(x)                                        # (B, gh·gw, dim)
        gh, gw = x.shape[-2] // self.encoder.patch_size, x.shape[-1] // self.encoder.patch_size
        grid = tokens.transpose(1, 2).reshape(len(x), -1, gh, gw)              # tokens back to a map
        return F.interpolate(self.head(grid), size=x.shape[-2:], mode="bilinear", align_corners=False)
