"""Generative adversarial networks (Chapter 6, 06_generative): MLP GAN, DCGAN, conditional GAN, InfoGAN.

Every generator maps latent inputs to images N×1×28×28 in [-1, 1] (tanh) and draws its own inputs with
``sample_inputs(n)`` — a dict passed back as ``generator(**inputs)``: ``{"z"}`` for a plain GAN,
``{"z", "labels"}`` for a conditional one, ``{"z", "category", "continuous"}`` for InfoGAN. Every
discriminator returns one *logit* per image (D(x) = sigmoid(logit)), so the losses below use the
numerically safe log-sigmoid forms.

DCGAN's design rules (Radford et al., 2015), followed here: strided convolutions instead of pooling,
transposed convolutions (or resize + conv) to upsample in G, BatchNorm in both networks except G's output
and D's input layer, ReLU in G with tanh at the output, LeakyReLU(0.2) in D, Adam with β₁ = 0.5.

Two of BigGAN's tools (Brock et al., 2018): `truncated_normal` (the truncation trick) and `ConditionalBatchNorm2d`
(the class sets each BatchNorm's gain and bias).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def transposed_conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                                output_padding: int = 0, dilation: int = 1) -> int:
    """Output side of ``nn.ConvTranspose2d``: (in − 1)·stride − 2·padding + dilation·(kernel − 1) + output_padding + 1.

    The mirror image of a convolution's (in + 2·padding − dilation·(kernel − 1) − 1) // stride + 1.
    """
    if output_padding >= max(stride, dilation):
        raise ValueError(f"output_padding ({output_padding}) must be smaller than stride or dilation")
    out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if out < 1:
        raise ValueError(f"a transposed convolution of a {size}-pixel input with kernel {kernel}, stride {stride}, "
                         f"padding {padding} has no output; reduce the padding")
    return out


# ----------------------------------------------------------------------------------------- losses
def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """−[log D(x) + log(1 − D(G(z)))], averaged: binary cross-entropy with targets 1 (real) and 0 (fake)."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_loss(fake_logits: torch.Tensor, non_saturating: bool = True) -> torch.Tensor:
    """The generator's loss on D's logits for its samples.

    - saturating (the minimax game as written): minimise log(1 − D(G(z))) = −softplus(logit);
      its gradient vanishes exactly when D confidently rejects the fakes, i.e. early in training;
    - non-saturating (Goodfellow et al.'s fix): minimise −log D(G(z)) = softplus(−logit), strong where
      the samples are bad.
    """
    if non_saturating:
        return F.softplus(-fake_logits).mean()
    return -F.softplus(fake_logits).mean()


def mutual_information_loss(category_logits: torch.Tensor, continuous_mean: torch.Tensor,
                            category: torch.Tensor, continuous: torch.Tensor) -> torch.Tensor:
    """InfoGAN's term: −E[log Q(c | G(z, c))] up to a constant, so minimising it raises a lower bound on I(c; G(z, c)).

    Cross-entropy for the categorical code, a unit-variance Gaussian NLL (½ squared error) for the continuous codes.
    """
    return F.cross_entropy(category_logits, category) + 0.5 * (continuous - continuous_mean).square().sum(1).mean()


