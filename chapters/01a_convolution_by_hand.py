# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 1a — Convolution by hand
#
# **Deep Vision Lab · Chapter 1: CNNs, from convolution to ResNet** (1a convolution by hand → 1b architectures →
# 1c why training works → 1d look inside)
#
# A fully connected layer on a 28×28 image gives every output its own weight for every pixel: 784 weights per
# unit, and no idea that neighbouring pixels belong together. A **convolution** makes two assumptions instead:
#
# * **locality** — a unit looks at a small window (k×k) of the layer below;
# * **weight sharing** — the same window weights are slid over every position.
#
# The result is a layer whose parameter count does not depend on the image size and whose output moves when
# the input moves (*translation equivariance*). In this notebook we write the classic layers ourselves in
# NumPy — convolution, pooling, BatchNorm, LayerNorm — and prove each one equal to PyTorch.

# %%
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils import exercises, numpy_layers, start_chapter
from utils.data import CLASSES, fashion_mnist
from utils.measuring import count_flops, count_parameters
from utils.plotting import comparison_chart, image_grid, show
from utils.receptive_field import receptive_field

device = start_chapter("01a_convolution_by_hand")

# %% [markdown]
# ## The data: Fashion-MNIST
# 70 000 grey 28×28 images of clothing in 10 classes (60 000 for training, 10 000 for testing) — the same
# size as MNIST, but harder: shirts, T-shirts, pullovers and coats are easily confused.

# %%
images, labels = fashion_mnist("test")
assert images.shape == (10_000, 1, 28, 28) and images.dtype == torch.uint8, (
    f"the test split should be 10 000 uint8 images of 1×28×28, got {tuple(images.shape)} {images.dtype}")
examples = torch.stack([images[labels == c][0] for c in range(10)])
show(image_grid(examples, titles=CLASSES, ncols=10, suptitle="One test image per class"))

# %% [markdown]
# ## Convolution is a sliding dot product
# For input `x` (N×C_in×H×W) and weight `w` (C_out×C_in×k×k), output channel `o` at position (i, j) is
#
# $$y_{o,i,j} = b_o + \sum_{c}\sum_{u,v} w_{o,c,u,v}\; x_{c,\, i\cdot s + u\cdot d,\; j\cdot s + v\cdot d}$$
#
# with stride `s`, dilation `d`, and the input padded with `p` zeros on each side. (Deep-learning libraries compute
# this *cross-correlation* and still call it convolution; flipping the kernel would change nothing learnable.)
# `utils.numpy_layers.conv2d` builds every k×k window as a strided *view* of the array (no copy) and contracts it with
# the weights in one `einsum`. Its signature is `torch.nn.functional.conv2d`'s.

# %%
rng = np.random.default_rng(0)
x = (images[:4].float() / 255).numpy()                                # 4 real images, N×1×28×28
for stride, padding, dilation in [(1, 0, 1), (2, 1, 1), (1, 2, 2), (1, "same", 1)]:
    w = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    ours = numpy_layers.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)
    theirs = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride, padding, dilation)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4, atol=1e-5)
    print(f"stride={stride} padding={padding!r:6} dilation={dilation}: output {ours.shape} == torch ✓")


# %% [markdown]
# **Exercise.** In the exercise version of this notebook (`make exercises`) the cell below keeps only the signature
# and hints of `conv2d`: write it, and the self-check after it compares your function with `numpy_layers.conv2d`.

