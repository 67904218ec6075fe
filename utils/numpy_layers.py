"""The classic layers written by hand in NumPy, with `torch.nn.functional`'s arguments and semantics.

Introduced in Chapter 1 (01a), where each one is asserted equal to its torch counterpart. Arrays are
NCHW (batch, channels, height, width), like torch. These are for understanding, not speed: a
convolution here is a sliding-window view and one `einsum`.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """⌊(size + 2·padding − dilation·(kernel − 1) − 1) / stride⌋ + 1 — one spatial side of a conv or pool."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _windows(x: np.ndarray, kernel, stride, dilation) -> np.ndarray:
    """All k×k windows of an (already padded) NCHW array: shape N×C×H_out×W_out×kh×kw."""
    (kh, kw), (sh, sw), (dh, dw) = _pair(kernel), _pair(stride), _pair(dilation)
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    if x.shape[2] < span[0] or x.shape[3] < span[1]:
        raise ValueError(f"input {x.shape[2]}×{x.shape[3]} (after padding) is smaller than the kernel's "
                         f"span {span[0]}×{span[1]}: pad more or use a smaller kernel")
    return sliding_window_view(x, span, axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]


def _padding(padding, kernel, dilation) -> tuple[tuple[int, int], tuple[int, int]]:
    """(top, bottom), (left, right) from an int, a pair, "valid" or "same" (extra pixel at the end)."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        sides = []
        for k, d in zip(_pair(kernel), _pair(dilation)):
            total = d * (k - 1)
            sides.append((total // 2, total - total // 2))
        return tuple(sides)
    ph, pw = _pair(padding)
    return (ph, ph), (pw, pw)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """2-D convolution (cross-correlation, as in every framework).

    Shapes: x ``N×C_in×H×W``; weight ``C_out×(C_in/groups)×kh×kw``; bias ``C_out``;
    returns ``N×C_out×H_out×W_out`` with ``H_out = conv_output_size(H, kh, stride, padding, dilation)``.
    ``groups`` splits the channels into independent convolutions (``groups = C_in``: depthwise).
    """
    n, c_in = x.shape[:2]
    c_out, c_per_group, kh, kw = weight.shape
    if c_in % groups or c_out % groups or c_in // groups != c_per_group:
        raise ValueError(f"groups={groups} needs C_in ({c_in}) and C_out ({c_out}) divisible by it and "
                         f"weight.shape[1] == C_in/groups, got {c_per_group}")
    if padding == "same" and _pair(stride) != (1, 1):
        raise ValueError("padding='same' needs stride=1 (as in torch)")
    (top, bottom), (left, right) = _padding(padding, (kh, kw), dilation)
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    win = _windows(x, (kh, kw), stride, dilation)                      # N×C×Ho×Wo×kh×kw
    h_out, w_out = win.shape[2:4]
    win = win.reshape(n, groups, c_in // groups, h_out, w_out, kh, kw)
    w = weight.reshape(groups, c_out // groups, c_per_group, kh, kw)
    out = np.einsum("ngchwij,gocij->ngohw", win, w, optimize=True).reshape(n, c_out, h_out, w_out)
    return out if bias is None else out + bias[None, :, None, None]


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1) -> np.ndarray:
    """Max over each window; padded positions count as −∞ so they never win. No parameters."""
    (top, bottom), (left, right) = _padding(padding, kernel_size, dilation)
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=-np.inf)
    return _windows(x, kernel_size, stride or kernel_size, dilation).max(axis=(-2, -1))


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True) -> np.ndarray:
    """Mean over each window; with ``count_include_pad`` padded zeros count in the divisor (torch's default)."""
    (top, bottom), (left, right) = _padding(padding, kernel_size, 1)
    pads = ((0, 0), (0, 0), (top, bottom), (left, right))
    sums = _windows(np.pad(x, pads), kernel_size, stride or kernel_size, 1).sum(axis=(-2, -1))
    if count_include_pad:
        kh, kw = _pair(kernel_size)
        return sums / (kh * kw)
    counts = _windows(np.pad(np.ones_like(x[:1, :1]), pads), kernel_size, stride or kernel_size, 1)
    return sums / counts.sum(axis=(-2, -1))


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5) -> np.ndarray:
    """BatchNorm over every axis except channels (axis 1): ``N×C`` or ``N×C×H×W``.

    Training: normalise with this batch's mean and (biased) variance, and update the running arrays **in
    place**: ``running = (1 − momentum)·running + momentum·batch_stat`` (the variance unbiased, as torch).
    Inference: normalise with the running statistics. Then scale by γ (``weight``) and shift by β (``bias``).
    """
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        count = x.size / x.shape[1]
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += momentum * var * count / max(count - 1, 1)
    else:
        mean, var = running_mean, running_var
    out = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5) -> np.ndarray:
    """LayerNorm over the last ``len(normalized_shape)`` axes of each sample; same in training and inference."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[-len(normalized_shape):]) != normalized_shape:
        raise ValueError(f"the last axes of x {x.shape} must be normalized_shape {normalized_shape}")
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    out = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def softmax(logits, axis=-1) -> np.ndarray:
    """exp(z − max z) / Σ exp(z − max z): subtracting the max changes nothing but avoids overflow."""
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def cross_entropy(logits, labels) -> float:
    """Mean of −log softmax(logits)[label] over rows (``logits`` N×K, integer ``labels`` N)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())
