"""Looking inside a CNN: feature maps, the input window of a unit, and the two explorers of Chapter 1d.

Introduced in Chapter 1 (01d). The compute and render functions are plain and unit-tested; the explorers
are thin `utils.widgets.Explorer` wrappers around them. They take any CNN of the torchvision kind (Chapter 1d's last
section runs them on torchvision's ResNet-18/50 and VGG-11 over photographs): any input size, any channel count
(one channel is drawn grey, three as RGB), and a ``title`` that names the weights.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle
from torch import nn

from .plotting import colorbar, picture
from .receptive_field import LayerRF, effective_receptive_field, receptive_field
from .widgets import Explorer, dropdown, slider

_MAP_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def map_layers(model: nn.Module, input_shape=(1, 28, 28)) -> dict[str, LayerRF]:
    """Convolution and pooling layers in execution order, each with its receptive-field record (``input_shape``:
    one input's C×H×W, any size)."""
    modules = dict(model.named_modules())
    layers = {}
    for record in receptive_field(model, input_shape):
        if isinstance(modules.get(record.name), _MAP_LAYERS):
            layers.setdefault(record.name, record)
    return layers


@torch.no_grad()
def feature_maps(model: nn.Module, image: torch.Tensor, layers) -> dict[str, torch.Tensor]:
    """Outputs of the named ``layers`` for one ``image`` (C×H×W float): name → C_l×H_l×W_l tensor on the CPU."""
    if not torch.is_tensor(image) or image.ndim != 3 or not image.is_floating_point():
        raise ValueError(f"feature_maps takes one C×H×W float image (standardised), got "
                         f"{(image.dtype, tuple(image.shape)) if torch.is_tensor(image) else type(image).__name__}: "
                         "for a batch pass images[i]; for uint8 pass utils.data.standardize(images)[i]")
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise ValueError(f"no layer named {missing} in the model; available: {list(map_layers(model))}")
    captured, handles = {}, []
    for name in layers:
        def keep(module, args, output, name=name):  # returns None: a hook's return value would replace the output
            captured.setdefault(name, output[0].float().cpu().clone())

        handles.append(modules[name].register_forward_hook(keep))
    model.eval()
    try:
        param = next(model.parameters())
        model(image[None].to(param.device, param.dtype))
    finally:
        for handle in handles:
            handle.remove()
    return captured


def unit_window(record: LayerRF, row: int, col: int) -> tuple[float, float, float, float]:
    """The input window ``(top, left, bottom, right)`` in pixel coordinates seen by unit (row, col) of a layer.

    Pixel i covers [i, i + 1); the window is centred at ``start + index·jump`` and is ``rf`` pixels wide (it may
    extend past the image, into the padding).
    """
    cy, cx = record.start + row * record.jump, record.start + col * record.jump
    half = record.rf / 2
    return cy - half, cx - half, cy + half, cx + half


def _check_range(name: str, value: int, size: int, what: str) -> None:
    if not 0 <= value < size:
        raise ValueError(f"{what} {value} is outside layer {name!r} (size {size}): choose 0–{size - 1}")


def render_feature_maps(model, images, layers: dict[str, LayerRF], image_index: int, layer: str, channel: int,
                        unit_row: int, unit_col: int, channels_shown: int = 8, title: str = ""):
    """Input image (images N×C×H×W) with the selected unit's receptive field, and ``channels_shown`` maps of ``layer``
    (two rows, one colour scale for all of them, so channels can be compared); ``title`` heads the figure (say which
    model and weights)."""
    _check_range("images", image_index, len(images), "image")
    if layer not in layers:
        raise ValueError(f"unknown layer {layer!r}: choose one of {list(layers)}")
    image = images[image_index]
    maps = feature_maps(model, image, [layer])[layer].numpy()
    _check_range(layer, channel, maps.shape[0], "channel")
    _check_range(layer, unit_row, maps.shape[1], "unit row")
    _check_range(layer, unit_col, maps.shape[2], "unit column")
    shown = list(range(channel, min(channel + channels_shown, maps.shape[0])))
    columns = -(-channels_shown // 2)
    fig = plt.figure(figsize=(9.4, 3.9), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1, 2.1])
    ax_input = left.subplots()
    ax_input.imshow(picture(image), cmap="gray")
    top, left_edge, bottom, right_edge = unit_window(layers[layer], unit_row, unit_col)
    ax_input.add_patch(Rectangle((left_edge - 0.5, top - 0.5), right_edge - left_edge, bottom - top, fill=False,
                                 color="red", lw=1.5))
    height, width = image.shape[-2:]  # widen the view so a window reaching into the padding stays visible
    ax_input.set_xlim(min(left_edge, 0) - 0.5, max(right_edge, width) - 0.5)
    ax_input.set_ylim(max(bottom, height) - 0.5, min(top, 0) - 0.5)
    ax_input.set_title(f"input; red: the {layers[layer].rf:.0f}-px receptive\nfield of unit ({unit_row}, {unit_col})",
                       fontsize=9)
    ax_input.axis("off")
    axes = right.subplots(2, columns)
    low, high = maps[shown].min(), maps[shown].max()
    for ax in axes.flat:
        ax.axis("off")
    for ax, c in zip(axes.flat, shown):
        drawn = ax.imshow(maps[c], cmap="magma", vmin=low, vmax=high)
        ax.scatter([unit_col], [unit_row], s=14, c="cyan", marker="s")
        ax.set_title(f"channel {c}", fontsize=9)
    colorbar(drawn, axes, "activation (one scale for all)")
    right.suptitle(f"{layer}: {maps.shape[0]} channels of {maps.shape[1]}×{maps.shape[2]} (cyan: the unit)",
                   fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


EDGE_DETECTORS = {  # Sobel kernels in four orientations: what "an oriented edge detector" means for a 3×3
    "vertical edge": torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "horizontal edge": torch.tensor([[-1.0, -2, -1], [0, 0, 0], [1, 2, 1]]),
    "diagonal edge ↘": torch.tensor([[-2.0, -1, 0], [-1, 0, 1], [0, 1, 2]]),
    "diagonal edge ↙": torch.tensor([[0.0, -1, -2], [1, 0, -1], [2, 1, 0]]),
}


def edge_match(kernels: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """For each 3×3 kernel (K×3×3): its largest |cosine similarity| with a Sobel kernel of `EDGE_DETECTORS` (the
    kernel's mean removed first: a brightness offset is not an edge) and that detector's name.

    1 is a perfect (possibly sign-flipped) oriented edge detector; random 3×3 kernels score about 0.5.
    """
    if kernels.ndim != 3 or kernels.shape[1:] != (3, 3):
        raise ValueError(f"kernels must be K×3×3, got {tuple(kernels.shape)}: pass conv.weight[:, 0]")
    flat = kernels.detach().float().cpu().flatten(1)
    flat = flat - flat.mean(1, keepdim=True)
    detectors = torch.stack([d.flatten() for d in EDGE_DETECTORS.values()])
    cosine = (flat @ detectors.T).abs() / (flat.norm(dim=1, keepdim=True) * detectors.norm(dim=1) + 1e-12)
    best, index = cosine.max(1)
    return best, [list(EDGE_DETECTORS)[i] for i in index]


def kernel_figure(kernels: torch.Tensor, title: str, columns: int = 8):
    """3×3 kernels (K×3×3) on one symmetric colour scale, apart from each other, each titled with its best
    `edge_match` score."""
    match, _ = edge_match(kernels)
    rows = -(-len(kernels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.15 * columns + 0.9, 1.25 * rows + 0.4), layout="constrained",
                             squeeze=False)
    limit = kernels.abs().max().item() or 1.0
    for ax in axes.flat:
        ax.axis("off")
    for ax, kernel, score in zip(axes.flat, kernels.detach().cpu(), match):
        drawn = ax.imshow(kernel.numpy(), cmap="coolwarm", vmin=-limit, vmax=limit)
        ax.set_title(f"edge {score:.2f}", fontsize=8)
    colorbar(drawn, axes, "weight")
    fig.suptitle(title, fontsize=10)
    return fig


def feature_map_explorer(model, images, input_shape=None, title: str = "") -> Explorer:
    """Choose an image, a layer, channels and a unit; the unit's receptive field is drawn on the input.

    ``images``: N×C×H×W, standardised as the model expects; ``input_shape`` defaults to one image's C×H×W;
    ``title`` heads every figure (e.g. "ResNet-18, untrained weights")."""
    if not torch.is_tensor(images) or images.ndim != 4:
        raise ValueError(f"images must be an N×C×H×W tensor, got "
                         f"{tuple(images.shape) if torch.is_tensor(images) else type(images).__name__}: "
                         "for one image pass image[None]")
    input_shape = tuple(images.shape[1:]) if input_shape is None else tuple(input_shape)
    layers = map_layers(model, input_shape)
    names = list(layers)
    probe = feature_maps(model, images[0], names)
    controls = {
        "image_index": slider("image", 0, len(images) - 1),
        "layer": dropdown("layer", names, names[min(2, len(names) - 1)]),  # early: a window of a few pixels
        "channel": slider("first channel", 0, max(m.shape[0] for m in probe.values()) - 1),
        "unit_row": slider("unit row", 0, input_shape[1] - 1, 3),
        "unit_col": slider("unit column", 0, input_shape[2] - 1, 3),
    }
    render = lambda **values: render_feature_maps(model, images, layers, **values, title=title)
    explorer = Explorer(render, controls, f"Feature-map explorer{': ' + title if title else ''}")

    def fit_ranges(change):  # keep channel and unit sliders inside the chosen layer's map
        c, h, w = probe[change["new"]].shape
        for name, size in (("channel", c), ("unit_row", h), ("unit_col", w)):
            controls[name].value = min(controls[name].value, size - 1)
            controls[name].max = size - 1

    controls["layer"].observe(fit_ranges, names="value")
    fit_ranges({"new": controls["layer"].value})
    return explorer


def erf_radius(erf: np.ndarray, mass: float = 0.95) -> float:
    """Side of the smallest centred square holding ``mass`` of the effective receptive field's total."""
    h, w = erf.shape
    total = erf.sum()
    for half in range(0, max(h, w)):
        window = erf[max(h // 2 - half, 0): h // 2 + half + 1, max(w // 2 - half, 0): w // 2 + half + 1]
        if window.sum() >= mass * total:
            return 2 * half + 1
    return float(max(h, w))


def render_receptive_fields(records: dict[str, LayerRF], erfs: dict[str, dict[str, np.ndarray]], layer: str,
                            title: str = ""):
    """Theoretical RF and jump per layer (the chosen one marked) beside the effective RF maps of ``layer``.

    ``erfs`` maps a label (e.g. "untrained", "trained") to {layer name: H×W effective receptive field}; it may hold
    only some of the layers (a big network's). ``title`` heads the figure.
    """
    if layer not in records:
        raise ValueError(f"unknown layer {layer!r}: choose one of {list(records)}")
    missing = [label for label, maps in erfs.items() if layer not in maps]
    if missing:
        raise ValueError(f"no effective receptive field of {layer!r} for {missing}: choose one of "
                         f"{[n for n in records if all(n in maps for maps in erfs.values())]}")
    names = list(records)
    index = names.index(layer)
    fig, axes = plt.subplots(1, 1 + len(erfs), figsize=(4.4 + 2.9 * len(erfs), 3.4), layout="constrained",
                             gridspec_kw={"width_ratios": [1.6] + [1] * len(erfs)})
    axes[0].plot([records[n].rf for n in names], marker=".", label="receptive field")
    axes[0].plot([records[n].jump for n in names], marker=".", label="jump")
    axes[0].axvline(index, color="red", lw=1)
    axes[0].set(xlabel="layer (execution order)", ylabel="pixels")
    axes[0].set_title(f"{layer}: RF {records[layer].rf:.0f}, jump {records[layer].jump:.0f}, "
                      f"start {records[layer].start:.1f}", fontsize=9)
    axes[0].legend(fontsize=8)
    for ax, (label, maps) in zip(axes[1:], erfs.items()):
        erf = maps[layer]
        h, w = erf.shape
        drawn = ax.imshow(erf / (erf.max() or 1), cmap="viridis", vmin=0, vmax=1)
        top, left, bottom, right = unit_window(records[layer], *centre_unit(records[layer], h, w))
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, color="red", lw=1))
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_title(f"effective RF, {label}:\n95% of it in {erf_radius(erf):.0f} px", fontsize=9)
        ax.axis("off")
    colorbar(drawn, list(axes[1:]), "|∂ centre unit / ∂ pixel| (÷ max)")
    fig.suptitle((title + "\n" if title else "") + "red square: the centre unit's theoretical receptive field",
                 fontsize=9)
    return fig


def centre_unit(record: LayerRF, height: int, width: int) -> tuple[int, int]:
    """Index (row, col) of the centre unit of a layer's map for a height×width input.

    A side has ⌊(size − 2·start)/jump⌋ + 1 units (the centres that fall inside the image), so the map size
    follows from the receptive-field record alone.
    """
    rows = int((height - 2 * record.start) // record.jump) + 1 if record.jump else 1
    cols = int((width - 2 * record.start) // record.jump) + 1 if record.jump else 1
    return max(rows, 1) // 2, max(cols, 1) // 2


def inside_window(record: LayerRF, height: int, width: int) -> np.ndarray:
    """Boolean height×width mask of the input pixels inside the centre unit's theoretical window."""
    top, left, bottom, right = unit_window(record, *centre_unit(record, height, width))
    mask = np.zeros((height, width), dtype=bool)
    mask[max(int(np.floor(top)), 0):max(int(np.ceil(bottom)), 0),
         max(int(np.floor(left)), 0):max(int(np.ceil(right)), 0)] = True
    return mask


def effective_fields(models: dict[str, nn.Module], layers, inputs: torch.Tensor) -> dict[str, dict[str, np.ndarray]]:
    """{label: {layer: effective receptive field}} for each model and layer, averaged over ``inputs``."""
    return {label: {name: effective_receptive_field(model, tuple(inputs.shape[1:]), inputs, layer=name)
                    for name in layers} for label, model in models.items()}


def receptive_field_explorer(records: dict[str, LayerRF], erfs: dict[str, dict[str, np.ndarray]],
                             title: str = "") -> Explorer:
    """Choose a layer: its theoretical RF/jump in context and its effective RF for each model (the dropdown lists
    the layers every entry of ``erfs`` has)."""
    names = [n for n in records if all(n in maps for maps in erfs.values())]
    if not names:
        raise ValueError("erfs holds no layer of records: compute them with effective_fields(models, layers, inputs)")
    controls = {"layer": dropdown("layer", names, names[min(2, len(names) - 1)])}
    return Explorer(lambda layer: render_receptive_fields(records, erfs, layer, title), controls,
                    f"Receptive-field explorer{': ' + title if title else ''}")
