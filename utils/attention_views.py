"""What attention modules look at: Grad-CAM (from torchcam) and the explorers of Chapter 2.

Introduced in Chapter 2 (02_attention_modules). `grad_cam` wraps torchcam's `GradCAM`, the maintained
implementation; the explorers follow the course's pattern (`utils.widgets.Explorer`): a plain render
function behind an image/layer slider and dropdowns.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torchcam.methods import GradCAM

from .data import CLASSES
from .widgets import Explorer, dropdown, slider


def grad_cam(model: torch.nn.Module, images: torch.Tensor, target_layer: str,
             class_idx: torch.Tensor | None = None) -> torch.Tensor:
    """Grad-CAM maps of ``images`` (N×C×H×W) for ``class_idx`` (N; default: the predicted classes).

    ``target_layer`` names a module of ``model`` (see ``model.named_modules()``), e.g. ``"stages"``.
    Returns N×H×W maps in [0, 1] on the CPU, upsampled bilinearly to the input size.
    """
    names = dict(model.named_modules())
    if target_layer not in names:
        raise ValueError(f"no layer {target_layer!r} in the model; pick one of model.named_modules(), "
                         f"e.g. {', '.join(list(names)[1:6])}")
    model.eval()
    dev = next(model.parameters()).device
    images = images.to(dev)
    with GradCAM(model, target_layer, input_shape=tuple(images.shape[1:])) as extractor, torch.enable_grad():
        scores = model(images)
        targets = scores.argmax(1) if class_idx is None else class_idx.to(dev)
        cam = extractor(targets.tolist(), scores)[0]                            # N×h×w, each scaled to [0, 1]
    cam = F.interpolate(cam[:, None].float(), size=images.shape[-2:], mode="bilinear", align_corners=False)
    return cam[:, 0].detach().cpu().clamp(0, 1)


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
