"""Chapter 3b's exercises (03b_vit_and_swin) done wrong, the way learners do: each entry of `CATALOGUE` is
(exercise, mistaken function, the registered mistake its message must name)."""

import torch


def patch_embedding_channels_last(images, weight, bias):
    size = weight.shape[-1]
    patches = images.unfold(2, size, size).unfold(3, size, size)         # (B, C, H/P, W/P, P, P)
    patches = patches.permute(0, 2, 3, 4, 5, 1)                         # pixels as (row, col, RGB), like an image
    return patches.reshape(len(images), -1, weight[0].numel()) @ weight.reshape(len(weight), -1).T + bias


def patch_embedding_plain_reshape(images, weight, bias):
    tokens = images.reshape(images.shape[0], -1, weight[0].numel())    # N rows of C·P·P values
    return tokens @ weight.reshape(weight.shape[0], -1).T + bias


def patch_embedding_column_order(images, weight, bias):
    size = weight.shape[-1]
    tokens = []
    for left in range(0, images.shape[3], size):                        # across, then down: columns first
        for top in range(0, images.shape[2], size):
            patch = images[:, :, top:top + size, left:left + size].flatten(1)
            tokens.append(patch @ weight.flatten(1).T + bias)
    return torch.stack(tokens, dim=1)


def window_partition_plain_reshape(x, window_size):
    return x.reshape(-1, window_size * window_size, x.shape[-1])


def window_partition_column_order(x, window_size):
    windows = []
    for image in x:
        for left in range(0, x.shape[2], window_size):
            for top in range(0, x.shape[1], window_size):
                windows.append(image[top:top + window_size, left:left + window_size].reshape(-1, x.shape[-1]))
    return torch.stack(windows)


def window_partition_transposed_windows(x, window_size):
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window_size, window_size, width // window_size, window_size, channels)
    return x.permute(0, 1, 3, 4, 2, 5).reshape(-1, window_size * window_size, channels)


def _label_windows(labels, window_size):
    height, width = labels.shape
    windows = labels.view(height // window_size, window_size, width // window_size, window_size)
    return windows.permute(0, 2, 1, 3).reshape(-1, window_size * window_size)


def shifted_window_mask_window_ids_only(height, width, window_size, shift_size):
    # every token labelled with its shifted window in the image, rolled like the features: one label per window
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    window_row, window_col = ((rows - shift_size) % height) // window_size, ((cols - shift_size) % width) // window_size
    shifted_window = window_row * width + window_col
    labels = _label_windows(torch.roll(shifted_window, (-shift_size, -shift_size), (0, 1)), window_size)
    return labels[:, :, None] == labels[:, None, :]


def shifted_window_mask_cut_at_shift(height, width, window_size, shift_size):
    labels = torch.zeros(height, width, dtype=torch.long)
    region = 0
    for rows in (slice(0, shift_size), slice(shift_size, window_size), slice(window_size, None)):
        for cols in (slice(0, shift_size), slice(shift_size, window_size), slice(window_size, None)):
            labels[rows, cols] = region
            region += 1
    windows = _label_windows(labels, window_size)
    return windows.unsqueeze(1) == windows.unsqueeze(2)


def shifted_window_mask_blocked_pairs(height, width, window_size, shift_size):
    labels = torch.zeros(height, width, dtype=torch.long)
    if shift_size > 0:
        cuts = (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None))
        for i, rows in enumerate(cuts):
            for j, cols in enumerate(cuts):
                labels[rows, cols] = 3 * i + j
    windows = _label_windows(labels, window_size)
    return windows.unsqueeze(1) != windows.unsqueeze(2)             # True = masked, as nn.MultiheadAttention reads it


def shifted_window_mask_official_minus_100(height, width, window_size, shift_size):
    image_mask = torch.zeros(height, width)
    count = 0
    for h in (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None)):
        for w in (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None)):
            image_mask[h, w] = count
            count += 1
    mask_windows = _label_windows(image_mask, window_size)
    attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
    return attn_mask.masked_fill(attn_mask != 0, -100.0).masked_fill(attn_mask == 0, 0.0)


CATALOGUE = [
    ("patch_embedding", patch_embedding_channels_last, "channels last in each patch"),
    ("patch_embedding", patch_embedding_plain_reshape, "reshaped without a permute"),
    ("patch_embedding", patch_embedding_column_order, "patches numbered column by column"),
    ("window_partition", window_partition_plain_reshape, "reshaped without a permute"),
    ("window_partition", window_partition_column_order, "windows numbered column by column"),
    ("window_partition", window_partition_transposed_windows, "tokens of a window column by column"),
    ("shifted_window_mask", shifted_window_mask_window_ids_only, "no regions"),
    ("shifted_window_mask", shifted_window_mask_cut_at_shift, "regions cut from the top-left"),
    ("shifted_window_mask", shifted_window_mask_blocked_pairs, "mask inverted"),
    ("shifted_window_mask", shifted_window_mask_official_minus_100, "the official code's additive mask"),
]
