"""Masked autoencoder (He et al., 2021), small: hide most patches, encode the visible ones, rebuild the pixels.

Introduced in Chapter 3 (03a, section 19). Blocks, smallest first:

- `random_masking` — per image, keep a random subset of the patch tokens (MAE keeps 25 %);
- `patchify` / `unpatchify` — images (B, C, H, W) ↔ per-patch pixel vectors (B, N, p²·C);
- `MaskedAutoencoder` — a `ViT` encoder that sees only the visible tokens, a light decoder that sees every position
  (learned mask tokens where patches were hidden) and predicts each patch's pixels; the loss is the mean squared
  error on the *hidden* patches only. After pre-training, ``encoder`` is a ViT whose features can be probed.
"""

from __future__ import annotations

import torch
from torch import nn

from .vit import Block, ViT, sincos_position_embedding


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) → (B, N, p²·C), patches in row-major order, each flattened as (p, p, C)."""
    batch, channels, height, width = images.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"image {height}×{width} is not a whole number of {patch_size}-pixel patches")
    gh, gw = height // patch_size, width // patch_size
    x = images.reshape(batch, channels, gh, patch_size, gw, patch_size)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(batch, gh * gw, patch_size * patch_size * channels)


def unpatchify(patches: torch.Tensor, patch_size: int, grid, channels: int = 1) -> torch.Tensor:
    """The inverse of `patchify`: (B, N, p²·C) → (B, C, gh·p, gw·p)."""
    gh, gw = grid
    batch = patches.shape[0]
    x = patches.reshape(batch, gh, gw, patch_size, patch_size, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(batch, channels, gh * patch_size, gw * patch_size)


def random_masking(tokens: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None):
    """Keep a random (1 − mask_ratio) share of each image's tokens (B, N, D).

    Returns (visible (B, N_keep, D), mask (B, N) with 1 at hidden tokens, restore (B, N): the index that puts
    [visible, hidden] back into the original order). Sorting uniform noise gives each image its own permutation.
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio={mask_ratio} must be in [0, 1): at least one token must stay visible")
    batch, length, dim = tokens.shape
    keep = max(1, int(round(length * (1 - mask_ratio))))
    noise = torch.rand(batch, length, generator=generator, device=tokens.device)
    shuffle = noise.argsort(dim=1)                    # a random order per image: the first `keep` stay visible
    restore = shuffle.argsort(dim=1)
    visible = tokens.gather(1, shuffle[:, :keep, None].expand(-1, -1, dim))
    mask = torch.ones(batch, length, device=tokens.device)
    mask[:, :keep] = 0
    return visible, mask.gather(1, restore), restore


class MaskedAutoencoder(nn.Module):
    """MAE on a small ViT: ``forward(images)`` → (loss, predicted patches (B, N, p²·C), mask (B, N)).

    The encoder is a `ViT` with fixed 2-D sinusoidal positions and no class token (its features are averaged for
    probing); the decoder widens nothing: ``decoder_dim`` wide, ``decoder_depth`` blocks, its own sinusoids.
    """

    def __init__(self, image_size: int = 28, patch_size: int = 4, in_channels: int = 1, dim: int = 64,
                 depth: int = 4, num_heads: int = 4, decoder_dim: int = 32, decoder_depth: int = 1,
                 decoder_heads: int = 4, mask_ratio: float = 0.75):
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio={mask_ratio} must be in (0, 1): some patches hidden, some visible")
        self.encoder = ViT(image_size, patch_size, in_channels, dim=dim, depth=depth, num_heads=num_heads,
                           pool="mean", position="sincos")
        self.patch_size, self.channels, self.mask_ratio = patch_size, in_channels, mask_ratio
        self.grid = self.encoder.grid_size
        self.to_decoder = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.register_buffer("decoder_position", sincos_position_embedding(self.grid, decoder_dim), persistent=False)
        self.decoder = nn.ModuleList(Block(decoder_dim, decoder_heads) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.to_pixels = nn.Linear(decoder_dim, patch_size * patch_size * in_channels)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None):
        tokens = self.encoder.tokens(images)                                    # (B, N, dim), positions added
        visible, mask, restore = random_masking(tokens, self.mask_ratio, generator)
        for block in self.encoder.blocks:                                       # the encoder sees 25 % of the tokens
            visible, _ = block(visible)
        x = self.to_decoder(self.encoder.norm(visible))
        hidden = self.mask_token.expand(len(x), tokens.shape[1] - x.shape[1], -1).to(x.dtype)
        x = torch.cat([x, hidden], dim=1).gather(1, restore[:, :, None].expand(-1, -1, x.shape[-1]))
        x = x + self.decoder_position.to(x.dtype)
        for block in self.decoder:
            x, _ = block(x)
        predicted = self.to_pixels(self.decoder_norm(x))                        # (B, N, p²·C)
        target = patchify(images, self.patch_size)
        per_patch = (predicted.float() - target.float()).square().mean(-1)
        loss = (per_patch * mask).sum() / mask.sum()                            # hidden patches only
        return loss, predicted, mask

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, dim): the encoder's patch tokens averaged, every patch visible (what a linear probe reads)."""
        return self.encoder.encode(images).mean(dim=1)


def linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, steps: int = 300, lr: float = 0.05, weight_decay: float = 1e-4) -> float:
    """Test accuracy of a linear classifier (softmax regression, full-batch Adam) on frozen features (N, D).

    Features are standardised with the training set's mean and std, so encoders of different scales compare fairly;
    the classifier starts at zero, so the same features always give the same accuracy.
    """
    if len(train_features) != len(train_labels) or len(test_features) != len(test_labels):
        raise ValueError("need one label per feature row, for the training and the test set")
    mean, std = train_features.mean(0), train_features.std(0) + 1e-6
    train_x, test_x = (train_features - mean) / std, (test_features - mean) / std
    classes = int(train_labels.max()) + 1
    with torch.enable_grad():
        probe = nn.Linear(train_x.shape[1], classes).to(train_x.device)
        nn.init.zeros_(probe.weight)                 # a convex problem: start at zero, and the result is reproducible
        nn.init.zeros_(probe.bias)
        optimizer = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
        for _ in range(steps):
            optimizer.zero_grad()
            nn.functional.cross_entropy(probe(train_x), train_labels).backward()
            optimizer.step()
    with torch.no_grad():
        return (probe(test_x).argmax(1) == test_labels).float().mean().item()
