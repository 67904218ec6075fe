"""Architecture diagrams drawn from the models themselves: a forward pass with hooks records every block's output.

Introduced in Chapter 1 (01b) and used for the Transformer (03a), Swin's windows (03b), U-Net and DeepLab (05).
`trace_blocks` runs one forward pass and records, in execution order, each call of a *block*: a module held by
the model or by a plain `nn.Sequential`/`nn.ModuleList` (those are opened), skipping calls that keep the shape
and hold no weight matrix or kernel (activations, normalisation, dropout). `architecture_figure` draws the
blocks top to bottom as boxes, shifted right by how far the block has downsampled its input: a classifier is a
staircase, an encoder–decoder a U.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyBboxPatch
from torch import nn

from .measuring import count_parameters

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_COLOURS = {"conv": "#cfe2f3", "pool": "#fce5cd", "linear": "#d9ead3", "attention": "#ead1dc", "block": "#d9d2e9",
            "other": "#eeeeee"}


@dataclass(frozen=True)
class Block:
    name: str            # the module's path in the model, e.g. "stages.1.0"
    kind: str            # a short description, e.g. "Conv2d 5×5 /2" or "BasicBlock"
    shape: tuple         # output shape without the batch dimension
    params: int          # parameters of the module (counted once per call)
    colour: str          # a key of _COLOURS


def _describe(module: nn.Module) -> tuple[str, str]:
    name = type(module).__name__
    if isinstance(module, nn.Conv2d):
        k, s = module.kernel_size, module.stride[0]
        dilation = f" dil {module.dilation[0]}" if module.dilation[0] > 1 else ""
        return f"{name} {k[0]}×{k[1]}" + (f" /{s}" if s > 1 else "") + dilation, "conv"
    if isinstance(module, nn.ConvTranspose2d):
        return f"{name} ×{module.stride[0]}", "conv"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return name, "pool"
    if isinstance(module, nn.Linear):
        return name, "linear"
    windows = [f"{attribute.split('_')[0]} {getattr(module, attribute)}" for attribute in ("window_size", "shift_size")
               if isinstance(getattr(module, attribute, None), int)]  # a Swin block: W-MSA (shift 0) or SW-MSA
    if windows:
        return f"{name} ({', '.join(windows)})", "attention"
    if "attention" in name.lower() or "encoder" in name.lower() or "decoder" in name.lower():
        return name, "attention"
    has_kernel = any(p.dim() >= 2 for p in module.parameters())
    return name, "block" if has_kernel else "other"


def _blocks(model: nn.Module):
    """(path, module) for every block: children of the model and of plain containers, containers opened."""
    def walk(module, prefix):
        for name, child in module.named_children():
            path = f"{prefix}{name}"
            if type(child) in _CONTAINERS:
                yield from walk(child, path + ".")
            else:
                yield path, child
    return list(walk(model, ""))


def _shape(output) -> tuple | None:
    if isinstance(output, torch.Tensor):
        return tuple(output.shape[1:])
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return tuple(output[0].shape[1:])
    return None


@torch.no_grad()
def trace_blocks(model: nn.Module, *inputs: torch.Tensor) -> list[Block]:
    """The blocks ``model(*inputs)`` runs, in execution order, each with its output shape (batch dropped)."""
    if not inputs:
        raise ValueError("give the model's example input(s), e.g. trace_blocks(model, torch.zeros(1, 1, 28, 28))")
    calls, handles = [], []
    for path, module in _blocks(model):
        def record(module, args, output, path=path):
            before = _shape(args[0]) if args else None
            after = _shape(output)
            has_kernel = any(p.dim() >= 2 for p in module.parameters())
            if after is None or (after == before and not has_kernel):
                return  # activation, normalisation, dropout: part of the block before it
            kind, colour = _describe(module)
            calls.append(Block(path, kind, after, count_parameters(module), colour))
        handles.append(module.register_forward_hook(record))
    was_training = model.training
    model.eval()
    try:
        model(*inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return calls


def _format_shape(shape: tuple) -> str:
    return "×".join(str(d) for d in shape)


def _count(params: int) -> str:
    return f"{params / 1e6:.1f}M" if params >= 1e6 else f"{params / 1e3:.1f}k" if params >= 1e3 else str(params)


def _levels(blocks: list[Block], example: torch.Tensor) -> list[float]:
    """log₂ of each block's downsampling of an image input (a flat output keeps the level before it)."""
    side = example.shape[-1] if example.dim() == 4 else None
    levels, level = [], 0.0
    for block in blocks:
        if side and len(block.shape) == 3:
            level = math.log2(side / block.shape[-1])
        levels.append(level)
    return levels


def architecture_figure(models: dict[str, tuple[nn.Module, tuple]], title: str = "", column_width: float = 2.1,
                        box_height: float = 0.34, names: bool = False):
    """One column per model: its blocks as boxes, top to bottom, labelled with type, output shape and parameters.

    ``models`` maps a label to ``(model, inputs)`` (a tuple of example tensors). A box moves right by one step
    each time the block's output is half as wide as the input (log₂ of the downsampling). A box reads
    "type · parameters" (``names``: "path: type · parameters") and, on the right, the output shape
    (channels×height×width, or tokens×features).
    """
    if not models:
        raise ValueError("give at least one model: {'ResNet': (model, (torch.zeros(1, 1, 28, 28),))}")
    traced = {label: (trace_blocks(model, *inputs), inputs[0]) for label, (model, inputs) in models.items()}
    longest = max(len(blocks) for blocks, _ in traced.values())
    levels = {label: _levels(blocks, example) for label, (blocks, example) in traced.items()}
    deepest = max((max(v, default=0) for v in levels.values()), default=0)
    shift = 0.16 if deepest else 0.0
    width = sum(column_width + shift * max(v, default=0) for v in levels.values()) + 0.3 * len(models)
    fig, axes = plt.subplots(1, len(models), figsize=(max(width, 0.075 * len(title), 3.5), box_height * 1.35 * longest + 0.9),
                             layout="constrained", squeeze=False,
                             gridspec_kw={"width_ratios": [column_width + shift * max(v, default=0)
                                                           for v in levels.values()]})
    for ax, (label, (blocks, example)) in zip(axes[0], traced.items()):
        columns = column_width + shift * max(levels[label], default=0)
        for row, (block, level) in enumerate(zip(blocks, levels[label])):
            x, y = shift * level, -row * box_height * 1.35
            ax.add_patch(FancyBboxPatch((x, y - box_height), column_width - 0.05, box_height,
                                        boxstyle="round,pad=0,rounding_size=0.05", fc=_COLOURS[block.colour],
                                        ec="0.4", lw=0.6))
            text = (f"{block.name}: " if names else "") + block.kind
            ax.text(x + 0.06, y - box_height / 2, text + (f" · {_count(block.params)}" if block.params else ""),
                    va="center", fontsize=7)
            ax.text(x + column_width - 0.1, y - box_height / 2, _format_shape(block.shape), va="center",
                    ha="right", fontsize=7, family="monospace")
        ax.set_xlim(-0.05, columns)
        ax.set_ylim(-longest * box_height * 1.35, 0.05)
        ax.axis("off")
        total = count_parameters(models[label][0])
        ax.set_title(f"{label}\ninput {_format_shape(tuple(example.shape[1:]))}, {total:,} parameters", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
