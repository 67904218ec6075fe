"""Reading a Vision Transformer's attention: mean attention distance, attention rollout, and their figures.

Introduced in Chapter 3 (03b). Attention maps are ``(..., heads, N, N)`` tensors whose rows are queries
and sum to 1; the first ``num_prefix_tokens`` tokens (the class token) are not image patches.

- `mean_attention_distance` — how far, in pixels, each head looks (the ViT paper's Figure 7);
- `attention_rollout` — attention composed through the layers (Abnar & Zuidema, 2020);
- `attention_map_figure`, `attention_distance_figure` — the render functions behind the chapter's explorers;
- `vit_attentions` and `swin_window_attentions` read the attention of torchvision's ViT (``vit_b_16``…) and Swin
  (``swin_t``…), and `window_attention_figure` draws one Swin query's window (Chapter 3b's last section, on
  photographs). Images may be grey or RGB, of any size the model takes.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from .plotting import colorbar, picture


def _grid(grid_size) -> tuple[int, int]:
    grid = (grid_size, grid_size) if isinstance(grid_size, int) else tuple(grid_size)
    if len(grid) != 2 or min(grid) < 1:
        raise ValueError(f"grid_size must be a positive int or (gh, gw), not {grid_size!r}")
    return grid


def patch_centres(grid_size, patch_size: float) -> torch.Tensor:
    """(gh·gw, 2) pixel coordinates (row, column) of the patch centres, in row-major patch order."""
    gh, gw = _grid(grid_size)
    rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    return (torch.stack([rows.flatten(), cols.flatten()], dim=1).double() + 0.5) * patch_size


def _check_probabilities(attn: torch.Tensor, name: str) -> None:
    """Refuse attention scores that are not probabilities: logits would be averaged and multiplied as if they were."""
    tolerance = 1e-3 if attn.dtype in (torch.float32, torch.float64) else 2e-2   # bf16/fp16 rows sum less exactly
    if attn.numel() and (not torch.isfinite(attn).all() or attn.min() < 0
                         or ((attn.double().sum(-1) - 1).abs() > tolerance).any()):
        raise ValueError(f"{name} must hold attention probabilities (each row ≥ 0, summing to 1), not logits: got "
                         f"values in [{attn.min().item():.3g}, {attn.max().item():.3g}] and row sums up to "
                         f"{attn.double().sum(-1).max().item():.3g}; apply softmax(-1) to the scores first")


def mean_attention_distance(attn: torch.Tensor, grid_size, patch_size: float,
                            num_prefix_tokens: int = 1) -> torch.Tensor:
    """attn (..., heads, N, N) with N = num_prefix_tokens + gh·gw → (..., heads) distances in pixels.

    For each query patch: Σ over key patches of weight × Euclidean distance between the patch centres;
    then the mean over query patches. Prefix tokens are dropped from queries and keys, without
    renormalising the rows (attention paid to the class token counts as distance 0).
    """
    gh, gw = _grid(grid_size)
    expected = num_prefix_tokens + gh * gw
    if attn.dim() < 3 or attn.shape[-1] != expected or attn.shape[-2] != expected:
        raise ValueError(f"attn must be (..., heads, {expected}, {expected}) for a {gh}×{gw} grid with "
                         f"{num_prefix_tokens} prefix token(s); got {tuple(attn.shape)}")
    _check_probabilities(attn, "attn")
    distances = torch.cdist(patch_centres((gh, gw), patch_size), patch_centres((gh, gw), patch_size))
    patches = attn[..., num_prefix_tokens:, num_prefix_tokens:]                  # (..., heads, P, P)
    per_query = (patches.double() * distances.to(attn.device)).sum(-1)          # (..., heads, P)
    return per_query.mean(-1).to(attn.dtype)


def attention_rollout(attentions) -> torch.Tensor:
    """List of per-layer (B, heads, N, N) maps → (B, N, N): how much each output token draws on each input.

    Abnar & Zuidema (2020): average the heads, add the residual as 0.5·A + 0.5·I, renormalise the rows,
    and multiply through the layers (last layer on the left).
    """
    attentions = list(attentions)
    if not attentions:
        raise ValueError("attention_rollout needs at least one layer's attention")
    shape = attentions[0].shape
    if len(shape) != 4 or shape[-1] != shape[-2] or any(a.shape != shape for a in attentions):
        raise ValueError("every layer's attention must be (B, heads, N, N) with one common shape; got "
                         + ", ".join(str(tuple(a.shape)) for a in attentions))
    for i, layer in enumerate(attentions):
        _check_probabilities(layer, f"attentions[{i}]")
    identity = torch.eye(shape[-1], dtype=attentions[0].dtype, device=attentions[0].device)
    rollout = identity.expand(shape[0], -1, -1)
    for layer in attentions:
        mixed = 0.5 * layer.mean(1) + 0.5 * identity                              # (B, N, N)
        mixed = mixed / mixed.sum(-1, keepdim=True)
        rollout = mixed @ rollout
    return rollout


def attention_map_figure(image, attentions, patch_size: int, layer: int, head: int, query: int,
                         rollout: bool = False, num_prefix_tokens: int = 1, title: str = ""):
    """The attention of one query token over the image, as a heat map beside the image.

    image (H, W) or (C, H, W), grey or RGB; attentions: per-layer (heads, N, N) maps of that image. ``query`` 0 is
    the class token when there is one, else patch 0. With ``rollout`` the map is the rollout up to ``layer`` (heads
    averaged). ``title`` heads the figure (which model, which weights).
    """
    image = torch.as_tensor(image).float().cpu()
    image = picture(image[0] if image.dim() == 3 and image.shape[0] == 1 else image)
    height, width = image.shape[:2]
    grid = (height // patch_size, width // patch_size)
    depth, (heads, tokens, _) = len(attentions), attentions[0].shape
    if not 0 <= layer < depth:
        raise ValueError(f"layer={layer} is out of range: the model has layers 0 to {depth - 1}")
    if not 0 <= head < heads:
        raise ValueError(f"head={head} is out of range: each layer has heads 0 to {heads - 1}")
    if not 0 <= query < tokens:
        raise ValueError(f"query={query} is out of range: choose a token from 0 to {tokens - 1}")
    if tokens != num_prefix_tokens + grid[0] * grid[1]:
        raise ValueError(f"{tokens} tokens do not match a {grid[0]}×{grid[1]} grid of {patch_size}-pixel "
                         f"patches plus {num_prefix_tokens} prefix token(s)")
    if rollout:
        row = attention_rollout([a[None].float().cpu() for a in attentions[:layer + 1]])[0, query]
        what = f"rollout through layers 0–{layer}"
    else:
        row = attentions[layer][head, query].float().cpu()
        what = f"layer {layer}, head {head}"
    heat = row[num_prefix_tokens:].reshape(grid).numpy()

    fig, (ax_image, ax_heat) = plt.subplots(1, 2, figsize=(6.4, 3.3))
    ax_image.imshow(image, cmap="gray")
    if query < num_prefix_tokens:
        ax_image.set_title("query: class token")
    else:
        r, c = divmod(query - num_prefix_tokens, grid[1])
        ax_image.add_patch(plt.Rectangle((c * patch_size - 0.5, r * patch_size - 0.5), patch_size, patch_size,
                                         fill=False, edgecolor="red", linewidth=2))
        ax_image.set_title(f"query: patch ({r}, {c})")
    ax_heat.imshow(image, cmap="gray")
    shown = ax_heat.imshow(heat, cmap="inferno", alpha=0.7, extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    fig.colorbar(shown, ax=ax_heat, fraction=0.046, label="attention weight" + (" (composed)" if rollout else ""))
    ax_heat.set_title(what + (f"\n{row[:num_prefix_tokens].sum():.0%} on the class token"
                              if num_prefix_tokens else ""), fontsize=9)
    for ax in (ax_image, ax_heat):
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def attention_distance_figure(distances: dict, image_size: int | None = None):
    """Mean attention distance of every head against depth, one panel per model.

    distances: name → (layers, heads) tensor of pixels (from `mean_attention_distance`); ``image_size``
    draws the image's side as a reference line.
    """
    if not distances:
        raise ValueError("give at least one model's distances, e.g. {'trained': tensor (layers, heads)}")
    fig, axes = plt.subplots(1, len(distances), figsize=(3.6 * len(distances), 3.2), sharey=True, squeeze=False,
                             layout="constrained")
    top = max(float(d.max()) for d in distances.values())
    for ax, (name, table) in zip(axes.flat, distances.items()):
        table = torch.as_tensor(table).float().cpu()
        if table.dim() != 2:
            raise ValueError(f"{name!r}: distances must be (layers, heads); got {tuple(table.shape)}")
        layers, heads = table.shape
        for h in range(heads):
            ax.scatter(range(layers), table[:, h].numpy(), s=18, label=f"head {h}")
        ax.set_xticks(range(layers))
        ax.set_xlabel("layer (depth)")
        ax.set_title(name)
        if image_size:
            ax.axhline(image_size, color="gray", linestyle=":", linewidth=1, label=f"image side ({image_size} px)")
        ax.set_ylim(0, max(top, image_size or 0) * 1.08)
    axes.flat[0].set_ylabel("mean attention distance (pixels)")
    axes.flat[-1].legend(fontsize=7, loc="lower right")
    return fig


# ------------------------------------------------------------------------------- torchvision's ViT and Swin
@torch.no_grad()
def vit_attentions(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and per-layer attention (N, heads, tokens, tokens) of a torchvision ``VisionTransformer`` on ``images``
    (N×3×S×S, S the model's ``image_size``).

    torchvision's encoder blocks call their ``nn.MultiheadAttention`` with ``need_weights=False`` (the fused path);
    here each call is made with ``need_weights=True, average_attn_weights=False`` for the one forward pass, so the
    weights are the ones that produced the output.
    """
    blocks = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no nn.MultiheadAttention: pass a torchvision ViT (vit_b_16…)")
    size = getattr(model, "image_size", None)
    if not torch.is_tensor(images) or images.ndim != 4 or (size and tuple(images.shape[-2:]) != (size, size)):
        raise ValueError(f"images must be N×C×{size}×{size} for this ViT, got "
                         f"{tuple(images.shape) if torch.is_tensor(images) else type(images).__name__}: resize them, "
                         "or build the model with image_size= their side")
    captured, originals = [], {}
    for block in blocks:
        originals[block] = block.forward

        def forward(query, key, value, *args, block=block, **kwargs):
            kwargs.update(need_weights=True, average_attn_weights=False)
            output, weights = originals[block](query, key, value, *args, **kwargs)
            captured.append(weights)
            return output, weights

        block.forward = forward
    try:
        param = next(model.parameters())
        logits = model.eval()(images.to(param.device, param.dtype))
    finally:
        for block, original in originals.items():
            block.forward = original
    return logits, captured


