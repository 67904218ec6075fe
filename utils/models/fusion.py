"""Learned infrared–visible fusion: a DenseFuse-style autoencoder with feature-level fusion rules, and an
end-to-end fusion network trained with intensity + gradient + SSIM losses.

Introduced in Chapter 7 (07_fusion). Images are floats in [0, 1], shaped N×1×H×W (one grey channel: the
infrared image, or the visible image's luminance Y); the end-to-end network reads both as N×2×H×W
(channel 0 infrared, channel 1 visible).

- `DenseFuse` (Li & Wu, 2019): encoder = a 3×3 convolution and a dense block (each layer sees every earlier
  feature map), decoder = 3×3 convolutions (four in the paper, three here). It is trained only to
  *reconstruct* single images — fusion needs no fused ground truth — and fuses at test time by combining the
  two encodings with a rule: `addition_rule` (a weighted sum) or `l1_norm_rule` (each source weighted by its
  local activity, the L1 norm of its feature vector averaged over a window).
- `FusionNet`: the same encoder–decoder shape reading both images at once and trained end to end with
  `FusionLoss` = intensity + gradient + SSIM terms (unsupervised: every target is built from the sources).
- `fusiongan_content_loss`: the content part of FusionGAN's generator loss, for comparison (no GAN is trained).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..image_ops import laplacian, sobel, ssim


def conv_relu(c_in: int, c_out: int) -> nn.Sequential:
    """3×3 convolution (reflect-padded, so borders do not darken) → ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="reflect"), nn.ReLU(inplace=True))


class DenseBlock(nn.Module):
    """``layers`` 3×3 conv-ReLUs, each fed the concatenation of the block input and every earlier output:
    C → C + layers·growth channels. Shallow features (edges) reach the decoder untouched."""

    def __init__(self, channels: int, growth: int, layers: int = 3):
        super().__init__()
        self.layers = nn.ModuleList(conv_relu(channels + i * growth, growth) for i in range(layers))

    def forward(self, x):
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        return x


class Encoder(nn.Sequential):
    """N×in_channels×H×W → N×4·width×H×W (no down-sampling: fusion needs every pixel)."""

    def __init__(self, in_channels: int, width: int):
        super().__init__(conv_relu(in_channels, width), DenseBlock(width, width, 3))


class Decoder(nn.Sequential):
    """N×4·width×H×W → N×1×H×W through 2·width and width channels; the last convolution is linear."""

    def __init__(self, width: int):
        super().__init__(conv_relu(4 * width, 2 * width), conv_relu(2 * width, width),
                         nn.Conv2d(width, 1, 3, padding=1, padding_mode="reflect"))


def addition_rule(features_ir: torch.Tensor, features_vis: torch.Tensor, weight: float = 0.5) -> torch.Tensor:
    """w·φ_IR + (1 − w)·φ_VIS (N×C×H×W). The paper sums the two encodings; a weighted *mean* keeps the decoder's
    input at the scale it was trained on."""
    return weight * features_ir + (1 - weight) * features_vis


