"""Autoencoders (Chapter 6, 06_generative): plain, sparse and variational, all MLPs over 28×28 images.

Images are floats in [0, 1]; decoders return *logits* so the reconstruction loss is a numerically safe
``binary_cross_entropy_with_logits`` (each pixel read as the probability of ink).

- `Autoencoder`: x → code → x̂, trained to copy its input through a bottleneck.
- `SparseAutoencoder`: an *overcomplete* sigmoid code kept mostly silent by `sparsity_penalty` — the
  bottleneck is the activity budget, not the width.
- `VAE`: the encoder outputs a Gaussian q(z|x) = N(μ, σ²); `reparameterize` samples it differentiably;
  the loss is the negative ELBO, reconstruction + KL(q(z|x) ‖ N(0, I)) (`gaussian_kl`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PIXELS = 28 * 28


def mlp(*sizes: int) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (none after the last)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    """784 → hidden → code_dim → hidden → 784 logits."""

    def __init__(self, code_dim: int = 16, hidden: int = 256):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), mlp(PIXELS, hidden, code_dim))
        self.decoder = mlp(code_dim, hidden, PIXELS)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Code N×code_dim → logits N×1×28×28."""
        return self.decoder(code).view(-1, 1, 28, 28)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class SparseAutoencoder(Autoencoder):
    """An overcomplete code (``code_dim`` > what a bottleneck would allow) squashed into (0, 1) by a sigmoid,
    so that `sparsity_penalty` can ask each unit to be active only a fraction of the time."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.encoder(x))


def sparsity_penalty(code: torch.Tensor, target: float = 0.05) -> torch.Tensor:
    """Σ_j KL(Bernoulli(target) ‖ Bernoulli(ρ̂_j)), ρ̂_j the mean activation of unit j over the batch.

    ``code``: N×K activations in (0, 1). Zero when every unit fires ``target`` of the time on average.
    """
    if not 0 < target < 1:
        raise ValueError(f"target activation must lie strictly between 0 and 1, got {target}")
    rate = code.mean(0).clamp(1e-6, 1 - 1e-6)
    return (target * (target / rate).log() + (1 - target) * ((1 - target) / (1 - rate)).log()).sum()


def reconstruction_loss(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Bernoulli negative log-likelihood, summed over pixels, averaged over the batch (nats per image)."""
    return F.binary_cross_entropy_with_logits(logits, images, reduction="sum") / len(images)


def reparameterize(mean: torch.Tensor, log_var: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """z = μ + σ·ε with ε ~ N(0, I): the randomness moves into ε, so gradients reach μ and log σ²."""
    noise = torch.randn_like(mean) if noise is None else noise
    return mean + (0.5 * log_var).exp() * noise


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) in closed form, ½ Σ (μ² + σ² − 1 − log σ²), summed over latent dims: shape N."""
    return 0.5 * (mean.square() + log_var.exp() - 1 - log_var).sum(1)


class VAE(nn.Module):
    """Encoder 784 → hidden → (μ, log σ²) of size latent_dim; decoder latent_dim → hidden → 784 logits."""

    def __init__(self, latent_dim: int = 2, hidden: int = 256):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(nn.Flatten(), mlp(PIXELS, hidden, 2 * latent_dim))
        self.decoder = mlp(latent_dim, hidden, PIXELS)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images → (μ, log σ²), each N×latent_dim."""
        return self.encoder(x).chunk(2, dim=1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, 1, 28, 28)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (reconstruction logits, μ, log σ²)."""
        mean, log_var = self.encode(x)
        return self.decode(reparameterize(mean, log_var)), mean, log_var

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The two terms of the negative ELBO, each averaged over the batch: ``recon`` and ``kl`` (nats)."""
        logits, mean, log_var = self(x)
        return {"recon": reconstruction_loss(logits, x), "kl": gaussian_kl(mean, log_var).mean()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images in [0, 1] decoded from the prior N(0, I)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        return torch.sigmoid(self.decode(z))
