# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 5 — Semantic segmentation: U-Net, U-Net++, DeepLab
#
# A classifier says *what* is in the image; a detector (Chapter 4) says what and roughly *where* (a box);
# **semantic segmentation** labels *every pixel* with a class. The output is a map as large as the input, so the
# network must do two things that pull in opposite directions: see a lot of context (to know that this blob is a
# sandal, not a bag) and keep fine resolution (to put the boundary on the right pixel).
#
# Two families answer this, and we build both:
#
# | network | year | how it gets context *and* resolution |
# |---|---|---|
# | U-Net | 2015 | encoder–decoder; the decoder *concatenates* the encoder map of the same scale (skip connections) |
# | U-Net++ | 2018 | the skip becomes a dense ladder of nested convolution nodes; one head per depth (deep supervision) |
# | DeepLab v3 | 2017 | stop down-sampling at stride 8, use *atrous* (dilated) convolutions and ASPP for context |
# | DeepLab v3+ | 2018 | v3 plus a light decoder with depthwise-separable convolutions for sharp boundaries |
#
# Data: the synthetic **Fashion scenes** of Chapter 4 (`utils.scenes`): Fashion-MNIST items pasted on noisy
# backgrounds, whose per-pixel labels are exact because we generated them. Class 0 is background, class 1 + c is
# Fashion-MNIST class c. Code lives in `utils/segmentation.py` (metrics, losses, loader, overlays),
# `utils/models/unet.py` and `utils/models/deeplab.py` — open them beside this notebook.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex
from torchvision.ops import sigmoid_focal_loss
from torchvision.transforms import v2

from utils import exercises, segmentation as seg, start_chapter
from utils.data import CLASSES, standardize
from utils.models.deeplab import DeepLabV3Plus, SeparableConv
from utils.models.unet import RSU, UNet, UNetPlusPlus
from utils.diagrams import architecture_figure
from utils.measuring import count_flops, count_parameters
from utils.plotting import colorbar, comparison_chart, show
from utils.receptive_field import receptive_field
from utils.results import report
from utils.runtime import pick, profile, seed_everything
from utils.scenes import fashion_scenes
from utils.training import fit, predict
from utils.widgets import Explorer, dropdown, slider

device = start_chapter("05_segmentation")

SIZE = pick(smoke=32, cpu=64, gpu=128)              # canvas side in pixels
# a scene takes about 2 ms to generate: the models learn from many scenes seen a few times, not few scenes seen often
TRAIN_SCENES = pick(smoke=384, cpu=3_000, gpu=20_000)
TEST_SCENES = pick(smoke=48, cpu=500, gpu=1_000)
WIDTH = pick(smoke=8, cpu=8, gpu=32)               # channels of each model's first stage
EPOCHS = pick(smoke=12, cpu=6, gpu=30)
BATCH = pick(smoke=16, cpu=16, gpu=64)
LR = pick(smoke=1e-2, cpu=1e-2, gpu=5e-3)
NUM_CLASSES = 1 + len(CLASSES)                     # background + 10 Fashion-MNIST classes
NAMES = ("background",) + CLASSES

# %% [markdown]
# ## 1. The data: scenes with exact masks
# Items are scaled to between 1/4 and 1/2 of the canvas side (16 to 32 px on the `cpu` profile's 64-px canvas) and
# may overlap (the later item is drawn on top). Smaller items would still be easy to *find*, but a 28-px garment
# shrunk to 8 px keeps too few pixels to be *named*: the collar or the sleeves that tell a shirt from a coat vanish.
# `tensors()` hands us everything at once — images `uint8 N×1×S×S` and semantic maps `int64 N×S×S` — so
# training batches can live on the device. We hold out the last tenth of the training scenes for validation (the
# epoch whose weights are kept is chosen on it); the test scenes, built from Fashion-MNIST's *test* items, are
# only used at the end.

# %%
scene_args = dict(size=SIZE, min_scale=SIZE // 4, max_scale=SIZE // 2)
train_scenes = fashion_scenes("train", TRAIN_SCENES, **scene_args)
test_scenes = fashion_scenes("test", TEST_SCENES, **scene_args)
images, masks = train_scenes.tensors()
test_images, test_masks = test_scenes.tensors()
n_val = len(images) // 10
train_x, train_y, val_x, val_y = images[:-n_val], masks[:-n_val], images[-n_val:], masks[-n_val:]

assert images.shape == (TRAIN_SCENES, 1, SIZE, SIZE) and images.dtype == torch.uint8, (
    f"scenes should be {TRAIN_SCENES}×1×{SIZE}×{SIZE} uint8, got {tuple(images.shape)} {images.dtype}")
assert masks.shape == (TRAIN_SCENES, SIZE, SIZE) and masks.dtype == torch.int64, (
    f"masks should be {TRAIN_SCENES}×{SIZE}×{SIZE} int64 class maps, got {tuple(masks.shape)} {masks.dtype}")
assert 0 <= masks.min() and masks.max() < NUM_CLASSES, f"mask values should be classes 0..{NUM_CLASSES - 1}"
background_share = (masks == 0).float().mean().item()
assert background_share > 0.6, "most pixels are background: the class imbalance segmentation must live with"
print(f"{len(train_x)} train / {n_val} validation / {len(test_images)} test scenes of {SIZE}×{SIZE}; "
      f"{background_share:.0%} of pixels are background")

fig, axes = plt.subplots(2, 6, figsize=(12, 5.2), layout="constrained")
for i, (top, bottom) in enumerate(zip(axes[0], axes[1])):
    top.imshow(images[i, 0], cmap="gray")
    bottom.imshow(seg.overlay(images[i, 0].numpy(), masks[i].numpy(), NUM_CLASSES, 0.6))
    bottom.set_xlabel("\n".join(CLASSES[c - 1] for c in masks[i].unique().tolist() if c), fontsize=8)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].set_ylabel("scene")
axes[1, 0].set_ylabel("mask over it")
fig.suptitle("Training scenes and their semantic masks (colour = class, named under each mask)")
show(fig)

# %% [markdown]
# ## 2. Metrics from a confusion matrix
# Every segmentation metric is a function of one `K×K` **confusion matrix** `C`: `C[t, p]` counts the pixels of
# true class `t` predicted as `p`. `seg.confusion_matrix` builds it with a single `bincount` over `t·K + p`.
#
# * **PA** (pixel accuracy) = trace(C) / ΣC — the share of right pixels;
# * **CPA** (class pixel accuracy) = C[c, c] / Σ_k C[c, k] — of the pixels that *are* c, how many we got (recall);
# * **MPA** = mean of the CPAs — every class counts the same;
# * **IoU_c** = C[c, c] / (row sum + column sum − C[c, c]) = TP / (TP + FP + FN);
# * **mIoU** = mean of the IoUs — the standard headline number (PASCAL VOC, Cityscapes, ADE20K).
#
# Conventions for the corner cases (the same as torchmetrics'): a class in neither target nor prediction is
# *undefined* — NaN, left out of the means — while a class that is only predicted scores 0 (its false positives
# are real mistakes). We check all of this against `torchmetrics` on a tiny example, then on real masks.

# %%
target = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 2, 2, 2]])
pred = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 2, 3]])
matrix = seg.confusion_matrix(pred, target, num_classes=5)
print(matrix)
ours = seg.metrics_from_confusion(matrix)
assert matrix.sum() == target.numel() and matrix.trace() == (pred == target).sum(), (
    "the confusion matrix should count every pixel once, correct ones on its diagonal")
assert ours["pixel_accuracy"] == 9 / 12, f"9 of 12 pixels are right, got pixel accuracy {ours['pixel_accuracy']}"
torch.testing.assert_close(ours["iou"][:4], torch.tensor([4 / 6, 4 / 5, 1 / 3, 0.0], dtype=torch.float64))
assert ours["iou"][4].isnan() and ours["class_accuracy"][4].isnan(), (  # class 4: in neither map
    "a class in neither map should be undefined (NaN)")
