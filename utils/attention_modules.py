"""Attention modules for CNNs — SE, ECA, CBAM — and Chapter 1's ResNet with them inside.

Introduced in Chapter 2 (02_attention_modules). Each module maps a ``B×C×H×W`` feature map to a tensor
of the same shape by multiplying it with a *gate* in (0, 1):

- `SE` (Hu et al., 2018): squeeze (global average pool) → excitation (bottleneck MLP of 1×1
  convolutions, sigmoid) → scale. One weight per channel, ``B×C×1×1``.
- `ECA` (Wang et al., 2020): the same squeeze, then a 1-D convolution across neighbouring channels
  with a kernel size that grows with ``log2(C)`` — no dimensionality reduction, a handful of weights.
- `CBAM` (Woo et al., 2018): a `ChannelGate` (average- *and* max-pooled descriptors through one shared
  MLP) followed by a `SpatialGate` (a k×k convolution over the channel-wise average and max maps,
  ``B×1×H×W``).

Every gate module keeps its last gate in ``.gate`` (detached) so that chapters can look at it.
`attention_resnet` builds the ResNet of Chapter 1 with a module applied to each block's residual branch
before the addition, where the SE paper puts it; `utils.measuring` measures what each costs.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .models.resnet import BasicBlock, ResNet


def hidden_channels(channels: int, reduction: int, minimum: int = 8) -> int:
    """Width of the excitation bottleneck: ``channels // reduction``, but never below ``minimum``.

    The floor (as in timm) keeps narrow early stages from squeezing their descriptor through 1 or 2 units.
    """
    if channels < 1 or reduction < 1:
        raise ValueError(f"channels and reduction must be positive integers, got {channels} and {reduction}")
    return min(channels, max(channels // reduction, minimum))


class SE(nn.Module):
    """Squeeze-and-excitation: ``x · σ(W₂ ReLU(W₁ avgpool(x)))`` with ``W₁: C → C/r``, ``W₂: C/r → C``.

    The two fully connected layers are 1×1 convolutions on the ``B×C×1×1`` descriptor — the same
    arithmetic as `nn.Linear`, without flattening and reshaping (and the layout torchvision's
    `SqueezeExcitation` uses).
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = hidden_channels(channels, reduction)
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)
        self.gate = None

    def forward(self, x):
        gate = torch.sigmoid(self.expand(F.relu(self.reduce(self.squeeze(x)))))  # B×C×1×1
        self.gate = gate.detach()
        return x * gate


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """ECA's adaptive kernel: the odd integer nearest to ``log2(C)/γ + b/γ`` (3 for 64 channels, 5 for 256)."""
    if channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels}")
    size = int(abs(math.log2(channels) / gamma + b / gamma))
    return size if size % 2 else size + 1


class ECA(nn.Module):
    """Efficient channel attention: ``x · σ(conv1d_k(avgpool(x)))`` along the channel axis.

    Each channel's weight depends on its k neighbours only, through k shared weights: SE without the
    bottleneck (no dimensionality reduction) and with a banded, weight-shared layer instead of a dense one.
    """

    def __init__(self, channels: int, gamma: int = 2, b: int = 1):
        super().__init__()
        k = eca_kernel_size(channels, gamma, b)
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)
        self.gate = None

    def forward(self, x):
        descriptor = self.squeeze(x).flatten(1).unsqueeze(1)                 # B×1×C: channels as a sequence
        gate = torch.sigmoid(self.conv(descriptor)).transpose(1, 2)[..., None]  # B×C×1×1
        self.gate = gate.detach()
        return x * gate


class ChannelGate(nn.Module):
    """CBAM's channel attention: ``σ(MLP(avgpool(x)) + MLP(maxpool(x)))``, one MLP shared by both."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = hidden_channels(channels, reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))
        self.gate = None

    def forward(self, x):
        average, maximum = F.adaptive_avg_pool2d(x, 1), F.adaptive_max_pool2d(x, 1)
        gate = torch.sigmoid(self.mlp(average) + self.mlp(maximum))        # B×C×1×1
        self.gate = gate.detach()
        return x * gate


class SpatialGate(nn.Module):
    """CBAM's spatial attention: ``σ(BN(conv_k×k([mean_c(x), max_c(x)])))``, one weight per position."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer (to keep H×W), got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)
        self.gate = None

    def forward(self, x):
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)  # B×2×H×W
        gate = torch.sigmoid(self.bn(self.conv(pooled)))                              # B×1×H×W
        self.gate = gate.detach()
        return x * gate