class _SoftmaxRecorder(torch.overrides.TorchFunctionMode):
    """Keeps the output of every softmax computed while it is active (Swin's window attention)."""

    def __init__(self):
        super().__init__()
        self.outputs = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if func is F.softmax or func is torch.softmax or func is torch.Tensor.softmax:
            self.outputs.append(result)
        return result


@torch.no_grad()
def swin_window_attentions(model: nn.Module, image: torch.Tensor) -> tuple[torch.Tensor, list[dict]]:
    """Logits of a torchvision ``SwinTransformer`` on one ``image`` (C×H×W) and, for every block, its window
    attention as torchvision computed it: a dict with ``name``, ``attention`` (windows, heads, T, T; T = window
    side²), ``grid`` (the token map's h, w, before padding to whole windows), ``padded`` (its padded h, w),
    ``window`` and ``shift`` (tokens; the shift is 0 where one window covers the map) and ``token`` (pixels per
    token side). The softmax inside each block's ``shifted_window_attention`` is recorded as it runs.
    """
    from torchvision.models.swin_transformer import ShiftedWindowAttention

    blocks = [(name, m) for name, m in model.named_modules() if isinstance(m, ShiftedWindowAttention)]
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no ShiftedWindowAttention: pass a torchvision Swin (swin_t…)")
    if not torch.is_tensor(image) or image.ndim != 3:
        raise ValueError(f"image must be one C×H×W tensor, got "
                         f"{tuple(image.shape) if torch.is_tensor(image) else type(image).__name__}")
    records, handles = [], []

    def before(name, module, args):
        recorder = _SoftmaxRecorder()
        recorder.__enter__()
        records.append({"name": name, "grid": tuple(args[0].shape[1:3]), "recorder": recorder, "module": module})

    def after(module, args, output):
        records[-1]["recorder"].__exit__(None, None, None)

    for name, module in blocks:
        handles.append(module.register_forward_pre_hook(lambda m, a, name=name: before(name, m, a)))
        handles.append(module.register_forward_hook(after))
    try:
        param = next(model.parameters())
        logits = model.eval()(image[None].to(param.device, param.dtype))
    finally:
        for handle in handles:
            handle.remove()
    height = image.shape[-2]
    for record in records:
        module, (h, w) = record.pop("module"), record["grid"]
        (attention,) = record.pop("recorder").outputs        # one softmax per block: its attention
        window = list(module.window_size)
        padded = (h + (-h) % window[0], w + (-w) % window[1])
        shift = [0 if window[i] >= padded[i] else module.shift_size[i] for i in range(2)]
        record.update(attention=attention.float().cpu(), padded=padded, window=tuple(window), shift=tuple(shift),
                      token=height / h)
    return logits, records