assert ours["class_accuracy"][3] == 0, "a class that is only predicted should score 0"  # class 3: only predicted
torch.testing.assert_close(ours["iou"].nan_to_num().float(), MulticlassJaccardIndex(5, average="none")(pred, target))
assert np.isclose(ours["miou"], MulticlassJaccardIndex(5)(pred, target).item()), (
    "mIoU should equal torchmetrics' MulticlassJaccardIndex")
assert np.isclose(ours["mean_pixel_accuracy"], MulticlassAccuracy(5)(pred, target).item()), (
    "mean pixel accuracy should equal torchmetrics' MulticlassAccuracy")


# %% [markdown]
# **Exercise (medium).** In the exercise version of this notebook (`make exercises`) the cell below keeps only the
# signature and hints of `mean_iou`: count the confusion matrix with one `bincount` and average the per-class IoUs,
# leaving out only the classes in neither map. The self-check compares it with torchmetrics'
# `multiclass_jaccard_index` (the `MulticlassJaccardIndex` above), the worked example among its cases.

# %% tags=["exercise"]
def mean_iou(pred, target, num_classes):
    """Mean IoU in PyTorch from the confusion matrix of two label maps: pred and target int64 of one shape (e.g.
    N×H×W), labels in [0, num_classes) → a scalar tensor, as torchmetrics' multiclass_jaccard_index.

    Hints: one torch.bincount over target·num_classes + pred (minlength num_classes², reshaped to
    num_classes × num_classes) counts C[t, p] over every pixel of every image; IoU_c = C[c, c] / (row sum + column
    sum − C[c, c]); a class with union 0 (in neither map) is undefined and left out of the mean, while a class that
    is only predicted scores 0.
    """
    matrix = torch.bincount((target * num_classes + pred).flatten(), minlength=num_classes ** 2)
    matrix = matrix.reshape(num_classes, num_classes).double()
    hits = matrix.diagonal()
    union = matrix.sum(0) + matrix.sum(1) - hits
    defined = union > 0
    return (hits[defined] / union[defined]).mean()


# %% tags=["self-check"]
mean_iou = exercises.check("mean_iou", mean_iou)

# %%
# Dice is not IoU: per class D = 2TP / (2TP + FP + FN) = 2·IoU / (1 + IoU), above IoU wherever 0 < IoU < 1
hits, in_target, in_pred = matrix.diagonal().double(), matrix.sum(1).double(), matrix.sum(0).double()
class_dice = (2 * hits / (in_target + in_pred))[:4]                  # classes 0–3; class 4 is in neither map
torch.testing.assert_close(class_dice, 2 * ours["iou"][:4] / (1 + ours["iou"][:4]))
torch.testing.assert_close(class_dice, torch.tensor([0.8, 8 / 9, 0.5, 0.0], dtype=torch.float64))
print(f"classes 0–3: Dice {class_dice.numpy().round(3)}, IoU {ours['iou'][:4].numpy().round(3)}; "
      f"means {class_dice.mean():.3f} and {ours['iou'][:4].mean():.3f}")

# %% [markdown]
# Why mIoU and not pixel accuracy? Predict "background" everywhere on the test scenes: pixel accuracy looks good
# because most pixels *are* background, while mIoU exposes the useless model. This all-background baseline is also
# the floor every trained model below must clear.

# %%
baseline = seg.segmentation_metrics(torch.zeros_like(test_masks), test_masks, NUM_CLASSES)
reference = MulticlassJaccardIndex(NUM_CLASSES)(torch.zeros_like(test_masks), test_masks).item()
assert np.isclose(baseline["miou"], reference), (
    f"baseline mIoU {baseline['miou']:.4f} should equal torchmetrics' {reference:.4f}")
assert baseline["pixel_accuracy"] > 0.6 and baseline["miou"] < 0.1, (
    f"all-background should look good in pixel accuracy (> 0.6) and useless in mIoU (< 0.1), "
    f"got {baseline['pixel_accuracy']:.3f} and {baseline['miou']:.3f}")
print(f"all-background baseline: PA {baseline['pixel_accuracy']:.3f}, MPA {baseline['mean_pixel_accuracy']:.3f}, "
      f"mIoU {baseline['miou']:.3f}")

# %% [markdown]
# ## 3. Losses: cross-entropy, focal, Dice
# * **Cross-entropy** averages −log p_t over pixels, so 80 % background pixels dominate the gradient.
# * **Focal loss** (RetinaNet, 2017) multiplies it by (1 − p_t)^γ: a pixel already right with p_t = 0.9 weighs
#   (0.1)² = 1 % of its cross-entropy at γ = 2, so training spends its effort on the hard pixels. An optional α
#   weighs foreground against background. With γ = 0 it *is* cross-entropy.
# * **Dice loss** = 1 − 2|P∩Y| / (|P| + |Y|) per class, on soft probabilities, averaged over classes: a region
#   overlap, so a 30-pixel sandal weighs as much as the whole background. Its gradients are noisier; in practice
#   it is added to cross-entropy, which is what we train with.
#
# The binary focal loss is asserted equal to `torchvision.ops.sigmoid_focal_loss`, the multi-class one to
# cross-entropy at γ = 0.

# %%
logits, binary_target = torch.randn(4, 32, 32), (torch.rand(4, 32, 32) > 0.8).float()
for gamma, alpha in ((2.0, 0.25), (0.0, -1.0)):
    torch.testing.assert_close(seg.binary_focal_loss(logits, binary_target, gamma, alpha),
                               sigmoid_focal_loss(logits, binary_target, alpha, gamma, reduction="mean"))
class_logits = torch.randn(2, NUM_CLASSES, 16, 16)
torch.testing.assert_close(seg.focal_loss(class_logits, masks[:2, :16, :16], gamma=0),
                           F.cross_entropy(class_logits, masks[:2, :16, :16]))

p_t = torch.linspace(0.01, 1, 200)
fig, ax = plt.subplots(figsize=(5, 3.2))
for gamma in (0, 0.5, 2, 5):
    ax.plot(p_t, -(1 - p_t) ** gamma * p_t.log(), label=f"γ = {gamma}" + (" (cross-entropy)" if gamma == 0 else ""))
ax.set(xlabel="probability of the true class p_t", ylabel="loss", title="Focal loss down-weights easy pixels")
ax.legend()
show(fig)


# %% [markdown]
# **Exercise (easy).** In the exercise version of this notebook the cell below keeps only the signature and hints of
# `binary_focal_loss`, RetinaNet's loss with one logit per pixel: write it, and the self-check compares it with
# `torchvision.ops.sigmoid_focal_loss(logits, target, alpha, gamma, reduction="mean")`, logits of ±40 among its
# cases.

# %% tags=["exercise"]
def binary_focal_loss(logits, target, gamma=2.0, alpha=0.25):
    """Binary focal loss in PyTorch, averaged over every element: logits and target (0 or 1, float) of one shape →
    a scalar, the mean of −α_t (1 − p_t)^γ log p_t.

    Hints: p = torch.sigmoid(logits); where the target is 1, p_t = p and α_t = α, where it is 0, p_t = 1 − p and
    α_t = 1 − α (p * target + (1 − p) * (1 − target) picks without a branch); take −log p_t from
    F.binary_cross_entropy_with_logits(logits, target, reduction="none"): torch.log(p_t) is log 0 = −inf once the
    sigmoid rounds to 0 or 1.
    """
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    cross_entropy = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (alpha_t * (1 - p_t) ** gamma * cross_entropy).mean()


# %% tags=["self-check"]
binary_focal_loss = exercises.check("binary_focal_loss", binary_focal_loss)

