"""The pieces that make Swin (Liu et al., 2021) a hierarchical, linear-cost Transformer.

Introduced in Chapter 3 (03b); `utils.models.swin` assembles them. Feature maps are channels-last,
``(B, H, W, C)``; a window holds ``window_size²`` tokens.

- `window_partition` / `window_reverse` — cut a map into non-overlapping windows and paste them back;
- `shifted_window_mask` — which tokens of a cyclically shifted window may attend to each other;
- `relative_position_index`, `RelativePositionBias` — one learned bias per head and relative offset;
- `attention_multiply_adds` — the cost of global vs window attention (the paper's eq. 1–2);
- `PatchMerging` — 2×2 neighbours concatenated (4C) and projected to 2C: half the resolution, twice the width;
- `AxialAttention`, `axial_multiply_adds` — another way below N²: attend along each row, then along each column
  (Ho et al., 2019; Axial-DeepLab), two hops from any pixel to any other;
- `render_shifted_windows`, `render_attention_cost` — the chapter's figures of the shifted windows and of the cost.
"""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from .models.transformer import MultiHeadAttention


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(B, H, W, C) → (B·nW, window_size², C), windows in row-major order within each image."""
    batch, height, width, channels = x.shape
    if height % window_size or width % window_size:
        raise ValueError(f"a {height}×{width} map does not split into {window_size}×{window_size} windows: "
                         f"pad it or pick a window size that divides both sides")
    x = x.view(batch, height // window_size, window_size, width // window_size, window_size, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size, channels)


def window_reverse(windows: torch.Tensor, window_size: int, height: int, width: int) -> torch.Tensor:
    """(B·nW, window_size², C) → (B, H, W, C): the inverse of `window_partition`."""
    rows, cols = height // window_size, width // window_size
    channels = windows.shape[-1]
    x = windows.view(-1, rows, cols, window_size, window_size, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


def shifted_window_mask(height: int, width: int, window_size: int, shift_size: int) -> torch.Tensor:
    """bool (num_windows, window_size², window_size²): True where attention is allowed, as in the Swin paper.

    After rolling the map by ``-shift_size`` the bottom and right windows hold tokens that were far apart
    in the image. Label the map's regions (rows and columns cut at ``-window_size`` and ``-shift_size``);
    two tokens of a window may attend to each other only when they carry the same label.
    """
    if height % window_size or width % window_size:
        raise ValueError(f"{height}×{width} is not a whole number of {window_size}×{window_size} windows")
    if not 0 <= shift_size < window_size:
        raise ValueError(f"shift_size={shift_size} must be in [0, window_size={window_size})")
    labels = torch.zeros(1, height, width, 1)
    if shift_size:
        cuts = (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None))
        for region, (rows, cols) in enumerate(itertools.product(cuts, cuts)):
            labels[:, rows, cols, :] = region
    windows = window_partition(labels, window_size).squeeze(-1)                  # (nW, M²)
    return windows[:, :, None] == windows[:, None, :]


def relative_position_index(window_size: int) -> torch.Tensor:
    """long (M², M²): for tokens i, j of an M×M window, the row of their offset (Δr, Δc) in a (2M−1)² table."""
    rows, cols = torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])                       # (2, M²)
    offset = coords[:, :, None] - coords[:, None, :] + window_size - 1            # (2, M², M²) in [0, 2M−2]
    return offset[0] * (2 * window_size - 1) + offset[1]


class RelativePositionBias(nn.Module):
    """A learned (2M−1)² × heads table, looked up by relative offset: forward() → (heads, M², M²) logits bias."""

    def __init__(self, window_size: int, num_heads: int):
        super().__init__()
        self.table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.table, std=0.02)
        self.register_buffer("index", relative_position_index(window_size), persistent=False)

    def forward(self) -> torch.Tensor:
        return self.table[self.index].permute(2, 0, 1)


class PatchMerging(nn.Module):
    """(B, H, W, C) → (B, H/2, W/2, 2C): each 2×2 neighbourhood concatenated (4C), normalised, projected."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        if x.shape[1] % 2 or x.shape[2] % 2:
            raise ValueError(f"patch merging needs an even height and width; got {tuple(x.shape[1:3])}")
        # The paper's order: top-left, bottom-left, top-right, bottom-right.
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


def attention_multiply_adds(tokens: int, dim: int, window_size: int | None = None) -> int:
    """Multiply-adds of one self-attention layer over ``tokens`` tokens of width ``dim`` (Swin paper, eq. 1–2).

    4·N·C² for the Q, K, V and output projections plus 2·N·K·C for the scores and the weighted sum, where
    each query sees K = N keys (global attention, ViT: quadratic in N) or K = M² (windows of M×M: linear).
    """
    keys = tokens if window_size is None else window_size * window_size
    return 4 * tokens * dim * dim + 2 * tokens * keys * dim


def axial_multiply_adds(height: int, width: int, dim: int) -> int:
    """Multiply-adds of `AxialAttention` on an H×W map of width C: two attention layers over the N = H·W tokens,
    each with its own projections (4·N·C²), where a query sees the W keys of its row, then the H keys of its
    column: 8·N·C² + 2·N·(H + W)·C, against 4·N·C² + 2·N²·C for global attention."""
    if min(height, width, dim) < 1:
        raise ValueError(f"height, width and dim must be positive, got {height}, {width}, {dim}")
    tokens = height * width
    return 8 * tokens * dim * dim + 2 * tokens * (height + width) * dim


