"""The exercises of Chapter 10 (10_promptable_segmentation): their references, cases and known mistakes."""

from functools import partial

import torch
import torchvision

from .. import sam
from ..models.sam import PromptEncoder
from .base import Exercise, Mistake


def _box_cases():
    generator = torch.Generator().manual_seed(2)
    scattered = torch.rand(4, 7, 10, generator=generator) < 0.15           # ragged shapes on a non-square canvas
    scattered[:, 3, 4] = True                                               # never empty
    pixel = torch.zeros(1, 6, 5, dtype=torch.bool)
    pixel[0, 2, 3] = True                                                   # one pixel: both corners on it
    edges = torch.zeros(2, 6, 9, dtype=torch.bool)
    edges[0, 4:, 6:] = True                                                 # touching the bottom-right border
    edges[1] = True                                                         # the whole canvas
    return [(scattered,), (pixel,), (edges,), (torch.zeros(0, 5, 6, dtype=torch.bool),)]      # no masks


def _corner_points(masks):
    """The box prompt of each mask as its two inclusive corners: torchvision's tight boxes, N×4 → N×2×2."""
    return torchvision.ops.masks_to_boxes(masks).view(-1, 2, 2)


def _corners_wrong(masks, exclusive=False, row_column=False, whole_batch=False):
    if whole_batch:
        masks = masks.any(0, keepdim=True).expand_as(masks)
    columns, rows = masks.any(1).float(), masks.any(2).float()
    last_column = masks.shape[2] - 1 - columns.flip(1).argmax(1) + exclusive
    last_row = masks.shape[1] - 1 - rows.flip(1).argmax(1) + exclusive
    corners = torch.stack([columns.argmax(1), rows.argmax(1), last_column, last_row], 1).view(-1, 2, 2)
    return (corners.flip(-1) if row_column else corners).float()


BOX_MISTAKES = (
    Mistake("exclusive bottom-right", partial(_corners_wrong, exclusive=True),
            "the second corner is one past the last pixel (x2, y2 exclusive, as sam.tight_boxes): the prompt's "
            "bottom-right point is the mask's last column and row"),
    Mistake("(row, column) order", partial(_corners_wrong, row_column=True),
            "the points are (row, column): a point is (x, y), x the column (the last dimension of the mask)"),
    Mistake("one box for the whole batch", partial(_corners_wrong, whole_batch=True),
            "every mask gets the box of all masks together: find the rows and columns of each mask on its own"),
)


def _point_cases():
    generator = torch.Generator().manual_seed(0)

    def gaussian(count, scale):
        return scale * torch.randn(2, count, generator=generator, dtype=torch.float64)

    def pixels(count, per_prompt, size):
        return torch.randint(0, size, (count, per_prompt, 2), generator=generator).double()

    corners = torch.tensor([[[0.0, 0.0], [63.0, 63.0], [63.0, 0.0]]], dtype=torch.float64)
    return [(pixels(4, 3, 64), gaussian(8, 2.0), 64),
            (pixels(1, 1, 48) + 0.25, gaussian(3, 1.0), 48),     # a batch of one, a fractional point, F odd
            (corners, gaussian(5, 2.0), 64),                      # the image's corners
            (pixels(2, 5, 20), gaussian(4, 3.0), 20),
            (torch.zeros(3, 0, 2, dtype=torch.float64), gaussian(4, 2.0), 64)]     # no points


def _course_point_encoding(points, frequencies, image_size):
    """The course's prompt encoder given the same Gaussian matrix, its type embeddings zeroed: the Fourier part of
    every point's token."""
    with torch.random.fork_rng(devices=[]):                 # its layers' initialisation must not move the chapter's
        encoder = PromptEncoder(dim=2 * frequencies.shape[1], image_size=image_size).to(frequencies.dtype)
    with torch.no_grad():
        encoder.frequencies.copy_(frequencies)
        encoder.type_embeddings.weight.zero_()
        return encoder.sparse(points, torch.ones(points.shape[:-1], dtype=torch.long))


