"""The loss functions of the course side by side, hand-written, and the information theory behind cross-entropy:
Chapter 1c (01c_why_training_works), section 1.

Each function takes predictions and targets of the same shape and returns the mean over all elements (over
the whole mask for `binary_dice_loss` and `soft_iou_loss`, which are set measures); `tests/test_losses.py` checks each
against torch, torchvision or torchmetrics.

- regression: `mse_loss`, `l1_loss`, `smooth_l1_loss` (Huber with β: quadratic near 0, linear far away);
- classification on logits: `binary_cross_entropy` (the focal loss, RetinaNet's (1 − p_t)^γ-weighted BCE, is
  Chapter 5's `utils.segmentation.binary_focal_loss`);
- overlap of one binary mask (probabilities in [0, 1]): `binary_dice_loss` = 1 − 2|A∩B| / (|A| + |B|), `soft_iou_loss` = 1 − |A∩B| / |A∪B|;
- distributions (rows of probabilities): `entropy`, `cross_entropy_between`, `kl_divergence`, tied by
  H(p, q) = H(p) + KL(p ‖ q).
"""

from __future__ import annotations

import torch


def _check_pair(prediction: torch.Tensor, target: torch.Tensor, name: str) -> None:
    if not (torch.is_tensor(prediction) and torch.is_tensor(target)):
        raise TypeError(f"{name}: prediction and target must be tensors")
    if prediction.shape != target.shape:
        raise ValueError(f"{name}: prediction {tuple(prediction.shape)} and target {tuple(target.shape)} must have "
                         "the same shape (one target per prediction)")


def mse_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of (prediction − target)²: large errors dominate (the mean is the minimiser)."""
    _check_pair(prediction, target, "mse_loss")
    return (prediction - target).pow(2).mean()


def l1_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of |prediction − target|: robust to outliers (the median is the minimiser), constant gradient."""
    _check_pair(prediction, target, "l1_loss")
    return (prediction - target).abs().mean()


def smooth_l1_loss(prediction: torch.Tensor, target: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Huber-style: 0.5·e²/β for |e| < β, |e| − 0.5·β beyond — L2's smooth minimum, L1's robustness (Fast R-CNN)."""
    _check_pair(prediction, target, "smooth_l1_loss")
    if beta <= 0:
        raise ValueError(f"smooth_l1_loss: beta must be > 0, got {beta}")
    error = (prediction - target).abs()
    return torch.where(error < beta, 0.5 * error.pow(2) / beta, error - 0.5 * beta).mean()


def binary_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """−[y·log σ(z) + (1 − y)·log(1 − σ(z))], computed stably from logits: max(z, 0) − z·y + log(1 + e^−|z|)."""
    _check_pair(logits, target, "binary_cross_entropy")
    return (logits.clamp(min=0) - logits * target + torch.log1p(torch.exp(-logits.abs()))).mean()


def binary_dice_loss(probabilities: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """1 − 2·Σ(p·y) / (Σp + Σy) for one binary mask of probabilities: a set overlap, blind to how many background
    pixels there are. (Chapter 5's multi-class loss on logits is `utils.segmentation.dice_loss`.)"""
    _check_pair(probabilities, target, "binary_dice_loss")
    return 1 - (2 * (probabilities * target).sum() + eps) / (probabilities.sum() + target.sum() + eps)


def soft_iou_loss(probabilities: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """1 − Σ(p·y) / (Σp + Σy − Σ(p·y)): the Jaccard index made differentiable."""
    _check_pair(probabilities, target, "soft_iou_loss")
    overlap = (probabilities * target).sum()
    return 1 - (overlap + eps) / (probabilities.sum() + target.sum() - overlap + eps)


def _check_distributions(*distributions: torch.Tensor) -> None:
    for d in distributions:
        if d.min() < 0 or not torch.allclose(d.sum(-1), torch.ones((), dtype=d.dtype), atol=1e-5):
            raise ValueError("distributions must be non-negative rows that sum to 1 (apply softmax to logits first)")


def entropy(p: torch.Tensor) -> torch.Tensor:
    """H(p) = −Σ p log p per row (nats; 0·log 0 = 0): the average surprise of outcomes drawn from p."""
    _check_distributions(p)
    return -(p * torch.log(p.clamp(min=1e-30))).sum(-1)


def cross_entropy_between(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """H(p, q) = −Σ p log q per row: the average surprise when outcomes come from p but we expect q."""
    _check_distributions(p, q)
    if p.shape != q.shape:
        raise ValueError(f"p {tuple(p.shape)} and q {tuple(q.shape)} must have the same shape")
    return -(p * torch.log(q.clamp(min=1e-30))).sum(-1)


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) = Σ p log(p / q) per row (terms with p = 0 count 0): ≥ 0, zero only when q = p."""
    _check_distributions(p, q)
    if p.shape != q.shape:
        raise ValueError(f"p {tuple(p.shape)} and q {tuple(q.shape)} must have the same shape")
    ratio = torch.log(p.clamp(min=1e-30)) - torch.log(q.clamp(min=1e-30))
    return torch.where(p > 0, p * ratio, torch.zeros_like(p)).sum(-1)