def window_heat(record: dict, row: int, col: int, head: int | None = None) -> torch.Tensor:
    """The attention of the query token at (row, col) over the token map (h×w) of one Swin block — ``record`` from
    `swin_window_attentions` —, zero outside the query's window (heads averaged unless ``head`` is given)."""
    h, w = record["grid"]
    ph, pw = record["padded"]
    wh, ww = record["window"]
    sh, sw = record["shift"]
    attention = record["attention"]                                     # (windows, heads, T, T)
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"query ({row}, {col}) is outside the {h}×{w} token map of {record['name']}: choose row "
                         f"0–{h - 1}, column 0–{w - 1}")
    if head is not None and not 0 <= head < attention.shape[1]:
        raise ValueError(f"head={head} is out of range: this block has heads 0 to {attention.shape[1] - 1}")
    # torchvision rolls the padded map by −shift, then cuts it into windows: find the query there
    r, c = (row - sh) % ph, (col - sw) % pw
    window_index = (r // wh) * (pw // ww) + c // ww
    weights = attention[window_index, head] if head is not None else attention[window_index].mean(0)
    row_weights = weights[(r % wh) * ww + c % ww].reshape(wh, ww)
    heat = torch.zeros(ph, pw)
    top, left = r // wh * wh, c // ww * ww
    for i in range(wh):                                                   # the keys, back in image coordinates
        for j in range(ww):
            heat[(top + i + sh) % ph, (left + j + sw) % pw] = row_weights[i, j]
    return heat[:h, :w]


def window_attention_figure(image, record: dict, row: int, col: int, head: int | None = None, title: str = ""):
    """One Swin block's attention for the query token at (row, col) of its token map, over the image: the key tokens
    of its (shifted) window, heads averaged unless ``head`` is given; the window grid drawn in white.

    ``record`` is one entry of `swin_window_attentions` for ``image`` (C×H×W)."""
    heat = window_heat(record, row, col, head)
    ph, pw = record["padded"]
    wh, ww = record["window"]
    sh, sw = record["shift"]
    shown = picture(torch.as_tensor(image).float())
    height, width = shown.shape[:2]
    token = record["token"]
    fig, (ax_image, ax_heat) = plt.subplots(1, 2, figsize=(7.6, 3.8), layout="constrained")
    for ax in (ax_image, ax_heat):
        ax.imshow(shown, cmap="gray")
        for k in range(-1, ph // wh + 1):                                 # window borders: shifted by the shift
            ax.axhline((k * wh + sh) * token - 0.5, color="white", lw=0.8)
        for k in range(-1, pw // ww + 1):
            ax.axvline((k * ww + sw) * token - 0.5, color="white", lw=0.8)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.axis("off")
    ax_image.add_patch(plt.Rectangle((col * token - 0.5, row * token - 0.5), token, token, fill=False,
                                     edgecolor="red", linewidth=2))
    kind = f"SW-MSA, shift {sh}" if sh or sw else "W-MSA (no shift)"
    ax_image.set_title(f"{record['name']}: {kind}\n{wh}×{ww}-token windows, query ({row}, {col})", fontsize=9)
    drawn = ax_heat.imshow(heat.numpy(), cmap="inferno", alpha=0.75, extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    colorbar(drawn, ax_heat, "attention weight")
    ax_heat.set_title(f"{'mean of the heads' if head is None else f'head {head}'}:\nkeys in the query's window only",
                      fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