class AxialAttention(nn.Module):
    """(B, H, W, C) → (B, H, W, C): multi-head self-attention within each row, then within each column.

    Each pass is an ordinary `MultiHeadAttention` over a batch of lines (B·H rows of W tokens, then B·W columns
    of H tokens); after both, every output depends on every input (through the row of the query's column).
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.row_attn, self.col_attn = MultiHeadAttention(dim, num_heads), MultiHeadAttention(dim, num_heads)

    def forward(self, x, need_weights: bool = False):
        if x.dim() != 4 or x.shape[-1] != self.row_attn.dim:
            raise ValueError(f"AxialAttention wants a channels-last map (B, H, W, {self.row_attn.dim}), "
                             f"got {tuple(x.shape)}")
        batch, height, width, channels = x.shape
        rows, _ = self.row_attn(x.reshape(batch * height, width, channels), need_weights=need_weights)
        x = rows.view(batch, height, width, channels).transpose(1, 2)              # (B, W, H, C): columns
        cols, _ = self.col_attn(x.reshape(batch * width, height, channels), need_weights=need_weights)
        return cols.view(batch, width, height, channels).transpose(1, 2)


def render_shifted_windows(windows: torch.Tensor, groups: torch.Tensor, regions: torch.Tensor, mask: torch.Tensor,
                           window_size: int, shift_size: int):
    """Swin's two window layouts on one S×S token map, and each shifted window's attention mask.

    Top row: ``windows`` (S×S, the window of each token in W-MSA), ``groups`` (S×S, the tokens that attend to
    each other in SW-MSA, as seen in the image) and ``regions`` (S×S, the regions of the map rolled by
    −``shift_size``, numbered). Bottom row: ``mask`` (windows × M² × M², from `shifted_window_mask`), white
    where a query may attend to a key.
    """
    windows, groups, regions, mask = (np.asarray(a) for a in (windows, groups, regions, mask))
    side = windows.shape[-1]
    if any(grid.shape != (side, side) for grid in (windows, groups, regions)):
        raise ValueError(f"windows, groups and regions must be S×S maps of one size, got {tuple(windows.shape)}, "
                         f"{tuple(groups.shape)} and {tuple(regions.shape)}")
    if mask.ndim != 3 or mask.shape[1:] != (window_size ** 2, window_size ** 2):
        raise ValueError(f"mask must be windows × M² × M² (M = {window_size}), got {tuple(mask.shape)}: "
                         "pass shifted_window_mask(S, S, M, shift)")
    fig = plt.figure(figsize=(11, 6.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.15, 1])
    axes = top.subplots(1, 3)
    panels = [(windows, f"block 1, W-MSA: {len(mask)} windows of {window_size}×{window_size}"),
              (groups, f"block 2, SW-MSA: windows shifted by {shift_size},\n{int(groups.max()) + 1} groups seen in "
                       "the image"),
              (regions, f"how it is computed: the map rolled by\n−{shift_size}, its regions (numbers), same "
                        f"{len(mask)} windows")]
    for ax, (grid, title) in zip(axes, panels):
        ax.imshow(grid, cmap="tab10", vmin=0, vmax=9)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for r in range(side):
        for c in range(side):
            axes[2].text(c, r, int(regions[r, c]), ha="center", va="center", fontsize=6, color="white")
    for ax in (axes[0], axes[2]):  # the window grid of the partition
        for edge in range(window_size, side, window_size):
            ax.axhline(edge - 0.5, color="black", linewidth=2)
            ax.axvline(edge - 0.5, color="black", linewidth=2)
    for w, ax in enumerate(bottom.subplots(1, len(mask))):
        ax.imshow(mask[w], cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"window {w}: {int(mask[w].sum())} allowed pairs", fontsize=9)
        ax.set(xlabel="key token", ylabel="query token" if w == 0 else "", xticks=[], yticks=[])
    tokens = window_size ** 2
    bottom.suptitle(f"each window's {tokens}×{tokens} attention mask (white: may attend)", fontsize=10)
    top.suptitle(f"Swin's windows on a {side}×{side} token map (M = {window_size}): colour = tokens that attend to "
                 "each other", fontsize=10)
    return fig


def render_attention_cost(tokens: list[int], seconds: dict[str, list[float]], dim: int, window_size: int,
                          timing: str):
    """Cost of global against window attention as the token count grows: the formula, and measured times.

    ``tokens`` the token counts N; ``seconds`` name → one forward time per N; the left panel draws
    `attention_multiply_adds` for width ``dim``, global and with ``window_size``² keys; ``timing`` titles the
    right panel (where and how the times were taken).
    """
    if not tokens or any(len(values) != len(tokens) for values in seconds.values()):
        raise ValueError(f"give one time per token count ({len(tokens)}) for every name in seconds, got "
                         f"{ {name: len(values) for name, values in seconds.items()} }")
    fig, (ax_formula, ax_time) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    ax_formula.plot(tokens, [attention_multiply_adds(n, dim) for n in tokens], marker="o", label="global")
    ax_formula.plot(tokens, [attention_multiply_adds(n, dim, window_size) for n in tokens], marker="o",
                    label=f"{window_size}×{window_size} windows")
    ax_formula.set(title="multiply-adds (formula)", ylabel="multiply-adds")
    for name, values in seconds.items():
        ax_time.plot(tokens, np.array(values) * 1e3, marker="o", label=name)
    ax_time.set(title=timing, ylabel="time (ms)")
    for ax in (ax_formula, ax_time):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(tokens, [f"{n:,}" for n in tokens])  # one label per measured size, none in between
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel("tokens N (log)")
        ax.legend()
    fig.suptitle("Attention cost vs image size")
    return fig