# %% tags=["exercise"]
def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D convolution (cross-correlation) in NumPy: x N×C_in×H×W, weight C_out×C_in×k×k, bias C_out or None
    → N×C_out×H_out×W_out, with H_out = (H + 2·padding − k) // stride + 1.

    Hints: pad H and W with np.pad; np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3)) holds every
    k×k window and [:, :, ::stride, ::stride] keeps every stride-th; one np.einsum multiplies each window with each
    filter and sums over (C_in, k, k).
    """
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    k = weight.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    out = np.einsum("nchwij,ocij->nohw", windows, weight)
    return out if bias is None else out + bias[None, :, None, None]


# %% tags=["self-check"]
conv2d = exercises.check("conv2d", conv2d)

# %% [markdown]
# ## Fixed kernels: Sobel and Laplacian
# Before learning kernels, look at two designed by hand. **Sobel** kernels are first derivatives (with a little
# smoothing) along x and y: large where brightness changes, signed by direction. The **Laplacian** is a second
# derivative: it responds to edges on both sides and to fine detail, and is more sensitive to noise. A trained
# CNN's first layer learns kernels much like these (Chapter 1d shows them).

# %%
sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
laplacian = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)
kernels = np.stack([sobel_x, sobel_x.T, laplacian])[:, None]          # 3×1×3×3: one output channel each
edges = numpy_layers.conv2d(x, kernels, padding=1)
np.testing.assert_allclose(edges, F.conv2d(torch.from_numpy(x), torch.from_numpy(kernels), padding=1).numpy(),
                           rtol=1e-4, atol=1e-5)
magnitude = np.hypot(edges[:, 0], edges[:, 1])
panels = [x[0, 0], edges[0, 0], edges[0, 1], magnitude[0], edges[0, 2]]
show(image_grid(panels, titles=["image", "Sobel x", "Sobel y", "|gradient|", "Laplacian"], ncols=5, size=2,
                suptitle="Hand-designed kernels on a real image", colorbar_label="brightness / response"))
# A flat region gives exactly zero for both: every kernel sums to zero.
assert np.allclose(numpy_layers.conv2d(np.ones((1, 1, 5, 5), np.float32), kernels), 0), (
    "every hand-designed kernel sums to zero, so a flat image should give exactly 0")

# %% [markdown]
# ## Output size, padding and stride
# One side of the output is
#
# $$H_{out} = \left\lfloor \frac{H + 2p - d\,(k-1) - 1}{s} \right\rfloor + 1.$$
#
# * **valid** padding (p = 0) shrinks the map by k − 1; **same** padding, p = (k − 1)/2 with stride 1, keeps it.
# * **Odd kernels** have a centre pixel, so "same" padding is symmetric and an output sits exactly over its input
#   position; an even kernel needs uneven padding and shifts the map by half a pixel.
# * **Stride** 1 keeps resolution; stride 2 halves it (the usual way to downsample inside a network).
#
# The table checks the formula against real layers.

# %%
cases = [(28, 3, 1, 0, 1), (28, 3, 1, 1, 1), (28, 5, 1, 2, 1), (28, 3, 2, 1, 1), (28, 7, 2, 3, 1),
         (224, 11, 4, 2, 1), (224, 7, 2, 3, 1), (28, 3, 1, 2, 2), (27, 3, 2, 0, 1)]
print(f"{'H':>4} {'k':>3} {'s':>3} {'p':>3} {'d':>3} | formula  layer")
for size, k, s, p, d in cases:
    formula = numpy_layers.conv_output_size(size, k, s, p, d)
    layer = nn.Conv2d(1, 1, k, s, p, d)(torch.zeros(1, 1, size, size)).shape[-1]
    assert formula == layer, (
        f"output size formula gives {formula}, nn.Conv2d gives {layer} for H={size} k={k} s={s} p={p} d={d}")
    print(f"{size:4} {k:3} {s:3} {p:3} {d:3} | {formula:7}  {layer:5}")

# %%
# Same padding keeps the size only at stride 1: a stride-2 3×3 with p = 1 gives ⌈H/2⌉, and PyTorch's
# padding="same" refuses any stride but 1 (TensorFlow's "same" pads so that the output is ⌈H/s⌉)
halved = {size: numpy_layers.conv_output_size(size, 3, 2, 1) for size in (28, 27)}
layer_sizes = {size: F.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, 3, 3), stride=2, padding=1).shape[-1]
               for size in halved}
assert halved == layer_sizes == {28: 14, 27: 14}, (
    f"a stride-2 3×3 with p = 1 should give ⌈H/2⌉ = 14 for H = 28 and 27, got {halved}, layers {layer_sizes}")
try:
    nn.Conv2d(1, 1, 3, stride=2, padding="same")
    raise AssertionError("nn.Conv2d should refuse padding='same' with stride 2")
except ValueError as refusal:
    print("nn.Conv2d(stride=2, padding='same'):", refusal)

# %% [markdown]
# ## Parameters, 1×1 convolutions, grouped and depthwise-separable convolutions
# A convolution has `C_out · (C_in / groups) · k · k` weights plus `C_out` biases — independent of H and W. Its
# multiply–accumulates are that weight count times the number of output positions.
#
# * A **1×1 convolution** is a fully connected layer applied at every pixel: it mixes channels, not space — a
#   linear map, the same matrix at each pixel. It changes the channel count cheaply (GoogLeNet's bottlenecks,
#   ResNet's bottleneck blocks); stacked with an activation after each, it makes NiN's per-pixel MLP — the
#   non-linearity comes from the activation, not from the 1×1 convolution.
# * A **grouped** convolution splits the channels into `g` groups convolved separately: `g` times fewer weights
#   (AlexNet's two GPUs, ResNeXt).
# * **Depthwise-separable** = a depthwise k×k convolution (groups = C_in: one filter per channel, space only)
#   followed by a 1×1 pointwise convolution (channels only). MobileNet and Xception use it; DeepLab v3+ too.

# %%
c_in, c_out, k, size = 64, 128, 3, 28
layers = {
    "3×3 standard": nn.Conv2d(c_in, c_out, k, padding=1),
    "1×1 pointwise": nn.Conv2d(c_in, c_out, 1),
    "3×3 grouped (g=4)": nn.Conv2d(c_in, c_out, k, padding=1, groups=4),
    "3×3 depthwise-separable": nn.Sequential(nn.Conv2d(c_in, c_in, k, padding=1, groups=c_in),
                                             nn.Conv2d(c_in, c_out, 1)),
}
expected = {
    "3×3 standard": c_out * c_in * k * k + c_out,
    "1×1 pointwise": c_out * c_in + c_out,
    "3×3 grouped (g=4)": c_out * (c_in // 4) * k * k + c_out,
    "3×3 depthwise-separable": (c_in * k * k + c_in) + (c_out * c_in + c_out),
}
probe = torch.zeros(1, c_in, size, size)
print(f"{'layer':26} {'params':>8} {'MFLOPs':>8}  (input {c_in}×{size}×{size} → {c_out} channels)")
flops = {}
for name, layer in layers.items():
    params = count_parameters(layer)
    assert params == expected[name], f"{name} should have {expected[name]} parameters, got {params}"
    flops[name] = count_flops(layer, probe)
    print(f"{name:26} {params:8d} {flops[name] / 1e6:8.1f}")
assert flops["3×3 depthwise-separable"] < flops["3×3 standard"] / 7, (  # ≈ 1/C_out + 1/k² of the cost
    f"depthwise-separable should cost < 1/7 of a standard 3×3, "
    f"got {flops['3×3 depthwise-separable'] / flops['3×3 standard']:.3f}")

# A 1×1 convolution is the same C_out × C_in matrix multiply (plus the bias) at every pixel, nothing non-linear:
conv1x1 = layers["1×1 pointwise"]
pixels = torch.randn(2, c_in, 5, 5)
per_pixel = torch.einsum("oc,bchw->bohw", conv1x1.weight[:, :, 0, 0], pixels) + conv1x1.bias[:, None, None]
torch.testing.assert_close(conv1x1(pixels), per_pixel, rtol=1e-6, atol=1e-6,   # float32: only the sum's order differs
                           msg="a 1×1 convolution should equal a per-pixel matrix multiply")

# %% [markdown]
# The grouped and depthwise cases also hold for our NumPy convolution:

# %%
xg = rng.standard_normal((2, 8, 10, 10)).astype(np.float32)
for groups in (2, 8):
    wg = rng.standard_normal((8, 8 // groups, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(numpy_layers.conv2d(xg, wg, padding=1, groups=groups),
                               F.conv2d(torch.from_numpy(xg), torch.from_numpy(wg), padding=1, groups=groups).numpy(),
                               rtol=1e-4, atol=1e-5)
print("grouped (g=2) and depthwise (g=8) convolutions == torch ✓")

# %% [markdown]
# ### Kernel size, stride and channels: the trade-off, drawn
# Three knobs set what a convolution costs and what it sees. Below they are swept on a 16-channel 28×28 map (the first
# stage of a small CNN), with "same" padding p = ⌊k/2⌋:
#
# * **kernel size k** — parameters and multiply-adds grow as k², the window a unit sees only as k;
# * **stride s** — the output keeps every s-th position: s = 2 quarters the output and the multiply-adds, leaves the
#   parameters alone, and doubles the step between neighbouring units, so the layers after it see further: a 3×3 on
#   top covers k + 2·s pixels;
# * **output channels C** — more maps: parameters, multiply-adds and output values all grow in proportion.
#
# Multiply-adds = C_out · C_in · k² · H_out · W_out (`count_flops` counts 2 FLOPs for each). Each layer is built on
# the meta device (shapes only, no weights drawn), and the formulas are checked against its output shape,
# `count_parameters`, `count_flops` and `utils.receptive_field` (Chapter 1d's receptive-field arithmetic).

# %%
# Kernel size, stride and channels: what each costs and sees on a 16×28×28 map
map_channels, side = 16, 28
meta_map = torch.zeros(1, map_channels, side, side, device="meta")          # meta device: shapes only, no weights drawn
sweep, names = {}, {}
for kernel in (1, 3, 5, 7):
    for stride in (1, 2):
        for channels in (8, 32):
            conv = nn.Conv2d(map_channels, channels, kernel, stride, kernel // 2, device="meta")
            out_side = numpy_layers.conv_output_size(side, kernel, stride, kernel // 2)
            assert conv(meta_map).shape == (1, channels, out_side, out_side), f"k={kernel} s={stride}: wrong shape"
            row = {"values": channels * out_side ** 2, "params": channels * (map_channels * kernel ** 2 + 1),
                   "macs": channels * map_channels * kernel ** 2 * out_side ** 2, "rf": kernel + 2 * stride}
            on_top = nn.Sequential(conv, nn.Conv2d(channels, 1, 3, padding=1, device="meta"))
            measured = {"values": conv(meta_map).numel(), "params": count_parameters(conv),
                        "macs": count_flops(conv, meta_map) // 2,
                        "rf": receptive_field(on_top, (map_channels, side, side))[-1].rf}
            assert measured == row, f"k={kernel} s={stride} C={channels}: formulas give {row}, the layers {measured}"
            sweep[kernel, stride, channels] = row
            names[kernel, stride, channels] = f"k={kernel} s={stride} C={channels} → {channels}×{out_side}×{out_side}"
macs = {key: row["macs"] for key, row in sweep.items()}
assert all(macs[k, 1, c] == 4 * macs[k, 2, c] and sweep[k, 1, c]["params"] == sweep[k, 2, c]["params"]
           for k in (1, 3, 5, 7) for c in (8, 32)), (
    "stride 2 should quarter the multiply-adds and leave the parameters as they are")
assert 9 * macs[7, 1, 8] == 49 * macs[3, 1, 8] and macs[3, 1, 32] == 4 * macs[3, 1, 8], (
    f"7×7 should cost 49/9 of 3×3 and 32 channels 4× 8 channels, got {macs[7, 1, 8] / macs[3, 1, 8]:.2f} "
    f"and {macs[3, 1, 32] / macs[3, 1, 8]:.2f}")
show(comparison_chart({names[key]: row for key, row in sweep.items()},
                      {"values": "output values (C·H·W)", "params": "parameters (log)",
                       "macs": "multiply-adds (log)", "rf": "pixels a 3×3 on top sees"},
                      log=("params", "macs"), width=11,
                      title="One convolution on a 16×28×28 map: kernel k, stride s, C output channels"))

# %% [markdown]
# ## Pooling: downsampling with no parameters
# Max pooling keeps the strongest response in each window ("is the feature present here?"); average pooling
# keeps the mean ("how much of it?"). Both are fixed functions — nothing to learn — so they have **no
# parameters**. They make the map smaller, which widens the receptive field of later layers and adds a little
# invariance to small shifts. The layers that **downsample** in a CNN are pooling layers and strided
# convolutions (ResNet's stage transitions); global average pooling reduces a whole map to one number.

# %%
ours_max = numpy_layers.max_pool2d(x, 2)
ours_avg = numpy_layers.avg_pool2d(x, 2)
torch.testing.assert_close(torch.from_numpy(ours_max), F.max_pool2d(torch.from_numpy(x), 2))
torch.testing.assert_close(torch.from_numpy(ours_avg), F.avg_pool2d(torch.from_numpy(x), 2))
torch.testing.assert_close(torch.from_numpy(numpy_layers.max_pool2d(x, 3, 2, 1)), F.max_pool2d(torch.from_numpy(x), 3, 2, 1))
assert count_parameters(nn.MaxPool2d(2)) == 0 == len(list(nn.AvgPool2d(2).parameters())), (
    "pooling layers should have no learnable parameters")
assert ours_max.shape == (4, 1, 14, 14), f"2×2 max pooling should halve 28×28 to 14×14, got {ours_max.shape}"
show(image_grid([x[1, 0], ours_max[1, 0], ours_avg[1, 0], numpy_layers.max_pool2d(ours_max, 2)[1, 0]],
                titles=["28×28", "max 2×2 → 14×14", "avg 2×2 → 14×14", "max twice → 7×7"], ncols=4, size=2))


# %% [markdown]
# **Exercise.** In the exercise version of this notebook the cell below keeps only the signature and hints of
# `max_pool2d`: write it, and the self-check compares it with `F.max_pool2d`.

# %% tags=["exercise"]
def max_pool2d(x, kernel_size, stride=None):
    """Max pooling in NumPy: x N×C×H×W → N×C×H_out×W_out; stride defaults to kernel_size; no padding.

    Hints: sliding_window_view over the last two axes gives the windows; keep every stride-th, then take the max
    over the two window axes.
    """
    stride = stride or kernel_size
    windows = np.lib.stride_tricks.sliding_window_view(x, (kernel_size, kernel_size), axis=(2, 3))
    return windows[:, :, ::stride, ::stride].max(axis=(-2, -1))


# %% tags=["self-check"]
max_pool2d = exercises.check("max_pool2d", max_pool2d)

# %% [markdown]
# ## BatchNorm and LayerNorm forward, by hand
# **BatchNorm** normalises each channel with the mean and variance taken over the batch and all positions
# (axes N, H, W), then scales by γ and shifts by β. In training it uses the batch's statistics and updates
# running averages; in inference it uses the running averages, so a prediction does not depend on the other
# images in the batch. **LayerNorm** normalises each sample over its own features: the same in training and
# inference. Chapter 1c explores why BN helps; here we only check the arithmetic, including the in-place update
# of the running statistics.

# %%
feature_maps = rng.standard_normal((8, 3, 5, 5)).astype(np.float32) * 2 + 3
gamma, beta = np.array([1.0, 2.0, 0.5], np.float32), np.array([0.0, -1.0, 1.0], np.float32)
running_mean, running_var = np.zeros(3, np.float32), np.ones(3, np.float32)
torch_mean, torch_var = torch.zeros(3), torch.ones(3)
for training in (True, True, False):
    ours = numpy_layers.batch_norm(feature_maps, running_mean, running_var, gamma, beta, training=training)
    theirs = F.batch_norm(torch.from_numpy(feature_maps), torch_mean, torch_var, torch.from_numpy(gamma),
                          torch.from_numpy(beta), training=training)
    torch.testing.assert_close(torch.from_numpy(ours), theirs)
    torch.testing.assert_close(torch.from_numpy(running_mean), torch_mean)
    torch.testing.assert_close(torch.from_numpy(running_var), torch_var)
print("running mean after two training steps:", running_mean.round(3))
torch.testing.assert_close(
    torch.from_numpy(numpy_layers.layer_norm(feature_maps, (3, 5, 5))), F.layer_norm(torch.from_numpy(feature_maps), (3, 5, 5)))
print("batch_norm (train and eval, running statistics) and layer_norm == torch ✓")


# %% [markdown]
# **Exercise.** In the exercise version of this notebook the cell below keeps only the signature and hints of
# `batch_norm_train`, BatchNorm's training-mode forward: write it, and the self-check compares it with
# `F.batch_norm`.

# %% tags=["exercise"]
def batch_norm_train(x, gamma, beta, eps=1e-5):
    """BatchNorm2d's training-mode forward in NumPy: x N×C×H×W, gamma and beta C → N×C×H×W.

    Hints: one mean and one biased variance per channel, over the axes N, H, W (keepdims=True keeps them
    broadcastable); normalise, then scale by gamma and shift by beta, both reshaped to 1×C×1×1.
    """
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    return gamma[None, :, None, None] * (x - mean) / np.sqrt(var + eps) + beta[None, :, None, None]


# %% tags=["self-check"]
batch_norm_train = exercises.check("batch_norm_train", batch_norm_train)

# %% [markdown]
# ## Equivariance, seen
# Shift the input and the convolution's output shifts with it (away from the borders). Pooling and the layers
# after it turn this *equivariance* into partial *invariance*; Chapter 1c measures how much of it survives in a
# trained network.

# %%
shifted = np.roll(x[:1], 3, axis=3)
out, out_shifted = numpy_layers.conv2d(x[:1], kernels, padding=1), numpy_layers.conv2d(shifted, kernels, padding=1)
np.testing.assert_allclose(np.roll(out, 3, axis=3)[..., 4:-4], out_shifted[..., 4:-4], rtol=1e-4, atol=1e-5)
print("conv(shift(x)) == shift(conv(x)) away from the borders ✓")

# %% [markdown]
# ## Interview questions
#
# <details><summary>What is the output size of a convolution?</summary>
#
# ⌊(H + 2p − d(k − 1) − 1)/s⌋ + 1 per side. Example: 224, k = 7, s = 2, p = 3 → 112. Checked against real
# layers in the cell "Output size, padding and stride".
# </details>
#
# <details><summary>Why are kernels odd-sized? Valid vs same padding? Typical strides?</summary>
#
# An odd kernel has a centre, so "same" padding (p = (k − 1)/2) is symmetric and outputs stay aligned with their
# inputs. Valid (p = 0) shrinks each side by k − 1; same keeps the size at stride 1. Stride 1 inside a stage,
# stride 2 to halve the resolution between stages. See "Output size, padding and stride".
# </details>
#
# <details><summary>How many parameters does a convolution have?</summary>
#
# C_out·(C_in/groups)·k·k weights + C_out biases, independent of the image size. 64 → 128 channels with 3×3:
# 73 856. See the table in "Parameters, 1×1 convolutions…".
# </details>
#
# <details><summary>What does a 1×1 convolution do?</summary>
#
# A fully connected layer applied at every pixel: it mixes channels, not space. It changes the channel count
# cheaply (bottlenecks in GoogLeNet and ResNet). It is linear: NiN's per-pixel MLP gets its non-linearity from the
# activation after each 1×1 convolution, not from the convolution. The assert in "Parameters, 1×1 convolutions,
# grouped and depthwise-separable convolutions" shows it equals a matrix multiply at each pixel (`torch.einsum`).
# </details>
#
# <details><summary>What do grouped and depthwise-separable convolutions save?</summary>
#
# Groups g divide weights and FLOPs by g. Depthwise (one k×k filter per channel) + pointwise 1×1 costs about
# 1/C_out + 1/k² of a standard convolution — here 8× fewer FLOPs for 3×3, 64 → 128. See the table in
# "Parameters, 1×1 convolutions, grouped and depthwise-separable convolutions".
# </details>
#
# <details><summary>Which layers downsample? Why does pooling have no parameters? Max vs average?</summary>
#
# Pooling and strided convolutions (and global average pooling at the end). Pooling is a fixed function (max or
# mean of a window), so there is nothing to learn — asserted in "Pooling". Max keeps the strongest evidence and
# suits detecting whether a feature is present; average keeps the overall amount, smoother, and is what global
# pooling heads use.
# </details>
#
# <details><summary>Hand-write conv2d, max pooling and BatchNorm forward.</summary>
#
# `utils/numpy_layers.py`: windows by `sliding_window_view`, one `einsum` for the convolution; max over windows with
# −∞ padding; BN: per-channel mean/variance over (N, H, W) in training with running averages updated in place,
# running statistics in inference, then γ·x̂ + β. Each is asserted equal to `torch.nn.functional` in "Convolution is
# a sliding dot product", "Pooling: downsampling with no parameters" and "BatchNorm and LayerNorm forward, by hand".
# </details>
#
# <details><summary>What do Sobel and Laplacian kernels detect?</summary>
#
# Sobel: first derivatives along x and y (edges with direction; magnitude = edge strength). Laplacian: second
# derivative (edges and fine detail, both sides of an edge, more noise-sensitive). Both sum to zero, so flat
# regions give zero — asserted in "Fixed kernels".
# </details>
#
# <details><summary>Why convolutions rather than fully connected layers on images?</summary>
#
# Locality and weight sharing: far fewer parameters (independent of the image size) and translation
# equivariance — shift the input, the output shifts (asserted in "Equivariance, seen").
# </details>
#
# <details><summary>How do kernel size, stride and channel count trade off?</summary>
#
# Parameters = C_out·(C_in·k² + 1): set by k² and the channels, not by the stride or the image size. Multiply-adds =
# C_out·C_in·k²·H_out·W_out: stride 2 quarters them and the output (28×28 → 14×14) with the same parameters, and
# doubles the step between units, so a 3×3 on top sees k + 4 pixels instead of k + 2. Going from 3×3 to 7×7
# multiplies parameters and compute by about 49/9 ≈ 5.4 while the window grows only from 3 to 7 pixels (stacked 3×3
# are the cheaper way to see further: Chapter 1b's VGG). Output channels scale parameters, compute and the output's
# size linearly. On a 16×28×28 map: 3×3, stride 1, 32 channels is 4 640 parameters and 3.6 M multiply-adds; stride 2
# makes it 0.9 M. All sixteen settings are measured and asserted in "Kernel size, stride and channels: what each costs
# and sees on a 16×28×28 map".
# </details>
#
# ### Answers you may read that are wrong
#
# <details><summary>Wrong: “Pooling layers have learnable weights.”</summary>
#
# Right: max and average pooling are fixed functions of each window (its maximum, its mean): nothing to learn, zero
# parameters — asserted for `nn.MaxPool2d` and `nn.AvgPool2d` in "Pooling: downsampling with no parameters". A
# network that should learn how to downsample uses a strided convolution instead.
#
# </details>
#
# <details><summary>Wrong: “A 1×1 convolution adds non-linearity.”</summary>
#
# Right: a 1×1 convolution is linear — the same C_out × C_in matrix multiply (plus bias) at every pixel, asserted
# equal to `torch.einsum` in "Parameters, 1×1 convolutions, grouped and depthwise-separable convolutions". NiN's and
# GoogLeNet's 1×1 layers bring non-linearity only through the ReLU after each of them.
#
# </details>
#
# <details><summary>Wrong: “Convolutions are translation invariant.”</summary>
#
# Right: they are translation *equivariant*: shift the input and the output shifts by the same amount (away from
# the borders) — asserted in "Equivariance, seen". Invariance comes later, from pooling and the head, and only in
# part; Chapter 1c measures how much survives in a trained network.
#
# </details>
#
# <details><summary>Wrong: “Same padding keeps the output the size of the input.”</summary>
#
# Right: only at stride 1. At stride s the output is ⌈H/s⌉ per side (TensorFlow's “same”; a 3×3 with p = 1 and
# stride 2 gives 14 from both 28 and 27), and PyTorch's `padding='same'` refuses any stride but 1 — both asserted
# in "Same padding keeps the size only at stride 1".
#
# </details>
