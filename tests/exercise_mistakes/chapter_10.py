"""Chapter 10's exercises (10_promptable_segmentation) done wrong, the way learners do: each entry of `CATALOGUE` is (exercise, mistaken function, the registered mistake its message must name)."""

import math

import torch


def box_prompt_corners_exclusive(masks):
    corners = []
    for mask in masks:
        ys, xs = torch.nonzero(mask, as_tuple=True)
        corners.append([[xs.min(), ys.min()], [xs.max() + 1, ys.max() + 1]])       # the tight box's end, not its pixel
    return torch.tensor(corners, dtype=torch.float32).reshape(-1, 2, 2)


def box_prompt_corners_row_column(masks):
    corners = []
    for mask in masks:
        rows, columns = torch.nonzero(mask, as_tuple=True)
        corners.append([[rows.min(), columns.min()], [rows.max(), columns.max()]])
    return torch.tensor(corners, dtype=torch.float32).reshape(-1, 2, 2)


def box_prompt_corners_whole_batch(masks):
    _, ys, xs = torch.nonzero(masks, as_tuple=True)                 # every mask's pixels at once
    box = torch.tensor([[xs.min(), ys.min()], [xs.max(), ys.max()]], dtype=torch.float32)
    return box.expand(len(masks), 2, 2)


def encode_points_in_pixels(points, frequencies, image_size):
    angles = 2 * math.pi * points @ frequencies
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def encode_points_at_corner(points, frequencies, image_size):
    angles = 2 * math.pi * (points / image_size) @ frequencies
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def encode_points_without_two_pi(points, frequencies, image_size):
    angles = ((points + 0.5) / image_size) @ frequencies
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def encode_points_like_sams_code(points, frequencies, image_size):
    coords = 2 * (points + 0.5) / image_size - 1
    angles = 2 * math.pi * coords @ frequencies
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def stability_score_greater_or_equal(logits, offset):
    strict, loose = logits >= offset, logits >= -offset
    intersection = (strict & loose).flatten(-2).sum(-1).float()
    union = (strict | loose).flatten(-2).sum(-1).float()
    return torch.where(union == 0, torch.ones_like(union), intersection / union)


def stability_score_divides_by_zero(logits, offset):
    return (logits > offset).sum((-2, -1)) / (logits > -offset).sum((-2, -1))


def stability_score_of_the_batch(logits, offset):
    return (logits > offset).sum() / (logits > -offset).sum()


CATALOGUE = [
    ("box_prompt_corners", box_prompt_corners_exclusive, "exclusive bottom-right"),
    ("box_prompt_corners", box_prompt_corners_row_column, "(row, column) order"),
    ("box_prompt_corners", box_prompt_corners_whole_batch, "one box for the whole batch"),
    ("encode_points", encode_points_in_pixels, "pixel coordinates"),
    ("encode_points", encode_points_at_corner, "pixel corner"),
    ("encode_points", encode_points_without_two_pi, "no 2π"),
    ("encode_points", encode_points_like_sams_code, "[−1, 1] coordinates"),
    ("stability_score", stability_score_greater_or_equal, ">= thresholds"),
    ("stability_score", stability_score_divides_by_zero, "nan for an empty mask"),
    ("stability_score", stability_score_of_the_batch, "one score for the whole batch"),
]