# %% [markdown]
# The imbalance, measured: start from an undecided prediction (all classes equally likely at every pixel) on the
# scene with the least foreground, and ask how much of each loss's gradient lands on its smallest object.
# Cross-entropy gives each *pixel* the same say, so the object gets about its share of the pixels; Dice gives each
# *class* the same say, so the object gets far more.

# %%
scene = int(torch.tensor([(m > 0).sum() for m in masks[:50]]).argmin())      # the scene with the least foreground
truth = masks[scene:scene + 1]
small = min(truth.unique()[1:].tolist(), key=lambda c: (truth == c).sum().item())
pixel_share = (truth == small).float().mean().item()
gradient_share = {}
for name, loss in (("cross-entropy", lambda z: F.cross_entropy(z, truth)), ("Dice", lambda z: seg.dice_loss(z, truth))):
    undecided = torch.zeros(1, NUM_CLASSES, SIZE, SIZE, requires_grad=True)
    loss(undecided).backward()
    per_pixel = undecided.grad.abs().sum(1)[0]
    gradient_share[name] = (per_pixel[truth[0] == small].sum() / per_pixel.sum()).item()
print(f"the {CLASSES[small - 1]} covers {pixel_share:.1%} of the pixels and receives "
      + ", ".join(f"{share:.1%} of the {name} gradient" for name, share in gradient_share.items()))
assert np.isclose(gradient_share["cross-entropy"], pixel_share, rtol=0.05), (
    f"cross-entropy should give the object its pixel share {pixel_share:.3f}, got "
    f"{gradient_share['cross-entropy']:.3f}")
assert gradient_share["Dice"] > 3 * gradient_share["cross-entropy"], (
    f"Dice should give the small object > 3× the cross-entropy share, got {gradient_share}")


# %% [markdown]
# **Exercise (medium).** In the exercise version of this notebook the cell below keeps only the signature and hints of
# `dice_loss`, the soft Dice loss all three models train with: write it, and the self-check compares it with
# `seg.dice_loss`, on batches where a class is in one image only or in none.

# %% tags=["exercise"]
def dice_loss(logits, target, smooth=1.0):
    """Soft multi-class Dice loss in PyTorch, as seg.dice_loss: logits N×C×H×W, target N×H×W labels in [0, C) → a
    scalar, 1 − the mean over the foreground classes c = 1 … C − 1 of (2 Σ p·y + smooth) / (Σ p + Σ y + smooth),
    p the softmax over the classes, y the one-hot target, each sum over the whole batch and every pixel.

    Hints: F.softmax(logits, 1); F.one_hot(target, C) is N×H×W×C, .permute(0, 3, 1, 2) makes it N×C×H×W; drop class 0
    (the background) from both with [:, 1:]; sum over dims (0, 2, 3) for one overlap and one size per class.
    """
    probs = F.softmax(logits, 1)[:, 1:]
    one_hot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:]
    overlap = (probs * one_hot).sum((0, 2, 3))
    sizes = probs.sum((0, 2, 3)) + one_hot.sum((0, 2, 3))
    return 1 - ((2 * overlap + smooth) / (sizes + smooth)).mean()


# %% tags=["self-check"]
dice_loss = exercises.check("dice_loss", dice_loss)

# %% [markdown]
# ## 4. U-Net: an encoder, a decoder and concatenated skips
# The encoder halves the resolution `depth` times (two 3×3 convolutions, then 2×2 max-pooling) while doubling the
# channels: *what*. The decoder doubles it back with 2×2 transposed convolutions, and at each scale it
# **concatenates** the encoder's map of the same size — the fine *where* that pooling threw away — before two more
# 3×3 convolutions. (ResNet *adds* its shortcut; U-Net *concatenates*, letting the next convolution decide how to mix
# coarse and fine.) A 1×1 convolution turns the last map into per-pixel class logits. We pad our convolutions so the
# output covers the whole input; the 2015 paper used unpadded ones and cropped the skips.

# %%
unet = UNet(NUM_CLASSES, width=WIDTH, depth=3)
x = torch.randn(2, 1, SIZE, SIZE)
assert unet(x).shape == (2, NUM_CLASSES, SIZE, SIZE), "U-Net should output one score map per class at full resolution"
# each decoder step fuses the skip (width·2^i channels) with the upsampled map (as many): twice the channels
assert [f[0].in_channels for f in unet.fuse] == [2 * WIDTH * 4, 2 * WIDTH * 2, 2 * WIDTH], (
    "each decoder stage should fuse the upsampled map with its skip: twice the channels")


def double_conv_params(c_in, c_out):
    """Two bias-free 3×3 convolutions and two BatchNorms (γ, β each)."""
    return 9 * c_in * c_out + 9 * c_out * c_out + 4 * c_out


channels = [WIDTH * 2 ** i for i in range(4)]
expected = (double_conv_params(1, channels[0]) + sum(double_conv_params(channels[i], channels[i + 1]) for i in range(3))
            + sum(4 * channels[i + 1] * channels[i] + channels[i] for i in range(3))      # 2×2 transposed convs
            + sum(double_conv_params(2 * channels[i], channels[i]) for i in range(3))
            + channels[0] * NUM_CLASSES + NUM_CLASSES)
assert count_parameters(unet) == expected, (
    f"U-Net should have {expected:,} parameters by the formula")
print(f"U-Net: {expected:,} parameters; output {tuple(unet(x).shape)}")
show(architecture_figure({"U-Net": (unet, (x[:1],))}, "U-Net, traced: encoder down, decoder up (skips: concat)"))
try:
    unet(torch.randn(1, 1, SIZE + 4, SIZE + 4))
except ValueError as error:
    print("odd sizes are refused:", error)

# %% [markdown]
# ## 5. U-Net++: nested dense skips and deep supervision
# In U-Net the decoder fuses an encoder map (shallow, low-level) with a decoder map (deep, semantic): a *semantic
# gap*. U-Net++ fills each skip with a ladder of nodes X[i][j] (scale i, position j along the skip): every node
# takes **all earlier nodes of its row** (dense, as in DenseNet) plus the upsampled node below-left. The top row
# X[0][1], X[0][2], X[0][3] are the outputs of U-Nets of depth 1, 2 and 3 sharing one encoder, so each gets a 1×1
# head: **deep supervision** trains all of them (one loss each), and at inference one may **prune** to a shallower
# head: fewer FLOPs (counted below), less accuracy (measured after training, in section 9).

# %%
unet_pp = UNetPlusPlus(NUM_CLASSES, width=WIDTH, depth=3).train()
outputs = unet_pp(x)
assert isinstance(outputs, list) and len(outputs) == 3, (
    "U-Net++ with deep supervision should return 3 heads' outputs in training")
assert all(o.shape == (2, NUM_CLASSES, SIZE, SIZE) for o in outputs), (
    "every U-Net++ head should output full-resolution class maps")
# node X[0][3] concatenates X[0][0], X[0][1], X[0][2] and the upsampled X[1][2]
assert unet_pp.nodes["0_3"][0].in_channels == 3 * WIDTH + 2 * WIDTH, (
    "node X[0][3] should read its 3 same-level predecessors and the upsampled node below")
loss = seg.segmentation_loss("cross_entropy+dice")(unet_pp, (x, masks[:2]))
loss.backward()                                                   # one loss per head, averaged
assert all(head.weight.grad.abs().sum() > 0 for head in unet_pp.heads), "the averaged loss should reach every head"

unet_pp.eval()
pruned_flops = {}
for prune_to in (1, 2, 3):
    unet_pp.prune_to = prune_to
    with torch.no_grad():
        assert unet_pp(x).shape == (2, NUM_CLASSES, SIZE, SIZE), (
            f"U-Net++ pruned to depth {prune_to} should still give full-resolution maps")
    pruned_flops[prune_to] = count_flops(unet_pp, torch.zeros(1, 1, SIZE, SIZE, device=device))
