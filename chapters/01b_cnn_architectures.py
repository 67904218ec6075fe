# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 1b — CNN architectures, LeNet to DenseNet
#
# Twenty years of ideas, each one answering a limitation of the one before. We build seven networks from
# `utils/models/` (one short file each — open them beside this notebook), train them on Fashion-MNIST under the
# same budget, and compare parameters, FLOPs, speed and accuracy in one table. Then we train the best one
# properly.
#
# | network | year | the idea |
# |---|---|---|
# | LeNet-5 | 1998 | convolution + pooling + fully connected: weight sharing works |
# | AlexNet | 2012 | deeper and wider, ReLU, dropout, GPUs, data augmentation |
# | VGG | 2014 | only 3×3 convolutions, stacked in blocks: depth is what matters |
# | NiN | 2013 | 1×1 convolutions as per-pixel MLPs; global average pooling replaces the FC head |
# | GoogLeNet / Inception | 2014 | parallel 1×1, 3×3, 5×5 and pooling paths, 1×1 bottlenecks to pay for them |
# | ResNet | 2015 | residual connections: learn a correction to the identity, train 100+ layers |
# | DenseNet | 2016 | every layer sees all earlier feature maps (concatenation): feature reuse |

# %%
import numpy as np
import torch
import torchvision
from torch import nn

from utils import exercises, start_chapter
from utils.data import DeviceLoader, fashion_mnist, subset
from utils.diagrams import architecture_figure, trace_blocks
from utils.measuring import count_flops, count_parameters
from utils.models import ARCHITECTURES, BasicBlock, Bottleneck, Inception, NiN, PlainBlock, ResNet, VGG
from utils.models.efficientnet import compound_scaled
from utils.plotting import comparison_chart, show
from utils.results import report
from utils.runtime import pick, profile
from utils.training import evaluate, fit

device = start_chapter("01b_cnn_architectures")

# %% [markdown]
# ## Settings for this profile
# `smoke` proves the notebook runs (tiny subsets), `cpu` reaches real accuracy in minutes, `gpu` is the full run.

# %%
TABLE_TRAIN = pick(smoke=2048, cpu=6_000, gpu=None)      # training images per architecture (None: all 60 000)
TABLE_EPOCHS = pick(smoke=2, cpu=2, gpu=8)
TABLE_TEST = pick(smoke=500, cpu=5_000, gpu=None)        # test images that score the table
TEST_SIZE = pick(smoke=500, cpu=None, gpu=None)          # test images that score the best CNN
BEST_TRAIN = pick(smoke=4_096, cpu=40_000, gpu=None)
BEST_EPOCHS = pick(smoke=1, cpu=2, gpu=18)
BEST_WIDTH = pick(smoke=16, cpu=16, gpu=32)
# Bars: cpu measured (best ResNet 0.881, lowest table entry 0.731, make verify on 2026-11-26) minus a margin.
# gpu bar held at the cpu-measured level until measured on a GPU.
BEST_BAR = pick(smoke=0.60, cpu=0.86, gpu=0.86)            # test accuracy the best CNN must reach
TABLE_BAR = pick(smoke=0.35, cpu=0.70, gpu=0.70)           # every architecture in the table
BATCH = pick(smoke=64, cpu=128, gpu=512)
SCALING_TRAIN = pick(smoke=1_024, cpu=6_000, gpu=None)    # compound scaling: training images per scaled network
SCALING_EPOCHS = pick(smoke=1, cpu=2, gpu=8)
SCALING_WIDTH = pick(smoke=8, cpu=8, gpu=16)              # first-stage channels of the φ = 0 baseline

train_images, train_labels = fashion_mnist("train")
test_images, test_labels = subset(*fashion_mnist("test"), TEST_SIZE)
test_loader = DeviceLoader(test_images, test_labels, 1024, device=device)

# %% [markdown]
# ## The seven networks, drawn from their code
# `utils.diagrams` runs one 28×28 image through each network with hooks and draws every block it passes: its type,
# its parameters and its output shape (channels×height×width). A box moves right each time the map is halved, so
# the downsampling schedule is visible at a glance: LeNet's pooling, AlexNet's and VGG's blocks ending in big fully
# connected layers, NiN and the modern networks ending in global average pooling.

# %%
example = (torch.zeros(1, 1, 28, 28),)
networks = {name: (constructor(), example) for name, constructor in ARCHITECTURES.items()}
classic, modern = list(networks)[:4], list(networks)[4:]
show(architecture_figure({name: networks[name] for name in classic}, "1998–2014: LeNet-5, AlexNet, VGG, NiN"))
show(architecture_figure({name: networks[name] for name in modern}, "2014–2016: Inception, ResNet, DenseNet"))
for name, (network, _) in networks.items():
    assert trace_blocks(network, *example)[-1].shape == (10,), f"{name} ends in 10 class scores"

# %% [markdown]
# ## The key design choices, checked
# **AlexNet, layer by layer.** Krizhevsky et al. (2012): five convolutions (the first 11×11 with stride 4) and three
# fully connected layers, ReLU, overlapping max pooling (3×3 windows, stride 2), dropout (p = 0.5) in the first two
# fully connected layers, and Local Response Normalisation after the first two convolutions. BatchNorm came in 2015
# (Ioffe & Szegedy), after AlexNet, VGG and the first GoogLeNet. Our AlexNet-style network keeps the five
# convolutions, ReLU, overlapping pooling and dropout at 28×28 scale, with a two-layer head and no LRN (VGG's authors
# found LRN did not help); our VGG does use BatchNorm, a later addition, as torchvision's `vgg16_bn` does. The paper
# gives its input as 224×224, but its first layer's arithmetic needs 227.

