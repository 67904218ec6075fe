"""Receptive fields: the theoretical one by arithmetic over the graph, the effective one by gradients.

Introduced in Chapter 1 (01d).

For each layer, with input pixels at coordinates 0.5, 1.5, … (``start`` 0.5, ``jump`` 1, ``rf`` 1), a
layer of kernel k (dilation d: effective kernel d·(k−1)+1), stride s and padding p gives

    rf_out = rf_in + (k_eff − 1)·jump_in,   jump_out = jump_in·s,   start_out = start_in + ((k_eff − 1)/2 − p)·jump_in

(Dang Ha The Hien, "A guide to receptive field arithmetic", 2017). ``rf`` is the side of the input
window one output unit sees, ``jump`` the distance in input pixels between neighbouring units (the
effective stride) and ``start`` the centre of the first unit's window. The model is traced with
`torch.fx`, so branching networks work: where paths merge (addition, concatenation) the record takes the
path with the largest receptive field.

Any input size works, square or not: the course's layers have square kernels, so a record holds for both axes. Where
a layer's window depends on the map's size (adaptive pooling, a flatten before a linear head) and the two sides
differ, or where adaptive pooling's windows differ in size (VGG's 7×7 pooling of a smaller map), the record is the
larger window — an upper bound; a layer that mixes the whole map gets ``jump`` 0 (all its units see one window).
"""

from __future__ import annotations

import contextlib
import io
import operator
from dataclasses import dataclass

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from .runtime import model_device

# Layers that keep every unit's window: element-wise, normalisation, regularisation.
_PASS_THROUGH_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh,
    nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Identity, nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d,
    nn.LocalResponseNorm, nn.Dropout, nn.Dropout2d,
)
_PASS_THROUGH_FUNCTIONS = {
    F.relu, F.gelu, F.silu, F.leaky_relu, F.dropout, torch.relu, torch.sigmoid, torch.tanh,
    "relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "mul", "add", "__add__", "__mul__",
}
_MERGE_FUNCTIONS = {operator.add, operator.mul, torch.add, torch.mul, torch.cat, torch.stack, operator.iadd}


@dataclass(frozen=True)
class LayerRF:
    """Receptive-field record of one layer's output: window side ``rf``, ``jump`` and ``start`` in input pixels."""

    name: str
    rf: float
    jump: float
    start: float


def _as_pair(value) -> int:
    value = value[0] if isinstance(value, (tuple, list)) else value
    return int(value)


def _window(previous: LayerRF, name: str, kernel, stride, padding, dilation=1) -> LayerRF:
    for setting, value in (("kernel", kernel), ("stride", stride), ("padding", padding), ("dilation", dilation)):
        if isinstance(value, (tuple, list)) and len(set(value)) > 1:
            raise ValueError(f"layer {name!r} has a non-square {setting} {tuple(value)}: receptive_field follows "
                             "square windows only (one side for both axes)")
    k_eff = _as_pair(dilation) * (_as_pair(kernel) - 1) + 1
    return LayerRF(name, previous.rf + (k_eff - 1) * previous.jump, previous.jump * _as_pair(stride),
                   previous.start + ((k_eff - 1) / 2 - _as_pair(padding)) * previous.jump)


def _whole_map(previous: LayerRF, name: str, size: int) -> LayerRF:
    """A layer that mixes every position of a size×size map (global pooling, flatten before a linear layer)."""
    return _window(previous, name, size, size, 0)


def _spatial_size(node: torch.fx.Node) -> int | None:
    """The larger side of a node's N×C×H×W output (None for other shapes)."""
    meta = node.meta.get("tensor_meta")
    return int(max(meta.shape[-2:])) if meta is not None and len(meta.shape) == 4 else None


def _spatial_sides(node: torch.fx.Node) -> tuple[int, int] | None:
    meta = node.meta.get("tensor_meta")
    return (int(meta.shape[-2]), int(meta.shape[-1])) if meta is not None and len(meta.shape) == 4 else None