def _encoding(points, frequencies, image_size, normalise=True, centre=0.5, two_pi=True, symmetric=False):
    coords = (points + centre) / image_size if normalise else points
    coords = 2 * coords - 1 if symmetric else coords
    angles = (2 * torch.pi if two_pi else 1.0) * coords @ frequencies
    return torch.cat([angles.sin(), angles.cos()], -1)


POINT_MISTAKES = (
    Mistake("pixel coordinates", partial(_encoding, normalise=False),
            "the pixel coordinates are not normalised: encode ((x + 0.5) / image_size, (y + 0.5) / image_size), "
            "in [0, 1]"),
    Mistake("pixel corner", partial(_encoding, centre=0.0),
            "the pixel's corner is encoded, not its centre: add 0.5 before dividing by image_size"),
    Mistake("no 2π", partial(_encoding, two_pi=False),
            "the angles lack the 2π: sin(2π p·B) and cos(2π p·B)"),
    Mistake("[−1, 1] coordinates", partial(_encoding, symmetric=True),
            "the coordinates are mapped to [−1, 1] (2p − 1, as SAM's own code does): the course's encoder keeps "
            "them in [0, 1]"),
)


def _stability_cases():
    generator = torch.Generator().manual_seed(1)
    soft = 2 * torch.randn(4, 3, 7, 9, generator=generator)
    ties = torch.randint(-3, 4, (2, 3, 5, 6), generator=generator).float()     # integer logits: many exactly ±offset
    crisp = torch.where(torch.rand(5, 6, generator=generator) < 0.4, 10.0, -10.0)
    with_empty = torch.stack([torch.full((5, 6), -5.0), crisp, torch.randn(5, 6, generator=generator)])
    return [(soft, 1.0), (ties, 1.0), (ties, 2.0), (with_empty, 1.0),            # an empty mask: as stable as any
            (torch.randn(1, 6, 5, generator=generator), 0.5)]                      # one mask


def _stability_wrong(logits, offset, strict=True, empty=1.0, dims=(-2, -1)):
    inner, outer = (logits > offset, logits > -offset) if strict else (logits >= offset, logits >= -offset)
    intersection, union = (inner & outer).sum(dims).float(), (inner | outer).sum(dims).float()
    if empty is None:
        return intersection / union
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.full_like(union, empty))


STABILITY_MISTAKES = (
    Mistake(">= thresholds", partial(_stability_wrong, strict=False),
            "the masks are logits ≥ ±offset: threshold strictly, logits > offset and logits > −offset"),
    Mistake("nan for an empty mask", partial(_stability_wrong, empty=None),
            "an empty mask gives 0 / 0 = nan: when both masks are empty the mask is perfectly stable, score 1"),
    Mistake("0 for an empty mask", partial(_stability_wrong, empty=0.0),
            "an empty mask scores 0: when both masks are empty the mask is perfectly stable, score 1"),
    Mistake("one score for the whole batch", partial(_stability_wrong, dims=None),
            "one IoU over the whole batch: count over the last two dimensions only, one score per mask"),
)


EXERCISES = [
    Exercise("box_prompt_corners", "10_promptable_segmentation", "medium", _corner_points, _box_cases, BOX_MISTAKES,
             forbidden=("masks_to_boxes", "tight_boxes", "box_prompt")),
    Exercise("encode_points", "10_promptable_segmentation", "easy", _course_point_encoding, _point_cases,
             POINT_MISTAKES, forbidden=("fourier_features", "sparse", "image_positions", "PromptEncoder")),
    Exercise("stability_score", "10_promptable_segmentation", "easy", sam.stability, _stability_cases,
             STABILITY_MISTAKES, forbidden=("stability", "mask_iou", "calculate_stability_score")),
]
