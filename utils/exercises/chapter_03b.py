"""The exercises of Chapter 3b (03b_vit_and_swin): their references, cases and known mistakes."""

from functools import partial

import torch
import torch.nn.functional as F

from .. import swin_parts
from .base import Exercise, Mistake, random_tensors


def _conv_patch_embedding(images, weight, bias):
    """ViT's patch embedding as `PatchEmbed` computes it: a P×P convolution with stride P, its map flattened."""
    return F.conv2d(images, weight, bias, stride=weight.shape[-1]).flatten(2).transpose(1, 2)


def _patch_embedding_cases():
    shapes = (((2, 3, 8, 12), 4, 5),      # RGB, non-square: a 2×3 grid of patches
              ((1, 1, 6, 4), 2, 3),       # a batch of one, one channel: a 3×2 grid
              ((2, 2, 4, 4), 4, 6),       # one patch per image
              ((1, 3, 3, 6), 3, 4))       # a 1×2 grid, odd patch size
    cases = []
    for seed, (image_shape, size, dim) in enumerate(shapes):
        images, weight, bias = random_tensors(image_shape, (dim, image_shape[1], size, size), (dim,), seed=seed)
        cases.append((images, weight, bias))
    return cases


def _patches_embedded(images, weight, bias, order=(0, 2, 4, 1, 3, 5), permuted=True):
    """Cut (B, C, H, W) into P×P patches with the axes of (B, C, H/P, P, W/P, P) permuted to ``order`` (the right
    one: grid row, grid column, then each patch as (C, P, P)) and multiply by the flattened weight."""
    batch, channels, height, width = images.shape
    size = weight.shape[-1]
    if permuted:
        grid = images.reshape(batch, channels, height // size, size, width // size, size).permute(*order)
    else:
        grid = images
    return grid.reshape(batch, -1, channels * size * size) @ weight.flatten(1).T + bias


PATCH_EMBEDDING_MISTAKES = (
    Mistake("channels last in each patch", partial(_patches_embedded, order=(0, 2, 4, 3, 5, 1)),
            "each patch is flattened as (row, column, channel), but the convolution's weight flattens as (C, P, P): "
            "permute the channel axis before the two within-patch axes"),
    Mistake("reshaped without a permute", partial(_patches_embedded, permuted=False),
            "the image is reshaped straight to (B, N, C·P·P): that cuts runs of consecutive pixels, not P×P squares; "
            "view it as (B, C, H/P, P, W/P, P) and permute the two grid axes to the front first"),
    Mistake("patches numbered column by column", partial(_patches_embedded, order=(0, 4, 2, 1, 3, 5)),
            "the patches are numbered column by column: number them row by row (grid row before grid column), as "
            "the convolution's flatten(2) does"),
)


def _window_partition_cases():
    return [tuple(random_tensors((2, 8, 12, 3), seed=0)) + (4,),      # non-square: a 2×3 grid of windows
            tuple(random_tensors((1, 6, 6, 2), seed=1)) + (3,),       # a batch of one, 2×2 windows
            tuple(random_tensors((1, 7, 14, 1), seed=2)) + (7,),      # one row of two windows, odd size
            tuple(random_tensors((2, 4, 4, 5), seed=3)) + (4,)]       # one window covering each map


def _windows(x, window_size, order=(0, 1, 3, 2, 4, 5), permuted=True):
    """(B, H, W, C) viewed as (B, H/M, M, W/M, M, C), permuted to ``order`` (the right one: window row, window
    column, then the M×M tokens row by row) and flattened to (B·nW, M², C)."""
    batch, height, width, channels = x.shape
    if permuted:
        x = x.reshape(batch, height // window_size, window_size, width // window_size, window_size, channels)
        x = x.permute(*order)
    return x.reshape(-1, window_size * window_size, channels)


WINDOW_PARTITION_MISTAKES = (
    Mistake("reshaped without a permute", partial(_windows, permuted=False),
            "the map is reshaped straight to (-1, M², C): that takes M² consecutive tokens of a row, not an M×M "
            "square; view it as (B, H/M, M, W/M, M, C) and permute to (B, H/M, W/M, M, M, C) first"),
    Mistake("windows numbered column by column", partial(_windows, order=(0, 3, 1, 2, 4, 5)),
            "the windows are numbered column by column: number them row by row (window row before window column), "
            "as window_reverse and the shifted-window mask expect"),
    Mistake("tokens of a window column by column", partial(_windows, order=(0, 1, 3, 4, 2, 5)),
            "each window's tokens are read column by column (the window transposed): keep the within-window order "
            "row, then column"),
)


def _shifted_window_mask_cases():
    return [(14, 14, 7, 3),        # the chapter's map: 4 windows, the corner one with 4 regions
            (8, 12, 4, 2),         # non-square: 2×3 windows
            (6, 6, 3, 1),          # odd window, shift of one
            (4, 8, 4, 1),          # one row of windows: the rows wrap inside it
            (8, 8, 4, 0)]          # no shift: one region, every pair may attend


def _mask_from_top_left(height, width, window_size, shift_size):
    """Regions cut in three along each axis at s and M from the top-left (the right cuts are at −M and −s)."""
    def regions(length):
        position = torch.arange(length)
        return (position >= shift_size).long() + (position >= window_size).long()
    labels = 3 * regions(height)[:, None] + regions(width)[None, :]
    windows = swin_parts.window_partition(labels[None, :, :, None], window_size)[..., 0]          # (nW, M²)
    return windows[:, :, None] == windows[:, None, :]


def _mask_everything_allowed(height, width, window_size, shift_size):
    count = (height // window_size) * (width // window_size)
    return torch.ones(count, window_size ** 2, window_size ** 2, dtype=torch.bool)


def _additive_mask(height, width, window_size, shift_size):
    """The official Swin code's attn_mask: 0 where attention is allowed, −100 where it is not."""
    allowed = swin_parts.shifted_window_mask(height, width, window_size, shift_size)
    return torch.zeros(allowed.shape).masked_fill(~allowed, -100.0)


SHIFTED_WINDOW_MASK_MISTAKES = (
    Mistake("no regions", _mask_everything_allowed,
            "every pair in a window may attend: the roll carried the top and left strips to the bottom and right, "
            "so label the regions (rows and columns cut at −M and −shift_size) and allow only equal labels"),
    Mistake("regions cut from the top-left", _mask_from_top_left,
            "the regions are cut at shift_size and M from the top-left: rolling by −shift_size puts the wrapped "
            "strips in the LAST shift_size rows and columns, so cut at −M and −shift_size"),
    Mistake("mask inverted", lambda *sizes: ~swin_parts.shifted_window_mask(*sizes),
            "the mask is inverted: True must mean 'may attend' (the same region label), not 'blocked'"),
    Mistake("the official code's additive mask", _additive_mask,
            "this is the official code's additive mask (0 and −100): return a bool, True where attention is allowed"),
)


EXERCISES = [
    Exercise("patch_embedding", "03b_vit_and_swin", "medium", _conv_patch_embedding, _patch_embedding_cases,
             PATCH_EMBEDDING_MISTAKES,
             forbidden=("conv2d", "Conv2d", "F.unfold", "functional.unfold", "Unfold", "PatchEmbed")),
    Exercise("window_partition", "03b_vit_and_swin", "easy", swin_parts.window_partition, _window_partition_cases,
             WINDOW_PARTITION_MISTAKES, forbidden=("window_partition",)),
    Exercise("shifted_window_mask", "03b_vit_and_swin", "hard", swin_parts.shifted_window_mask,
             _shifted_window_mask_cases, SHIFTED_WINDOW_MASK_MISTAKES,
             forbidden=("shifted_window_mask", "SwinBlock")),
]