def truncated_normal(n: int, dim: int, threshold: float | None, generator: torch.Generator | None = None,
                     device=None) -> torch.Tensor:
    """(n, dim) draws of N(0, 1) restricted to [−threshold, threshold]: every entry outside is redrawn until it falls
    inside (BigGAN's truncation trick). ``threshold=None`` is the untruncated normal."""
    if threshold is not None and threshold <= 0:
        raise ValueError(f"threshold={threshold} must be positive (or None for no truncation)")
    z = torch.randn(n, dim, generator=generator, device=device)
    if threshold is None:
        return z
    outside = z.abs() > threshold
    while outside.any():
        z[outside] = torch.randn(int(outside.sum()), generator=generator, device=device)
        outside = z.abs() > threshold
    return z


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose γ and β come from the class embedding: x (N, C, H, W), labels (N,) → (N, C, H, W).

    Normalise with the batch's statistics (running ones in eval) and no affine of its own, then scale and shift
    sample i by γ(y_i) = 1 + W_γ e(y_i) + b_γ and β(y_i) = W_β e(y_i) + b_β, where e is a learned ``embed_dim``-wide
    class embedding (BigGAN's form). Random at initialisation, so every class starts with its own gains and biases;
    `affine(labels)` gives them. The class changes every feature map's gain and offset, in every layer that has one.
    """

    def __init__(self, num_features: int, num_classes: int, embed_dim: int = 16, eps: float = 1e-5,
                 momentum: float = 0.1):
        super().__init__()
        if min(num_features, num_classes, embed_dim) < 1:
            raise ValueError(f"num_features={num_features}, num_classes={num_classes} and embed_dim={embed_dim} "
                             f"must be positive")
        self.norm = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=False)
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.gamma, self.beta = nn.Linear(embed_dim, num_features), nn.Linear(embed_dim, num_features)

    def affine(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(γ, β), each (N, num_features): the per-class gain and bias of each sample."""
        e = self.embed(labels)
        return 1 + self.gamma(e), self.beta(e)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if labels.shape != (len(x),):
            raise ValueError(f"need one label per image: x has {len(x)} images, labels shape {tuple(labels.shape)}")
        gamma, beta = self.affine(labels)
        return self.norm(x) * gamma[:, :, None, None] + beta[:, :, None, None]


# --------------------------------------------------------------------------------------- generators
class Generator(nn.Module):
    """Shared by every generator: drawing latent inputs and samples on the model's device."""

    latent_dim: int
    num_classes: int = 0

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """z ~ N(0, I), plus uniformly drawn labels for a conditional generator; drawn where ``generator`` lives
        (the model's device without one, so a training step never copies noise from the host)."""
        where = generator.device if generator is not None else self.device
        inputs = {"z": torch.randn(n, self.latent_dim, generator=generator, device=where)}
        if self.num_classes:
            inputs["labels"] = torch.randint(0, self.num_classes, (n,), generator=generator, device=where)
        return {k: v.to(self.device) for k, v in inputs.items()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, batch_size: int = 500, **fixed):
        """(images N×1×28×28 in [-1, 1] on the CPU, the inputs that made them); ``fixed`` overrides inputs."""
        was_training = self.training
        self.eval()
        inputs = self.sample_inputs(n, generator)
        inputs.update({k: torch.as_tensor(v).to(self.device) for k, v in fixed.items()})
        chunks = [{k: v[i:i + batch_size] for k, v in inputs.items()} for i in range(0, n, batch_size)]
        images = torch.cat([self(**chunk).float().cpu() for chunk in chunks])
        self.train(was_training)
        return images, {k: v.cpu() for k, v in inputs.items()}


class MLPGenerator(Generator):
    """The original GAN's generator: fully connected, z → 784 pixels, no notion of space."""

    def __init__(self, latent_dim: int = 64, hidden: int = 256):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 2 * hidden), nn.LeakyReLU(0.2),
            nn.Linear(2 * hidden, 28 * 28), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, 28, 28)


def upsample_block(in_channels: int, out_channels: int, upsample: str, last: bool = False) -> nn.Sequential:
    """Double the side: a 4×4 stride-2 transposed convolution, or nearest resize + 3×3 convolution.

    The last block ends in tanh (no BatchNorm: the output's statistics must stay free).
    """
    if upsample == "transposed":
        layers = [nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=last)]
    elif upsample == "resize":
        layers = [nn.Upsample(scale_factor=2, mode="nearest"),
                  nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=last)]
    else:
        raise ValueError(f"upsample must be 'transposed' or 'resize', not {upsample!r}")
    return nn.Sequential(*layers, nn.Tanh() if last else nn.Sequential(nn.BatchNorm2d(out_channels), nn.ReLU()))