# a shallower head skips whole columns of nodes: the cost falls steeply (its accuracy is measured in section 9)
assert pruned_flops[1] < pruned_flops[2] / 2 < pruned_flops[3] / 2, (
    f"each shallower U-Net++ should cost under half the deeper one, MFLOPs "
    f"{[round(pruned_flops[d] / 1e6, 1) for d in (1, 2, 3)]}")
print("U-Net++ inference cost by pruned depth:", {k: f"{v / 1e6:.0f} MFLOPs" for k, v in pruned_flops.items()})
print(f"parameters: U-Net {count_parameters(unet):,}, "
      f"U-Net++ {count_parameters(unet_pp):,}")

# %% [markdown]
# ## 6. Atrous convolution: context without losing resolution
# A 3×3 convolution with **dilation** (rate) r places its 9 taps r pixels apart: it is the 3×3 kernel with r − 1
# zeros inserted between taps ("à trous", with holes). Same 9 weights, same output size, a window of 2r + 1.
# First the definition, asserted: a dilated convolution equals an ordinary one with the zero-filled kernel.

# %%
weight = torch.randn(4, 1, 3, 3)
holey = torch.zeros(4, 1, 5, 5)
holey[:, :, ::2, ::2] = weight                                        # rate 2: one zero between taps
sample = images[:2].float()
torch.testing.assert_close(F.conv2d(sample, weight, padding=2, dilation=2), F.conv2d(sample, holey, padding=2))

# %% [markdown]
# Stacking them: with rates 1, 2, 4, 8 the receptive field grows *exponentially* with depth, with plain 3×3
# convolutions only linearly — measured with Chapter 1's `receptive_field`, which reads kernel, stride, padding and
# dilation off every layer.

# %%
def conv_stack(rates):
    return nn.Sequential(*[nn.Conv2d(1 if i == 0 else 4, 4, 3, padding=r, dilation=r) for i, r in enumerate(rates)])


plain_rf = [receptive_field(conv_stack([1] * n), (1, 64, 64))[-1].rf for n in range(1, 6)]
atrous_rf = [receptive_field(conv_stack([2 ** i for i in range(n)]), (1, 64, 64))[-1].rf for n in range(1, 6)]
assert plain_rf == [3, 5, 7, 9, 11] and atrous_rf == [3, 7, 15, 31, 63], (  # 2n + 1 against 2^(n+1) − 1
    f"receptive fields should grow as 2n+1 and 2^(n+1)−1, got {plain_rf} and {atrous_rf}")
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(range(1, 6), plain_rf, "o-", label="3×3, rate 1")
ax.plot(range(1, 6), atrous_rf, "o-", label="3×3, rates 1, 2, 4, 8, 16")
ax.set(xlabel="layers", ylabel="receptive field (pixels)", title="Atrous convolutions grow the receptive field",
       xticks=range(1, 6))
ax.legend()
show(fig)

# %% [markdown]
# ## 7. DeepLab v3: output stride 8 and ASPP
# A classification backbone down-samples 32×. DeepLab stops at **output stride 8**: the last stages keep stride 1
# and dilate their convolutions instead (`AtrousBlock`, Chapter 1's residual block with rates 2 and 4), so the map
# stays fine while the receptive field keeps growing. On top sits **ASPP** — *atrous spatial pyramid pooling* —
# parallel branches looking at the same map at several scales: a 1×1 convolution, 3×3 atrous convolutions at rates
# (2, 4, 6) (the paper uses 6, 12, 18 at output stride 16 on 33×33 maps; ours are 4×4 to 16×16), and **image
# pooling** (the global average, broadcast back: context of the whole image). They are concatenated and mixed by
# a 1×1 convolution. Against v1 (2015) and v2 (2017), v3 keeps atrous convolution at its core: it adds the 1×1 and
# image-pooling branches and BatchNorm to ASPP, and drops their fully connected CRF post-processing.
# The receptive field each branch adds on top of the backbone:

# %%
deeplab = DeepLabV3Plus(NUM_CLASSES, width=WIDTH)
backbone = deeplab.backbone
trunk = nn.Sequential(backbone.stem, backbone.stride4, backbone.stride8, backbone.atrous)
trunk_rf = receptive_field(trunk, (1, SIZE, SIZE))[-1]
branch_rf = {f"rate {r}": receptive_field(nn.Sequential(trunk, branch), (1, SIZE, SIZE))[-1].rf
             for r, branch in zip((1, 2, 4, 6), deeplab.aspp.branches[:-1])}
print(f"backbone: receptive field {trunk_rf.rf:.0f} px, output stride {trunk_rf.jump:.0f}; with each ASPP branch:",
      branch_rf)
assert trunk_rf.jump == 8, f"the DeepLab backbone should have output stride 8, got {trunk_rf.jump}"
assert all(branch_rf[f"rate {r}"] == trunk_rf.rf + 2 * r * trunk_rf.jump for r in (2, 4, 6)), (
    f"an ASPP branch of rate r should add 2·r·8 px to the field, got {branch_rf}")
assert deeplab.aspp(torch.randn(2, 4 * WIDTH, SIZE // 8, SIZE // 8)).shape == (2, 4 * WIDTH, SIZE // 8, SIZE // 8), (
    "ASPP should keep the map's size and width")

# %%
# DeepLab v3 is atrous convolution throughout: the rates of the backbone's last stage and of ASPP's 3×3 branches
backbone_rates = [(block.conv1.dilation[0], block.conv2.dilation[0]) for block in deeplab.backbone.atrous]
aspp_rates = [branch[0][0].dilation[0] for branch in deeplab.aspp.branches[1:-1]]     # depthwise 3×3 of each branch
image_pooling = isinstance(deeplab.aspp.branches[-1].project[0], nn.AdaptiveAvgPool2d)
assert backbone_rates == [(2, 2), (4, 4)] and aspp_rates == [2, 4, 6] and image_pooling, (
    f"the backbone should dilate by 2 and 4, ASPP by 2, 4, 6 beside image pooling; got {backbone_rates}, "
    f"{aspp_rates}, image pooling {image_pooling}")
print(f"atrous rates: backbone {backbone_rates}, ASPP {aspp_rates} (the paper: 6, 12, 18 at output stride 16), "
      "plus a 1×1 branch and image pooling")

# %% [markdown]
# ## 8. DeepLab v3+: a decoder with depthwise-separable convolutions
# v3 upsamples the stride-8 logits 8× in one step, and boundaries come out blurry. v3+ upsamples the ASPP features
# only to stride 4, concatenates the backbone's **low-level** stride-4 features (reduced by a 1×1 convolution so
# they do not drown the semantics), refines with two 3×3 convolutions and only then upsamples 4×. Those
# convolutions — and the ASPP's atrous ones — are **depthwise-separable**: a 3×3 filter per channel (spatial) then
# a 1×1 mixing channels, 9·C + C·C' weights instead of 9·C·C'.

# %%
separable, full = SeparableConv(64, 64), nn.Conv2d(64, 64, 3, padding=1, bias=False)
conv_weights = [m.weight.numel() for m in separable.modules() if isinstance(m, nn.Conv2d)]
assert conv_weights == [9 * 64, 64 * 64] and full.weight.numel() == 9 * 64 * 64, (
    f"separable 3×3 should be 9·64 + 64·64 weights against 9·64·64, got {conv_weights}")
print(f"3×3 conv 64→64: {full.weight.numel():,} weights; separable: {sum(conv_weights):,} "
      f"({full.weight.numel() / sum(conv_weights):.1f}× fewer)")
assert deeplab(x).shape == (2, NUM_CLASSES, SIZE, SIZE), "DeepLab v3+ should output full-resolution class maps"
show(architecture_figure({"DeepLab v3+": (deeplab, (x[:1],))},
                         "DeepLab v3+, traced (the final ×4 upsampling is a function, not a block)"))
assert DeepLabV3Plus(NUM_CLASSES, width=WIDTH, decoder=False)(x).shape == (2, NUM_CLASSES, SIZE, SIZE), (
    "DeepLab v3 without the decoder should still output full-resolution maps")

# %% [markdown]
# ## 9. Training U-Net, U-Net++ and DeepLab v3+
# Batches live on the device (`seg.MaskLoader`, a `DeviceLoader` for image/mask pairs). Augmentation must move the
# mask with the image: `torchvision.transforms.v2` does that when it is handed a `tv_tensors.Image` and a
# `tv_tensors.Mask` together — geometric transforms apply the same parameters to both and resample the mask with
# nearest neighbour (no blended labels). We check it on a batch, then train the three models alike with the course's
# `fit`: the same scenes, epochs and learning rate, the cross-entropy + Dice loss of section 3, and per-epoch
# validation PA / MPA / mIoU (`evaluate_fn`); the epoch with the best validation mIoU is kept. U-Net++ returns one
# logit map per head in training, and `seg.segmentation_loss` averages the loss over them: deep supervision.

# %%
augment = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomAffine(degrees=0, translate=(0.1, 0.1), scale=(0.9, 1.1))])
train_loader = seg.MaskLoader(train_x, train_y, BATCH, shuffle=True, transform=augment, device=device)
val_loader = seg.MaskLoader(val_x, val_y, 64, device=device)

