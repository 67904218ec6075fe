"""The course's "FID": a Fréchet distance in the feature space of a Fashion-MNIST classifier.

Introduced in Chapter 6 (06_generative). FID (Heusel et al., 2017) fits one Gaussian to the features of
real images and one to those of generated images and measures the Fréchet (2-Wasserstein) distance
between them:

    d² = ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½)

The original uses Inception-v3 features of ImageNet photos; on 28×28 Fashion-MNIST a classifier trained
in the course (`FashionClassifier`) is the better judge, and `FeatureExtractor` exposes its penultimate
layer in the form `torchmetrics.image.fid.FrechetInceptionDistance(feature=...)` accepts.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def to_generator_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] → float in [-1, 1], the range of a tanh generator (and of the classifier's input)."""
    if images.dtype != torch.uint8:
        raise TypeError(f"to_generator_range takes uint8 images (0–255), not {images.dtype}: float images are "
                        "already scaled, and scaling them again would be silently wrong")
    return images.float() / 127.5 - 1


class FashionClassifier(nn.Module):
    """A small CNN over images in [-1, 1]: two conv blocks (28 → 14 → 7), a ``feature_dim`` layer, 10 logits.

    ``features(x)`` returns the penultimate activations (N×feature_dim) that the Fréchet distance uses.
    """

    def __init__(self, width: int = 32, feature_dim: int = 128, num_classes: int = 10):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * 7 * 7, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class FeatureExtractor(nn.Module):
    """A classifier's ``features`` as a frozen module: float images N×1×28×28 in [-1, 1] → N×D features.

    Carries ``num_features`` so `torchmetrics`' FID needs no dummy forward pass to size its state.
    """

    def __init__(self, classifier: FashionClassifier):
        super().__init__()
        self.classifier = classifier.eval().requires_grad_(False)
        self.num_features = classifier.feature_dim

    def train(self, mode: bool = True):  # stay in eval mode: BatchNorm must use its running statistics
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1:] != (1, 28, 28):
            raise ValueError(f"expected images N×1×28×28 in [-1, 1], got shape {tuple(images.shape)}")
        device = next(self.classifier.parameters()).device
        return self.classifier.features(images.float().to(device)).cpu()

    def extract(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Features of any number of images, computed in batches."""
        return torch.cat([self(chunk) for chunk in images.split(batch_size)])


def _as_float64(features, name: str) -> torch.Tensor:
    array = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    if array.ndim != 2 or len(array) < 2:
        raise ValueError(f"{name} must be an N×D array with N ≥ 2 rows, got shape {tuple(array.shape)}")
    if not torch.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values; check the generator's output")
    return array


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    Args:
        features_a: N×D array (NumPy or torch), features_b: M×D array with the same D.
    Returns:
        ‖μ_a − μ_b‖² + Tr Σ_a + Tr Σ_b − 2 Tr (Σ_a^½ Σ_b Σ_a^½)^½, a float ≥ 0 (0 for identical sets).

    Tr (Σ_a Σ_b)^½ is computed as the trace of the square root of the symmetric matrix Σ_a^½ Σ_b Σ_a^½
    (same eigenvalues), which `eigvalsh` handles stably in float64.
    """
    a, b = _as_float64(features_a, "features_a"), _as_float64(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}; use one extractor for both")
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov_a)
    sqrt_a = eigenvectors @ torch.diag(eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T
    cross = torch.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a).clamp(min=0).sqrt().sum()
    distance = (mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return max(distance.item(), 0.0)


@torch.no_grad()
def class_agreement(classifier: nn.Module, images: torch.Tensor, requested: torch.Tensor) -> float:
    """Fraction of ``images`` (N×1×28×28 in [-1, 1]) that ``classifier`` assigns to the ``requested`` class."""
    if len(images) != len(requested):
        raise ValueError(f"{len(images)} images but {len(requested)} requested labels")
    classifier.eval()
    device = next(classifier.parameters()).device
    predicted = torch.cat([classifier(chunk.to(device)).argmax(1).cpu() for chunk in images.split(500)])
    return (predicted == requested.cpu()).float().mean().item()


def mean_pairwise_distance(images: torch.Tensor) -> float:
    """Mean L2 distance between all pairs of images (N ≥ 2): a crude diversity score, near 0 under mode collapse."""
    if len(images) < 2:
        raise ValueError(f"need at least 2 images to measure diversity, got {len(images)}")
    flat = images.reshape(len(images), -1).double()
    n = len(flat)
    return (torch.cdist(flat, flat).sum() / (n * (n - 1))).item()


def code_purity(predicted: torch.Tensor, codes: torch.Tensor) -> float:
    """For an unsupervised code (InfoGAN's category): the fraction of samples whose predicted class is the
    most common class among samples with the same code. 1.0 when each code value means one class."""
    if len(predicted) != len(codes):
        raise ValueError(f"{len(predicted)} predictions but {len(codes)} codes")
    agree = 0
    for code in codes.unique():
        members = predicted[codes == code]
        agree += members.bincount().max().item()
    return agree / len(codes)


def checkerboard_amplitude(images: torch.Tensor) -> float:
    """Mean strength of the highest-frequency pattern (+−+− in both directions), the signature of uneven
    transposed-convolution overlap: |Σ x[i, j]·(−1)^(i+j)| / (H·W), averaged over images N×C×H×W."""
    if images.ndim != 4:
        raise ValueError(f"expected images N×C×H×W, got shape {tuple(images.shape)}")
    h, w = images.shape[-2:]
    signs = (-1.0) ** (torch.arange(h, device=images.device)[:, None] + torch.arange(w, device=images.device)[None, :])
    return (images.float() * signs).sum((-2, -1)).abs().mean().item() / (h * w)
