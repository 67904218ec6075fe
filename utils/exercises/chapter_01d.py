"""The exercises of Chapter 1d (01d_look_inside): their references, cases and known mistakes."""

import numpy as np
import torch
from torch import nn

from ..look_inside import inside_window
from ..receptive_field import LayerRF, effective_receptive_field, receptive_field
from .base import Exercise, Mistake, random_tensors


def _stack_cases():
    return [([(3, 1, 1, 1)] * 3,),                                          # three 3×3: 3, 5, 7 px
            ([(7, 2, 3, 1), (3, 2, 1, 1), (3, 1, 1, 1), (3, 2, 1, 1)],),    # a ResNet-like stem: the jump grows
            ([(3, 1, 1, 1), (3, 1, 2, 2), (3, 1, 4, 4)],),                  # dilation 1, 2, 4
            ([(2, 2, 0, 1), (3, 1, 0, 1), (5, 3, 1, 1), (1, 1, 0, 1)],),    # an even kernel, no padding, a 1×1
            ([(3, 2, 0, 2)],)]                                               # one strided, dilated layer


def _traced(layers):
    """`receptive_field` on a stack of 1-channel convolutions with these settings, every layer's record."""
    with torch.device("meta"):                  # shapes only: no memory, no random initialisation
        stack = nn.Sequential(*[nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
                                for kernel, stride, padding, dilation in layers])
    records = receptive_field(stack, (1, 96, 96))[:-1]          # the last record repeats the stack's output
    return np.array([(record.rf, record.jump, record.start) for record in records])


def _arithmetic(layers, effective_kernel=lambda kernel, dilation: dilation * (kernel - 1) + 1, jump_first=False,
                padding_counts=True):
    rf, jump, start, records = 1.0, 1.0, 0.5, []
    for kernel, stride, padding, dilation in layers:
        k_eff = effective_kernel(kernel, dilation)
        step = jump * stride if jump_first else jump
        rf, start, jump = rf + (k_eff - 1) * step, start + ((k_eff - 1) / 2 - padding * padding_counts) * step, \
            jump * stride
        records.append((rf, jump, start))
    return np.array(records)


RECEPTIVE_FIELD_MISTAKES = (
    Mistake("jump updated first", lambda layers: _arithmetic(layers, jump_first=True),
            "the jump is multiplied by the stride before rf and start use it: a layer's window is measured in the "
            "jump of its input, so update rf and start first"),
    Mistake("dilation ignored", lambda layers: _arithmetic(layers, effective_kernel=lambda kernel, dilation: kernel),
            "the dilation is ignored: a dilated kernel spans k_eff = dilation·(kernel − 1) + 1 pixels"),
    Mistake("dilation times the kernel", lambda layers: _arithmetic(layers, lambda kernel, dilation: dilation * kernel),
            "the effective kernel is dilation·kernel: the gaps lie between the taps, so k_eff = dilation·(kernel − 1) "
            "+ 1"),
    Mistake("padding ignored", lambda layers: _arithmetic(layers, padding_counts=False),
            "the padding is left out of start: padding shifts the first window left, start + ((k_eff − 1)/2 − "
            "padding)·jump"),
)


def _mask_cases():
    return [(7.0, 1.0, 0.5, 28, 28),      # three 3×3 convolutions
            (5.0, 2.0, 1.5, 9, 14),       # 3×3 stride 2 padding 1, then 2×2 without padding; not square
            (53.0, 4.0, 0.5, 28, 28),     # the ResNet's last layer: the window reaches into the padding
            (11.0, 4.0, 5.5, 27, 31),     # AlexNet's first layer, 11×11 stride 4 without padding
            (1.0, 1.0, 0.5, 5, 4)]        # the input itself: one pixel


def _inside_window(rf, jump, start, height, width):
    return inside_window(LayerRF("layer", rf, jump, start), height, width)