probe = seg.MaskLoader(train_x[:8], (train_y[:8] > 0).long(), 8, shuffle=True, groups=2,
                       transform=augment, prepare=lambda u: u.float())
moved_images, moved_masks = next(iter(probe))
# the pixel classes travel with the image: an object pixel of the original is still one after the transform
brightness_in = train_x[:8].float()[:, 0][train_y[:8] > 0].mean()
assert moved_masks.shape == (8, SIZE, SIZE) and moved_masks.dtype == torch.int64, (
    "augmented masks should stay int64 class maps of the scene size")
assert abs(moved_images[:, 0][moved_masks > 0].mean() - brightness_in) < 0.1 * brightness_in, (
    "after augmentation the masks should still cover the objects (same mean brightness within 10 %)")

evaluate = lambda model, loader: seg.evaluate_segmentation(model, loader, NUM_CLASSES)  # noqa: E731
seed_everything(0)      # the models' initialisation then does not depend on which cells ran before, or how often
models = {"U-Net": UNet(NUM_CLASSES, width=WIDTH, depth=3),
          "U-Net++": UNetPlusPlus(NUM_CLASSES, width=WIDTH, depth=3),
          "DeepLab v3+": DeepLabV3Plus(NUM_CLASSES, width=WIDTH)}
assert models["U-Net++"].deep_supervision, (  # so its training loss averages the three heads' losses
    "U-Net++ should train with deep supervision")
histories = {}
for name, model in models.items():
    histories[name] = fit(model.to(device), train_loader, epochs=EPOCHS, lr=LR, val_loader=val_loader,
                          loss_fn=seg.segmentation_loss("cross_entropy+dice"), evaluate_fn=evaluate,
                          monitor="val_miou", name=f"05_{name.replace(' ', '_').lower()}",
                          config=dict(scene_args, scenes=TRAIN_SCENES, width=WIDTH, batch=BATCH,
                                      augment=repr(augment)))

# %% [markdown]
# On the test scenes (test items only, never seen in training), against the all-background baseline. Besides
# the 11-class scores we report the *foreground IoU* — object versus background, whatever the class — which a
# model learns long before it tells a shirt from a coat: every model's foreground IoU is far above its mIoU, so
# what holds the mIoU down is naming the garments, not outlining them. That is why this chapter trains on
# thousands of scenes (more garments to learn the classes from) with items no smaller than a quarter of the canvas.

# %%
# gpu bars held at the cpu-measured level until measured on a GPU.
MIOU_BAR = pick(smoke=baseline["miou"] + 0.025, cpu=0.33, gpu=0.33)
FOREGROUND_BAR = pick(smoke=0.35, cpu=0.8, gpu=0.8)


def predict_labels(model):
    """Arg-max class of every test pixel: int64 N×S×S."""
    return torch.cat([predict(model, standardize(chunk)).argmax(1) for chunk in test_images.split(256)])


predictions, results, foreground = {}, {}, {}
for name, model in models.items():
    predictions[name] = predict_labels(model)
    results[name] = seg.segmentation_metrics(predictions[name], test_masks, NUM_CLASSES)
    reference = MulticlassJaccardIndex(NUM_CLASSES)(predictions[name], test_masks).item()
    assert np.isclose(results[name]["miou"], reference), (
        f"{name}: mIoU {results[name]['miou']:.4f} should equal torchmetrics' {reference:.4f}")
    foreground[name] = seg.segmentation_metrics((predictions[name] > 0).long(), (test_masks > 0).long(), 2)["iou"][1]

scoreboard = {"all background": {"miou": baseline["miou"], "foreground": 0.0, "pixel_accuracy": baseline["pixel_accuracy"],
                                  "mean_pixel_accuracy": baseline["mean_pixel_accuracy"], "params": 0, "seconds": 0.0}}
for name, model in models.items():
    scoreboard[name] = {**{k: results[name][k] for k in ("miou", "pixel_accuracy", "mean_pixel_accuracy")},
                        "foreground": foreground[name], "params": count_parameters(model),
                        "seconds": histories[name].train_seconds}
show(comparison_chart(scoreboard, {"miou": "mIoU (11 classes)", "foreground": "foreground IoU (object vs background)",
                                   "pixel_accuracy": "pixel accuracy", "mean_pixel_accuracy": "mean pixel accuracy",
                                   "params": "parameters", "seconds": f"training time (s, {device.type})"},
                      f"{len(test_images)} test scenes, {profile()} profile",
                      best={"miou": "max", "foreground": "max", "pixel_accuracy": "max", "mean_pixel_accuracy": "max"},
                      width=11, per_row=3))
for name in models:
    assert results[name]["miou"] >= MIOU_BAR, f"{name}: mIoU {results[name]['miou']:.3f} < bar {MIOU_BAR:.3f}"
    assert foreground[name] >= FOREGROUND_BAR, f"{name}: foreground IoU {foreground[name]:.3f} < {FOREGROUND_BAR}"
    # the classes, not the masks, limit mIoU: the mask error is at most 80 % of the mIoU error, whatever the profile
    assert 1 - foreground[name] < 0.8 * (1 - results[name]["miou"]), (
        f"{name}: the classes, not the masks, should limit mIoU: foreground IoU {foreground[name]:.3f}, "
        f"mIoU {results[name]['miou']:.3f}")
    report(f"{name} mIoU", results[name]["miou"], bar=MIOU_BAR)

# %% [markdown]
# **U-Net++, pruned.** Deep supervision trained a head on each of X[0][1], X[0][2] and X[0][3], so the trained
# network can be cut after any of them at inference. The shallow heads are far cheaper (section 5), and they pay for
# it: the depth-1 sub-network pools only once, so each pixel sees a small window — enough to find an object,
# rarely enough to name it.

# %%
trained_unet_pp = models["U-Net++"]
pruned_miou = {trained_unet_pp.depth: results["U-Net++"]["miou"]}
for prune_to in range(1, trained_unet_pp.depth):
    trained_unet_pp.prune_to = prune_to
    pruned_miou[prune_to] = seg.segmentation_metrics(predict_labels(trained_unet_pp), test_masks, NUM_CLASSES)["miou"]
trained_unet_pp.prune_to = trained_unet_pp.depth
for prune_to in sorted(pruned_miou):
    print(f"U-Net++ cut after X[0][{prune_to}]: {pruned_flops[prune_to] / 1e6:6.1f} MFLOPs per image, "
          f"test mIoU {pruned_miou[prune_to]:.3f}")
