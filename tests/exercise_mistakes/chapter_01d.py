"""Chapter 1d's exercises (01d_look_inside) done wrong, the way learners do: each entry of `CATALOGUE` is
(exercise, mistaken function, the registered mistake its message must name)."""

import math

import torch


def receptive_field_jump_first(layers):
    rf, jump, start, rows = 1, 1, 0.5, []
    for k, s, p, d in layers:
        k_eff = d * (k - 1) + 1
        jump *= s
        rf += (k_eff - 1) * jump
        start += ((k_eff - 1) / 2 - p) * jump
        rows.append([rf, jump, start])
    return torch.tensor(rows, dtype=torch.float64)


def receptive_field_without_dilation(layers):
    rf, jump, start, rows = 1, 1, 0.5, []
    for k, s, p, d in layers:
        rf, start = rf + (k - 1) * jump, start + ((k - 1) / 2 - p) * jump
        jump *= s
        rows.append([rf, jump, start])
    return torch.tensor(rows, dtype=torch.float64)


def receptive_field_dilation_times_kernel(layers):
    rf, jump, start, rows = 1, 1, 0.5, []
    for k, s, p, d in layers:
        rf, start = rf + (d * k - 1) * jump, start + ((d * k - 1) / 2 - p) * jump
        jump *= s
        rows.append([rf, jump, start])
    return torch.tensor(rows, dtype=torch.float64)


def receptive_field_without_padding(layers):
    rf, jump, start, rows = 1, 1, 0.5, []
    for k, s, p, d in layers:
        k_eff = d * (k - 1) + 1
        rf, start = rf + (k_eff - 1) * jump, start + (k_eff - 1) / 2 * jump
        jump *= s
        rows.append([rf, jump, start])
    return torch.tensor(rows, dtype=torch.float64)


def _centre(size, jump, start):
    units = int((size - 2 * start) // jump) + 1
    return start + units // 2 * jump


def _mask_around(centre_row, centre_col, rf, height, width):
    mask = torch.zeros(height, width, dtype=torch.bool)
    top, bottom = math.floor(centre_row - rf / 2), math.ceil(centre_row + rf / 2)
    left, right = math.floor(centre_col - rf / 2), math.ceil(centre_col + rf / 2)
    mask[top:bottom, left:right] = True                 # a negative top counts from the end
    return mask


def centre_window_mask_unclipped(rf, jump, start, height, width):
    return _mask_around(_centre(height, jump, start), _centre(width, jump, start), rf, height, width)


def centre_window_mask_image_centre(rf, jump, start, height, width):
    return _mask_around(height / 2, width / 2, rf, height, width)


def centre_window_mask_swapped(rf, jump, start, height, width):
    rows, cols = torch.arange(height), torch.arange(width)
    centre_row, centre_col = _centre(width, jump, start), _centre(height, jump, start)
    inside_rows = (rows + 1 > centre_row - rf / 2) & (rows < centre_row + rf / 2)
    inside_cols = (cols + 1 > centre_col - rf / 2) & (cols < centre_col + rf / 2)
    return inside_rows[:, None] & inside_cols[None, :]


def effective_receptive_field_signed(network, images):
    x = images.clone().requires_grad_()
    y = network(x)
    y[:, :, y.shape[2] // 2, y.shape[3] // 2].sum().backward()
    return x.grad.sum(0).sum(0)


def effective_receptive_field_whole_map(network, images):
    x = images.clone().requires_grad_()
    network(x).sum().backward()
    return x.grad.abs().sum((0, 1))


def effective_receptive_field_centre_down(network, images):
    x = images.clone().requires_grad_()
    y = network(x)
    y[:, :, (y.shape[2] - 1) // 2, (y.shape[3] - 1) // 2].sum().backward()
    return x.grad.abs().sum((0, 1))


CATALOGUE = [
    ("receptive_field_arithmetic", receptive_field_jump_first, "jump updated first"),
    ("receptive_field_arithmetic", receptive_field_without_dilation, "dilation ignored"),
    ("receptive_field_arithmetic", receptive_field_dilation_times_kernel, "dilation times the kernel"),
    ("receptive_field_arithmetic", receptive_field_without_padding, "padding ignored"),
    ("centre_window_mask", centre_window_mask_unclipped, "window not clipped"),
    ("centre_window_mask", centre_window_mask_image_centre, "centre of the image"),
    ("centre_window_mask", centre_window_mask_swapped, "rows and columns swapped"),
    ("effective_receptive_field", effective_receptive_field_signed, "signed gradient"),
    ("effective_receptive_field", effective_receptive_field_whole_map, "whole map"),
    ("effective_receptive_field", effective_receptive_field_centre_down, "centre rounded down"),
]