class DCGANGenerator(Generator):
    """z (+ label embedding) → 4w×7×7 → 2w×14×14 → 1×28×28.

    ``num_classes`` > 0 makes it a conditional GAN's generator. ``conditioning="concat"``: the label's learned
    embedding is concatenated to z, so every layer sees which class to draw; ``"batchnorm"``: every BatchNorm is a
    `ConditionalBatchNorm2d`, so the class sets each layer's gains and biases (BigGAN's way).
    """

    def __init__(self, latent_dim: int = 64, width: int = 32, upsample: str = "transposed",
                 num_classes: int = 0, embed_dim: int = 16, conditioning: str = "concat"):
        super().__init__()
        if conditioning not in ("concat", "batchnorm"):
            raise ValueError(f"conditioning must be 'concat' or 'batchnorm', not {conditioning!r}")
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.conditional_bn = bool(num_classes) and conditioning == "batchnorm"
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes and not self.conditional_bn else None
        in_features = latent_dim + (embed_dim if self.embed is not None else 0)
        self.project = nn.Sequential(  # a 7×7 transposed convolution of a 1×1 "image" = a linear layer
            nn.ConvTranspose2d(in_features, 4 * width, 7, bias=False), nn.BatchNorm2d(4 * width), nn.ReLU())
        self.up = nn.Sequential(upsample_block(4 * width, 2 * width, upsample),
                                upsample_block(2 * width, 1, upsample, last=True))
        if self.conditional_bn:
            self.project[1] = ConditionalBatchNorm2d(4 * width, num_classes)
            self.up[0][-1][0] = ConditionalBatchNorm2d(2 * width, num_classes)

    def _run(self, layers: nn.Sequential, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        for layer in layers:
            if isinstance(layer, nn.Sequential):
                x = self._run(layer, x, labels)
            else:
                x = layer(x, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
        return x

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes and labels is None:
            raise ValueError("this generator is conditional: pass labels (N integers in [0, num_classes))")
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        if self.conditional_bn:
            return self._run(self.up, self._run(self.project, z[:, :, None, None], labels), labels)
        return self.up(self.project(z[:, :, None, None]))


class InfoGANGenerator(Generator):
    """A DCGAN generator fed [z, one-hot(category), continuous codes]; the codes get meaning only from
    the mutual-information term."""

    def __init__(self, noise_dim: int = 62, categories: int = 10, continuous: int = 2, width: int = 32):
        super().__init__()
        self.latent_dim, self.categories, self.continuous = noise_dim, categories, continuous
        self.body = DCGANGenerator(noise_dim + categories + continuous, width)

    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """z ~ N(0, I), category ~ Uniform{0..categories−1}, continuous ~ Uniform(−1, 1); drawn like
        `Generator.sample_inputs`."""
        where = generator.device if generator is not None else self.device
        inputs = {"z": torch.randn(n, self.latent_dim, generator=generator, device=where),
                  "category": torch.randint(0, self.categories, (n,), generator=generator, device=where),
                  "continuous": torch.rand(n, self.continuous, generator=generator, device=where) * 2 - 1}
        return {k: v.to(self.device) for k, v in inputs.items()}

    def forward(self, z: torch.Tensor, category: torch.Tensor, continuous: torch.Tensor) -> torch.Tensor:
        codes = torch.cat([z, F.one_hot(category, self.categories).to(z.dtype), continuous.to(z.dtype)], dim=1)
        return self.body(codes)


# ----------------------------------------------------------------------------------- discriminators
class MLPDiscriminator(nn.Module):
    """784 → hidden → hidden/2 → 1 logit, LeakyReLU so that gradients reach G even for rejected samples."""

    def __init__(self, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(28 * 28, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden // 2), nn.LeakyReLU(0.2), nn.Linear(hidden // 2, 1),
        )

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).squeeze(1)


class DCGANDiscriminator(nn.Module):
    """1×28×28 → w×14×14 → 2w×7×7 → 1 logit: strided convolutions, LeakyReLU(0.2), BatchNorm after the first layer.

    ``num_classes`` > 0 makes it a conditional GAN's discriminator: the label's embedding, reshaped into a
    28×28 plane, is stacked onto the image as a second channel, so D judges "is this a real *sandal*?".
    """

    def __init__(self, width: int = 32, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, 28 * 28) if num_classes else None
        self.trunk = nn.Sequential(
            nn.Conv2d(2 if num_classes else 1, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2), nn.Flatten(),
        )
        self.head = nn.Linear(2 * width * 7 * 7, 1)

    def condition(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.embed is None:
            return x
        if labels is None:
            raise ValueError("this discriminator is conditional: pass labels (N integers in [0, num_classes))")
        return torch.cat([x, self.embed(labels).view(-1, 1, 28, 28)], dim=1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.trunk(self.condition(x, labels))).squeeze(1)


class InfoGANDiscriminator(DCGANDiscriminator):
    """D plus the recognition network Q, sharing D's trunk: Q reads back the category logits and the
    mean of each continuous code from an image."""

    def __init__(self, width: int = 32, categories: int = 10, continuous: int = 2):
        super().__init__(width)
        self.categories = categories
        self.q_head = nn.Sequential(nn.Linear(2 * width * 7 * 7, 128), nn.LeakyReLU(0.2),
                                    nn.Linear(128, categories + continuous))

    def forward_with_codes(self, x: torch.Tensor):
        """(logits N, category logits N×categories, continuous means N×continuous)."""
        features = self.trunk(x)
        codes = self.q_head(features)
        return self.head(features).squeeze(1), codes[:, :self.categories], codes[:, self.categories:]
