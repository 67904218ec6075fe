"""Chapter 1b's exercises (01b_cnn_architectures) done wrong, the way learners do: each entry of `CATALOGUE` is
(exercise, mistaken function, the registered mistake its message must name)."""

import torch


def projection_shortcut_pooled(x, weight, stride):
    n, c, h, w = x.shape
    rows, cols = h // stride, w // stride
    windows = x[:, :, :rows * stride, :cols * stride].reshape(n, c, rows, stride, cols, stride)
    return torch.einsum("oc,nchw->nohw", weight[:, :, 0, 0], windows.mean((3, 5)))


def projection_shortcut_last_pixel(x, weight, stride):
    kept = x[:, :, stride - 1::stride, stride - 1::stride]
    return torch.einsum("oc,nchw->nohw", weight[:, :, 0, 0], kept)


def projection_shortcut_transposed(x, weight, stride):
    kept = x[:, :, ::stride, ::stride]
    return torch.einsum("co,nchw->nohw", weight[:, :, 0, 0], kept)


def _conv_weights(c_in, c_out, k):
    return k * k * c_in * c_out


def bottleneck_parameters_without_batch_norm(in_channels, channels, stride):
    out = 4 * channels
    total = _conv_weights(in_channels, channels, 1) + _conv_weights(channels, channels, 3)
    total += _conv_weights(channels, out, 1)
    if stride != 1 or in_channels != out:
        total += _conv_weights(in_channels, out, 1)
    return total


def bottleneck_parameters_with_running_statistics(in_channels, channels, stride):
    out = 4 * channels
    total = _conv_weights(in_channels, channels, 1) + _conv_weights(channels, channels, 3)
    total += _conv_weights(channels, out, 1)
    total += 4 * (channels + channels + out)          # γ, β, running mean, running variance
    if stride != 1 or in_channels != out:
        total += _conv_weights(in_channels, out, 1) + 4 * out
    return total


def bottleneck_parameters_without_expansion(in_channels, channels, stride):
    total = _conv_weights(in_channels, channels, 1) + _conv_weights(channels, channels, 3)
    total += _conv_weights(channels, channels, 1) + 2 * 3 * channels
    if stride != 1 or in_channels != channels:
        total += _conv_weights(in_channels, channels, 1) + 2 * channels
    return total


def bottleneck_parameters_projected_when_strided(in_channels, channels, stride):
    out = 4 * channels
    total = _conv_weights(in_channels, channels, 1) + _conv_weights(channels, channels, 3)
    total += _conv_weights(channels, out, 1)
    total += 2 * (channels + channels + out)
    if stride > 1:
        total += _conv_weights(in_channels, out, 1) + 2 * out
    return total


def fold_batch_norm_without_eps(weight, bias, gamma, beta, running_mean, running_var, eps):
    scale = gamma / running_var.sqrt()
    bias = 0 if bias is None else bias
    return weight * scale.view(-1, 1, 1, 1), (bias - running_mean) * scale + beta


def fold_batch_norm_by_variance(weight, bias, gamma, beta, running_mean, running_var, eps):
    scale = gamma / (running_var + eps)
    bias = 0 if bias is None else bias
    return weight * scale.view(-1, 1, 1, 1), (bias - running_mean) * scale + beta


def fold_batch_norm_bias_unscaled(weight, bias, gamma, beta, running_mean, running_var, eps):
    scale = gamma / (running_var + eps).sqrt()
    fused_bias = beta - running_mean * scale
    if bias is not None:
        fused_bias = fused_bias + bias
    return weight * scale.view(-1, 1, 1, 1), fused_bias


def fold_batch_norm_on_input_channels(weight, bias, gamma, beta, running_mean, running_var, eps):
    scale = gamma / (running_var + eps).sqrt()
    bias = 0 if bias is None else bias
    return weight * scale.view(1, -1, 1, 1), (bias - running_mean) * scale + beta


CATALOGUE = [
    ("projection_shortcut", projection_shortcut_pooled, "windows averaged"),
    ("projection_shortcut", projection_shortcut_last_pixel, "last pixel of each window"),
    ("projection_shortcut", projection_shortcut_transposed, "weight transposed"),
    ("bottleneck_parameters", bottleneck_parameters_without_batch_norm, "BatchNorm not counted"),
    ("bottleneck_parameters", bottleneck_parameters_with_running_statistics, "running statistics counted"),
    ("bottleneck_parameters", bottleneck_parameters_without_expansion, "no expansion"),
    ("bottleneck_parameters", bottleneck_parameters_projected_when_strided, "projection only when strided"),
    ("fold_batch_norm", fold_batch_norm_without_eps, "eps forgotten"),
    ("fold_batch_norm", fold_batch_norm_by_variance, "divided by the variance"),
    ("fold_batch_norm", fold_batch_norm_bias_unscaled, "bias not scaled"),
    ("fold_batch_norm", fold_batch_norm_on_input_channels, "scale on the input channels"),
]