# %%
# AlexNet, layer by layer: ReLU, overlapping 3×3 / 2 max pooling, dropout 0.5 in the head — and no BatchNorm
alexnet = networks["AlexNet-style"][0]
kinds = [type(m).__name__ for m in alexnet.modules() if not list(m.children())]
print(" → ".join(kinds))
layout = (kinds.count("Conv2d"), kinds.count("MaxPool2d"), [m.p for m in alexnet.modules() if type(m) is nn.Dropout])
assert "BatchNorm2d" not in kinds and layout == (5, 3, [0.5, 0.5]), (
    f"AlexNet-style should have 5 convolutions, 3 max pools, dropout 0.5 twice and no BatchNorm, got {kinds}")
assert all((m.kernel_size, m.stride) == (3, 2) for m in alexnet.modules() if isinstance(m, nn.MaxPool2d)), (
    "AlexNet's pooling overlaps: 3×3 windows with stride 2")
# 11×11, stride 4, no padding: the paper's 55×55 first map comes from a 227×227 input, not 224×224
first_map = {side: nn.Conv2d(3, 96, 11, stride=4, device="meta")(torch.zeros(1, 3, side, side, device="meta")).shape[-1]
             for side in (224, 227)}                      # on the meta device: shapes only, no random weights
assert first_map == {224: 54, 227: 55}, f"AlexNet's first layer should map 224 → 54 and 227 → 55, got {first_map}"
assert any(isinstance(m, nn.BatchNorm2d) for m in networks["VGG"][0].modules()), "our VGG adds BatchNorm (vgg16_bn)"

# %% [markdown]
# **VGG: why stacked 3×3?** Two 3×3 convolutions see a 5×5 window and three see 7×7 — the same receptive field as
# one large kernel, with fewer weights and a non-linearity between each.

# %%
c = 64
one_5x5 = count_parameters(nn.Conv2d(c, c, 5, bias=False))
two_3x3 = count_parameters(nn.Sequential(nn.Conv2d(c, c, 3, bias=False), nn.Conv2d(c, c, 3, bias=False)))
one_7x7 = count_parameters(nn.Conv2d(c, c, 7, bias=False))
three_3x3 = 3 * count_parameters(nn.Conv2d(c, c, 3, bias=False))
print(f"5×5: {one_5x5}  vs two 3×3: {two_3x3}   |   7×7: {one_7x7}  vs three 3×3: {three_3x3}")
assert two_3x3 / one_5x5 == 18 / 25 and three_3x3 / one_7x7 == 27 / 49, (
    f"two and three 3×3 should have 18/25 and 27/49 the weights of one 5×5 and one 7×7, "
    f"got {two_3x3}/{one_5x5} and {three_3x3}/{one_7x7}")

# %% [markdown]
# **NiN: global average pooling makes any input size work.** A flatten + fully connected head fixes the input
# size (the FC layer expects exactly 128·3·3 numbers); NiN's last convolution outputs one map per class and
# averages it, so a 36×36 or 64×64 image works unchanged — and the head has no parameters at all.

# %%
nin, vgg = NiN(), VGG()
for size in (28, 36, 64):
    assert nin(torch.zeros(2, 1, size, size)).shape == (2, 10), (
        f"NiN should give 10 class scores for a {size}×{size} input")
try:
    vgg(torch.zeros(2, 1, 36, 36))
    raise AssertionError("a flatten + FC head should reject a different input size")
except RuntimeError as error:
    print("VGG's FC head on 36×36 input:", str(error).splitlines()[0])
fc_head = count_parameters(vgg.classifier)
print(f"VGG's FC head: {fc_head:,} parameters ({fc_head / count_parameters(vgg):.0%} of the network); "
      "NiN's GAP head: 0")

# %% [markdown]
# **Inception:** four paths concatenated along channels; 1×1 convolutions before the 3×3 and 5×5 paths cut
# their input channels so several scales cost little.

# %%
block = Inception(64, 32, (32, 48), (8, 16), 16)
out = block(torch.zeros(1, 64, 14, 14))
assert out.shape == (1, 32 + 48 + 16 + 16, 14, 14) == (1, block.out_channels, 14, 14), (
    f"Inception should concatenate 32+48+16+16 = 112 channels at 14×14, got {tuple(out.shape)}")
without_bottleneck = count_parameters(nn.Conv2d(64, 48, 3)) + count_parameters(nn.Conv2d(64, 16, 5))
with_bottleneck = count_parameters(block.path2) + count_parameters(block.path3)
print(f"3×3 and 5×5 paths: {with_bottleneck:,} parameters with 1×1 bottlenecks, {without_bottleneck:,} without")
assert with_bottleneck < without_bottleneck, (
    f"1×1 bottlenecks should cut parameters, got {with_bottleneck:,} with vs {without_bottleneck:,} without")

# %% [markdown]
# **GoogLeNet's auxiliary classifiers.** GoogLeNet (22 layers, 2014 — before BatchNorm and ResNet) attached two
# small classifiers to intermediate Inception blocks during training, their losses added with weight 0.3: a short
# path for the gradient to reach the early layers, and a push for those layers to be discriminative on their own.
# At inference they are removed. Measured below on a 17-layer plain ReLU network of that era (no BN, Xavier
# initialisation): the gradient reaching the first layer, with and without an auxiliary head after layer 8.

# %%
torch.manual_seed(0)
plain_layer = lambda c_in: nn.Sequential(nn.Conv2d(c_in, 16, 3, padding=1), nn.ReLU())  # noqa: E731
lower = nn.Sequential(plain_layer(1), *[plain_layer(16) for _ in range(7)])
upper = nn.Sequential(nn.MaxPool2d(2), *[plain_layer(16) for _ in range(8)])
for layer in [*lower.modules(), *upper.modules()]:
    if isinstance(layer, nn.Conv2d):
        nn.init.xavier_normal_(layer.weight)
        nn.init.zeros_(layer.bias)
