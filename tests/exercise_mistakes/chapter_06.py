"""Chapter 6's exercises (06_generative) done wrong, the way learners do: each entry of `CATALOGUE` is (exercise,
mistaken function, the registered mistake its message must name)."""

import torch


def kl_without_half(mean, log_var):
    return (mean ** 2 + torch.exp(log_var) - 1 - log_var).sum(dim=1)


def kl_averaged_over_dimensions(mean, log_var):
    return 0.5 * (mean ** 2 + torch.exp(log_var) - 1 - log_var).mean(dim=1)


def kl_with_std_from_exp(mean, log_var):
    std = torch.exp(log_var)                            # should be exp(0.5 * log_var)
    return 0.5 * (mean ** 2 + std ** 2 - 1 - torch.log(std ** 2)).sum(dim=1)


def kl_with_std_as_variance(mean, log_var):
    std = torch.exp(0.5 * log_var)
    return 0.5 * (mean ** 2 + std - 1 - torch.log(std)).sum(dim=1)


def gan_losses_minimax_generator(real_logits, fake_logits):
    d_loss = torch.log1p(torch.exp(-real_logits)).mean() + torch.log1p(torch.exp(fake_logits)).mean()
    g_loss = -torch.log1p(torch.exp(fake_logits)).mean()            # log(1 − D(G(z))), as in the minimax game
    return d_loss, g_loss


def gan_losses_on_probabilities(real_logits, fake_logits):
    d_real, d_fake = torch.sigmoid(real_logits), torch.sigmoid(fake_logits)
    d_loss = -torch.mean(torch.log(d_real)) - torch.mean(torch.log(1 - d_fake))
    g_loss = -torch.mean(torch.log(d_fake))
    return d_loss, g_loss


def gan_losses_one_concatenated_batch(real_logits, fake_logits):
    def stable_softplus(t):
        return torch.clamp(t, min=0) + torch.log1p(torch.exp(-torch.abs(t)))
    logits = torch.cat([real_logits, fake_logits])
    labels = torch.cat([torch.ones(len(real_logits)), torch.zeros(len(fake_logits))]).to(logits.dtype)
    d_loss = (labels * stable_softplus(-logits) + (1 - labels) * stable_softplus(logits)).mean()
    return d_loss, stable_softplus(-fake_logits).mean()


def _covariance(features, divide_by_n=False):
    centred = features - features.mean(0)
    return centred.T @ centred / (len(features) if divide_by_n else len(features) - 1)


def _trace_of_sqrt_product(cov_a, cov_b):
    eigenvalues = torch.linalg.eigvals(cov_a @ cov_b)                       # real and ≥ 0 up to rounding
    return eigenvalues.real.clamp(min=0).sqrt().sum()


def fid_population_covariance(real_features, generated_features):
    cov_r, cov_g = _covariance(real_features, True), _covariance(generated_features, True)
    diff = real_features.mean(0) - generated_features.mean(0)
    return float(diff @ diff + torch.trace(cov_r) + torch.trace(cov_g) - 2 * _trace_of_sqrt_product(cov_r, cov_g))


def fid_elementwise_sqrt(real_features, generated_features):
    cov_r, cov_g = _covariance(real_features), _covariance(generated_features)
    diff = real_features.mean(0) - generated_features.mean(0)
    return float(diff @ diff + torch.trace(cov_r + cov_g - 2 * torch.sqrt(cov_r @ cov_g)))


def fid_mean_norm_not_squared(real_features, generated_features):
    cov_r, cov_g = _covariance(real_features), _covariance(generated_features)
    distance = torch.linalg.norm(real_features.mean(0) - generated_features.mean(0))
    return float(distance + torch.trace(cov_r) + torch.trace(cov_g) - 2 * _trace_of_sqrt_product(cov_r, cov_g))


CATALOGUE = [
    ("kl_to_standard_normal", kl_without_half, "½ missing"),
    ("kl_to_standard_normal", kl_averaged_over_dimensions, "mean over the latent dimensions"),
    ("kl_to_standard_normal", kl_with_std_from_exp, "log_var read as log σ"),
    ("kl_to_standard_normal", kl_with_std_as_variance, "σ where σ² belongs"),
    ("gan_losses", gan_losses_minimax_generator, "saturating generator loss"),
    ("gan_losses", gan_losses_on_probabilities, "log of the sigmoid"),
    ("gan_losses", gan_losses_one_concatenated_batch, "real and fake averaged as one batch"),
    ("fid_from_features", fid_population_covariance, "biased covariance"),
    ("fid_from_features", fid_elementwise_sqrt, "entrywise square root"),
    ("fid_from_features", fid_mean_norm_not_squared, "mean distance not squared"),
]
