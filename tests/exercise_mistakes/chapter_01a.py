"""Chapter 1a's exercises (01a_convolution_by_hand) done wrong, the way learners do: each entry of `CATALOGUE` is
(exercise, mistaken function, the registered mistake its message must name)."""

import numpy as np


def _loop_conv2d(x, weight, bias, stride, padding, out_size, square=False, pad=True, flip=False):
    """conv2d with explicit loops over the output, the way most first attempts are written."""
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        size_padding = padding
    else:
        size_padding = 0
    k = weight.shape[-1]
    weight = weight[..., ::-1, ::-1] if flip else weight
    h_out = out_size(x.shape[2] - 2 * size_padding, k, stride, size_padding)
    w_out = h_out if square else out_size(x.shape[3] - 2 * size_padding, k, stride, size_padding)
    out = np.zeros((x.shape[0], weight.shape[0], h_out, w_out))
    for i in range(h_out):
        for j in range(w_out):
            window = x[:, None, :, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, :, i, j] = (window * weight[None]).sum((2, 3, 4))
    return out if bias is None else out + bias[None, :, None, None]


def _right_size(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def conv2d_without_plus_one(x, weight, bias=None, stride=1, padding=0):
    return _loop_conv2d(x, weight, bias, stride, padding, lambda n, k, s, p: (n + 2 * p - k) // s)


def conv2d_plus_one_inside(x, weight, bias=None, stride=1, padding=0):
    return _loop_conv2d(x, weight, bias, stride, padding, lambda n, k, s, p: (n + 2 * p - k + 1) // s)


def conv2d_square(x, weight, bias=None, stride=1, padding=0):
    return _loop_conv2d(x, weight, bias, stride, padding, _right_size, square=True)


def conv2d_unpadded(x, weight, bias=None, stride=1, padding=0):
    return _loop_conv2d(x, weight, bias, stride, padding, _right_size, pad=False)


def conv2d_flipped(x, weight, bias=None, stride=1, padding=0):
    return _loop_conv2d(x, weight, bias, stride, padding, _right_size, flip=True)

def max_pool2d_stride_ignored(x, kernel_size, stride=None):
    windows = np.lib.stride_tricks.sliding_window_view(x, (kernel_size, kernel_size), axis=(2, 3))
    return windows[:, :, ::kernel_size, ::kernel_size].max(axis=(-2, -1))


def max_pool2d_from_zero(x, kernel_size, stride=None):
    stride = stride or kernel_size
    h, w = (x.shape[2] - kernel_size) // stride + 1, (x.shape[3] - kernel_size) // stride + 1
    out = np.zeros(x.shape[:2] + (h, w))
    for i in range(h):
        for j in range(w):
            for di in range(kernel_size):
                for dj in range(kernel_size):
                    out[:, :, i, j] = np.maximum(out[:, :, i, j], x[:, :, i * stride + di, j * stride + dj])
    return out


def batch_norm_unbiased(x, gamma, beta, eps=1e-5):
    mean, var = x.mean((0, 2, 3), keepdims=True), x.var((0, 2, 3), ddof=1, keepdims=True)
    return gamma[None, :, None, None] * (x - mean) / np.sqrt(var + eps) + beta[None, :, None, None]


def batch_norm_without_eps(x, gamma, beta, eps=1e-5):
    mean, std = x.mean((0, 2, 3), keepdims=True), x.std((0, 2, 3), keepdims=True)
    return gamma[None, :, None, None] * (x - mean) / std + beta[None, :, None, None]


def batch_norm_over_batch_only(x, gamma, beta, eps=1e-5):
    return gamma[None, :, None, None] * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + beta[None, :, None, None]


CATALOGUE = [
    ("conv2d", conv2d_without_plus_one, "output size missing the +1"),
    ("conv2d", conv2d_plus_one_inside, "+1 inside the division"),
    ("conv2d", conv2d_square, "square image assumed"),
    ("conv2d", conv2d_unpadded, "padding forgotten"),
    ("conv2d", conv2d_flipped, "kernel flipped"),
    ("max_pool2d", max_pool2d_stride_ignored, "stride ignored"),
    ("max_pool2d", max_pool2d_from_zero, "maximum starts at 0"),
    ("batch_norm_train", batch_norm_unbiased, "unbiased variance"),
    ("batch_norm_train", batch_norm_without_eps, "eps forgotten"),
    ("batch_norm_train", batch_norm_over_batch_only, "batch axis only"),
]