main_head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
auxiliary_head = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Conv2d(16, 32, 1), nn.ReLU(), nn.Flatten(),
                               nn.Linear(512, 10))
x_aux, y_aux = test_images[:64].float() / 255, test_labels[:64]
first_layer_gradient = {}
for use_auxiliary in (False, True):
    lower.zero_grad(set_to_none=True)
    middle = lower(x_aux)
    loss = nn.functional.cross_entropy(main_head(upper(middle)), y_aux)
    if use_auxiliary:
        loss = loss + 0.3 * nn.functional.cross_entropy(auxiliary_head(middle), y_aux)
    loss.backward()
    first_layer_gradient[use_auxiliary] = lower[0][0].weight.grad.norm().item()
aux_gain = first_layer_gradient[True] / first_layer_gradient[False]
print(f"gradient norm at the first layer: {first_layer_gradient[False]:.1e} from the main head alone, "
      f"{first_layer_gradient[True]:.1e} with the auxiliary head (×{aux_gain:.1f})")
assert aux_gain > 2, f"an auxiliary head half-way should multiply the first layer's gradient, got ×{aux_gain:.2f}"

# %% [markdown]
# **ResNet: basic vs bottleneck blocks, and the projection shortcut.** A basic block is two 3×3 convolutions; a
# bottleneck block is 1×1 (reduce) → 3×3 → 1×1 (expand ×4), which makes 50+ layers affordable. When a block
# changes the resolution or channel count, the shortcut becomes a strided 1×1 convolution (the *projection*) so
# the two branches can be added.

# %%
basic, bottleneck = BasicBlock(256, 256), Bottleneck(256, 64)
print(f"basic block 256→256: {count_parameters(basic):,} parameters; "
      f"bottleneck 256→64→256: {count_parameters(bottleneck):,}")
assert count_parameters(bottleneck) < count_parameters(basic) / 3, (
    f"a bottleneck block should have < 1/3 the parameters of a basic one, "
    f"got {count_parameters(bottleneck):,} vs {count_parameters(basic):,}")
assert isinstance(basic.shortcut, nn.Identity), "a block that keeps shape should have an identity shortcut"
down = BasicBlock(64, 128, stride=2)
assert isinstance(down.shortcut[0], nn.Conv2d) and down.shortcut[0].kernel_size == (1, 1), (
    "a downsampling block should project its shortcut with a 1×1 convolution")
assert down(torch.zeros(1, 64, 14, 14)).shape == (1, 128, 7, 7), "a stride-2 block 64→128 should map 14×14 to 128×7×7"

# %% [markdown]
# **Exercise (easy).** In the exercise version of this notebook (`make exercises`) the cell below keeps only the
# signature and hints of `projection_shortcut`, the projection's strided 1×1 convolution: write it with tensor
# operations, and the self-check compares it with `torch.nn.functional.conv2d` (odd sizes, strides 1 to 3).

# %% tags=["exercise"]
def projection_shortcut(x, weight, stride):
    """The convolution of a ResNet projection shortcut by hand: 1×1, ``stride``, no padding, no bias.
    x N×C_in×H×W, weight C_out×C_in×1×1 (as nn.Conv2d stores it) → N×C_out×H_out×W_out with
    H_out = (H − 1) // stride + 1 (and likewise W_out).

    Hints: a 1×1 kernel reads one pixel, so the stride only keeps every stride-th row and column, starting with the
    first; at each kept pixel the output channels are weight[:, :, 0, 0] times the input's channel vector
    (torch.einsum over the channel axis).
    """
    kept = x[:, :, ::stride, ::stride]
    return torch.einsum("oc,nchw->nohw", weight[:, :, 0, 0], kept)


# %% tags=["self-check"]
projection_shortcut = exercises.check("projection_shortcut", projection_shortcut)

# %% [markdown]
# **Exercise (easy).** The cell below keeps only the signature and hints of `bottleneck_parameters`: count a
# bottleneck block's parameters from its three numbers, and the self-check compares the count with
# `count_parameters(Bottleneck(in_channels, channels, stride))` — blocks that keep their shape, and blocks whose
# channels or resolution change.

# %% tags=["exercise"]
def bottleneck_parameters(in_channels, channels, stride):
    """The number of parameters of a ResNet bottleneck block (utils.models.Bottleneck), as an int: 1×1 in_channels →
    channels, 3×3 channels → channels (with ``stride``), 1×1 channels → 4·channels, each convolution without bias and
    followed by BatchNorm; the shortcut is the identity where the block keeps its shape, else a strided 1×1
    convolution + BatchNorm to 4·channels.

    Hints: a k×k convolution without bias has k·k·C_in·C_out weights and a BatchNorm two per channel, γ and β (its
    running mean and variance are buffers, not parameters); the shape changes when stride ≠ 1 or in_channels ≠
    4·channels.
    """
    out_channels = 4 * channels
    weights = in_channels * channels + 3 * 3 * channels * channels + channels * out_channels
    batch_norms = 2 * (channels + channels + out_channels)
    if stride != 1 or in_channels != out_channels:
        weights += in_channels * out_channels
        batch_norms += 2 * out_channels
    return weights + batch_norms


# %% tags=["self-check"]
bottleneck_parameters = exercises.check("bottleneck_parameters", bottleneck_parameters)