def _adaptive(previous: LayerRF, name: str, sides: tuple[int, int], output_size) -> LayerRF:
    """Adaptive pooling of an h×w map to ``output_size``: a fixed window where every side divides evenly and the two
    axes agree, else (windows of different sizes) the whole map as one window — an upper bound, jump 0."""
    out = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    out = [side if o is None else int(o) for o, side in zip(out, sides)]
    if all(side % o == 0 for side, o in zip(sides, out)) and len({side // o for side, o in zip(sides, out)}) == 1:
        window = sides[0] // out[0]
        return _window(previous, name, window, window, 0)
    return _mixed(previous, name, max(sides))


def _mixed(previous: LayerRF, name: str, size: int) -> LayerRF:
    """Every unit of a layer sees the whole size×size map below it: one window, so jump 0."""
    whole = _whole_map(previous, name, size)
    return LayerRF(name, whole.rf, 0.0, whole.start)


def _check_channels(graph: torch.fx.GraphModule, shape: tuple) -> None:
    """Compare the input's channels with those of the first convolution the input reaches unchanged in channels
    (through element-wise layers and pooling), before ShapeProp runs the model and fails deep in its trace."""
    modules = dict(graph.named_modules())
    carried = set()   # nodes whose output has the input's channels
    for node in graph.graph.nodes:
        if node.op == "placeholder":
            carried.add(node.name)
            continue
        if not node.all_input_nodes or any(a.name not in carried for a in node.all_input_nodes):
            continue   # e.g. x * a weight tensor, which could broadcast to more channels
        module = modules.get(node.target) if node.op == "call_module" else None
        if isinstance(module, nn.Conv2d):
            if module.in_channels != shape[0]:
                raise ValueError(f"input_shape {shape} has {shape[0]} channel(s), but the model's first convolution "
                                 f"{node.target!r} takes {module.in_channels}: pass input_shape="
                                 f"{(module.in_channels, *shape[1:])}")
            return
        if isinstance(module, _PASS_THROUGH_MODULES + (nn.MaxPool2d, nn.AvgPool2d)) or \
                (module is None and node.target in _PASS_THROUGH_FUNCTIONS):
            carried.add(node.name)


def receptive_field(model: nn.Module, input_shape=(1, 28, 28)) -> list[LayerRF]:
    """Per-layer theoretical receptive field of ``model`` for inputs of ``input_shape`` (C×H×W, any size).

    Returns an ordered list of `LayerRF`, one per layer of the traced graph, the last named ``"output"``
    (the model's output). Raises ``ValueError`` naming any layer whose effect on the receptive field is
    unknown (for example a transposed convolution or an attention block).
    """
    shape = tuple(input_shape)
    if len(shape) == 4:
        raise ValueError(f"input_shape is one image's C×H×W, without the batch dimension: pass {shape[1:]}")
    if len(shape) != 3 or not all(isinstance(n, int) and n > 0 for n in shape):
        raise ValueError(f"input_shape must be C×H×W positive integers, such as (1, 28, 28), not {input_shape!r}")
    model = model.eval()
    graph = torch.fx.symbolic_trace(model)
    _check_channels(graph, shape)
    try:   # ShapeProp prints the whole trace of a failure on stderr: the cause, re-raised, is what matters
        with contextlib.redirect_stderr(io.StringIO()):
            ShapeProp(graph).propagate(torch.zeros(1, *input_shape, device=model_device(model)))
    except RuntimeError as error:
        raise ValueError(f"the model does not run on one input of shape {shape} ({error.__cause__ or error}): pass "
                         "the C×H×W of the images it was built for as input_shape") from error
    modules = dict(graph.named_modules())
    state: dict[str, LayerRF] = {}
    records: list[LayerRF] = []

    def parent(node):
        inputs = [state[a.name] for a in node.all_input_nodes if a.name in state]
        if not inputs:
            raise ValueError(f"layer {node.name!r} has no traced input")
        return max(inputs, key=lambda r: r.rf)

    for node in graph.graph.nodes:
        if node.op == "placeholder":
            state[node.name] = LayerRF(node.name, 1.0, 1.0, 0.5)
            continue
        if node.op == "get_attr":
            continue
        if node.op == "output":
            result = state[node.all_input_nodes[0].name]
            records.append(LayerRF("output", result.rf, result.jump, result.start))
            break
        name = node.target if node.op == "call_module" else node.name
        prev = parent(node)
        in_size = _spatial_size(node.all_input_nodes[0])
        if node.op == "call_module":
            module = modules[node.target]
            if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
                if isinstance(module, nn.Conv2d) and isinstance(module.padding, str):
                    padding = 0 if module.padding == "valid" else module.dilation[0] * (module.kernel_size[0] - 1) // 2
                else:
                    padding = module.padding
                record = _window(prev, name, module.kernel_size, module.stride or module.kernel_size, padding,
                                 getattr(module, "dilation", 1))
            elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
                record = _adaptive(prev, name, _spatial_sides(node.all_input_nodes[0]), module.output_size)
            elif isinstance(module, nn.Flatten):
                record = _whole_map(prev, name, in_size) if in_size and in_size > 1 else LayerRF(name, prev.rf, prev.jump, prev.start)
            elif isinstance(module, nn.Linear) and in_size is None:
                record = LayerRF(name, prev.rf, prev.jump, prev.start)
            elif isinstance(module, _PASS_THROUGH_MODULES):
                record = LayerRF(name, prev.rf, prev.jump, prev.start)
            else:
                raise ValueError(f"receptive_field does not support layer {name!r} ({type(module).__name__}); "
                                 "supported: convolutions, pooling, element-wise layers, normalisation, "
                                 "flatten/linear heads")
        elif node.target in (torch.flatten, "flatten", "view", "reshape"):
            record = _whole_map(prev, name, in_size) if in_size and in_size > 1 else LayerRF(name, prev.rf, prev.jump, prev.start)
        elif node.target in _MERGE_FUNCTIONS or node.target in _PASS_THROUGH_FUNCTIONS:
            record = LayerRF(name, prev.rf, prev.jump, prev.start)
        elif node.target in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
            record = _adaptive(prev, name, _spatial_sides(node.all_input_nodes[0]),
                               node.args[1] if len(node.args) > 1 else node.kwargs["output_size"])
        else:
            raise ValueError(f"receptive_field does not support operation {name!r} ({node.target})")
        state[node.name] = record
        records.append(record)
    return records


class _Reached(Exception):
    """Raised by a forward hook once the layer of interest has run: the rest of the network is not needed."""


def effective_receptive_field(model: nn.Module, input_shape=(1, 28, 28), inputs: torch.Tensor | None = None,
                              layer: str | None = None) -> np.ndarray:
    """|∂ centre output / ∂ input|, summed over input channels (and over ``inputs``' batch): an H×W map.

    As Luo et al. (2016): back-propagate a gradient of 1 at the centre unit of a feature map (all its
    channels) and look at how much each input pixel moves it. The feature map is the model's output, or the
    output of the submodule named ``layer`` (a name from ``model.named_modules()``); it must be N×C×H×W.
    ``inputs`` (N×C×H×W) defaults to one image of Gaussian noise. The model is evaluated in eval mode, and only up
    to ``layer``: the forward pass stops there, so early layers of a big network cost little.
    """
    model = model.eval()
    dev = model_device(model)
    x = (torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(0)) if inputs is None
         else inputs.detach().float().clone()).to(dev).requires_grad_(True)
    if layer is None:
        out = model(x)
    else:
        modules = dict(model.named_modules())
        if layer not in modules:
            raise ValueError(f"no layer named {layer!r} in the model; choose one of model.named_modules()")
        captured = []  # a clone, so a later in-place activation cannot invalidate it

        def keep(module, args, output):   # the layer's first output is all we need: stop the forward pass there
            captured.append(output.clone())
            raise _Reached

        handle = modules[layer].register_forward_hook(keep)
        try:
            model(x)
        except _Reached:
            pass
        finally:
            handle.remove()
        if not captured:
            raise ValueError(f"layer {layer!r} is not used in the model's forward pass: choose a layer it runs")
        out = captured[0]
    if out.ndim != 4:
        raise ValueError(f"effective_receptive_field needs a feature map N×C×H×W, got shape {tuple(out.shape)}: "
                         "pass the convolutional part of the network (e.g. model.features) or a conv layer's name")
    h, w = out.shape[-2:]
    out[:, :, h // 2, w // 2].sum().backward()
    return x.grad.abs().sum(dim=(0, 1)).cpu().numpy()
