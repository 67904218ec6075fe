"""The exercises of Chapter 6 (06_generative): their references, cases and known mistakes."""

from functools import partial

import torch
import torch.nn.functional as F

from .. import fid
from .base import Exercise, Mistake, random_tensors


# ------------------------------------------------------------------------------ the VAE's KL term
def _kl_cases():
    one_mean, one_log_var = random_tensors((1, 5), (1, 5), seed=1)
    far_mean, narrow_log_var = random_tensors((6, 2), (6, 2), seed=4)
    return [tuple(random_tensors((4, 3), (4, 3), seed=0)),
            (one_mean, 3 * one_log_var),                                                 # a batch of one, σ² far from 1
            tuple(random_tensors((3, 1), (3, 1), seed=2)),                               # one latent dimension
            (torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 4, dtype=torch.float64)),   # the prior itself: 0
            (5 * far_mean, narrow_log_var - 10)]                                         # far and narrow codes


def _kl_to_standard_normal(mean, log_var):
    """KL(N(mean, diag σ²) ‖ N(0, I)) per sample, by torch.distributions (σ = exp(½ log σ²))."""
    posterior = torch.distributions.Normal(mean, (0.5 * log_var).exp())
    prior = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    return torch.distributions.kl_divergence(posterior, prior).sum(-1)


def _kl_closed_form(mean, log_var, variance=None, log_variance=None, half=0.5, reduce=torch.sum):
    variance = log_var.exp() if variance is None else variance
    log_variance = log_var if log_variance is None else log_variance
    return reduce(half * (mean.square() + variance - 1 - log_variance), -1)


KL_MISTAKES = (
    Mistake("½ missing", partial(_kl_closed_form, half=1.0),
            "the ½ is missing: the KL of one dimension is ½(μ² + σ² − 1 − log σ²)"),
    Mistake("mean over the latent dimensions", partial(_kl_closed_form, reduce=torch.mean),
            "the dimensions are averaged: the KL of independent dimensions adds up, sum over the latent dimensions"),
    Mistake("log_var read as log σ", lambda mean, log_var: _kl_closed_form(
        mean, log_var, variance=(2 * log_var).exp(), log_variance=2 * log_var),
            "log_var is read as log σ: it is log σ², so σ² = exp(log_var) and log σ² = log_var"),
    Mistake("σ where σ² belongs", lambda mean, log_var: _kl_closed_form(
        mean, log_var, variance=(0.5 * log_var).exp(), log_variance=0.5 * log_var),
            "σ = exp(½ log_var) stands where the variance belongs: the formula takes σ² = exp(log_var) and log σ²"),
)


# ------------------------------------------------------------------------------------------ the GAN's losses
def _gan_cases():
    return [tuple(2 * t for t in random_tensors((8,), (5,), seed=0)),                      # more real logits than fakes
            tuple(random_tensors((1,), (1,), seed=1)),                                     # a batch of one
            (torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)),   # D undecided: ½ everywhere
            (torch.tensor([-800.0, 30.0, 0.5], dtype=torch.float64),                # D sure and wrong, sure and right:
             torch.tensor([60.0, -800.0, -2.0, 4.0], dtype=torch.float64))]         # sigmoid rounds to 0 and 1


def _gan_losses(real_logits, fake_logits):
    """D's binary cross-entropy (real → 1, fake → 0) and G's non-saturating loss (fake → 1), on logits."""
    discriminator = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                     + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    return discriminator, F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def _gan_losses_saturating(real_logits, fake_logits):
    return _gan_losses(real_logits, fake_logits)[0], -F.softplus(fake_logits).mean()   # mean log(1 − D(G(z)))


def _gan_losses_of_probabilities(real_logits, fake_logits):
    d_real, d_fake = torch.sigmoid(real_logits), torch.sigmoid(fake_logits)
    return -(d_real.log().mean() + (1 - d_fake).log().mean()), -d_fake.log().mean()


def _gan_losses_one_batch(real_logits, fake_logits):
    logits = torch.cat([real_logits, fake_logits])
    targets = torch.cat([torch.ones_like(real_logits), torch.zeros_like(fake_logits)])
    return F.binary_cross_entropy_with_logits(logits, targets), _gan_losses(real_logits, fake_logits)[1]