# %% [markdown]
# **Inside the block: the order of operations, and a zero γ to start.** Each convolution is followed by BatchNorm
# and then ReLU — except the last one of the branch: its BatchNorm output F(x) is first added to the shortcut, and
# the ReLU comes *after* the addition (He et al., 2015). So a block's output is relu(F(x) + shortcut(x)), never
# negative. (ResNet v2, He et al., 2016, moves BN and ReLU before each convolution — "pre-activation" — and leaves
# the sum alone; the course's blocks are the original v1.) The cell records the order in which the block calls its
# layers and recomputes its output by hand.

# %%
# Inside a residual block: conv–BN–ReLU, conv–BN, then the ReLU after the addition
with torch.random.fork_rng(devices=[]):             # building a block draws weights: leave the chapter's stream alone
    torch.manual_seed(0)
    block_v1, x_block = BasicBlock(16, 16).train(), torch.randn(8, 16, 14, 14)
calls = []
hooks = [getattr(block_v1, name).register_forward_hook(lambda *_, name=name: calls.append(name))
         for name in ("conv1", "bn1", "relu", "conv2", "bn2")]
with torch.no_grad():
    out_block = block_v1(x_block)
    for hook in hooks:
        hook.remove()
    branch = block_v1.bn2(block_v1.conv2(torch.relu(block_v1.bn1(block_v1.conv1(x_block)))))   # F(x), by hand
print(" → ".join(calls), "(the last relu after the addition)")
assert calls == ["conv1", "bn1", "relu", "conv2", "bn2", "relu"], (
    f"a basic block should call conv–BN–ReLU, conv–BN, then ReLU after adding the shortcut, got {calls}")
assert torch.equal(out_block, torch.relu(branch + x_block)) and out_block.min() >= 0 > (branch + x_block).min(), (
    f"the block's output should be relu(F(x) + x): non-negative although F(x) + x reaches "
    f"{(branch + x_block).min():.2f}; largest difference {(out_block - torch.relu(branch + x_block)).abs().max():.2e}")

# %% [markdown]
# **Folding BatchNorm into the convolution.** After training, BatchNorm normalises with its running mean and
# variance: a fixed scale γ/√(var + ε) and shift per channel. A convolution followed by BN is then one convolution
# whose kernels and bias are rescaled — inference engines fold them and save a pass over every feature map.
#
# **Exercise (medium).** The cell below keeps only the signature and hints of `fold_batch_norm`: compute the folded
# weight and bias, and the self-check compares them with `torch.nn.utils.fusion.fuse_conv_bn_weights` (with and
# without a convolution bias, and variances small enough for ε to matter). The cell after it folds the block's first
# convolution and BN with PyTorch and compares the result with the two layers in eval mode.

# %% tags=["exercise"]
def fold_batch_norm(weight, bias, gamma, beta, running_mean, running_var, eps):
    """Fold an eval-mode BatchNorm into the convolution before it: conv(x, weight, bias) then BN (γ, β, running mean
    and variance, ε) equals conv(x, fused_weight, fused_bias). weight C_out×C_in×k_h×k_w, bias C_out or None (no
    bias), gamma, beta, running_mean and running_var C_out → (fused_weight C_out×C_in×k_h×k_w, fused_bias C_out).

    Hints: in eval mode BN computes γ·(y − mean)/sqrt(var + ε) + β for each output channel of y = conv(x): a scale
    per output channel, applied to that channel's kernel (reshape it to C_out×1×1×1) and to its bias, then a shift;
    a missing bias is 0.
    """
    scale = gamma / torch.sqrt(running_var + eps)
    if bias is None:
        bias = torch.zeros_like(running_mean)
    return weight * scale[:, None, None, None], (bias - running_mean) * scale + beta


# %% tags=["self-check"]
fold_batch_norm = exercises.check("fold_batch_norm", fold_batch_norm)

# %%
# BatchNorm folded into the convolution before it: in eval mode one convolution computes both
block_v1.eval()                                     # the running statistics its training-mode call above updated
folded_conv = torch.nn.utils.fusion.fuse_conv_bn_eval(block_v1.conv1, block_v1.bn1)
with torch.no_grad():
    two_layers, one_layer = block_v1.bn1(block_v1.conv1(x_block)), folded_conv(x_block)
fold_error = (two_layers - one_layer).abs().max().item()
print(f"conv + BN in eval mode vs the folded convolution: largest difference {fold_error:.1e}")
assert fold_error < 1e-5 and block_v1.bn1.running_mean.abs().max() > 0, (
    f"the folded convolution should equal conv + BN in eval mode (largest difference {fold_error:.1e}), with "
    "running statistics that are not the initial ones")

# %% [markdown]
# **Zero-initialised residuals.** Goyal et al. (2017, training ImageNet in one hour with batches of 8 192) set γ of
# the *last* BatchNorm of every residual branch to 0 at initialisation. F(x) is then exactly 0 and every block
# passes its input through: a deep network starts as a shallow one (stem, projections, head) and each block
# grows its correction from 0 as γ learns — γ still receives a gradient, because the BatchNorm's normalised input
# is not zero. torchvision calls it `zero_init_residual`, and so does our `ResNet` (off by default, so the trained
# figures of this chapter stay as measured). Below, the first stage (two blocks with identity shortcuts) of the same
# network with and without it, on the stem's output for 64 test images.

# %%
# Zero-initialised residual: with the last BN's γ = 0, a block with an identity shortcut is exactly the identity
stage_inputs, stage_outputs = {}, {}
for zero_init in (False, True):
    with torch.random.fork_rng(devices=[]), torch.no_grad():   # the same weights for both, the chapter's stream untouched
        torch.manual_seed(0)
        resnet = ResNet(width=16, zero_init_residual=zero_init)
        stage_inputs[zero_init] = resnet.stem(test_images[:64].float() / 255)   # a ReLU's output: non-negative
        stage_outputs[zero_init] = resnet.stages[0](stage_inputs[zero_init])
        assert all(float(block.bn2.weight.abs().max()) == (0 if zero_init else 1) for block in resnet.stages[0]), (
            "zero_init_residual should set γ of each block's second BN to 0, and leave it at 1 otherwise")