# how much mIoU the full network must gain over its depth-1 head (cpu: measured 0.094 after 6 epochs, minus a
# margin); the smoke profile's few steps cannot rank the heads
DEPTH_GAIN = pick(smoke=-0.05, cpu=0.05, gpu=0.05)
assert pruned_miou[trained_unet_pp.depth] - pruned_miou[1] >= DEPTH_GAIN, (
    f"the deepest head should beat the shallowest by {DEPTH_GAIN}: {pruned_miou}")
assert pruned_miou[1] > baseline["miou"], "deep supervision trained the shallowest head too"
best_head = max(pruned_miou, key=pruned_miou.get)
print(f"best head in this run ({profile()} profile, {EPOCHS} epochs): X[0][{best_head}] at "
      f"{pruned_flops[best_head] / pruned_flops[trained_unet_pp.depth]:.0%} of the full network's FLOPs"
      + ("" if best_head == trained_unet_pp.depth else
         " — the deepest head, trained last through the longest path, has not caught up yet: pruning costs nothing here"))

# %% [markdown]
# ## 10. Look inside: which classes, which pixels
# Per-class IoU shows where the models struggle: the large, distinctive classes (trousers, bags) are easy; the
# upper-body garments that Chapter 1's classifiers already confused (T-shirt, pullover, coat, shirt) are hard. The
# confusion matrix (rows: truth, normalised) says with what they are confused.

# %%
class_iou = {name: results[name]["iou"].nan_to_num().numpy() for name in models}
easy = [NAMES.index(c) for c in ("Trouser", "Bag")]
hard = [NAMES.index(c) for c in ("T-shirt/top", "Pullover", "Coat", "Shirt")]
iou_over_models = np.mean(list(class_iou.values()), axis=0)
print(f"IoU averaged over the models: trouser and bag {iou_over_models[easy].mean():.2f}, "
      f"T-shirt, pullover, coat and shirt {iou_over_models[hard].mean():.2f}")
assert iou_over_models[easy].mean() > iou_over_models[hard].mean(), (
    f"trousers and bags should be easier than the shirt-like classes: IoU {iou_over_models[easy].mean():.2f} vs "
    f"{iou_over_models[hard].mean():.2f}")

fig, (ax_bar, ax_matrix) = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
offsets, bar_width = np.arange(NUM_CLASSES), 0.8 / len(models)
for k, name in enumerate(models):
    ax_bar.bar(offsets + bar_width * (k - (len(models) - 1) / 2), class_iou[name], bar_width, label=name)
ax_bar.set_xticks(offsets, NAMES, rotation=60, ha="right", fontsize=8)
ax_bar.set(ylabel="IoU", title="Per-class IoU on the test scenes", ylim=(0, 1))
ax_bar.legend()
best = max(results, key=lambda n: results[n]["miou"])
confusion = seg.confusion_matrix(predictions[best], test_masks, NUM_CLASSES).double()
shares = ax_matrix.imshow((confusion / confusion.sum(1, keepdim=True).clamp(min=1)).numpy(), cmap="Blues", vmin=0,
                          vmax=1)
colorbar(shares, ax_matrix, "share of the true class's pixels")
ax_matrix.set_xticks(offsets, NAMES, rotation=60, ha="right", fontsize=8)
ax_matrix.set_yticks(offsets, NAMES, fontsize=8)
ax_matrix.set(xlabel="predicted", ylabel="true", title=f"{best}: confusion matrix (row-normalised)")
show(fig)

# %% [markdown]
# **Overlay explorer.** Pick a test scene, blend the masks over the image, tint one class only, and switch the right
# panel between the prediction and the **error map** (red: wrong pixels, green: right foreground pixels). Two of
# them, to compare side by side: the first opens on U-Net's prediction, the second on DeepLab v3+'s errors.

# %%
def render_overlay(scene=0, opacity=60, only_class=0, right="prediction", model="U-Net"):
    return seg.overlay_figure(test_images[scene, 0].numpy(), test_masks[scene].numpy(),
                              predictions[model][scene].numpy(), CLASSES, opacity / 100, only_class or None, right)


def overlay_explorer(right, model):
    """An overlay explorer opening on the given right panel and model (two of them, to compare side by side)."""
    return Explorer(render_overlay, {
        "scene": slider("test scene", 0, min(len(test_images), 32) - 1),
        "opacity": slider("opacity %", 0, 100, 60),
        "only_class": dropdown("classes", [("all", 0)] + [(c, i + 1) for i, c in enumerate(CLASSES)]),
        "right": dropdown("right panel", ["prediction", "errors"], right),
        "model": dropdown("model", list(models), model),
    }, title=f"Ground truth and {right} overlays")


prediction_explorer = overlay_explorer("prediction", "U-Net")
show(prediction_explorer)
error_explorer = overlay_explorer("errors", "DeepLab v3+")
show(error_explorer)
assert error_explorer.image.value != prediction_explorer.image.value, (
    "the error overlay should differ from the prediction overlay")

# %% [markdown]
# ## 11. Why SAM answers one click with three masks
# A *promptable* model (Segment Anything, 2023) segments "the thing at this point". But a point is **ambiguous**:
# clicking on a shirt lying on a pile of clothes could mean the shirt, the pile, or everything in the picture.
# Trained with one output, a network that sees the same prompt with different correct answers is pushed towards
# their *average* — a blurry, hedging mask that matches none of them. SAM therefore predicts **three masks**
# (roughly sub-part, part, whole) plus a predicted IoU for each, and trains with the loss of the **best** of the
# three only, so each output is free to commit to one interpretation; the IoU head ranks them.
#
# A small demonstration on one of our overlapping scenes: we click a pixel of an item touching another and name
# three valid answers (the item, the pile of touching items, everything). A single mask trained on this prompt,
# with the answer drawn at random at each step, converges to the pixel-wise *average* of the answers; under SAM's
# minimum-over-outputs loss, three outputs that each commit to one answer score almost zero where the best single
# mask cannot.

# %%
def touching_pair(dataset):
    """The first scene of three or more objects with two whose masks touch, and a pixel of the first next to the second."""
    for index in range(len(dataset)):
        _, scene_target = dataset[index]
        instance = scene_target["masks"]
        if len(instance) < 3:       # a third object makes "the pile" and "everything" differ
            continue
        for a in range(len(instance)):
            grown = F.max_pool2d(instance[a][None, None].float(), 3, 1, 1)[0, 0] > 0
            for b in range(len(instance)):
                if b != a and (grown & instance[b]).any():
                    point = ((F.max_pool2d(instance[b][None, None].float(), 3, 1, 1)[0, 0] > 0) & instance[a]).nonzero()[0]
                    return index, instance, a, b, point
    raise ValueError("no touching objects in these scenes: generate more scenes or raise max_overlap")


index, instance, a, b, point = touching_pair(train_scenes)
answers = torch.stack([instance[a], instance[a] | instance[b], instance.any(0)]).float()   # item, pile, everything
assert answers.sum((1, 2)).tolist() == sorted(answers.sum((1, 2)).tolist()) and answers[:, point[0], point[1]].all(), (
    "item ⊂ pile ⊂ everything, and the clicked pixel should be in all three")