GAN_MISTAKES = (
    Mistake("saturating generator loss", _gan_losses_saturating,
            "G minimises log(1 − D(G(z))), the saturating minimax loss: minimise −log D(G(z)) = softplus(−logit), "
            "whose gradient stays strong when D rejects the fakes"),
    Mistake("log of the sigmoid", _gan_losses_of_probabilities,
            "the losses take the log of sigmoid(logit), which rounds to 0 or 1 for large logits (log 0 = −inf): "
            "write −log sigmoid(t) = log(1 + e^(−t)) stably on the logits"),
    Mistake("real and fake averaged as one batch", _gan_losses_one_batch,
            "D's loss averages real and fake logits as one batch: it is the mean over the real logits plus the mean "
            "over the fake ones, E[−log D(x)] + E[−log(1 − D(G(z)))]"),
)


# ------------------------------------------------------------------------------------------ FID
def _fid_cases():
    real, generated = random_tensors((16, 4), (11, 4), seed=0)
    correlated, other = random_tensors((10, 3), (10, 3), seed=1)
    centred, = random_tensors((12, 3), seed=2)
    centred = centred - centred.mean(0)
    small_real, small_generated = random_tensors((5, 2), (6, 2), seed=3)
    mixing = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.5, 0.0], [-0.3, 0.4, 0.2]], dtype=torch.float64)
    return [(real, 1.5 * generated + 0.7),                       # more real samples than generated; shifted, wider
            (real, real.clone()),                                # a set against itself: 0
            (correlated @ mixing, other),                        # correlated features against independent ones
            (centred, 2 * centred),                              # same mean, twice the spread: distance = Tr Σ
            (10 * small_real + 100, 10 * small_generated + 101)]  # few samples, large features (as a CNN's)


def _fid_from_statistics(features_a, features_b, ddof=1, mean_power=2, entrywise_root=False):
    mean_a, mean_b = features_a.mean(0), features_b.mean(0)
    cov_a = torch.cov(features_a.T, correction=ddof).reshape(features_a.shape[1], -1)
    cov_b = torch.cov(features_b.T, correction=ddof).reshape(features_b.shape[1], -1)
    if entrywise_root:
        cross = (cov_a @ cov_b).sqrt().trace()
    else:
        eigenvalues, eigenvectors = torch.linalg.eigh(cov_a)
        sqrt_a = eigenvectors @ torch.diag(eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T
        cross = torch.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a).clamp(min=0).sqrt().sum()
    return ((mean_a - mean_b).norm() ** mean_power + cov_a.trace() + cov_b.trace() - 2 * cross).item()


FID_MISTAKES = (
    Mistake("biased covariance", partial(_fid_from_statistics, ddof=0),
            "the covariances divide by N: FID's are unbiased, divided by N − 1 (as torch.cov and np.cov)"),
    Mistake("entrywise square root", partial(_fid_from_statistics, entrywise_root=True),
            "the square root of Σ_a Σ_b is taken entry by entry: (Σ_a Σ_b)^½ is a matrix square root, the trace of "
            "which is the sum of the square roots of the eigenvalues of Σ_a^½ Σ_b Σ_a^½"),
    Mistake("mean distance not squared", partial(_fid_from_statistics, mean_power=1),
            "the mean term is ‖μ_a − μ_b‖: the Fréchet distance adds its square, ‖μ_a − μ_b‖²"),
)


EXERCISES = [
    Exercise("kl_to_standard_normal", "06_generative", "easy", _kl_to_standard_normal, _kl_cases, KL_MISTAKES,
             forbidden=("kl_divergence", "kl_div", "gaussian_kl")),
    Exercise("gan_losses", "06_generative", "medium", _gan_losses, _gan_cases, GAN_MISTAKES,
             forbidden=("binary_cross_entropy_with_logits", "binary_cross_entropy", "BCEWithLogitsLoss", "BCELoss",
                        "softplus", "Softplus", "logsigmoid", "LogSigmoid", "discriminator_loss", "generator_loss")),
    Exercise("fid_from_features", "06_generative", "hard", fid.frechet_distance, _fid_cases, FID_MISTAKES,
             forbidden=("frechet_distance", "FrechetInceptionDistance", "_compute_fid", "sqrtm")),
]