def l1_norm_rule(features_ir: torch.Tensor, features_vis: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """DenseFuse's L1-norm rule: activity C_k = ‖φ_k(x, y)‖₁ over channels, averaged over a (2r+1)² window;
    f = Σ_k φ_k · C_k / Σ_j C_j. Where one source's features are busier (edges, texture), it wins (N×C×H×W)."""
    activity = torch.stack([features_ir.abs().sum(1), features_vis.abs().sum(1)])       # 2×N×H×W
    activity = F.avg_pool2d(activity, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
    weights = activity / activity.sum(0).clamp(min=1e-8)
    return weights[0, :, None] * features_ir + weights[1, :, None] * features_vis


FUSION_RULES = {"addition": addition_rule, "l1_norm": l1_norm_rule}


class EncoderDecoder(nn.Module):
    """`Encoder` → `Decoder`: N×in_channels×H×W → N×1×H×W at full resolution, the last layer linear."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        self.encoder = Encoder(in_channels, width)
        self.decoder = Decoder(width)

    def forward(self, x):
        return self.decoder(self.encoder(x))


class DenseFuse(EncoderDecoder):
    """Autoencoder for single grey images; `fuse` merges two images at the feature level."""

    def __init__(self, width: int = 16):
        super().__init__(1, width)

    @torch.no_grad()
    def fuse(self, ir: torch.Tensor, vis: torch.Tensor, rule: str = "addition", weight: float = 0.5) -> torch.Tensor:
        """Fused image (N×1×H×W in [0, 1]) of ``ir`` and ``vis`` (N×1×H×W in [0, 1]); ``weight`` is the infrared
        share of the addition rule."""
        if rule not in FUSION_RULES:
            raise ValueError(f"rule must be one of {tuple(FUSION_RULES)}, not {rule!r}")
        self.eval()
        a, b = self.encoder(ir), self.encoder(vis)
        features = addition_rule(a, b, weight) if rule == "addition" else l1_norm_rule(a, b)
        return self.decoder(features).clamp(0, 1)


def float32(like: torch.Tensor):
    """A context that turns autocast off on ``like``'s device: the losses' filters (Sobel, SSIM's Gaussian window)
    then run in float32. Under bf16 autocast they would run in bf16, where SSIM's variances E[x²] − E[x]² lose
    almost all their digits to cancellation (8 bits of mantissa) and the Sobel targets are rounded. Measured on
    Chapter 7's ablation (smoke settings, CPU bf16 autocast, three seeds), FusionNet with all terms ended on average
    14.1 grey levels from max(IR, VIS) with bf16 losses, 11.3 with these float32 losses, 9.5 in float32 throughout."""
    return torch.autocast(like.device.type, enabled=False)


def densefuse_loss(model: DenseFuse, batch, ssim_weight: float = 1.0) -> torch.Tensor:
    """DenseFuse's training loss on single images x (N×1×H×W): ‖x̂ − x‖² (mean) + λ·(1 − SSIM(x̂, x))."""
    x = batch[0]
    reconstruction = model(x)
    with float32(x):
        reconstruction, x = reconstruction.float(), x.float()
        return F.mse_loss(reconstruction, x) + ssim_weight * (1 - ssim(reconstruction, x, 1.0)).mean()


class FusionNet(EncoderDecoder):
    """End-to-end fusion: N×2×H×W (infrared, visible Y) in [0, 1] → fused N×1×H×W in (0, 1) (sigmoid)."""

    def __init__(self, width: int = 16):
        super().__init__(2, width)

    def forward(self, pair):
        return torch.sigmoid(super().forward(pair))


def gradient(x: torch.Tensor) -> torch.Tensor:
    """|∇x| ≈ |Sobel_x| + |Sobel_y| (N×1×H×W), the texture measure of the gradient loss."""
    gx, gy = sobel(x)
    return gx.abs() + gy.abs()


def fusion_loss_terms(fused: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor) -> dict[str, torch.Tensor]:
    """The three unsupervised terms (scalars), each with a target made from the sources alone:

    intensity = ‖F − max(IR, VIS)‖₁           keep the brighter (hotter or lit) pixel: salient targets;
    gradient  = ‖|∇F| − max(|∇IR|, |∇VIS|)‖₁   keep the stronger edge of the two: texture and detail;
    ssim      = 1 − ½(SSIM(F, IR) + SSIM(F, VIS))   keep local structure of both.

    Computed in float32 whatever the autocast around it (see `float32`).
    """
    with float32(fused):
        fused, ir, vis = fused.float(), ir.float(), vis.float()
        return {"intensity": (fused - torch.maximum(ir, vis)).abs().mean(),
                "gradient": (gradient(fused) - torch.maximum(gradient(ir), gradient(vis))).abs().mean(),
                "ssim": 1 - (ssim(fused, ir, 1.0) + ssim(fused, vis, 1.0)).mean() / 2}


class FusionLoss:
    """``loss_fn(model, batch)`` for `utils.training.fit`: Σ weight · term over `fusion_loss_terms`, where
    ``batch[0]`` is N×2×H×W (infrared, visible). A weight of 0 drops its term (the ablation)."""

    def __init__(self, intensity: float = 1.0, gradient: float = 1.0, ssim: float = 1.0):
        self.weights = {"intensity": intensity, "gradient": gradient, "ssim": ssim}
        if min(self.weights.values()) < 0 or max(self.weights.values()) == 0:
            raise ValueError(f"loss weights must be ≥ 0 and not all 0, got {self.weights}")
        # fit keys its checkpoints by this name, so two weightings never share a checkpoint
        self.__name__ = "fusion_loss(" + ", ".join(f"{k}={v:g}" for k, v in self.weights.items()) + ")"

    def __call__(self, model: nn.Module, batch) -> torch.Tensor:
        pair = batch[0]
        terms = fusion_loss_terms(model(pair), pair[:, :1], pair[:, 1:])
        return sum(weight * terms[name] for name, weight in self.weights.items() if weight)


def fusiongan_content_loss(fused: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor, xi: float = 5.0) -> torch.Tensor:
    """FusionGAN's generator content loss (Ma et al., 2019): mean (F − IR)² + ξ · mean (∇²F − ∇²VIS)², with the
    Laplacian as ∇ (as in the paper's code): infrared intensities, visible gradients (N×1×H×W in [0, 1])."""
    return ((fused - ir) ** 2).mean() + xi * ((laplacian(fused) - laplacian(vis)) ** 2).mean()