def _window_mask(rf, jump, start, height, width, centres=None, clipped=True):
    """The mask of a window around ``centres`` (the centre unit's by default), sliced by floor and ceil."""
    if centres is None:
        centres = [start + ((size - 2 * start) // jump + 1) // 2 * jump for size in (height, width)]
    (top, bottom), (left, right) = [(int(np.floor(c - rf / 2)), int(np.ceil(c + rf / 2))) for c in centres]
    if clipped:
        top, bottom, left, right = max(top, 0), max(bottom, 0), max(left, 0), max(right, 0)
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def _swapped_centres(rf, jump, start, height, width):
    row, col = (start + ((size - 2 * start) // jump + 1) // 2 * jump for size in (width, height))
    return _window_mask(rf, jump, start, height, width, centres=(row, col))


MASK_MISTAKES = (
    Mistake("window not clipped", lambda *args: _window_mask(*args, clipped=False),
            "a window reaching into the padding is sliced from a negative index, which counts from the image's end: "
            "clip its edges at 0 (or compare torch.arange with them)"),
    Mistake("centre of the image", lambda rf, jump, start, height, width:
            _window_mask(rf, jump, start, height, width, centres=(height / 2, width / 2)),
            "the window is centred on the image's centre: centre it on the centre unit, start + (units // 2)·jump "
            "with units = (size − 2·start) // jump + 1"),
    Mistake("rows and columns swapped", _swapped_centres,
            "the centre row comes from the width and the centre column from the height: rows follow the height"),
)


class _Network(nn.Sequential):
    """A small seeded CNN that names itself in one line (the check's message shows its inputs)."""

    def __init__(self, description, *layers):
        super().__init__(*layers)
        self.description = description

    def __repr__(self):
        return self.description


def _network(description, seed, *layers):
    with torch.random.fork_rng(devices=[]):            # the chapter's random stream untouched
        torch.manual_seed(seed)
        return _Network(description, *[layer() for layer in layers])


def _erf_cases():
    first = _network("conv 3×3, ReLU, conv 3×3 stride 2", 0, lambda: nn.Conv2d(1, 4, 3, padding=1), nn.ReLU,
                     lambda: nn.Conv2d(4, 3, 3, stride=2, padding=1))
    second = _network("conv 3×3, ReLU, conv 3×3 dilation 2 (no padding)", 1, lambda: nn.Conv2d(2, 3, 3), nn.ReLU,
                      lambda: nn.Conv2d(3, 2, 3, dilation=2))
    third = _network("conv 5×5, ReLU, max pool 2, conv 3×3, ReLU", 2, lambda: nn.Conv2d(1, 3, 5, padding=2), nn.ReLU,
                     lambda: nn.MaxPool2d(2), lambda: nn.Conv2d(3, 3, 3, padding=1), nn.ReLU)
    images = random_tensors((2, 1, 12, 10), (1, 2, 11, 13), (3, 1, 16, 16), seed=3, dtype=torch.float32)
    return [(first, images[0]),        # a 6×5 map: even height
            (second, images[1]),       # a batch of one, two channels, a 5×7 map
            (third, images[2])]        # an 8×8 map


def _reference_erf(network, images):
    return effective_receptive_field(network, tuple(images.shape[1:]), images)


def _erf_gradient(network, images, centre=lambda size: size // 2, whole_map=False, absolute=True):
    pixels = images.detach().clone().requires_grad_(True)
    output = network(pixels)
    height, width = output.shape[-2:]
    (output if whole_map else output[:, :, centre(height), centre(width)]).sum().backward()
    return (pixels.grad.abs() if absolute else pixels.grad).sum(dim=(0, 1))


ERF_MISTAKES = (
    Mistake("signed gradient", lambda network, images: _erf_gradient(network, images, absolute=False),
            "the gradient keeps its sign, so positive and negative contributions cancel: take .abs() before summing"),
    Mistake("whole map", lambda network, images: _erf_gradient(network, images, whole_map=True),
            "the whole output map is back-propagated: send the gradient back from the centre unit only, "
            "output[:, :, h // 2, w // 2]"),
    Mistake("centre rounded down", lambda network, images: _erf_gradient(network, images, lambda size: (size - 1) // 2),
            "the centre unit is at (h − 1) // 2: on an even side the course's centre is h // 2"),
)


EXERCISES = [
    Exercise("receptive_field_arithmetic", "01d_look_inside", "medium", _traced, _stack_cases,
             RECEPTIVE_FIELD_MISTAKES, forbidden=("receptive_field", "map_layers", "Conv2d")),
    Exercise("effective_receptive_field", "01d_look_inside", "medium", _reference_erf, _erf_cases, ERF_MISTAKES,
             forbidden=("receptive_field.effective_receptive_field", "effective_fields")),
    Exercise("centre_window_mask", "01d_look_inside", "medium", _inside_window, _mask_cases, MASK_MISTAKES,
             forbidden=("inside_window", "unit_window", "centre_unit")),
]
