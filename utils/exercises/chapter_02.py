"""The exercises of Chapter 2 (02_attention_modules): their references, cases and known mistakes."""

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import SqueezeExcitation

from ..attention_modules import CBAM, ECA, hidden_channels
from .base import Exercise, Mistake, random_tensors


def _copy(parameter, value):
    with torch.no_grad():
        parameter.copy_(value.reshape(parameter.shape))


def _torchvision_se(x, w1, b1, w2, b2):
    module = SqueezeExcitation(x.shape[1], w1.shape[0]).to(x.dtype)
    for parameter, value in zip((module.fc1.weight, module.fc1.bias, module.fc2.weight, module.fc2.bias),
                                (w1, b1, w2, b2)):
        _copy(parameter, value)
    with torch.no_grad():
        return module(x)


def _se_cases():
    # (x, w1, b1, w2, b2): non-square maps, a batch of one, a 1×1 map (where max and mean pooling agree)
    return [tuple(random_tensors((batch, channels, height, width), (hidden, channels), (hidden,),
                                 (channels, hidden), (channels,), seed=seed))
            for seed, (batch, channels, height, width, hidden) in enumerate(
                ((2, 8, 5, 3, 2), (1, 6, 4, 4, 3), (3, 4, 1, 1, 4), (2, 16, 3, 6, 4)))]


def _se(x, w1, b1, w2, b2, pool=partial(torch.mean, dim=(2, 3)), activation=F.relu,
        normalise=torch.sigmoid):
    hidden = activation(pool(x) @ w1.T + b1)
    return x * normalise(hidden @ w2.T + b2)[:, :, None, None]


SE_MISTAKES = (
    Mistake("max-pooled squeeze", partial(_se, pool=partial(torch.amax, dim=(2, 3))),
            "the squeeze takes each channel's maximum: SE squeezes by the global average, x.mean((2, 3))"),
    Mistake("no ReLU", partial(_se, activation=lambda hidden: hidden),
            "there is no ReLU between the two layers: without it they collapse into one linear map"),
    Mistake("softmax over the channels", partial(_se, normalise=partial(torch.softmax, dim=1)),
            "the gates are a softmax over the channels: SE's gates are independent sigmoids, each in (0, 1), "
            "they need not sum to 1"),
)


def _course_eca(x, kernel):
    module = ECA(x.shape[1]).to(x.dtype)
    if module.conv.kernel_size[0] != len(kernel):
        raise ValueError(f"ECA on {x.shape[1]} channels uses {module.conv.kernel_size[0]} weights, got {len(kernel)}")
    _copy(module.conv.weight, kernel)
    with torch.no_grad():
        return module(x)


def _eca_cases():
    # channel counts whose adaptive kernel (eca_kernel_size) is 3, 5, 3, 5 and 1; a batch of one, 1×1 maps
    return [tuple(random_tensors((batch, channels, height, width), (k,), seed=seed))
            for seed, (batch, channels, height, width, k) in enumerate(
                ((2, 8, 3, 5, 3), (1, 128, 2, 3, 5), (3, 32, 1, 1, 3), (2, 200, 1, 2, 5), (2, 6, 4, 3, 1)))]