change = {z: ((stage_outputs[z] - stage_inputs[z]).norm() / stage_inputs[z].norm()).item() for z in (False, True)}
print(f"first stage, |output − input| / |input|: {change[False]:.3f} by default, {change[True]:.3f} with γ = 0")
assert torch.equal(stage_outputs[True], stage_inputs[True]) and change[False] > 0.1, (
    f"with γ = 0 the two blocks should return their input exactly (relative change {change[True]:.2e}), "
    f"and change it by default (relative change {change[False]:.3f})")

# %% [markdown]
# Zero-initialised residuals are not a speed-up in themselves. Goyal et al. used them, with a learning-rate warm-up,
# so that very large batches and learning rates do not blow the network up in its first steps; a network whose
# blocks start switched off is a shallow one until each block has grown its γ. Below, the first 20 steps of a small
# ResNet (width 8) with and without, SGD with momentum at learning rate 0.1, the same seed and the same 1 000 images
# in the same order. Which starts faster is not a given (it may change with the network and the learning rate): the
# cell reports, it does not assert.

# %%
# Zero-initialised residual in the first 20 steps of training, with and without
x_early, y_early, early_loss = train_images[:1000].float() / 255, train_labels[:1000], {}
for zero_init in (False, True):
    with torch.random.fork_rng(devices=[]):             # the same weights for both, the chapter's stream untouched
        torch.manual_seed(0)
        small = ResNet(width=8, zero_init_residual=zero_init)
        optimizer = torch.optim.SGD(small.parameters(), lr=0.1, momentum=0.9)
        early_loss[zero_init] = []
        for batch_rows in torch.arange(1000).split(50):   # 20 steps of 50 images in order: no shuffle to draw
            loss = nn.functional.cross_entropy(small(x_early[batch_rows]), y_early[batch_rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            early_loss[zero_init].append(loss.item())
late = {z: float(np.mean(early_loss[z][10:])) for z in early_loss}
print("losses every 5 steps — default:", np.round(early_loss[False][::5], 2),
      " γ = 0:", np.round(early_loss[True][::5], 2))
print(f"mean loss over steps 11–20: {late[False]:.3f} by default, {late[True]:.3f} with γ = 0 — "
      f"{'zero-init' if late[True] < late[False] else 'the default initialisation'} starts faster here")

# %% [markdown]
# **Why residual connections make deep networks trainable.** The block outputs `x + F(x)`, so its gradient is
# `1 + ∂F/∂x`: there is always an identity path back to early layers. Without shortcuts, a 50-layer network's
# gradient is a product of 50 Jacobians and blows up or dies. Below, the gradient of the loss with respect to the
# first (stem) and last (head) layers, for the same 50-layer network with and without shortcuts, at
# initialisation.

# %%
x, y = test_images[:64].float() / 255, test_labels[:64]
ratios = {}
for name, block_type in (("plain", PlainBlock), ("residual", BasicBlock)):
    torch.manual_seed(0)
    deep = ResNet(width=16, blocks=(8, 8, 8), block=block_type)
    nn.functional.cross_entropy(deep(x), y).backward()
    first, last = deep.stem[0].weight.grad.norm().item(), deep.head[2].weight.grad.norm().item()
    ratios[name] = first / last
    print(f"{name:8}: |grad stem| = {first:9.3f}   |grad head| = {last:.3f}   ratio {ratios[name]:8.1f}")
print(f"without shortcuts the stem receives a gradient {ratios['plain']:.0f}× the head's; with them "
      f"{ratios['residual']:.1f}× — {ratios['plain'] / ratios['residual']:.0f} times more lopsided without shortcuts")
assert ratios["plain"] > 20 * ratios["residual"], (
    f"without shortcuts the stem/head gradient ratio should be > 20× the residual one, "
    f"got {ratios['plain']:.1f} vs {ratios['residual']:.1f}")

# %%
# The plain network's gradient does not vanish at the stem: with BatchNorm it is many times the head's
assert ratios["plain"] > 10, (
    f"the 50-layer plain network should give its stem > 10× the head's gradient norm, got {ratios['plain']:.1f}×")

# %% [markdown]
# **DenseNet:** each layer concatenates `growth` new channels to everything before it, so a block of L layers
# turns C channels into C + L·growth; transition layers (1×1 conv + average pooling) compress between blocks.

# %%
from utils.models.densenet import dense_block  # noqa: E402  (shown here, where it is explained)

dense = dense_block(24, layers=3, growth=12)
assert dense(torch.zeros(1, 24, 14, 14)).shape == (1, 24 + 3 * 12, 14, 14), (
    "a dense block of 3 layers, growth 12, should turn 24 channels into 24 + 36")

# %%
# Dense connections add no weights (they concatenate): DenseNet-121 has under a third of ResNet-50's parameters
with torch.device("meta"):                                   # shapes only: no memory, no initialisation
    imagenet_sizes = {name: count_parameters(build()) for name, build in
                      (("DenseNet-121", torchvision.models.densenet121), ("ResNet-50", torchvision.models.resnet50))}
print("ImageNet networks:", ", ".join(f"{name} {count:,} parameters" for name, count in imagenet_sizes.items()))
assert imagenet_sizes["DenseNet-121"] < imagenet_sizes["ResNet-50"] / 3, (
    f"DenseNet-121 should have < 1/3 of ResNet-50's parameters, got {imagenet_sizes}")

# %% [markdown]
# ## Train all seven under one budget
# Same data, epochs, optimiser (AdamW, one-cycle schedule) and batch size for each network. `fit` keeps a
# checkpoint per configuration under `data/checkpoints/`: rerun this cell and it reloads instead of retraining.

# %%
table_train = subset(train_images, train_labels, TABLE_TRAIN, seed=1)
table_test_loader = DeviceLoader(*subset(test_images, test_labels, TABLE_TEST, seed=1), 1024, device=device)
rows = []
for name, constructor in ARCHITECTURES.items():
    torch.manual_seed(0)
    model = constructor().to(device)
    flops = count_flops(model, torch.zeros(1, 1, 28, 28, device=device))
    loader = DeviceLoader(*table_train, BATCH, shuffle=True, device=device, seed=1)
    history = fit(model, loader, epochs=TABLE_EPOCHS, lr=2e-3, name=f"table-{name}",
                  config={"train": TABLE_TRAIN, "batch": BATCH}, plot=False)
    rows.append({"network": name, "params": count_parameters(model), "MFLOPs": flops / 1e6,
                 "train s": history.train_seconds, "images/s": history.images_per_second,
                 "test acc": evaluate(model, table_test_loader)["acc"]})

for r in rows:
    assert r["test acc"] > TABLE_BAR, f"{r['network']} reached only {r['test acc']:.3f} (bar {TABLE_BAR})"
report("lowest test accuracy of the seven CNNs", min(r["test acc"] for r in rows), bar=TABLE_BAR)

# %%
show(comparison_chart({r["network"]: r for r in rows},
                      {"params": "parameters (log)", "MFLOPs": "MFLOPs per image (log)",
                       "images/s": f"training images/s ({device.type})", "test acc": "test accuracy"},
                      title=f"Seven networks, one budget: {profile()} profile, {TABLE_EPOCHS} epochs on "
                            f"{len(table_train[0]):,} images", log=("params", "MFLOPs"),
                      best={"params": "min", "MFLOPs": "min", "images/s": "max", "test acc": "max"}, width=11))

# %% [markdown]
# Things to notice, computed from the run above (small budgets reorder the networks: the `cpu` and `gpu` profiles
# train longer): which design wins, what global average pooling (NiN, Inception, ResNet, DenseNet) buys against
# a fully connected head (AlexNet, VGG), and whether FLOPs or parameters decide speed.

# %%
by_accuracy = sorted(rows, key=lambda r: r["test acc"], reverse=True)
gap_heads = [r for r in rows if r["network"] in ("NiN", "Inception", "ResNet", "DenseNet")]
fc_heads = [r for r in rows if r["network"] in ("AlexNet-style", "VGG")]
best_gap, best_fc = (max(group, key=lambda r: r["test acc"]) for group in (gap_heads, fc_heads))
ranks = lambda key: np.argsort(np.argsort([r[key] for r in rows]))  # noqa: E731
speed_vs = {key: np.corrcoef(ranks(key), ranks("images/s"))[0, 1] for key in ("MFLOPs", "params")}
print(f"{profile()} profile on {device.type}, ranked by test accuracy: "
      + ", ".join(f"{r['network']} {r['test acc']:.3f}" for r in by_accuracy))
gap_margin = best_gap["test acc"] - best_fc["test acc"]
size_ratio = best_fc["params"] / best_gap["params"]
print(f"global average pooling's best, {best_gap['network']} ({best_gap['test acc']:.3f}), "
      + ("beats" if gap_margin > 0.005 else "loses to" if gap_margin < -0.005 else "matches")
      + f" the best fully connected head, {best_fc['network']} ({best_fc['test acc']:.3f}), with "
      + (f"{size_ratio:.1f}× fewer" if size_ratio >= 1 else f"{1 / size_ratio:.1f}× more") + " parameters")
print(f"rank correlation of training speed with FLOPs {speed_vs['MFLOPs']:+.2f}, with parameters "
      f"{speed_vs['params']:+.2f} (negative: more of it, slower) — "
      f"{'FLOPs' if abs(speed_vs['MFLOPs']) > abs(speed_vs['params']) else 'parameters'} predict speed better")

# %% [markdown]
# ## The best CNN, trained properly
# A ResNet with data augmentation (random shifts of up to 2 pixels and horizontal flips, done on the whole batch
# on the device) on the full training set. On a GPU this is the course's time-to-accuracy benchmark (`make bench`).

# %%
torch.manual_seed(0)
best = ResNet(width=BEST_WIDTH).to(device)
best_train = subset(train_images, train_labels, BEST_TRAIN, seed=2)
history = fit(best, DeviceLoader(*best_train, BATCH, shuffle=True, augment=True, device=device, seed=2),
              epochs=BEST_EPOCHS, lr=pick(smoke=3e-3, cpu=3e-3, gpu=4e-3), val_loader=test_loader,
              name="best-resnet", config={"train": BEST_TRAIN, "test": TEST_SIZE, "batch": BATCH, "augment": True},
              compile=device.type == "cuda", plot=False)  # its curves are drawn once, below
best_acc = evaluate(best, test_loader)["acc"]
print(f"ResNet (width {BEST_WIDTH}): test accuracy {best_acc:.4f} after {history.train_seconds:.0f} s of training "
      f"({history.images_per_second:.0f} images/s)")
assert best_acc >= BEST_BAR, f"best CNN reached {best_acc:.4f}, below the {profile()} bar {BEST_BAR}"
report("best CNN (ResNet) test accuracy", best_acc, bar=BEST_BAR, digits=4)
show(history.figure(f"best ResNet: training curves ({profile()} profile)"))

# %% [markdown]
# ## EfficientNet's compound scaling, tried
# Networks are scaled by depth (more layers), width (more channels) or resolution (bigger inputs), and each alone
# saturates. EfficientNet (Tan & Le, 2019) scales all three together with one coefficient φ: depth ∝ α^φ, width
# ∝ β^φ, resolution ∝ γ^φ, with α·β²·γ² ≈ 2 so each step of φ doubles the FLOPs, the constants (α = 1.2,
# β = 1.1, γ = 1.15) found by a small grid search on a baseline (EfficientNet-B0, itself found by architecture
# search, built from MBConv blocks: inverted bottlenecks with depthwise convolutions and squeeze-and-excitation —
# Chapter 2). Why the square for width and resolution: a convolution's cost is (output pixels) × (in channels) ×
# (out channels) — doubling the width doubles both channel counts.
#
# Below, `utils/models/efficientnet.py` scales a small three-stage CNN with φ = 0…3 and counts its FLOPs (depth
# is rounded up and widths rounded, as EfficientNet does, so a small network lands near 2^φ, not on it), then
# trains φ = 0, 1, 2 for the same few epochs.

# %%
scaled = {phi: compound_scaled(phi, width=SCALING_WIDTH) for phi in range(4)}
scaling_flops = {}
for phi, net in scaled.items():
    scaling_flops[phi] = count_flops(net, torch.zeros(1, 1, 28, 28))
    layers = sum(isinstance(m, nn.Conv2d) for m in net.features)
    print(f"φ = {phi}: {layers:2d} conv layers, width {net.features[0].out_channels:2d}, input {net.resolution}×"
          f"{net.resolution}: {scaling_flops[phi] / 1e6:6.1f} MFLOPs = {scaling_flops[phi] / scaling_flops[0]:.2f}× "
          f"the baseline (2^φ = {2 ** phi})")
ratios_to_ideal = [scaling_flops[phi] / scaling_flops[0] / 2 ** phi for phi in scaled]
assert all(0.6 < r < 1.7 for r in ratios_to_ideal) and list(scaling_flops.values()) == sorted(scaling_flops.values()), (
    f"each step of φ should about double the FLOPs (within the rounding of a small net): ratios to 2^φ "
    f"{np.round(ratios_to_ideal, 2)}")

scaling_rows = {}
scaling_train = subset(train_images, train_labels, SCALING_TRAIN, seed=3)
for phi in (0, 1, 2):
    torch.manual_seed(0)
    net = scaled[phi].to(device)
    history = fit(net, DeviceLoader(*scaling_train, BATCH, shuffle=True, device=device, seed=3), epochs=SCALING_EPOCHS,
                  lr=3e-3, name=f"scaled-phi{phi}", config={"train": SCALING_TRAIN, "width": SCALING_WIDTH}, plot=False)
    scaling_rows[f"φ = {phi}"] = {"MFLOPs": scaling_flops[phi] / 1e6, "params": count_parameters(net),
                                  "test acc": evaluate(net, table_test_loader)["acc"]}
show(comparison_chart(scaling_rows, {"MFLOPs": "MFLOPs per image", "params": "parameters",
                                     "test acc": "test accuracy"}, best={"test acc": "max"}, width=10,
                      title=f"compound scaling, {SCALING_EPOCHS} epoch{'s' * (SCALING_EPOCHS != 1)} on {SCALING_TRAIN:,} images "
                            f"({profile()} profile)"))
scaling_gain = scaling_rows["φ = 2"]["test acc"] - scaling_rows["φ = 0"]["test acc"]
print(f"φ = 2 costs {scaling_flops[2] / scaling_flops[0]:.1f}× the FLOPs of the baseline and "
      + (f"gains {scaling_gain:.3f} test accuracy" if scaling_gain > 0 else f"loses {-scaling_gain:.3f}")
      + f" after the same {SCALING_EPOCHS} epochs ({profile()} profile, {device.type}): a bigger network needs "
        "data and training to pay for itself")

# %% [markdown]
# ## Interview questions
#
# <details><summary>The key idea of LeNet-5, AlexNet, VGG, NiN, GoogLeNet, ResNet, DenseNet?</summary>
#
# LeNet: shared convolution weights + pooling + FC classifier. AlexNet: scale (depth, width, GPU), ReLU, dropout,
# augmentation. VGG: only stacked 3×3 convolutions in blocks. NiN: 1×1 convolutions (per-pixel MLP) and global
# average pooling instead of FC layers. GoogLeNet: parallel multi-scale paths with 1×1 bottlenecks, and two
# auxiliary classifiers (loss weight 0.3, removed at inference) that feed gradient to the early layers — see
# "GoogLeNet's auxiliary classifiers", which measures it. ResNet:
# identity shortcuts, so blocks learn residuals. DenseNet: concatenate all earlier maps, reuse features. Each is
# one file in `utils/models/`; the chart above compares all seven.
# </details>
#
# <details><summary>Why stack 3×3 convolutions?</summary>
#
# Two 3×3 see 5×5 with 18/25 of the weights, three see 7×7 with 27/49, and add non-linearities between them —
# asserted in "VGG: why stacked 3×3".
# </details>
#
# <details><summary>What do fully connected layers do, and why replace them with global average pooling?</summary>
#
# FC layers mix all positions and channels into class scores; they hold most of the parameters (here the VGG head
# is the large majority) and fix the input size. GAP averages each map to one number: no parameters, less
# overfitting, any input size — shown by NiN on 36×36 and 64×64 inputs while VGG's head fails ("NiN: global
# average pooling makes any input size work").
# </details>
#
# <details><summary>ResNet: basic vs bottleneck block, and the projection shortcut?</summary>
#
# Basic: two 3×3 convolutions. Bottleneck: 1×1 reduce → 3×3 → 1×1 expand (×4), far fewer parameters at the same
# width (asserted). The projection shortcut is a strided 1×1 convolution + BN used when the block changes
# resolution or channels, so shortcut and residual can be added (see "ResNet: basic vs bottleneck blocks, and the
# projection shortcut").
# </details>
#
# <details><summary>Why do residual connections make deep nets trainable? What do dense connections add?</summary>
#
# The gradient through `x + F(x)` is `1 + ∂F/∂x`, so an identity path reaches every early layer and a block can
# default to doing nothing; without it a deep net multiplies many Jacobians — the gradient cell in "Why residual
# connections make deep networks trainable" measures the stem/head gradient ratio of the same 50-layer net with
# and without shortcuts (about 1 000 against about 2 in the cpu run) and prints the factor. Dense connections let
# every layer read all earlier features (reuse, narrow layers, strong gradient flow), at the cost of memory for
# the growing concatenations.
# </details>
#
# <details><summary>EfficientNet's compound scaling?</summary>
#
# Scale depth, width and resolution together with one coefficient (α^φ, β^φ, γ^φ, α·β²·γ² ≈ 2) instead of one at a
# time: each alone saturates (a deeper net needs a wider receptive field's worth of resolution, a bigger input
# needs more layers and channels to use it). FLOPs grow as depth × width² × resolution², so α·β²·γ² ≈ 2 doubles
# them per step of φ — see "EfficientNet's compound scaling, tried", which scales a small CNN and counts.
# </details>
#
# <details><summary>Why are FLOPs and parameters different measures of cost?</summary>
#
# Parameters are weights stored; FLOPs are work per image and grow with the spatial size each weight is applied
# to. Compare the FLOPs and images/s panels of the chart in "Train all seven under one budget", and the rank
# correlations printed under it, for your run.
# </details>
#
# <details><summary>Inside a ResNet block: the order of operations, where the ReLU goes, how to initialise?</summary>
#
# conv–BN–ReLU, conv–BN, add the shortcut, then ReLU: the output is relu(F(x) + shortcut(x)), never negative — the
# order is recorded with forward hooks and the output recomputed by hand in "Inside a residual block: conv–BN–ReLU,
# conv–BN, then the ReLU after the addition". ResNet v2 (He et al., 2016) moves BN and ReLU before each convolution
# and leaves the sum without a ReLU. Convolutions get Kaiming initialisation; Goyal et al. (2017) also set γ of each
# branch's last BN to 0 (torchvision's `zero_init_residual`, our `ResNet(zero_init_residual=True)`), so every block
# starts as the identity and the deep network starts as a shallow one — asserted exactly in "Zero-initialised
# residual: with the last BN's γ = 0, a block with an identity shortcut is exactly the identity". γ still receives a
# gradient, so each block learns its correction from 0. It buys stability with large batches and learning rates, not
# speed as such: over the first 20 steps of a small ResNet the default initialisation fell faster (mean loss 1.64
# against 2.13 over steps 11–20, CPU run) — "Zero-initialised residual in the first 20 steps of training, with and
# without".
# </details>
#
# ### Answers you may read that are wrong
#
# <details><summary>Wrong: “AlexNet used BatchNorm.”</summary>
#
# Right: AlexNet (2012) normalised with Local Response Normalisation after its first two convolutions; BatchNorm
# (Ioffe & Szegedy) came in 2015, after AlexNet, VGG and the first GoogLeNet. Our AlexNet-style network has none —
# its layer list is printed and asserted in "AlexNet, layer by layer"; the BatchNorm in our VGG is a later addition,
# as in torchvision's `vgg16_bn`.
#
# </details>
#
# <details><summary>Wrong: “AlexNet's input is 224×224.”</summary>
#
# Right: the paper says so, but its first layer (11×11, stride 4, no padding) gives the stated 55×55 map only from
# 227×227: ⌊(227 − 11)/4⌋ + 1 = 55, while 224 gives 54 — asserted in "AlexNet, layer by layer". Caffe's reference
# model crops 227; torchvision keeps 224 and pads the first layer by 2.
#
# </details>
#
# <details><summary>Wrong: “Two stacked 3×3 convolutions are equivalent to one 5×5.”</summary>
#
# Right: they share the 5×5 receptive field, not the function. At the same width the pair has 18/25 of the weights
# (asserted in "VGG: why stacked 3×3"), so it cannot express every 5×5 convolution, and the ReLU between them makes
# it non-linear — fewer weights and one more non-linearity is why VGG chose them.
#
# </details>
#
# <details><summary>Wrong: “ResNet solved the vanishing-gradient problem.”</summary>
#
# Right: He et al. (2015) trained their plain networks with BatchNorm, checked that the gradients kept healthy
# norms, and still found the 34-layer plain network's *training* error above the 18-layer one's: shortcuts fix that
# degradation, an optimisation difficulty. Our 50-layer plain network's gradient does not vanish either — its stem
# gets hundreds of times the head's gradient norm (asserted > 10× in "The plain network's gradient does not vanish
# at the stem"), against about 2× with shortcuts ("Why residual connections make deep networks trainable").
#
# </details>
#
# <details><summary>Wrong: “DenseNet's dense connections make it heavy in parameters.”</summary>
#
# Right: a concatenation has no weights, and each layer writes only k new channels (the growth rate, 32 in
# DenseNet-121) — its input grows through the block, its output does not — so the layers stay narrow: DenseNet-121
# has 8.0 M parameters against ResNet-50's 25.6 M, counted in "Dense connections add no weights". What dense
# connectivity costs is memory: every layer's maps are kept for the concatenations.
#
# </details>
