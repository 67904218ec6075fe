"""Chapter 2's exercises (02_attention_modules) done wrong, the way learners do: each entry of `CATALOGUE` is
(exercise, mistaken function, the registered mistake its message must name)."""

import torch
import torch.nn.functional as F


def squeeze_excitation_max_pool(x, w1, b1, w2, b2):
    squeezed = x.flatten(2).max(dim=2).values                   # "the strongest response" instead of the average
    hidden = torch.relu(squeezed @ w1.T + b1)
    return x * torch.sigmoid(hidden @ w2.T + b2).view(x.shape[0], x.shape[1], 1, 1)


def squeeze_excitation_without_relu(x, w1, b1, w2, b2):
    squeezed = x.mean(dim=(2, 3))
    excited = torch.sigmoid((squeezed @ w1.T + b1) @ w2.T + b2)
    return x * excited.unsqueeze(-1).unsqueeze(-1)


def squeeze_excitation_softmax(x, w1, b1, w2, b2):
    squeezed = x.mean(dim=(2, 3))
    scores = F.relu(squeezed @ w1.T + b1) @ w2.T + b2
    weights = scores.exp() / scores.exp().sum(dim=1, keepdim=True)   # "attention weights sum to one"
    return x * weights[:, :, None, None]


def eca_rolled(x, kernel):
    descriptor = x.mean(dim=(2, 3))
    k = len(kernel)
    mixed = torch.zeros_like(descriptor)
    for j in range(k):
        mixed += kernel[j] * torch.roll(descriptor, shifts=k // 2 - j, dims=1)   # neighbour c + j − k // 2
    return x * torch.sigmoid(mixed)[:, :, None, None]


def eca_true_convolution(x, kernel):
    descriptor = x.mean(dim=(2, 3))
    channels, k = descriptor.shape[1], len(kernel)
    padded = torch.cat([torch.zeros(len(x), k // 2, dtype=x.dtype), descriptor,
                        torch.zeros(len(x), k // 2, dtype=x.dtype)], dim=1)
    gate = torch.stack([sum(kernel[k - 1 - j] * padded[:, c + j] for j in range(k)) for c in range(channels)], 1)
    return x * torch.sigmoid(gate).reshape(*gate.shape, 1, 1)


def eca_causal(x, kernel):
    descriptor = x.mean(dim=(2, 3))
    k = len(kernel)
    padded = F.pad(descriptor, (k - 1, 0))
    gate = torch.sigmoid(padded.unfold(1, k, 1) @ kernel)
    return x * gate[..., None, None]


def _channel_refined(x, w1, b1, w2, b2):
    avg = x.mean(dim=(2, 3))
    mx = x.amax(dim=(2, 3))
    avg_out = torch.relu(avg @ w1.T + b1) @ w2.T + b2
    max_out = torch.relu(mx @ w1.T + b1) @ w2.T + b2
    return x * torch.sigmoid(avg_out + max_out)[:, :, None, None]


def cbam_parallel(x, w1, b1, w2, b2, spatial_weight):
    channel_out = _channel_refined(x, w1, b1, w2, b2)
    stacked = torch.cat([x.mean(dim=1, keepdim=True), x.max(dim=1, keepdim=True).values], dim=1)   # from x itself
    spatial = torch.sigmoid(F.conv2d(stacked, spatial_weight, padding=spatial_weight.shape[-1] // 2))
    return channel_out * spatial


def cbam_descriptors_added_first(x, w1, b1, w2, b2, spatial_weight):
    descriptor = x.mean(dim=(2, 3)) + x.amax(dim=(2, 3))
    refined = x * torch.sigmoid(torch.relu(descriptor @ w1.T + b1) @ w2.T + b2)[:, :, None, None]
    stacked = torch.cat([refined.mean(dim=1, keepdim=True), refined.amax(dim=1, keepdim=True)], dim=1)
    return refined * torch.sigmoid(F.conv2d(stacked, spatial_weight, padding=spatial_weight.shape[-1] // 2))


def cbam_max_then_mean(x, w1, b1, w2, b2, spatial_weight):
    refined = _channel_refined(x, w1, b1, w2, b2)
    stacked = torch.cat([refined.amax(dim=1, keepdim=True), refined.mean(dim=1, keepdim=True)], dim=1)
    return refined * torch.sigmoid(F.conv2d(stacked, spatial_weight, padding=spatial_weight.shape[-1] // 2))


CATALOGUE = [
    ("squeeze_excitation", squeeze_excitation_max_pool, "max-pooled squeeze"),
    ("squeeze_excitation", squeeze_excitation_without_relu, "no ReLU"),
    ("squeeze_excitation", squeeze_excitation_softmax, "softmax over the channels"),
    ("efficient_channel_attention", eca_rolled, "circular padding"),
    ("efficient_channel_attention", eca_true_convolution, "kernel flipped"),
    ("efficient_channel_attention", eca_causal, "padded on one side"),
    ("cbam_attention", cbam_parallel, "spatial gate from x"),
    ("cbam_attention", cbam_descriptors_added_first, "one MLP on average + max"),
    ("cbam_attention", cbam_max_then_mean, "max and mean swapped"),
]