def _eca(x, kernel, pad=lambda d, p: F.pad(d, (p, p)), flip=False):
    """ECA with the descriptor padded by ``pad(descriptor, k // 2)`` to C + k − 1 values."""
    descriptor = x.mean((2, 3))
    k = len(kernel)
    windows = pad(descriptor, k // 2).unfold(1, k, 1)
    return x * torch.sigmoid(windows @ (kernel.flip(0) if flip else kernel))[:, :, None, None]


ECA_MISTAKES = (
    Mistake("circular padding", partial(_eca, pad=lambda d, p: torch.cat([d[:, d.shape[1] - p:], d, d[:, :p]], 1)),
            "the channels wrap around (torch.roll or circular padding): the first channel's neighbours are not the "
            "last ones; pad the descriptor with k // 2 zeros at each end"),
    Mistake("kernel flipped", partial(_eca, flip=True),
            "the kernel is flipped (a true convolution): conv1d is a cross-correlation, channel c + j meets "
            "kernel[k // 2 + j]"),
    Mistake("padded on one side", partial(_eca, pad=lambda d, p: F.pad(d, (2 * p, 0))),
            "all the padding is before the first channel (a causal convolution), shifting the gates by k // 2: "
            "pad k // 2 zeros at each end so that channel c sits at the kernel's centre"),
)


def _course_cbam(x, w1, b1, w2, b2, spatial_weight):
    channels, hidden = x.shape[1], w1.shape[0]
    reduction = channels // hidden
    if hidden_channels(channels, reduction) != hidden:
        raise ValueError(f"the course's CBAM cannot have {hidden} hidden units on {channels} channels")
    module = CBAM(channels, reduction, spatial_weight.shape[-1]).to(x.dtype)
    module.spatial_gate.bn = nn.Identity()          # the paper's spatial gate: σ(conv(...)), no BatchNorm
    mlp, spatial_conv = module.channel_gate.mlp, module.spatial_gate.conv
    for parameter, value in zip((mlp[0].weight, mlp[0].bias, mlp[2].weight, mlp[2].bias, spatial_conv.weight),
                                (w1, b1, w2, b2, spatial_weight)):
        _copy(parameter, value)
    with torch.no_grad():
        return module(x)


def _cbam_cases():
    # (x, w1, b1, w2, b2, spatial_weight): hidden widths the course's CBAM can hold (C // r, at least 8 or C);
    # non-square maps, one narrower than the 7×7 kernel, a batch of one
    return [tuple(random_tensors((batch, channels, height, width), (hidden, channels), (hidden,),
                                 (channels, hidden), (channels,), (1, 2, k, k), seed=seed))
            for seed, (batch, channels, height, width, hidden, k) in enumerate(
                ((2, 16, 5, 6, 8, 3), (1, 24, 7, 4, 12, 7), (3, 4, 3, 3, 4, 3), (2, 32, 2, 5, 8, 5)))]


def _cbam(x, w1, b1, w2, b2, spatial_weight, sequential=True, pool_then_mlp=False, mean_first=True):
    def mlp(descriptor):
        return F.relu(descriptor @ w1.T + b1) @ w2.T + b2
    average, maximum = x.mean((2, 3)), x.amax((2, 3))
    logits = mlp(average + maximum) if pool_then_mlp else mlp(average) + mlp(maximum)
    refined = x * torch.sigmoid(logits)[:, :, None, None]
    source = refined if sequential else x
    maps = [source.mean(1, keepdim=True), source.amax(1, keepdim=True)]
    pooled = torch.cat(maps if mean_first else maps[::-1], 1)
    return refined * torch.sigmoid(F.conv2d(pooled, spatial_weight, padding=spatial_weight.shape[-1] // 2))


CBAM_MISTAKES = (
    Mistake("spatial gate from x", partial(_cbam, sequential=False),
            "the spatial gate is computed from x, beside the channel gate: CBAM is sequential, pool the "
            "channel-refined map x · channel gate"),
    Mistake("one MLP on average + max", partial(_cbam, pool_then_mlp=True),
            "the two descriptors are added before the MLP: pass each through the shared MLP, then add, "
            "σ(MLP(avg) + MLP(max))"),
    Mistake("max and mean swapped", partial(_cbam, mean_first=False),
            "the spatial gate's input is [max, mean]: stack the channel mean first, then the channel max"),
)


EXERCISES = [
    Exercise("squeeze_excitation", "02_attention_modules", "easy", _torchvision_se, _se_cases, SE_MISTAKES,
             forbidden=("SqueezeExcitation", "attention_modules.SE")),
    Exercise("efficient_channel_attention", "02_attention_modules", "medium", _course_eca, _eca_cases, ECA_MISTAKES,
             forbidden=("conv1d", "Conv1d", "conv2d", "Conv2d", "ECA")),
    Exercise("cbam_attention", "02_attention_modules", "medium", _course_cbam, _cbam_cases, CBAM_MISTAKES,
             forbidden=("CBAM", "ChannelGate", "SpatialGate")),
]