# %%
def fit_one_mask(steps=300, seed=0):
    """One logit map trained on the prompt's answers, drawn at random at each step."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.zeros(SIZE, SIZE, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.1)
    for _ in range(steps):
        answer = answers[torch.randint(3, (), generator=generator)]
        optimizer.zero_grad()
        F.binary_cross_entropy(torch.sigmoid(logits), answer).backward()
        optimizer.step()
    return torch.sigmoid(logits.detach())


def expected_loss(masks_out):
    """Mean over the three answers of the best output's BCE: SAM's minimum-over-outputs loss."""
    masks_out = masks_out.clamp(0.01, 0.99)
    return torch.stack([min(F.binary_cross_entropy(m, answer) for m in masks_out) for answer in answers]).mean().item()


# %%
single = fit_one_mask()
hedging = ((single > 0.2) & (single < 0.8)).float().sum() / answers[2].sum()
single_iou = [((single > 0.5) & answer.bool()).sum().item() / ((single > 0.5) | answer.bool()).sum().item()
              for answer in answers]
print(f"one output: IoU with item / pile / everything = {np.round(single_iou, 2)}; "
      f"{hedging:.0%} of the foreground left undecided (0.2 < p < 0.8)")
print(f"min-over-outputs loss: one output {expected_loss(single[None]):.3f}, "
      f"three outputs that each commit to one answer {expected_loss(answers):.3f}")
assert (single - answers.mean(0)).abs().max() < 0.05, (  # one output learns the average of the answers
    f"one output should learn the average of the answers, off by {(single - answers.mean(0)).abs().max():.3f}")
assert hedging > 0.1 and min(single_iou) < 0.9, (
    f"one output should hedge (> 10 % undecided, got {hedging:.0%}) and miss an answer (IoUs "
    f"{np.round(single_iou, 2)})")
# both pay the clamp, about 0.01 a pixel; only the single output also pays on the pixels the answers dispute
assert expected_loss(answers) < 0.2 * expected_loss(single[None]), (
    "three committed outputs should cut the min-over-outputs loss 5×")

# %%
show(seg.render_ambiguous_prompt(images[index, 0], point, single, answers, ("item", "pile", "everything")))

# %% [markdown]
# ## 12. U²-Net's RSU block: a U-Net inside a residual block
# U²-Net (2020, salient-object detection and background removal) nests U-Nets: each stage of its big U is itself
# a small U-Net, the **RSU block** (ReSidual U-block). An RSU-L block applies a convolution to get a feature map F,
# runs a height-L encoder–decoder with concatenated skips on it (the deepest level *dilated* rather than pooled
# further), and *adds* F back: a residual connection around a whole U. So every stage mixes multi-scale context at
# full stage resolution, without a pretrained classification backbone, and six side outputs fused by a 1×1
# convolution are deeply supervised, as in U-Net++. It is U-Net's skip idea applied at two levels.
#
# `RSU` (in `utils/models/unet.py`) is built below: the output keeps the input's size; with the inner U silenced it is
# exactly the residual F; and its receptive field — measured as the input pixels that move the centre output
# (non-zero gradient) — is far larger than a plain stack of the same 3×3 convolutions would give, and at least that of
# its encoder path (from `receptive_field`), because of the pooling inside.

# %%
rsu = RSU(4, in_channels=WIDTH, mid_channels=WIDTH // 2, out_channels=WIDTH).eval()
feature = torch.randn(2, WIDTH, SIZE, SIZE)
with torch.no_grad():
    rsu_out = rsu(feature)
    shapes = [tuple(rsu.conv_in(feature).shape[1:])]
    h = rsu.conv_in(feature)
    for i, block in enumerate(rsu.encoder):
        h = block(h if i == 0 else rsu.pool(h))
        shapes.append(tuple(h.shape[1:]))
print("RSU-4 inside: F", shapes[0], "→ encoder", shapes[1:], "→ dilated bottom", tuple(rsu.bottom(h).shape[1:]),
      "→ decoder back to", tuple(rsu_out.shape[1:]))
assert rsu_out.shape == feature.shape, f"RSU-4 should keep {tuple(feature.shape)}, got {tuple(rsu_out.shape)}"
assert [s[-1] for s in shapes[1:]] == [SIZE, SIZE // 2, SIZE // 4], (
    f"the inner U should pool twice ({SIZE} → {SIZE // 2} → {SIZE // 4}), got {shapes[1:]}")
silenced = RSU(4, WIDTH, WIDTH // 2, WIDTH).eval()
silenced.load_state_dict(rsu.state_dict())
with torch.no_grad():
    silenced.decoder[-1][1].weight.zero_()                                  # the U's last BN now outputs 0
    silenced.decoder[-1][1].bias.zero_()
    torch.testing.assert_close(silenced(feature), rsu.conv_in(feature))
print("with the inner U silenced, RSU(x) == F(x): the U is a residual branch")


# %%
def measured_receptive_field(module, channels, side=128):
    """Side of the input window whose pixels have a non-zero gradient for the centre output (eval mode, 4 images)."""
    x = torch.randn(4, channels, side, side, requires_grad=True)
    module(x)[:, :, side // 2, side // 2].sum().backward()
    rows = (x.grad.abs().sum((0, 1)) > 0).any(1).nonzero().flatten()
    return int(rows.max() - rows.min() + 1)


rsu_rf = measured_receptive_field(rsu, WIDTH)
convs = 1 + len(rsu.encoder) + 1 + len(rsu.decoder)                       # in-conv, encoder, bottom, decoder
plain_rf = 1 + 2 * (convs - 1) + 4                                        # 3×3 convs, the bottom one dilated (5×5)
encoder_path = nn.Sequential(rsu.conv_in, rsu.encoder[0], *[nn.Sequential(rsu.pool, b) for b in rsu.encoder[1:]],
                             rsu.bottom)
encoder_rf = receptive_field(encoder_path, (WIDTH, 64, 64))[-1].rf
print(f"RSU-4 receptive field (measured): {rsu_rf} px; its encoder path alone: {encoder_rf:.0f} px; "
      f"the same {convs} convolutions at full resolution: {plain_rf} px")
assert rsu_rf >= encoder_rf and rsu_rf > 2 * plain_rf, (
    f"the RSU's pooling should widen its view: measured {rsu_rf} px vs encoder path {encoder_rf} px and plain {plain_rf} px")

# %% [markdown]
# ## Interview questions
#
# <details><summary>U-Net vs U-Net++ vs DeepLab: what is the difference?</summary>
#
# U-Net is a symmetric encoder–decoder whose decoder *concatenates* the encoder map of the same scale, giving it
# back the spatial detail pooling removed. U-Net++ replaces each plain skip by nested, densely connected
# convolution nodes that narrow the semantic gap between encoder and decoder features, and adds deep supervision
# (one head per depth, prunable at inference). DeepLab does not down-sample beyond stride 8–16; it keeps context
# through atrous convolutions and ASPP, and v3+ adds a light decoder fed with low-level features for boundaries.
# U-Nets shine with little data and fine structures (medical images); DeepLab with pretrained backbones on large
# scenes. (see cells "4. U-Net", "5. U-Net++", "7. DeepLab v3" and the comparison table in "9. Training")
# </details>
#
# <details><summary>Why are U-Net's skips concatenated and not added?</summary>
#
# Concatenation keeps encoder and decoder features as separate channels and lets the next convolution learn how to
# combine the fine "where" with the coarse "what"; addition (ResNet, FPN) forces them into one space and needs
# matching channel counts. It costs more channels: the fuse block has twice the input channels (asserted in
# "4. U-Net").
# </details>
#
# <details><summary>What are U-Net++'s nested skips and deep supervision for?</summary>
#
# Each node X[i][j] sees all earlier nodes of its row and the upsampled node below, so the features entering the
# decoder are progressively more semantic. The top nodes are outputs of U-Nets of depth 1…L sharing an encoder;
# each gets a head and a loss (deep supervision: better gradients to early layers), and at inference one can prune
# to a shallower head for speed (see "5. U-Net++" for the FLOPs of each pruned depth, and "9. Training" for the
# test mIoU of each pruned head: the shallowest is the cheapest and the least accurate).
# </details>
#
# <details><summary>A segmentation model's mIoU is low. How do you find out why?</summary>
#
# Separate *where* from *what*. Score the prediction as object versus background (foreground IoU): if it is high
# while mIoU is low, the masks are right and the class names wrong; then per-class IoU and the confusion matrix say
# which classes are confused (here the upper-body garments). Class errors call for more examples of each class,
# objects large enough to keep their distinguishing detail, and enough training steps; mask errors for resolution
# (skips, a decoder) and a loss that weighs small objects (Dice). (see "9. Training", where every model's
# foreground IoU is asserted far above its mIoU, and "10. Look inside")
# </details>
#
# <details><summary>What is atrous (dilated) convolution and why does segmentation use it?</summary>
#
# A k×k kernel whose taps are r pixels apart — the kernel with r − 1 zeros between taps — covering r(k − 1) + 1
# pixels with k² weights and no down-sampling. Stacking rates 1, 2, 4, 8 grows the receptive field exponentially
# (3, 7, 15, 31) instead of linearly (3, 5, 7, 9), so a network keeps a fine output map and still sees context.
# Pitfall: a single large rate samples a sparse grid ("gridding"); mixing rates avoids it. (see "6. Atrous
# convolution", where the zero-filled kernel equality and the receptive fields are asserted)
# </details>
#
# <details><summary>What is ASPP?</summary>
#
# Atrous Spatial Pyramid Pooling: parallel branches over the same feature map — a 1×1 conv, 3×3 atrous convs at
# several rates, and global image pooling — concatenated and fused by a 1×1 conv. It captures objects and context
# at several scales in one layer (the spatial-pyramid idea without resizing the image). (see "7. DeepLab v3",
# where each branch's receptive field is measured)
# </details>
#
# <details><summary>What does DeepLab v3+ add, and why depthwise-separable convolutions?</summary>
#
# A decoder: ASPP features upsampled to stride 4, concatenated with 1×1-reduced low-level backbone features,
# refined by 3×3 convolutions, then upsampled 4× — sharper boundaries than v3's single 8× upsampling. Its 3×3
# convolutions are depthwise-separable (per-channel 3×3 + 1×1 mixing): 9C + CC' weights instead of 9CC', about
# 8× fewer at 64 channels (see "8. DeepLab v3+").
# </details>
#
# <details><summary>Define PA, CPA, MPA, IoU and mIoU.</summary>
#
# From the confusion matrix C (rows truth, columns prediction): PA = trace / total; CPA_c = C[c,c] / row sum (the
# class's recall); MPA = mean CPA; IoU_c = TP / (TP + FP + FN) = C[c,c] / (row + column − C[c,c]); mIoU = mean
# IoU. Some texts define CPA per *predicted* column (precision); say which you use. Classes absent from both
# prediction and target are NaN and skipped by the means; a class only predicted scores 0. PA flatters models on
# imbalanced data: the all-background baseline has a high PA and a tiny mIoU. (see "2. Metrics", asserted
# against torchmetrics)
# </details>
#
# <details><summary>Cross-entropy vs focal loss vs Dice loss?</summary>
#
# Cross-entropy: per-pixel −log p_t, dominated by the many easy background pixels. Focal: (1 − p_t)^γ · CE
# (optionally α-weighted) shrinks easy pixels' loss, focusing on hard ones; γ = 0 gives CE back. Dice: 1 − soft
# Dice per class, a region overlap in which each class weighs the same whatever its size — good for small
# objects, noisier gradients, so usually combined with CE (`seg.segmentation_loss("cross_entropy+dice")`, what all
# three models train with in "9. Training"). (see "3. Losses": equality with `torchvision.ops.sigmoid_focal_loss`,
# and the share of the gradient a small object gets from CE and from Dice)
# </details>
#
# <details><summary>What is focal loss and where does it come from?</summary>
#
# RetinaNet (Lin et al., 2017): one-stage detectors face ~100 000 easy background anchors per image. FL(p_t) =
# −α_t (1 − p_t)^γ log p_t with γ = 2, α = 0.25 down-weights them so the rare hard examples drive training,
# replacing hard-negative mining. The same imbalance exists in segmentation (background pixels). (see "3. Losses")
# </details>
#
# <details><summary>Why does a promptable model such as SAM output three masks for one prompt?</summary>
#
# A point is ambiguous (part, object, group). With one output the best prediction under a loss averaged over the
# possible answers is their average: an undecided mask. SAM predicts three masks and back-propagates only the best
# one's loss, so each output specialises, and an IoU head scores them so a caller can pick one. (see "11. Why SAM
# answers one click with three masks": one fitted mask converges to the average; three committed masks cut the
# minimum-over-outputs loss more than fivefold)
# </details>
#
# <details><summary>What is U²-Net's RSU block?</summary>
#
# A residual U-block: a small U-Net run on a convolution's output F and added back to F. U²-Net stacks RSU blocks
# inside a larger U, so each stage extracts multi-scale features at its own resolution, and deeply supervises six
# side outputs. Its inner pooling (and dilated bottom) widens the view without lowering the stage's resolution: our
# RSU-4 keeps the map's size and sees a window several times wider than a plain stack of its convolutions. (see
# "12. U²-Net's RSU block": shapes, the residual, and the measured receptive field asserted)
# </details>
#
# <details><summary>How do you augment data for segmentation?</summary>
#
# Every geometric transform must apply the same parameters to the image and the mask, and masks must be resampled
# with nearest neighbour (a blended label is meaningless). `torchvision.transforms.v2` does both when given a
# `tv_tensors.Image` and a `tv_tensors.Mask` together; photometric transforms touch the image only. (see
# "9. Training", where the alignment is asserted)
# </details>
#
# ### Answers you may read that are wrong
#
# <details><summary>Wrong: “DeepLab v3 replaced atrous convolution.”</summary>
#
# Right: v3 (Chen et al., 2017, “Rethinking Atrous Convolution for Semantic Image Segmentation”) is built on it:
# atrous last stages at output stride 16 (or 8), and ASPP of a 1×1 convolution, three 3×3 atrous convolutions at
# rates 6, 12, 18 (doubled at output stride 8) and image pooling. v3+ (2018) keeps all of it and adds a decoder and
# atrous depthwise-separable convolutions. Our rates are asserted in "DeepLab v3 is atrous convolution throughout".
#
# </details>
#
# <details><summary>Wrong: “DeepLab v3 refines its output with a CRF.”</summary>
#
# Right: DeepLab v1 (2015) and v2 (2017) post-processed with a fully connected CRF; v3 dropped it and still beat
# both, with its improved ASPP (image pooling, BatchNorm), and v3+ sharpens boundaries with a learned decoder
# instead (section 7 and section 8, whose models have no CRF).
#
# </details>
#
# <details><summary>Wrong: “U-Net's skip connections add the encoder's features to the decoder's.”</summary>
#
# Right: U-Net (2015) concatenates them along the channels (“copy and crop”) and lets the next convolutions mix
# them, so each decoder block reads twice the channels; adding is ResNet's, FPN's and LinkNet's way. Asserted in
# section 4 (the fuse blocks' input channels are twice the skip's).
#
# </details>
#
# <details><summary>Wrong: “Dice and IoU are the same metric.”</summary>
#
# Right: for one mask D = 2J / (1 + J): the same ranking, but D ≥ J (equal only at 0 and 1), and their means over
# classes or images do not convert. On section 2's tiny example the per-class Dice is 0.8, 0.89, 0.5, 0 against
# IoU 0.67, 0.8, 0.33, 0 — asserted in "Dice is not IoU".
#
# </details>
#
# <details><summary>Wrong: “A high pixel accuracy means a good segmentation.”</summary>
#
# Right: where most pixels are background, predicting background everywhere scores a high pixel accuracy: section
# 2's all-background baseline has PA > 0.6 and mIoU < 0.1 (asserted). mIoU, or per-class IoU, weighs every class
# the same, whatever its area.
#
# </details>
