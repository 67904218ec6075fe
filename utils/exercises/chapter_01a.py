"""The exercises of Chapter 1a (01a_convolution_by_hand): their references, cases and known mistakes."""

import numpy as np
import torch
import torch.nn.functional as F

from .. import numpy_layers
from .base import Exercise, Mistake, normalised, random_arrays


def _conv2d_cases():
    return [(*random_arrays((2, 3, 9, 9), (4, 3, 3, 3)), None, 1, 0),
            (*random_arrays((1, 2, 8, 8), (3, 2, 3, 3), (3,)), 2, 1),
            (*random_arrays((2, 1, 7, 7), (2, 1, 5, 5), (2,), seed=1), 1, 2),
            # H=9, p=1, k=3, s=2: (H+2p−k)/s is whole, so the +1 inside the division shows
            (*random_arrays((1, 2, 9, 12), (3, 2, 3, 3), (3,), seed=2), 2, 1),
            (*random_arrays((2, 3, 10, 6), (2, 3, 3, 3), (2,), seed=3), 1, 0)]   # taller than wide


def _cropped_conv2d(size):
    """A conv2d whose output is cut to ``size(length, k, stride, padding)`` rows and columns (a wrong formula)."""
    def wrong(x, weight, bias=None, stride=1, padding=0):
        out, k = numpy_layers.conv2d(x, weight, bias, stride, padding), weight.shape[-1]
        return out[..., :size(x.shape[-2], k, stride, padding), :size(x.shape[-1], k, stride, padding)]
    return wrong


CONV2D_MISTAKES = (
    Mistake("output size missing the +1", _cropped_conv2d(lambda n, k, s, p: (n + 2 * p - k) // s),
            "the output size is missing the +1: H_out = (H + 2·padding − k) // stride + 1"),
    Mistake("+1 inside the division", _cropped_conv2d(lambda n, k, s, p: (n + 2 * p - k + 1) // s),
            "the +1 is inside the division: H_out = (H + 2·padding − k) // stride + 1, not (H + 2·padding − k + 1) "
            "// stride (they differ when the stride divides H + 2·padding − k)"),
    Mistake("square image assumed", lambda *args: (out := numpy_layers.conv2d(*args))[..., :out.shape[-2]],
            "the image is assumed square: the output's width comes from W, not H"),
    Mistake("padding forgotten", lambda x, weight, bias=None, stride=1, padding=0:
            numpy_layers.conv2d(x, weight, bias, stride, 0), "the padding is forgotten (np.pad H and W first)"),
    Mistake("kernel flipped", lambda x, weight, bias=None, stride=1, padding=0:
            numpy_layers.conv2d(x, weight[..., ::-1, ::-1], bias, stride, padding),
            "the kernel is flipped: deep learning's conv2d is a cross-correlation (no flip)"),
    Mistake("bias forgotten", lambda x, weight, bias=None, stride=1, padding=0:
            numpy_layers.conv2d(x, weight, None, stride, padding), "the bias is not added"),
)


def _torch_max_pool2d(x, kernel_size, stride=None):
    return F.max_pool2d(torch.from_numpy(x), kernel_size, stride).numpy()


def _max_pool2d_cases():
    return [(*random_arrays((2, 3, 8, 8)), 2), (*random_arrays((1, 2, 9, 9), seed=1), 3, 2),
            (-np.abs(random_arrays((2, 2, 7, 10), seed=2)[0]), 2)]       # all negative, not square, one row left over


MAX_POOL2D_MISTAKES = (
    Mistake("stride ignored", lambda x, kernel_size, stride=None: _torch_max_pool2d(x, kernel_size),
            "the stride is ignored: the windows step by kernel_size"),
    Mistake("windows step by one", lambda x, kernel_size, stride=None: _torch_max_pool2d(x, kernel_size, 1),
            "the windows step by 1: the stride defaults to kernel_size"),
    Mistake("maximum starts at 0", lambda *args: np.maximum(_torch_max_pool2d(*args), 0),
            "the running maximum starts at 0, so all-negative windows give 0 (start from −∞ or the window itself)"),
)


def _torch_batch_norm(x, gamma, beta, eps=1e-5):
    return F.batch_norm(torch.from_numpy(x), None, None, torch.from_numpy(gamma), torch.from_numpy(beta),
                        training=True, eps=eps).numpy()


def _batch_norm_cases():
    (constant,) = random_arrays((1, 4, 3, 5), seed=3)
    constant[:, 2] = 3.0                                           # variance 0: only eps keeps it finite
    return [tuple(random_arrays((4, 3, 5, 5), (3,), (3,))), tuple(random_arrays((2, 6, 3, 3), (6,), (6,), seed=2)),
            (constant, *random_arrays((4,), (4,), seed=4))]


def _channel(vector):
    return vector[None, :, None, None]


BATCH_NORM_MISTAKES = (
    Mistake("unbiased variance", lambda x, gamma, beta, eps=1e-5:
            normalised(x, _channel(gamma), _channel(beta), eps, (0, 2, 3), ddof=1),
            "the variance is unbiased (ddof=1): BatchNorm normalises with the biased one, x.var()"),
    Mistake("batch axis only", lambda x, gamma, beta, eps=1e-5:
            normalised(x, _channel(gamma), _channel(beta), eps, 0),
            "the statistics are over N only: one mean and variance per channel over N, H and W, axis=(0, 2, 3)"),
    Mistake("eps forgotten", lambda x, gamma, beta, eps=1e-5:
            normalised(x, _channel(gamma), _channel(beta), 0.0, (0, 2, 3)),
            "eps is forgotten: a constant channel has variance 0, divide by sqrt(var + eps)"),
)


EXERCISES = [
    Exercise("conv2d", "01a_convolution_by_hand", "medium", numpy_layers.conv2d, _conv2d_cases, CONV2D_MISTAKES,
             forbidden=("conv2d", "Conv2d", "correlate2d", "convolve2d", "ndimage.correlate", "ndimage.convolve")),
    Exercise("max_pool2d", "01a_convolution_by_hand", "easy", _torch_max_pool2d, _max_pool2d_cases,
             MAX_POOL2D_MISTAKES, forbidden=("max_pool2d", "MaxPool2d", "maximum_filter")),
    Exercise("batch_norm_train", "01a_convolution_by_hand", "easy", _torch_batch_norm, _batch_norm_cases,
             BATCH_NORM_MISTAKES, forbidden=("batch_norm", "BatchNorm2d")),
]
