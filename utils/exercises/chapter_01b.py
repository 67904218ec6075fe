"""The exercises of Chapter 1b (01b_cnn_architectures): their references, cases and known mistakes."""

import torch
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_weights

from ..measuring import count_parameters
from ..models import Bottleneck
from .base import Exercise, Mistake, random_tensors


def _projection_cases():
    return [(*random_tensors((2, 4, 8, 6), (4, 4, 1, 1)), 2),           # stride only: as many channels out as in
            (*random_tensors((1, 3, 9, 7), (6, 3, 1, 1), seed=1), 2),   # odd sizes: the last row and column are kept
            (*random_tensors((3, 2, 5, 6), (5, 2, 1, 1), seed=2), 1),   # channels only
            (*random_tensors((1, 2, 7, 10), (3, 2, 1, 1), seed=3), 3)]


def _projection(x, weight, stride):
    return F.conv2d(x, weight, stride=stride)


PROJECTION_MISTAKES = (
    Mistake("windows averaged", lambda x, weight, stride: F.conv2d(F.avg_pool2d(x, stride), weight),
            "each stride×stride window is averaged first (ResNet-D's shortcut), and a row or column left over is "
            "dropped: a strided 1×1 convolution keeps the first pixel of each window, x[:, :, ::stride, ::stride]"),
    Mistake("last pixel of each window", lambda x, weight, stride:
            F.conv2d(x[:, :, stride - 1:, stride - 1:], weight, stride=stride),
            "the kept pixels start at stride − 1: the first window of a convolution starts at pixel 0, so keep rows "
            "and columns 0, stride, 2·stride …"),
    Mistake("weight transposed", lambda x, weight, stride: F.conv2d(x, weight.transpose(0, 1), stride=stride),
            "the weight is applied transposed: output channel o is Σ_c weight[o, c]·x[c], a sum over the weight's "
            "second axis"),
)


def _bottleneck_cases():
    return [(256, 64, 1),       # keeps its shape: identity shortcut
            (64, 64, 1),        # 64 → 256 channels at stride 1: projected
            (256, 128, 2),      # stride and channels change
            (512, 128, 2),      # 512 channels in and out, but strided: projected
            (3, 5, 1)]


def _bottleneck_counted(in_channels, channels, stride):
    with torch.device("meta"):                  # shapes only: no memory, no random initialisation
        return count_parameters(Bottleneck(in_channels, channels, stride))


def _bottleneck_count(in_channels, channels, stride, expansion=4, per_batch_norm_channel=2, strided_projection=False):
    out_channels = expansion * channels
    weights = in_channels * channels + 9 * channels * channels + channels * out_channels
    norms = channels + channels + out_channels
    if stride != 1 or (in_channels != out_channels and not strided_projection):
        weights, norms = weights + in_channels * out_channels, norms + out_channels
    return weights + per_batch_norm_channel * norms


BOTTLENECK_MISTAKES = (
    Mistake("BatchNorm not counted", lambda *args: _bottleneck_count(*args, per_batch_norm_channel=0),
            "the BatchNorms are not counted: each has γ and β per channel, 2 parameters a channel"),
    Mistake("running statistics counted", lambda *args: _bottleneck_count(*args, per_batch_norm_channel=4),
            "a BatchNorm is counted as 4 numbers a channel: its running mean and variance are buffers, not parameters; "
            "only γ and β are"),
    Mistake("no expansion", lambda *args: _bottleneck_count(*args, expansion=1),
            "the last 1×1 convolution does not expand: it maps channels → 4·channels"),
    Mistake("projection only when strided", lambda *args: _bottleneck_count(*args, strided_projection=True),
            "the shortcut is projected only when the stride is not 1: it is also projected when in_channels ≠ "
            "4·channels, at any stride"),
)


def _fold_cases():
    def batch_norm(channels, seed, smallest=0.5, largest=2.0):
        gamma, beta, mean, uniform = random_tensors((channels,), (channels,), (channels,), (channels,), seed=seed)
        variance = smallest + (largest - smallest) * torch.special.ndtr(uniform)     # spread over [smallest, largest]
        return gamma, beta, mean, variance

    weight, bias = random_tensors((4, 4, 3, 3), (4,))
    weight_1x1, = random_tensors((6, 3, 1, 1), seed=1)
    weight_small, bias_small = random_tensors((5, 2, 3, 3), (5,), seed=2)
    weight_one, bias_one = random_tensors((1, 3, 5, 3), (1,), seed=3)
    return [(weight, bias, *batch_norm(4, 10), 1e-5),                            # as many channels out as in
            (weight_1x1, None, *batch_norm(6, 11), 1e-5),                        # no convolution bias
            (weight_small, bias_small, *batch_norm(5, 12, 1e-4, 1e-3), 1e-3),   # variances below ε: ε matters
            (weight_one, bias_one, *batch_norm(1, 13), 0.1)]                     # one output channel, 5×3 kernel


def _fold(weight, bias, gamma, beta, running_mean, running_var, eps):
    return fuse_conv_bn_weights(weight, bias, running_mean, running_var, eps, gamma, beta)


def _folded_with_scale(scale_of, input_channels=False, bias_through_scale=True):
    def wrong(weight, bias, gamma, beta, running_mean, running_var, eps):
        scale = scale_of(gamma, running_var, eps)
        bias = torch.zeros_like(running_mean) if bias is None else bias
        fused_bias = (bias - running_mean) * scale + beta if bias_through_scale else bias - running_mean * scale + beta
        shape = (1, -1, 1, 1) if input_channels else (-1, 1, 1, 1)
        return weight * scale.reshape(shape), fused_bias
    return wrong


def _proper_scale(gamma, running_var, eps):
    return gamma / torch.sqrt(running_var + eps)


FOLD_MISTAKES = (
    Mistake("eps forgotten", _folded_with_scale(lambda gamma, running_var, eps: gamma / torch.sqrt(running_var)),
            "ε is left out: the scale is γ / sqrt(var + ε), and with small variances ε matters"),
    Mistake("divided by the variance", _folded_with_scale(lambda gamma, running_var, eps: gamma / (running_var + eps)),
            "the kernels are divided by the variance: divide by the standard deviation, sqrt(var + ε)"),
    Mistake("bias not scaled", _folded_with_scale(_proper_scale, bias_through_scale=False),
            "the convolution's bias is not scaled: BN sees conv(x) + bias, so the fused bias is (bias − mean)·scale "
            "+ β"),
    Mistake("scale on the input channels", _folded_with_scale(_proper_scale, input_channels=True),
            "the scale multiplies the input channels' axis: it belongs to the output channels, "
            "scale[:, None, None, None]"),
)


EXERCISES = [
    Exercise("projection_shortcut", "01b_cnn_architectures", "easy", _projection, _projection_cases,
             PROJECTION_MISTAKES, forbidden=("conv2d", "Conv2d", "conv1d", "Conv1d", "projection")),
    Exercise("bottleneck_parameters", "01b_cnn_architectures", "easy", _bottleneck_counted, _bottleneck_cases,
             BOTTLENECK_MISTAKES, forbidden=("count_parameters", "Bottleneck", "Conv2d", "BatchNorm2d", "parameters")),
    Exercise("fold_batch_norm", "01b_cnn_architectures", "medium", _fold, _fold_cases, FOLD_MISTAKES,
             forbidden=("fuse_conv_bn_weights", "fuse_conv_bn_eval", "fuse_modules", "batch_norm", "BatchNorm2d")),
]
