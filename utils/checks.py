"""Checks that several modules make of what they are given, written once.

Pixel coordinates follow the course's convention (Chapters 8 and 10): pixel (x, y) — column x, row y — is centred
on the integer point (x, y) and covers [x − ½, x + ½] × [y − ½, y + ½].
"""

from __future__ import annotations

import numbers

import torch


def check_fraction(value, name: str) -> None:
    """Refuse a threshold that is not a fraction in [0, 1]: an IoU threshold of 50 (a percentage) keeps every
    duplicate, one of −0.5 suppresses every box that does not overlap, a confidence of 25 keeps nothing."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        hint = f" ({value!r} looks like a percentage: pass {value / 100:g})" \
            if isinstance(value, numbers.Real) and 1 < value <= 100 else ""
        raise ValueError(f"{name} must be a fraction in [0, 1] such as 0.5, not {value!r}{hint}")


def check_points_inside(points: torch.Tensor, height: int, width: int, name: str,
                        where: str = "the image") -> None:
    """Refuse (x, y) pixel coordinates (a ``…×2`` tensor) that are NaN or infinite, or lie off a height × width
    grid: every point must satisfy −½ ≤ x ≤ width − ½ and −½ ≤ y ≤ height − ½. A point off the grid would be read
    at the nearest edge pixel (or encoded as a position the model never saw) and give an answer without a word."""
    if not torch.is_tensor(points) or points.ndim == 0 or points.shape[-1] != 2:
        shape = tuple(points.shape) if torch.is_tensor(points) else type(points).__name__
        raise ValueError(f"{name} must be a tensor of (x, y) points, …×2, got {shape}")
    flat = points.detach().reshape(-1, 2).double()
    limits = flat.new_tensor([width, height]) - 0.5
    off = ~torch.isfinite(flat).all(1) | (flat < -0.5).any(1) | (flat > limits).any(1)
    if off.any():
        row = int(off.nonzero()[0, 0])
        x, y = flat[row].tolist()
        raise ValueError(f"{name} holds the point (x={x:g}, y={y:g}) (number {row} of {len(flat)}), off {where} of "
                         f"{height}×{width} pixels: pass pixel coordinates with 0 ≤ x ≤ {width - 1} and "
                         f"0 ≤ y ≤ {height - 1} (±0.5, the edge pixels' outer halves), x the column and y the row")
