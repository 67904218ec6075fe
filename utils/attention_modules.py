"""Attention modules for CNNs — SE, ECA, CBAM — Chapter 1's ResNet with them inside, and what they look at.

Introduced in Chapter 2 (02_attention_modules). Each module maps a ``B×C×H×W`` feature map to a tensor
of the same shape by multiplying it with a *gate* in (0, 1):

- `SE` (Hu et al., 2018): squeeze (global average pool) → excitation (bottleneck MLP of 1×1
  convolutions, sigmoid) → scale. One weight per channel, ``B×C×1×1``.
- `ECA` (Wang et al., 2020): the same squeeze, then a 1-D convolution across neighbouring channels
  with a kernel size that grows with ``log2(C)`` — no dimensionality reduction, a handful of weights.
- `CBAM` (Woo et al., 2018): a `ChannelGate` (average- *and* max-pooled descriptors through one shared
  MLP) followed by a `SpatialGate` (a k×k convolution over the channel-wise average and max maps,
  ``B×1×H×W``).

Every gate module keeps its last gate in ``.gate`` (detached) so that chapters can look at it. The views at the end:
`grad_cam` wraps torchcam's `GradCAM`, the maintained implementation, and the two explorers follow the course's
pattern (`utils.widgets.Explorer`): a plain render function behind an image/layer slider and dropdowns.
`grad_cams` and `grad_cam_explorer` do the same for any classifier of the torchvision kind on photographs (Chapter 2's
last section: ResNet-18/50). `attention_resnet` builds the ResNet of Chapter 1 with a module applied to each block's residual branch
before the addition, where the SE paper puts it; `utils.measuring` measures what each costs.
"""

from __future__ import annotations

import math
import re
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import CLASSES
from .plotting import colorbar, picture
from .models.resnet import BasicBlock, ResNet
from .widgets import Explorer, dropdown, slider


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


# ------------------------------------------------------------------------------------- what the gates look at
def grad_cam(model: torch.nn.Module, images: torch.Tensor, target_layer: str,
             class_idx: torch.Tensor | None = None) -> torch.Tensor:
    """Grad-CAM maps of ``images`` (N×C×H×W) for ``class_idx`` (N; default: the predicted classes).

    ``target_layer`` names a module of ``model`` (see ``model.named_modules()``), e.g. ``"stages"``.
    Returns N×H×W maps in [0, 1] on the CPU, upsampled bilinearly to the input size.
    """
    return grad_cams(model, images, [target_layer], class_idx)[target_layer]