class CBAM(nn.Module):
    """Convolutional block attention: `ChannelGate` then `SpatialGate` (either can be switched off)."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, *,
                 channel: bool = True, spatial: bool = True):
        super().__init__()
        if not (channel or spatial):
            raise ValueError("CBAM needs at least one of channel=True or spatial=True; use nn.Identity for neither")
        self.channel_gate = ChannelGate(channels, reduction) if channel else nn.Identity()
        self.spatial_gate = SpatialGate(kernel_size) if spatial else nn.Identity()

    def forward(self, x):
        return self.spatial_gate(self.channel_gate(x))


# name -> constructor taking the block's channel count; "plain" is Chapter 1's BasicBlock unchanged.
ATTENTIONS = {
    "plain": None,
    "SE": SE,
    "ECA": ECA,
    "CBAM": CBAM,
    "channel-only": partial(CBAM, spatial=False),
    "spatial-only": partial(CBAM, channel=False),
}


class AttentionBlock(BasicBlock):
    """A `BasicBlock` whose residual branch is reweighted by ``make_attention(channels)`` before the addition.

    Gating the branch, not the sum, leaves the identity path untouched: a gate near 0 turns the block
    off instead of blocking the signal, so deep stacks still train.
    """

    make_attention = None

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__(in_channels, channels, stride)
        self.attention = type(self).make_attention(channels)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.attention(self.bn2(self.conv2(out)))
        return self.relu(out + self.shortcut(x))


def block_with(attention: str) -> type[BasicBlock]:
    """The ResNet block class for ``attention`` (a key of `ATTENTIONS`), to pass as ``ResNet(block=...)``."""
    if attention not in ATTENTIONS:
        raise ValueError(f"unknown attention {attention!r}; choose one of {', '.join(ATTENTIONS)}")
    make = ATTENTIONS[attention]
    if make is None:
        return BasicBlock
    name = attention.title().replace("-", "") + "Block"
    return type(name, (AttentionBlock,), {"make_attention": staticmethod(make)})


def attention_resnet(attention: str, num_classes: int = 10, in_channels: int = 1, width: int = 32,
                     blocks=(2, 2, 2)) -> ResNet:
    """Chapter 1's `ResNet` with the ``attention`` module in every block."""
    return ResNet(num_classes, in_channels, width, blocks, block=block_with(attention))


def gate_modules(model: nn.Module, kind: type[nn.Module]) -> dict[str, nn.Module]:
    """The model's modules of class ``kind`` (e.g. `SpatialGate`, `SE`) by qualified name, in forward order."""
    return {name: module for name, module in model.named_modules() if type(module) is kind}


@torch.no_grad()
def collect_gates(model: nn.Module, images: torch.Tensor, kind: type[nn.Module]) -> dict[str, torch.Tensor]:
    """Run ``model`` (eval mode) on ``images`` and return each ``kind`` module's gate, on the CPU.

    Channel gates come back ``N×C``, spatial gates ``N×H×W``.
    """
    modules = gate_modules(model, kind)
    if not modules:
        raise ValueError(f"the model has no {kind.__name__} modules; build it with attention_resnet(...)")
    model.eval()
    dev = next(model.parameters()).device
    model(images.to(dev))
    return {name: module.gate[:, 0].float().cpu() if kind is SpatialGate else module.gate.float().cpu().flatten(1)
            for name, module in modules.items()}


@torch.no_grad()
def class_mean_gates(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, kind: type[nn.Module],
                     num_classes: int = 10) -> dict[str, torch.Tensor]:
    """Per layer, the channel gate averaged over the images of each class: ``num_classes×C``."""
    gates = collect_gates(model, images, kind)
    missing = [c for c in range(num_classes) if not (labels == c).any()]
    if missing:
        raise ValueError(f"no images of class(es) {missing}: pass a sample that holds every class")
    one_hot = F.one_hot(labels.cpu(), num_classes).float()                    # N×K
    return {name: (one_hot.T @ gate) / one_hot.sum(0)[:, None] for name, gate in gates.items()}