def grad_cams(model: torch.nn.Module, images: torch.Tensor, layers: list[str],
              class_idx: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Grad-CAM of ``images`` (N×C×H×W, any size and channel count) at each of ``layers`` from one forward and one
    backward pass: layer name → N×H×W maps in [0, 1] on the CPU, upsampled bilinearly to the input size.
    ``class_idx`` (N) defaults to the predicted classes."""
    if not torch.is_tensor(images) or images.ndim != 4:
        raise ValueError(f"images must be N×C×H×W, got "
                         f"{tuple(images.shape) if torch.is_tensor(images) else type(images).__name__}: "
                         "for one image pass image[None]")
    layers = list(layers)
    names = dict(model.named_modules())
    missing = [name for name in layers if name not in names]
    if not layers or missing:
        raise ValueError(f"no layer(s) {missing or layers!r} in the model; pick from model.named_modules(), "
                         f"e.g. {', '.join(list(names)[1:6])}")
    from torchcam.methods import GradCAM

    model.eval()
    dev = next(model.parameters()).device
    images = images.to(dev)
    with GradCAM(model, layers, input_shape=tuple(images.shape[1:])) as extractor, torch.enable_grad():
        scores = model(images)
        targets = scores.argmax(1) if class_idx is None else torch.as_tensor(class_idx).to(dev)
        maps = extractor(targets.tolist(), scores)                               # one N×h×w per layer
    return {name: F.interpolate(cam[:, None].float(), size=images.shape[-2:], mode="bilinear",
                                align_corners=False)[:, 0].detach().cpu().clamp(0, 1)
            for name, cam in zip(layers, maps)}


def grad_cam_figure(image: torch.Tensor, cams: dict[str, torch.Tensor], title: str, caption: str = ""):
    """The image (C×H×W; grey or RGB) and each H×W Grad-CAM in ``cams`` (layer → map in [0, 1]) over it, one
    colour bar; ``title`` names the model and its weights, ``caption`` the class the maps explain."""
    if not cams:
        raise ValueError("cams is empty: pass {layer name: H×W map} from grad_cams")
    shown = picture(image)
    fig, axes = plt.subplots(1, 1 + len(cams), figsize=(2.5 * (1 + len(cams)) + 0.9, 3.0), layout="constrained")
    axes[0].imshow(shown, cmap="gray")
    axes[0].set_title(caption or "input", fontsize=9)
    axes[0].axis("off")
    for ax, (name, cam) in zip(axes[1:], cams.items()):
        if tuple(cam.shape) != tuple(shown.shape[:2]):
            raise ValueError(f"the Grad-CAM of {name!r} is {tuple(cam.shape)}, the image {tuple(shown.shape[:2])}: "
                             "compute the maps on this image")
        drawn = _overlay(ax, shown, cam.numpy(), f"Grad-CAM at {name}")
    colorbar(drawn, list(axes[1:]), "Grad-CAM, scaled to [0, 1]")
    fig.suptitle(title, fontsize=10)
    return fig


def grad_cam_explorer(model: torch.nn.Module, images: torch.Tensor, layers: list[str], title: str,
                      categories: list[str] | None = None, names: list[str] | None = None, top: int = 5) -> Explorer:
    """Pick an image and one of the model's ``top`` classes for it: Grad-CAM at each of ``layers`` (early → late).

    ``images`` N×C×H×W as the model expects them; ``categories`` names the model's classes (e.g. ImageNet's, from
    the weights' meta), ``names`` the images; ``title`` says which model and weights (every figure shows it)."""
    if not torch.is_tensor(images) or images.ndim != 4:
        raise ValueError("images must be N×C×H×W: for one image pass image[None]")
    names = list(names) if names is not None else [f"image {i}" for i in range(len(images))]
    if len(names) != len(images):
        raise ValueError(f"{len(names)} names for {len(images)} images: give one name per image")
    dev = next(model.parameters()).device
    with torch.no_grad():
        probabilities = model.eval()(images.to(dev)).softmax(1).cpu()
    best = probabilities.topk(min(top, probabilities.shape[1]), dim=1)
    label = lambda c: categories[c] if categories is not None and c < len(categories) else f"class {c}"  # noqa: E731

    def render(image: str, rank: int):
        if image not in names:
            raise ValueError(f"image must be one of {names}, not {image!r}")
        if not 0 <= rank < best.indices.shape[1]:
            raise ValueError(f"rank must be 0–{best.indices.shape[1] - 1}: the model's top classes for the image")
        index = names.index(image)
        chosen = int(best.indices[index, rank])
        cams = grad_cams(model, images[index:index + 1], layers, torch.tensor([chosen]))
        return grad_cam_figure(images[index], {k: v[0] for k, v in cams.items()}, title,
                               f"{image}: class {rank + 1} of the top {best.indices.shape[1]}\n{label(chosen)} "
                               f"(p = {float(best.values[index, rank]):.3f})")

    return Explorer(render, {"image": dropdown("image", names), "rank": slider("class rank", 0, best.indices.shape[1] - 1)},
                    title=f"Grad-CAM: {title}")


def block_label(name: str) -> str:
    """``"stages.2.0.attention.spatial_gate"`` → ``"stage 3, block 1"``; other names unchanged."""
    found = re.match(r"stages\.(\d+)\.(\d+)", name)
    return f"stage {int(found[1]) + 1}, block {int(found[2]) + 1}" if found else name


def _overlay(ax, image, heat, title, cmap="jet"):
    """``heat`` (in [0, 1]) over the grey ``image``; returns the heat layer, for a colourbar."""
    ax.imshow(image, cmap="gray")
    drawn = ax.imshow(heat, cmap=cmap, alpha=0.5, vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return drawn


def _rescale(heat: torch.Tensor) -> torch.Tensor:
    """Min–max scaling to [0, 1] (a flat map becomes 0.5) so weak and strong maps are both visible."""
    low, high = heat.min(), heat.max()
    return torch.full_like(heat, 0.5) if high - low < 1e-8 else (heat - low) / (high - low)


def spatial_attention_figure(image: torch.Tensor, gate: torch.Tensor, cams: dict[str, torch.Tensor],
                             title: str, layer_name: str):
    """Input | CBAM spatial gate (h×w, upsampled) over it | each Grad-CAM in ``cams`` over it."""
    size = image.shape[-2:]
    upsampled = F.interpolate(gate[None, None], size=size, mode="nearest")[0, 0]
    fig, axes = plt.subplots(1, 2 + len(cams), figsize=(2.4 * (2 + len(cams)) + 0.8, 2.9), layout="constrained")
    picture = image.squeeze().numpy()
    axes[0].imshow(picture, cmap="gray")
    axes[0].set_title(title, fontsize=9)
    axes[0].axis("off")
    drawn = _overlay(axes[1], picture, _rescale(upsampled).numpy(),
                     f"CBAM gate {layer_name}\n{tuple(gate.shape)}, σ in [{gate.min():.2f}, {gate.max():.2f}]")
    for ax, (name, cam) in zip(axes[2:], cams.items()):
        _overlay(ax, picture, cam.numpy(), f"Grad-CAM\n{name}")
    fig.colorbar(drawn, ax=axes[1:], shrink=0.8).set_label("each map scaled to [0, 1]\n(low → high)", fontsize=8)
    fig.suptitle("Where does the network look? CBAM spatial attention vs Grad-CAM", fontsize=10)
    return fig


def spatial_attention_explorer(images: torch.Tensor, labels: torch.Tensor, predictions: torch.Tensor,
                               spatial_gates: dict[str, torch.Tensor], cams: dict[str, torch.Tensor]) -> Explorer:
    """Pick an image and a block; see CBAM's spatial gate there beside Grad-CAM maps of the same image.

    ``spatial_gates``: block name → N×h×w (from `collect_gates(model, images, SpatialGate)`);
    ``cams``: model name → N×H×W (from `grad_cam`).
    """
    layers = list(spatial_gates)
    if not layers:
        raise ValueError("spatial_gates is empty: collect them from a model with CBAM or spatial-only blocks")

    def render(image: int, layer: int):
        if not 0 <= image < len(images) or not 0 <= layer < len(layers):
            raise ValueError(f"image must be in 0..{len(images) - 1} and layer in 0..{len(layers) - 1}")
        name = layers[layer]
        title = f"#{image}: {CLASSES[labels[image]]}\npredicted {CLASSES[predictions[image]]}"
        return spatial_attention_figure(images[image], spatial_gates[name][image],
                                        {k: v[image] for k, v in cams.items()}, title, block_label(name))

    return Explorer(render, {"image": slider("image", 0, len(images) - 1),
                             "layer": slider("block", 0, len(layers) - 1, len(layers) - 1)},
                    title="CBAM spatial attention and Grad-CAM")


def channel_weights_figure(class_gates: torch.Tensor, class_index: int, layer_name: str, model_name: str,
                           examples: torch.Tensor, example_cams: torch.Tensor):
    """Heat map of the mean channel gate per class (K×C), the chosen class's deviation from the average
    class, and Grad-CAM on a few images of that class."""
    deviation = class_gates[class_index] - class_gates.mean(0)
    fig = plt.figure(figsize=(11, 3.4), layout="constrained")
    grid = fig.add_gridspec(2, 2 + len(examples), width_ratios=[3, 3] + [1.5] * len(examples))
    heat = fig.add_subplot(grid[:, 0])
    image = heat.imshow(class_gates.numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=1)
    heat.axhline(class_index - 0.5, color="red")
    heat.axhline(class_index + 0.5, color="red")
    heat.set_yticks(range(len(class_gates)), [c.split("/")[0] for c in CLASSES[:len(class_gates)]], fontsize=7)
    heat.set_xlabel("channel")
    heat.set_title(f"{model_name} {layer_name}: mean gate per class", fontsize=9)
    fig.colorbar(image, ax=heat, fraction=0.05).set_label("mean gate σ", fontsize=8)
    bars = fig.add_subplot(grid[:, 1])
    order = deviation.argsort(descending=True)
    bars.bar(range(len(order)), deviation[order].numpy(),
             color=np.where(deviation[order].numpy() > 0, "tab:green", "tab:red"))
    bars.set_title(f"{CLASSES[class_index]}: gate − mean over classes\n(channels sorted; left = switched on)",
                   fontsize=9)
    bars.set(xlabel="channel (sorted)", ylabel="gate − mean over classes")
    cam_axes = [fig.add_subplot(grid[:, 2 + i]) for i in range(len(examples))]
    for i, (ax, example, cam) in enumerate(zip(cam_axes, examples, example_cams)):
        drawn = _overlay(ax, example.squeeze().numpy(), cam.numpy(), "Grad-CAM" if i == 0 else "")
    if cam_axes:
        fig.colorbar(drawn, ax=cam_axes, shrink=0.6, location="bottom").set_label("Grad-CAM, scaled to [0, 1]",
                                                                                  fontsize=8)
    return fig


def channel_weights_explorer(class_gates: dict[str, dict[str, torch.Tensor]], images: torch.Tensor,
                             labels: torch.Tensor, cams: dict[str, torch.Tensor], per_class: int = 2) -> Explorer:
    """Pick a model (SE, ECA…), a block and a class: which channels that class switches on, and Grad-CAM.

    ``class_gates``: model name → block name → K×C (from `class_mean_gates`); ``cams``: model name → N×H×W
    Grad-CAM maps of ``images`` (N×1×H×W) under that model.
    """
    models = list(class_gates)
    if not models:
        raise ValueError("class_gates is empty: compute it with class_mean_gates for at least one model")
    layer_count = len(class_gates[models[0]])

    def render(model: str, layer: int, label: int):
        if model not in class_gates:
            raise ValueError(f"model must be one of {models}, not {model!r}")
        if not 0 <= layer < len(class_gates[model]):
            raise ValueError(f"layer must be in 0..{len(class_gates[model]) - 1} for {model}, not {layer}")
        if not 0 <= label < len(CLASSES):
            raise ValueError(f"label must be a class index in 0..{len(CLASSES) - 1}, not {label}")
        name = list(class_gates[model])[layer]
        chosen = torch.nonzero(labels == label).flatten()[:per_class]
        if len(chosen) == 0:
            raise ValueError(f"no image of class {CLASSES[label]} in the sample: pass a bigger one")
        return channel_weights_figure(class_gates[model][name], label, block_label(name), model, images[chosen],
                                      cams[model][chosen])

    return Explorer(render, {"model": dropdown("model", models),
                             "layer": slider("block", 0, layer_count - 1, layer_count - 1),
                             "label": dropdown("class", [(c, i) for i, c in enumerate(CLASSES)])},
                    title="Channel weights per class (SE / ECA) and Grad-CAM")
