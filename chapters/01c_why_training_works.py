# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 1c — Why training works
#
# **Deep Vision Lab · Chapter 1: CNNs, from convolution to ResNet** (1a convolution by hand → 1b architectures →
# **1c why training works** → 1d look inside)
#
# Chapter 1b trained a zoo of CNNs and every one of them learned. That is not luck: it rests on a handful of
# choices — the loss, the normalisation, the initialisation, the activation, the optimiser, the batch size and
# learning rate, the regularisers. Each was invented because its absence made training fail in a specific,
# measurable way. In this notebook we break training on purpose, one choice at a time, and *measure* the
# failure: loss curves, per-layer gradient norms, dead units, accuracy under shifted inputs.
#
# The instruments live in `utils/diagnostics.py`; the notebook is about what they show.

# %%
import inspect
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
import matplotlib.pyplot as plt

from utils import exercises, losses, numpy_layers, start_chapter
from utils import diagnostics as dx
from utils.data import CLASSES, DeviceLoader, ImageDataset, fashion_mnist, stack_batch, standardize, subset
from utils.measuring import count_flops, count_parameters
from utils.plotting import comparison_chart, image_grid, show
from utils.results import report
from utils.runtime import pick, profile, seed_everything
from utils.segmentation import binary_focal_loss
from utils.training import evaluate, fit
from utils.widgets import Explorer, dropdown, slider

device = start_chapter("01c_why_training_works")

TRAIN_SIZE = pick(smoke=2_000, cpu=20_000, gpu=60_000)
TEST_SIZE = pick(smoke=1_000, cpu=10_000, gpu=10_000)
WIDTH = pick(smoke=8, cpu=16, gpu=32)           # channels of the first stage of the CNNs below
train_images, train_labels = subset(*fashion_mnist("train"), TRAIN_SIZE)
test_images, test_labels = subset(*fashion_mnist("test"), TEST_SIZE)
test_loader = DeviceLoader(test_images, test_labels, 1000, device=device)
print(f"profile={profile()}: {len(train_labels)} training and {len(test_labels)} test images")

# %% [markdown]
# ## 1. Softmax and cross-entropy
# A classifier outputs one real number per class, the **logits** `z`. Softmax turns them into probabilities,
# $p_k = e^{z_k} / \sum_j e^{z_j}$, and cross-entropy scores the probability given to the true class:
# $L = -\log p_y$. Two facts every interviewer likes:
#
# * subtracting `max z` before `exp` changes nothing mathematically but stops `exp(1000)` from overflowing;
# * the gradient of the loss with respect to the logits is simply `p − onehot(y)`: push the true class up by
#   how much it is missing, every other class down by its probability.
#
# `utils.numpy_layers.softmax` and `cross_entropy` (Chapter 1a) are written in NumPy; here we check them against
# torch, including on logits so large that a naive `exp` overflows.

# %%
logits = torch.randn(8, 10, dtype=torch.float64) * 3
labels = torch.randint(0, 10, (8,))
torch.testing.assert_close(torch.from_numpy(numpy_layers.softmax(logits.numpy())), logits.softmax(-1))
assert np.isclose(numpy_layers.cross_entropy(logits.numpy(), labels.numpy()), F.cross_entropy(logits, labels).item()), (
    "hand-written cross-entropy should equal F.cross_entropy")

huge = logits * 500                                      # naive exp overflows to inf here
with np.errstate(over="ignore", invalid="ignore"):
    naive = np.exp(huge.numpy()) / np.exp(huge.numpy()).sum(-1, keepdims=True)
assert np.isnan(naive).any() and np.isfinite(numpy_layers.softmax(huge.numpy())).all(), (
    "the naive softmax should overflow to NaN on huge logits and the stable one stay finite")
assert np.isclose(numpy_layers.cross_entropy(huge.numpy(), labels.numpy()), F.cross_entropy(huge, labels).item()), (
    "the stable cross-entropy should equal F.cross_entropy even for huge logits")

logits.requires_grad_(True)
F.cross_entropy(logits, labels).backward()
expected = (logits.softmax(-1) - F.one_hot(labels, 10)) / len(labels)   # mean over the batch → divide by N
torch.testing.assert_close(logits.grad, expected.detach())
print("softmax, cross-entropy and ∂L/∂z = p − onehot(y) match torch ✓")
# softmax is the multi-class sigmoid: with two classes and logits (z, 0), p₁ = e^z / (e^z + 1) = σ(z)
z = torch.linspace(-6, 6, 25, dtype=torch.float64)
torch.testing.assert_close(torch.stack([z, torch.zeros_like(z)], -1).softmax(-1)[:, 0], torch.sigmoid(z),
                           msg="a two-class softmax over (z, 0) must equal sigmoid(z)")


# %% [markdown]
# **Exercises.** In the exercise version of this notebook (`make exercises`) the next two cells keep only the
# signatures and hints of `softmax` and `cross_entropy`: write them, and each self-check compares yours with torch's,
# huge logits included.

# %% tags=["exercise"]
def softmax(logits, axis=-1):
    """Softmax in NumPy along ``axis``, stable for huge logits (e.g. 1000).

    Hints: subtracting the maximum along the axis (keepdims=True) changes nothing mathematically but keeps np.exp
    from overflowing; then divide by the sum along the same axis.
    """
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


# %% tags=["self-check"]
softmax = exercises.check("softmax", softmax)


# %% tags=["exercise"]
def cross_entropy(logits, labels):
    """Mean cross-entropy of logits N×K against integer labels N, in NumPy, stable for huge logits.

    Hints: log-softmax = z − max z − log Σ exp(z − max z), row by row; pick each row's entry at its label with
    log_probs[np.arange(N), labels]; the loss is minus their mean.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), labels].mean()


# %% tags=["self-check"]
cross_entropy = exercises.check("cross_entropy", cross_entropy)

# %% [markdown]
# ### Entropy, cross-entropy and KL: one identity
# Entropy H(p) = −Σ p log p is the average surprise of outcomes drawn from p. Cross-entropy H(p, q) = −Σ p log q is
# the surprise when they come from p but the model expects q, and the KL divergence KL(p ‖ q) = Σ p log(p/q) is the
# excess: **H(p, q) = H(p) + KL(p ‖ q)**. The data fix H(p), so minimising cross-entropy *is* minimising KL. With a
# one-hot label H(p) = 0 and all three collapse to −log q_y, the loss above; with label smoothing (ε = 0.1) the
# target has entropy and the loss can no longer reach 0. `utils/losses.py` writes the three by hand.

# %%
model_q = logits.detach()[:4].softmax(-1)
hard = F.one_hot(labels[:4], 10).double()
smoothed = hard * 0.9 + 0.1 / 10                                  # label smoothing, ε = 0.1
for name, target in (("one-hot", hard), ("smoothed", smoothed)):
    h, kl, ce = losses.entropy(target), losses.kl_divergence(target, model_q), losses.cross_entropy_between(target, model_q)
    torch.testing.assert_close(ce, h + kl, msg="cross-entropy must equal entropy + KL")
    print(f"{name:8s} target: H(p) = {h.mean():.3f}, KL(p‖q) = {kl.mean():.3f}, H(p, q) = {ce.mean():.3f} nats")
torch.testing.assert_close(losses.cross_entropy_between(hard, model_q).mean(),
                           F.cross_entropy(logits.detach()[:4], labels[:4]),
                           msg="with one-hot targets, H(p, q) is PyTorch's cross-entropy")
smoothed_floor = losses.entropy(smoothed).mean().item()
print(f"with ε = 0.1 the loss cannot go below H(p) = {smoothed_floor:.3f} nats: the model is never pushed to "
      f"infinite logits")

# %% [markdown]
# ### The loss functions side by side
# **Regression.** MSE squares the error, so one outlier can dominate; its best constant prediction is the *mean*.
# L1's gradient is ±1 whatever the error, so it ignores how far an outlier is; its best constant is the *median*.
# Smooth L1 (Huber, Fast R-CNN's box loss) is quadratic below β and linear beyond: a smooth minimum, a bounded
# gradient. Below, the three fitted to 20 numbers with one outlier by scanning a constant.

# %%
sample = torch.cat([torch.linspace(-1, 1, 19), torch.tensor([20.0])])
constants = torch.linspace(-2, 6, 1601)
fits = {}
for name, loss in (("MSE", losses.mse_loss), ("L1", losses.l1_loss), ("smooth L1", losses.smooth_l1_loss)):
    scan = torch.stack([loss(torch.full_like(sample, c.item()), sample) for c in constants])
    fits[name] = constants[scan.argmin()].item()
assert abs(fits["MSE"] - sample.mean().item()) < 0.01, "MSE's best constant is the mean"
assert abs(fits["L1"] - sample.median().item()) < 0.06, "L1's best constant is a median"
print(f"one outlier at 20 among 19 numbers in [−1, 1]: MSE fits {fits['MSE']:.2f} (the mean), L1 fits "
      f"{fits['L1']:.2f} (a median), smooth L1 fits {fits['smooth L1']:.2f}")

errors = torch.linspace(-3, 3, 301, requires_grad=True)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
for name, loss in (("MSE", lambda e: e.pow(2)), ("L1", lambda e: e.abs()),
                   ("smooth L1 (β = 1)", lambda e: torch.where(e.abs() < 1, 0.5 * e.pow(2), e.abs() - 0.5))):
    values = loss(errors)
    (gradient,) = torch.autograd.grad(values.sum(), errors)
    axes[0].plot(errors.detach(), values.detach(), label=name)
    axes[1].plot(errors.detach(), gradient, label=name)
axes[0].set(xlabel="error (prediction − target)", ylabel="loss", title="regression losses")
axes[1].set(xlabel="error (prediction − target)", ylabel="∂loss / ∂prediction", title="their gradients")
axes[1].legend()
show(fig)

# %% [markdown]
# **Classification and masks.** Cross-entropy (BCE for one output) scores every pixel or example; focal loss
# multiplies it by (1 − p_t)^γ so the many easy, already-right ones stop dominating (RetinaNet, YOLO's class
# losses; Chapter 5's `binary_focal_loss`); Dice and IoU score the *overlap* of the predicted and true sets, so the
# number of easy background pixels does not enter at all (U-Net and Chapter 5). The test: a 32×32 mask with one 4×4
# object (1.6 % foreground) and four predictions — a coin flip (0.5 everywhere), confident background everywhere,
# half the object found, all of it found.

# %%
truth = torch.zeros(32, 32)
truth[10:14, 10:14] = 1
candidates = {name: torch.full((32, 32), 0.02) for name in
              ("background everywhere", "half the object", "the whole object")}
candidates["uninformed (0.5 everywhere)"] = torch.full((32, 32), 0.5)
candidates["half the object"][10:14, 10:12] = 0.9
candidates["the whole object"][10:14, 10:14] = 0.9
scores = {name: {"BCE": losses.binary_cross_entropy(torch.logit(p), truth).item(),
                 "focal (γ = 2)": binary_focal_loss(torch.logit(p), truth, gamma=2.0, alpha=-1).item(),
                 "Dice": losses.binary_dice_loss(p, truth).item(), "soft IoU": losses.soft_iou_loss(p, truth).item()}
          for name, p in candidates.items()}
show(comparison_chart(scores, {k: f"{k} loss" for k in scores["the whole object"]}, per_row=4, width=11,
                      best={k: "min" for k in scores["the whole object"]},
                      title="one 4×4 object on a 32×32 mask: what each loss says of four predictions"))
# how far "background everywhere" has come from the uninformed guess towards a perfect prediction (loss 0)
progress = {k: 1 - scores["background everywhere"][k] / scores["uninformed (0.5 everywhere)"][k] for k in scores["the whole object"]}
assert progress["BCE"] > 0.8 and progress["Dice"] < 0.1, (
    f"BCE should rate 'background everywhere' close to perfect and Dice no better than a guess, got {progress}")
print("'background everywhere' — useless here — has come this far from a coin flip towards a perfect score: "
      + ", ".join(f"{k} {progress[k]:.0%}" for k in progress)
      + f". The {int((1 - truth).sum())} easy background pixels carry the per-pixel losses, not the overlap ones.")

# %% [markdown]
# ## 2. BatchNorm vs LayerNorm: which axes?
# Both normalisers compute a mean and variance, subtract and divide, then apply a learned per-feature scale γ and
# shift β. They differ only in **which axes the statistics are taken over**:
#
# * **BatchNorm2d** — per *channel*, over the batch and both spatial axes (N, H, W). Every image in the batch
#   influences every other image's output.
# * **LayerNorm** (over C, H, W) — per *sample*, over its own features. No dependence on the rest of the batch,
#   identical in training and inference; the normaliser of Transformers.
#
# On a small tensor we check the claim directly: after BatchNorm every channel has mean 0 and variance 1; after
# LayerNorm every sample does. Both are asserted equal to `torch.nn` and to our NumPy versions from Chapter 1a.

# %%
x = torch.randn(4, 3, 5, 5) * torch.tensor([1.0, 5.0, 0.2]).view(1, 3, 1, 1) + torch.tensor([0.0, 3.0, -2.0]).view(1, 3, 1, 1)
bn, ln = nn.BatchNorm2d(3).train(), nn.LayerNorm([3, 5, 5])
y_bn, y_ln = bn(x).detach(), ln(x).detach()
torch.testing.assert_close(y_bn.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)          # per channel
torch.testing.assert_close(y_bn.var(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
torch.testing.assert_close(y_ln.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)          # per sample
torch.testing.assert_close(y_ln.var(dim=(1, 2, 3), unbiased=False), torch.ones(4), atol=1e-3, rtol=0)
assert not torch.allclose(y_bn.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-2), (  # BN does NOT centre each sample
    "BatchNorm should not centre each sample (only each channel over the batch)")

running_mean, running_var = np.zeros(3, np.float32), np.ones(3, np.float32)
ours_bn = numpy_layers.batch_norm(x.numpy(), running_mean, running_var, training=True)
np.testing.assert_allclose(ours_bn, y_bn.numpy(), rtol=1e-4, atol=1e-5)
np.testing.assert_allclose(running_mean, bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)   # same running update
np.testing.assert_allclose(running_var, bn.running_var.numpy(), rtol=1e-5, atol=1e-6)
np.testing.assert_allclose(numpy_layers.layer_norm(x.numpy(), (3, 5, 5)), y_ln.numpy(), rtol=1e-4, atol=1e-5)
print("per-channel stats after BN:", y_bn.mean(dim=(0, 2, 3)).numpy().round(4), "| per-sample stats after LN:",
      y_ln.mean(dim=(1, 2, 3)).numpy().round(4))


# %% [markdown]
# **Exercise.** In the exercise version of this notebook the cell below keeps only the signature and hints of
# `layer_norm`: write it, and the self-check compares it with `F.layer_norm`.

# %% tags=["exercise"]
def layer_norm(x, gamma, beta, eps=1e-5):
    """LayerNorm in NumPy: each sample of x (N×…) normalised over all its other axes, then scaled by gamma and
    shifted by beta (both of shape x.shape[1:]).

    Hints: the axes are tuple(range(1, x.ndim)); one mean and one biased variance per sample (keepdims=True);
    (x − mean) / sqrt(var + eps), then gamma · … + beta broadcast as they are.
    """
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


# %% tags=["self-check"]
layer_norm = exercises.check("layer_norm", layer_norm)

# %% [markdown]
# ### Training vs evaluation mode
# In training mode BN uses the *current batch's* statistics and nudges its running averages towards them
# (`running = 0.9·running + 0.1·batch`). In evaluation mode it uses only the running averages. So in training
# mode an image's output depends on which other images share its batch — fine for learning, unacceptable for a
# prediction (the answer for your photo must not depend on someone else's). Below: the same first image in two
# different batches gives two different outputs in training mode and identical outputs in eval mode.

# %%
bn = nn.BatchNorm2d(3)
companions_a, companions_b = torch.randn(7, 3, 5, 5), torch.randn(7, 3, 5, 5) * 4 + 2
batch_a, batch_b = torch.cat([x[:1], companions_a]), torch.cat([x[:1], companions_b])
train_a, train_b = bn.train()(batch_a)[0], bn(batch_b)[0]
eval_a, eval_b = bn.eval()(batch_a)[0], bn(batch_b)[0]
print(f"training mode: |out_a − out_b| = {(train_a - train_b).abs().max():.3f}   "
      f"eval mode: {(eval_a - eval_b).abs().max():.3f}")
assert (train_a - train_b).abs().max() > 0.1, (
    f"in training mode BN's output should depend on the rest of the batch, "
    f"differs by only {(train_a - train_b).abs().max():.3f}")
torch.testing.assert_close(eval_a, eval_b)
expected = (x[0] - bn.running_mean.view(3, 1, 1)) / (bn.running_var.view(3, 1, 1) + bn.eps).sqrt()
torch.testing.assert_close(eval_a, expected.detach())       # eval = normalise with the running statistics
print("running mean after two training batches:", bn.running_mean.numpy().round(3))

# %% [markdown]
# ### What γ and β are for
# Forcing every channel to mean 0 and variance 1 would restrict what a layer can express (a sigmoid after it would
# always live in its linear middle). γ (`weight`) and β (`bias`) give that freedom back: with γ = √(σ² + ε) and
# β = μ the layer is exactly the identity. The network can learn any scale and offset it likes — but now they are
# two explicit, well-conditioned parameters per channel instead of an accident of all the weights below.

# %%
bn = nn.BatchNorm2d(3).train()
with torch.no_grad():
    bn.weight.copy_((x.var(dim=(0, 2, 3), unbiased=False) + bn.eps).sqrt())
    bn.bias.copy_(x.mean(dim=(0, 2, 3)))
torch.testing.assert_close(bn(x), x, atol=1e-4, rtol=1e-4)
print("γ = √(σ² + ε), β = μ turn BatchNorm into the identity ✓")

# %% [markdown]
# ## 3. What BatchNorm buys — measured
# The same CNN (six 3×3 convolutions, `utils.diagnostics.SmallCNN`, torch's default initialisation) trained twice
# with the same plain loop, the same SGD with momentum, the same learning rate and the same batches: once without
# and once with BatchNorm after every convolution. We record the loss at every step and the gradient norm of every
# layer. The loop itself is the lesson here, so it is written out in `dx.train_steps`: forward, loss,
# `zero_grad`, `backward`, `step`.

# %%
BN_STEPS = pick(smoke=120, cpu=600, gpu=2_000)
BN_LR = 0.1
traces, bn_models = {}, {}
for use_bn in (False, True):
    seed_everything(1)
    model = dx.SmallCNN(width=WIDTH, convs=2, batch_norm=use_bn).to(device)
    loader = DeviceLoader(train_images, train_labels, 32, shuffle=True, device=device, seed=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=BN_LR, momentum=0.9)
    label = "with BN" if use_bn else "without BN"
    if use_bn:
        conv1_std_at_init = model.features[:1](next(iter(loader))[0]).std(dim=(0, 2, 3)).detach().cpu()
    traces[label], bn_models[label] = dx.train_steps(model, loader, optimizer, BN_STEPS), model
    print(f"{label:10}: final loss {traces[label].smoothed_loss()[-1]:.3f}  "
          f"test acc {evaluate(model, test_loader)['acc']:.3f}  ({traces[label].seconds:.1f} s)")

# %%
fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(11, 3.6))
for label, trace in traces.items():
    ax_loss.plot(trace.smoothed_loss(), label=label)
    norms = trace.grad_norms
    ax_grad.semilogy(norms[:, 0], label=f"{label}: first conv", ls="-")
    ax_grad.semilogy(norms[:, -1], label=f"{label}: classifier", ls="--", color=ax_grad.lines[-1].get_color())
ax_loss.set(xlabel="step", ylabel="training loss (10-step mean)", title="same CNN, same SGD, same batches")
ax_grad.set(xlabel="step", ylabel="‖∂L/∂W‖", title="gradient norms of the first and last layer")
ax_loss.legend(), ax_grad.legend(fontsize=8)
fig.tight_layout()
show(fig)

final = {label: trace.smoothed_loss(20)[-1] for label, trace in traces.items()}
accuracy = {label: evaluate(model, test_loader)["acc"] for label, model in bn_models.items()}
assert final["with BN"] < final["without BN"], f"BatchNorm should end with the lower training loss, got {final}"
# cpu measured 0.813; gpu bar held at the cpu-measured level until measured on a GPU
BN_BAR = pick(smoke=0.5, cpu=0.75, gpu=0.75)
assert accuracy["with BN"] > BN_BAR, f"the CNN with BatchNorm reached {accuracy['with BN']:.3f}, bar {BN_BAR}"
report("test accuracy with BatchNorm", accuracy["with BN"], bar=BN_BAR)
report("test accuracy without BatchNorm (same SGD run)", accuracy["without BN"])
spread = {label: (t.grad_norms[: BN_STEPS // 5].log10().std(1)).mean().item() for label, t in traces.items()}
print("early spread of log10 gradient norms across layers:", {k: round(v, 2) for k, v in spread.items()})
assert spread["with BN"] < spread["without BN"], (
    f"BatchNorm should even out the layers' gradient norms (smaller spread of log10), got {spread}")

# %% [markdown]
# Without BN the early layers receive gradients orders of magnitude smaller than the classifier, and at this
# learning rate the loss stays stuck near ln 10 ≈ 2.3 (chance); with BN every layer gets a gradient of similar
# size from the first step and the loss drops at once (the *spread* printed above is the standard deviation of
# log₁₀‖∂L/∂W‖ across layers, averaged over the first fifth of training). BN also lets us use larger learning rates,
# and the batch-to-batch noise in its statistics acts as a mild regulariser.
#
# ### BatchNorm's gain grows with depth
# One network cannot show *why* BN matters more as models get deeper. Below, the same three-stage CNN with 1, 2 and
# 4 convolutions per stage (3, 6 and 12 layers) is trained with and without BN by the same SGD (learning rate 0.02,
# momentum 0.9) on the same batches. The *gain* is the training loss without BN minus the loss with it: each layer
# without BN rescales the signal and its gradient a little, and the product over more layers drifts further, so
# the deeper plain stacks stall near chance (ln 10 ≈ 2.3) while BN trains all three.

# %%
# BatchNorm's gain at 3, 6 and 12 convolutional layers: same CNN family, same SGD, same batches
DEPTH_STEPS = pick(smoke=120, cpu=300, gpu=600)
depth_losses = {}
with torch.random.fork_rng(devices=[]):                         # leave the chapter's random stream alone
    for convs in (1, 2, 4):
        for use_bn in (False, True):
            torch.manual_seed(1)
            depth_model = dx.SmallCNN(width=WIDTH, convs=convs, batch_norm=use_bn).to(device)
            depth_loader = DeviceLoader(train_images, train_labels, 32, shuffle=True, device=device, seed=1)
            depth_optimizer = torch.optim.SGD(depth_model.parameters(), lr=0.02, momentum=0.9)
            trace = dx.train_steps(depth_model, depth_loader, depth_optimizer, DEPTH_STEPS)
            row = depth_losses.setdefault(f"{3 * convs} layers", {})
            row["BN" if use_bn else "plain"] = trace.smoothed_loss(20)[-1]
for losses_at_depth in depth_losses.values():
    losses_at_depth["gain"] = losses_at_depth["plain"] - losses_at_depth["BN"]
show(comparison_chart(depth_losses, {"plain": "training loss without BN", "BN": "training loss with BN",
                                     "gain": "BN's gain (loss without − with)"},
                      title=f"BatchNorm's gain by depth, {DEPTH_STEPS} SGD steps ({profile()} profile)", per_row=3))
gains = [row["gain"] for row in depth_losses.values()]
# measured: smoke 0.82, 1.51, 1.57; cpu 0.36, 1.58, 1.69 — the deeper two gain at least 0.3 more than 3 layers
assert min(gains[1:]) > gains[0] + 0.3, f"BN's gain should grow with depth (3, 6, 12 layers), got {gains}"
print(f"BN's gain at 3, 6 and 12 layers: {', '.join(f'{g:.2f}' for g in gains)} ({profile()} profile)")

# %% [markdown]
# ### Why not normalise with whole-dataset statistics while training?
# Because the statistics belong to *this* layer under *these* weights, and the weights change at every step. The
# spread (standard deviation) of the first convolution's output per channel, before vs after training (same images):

# %%
with torch.no_grad():
    after = bn_models["with BN"].features[:1](next(iter(DeviceLoader(train_images, train_labels, 32, shuffle=True,
                                                                      device=device, seed=1)))[0])
conv1_std_after = after.std(dim=(0, 2, 3)).cpu()
print("per-channel std of conv1's output, at init:", conv1_std_at_init.numpy().round(2))
print("                           after training:", conv1_std_after.numpy().round(2))
assert (conv1_std_after / conv1_std_at_init - 1).abs().max() > 0.2, (  # the statistics moved with the weights
    f"conv1's statistics should move ≥ 20 % in training, "
    f"largest change {(conv1_std_after / conv1_std_at_init - 1).abs().max():.2f}")
# %% [markdown]
# Whole-dataset statistics would have to be recomputed with a full pass over the data after every step (thousands
# of times the cost of the step itself) or go stale immediately. A batch gives a cheap, unbiased, slightly noisy
# estimate under the current weights — and the gradient then flows through the normalisation itself, so the
# optimiser cannot "undo" it by shifting the mean. For inference the weights are frozen, so the running averages
# collected during training are a good estimate of the whole-dataset statistics.
#
# ## 4. Initialisation and activations: vanishing and exploding gradients
# A plain deep network multiplies the backpropagated signal by one weight matrix and one activation slope per
# layer. If each layer scales the signal's variance by a factor *a*, twenty layers scale it by *a*²⁰ — so *a*
# must be very close to 1:
#
# * **Xavier/Glorot** — Var(W) = 2/(fan_in + fan_out): keeps the variance through a linear layer, and so through
#   a zero-centred activation with slope 1 at zero (tanh). Not through sigmoid: its slope at 0 is ¼ and its output
#   is centred on ½, so sigmoid + Xavier vanishes below.
# * **Kaiming/He** — Var(W) = 2/fan_in: the factor 2 pays back the half of its input that ReLU zeroes.
#
# Below, a 20-layer MLP (width 256) at initialisation: the norm of ∂L/∂a at each activation's output for one
# batch of 256 real images, for every activation under each initialisation, plus ReLU with a Kaiming
# standard deviation 1.5 times too large.

# %%
x_batch, y_batch = standardize(train_images[:256]), train_labels[:256]
configs = [(a, i, 1.0) for a in dx.ACTIVATIONS for i in ("xavier", "kaiming")] + [("relu", "kaiming", 1.5)]
signal, stats = {}, {}
for activation, init, scale in configs:
    seed_everything(0)
    net = dx.plain_mlp(20, 256, activation, init, scale)
    key = f"{activation} + {init}" + (f" ×{scale:g}" if scale != 1 else "")
    signal[key] = dx.layer_gradient_norms(net, x_batch, y_batch)["signal"].numpy()
    stats[key] = dx.activation_statistics(net, x_batch)

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
for key, norms in signal.items():
    ax = axes[0] if "xavier" in key else axes[1]
    ax.semilogy(range(1, 21), norms, marker=".", label=key)
for ax, title in zip(axes, ("Xavier initialisation", "Kaiming initialisation")):
    ax.set(xlabel="activation layer (1 = input side)", title=title)
    ax.legend(fontsize=8)
axes[0].set_ylabel("‖∂L/∂a‖ per image")
fig.tight_layout()
show(fig)

ratio = {key: norms[0] / norms[-1] for key, norms in signal.items()}   # input side / output side
print("\n".join(f"{key:22} layer1/layer20 = {r:9.2e}" for key, r in ratio.items()))
at_zero = torch.zeros((), requires_grad=True)
torch.sigmoid(at_zero).backward()
assert at_zero.grad == 0.25, f"sigmoid's slope at 0 should be ¼ (Xavier assumes 1), got {at_zero.grad}"
assert ratio["sigmoid + xavier"] < 1e-6 and ratio["sigmoid + kaiming"] < 1e-6, (  # sigmoid: slope ≤ 1/4
    f"sigmoid gradients should vanish (ratio < 1e-6), got xavier {ratio['sigmoid + xavier']:.1e}, "
    f"kaiming {ratio['sigmoid + kaiming']:.1e}")
assert ratio["relu + xavier"] < 1e-2, (  # vanishing
    f"ReLU + Xavier should vanish (ratio < 1e-2), got {ratio['relu + xavier']:.1e}")
assert 0.1 < ratio["relu + kaiming"] < 10 and 0.1 < ratio["tanh + xavier"] < 10, (  # the right pairs
    f"ReLU + Kaiming and tanh + Xavier should keep the signal (0.1–10), "
    f"got {ratio['relu + kaiming']:.2f} and {ratio['tanh + xavier']:.2f}")
assert ratio["relu + kaiming ×1.5"] > 1e2, (  # exploding
    f"Kaiming ×1.5 should explode (ratio > 100), got {ratio['relu + kaiming ×1.5']:.1e}")

# %% [markdown]
# What the plots say:
#
# * **Sigmoid** vanishes under any initialisation: its slope is at most ¼, so twenty layers multiply the signal
#   by at most 4⁻²⁰ ≈ 10⁻¹², and its outputs are all positive (not zero-centred), which slows learning further.
# * **tanh** has slope 1 at zero: with **Xavier** the signal survives; **ReLU** needs **Kaiming** (with Xavier
#   it halves the variance per layer and the signal vanishes). Too large a scale makes the signal explode
#   instead — (1.5²)²⁰ ≈ 10⁷ in variance.
# * **GELU** (x·Φ(x)) and **Mish** (x·tanh(softplus(x))) behave like ReLU for large |x| and need Kaiming too,
#   but they are smooth and, unlike ReLU's flat negative half, have a non-zero slope at every negative input but
#   one: each dips to a minimum (GELU at x ≈ −0.75, Mish at x ≈ −1.19) where the slope is 0, falling before it and
#   rising after — they are non-monotonic.
#
# ### Saturation and dead units
# Two ways an activation stops gradients: a **saturated** sigmoid/tanh (|input| large → slope ≈ 0) and a **dead**
# ReLU (input negative for *every* example → output and gradient exactly 0 for good: no gradient, no recovery).
# `dx.activation_statistics` counts both. Saturation, with tanh weights four times too large:

# %%
seed_everything(0)
saturated = dx.activation_statistics(dx.plain_mlp(8, 256, "tanh", "xavier", scale=4.0), x_batch)
healthy = dx.activation_statistics(dx.plain_mlp(8, 256, "tanh", "xavier"), x_batch)
print("fraction of tanh inputs with slope < 5 %: healthy", round(np.mean([s["flat"] for s in healthy]), 3),
      "| weights ×4:", round(np.mean([s["flat"] for s in saturated]), 3))
assert np.mean([s["flat"] for s in saturated]) > 0.4 > np.mean([s["flat"] for s in healthy]), (
    "tanh with weights ×4 should saturate (> 40 % flat inputs), the healthy net should not")

# %% [markdown]
# Dead ReLUs are mostly *made by training*: a large update pushes a unit's bias and weights so that its input is
# negative for every image, and then nothing ever changes it again. The same 4-layer ReLU MLP trained briefly
# with Adam at a sane (10⁻³) and a ten times too large (10⁻²) learning rate; for comparison, GELU and Mish at the
# large rate. Their slope on the negative side is small but not zero, so a unit pushed there still gets gradient
# and can come back.

# %%
DEAD_STEPS = pick(smoke=60, cpu=200, gpu=400)
dead = {}
for activation, lr in (("relu", 1e-3), ("relu", 1e-2), ("gelu", 1e-2), ("mish", 1e-2)):
    seed_everything(0)
    net = dx.plain_mlp(4, 256, activation, "kaiming").to(device)
    loader = DeviceLoader(train_images, train_labels, 64, shuffle=True, device=device)
    dx.train_steps(net, loader, torch.optim.Adam(net.parameters(), lr=lr), DEAD_STEPS)
    units = dx.activation_statistics(net, x_batch.to(device))
    dead[f"{activation}, lr={lr:g}"] = float(np.mean([s["dead"] for s in units]))
print("fraction of dead units (zero output for all 256 images):", {k: round(v, 3) for k, v in dead.items()})
assert dead["relu, lr=0.01"] > max(0.2, 3 * dead["relu, lr=0.001"]), (
    f"ReLU at lr 0.01 should kill > 20 % and 3× the units of lr 0.001, got {dead}")
assert max(dead["gelu, lr=0.01"], dead["mish, lr=0.01"]) < dead["relu, lr=0.01"] / 4, (
    f"GELU and Mish should keep < 1/4 the dead units of ReLU at lr 0.01, got {dead}")

# %% [markdown]
# **Explore:** choose an activation, an initialisation, a depth and a scale; the panels show the backpropagated
# signal, the weight gradients and the activation statistics of the fresh network.

# %%
init_explorer = Explorer(
    lambda activation, init, depth, scale_percent: dx.gradient_norm_figure(activation, init, depth,
                                                                           scale_percent / 100),
    {"activation": dropdown("activation", list(dx.ACTIVATIONS), "sigmoid"),
     "init": dropdown("init", ["xavier", "kaiming"], "xavier"),
     "depth": slider("depth", 2, 40, 20),
     "scale_percent": slider("weight scale %", 25, 300, 100)},
    title="Vanishing and exploding gradients in a plain MLP")
show(init_explorer)

# %% [markdown]
# ### Why the activation must be non-linear
# Without a non-linearity between them, layers compose into one: W₃(W₂(W₁x + b₁) + b₂) + b₃ = Wx + b with
# W = W₃W₂W₁. Depth then adds parameters but not a single new function. Below, a 5-layer network with identity
# activations is asserted equal to one linear layer built from its product, and both kinds are trained on XOR —
# four clusters where opposite corners share a label, which no straight line separates.

# %%
seed_everything(0)
linear_stack = nn.Sequential(*[nn.Linear(8, 8) for _ in range(5)]).double()
collapsed = nn.Linear(8, 8).double()
with torch.no_grad():
    weight, bias = torch.eye(8, dtype=torch.float64), torch.zeros(8, dtype=torch.float64)
    for layer in linear_stack:
        weight, bias = layer.weight @ weight, layer.weight @ bias + layer.bias
    collapsed.weight.copy_(weight)
    collapsed.bias.copy_(bias)
probe = torch.randn(16, 8, dtype=torch.float64)
torch.testing.assert_close(linear_stack(probe), collapsed(probe), msg="5 linear layers must equal their product")

corners = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
xor_points = (corners[:, None] + 0.3 * torch.randn(4, 100, 2)).reshape(-1, 2)
xor_labels = torch.tensor([0, 0, 1, 1]).repeat_interleave(100)
xor_accuracy = {}
for name, activation in (("identity", nn.Identity), ("ReLU", nn.ReLU)):
    seed_everything(0)
    net = nn.Sequential(nn.Linear(2, 16), activation(), nn.Linear(16, 16), activation(), nn.Linear(16, 2))
    xor_optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(300):
        xor_optimizer.zero_grad()
        F.cross_entropy(net(xor_points), xor_labels).backward()
        xor_optimizer.step()
    xor_accuracy[name] = (net(xor_points).argmax(1) == xor_labels).float().mean().item()
print(f"XOR, 3 layers of width 16: identity activations reach {xor_accuracy['identity']:.0%} "
      f"(a straight line gets at most 75 %), ReLU {xor_accuracy['ReLU']:.0%}")
assert xor_accuracy["identity"] <= 0.8 and xor_accuracy["ReLU"] >= 0.95, (
    f"a linear stack cannot separate XOR and a ReLU net can: got {xor_accuracy}")

# What else an activation needs: cheap, (almost everywhere) differentiable, a useful slope around 0, and — for
# Mish and GELU — smooth. Mish is bounded below and non-monotonic (it dips before rising); GELU has a tanh form.
x_axis = torch.linspace(-6, 6, 12_001, dtype=torch.float64)
mish = F.mish(x_axis)
assert mish.min() > -0.31 and (mish.diff() < 0).any() and (mish.diff() > 0).any(), (
    "Mish should be bounded below (≈ −0.309) and non-monotonic")
gelu_tanh_gap = (F.gelu(x_axis, approximate="tanh") - F.gelu(x_axis)).abs().max().item()
assert gelu_tanh_gap < 1e-3, f"GELU's tanh form should stay within 1e-3 of x·Φ(x), got {gelu_tanh_gap:.1e}"
print(f"Mish: minimum {mish.min():.3f} at x = {x_axis[mish.argmin()]:.2f} (bounded below, falls then rises); "
      f"GELU ≈ 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))), at most {gelu_tanh_gap:.1e} from x·Φ(x)")

# %%
# GELU and Mish have zero slope only at their minimum: they fall before it and rise after (ReLU is flat at 0 on its
# whole negative half). The minimum is found on a grid with step 0.001, the slopes around it by autograd.
grid = torch.linspace(-3, 0, 3_001)
minima = {name: grid[fn(grid).argmin()].item() for name, fn in (("GELU", F.gelu), ("Mish", F.mish))}
assert abs(minima["GELU"] + 0.75) < 0.02 and abs(minima["Mish"] + 1.19) < 0.02, (
    f"GELU's minimum should lie at x ≈ −0.75 and Mish's at x ≈ −1.19, got {minima}")
for name, fn in (("GELU", F.gelu), ("Mish", F.mish)):
    around = torch.tensor([minima[name] - 1, minima[name], minima[name] + 0.5], requires_grad=True)
    fn(around).sum().backward()                                   # element-wise: the gradient is each slope
    slopes = around.grad
    assert slopes[0] < 0 < slopes[2] and abs(slopes[1]) < 0.01, f"{name} should fall, flatten, then rise: {slopes}"
    print(f"{name}: minimum at x = {minima[name]:.3f}; slope {slopes[0]:.3f} one to the left, {slopes[1]:.4f} at it, "
          f"{slopes[2]:.3f} half a unit to the right")

# %% [markdown]
# ## 5. Batch size and learning rate
# One epoch is a fixed amount of data. A batch of B images gives one step whose gradient noise shrinks like
# 1/√B; so per epoch, small batches take *many noisy* steps, large batches *few accurate* ones. Large batches
# use the hardware better (a GPU computes 1024 images nearly as fast as 16), so an epoch takes less time — but
# with the same learning rate they make less progress per epoch, and need a larger learning rate to catch up
# (the "linear scaling rule": multiply lr by k when multiplying B by k, up to a limit). A small grid, same MLP,
# same number of epochs, plain SGD:

# %%
GRID_EPOCHS = pick(smoke=2, cpu=3, gpu=5)
batch_sizes, learning_rates = (16, 128, 1024), (0.01, 0.1, 1.0)
grid_loss, grid_seconds = np.zeros((3, 3)), np.zeros((3, 3))
for i, batch_size in enumerate(batch_sizes):
    for j, lr in enumerate(learning_rates):
        seed_everything(0)
        net = dx.plain_mlp(2, 256, "relu", "kaiming").to(device)
        loader = DeviceLoader(train_images, train_labels, batch_size, shuffle=True, device=device)
        trace = dx.train_steps(net, loader, torch.optim.SGD(net.parameters(), lr=lr), GRID_EPOCHS * len(loader))
        grid_loss[i, j] = evaluate(net, test_loader)["loss"] if not trace.diverged else np.nan
        grid_seconds[i, j] = trace.seconds / GRID_EPOCHS
grid_loss[~(grid_loss < 10)] = np.nan        # NaN or a test loss above 10: the run blew up

# %%
show(dx.render_batch_size_grid(grid_loss, grid_seconds, batch_sizes, learning_rates, GRID_EPOCHS, device.type))

# %%
best_lr = {b: learning_rates[int(np.nanargmin(row))] for b, row in zip(batch_sizes, grid_loss)}
print("best learning rate per batch size:", best_lr)
# Why big batches finish an epoch sooner: the same arithmetic in far fewer steps, each with a fixed cost (Python,
# kernel launches). The seconds above are measured on this machine and vary with its load; these counts do not.
epoch_flops, epoch_steps = {}, {}
for batch_size in (batch_sizes[0], batch_sizes[-1]):
    loader = DeviceLoader(train_images, train_labels, batch_size, device=device)
    x_step, y_step = next(iter(loader))
    step_flops = count_flops(lambda: F.cross_entropy(net(x_step), y_step).backward(), backward=True)
    epoch_steps[batch_size], epoch_flops[batch_size] = len(loader), step_flops * len(loader)
print(f"one epoch: {epoch_steps[16]} steps at batch 16, {epoch_steps[1024]} at batch 1024, "
      f"{epoch_flops[1024] / epoch_flops[16]:.3f}× the FLOPs; measured on {device.type}: "
      f"{grid_seconds[0].mean() / grid_seconds[-1].mean():.1f}× faster epochs at batch 1024 ({profile()} profile)")
assert abs(epoch_flops[1024] / epoch_flops[16] - 1) < 0.05 and epoch_steps[16] > 60 * epoch_steps[1024], (
    f"an epoch should cost the same FLOPs in 64× fewer steps at batch 1024, got {epoch_steps[16]} vs "
    f"{epoch_steps[1024]} steps and {epoch_flops[1024] / epoch_flops[16]:.3f}× the FLOPs")
assert grid_loss[-1, 0] > grid_loss[0, 0], (  # ...but at small lr, less progress per epoch
    f"at lr {learning_rates[0]} batch 1024 should end with a higher test loss than batch 16, "
    f"got {grid_loss[-1, 0]:.3f} vs {grid_loss[0, 0]:.3f}")
assert best_lr[1024] >= best_lr[16], (  # and they want a larger learning rate
    f"batch 1024 should want at least the learning rate of batch 16, best: {best_lr}")

# %% [markdown]
# ### Batch, stochastic and mini-batch gradient descent
# The three names say how many examples each step's gradient averages:
#
# * **batch (full-batch) gradient descent** — the whole training set: one exact step per epoch. On a smooth loss
#   with a learning rate below 2/L (L the largest curvature) every step lowers the loss;
# * **stochastic gradient descent (SGD)** — one example: N cheap, very noisy steps per epoch, one at a time;
# * **mini-batch gradient descent** — B examples: N/B steps per epoch, noise shrinking like 1/√B, the B examples
#   computed in parallel. It is what deep learning does, whatever the optimiser is called: `torch.optim.SGD` steps on
#   whatever batch the loader hands it.
#
# One convex problem for all three: softmax regression (one linear layer, 785 × 10 weights with a bias input, and
# cross-entropy) on 1 024 training images, the gradient written out as in section 1 (∂L/∂z = p − onehot(y)). The
# same 10 epochs, the same start (all weights 0) and the same learning rate 1/L, with L = ½·λ_max(XᵀX/N) a bound on
# this loss's curvature (the softmax's Hessian is at most ½; Böhning, 1992).

# %%
# Batch, stochastic and mini-batch gradient descent on softmax regression: 10 epochs each
gd_x = torch.cat([train_images[:1024].flatten(1).float() / 255, torch.ones(1024, 1)], 1)    # pixels and a bias input
gd_y = train_labels[:1024].long()
gd_lr = 2 / torch.linalg.eigvalsh(gd_x.T @ gd_x / len(gd_x)).max().item()                  # 1/L
GD_EPOCHS, epoch_loss, step_loss, gd_seconds = 10, {}, {}, {}
for name, batch in (("batch GD", len(gd_x)), ("SGD (batch 1)", 1), ("mini-batch (32)", 32)):
    weights = torch.zeros(785, 10)
    epoch_loss[name], step_loss[name], started = [F.cross_entropy(gd_x @ weights, gd_y).item()], [], time.perf_counter()
    with torch.random.fork_rng(devices=[]):             # shuffling draws numbers: leave the chapter's stream alone
        torch.manual_seed(0)
        for epoch in range(GD_EPOCHS):
            for rows in torch.randperm(len(gd_x)).split(batch):
                log_p = (gd_x[rows] @ weights).log_softmax(1)
                step_loss[name].append(-log_p[torch.arange(len(rows)), gd_y[rows]].mean().item())   # the batch's loss
                weights -= gd_lr * gd_x[rows].T @ (log_p.exp() - F.one_hot(gd_y[rows], 10)) / len(rows)
            epoch_loss[name].append(F.cross_entropy(gd_x @ weights, gd_y).item())        # on all 1 024 images
    gd_seconds[name] = time.perf_counter() - started
print(f"learning rate 1/L = {gd_lr:.4f}; " + "; ".join(
    f"{name}: {len(step_loss[name])} steps, {gd_seconds[name]:.2f} s, loss {epoch_loss[name][-1]:.3f}"
    for name in epoch_loss))

# %%
# Loss per epoch and per step: exact, noisy and in between
fig, (ax_epoch, ax_step) = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
for name, style in zip(epoch_loss, ({"lw": 2, "zorder": 3}, {"ls": "none", "marker": ".", "ms": 1, "alpha": 0.3},
                                   {"lw": 0.8})):                # batch 1: a cloud of single-image losses
    ax_epoch.plot(epoch_loss[name], marker="o", ms=3, label=name)
    ax_step.plot(range(1, len(step_loss[name]) + 1), step_loss[name], label=name, **style)
ax_epoch.set(xlabel="epoch (passes over the 1 024 images)", ylabel="loss on all 1 024 images",
             title=f"same {GD_EPOCHS} epochs, same learning rate")
ax_step.set(xscale="log", xlabel="step (log)", ylabel="loss of the step's own batch", ylim=(0, 5),
            title="the loss each step sees")
ax_epoch.legend()
show(fig)
full, single, mini = epoch_loss
noise = {name: float(np.diff(step_loss[name]).std()) for name in (single, mini)}
print(f"std of the step-to-step change of the batch loss: {noise[single]:.3f} with batch 1, {noise[mini]:.3f} "
      f"with batch 32")
assert (np.diff(step_loss[full]) < 0).all(), (
    f"with lr = 1/L every full-batch step should lower the loss, got {np.round(step_loss[full], 4)}")
assert noise[single] > 2 * noise[mini], f"batch 1 should be far noisier than batch 32, got {noise}"
assert epoch_loss[mini][-1] < epoch_loss[full][-1], (
    f"after {GD_EPOCHS} epochs mini-batch ({epoch_loss[mini][-1]:.3f}) should be below full-batch "
    f"({epoch_loss[full][-1]:.3f}): {len(step_loss[mini])} steps against {GD_EPOCHS}")

# %% [markdown]
# Per epoch, the more steps the further: batch 1 goes furthest here, but its loss over the whole set need not fall
# every epoch, and its steps run one image at a time (compare the seconds printed above; on a GPU, which computes a
# batch of 32 about as fast as one image, the gap is far wider). Batch GD's single exact step per epoch barely
# moves. Mini-batch sits between: steps accurate enough to follow the slope, many of them per epoch, each a batch
# computed in parallel.

# %% [markdown]
# ### Learning-rate schedules
# A constant learning rate is a compromise: large enough to make progress, it is too large to settle into a
# minimum at the end. Schedules change it over training — **step** decay (÷10 at fixed epochs, ResNet's),
# **cosine** annealing to 0 (SGDR), a linear **warm-up** first (Transformers and large batches: Adam's moment
# estimates and BatchNorm's statistics are unreliable in the first steps, so big steps there can blow up), and
# **one-cycle** (warm up to a peak, then anneal far below the start: fast.ai's and `fit`'s default). All are
# `torch.optim.lr_scheduler` objects; we draw them, then train the same MLP with each (SGD with momentum, the same
# peak learning rate and steps).

# %%
SCHEDULE_EPOCHS, PEAK_LR = pick(smoke=2, cpu=4, gpu=6), 0.1
schedule_loader = DeviceLoader(train_images, train_labels, 128, shuffle=True, device=device, drop_last=True)
schedule_steps = SCHEDULE_EPOCHS * len(schedule_loader)
warmup_steps = schedule_steps // 10
schedules = {
    "constant": lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0),
    "step ÷10 at 50 %, 75 %": lambda opt: torch.optim.lr_scheduler.MultiStepLR(
        opt, [schedule_steps // 2, schedule_steps * 3 // 4], gamma=0.1),
    "cosine": lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, schedule_steps),
    "warm-up + cosine": lambda opt: torch.optim.lr_scheduler.SequentialLR(opt, [
        torch.optim.lr_scheduler.LinearLR(opt, 0.01, 1.0, warmup_steps),
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, schedule_steps - warmup_steps)], [warmup_steps]),
    "one-cycle": lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, PEAK_LR, total_steps=schedule_steps),
}

# %%
schedule_results, lr_curves = {}, {}
for name, make_schedule in schedules.items():
    seed_everything(0)
    net = dx.plain_mlp(2, 256, "relu", "kaiming").to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=PEAK_LR, momentum=0.9)
    scheduler, lr_curves[name], step = make_schedule(optimizer), [], 0
    while step < schedule_steps:
        for x_step, y_step in schedule_loader:
            lr_curves[name].append(optimizer.param_groups[0]["lr"])
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(x_step), y_step).backward()
            optimizer.step()
            scheduler.step()
            step += 1
    schedule_results[name] = {"test acc": evaluate(net, test_loader)["acc"], "final lr": lr_curves[name][-1]}

# %%
show(dx.render_learning_rates(lr_curves, f"five schedules, peak {PEAK_LR}, {schedule_steps} steps"))
show(comparison_chart(schedule_results, {"test acc": "test accuracy"}, best={"test acc": "max"}, width=7,
                      title=f"the same MLP, {SCHEDULE_EPOCHS} epochs of SGD + momentum ({profile()} profile)"))

# %%
assert lr_curves["warm-up + cosine"][0] < 0.02 * PEAK_LR and max(lr_curves["one-cycle"]) > 0.99 * PEAK_LR, (
    "warm-up must start near 0 and one-cycle must reach its peak")
assert lr_curves["cosine"][-1] < 0.01 * PEAK_LR and lr_curves["one-cycle"][-1] < 0.001 * PEAK_LR, (
    "cosine and one-cycle must end near 0")
winner = max(schedule_results, key=lambda k: schedule_results[k]["test acc"])
annealed_best = max(v["test acc"] for k, v in schedule_results.items() if k != "constant")
constant_acc = schedule_results["constant"]["test acc"]
print(f"best: {winner} ({schedule_results[winner]['test acc']:.3f}); constant {constant_acc:.3f}, best annealed "
      f"schedule {annealed_best:.3f} — " + (
          "a learning rate that ends small lets the weights settle" if annealed_best > constant_acc + 0.005 else
          f"in {schedule_steps} steps ({profile()} profile) the schedules do not separate: they matter over longer runs"))

# %% [markdown]
# ## 6. Optimisers: what each one adapts
# All of them follow the negative gradient `g`; they differ in what they remember:
#
# | optimiser | update | adapts |
# |---|---|---|
# | SGD | θ −= lr·g | nothing |
# | SGD + momentum | v = 0.9v + g; θ −= lr·v | the *direction*: a running sum, so consistent directions speed up and zig-zags cancel |
# | AdaGrad | s += g²; θ −= lr·g/√s | a *per-parameter step size*: shrinks with all past gradients (good for rare features, but steps die out) |
# | RMSprop | s = 0.9s + 0.1g²; θ −= lr·g/√s | per-parameter step size from a *moving* average: AdaGrad that forgets |
# | Adam | momentum on g **and** RMSprop on g², both bias-corrected | both: direction and per-parameter scale |
#
# `dx.hand_trajectory` writes these five rules out in NumPy; we assert they match `torch.optim` step for step on
# the narrow valley f(x, y) = 0.1x² + 2y² (curvature 20 times larger across the valley than along it).

# %%
for name, lr in (("SGD", 0.4), ("SGD+momentum", 0.1), ("AdaGrad", 0.5), ("RMSprop", 0.05), ("Adam", 0.1)):
    np.testing.assert_allclose(dx.hand_trajectory(name, lr, 50), dx.optimizer_trajectory(name, lr, 50), atol=1e-7)
first_step = dx.optimizer_trajectory("Adam", 0.1, 1)
np.testing.assert_allclose(np.abs(first_step[1] - first_step[0]), [0.1, 0.1], rtol=1e-6)
print("hand-written updates == torch.optim ✓; Adam's first step is lr in every coordinate:",
      (first_step[1] - first_step[0]).round(4))

# %% [markdown]
# Adam's first step has length `lr` in *every* coordinate, however different the gradients (0.8 along the valley,
# 4 across it): dividing by √(g²) keeps only the sign. Plain SGD must keep lr below 2/4 = 0.5 or it diverges
# across the valley, and then crawls along it (rate 1 − 0.2·lr per step). Momentum accelerates along the valley;
# the adaptive methods rescale each coordinate. Move the learning rate:

# %%
trajectory_explorer = Explorer(
    lambda lr_exponent_tenths, steps: dx.trajectory_figure(lr_exponent_tenths / 10, steps),
    {"lr_exponent_tenths": slider("log10(lr) ×10", -30, 5, -10), "steps": slider("steps", 5, 200, 60)},
    title="Optimisers on a narrow valley")
show(trajectory_explorer)

sgd, momentum = (dx.valley(dx.optimizer_trajectory(n, 0.1, 60)[-1]) for n in ("SGD", "SGD+momentum"))
assert momentum < sgd / 10, (  # same lr: momentum gets 10× closer along the valley
    f"momentum should end 10× closer than SGD at the same lr, got {momentum:.3g} vs {sgd:.3g}")
assert not np.isfinite(dx.valley(dx.optimizer_trajectory("SGD", 0.6, 60)[-1])) or \
    dx.valley(dx.optimizer_trajectory("SGD", 0.6, 60)[-1]) > 1e3, (  # lr > 2/curvature: divergence
    "SGD with lr 0.6 (> 2/curvature) should diverge on the valley")

# %% [markdown]
# And on Fashion-MNIST: the same MLP trained by each optimiser at a typical learning rate for it, same batches.
# Adam starts fastest; with each learning rate tuned the final differences are small — which is why SGD with
# momentum (and a schedule) remains a strong choice for CNNs. Momentum's lr is 10× smaller than plain SGD's
# because its velocity sums about 1/(1 − 0.9) = 10 gradients.

# %%
OPT_STEPS = pick(smoke=120, cpu=800, gpu=2_000)
optimizer_lrs = {"SGD": 0.05, "SGD+momentum": 0.01, "AdaGrad": 0.05, "RMSprop": 1e-3, "Adam": 1e-3}
optimizer_traces = {}
for name, lr in optimizer_lrs.items():
    seed_everything(0)
    net = dx.plain_mlp(2, 256, "relu", "kaiming").to(device)
    loader = DeviceLoader(train_images, train_labels, 64, shuffle=True, device=device)
    optimizer_traces[name] = dx.train_steps(net, loader, dx.make_optimizer(name, net.parameters(), lr), OPT_STEPS)

fig, ax = plt.subplots(figsize=(7, 3.6))
for name, trace in optimizer_traces.items():
    ax.plot(trace.smoothed_loss(20), label=f"{name} (lr {optimizer_lrs[name]:g})")
ax.set(xlabel="step", ylabel="training loss (20-step mean, log)", yscale="log",  # AdaGrad's early spike would
       title="optimisers on Fashion-MNIST, MLP 784-256-256-10")                    # flatten the rest on a linear axis
ax.legend()
show(fig)
final_loss = {name: round(float(trace.smoothed_loss(20)[-1]), 3) for name, trace in optimizer_traces.items()}
early_loss = {name: round(float(np.mean(trace.loss[:100])), 3) for name, trace in optimizer_traces.items()}
print("mean loss over the first 100 steps:", early_loss, "\nfinal loss:", final_loss)
assert early_loss["Adam"] < early_loss["SGD"], (  # per-parameter scaling: the fastest start
    f"Adam should start faster than SGD (mean loss over 100 steps), got {early_loss}")
assert max(final_loss.values()) < pick(smoke=0.7, cpu=0.6, gpu=0.6), (  # and every one of them trains
    f"every optimiser should train, final losses {final_loss}")

# %% [markdown]
# ## 7. Where translation invariance comes from — and where it breaks
# A convolution is *equivariant*: shift the input, and its feature maps shift the same way. Invariance (the same
# answer) needs a head that forgets *where*: **global average pooling** averages each channel over all positions.
# A **flatten + fully connected** head keeps a separate weight for every position, so a shifted object lands on
# different weights. We train both heads on unshifted images (no augmentation) and test them on images moved
# sideways by up to 6 pixels.

# %%
SHIFT_EPOCHS = pick(smoke=3, cpu=4, gpu=10)
shift_models, shift_accuracy, shifts = {}, {}, list(range(-6, 7, 2))
shift_test = pick(smoke=500, cpu=None, gpu=None)           # test images per shift (None: all)
shift_test_images, shift_test_labels = test_images[:shift_test], test_labels[:shift_test]
for head in ("gap", "flatten"):
    seed_everything(2)
    model = dx.SmallCNN(width=WIDTH, convs=1, batch_norm=True, head=head).to(device)
    loader = DeviceLoader(train_images, train_labels, 64, shuffle=True, device=device, seed=2)
    fit(model, loader, epochs=SHIFT_EPOCHS, lr=1e-2, val_loader=test_loader, name=f"01c-shift-{head}",
        config={"train_size": TRAIN_SIZE, "head": head}, plot=False)
    shift_models[head] = model
    shift_accuracy[head] = dx.accuracy_under_shift(model, shift_test_images, shift_test_labels, shifts)

fig, (ax_examples, ax_curve) = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1, 1.4]})
ax_examples.imshow(torch.cat([dx.shift_images(test_images[:1], s)[0, 0] for s in (-6, 0, 6)], 1), cmap="gray")
ax_examples.set(title="test image shifted by −6, 0, +6 px", xticks=[], yticks=[])
for head, acc in shift_accuracy.items():
    ax_curve.plot(shifts, acc, marker="o", label={"gap": "global average pooling", "flatten": "flatten + FC"}[head])
ax_curve.set(xlabel="horizontal shift (pixels)", ylabel="test accuracy", title="accuracy vs shift")
ax_curve.legend()
fig.tight_layout()
show(fig)

centre = shifts.index(0)
CENTRE_BAR = pick(smoke=0.65, cpu=0.8, gpu=0.8)   # gpu bar held at the cpu-measured level until measured on a GPU
far = [i for i, s in enumerate(shifts) if abs(s) >= 3]
for head, acc in shift_accuracy.items():
    print(f"{head:8}: unshifted {acc[centre]:.3f}, mean over |shift| ≥ 3: {acc[far].mean():.3f}")
    assert acc[centre] > CENTRE_BAR, f"{head} head: unshifted accuracy {acc[centre]:.3f}, bar {CENTRE_BAR}"
assert shift_accuracy["gap"][far].mean() > shift_accuracy["flatten"][far].mean() + 0.05, (
    f"global average pooling should beat flatten by 0.05 under shifts ≥ 3 px, got "
    f"{shift_accuracy['gap'][far].mean():.3f} vs {shift_accuracy['flatten'][far].mean():.3f}")

# %% [markdown]
# The pooled head degrades far more slowly — but it is not perfectly invariant either. Where invariance breaks:
#
# * **Subsampling** (max-pooling, strided convolution) is equivariant only to shifts by multiples of its stride;
#   a 1-pixel shift changes which pixel wins each pooling window (aliasing — Zhang, 2019, "Making CNNs shift-
#   invariant again").
# * **Borders:** zero padding tells the network where the edge is, and a large shift pushes the object out of
#   the frame.
# * **The data:** Fashion-MNIST items are always centred, so nothing taught the network that position is
#   irrelevant; augmentation with random shifts (`random_shift_flip`) is how we teach it.
#
# Even a 1-pixel shift changes the pooled features of the GAP network a little:

# %%
with torch.no_grad():
    features = shift_models["gap"].features.eval()
    pooled = [features(standardize(dx.shift_images(test_images[:256], s)).to(device)).mean(dim=(2, 3))
              for s in (0, 1)]
similarity = F.cosine_similarity(pooled[0], pooled[1]).mean().item()
print(f"cosine similarity of pooled features, shift 0 vs 1 px: {similarity:.4f}")
assert 0.5 < similarity < 0.9999, (
    f"pooled features should change a little, not totally, under a 1 px shift: cosine {similarity:.4f}")

# %% [markdown]
# ## 8. Regularisation: Dropout vs Dropout2d, L1 vs L2, bias vs variance
# **Dropout** zeroes each activation independently with probability p during training (and scales the survivors
# by 1/(1−p) so the expected value is unchanged; at evaluation it does nothing). In a feature map, neighbouring
# pixels are strongly correlated, so a zeroed pixel is easily guessed from its neighbours. **Dropout2d** zeroes
# *whole channels* instead, forcing the network not to rely on any single feature map.

# %%
seed_everything(0)
feature_map = torch.ones(1, 8, 12, 12)
dropped = nn.Dropout(p=0.5).train()(feature_map)[0]
dropped_2d = nn.Dropout2d(p=0.5).train()(feature_map)[0]
show(image_grid(torch.cat([dropped, dropped_2d]), titles=[f"Dropout ch {c}" for c in range(8)] +
                [f"Dropout2d ch {c}" for c in range(8)], ncols=8, cmap="gray", vmin=0, vmax=2,
                suptitle="Which elements are zeroed (black; white: kept, scaled ×2), p = 0.5"))
assert set(dropped.unique().tolist()) == {0.0, 2.0} and set(dropped_2d.unique().tolist()) <= {0.0, 2.0}, (
    "dropout with p = 0.5 should zero elements and scale the rest by 2")
per_channel = dropped_2d.flatten(1)
assert ((per_channel == 0).all(1) | (per_channel == 2).all(1)).all(), (  # Dropout2d: whole channels
    "Dropout2d should zero whole channels")
assert not ((dropped.flatten(1) == 0).all(1) | (dropped.flatten(1) == 2).all(1)).all(), (  # Dropout: scattered
    "Dropout should zero scattered elements, not whole channels")
torch.testing.assert_close(nn.Dropout(0.5).eval()(feature_map), feature_map)  # eval: identity

# %% [markdown]
# **L1 vs L2.** Adding λ·Σw² (L2, *weight decay*) to the loss pulls each weight towards zero in proportion to its
# size: big weights shrink a lot, small ones barely — weights become small but not zero. λ·Σ|w| (L1) pulls every
# weight with the *same* force λ whatever its size, so weights that the data does not defend are driven all the
# way to zero: a **sparse** model. Seen on a linear classifier (softmax regression), whose 10 weight templates are
# images, trained with `fit` and each penalty in the loss (AdamW's own decay off):

# %%
REG_EPOCHS = pick(smoke=4, cpu=8, gpu=15)
regularised = {}
for kind, strength in (("l2", 3e-3), ("l1", 3e-3)):
    seed_everything(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).to(device)
    loader = DeviceLoader(train_images, train_labels, 128, shuffle=True, device=device)
    fit(linear, loader, epochs=REG_EPOCHS, lr=1e-2, val_loader=test_loader, weight_decay=0.0,
        loss_fn=dx.penalized_loss(kind, strength), name=f"01c-{kind}", config={"train_size": TRAIN_SIZE},
        plot=False)
    regularised[kind] = linear

fig, axes = plt.subplots(2, 6, figsize=(13, 4.4), gridspec_kw={"width_ratios": [1] * 5 + [2]}, layout="constrained")
for row, (kind, linear) in enumerate(regularised.items()):
    weights = linear[1].weight.detach().cpu()
    for k in range(5):
        drawn = axes[row, k].imshow(weights[k].view(28, 28), cmap="RdBu", vmin=-weights.abs().max(),
                                    vmax=weights.abs().max())
        axes[row, k].set(xticks=[], yticks=[], title=f"{kind.upper()}: {CLASSES[k]}")
    fig.colorbar(drawn, ax=axes[row, :5], label="weight", shrink=0.9)
    axes[row, 5].hist(weights.flatten().numpy(), bins=80)
    axes[row, 5].set(title=f"{kind.upper()} weights: {dx.sparsity(linear, 1e-3):.0%} below 1e-3", yscale="log",
                     xlabel="weight", ylabel="count (log)")
fig.suptitle("L2 vs L1: class templates of a linear classifier and all its weights")
show(fig)
sparse = {kind: dx.sparsity(linear, 1e-3) for kind, linear in regularised.items()}
acc = {kind: evaluate(linear, test_loader)["acc"] for kind, linear in regularised.items()}
print("fraction of weights below 1e-3:", {k: round(v, 3) for k, v in sparse.items()}, "| test accuracy:", acc)
assert sparse["l1"] > 4 * sparse["l2"] and sparse["l1"] > 0.1, (
    f"L1 should zero > 10 % of the weights and 4× as many as L2, got {sparse}")
REG_BAR = pick(smoke=0.6, cpu=0.78, gpu=0.78)     # gpu bar held at the cpu-measured level until measured on a GPU
assert min(acc.values()) > REG_BAR, f"L1/L2 linear classifiers reached {acc}, bar {REG_BAR}"

# %%
# Weight decay is an L2 penalty only for SGD: Adam's weight_decay adds λw to the gradient, then divides it by √v;
# AdamW shrinks the weights directly. One step from w = (1, −2) on the loss 0.5·w₁ + 0.01·w₂, with λ = 0.1:
def decay_step(optimizer_class, l2=0.0, **options):
    w_step = torch.tensor([1.0, -2.0], requires_grad=True)
    step_optimizer = optimizer_class([w_step], lr=0.1, **options)
    (torch.tensor([0.5, 0.01]) @ w_step + l2 / 2 * w_step.pow(2).sum()).backward()
    step_optimizer.step()
    return w_step.detach()

torch.testing.assert_close(decay_step(torch.optim.SGD, l2=0.1), decay_step(torch.optim.SGD, weight_decay=0.1))
adam_l2, adam_decay = decay_step(torch.optim.Adam, l2=0.1), decay_step(torch.optim.Adam, weight_decay=0.1)
adamw = decay_step(torch.optim.AdamW, weight_decay=0.1)
torch.testing.assert_close(adam_l2, adam_decay)                   # Adam's weight_decay is the L2 penalty
print(f"one step: Adam with L2 → w = {adam_decay.numpy().round(3)}, AdamW → {adamw.numpy().round(3)}")
assert not torch.allclose(adam_decay, adamw, atol=1e-3), f"AdamW should differ from Adam's L2: {adam_decay} vs {adamw}"

# %% [markdown]
# **Bias vs variance.** On a small training set (500 images), a tiny model (4 hidden units) cannot even fit the
# training data — high *bias*: training and test accuracy both low, close together. A large model
# (two layers of 512) fits the training set perfectly and generalises worse than it fits — high *variance*: a big
# gap between training and test accuracy. The cures differ: more capacity for bias; more data, augmentation,
# regularisation or a smaller model for variance.

# %%
SMALL_SET = 500
BV_EPOCHS = pick(smoke=30, cpu=40, gpu=60)
few_images, few_labels = subset(train_images, train_labels, SMALL_SET, seed=3)
few_loader = DeviceLoader(few_images, few_labels, 50, shuffle=True, device=device)
bias_variance = {}
for label, width in (("small (4 units)", 4), ("large (2×512)", 512)):
    seed_everything(0)
    net = dx.plain_mlp(1 if width == 4 else 2, width, "relu", "kaiming").to(device)
    fit(net, few_loader, epochs=BV_EPOCHS, lr=3e-3, weight_decay=0.0, name=f"01c-bias-variance-{width}",
        config={"subset": SMALL_SET}, plot=False)
    bias_variance[label] = {"train": evaluate(net, DeviceLoader(few_images, few_labels, 500, device=device))["acc"],
                            "test": evaluate(net, test_loader)["acc"]}
for label, result in bias_variance.items():
    print(f"{label:16} train {result['train']:.3f}  test {result['test']:.3f}  gap {result['train'] - result['test']:.3f}")
small, large = bias_variance.values()
assert large["train"] > 0.97 and large["train"] - large["test"] > small["train"] - small["test"], (
    f"the large MLP should fit its 500 images (> 0.97) with a bigger train–test gap: {bias_variance}")
assert small["train"] < large["train"] - 0.1, (
    f"the 4-unit MLP should underfit (train 0.1 below the large one): {bias_variance}")

# %% [markdown]
# ### Error = bias² + variance + noise
# For squared error the decomposition is exact. Draw many training sets from the same source (here
# y = sin(2πx) + noise, 40 points each), fit the same model to each, and look at one test point: **bias²** is how
# far the *average* fit is from the truth, **variance** how much the fits scatter around their average, **noise**
# the irreducible σ². Polynomials of growing degree: bias falls, variance rises, and their sum is the U-shaped
# test error.

# %%
noise_sd, degrees = 0.3, (1, 3, 6, 10)
rng = np.random.default_rng(0)
x_test = np.linspace(0.05, 0.95, 50)
truth_test = np.sin(2 * np.pi * x_test)
decomposition = {}
for degree in degrees:
    fits = []
    for _ in range(400):                                      # 400 independent training sets
        x_train = rng.uniform(0, 1, 40)
        y_train = np.sin(2 * np.pi * x_train) + rng.normal(0, noise_sd, 40)
        fits.append(np.polyval(np.polyfit(x_train, y_train, degree), x_test))
    fits = np.array(fits)
    y_new = truth_test + rng.normal(0, noise_sd, fits.shape)  # fresh noisy targets at the test points
    decomposition[f"degree {degree}"] = {
        "bias²": np.mean((fits.mean(0) - truth_test) ** 2), "variance": np.mean(fits.var(0)),
        "noise": noise_sd ** 2, "test MSE": np.mean((fits - y_new) ** 2)}
for name, parts in decomposition.items():
    total = parts["bias²"] + parts["variance"] + parts["noise"]
    assert abs(total - parts["test MSE"]) < 0.1 * parts["test MSE"], (
        f"{name}: bias² + variance + noise = {total:.3f} should match the measured test MSE {parts['test MSE']:.3f}")
show(comparison_chart(decomposition, {k: k for k in ("bias²", "variance", "noise", "test MSE")}, per_row=4, width=11,
                      best={"test MSE": "min"}, title="polynomial fits to 40 noisy points of sin(2πx), 400 training sets"))
best_degree = min(decomposition, key=lambda k: decomposition[k]["test MSE"])
assert decomposition["degree 1"]["bias²"] > decomposition["degree 10"]["bias²"] and (
    decomposition["degree 10"]["variance"] > decomposition["degree 1"]["variance"]), "bias falls and variance rises"
print(f"bias² + variance + noise matches the measured test error for every degree; the best trade-off here is "
      f"{best_degree}: degree 1 is all bias ({decomposition['degree 1']['bias²']:.3f}), degree 10 mostly variance "
      f"({decomposition['degree 10']['variance']:.3f})")

# %% [markdown]
# ## 9. Freezing layers, `detach`, and devices
# **Freezing** a layer (`requires_grad_(False)`) removes it from the gradient computation: no `.grad`, so the
# optimiser leaves it exactly as it was — how we fine-tune only the head of a pretrained network. Pass only the
# trainable parameters to the optimiser (`fit` does) so that its weight decay cannot touch the frozen ones either.

# %%
seed_everything(0)
model = dx.SmallCNN(width=8).to(device)
model.features.requires_grad_(False)
before = {name: p.detach().clone() for name, p in model.named_parameters()}
optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
x_small, y_small = next(iter(DeviceLoader(train_images, train_labels, 32, device=device)))
F.cross_entropy(model(x_small), y_small).backward()
optimizer.step()
for name, p in model.named_parameters():
    if name.startswith("features"):
        assert p.grad is None and torch.equal(p, before[name]), f"frozen {name} should get no gradient and not move"
    else:
        assert not torch.equal(p, before[name]), f"trainable {name} (the head) should have moved"
print("frozen features unchanged, head updated ✓ — trainable parameters:",
      count_parameters(model, trainable_only=True), "of", count_parameters(model))

# %% [markdown]
# **`detach()`** returns the same numbers cut off from the graph: gradients do not flow back through it. Use it
# for targets that must be treated as constants (a teacher's output, a moving average), and to log values without
# keeping the whole graph alive. Below y = w·x + (w·x).detach(): numerically 2wx, but its gradient with respect to
# w is x, not 2x.

# %%
w = torch.tensor(3.0, requires_grad=True)
x_value = torch.tensor(2.0)
y = w * x_value + (w * x_value).detach()
y.backward()
assert y.item() == 12.0 and w.grad.item() == 2.0, (  # dy/dw = x = 2 (the detached half contributes nothing)
    f"y = {y.item()} (want 12) and dy/dw = {w.grad.item()} (want 2: the detached half is constant)")
print(f"y = {y.item()}, dy/dw = {w.grad.item()} (not 4): the detached branch is a constant")

# %% [markdown]
# **Devices.** Parameters and inputs must be on the same device; `model.to(device)` moves the parameters in place,
# `tensor.to(device)` returns a copy. `start_chapter` chose `device` (CUDA, else Apple MPS, else CPU), and our
# `DeviceLoader` keeps the whole dataset on it so no batch is copied during training.

# %%
model = dx.SmallCNN(width=8).to(device)
batch, _ = next(iter(DeviceLoader(test_images, test_labels, 16, device=device)))
assert next(model.parameters()).device.type == device.type and batch.device.type == device.type, (
    f"model and batch should be on {device}")
logits_on_device = model(batch)
logits_on_cpu = model.cpu()(batch.cpu())
# On CUDA, float32 convolutions may run on TF32 tensor cores (10 mantissa bits): equal to about 1e-3, not 1e-6.
torch.testing.assert_close(logits_on_device.detach().cpu(), logits_on_cpu.detach(), atol=2e-3, rtol=2e-3)
print(f"model and batch on {device}; same logits after moving both to the CPU ✓")

# %% [markdown]
# ### Feeding the model: a Dataset and a DataLoader
# Everything in this chapter reads batches from `DeviceLoader`, which keeps the whole data set on the device —
# right for 60 000 small images. The general tool is PyTorch's pair: a **Dataset** says how many items there are
# and how to build item i (read a file, decode, augment); a **DataLoader** draws indices (shuffled by a
# *sampler*), builds the items — in `num_workers` background processes, so decoding overlaps training — and
# **collates** a list of items into one batch. `pin_memory=True` puts batches in page-locked host memory so the
# copy to a CUDA GPU can run asynchronously (`.to(device, non_blocking=True)`). Our Dataset and collate function:

# %%
print(inspect.getsource(ImageDataset))
print(inspect.getsource(stack_batch))

few = ImageDataset(*subset(train_images, train_labels, 512, seed=4))
single = DataLoader(few, batch_size=64, shuffle=True, collate_fn=stack_batch, generator=torch.Generator().manual_seed(0))
workers = DataLoader(few, batch_size=64, shuffle=True, collate_fn=stack_batch, num_workers=2,
                     pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(0))
batches_single, batches_workers = list(single), list(workers)
assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches_single, batches_workers)), (
    "the sampler runs in the main process: 2 workers must give the same batches as 0 with the same generator")
seen = torch.cat([labels_batch for _, labels_batch in batches_single])
assert len(seen) == len(few) and torch.equal(seen.bincount(minlength=10), few.labels.bincount(minlength=10)), (
    "one epoch must show every item exactly once")
print(f"{len(batches_single)} batches of {tuple(batches_single[0][0].shape)}; 0 and 2 workers give identical batches; "
      f"pinned memory: {batches_workers[0][0].is_pinned()} (asked for on CUDA only)")

# %% [markdown]
# **Duplicates.** Data sets collect duplicates, and a duplicate split between training and test inflates the test
# score. Two one-liners find them: in Python, `dict.fromkeys` keeps the first occurrence of each hashable item in
# order (a `set` would lose the order); in NumPy, `np.unique(..., axis=0, return_index=True)` compares whole rows
# and returns where each distinct row first appears (sorted by value: sort the indices to restore the order).

# %%
rows = train_images.flatten(1).numpy()
first_python = list(dict.fromkeys(row.tobytes() for row in rows))          # distinct images, first-seen order
_, first_index = np.unique(rows, axis=0, return_index=True)
first_numpy = np.sort(first_index)
assert first_python == [rows[i].tobytes() for i in first_numpy], (
    "dict.fromkeys and np.unique must find the same distinct images, in the same first-seen order")
train_set = set(first_python)
in_both = sum(row.tobytes() in train_set for row in test_images.flatten(1).numpy())
print(f"{len(rows) - len(first_numpy)} of {len(rows):,} training images are exact copies of an earlier one; "
      f"{in_both} of the {len(test_images):,} test images also appear among them ({profile()} profile's subsets)")

# %% [markdown]
# ## Interview questions
#
# <details><summary>What does BatchNorm normalise over, and LayerNorm?</summary>
#
# BatchNorm2d computes one mean and variance per channel over the batch and both spatial axes (N, H, W); LayerNorm
# computes them per sample over that sample's features (here C, H, W). So BN couples the images of a batch and LN
# does not (see cell "BatchNorm vs LayerNorm: which axes?").
# </details>
#
# <details><summary>Why does BN behave differently in training and inference?</summary>
#
# In training it normalises with the current batch's statistics (and updates running averages); in eval mode it
# uses the running averages, so a prediction does not depend on the other images in the batch and works for a
# batch of one. The same image in two batches gives two outputs in training mode and identical ones in eval mode
# (see cell "Training vs evaluation mode"). Forgetting `model.eval()` is a classic bug.
# </details>
#
# <details><summary>Why not use whole-dataset statistics while training?</summary>
#
# The statistics depend on the weights below, which change every step: they would need a full pass over the data
# after each step or go stale at once (the per-channel statistics of conv1 drift during training — see cell "Why not
# normalise with whole-dataset statistics while training?"). A batch is a cheap, current estimate, gradients flow
# through it, and its noise regularises; at inference the weights are fixed, so running averages suffice.
# </details>
#
# <details><summary>What are γ and β for?</summary>
#
# A learned per-channel scale and shift applied after normalising, so the layer can represent any mean and
# variance — including undoing the normalisation entirely (γ = √(σ²+ε), β = μ gives the identity; see cell
# "What γ and β are for").
# </details>
#
# <details><summary>What does BatchNorm buy?</summary>
#
# The same CNN with the same optimiser and batches: with BN the loss falls from the first steps, gradient norms are
# similar across layers, and test accuracy is higher; without BN the early layers get much smaller gradients and
# the loss stalls (see cell "What BatchNorm buys — measured"). It also tolerates larger learning rates and its
# batch noise regularises mildly. Its gain grows with depth: trained the same way, a 3-layer CNN without BN still
# learns, while 6 and 12 layers stall near chance and BN trains all three (see "BatchNorm's gain grows with depth").
# </details>
#
# <details><summary>How do batch size and learning rate change convergence and speed?</summary>
#
# Larger batches give less noisy gradients and faster epochs (better hardware use) but fewer steps per epoch, so
# at the same learning rate they progress less per epoch and want a larger learning rate (roughly linear scaling,
# up to a limit); too large a learning rate diverges (see cell "Batch size and learning rate"). Very large
# batches also tend to generalise a little worse without tuning.
# </details>
#
# <details><summary>Xavier vs Kaiming initialisation: which activation each suits?</summary>
#
# Xavier (Var = 2/(fan_in+fan_out)) keeps the signal's variance through a linear layer, so for zero-centred,
# slope-1 activations like tanh — not sigmoid (slope ¼ at 0, outputs centred on ½: it vanishes under Xavier);
# Kaiming (Var = 2/fan_in) compensates for ReLU (and GELU/Mish) zeroing about half their input. ReLU + Xavier
# vanishes, ReLU + Kaiming stays flat, 1.5× Kaiming explodes (see cell "Initialisation and activations").
# </details>
#
# <details><summary>Sigmoid and tanh saturation; vanishing and exploding gradients; dead ReLUs?</summary>
#
# Backprop multiplies by one weight matrix and one activation slope per layer, so the signal scales
# geometrically with depth: sigmoid's slope ≤ ¼ makes it vanish (10⁻¹² over 20 layers), too-large weights make
# it explode. Saturated sigmoid/tanh (large |input|) have slope ≈ 0; a dead ReLU outputs 0 for every input and
# never receives gradient again — large learning rates create many (see cells "Initialisation and activations",
# "Saturation and dead units").
# </details>
#
# <details><summary>What do Mish and GELU change?</summary>
#
# They are smooth ReLU-like curves (x·Φ(x), x·tanh(softplus(x))) that are non-zero for negative inputs and, where
# ReLU is flat on its whole negative half, have a non-zero slope everywhere but at their minimum (x ≈ −0.75 for
# GELU, ≈ −1.19 for Mish, slope 0 there): they fall before it and rise after, so they are non-monotonic. Units are
# far harder to kill (almost no dead units at a learning rate that kills many ReLUs) and the loss surface is
# smoother; they still want Kaiming-style initialisation (see cell "Saturation and dead units"). Mish is bounded
# below (minimum ≈ −0.31); GELU is usually computed by its tanh form 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))) —
# asserted, with both minima, in "Why the activation must be non-linear".
# </details>
#
# <details><summary>Where does CNN translation invariance come from, and where does it break?</summary>
#
# Convolutions are translation-equivariant; pooling — above all global average pooling — turns that into
# invariance. A flatten + FC head has a weight per position and loses accuracy fast under shifts. It breaks with
# strided subsampling (aliasing: a 1-pixel shift changes the pooled features), at borders/padding, and when the
# training data were always centred (see cell "Where translation invariance comes from").
# </details>
#
# <details><summary>Dropout vs Dropout2d?</summary>
#
# Dropout zeroes individual activations (scaling survivors by 1/(1−p)); Dropout2d zeroes entire channels, which
# suits conv feature maps whose neighbouring pixels are correlated. Both are the identity in eval mode (see cell
# "Regularisation: Dropout vs Dropout2d").
# </details>
#
# <details><summary>L1 vs L2 regularisation?</summary>
#
# L2 (weight decay) shrinks weights in proportion to their size — small but dense; L1 pushes with a constant force
# and drives unneeded weights to zero — sparse. The L1 classifier has far more near-zero weights, mostly on the
# uninformative border pixels (see cell "L1 vs L2").
# </details>
#
# <details><summary>Bias vs variance?</summary>
#
# Bias: the model is too simple to fit even the training set (a 4-unit MLP — low train and test accuracy).
# Variance: it fits the training set perfectly but not the test set (a 2×512 MLP on 500 images — large gap).
# More capacity fixes bias; more data, augmentation, regularisation or less capacity fix variance (see cell
# "Bias vs variance"). For squared error, expected test error = bias² + variance + noise exactly; the cell
# "Error = bias² + variance + noise" measures the three over 400 training sets and checks they add up.
# </details>
#
# <details><summary>Softmax and cross-entropy?</summary>
#
# Softmax exponentiates and normalises logits into probabilities (subtract the max first for stability);
# cross-entropy is −log p of the true class, and its gradient w.r.t. the logits is p − onehot(y) (see cell
# "Softmax and cross-entropy"). Softmax is the multi-class sigmoid: two classes with logits (z, 0) give σ(z)
# (asserted there).
# </details>
#
# <details><summary>SGD with momentum, AdaGrad, RMSprop, Adam — what does each adapt?</summary>
#
# Momentum adapts the direction (a running sum of gradients); AdaGrad a per-parameter step size from the sum of
# all squared gradients (steps decay forever); RMSprop the same from a moving average; Adam combines momentum with
# RMSprop and corrects the bias of both at the start, so its first step is lr in every coordinate (see cell
# "Optimisers: what each one adapts", the trajectory explorer and the Fashion-MNIST loss curves).
# </details>
#
# <details><summary>How do you freeze layers, what does `detach` do, how do you move data to a device?</summary>
#
# `module.requires_grad_(False)` (and give the optimiser only trainable parameters): no gradient, no update.
# `t.detach()` gives the same values without a graph, so no gradient flows through it. `model.to(device)` moves
# parameters in place, `tensor.to(device)` returns a copy; both must be on the same device (see cell "Freezing
# layers, detach, and devices").
# </details>
#
# <details><summary>Compare the loss functions: MSE, L1, smooth L1, cross-entropy, BCE, focal, Dice, IoU.</summary>
#
# MSE: gradient grows with the error, so outliers dominate; the best constant is the mean. L1: constant-size
# gradient, robust; the best constant is a median. Smooth L1 (Huber): quadratic below β, linear beyond — box
# regression in Fast R-CNN. Cross-entropy / BCE: per-example log-loss on probabilities (softmax for one class of
# many, sigmoid per label for multi-label). Focal: BCE × (1 − p_t)^γ, so easy examples stop dominating (dense
# detection). Dice and IoU: overlap of predicted and true sets, blind to the number of easy background pixels
# (segmentation, often added to cross-entropy). See cells "The loss functions side by side" (the outlier fit,
# the gradients, and a 4×4 object where BCE rates "background everywhere" 88 % of the way to perfect and Dice
# no better than a coin flip); `utils/losses.py` is tested against torch, torchvision and torchmetrics.
#
# </details>
#
# <details><summary>Entropy, cross-entropy and KL divergence: how are they related?</summary>
#
# H(p, q) = H(p) + KL(p ‖ q). Training data fix p, so minimising cross-entropy minimises KL to the data. With
# one-hot labels H(p) = 0 and cross-entropy is −log q_y; label smoothing gives the target an entropy, a floor the
# loss cannot go below, so logits are not pushed to infinity (see cell "Entropy, cross-entropy and KL").
#
# </details>
#
# <details><summary>Why must activation functions be non-linear?</summary>
#
# A stack of linear layers is one linear layer (W = W₃W₂W₁): depth adds nothing. The cell "Why the activation must
# be non-linear" asserts a 5-layer identity-activation network equal to its product, and shows it stuck near
# chance on XOR while the same shape with ReLU separates it.
#
# </details>
#
# <details><summary>Learning-rate schedules: step, cosine, warm-up, one-cycle — why and when?</summary>
#
# A high rate makes progress, a low one settles: schedules start high and end low. Step decay divides at fixed
# epochs; cosine anneals smoothly to 0; warm-up ramps up over the first steps because early gradients, Adam's
# moment estimates and BN statistics are unreliable (Transformers, large batches); one-cycle warms up to a peak
# and anneals far below the start. The cell "Learning-rate schedules" draws all five with
# `torch.optim.lr_scheduler` and trains the same MLP with each.
#
# </details>
#
# <details><summary>Write a Dataset and a DataLoader: what do workers, collate_fn and pin_memory do?</summary>
#
# A map-style Dataset has `__len__` and `__getitem__` (build item i: read, decode, augment). The DataLoader's
# sampler draws indices (shuffle) in the main process, `num_workers` processes build items in parallel so loading
# overlaps training, `collate_fn` stacks a list of items into a batch, and `pin_memory` uses page-locked host
# memory so host→GPU copies can be asynchronous (`non_blocking=True`). Define the Dataset in a module so
# "spawn" workers can import it. See cell "Feeding the model: a Dataset and a DataLoader" (`ImageDataset`,
# `stack_batch`; identical batches with 0 and 2 workers).
#
# </details>
#
# <details><summary>Remove duplicates from a list, in Python and in NumPy.</summary>
#
# Python: `list(dict.fromkeys(items))` keeps the first occurrence in order (`set` loses the order; items must be
# hashable — use `bytes` for arrays). NumPy: `np.unique(a, axis=0, return_index=True)` finds distinct rows;
# `a[np.sort(index)]` restores the first-seen order. The cell "Duplicates" runs both on the training images and
# checks training/test overlap.
#
# </details>
#
# <details><summary>Batch, stochastic and mini-batch gradient descent: what is the difference?</summary>
#
# How many examples each step's gradient averages. Batch (full-batch) gradient descent uses all N: one exact step
# per epoch, and with a learning rate below 2/L every step lowers the loss (asserted for its 10 steps). Stochastic
# gradient descent uses one example: N cheap, noisy steps per epoch (the step-to-step change of its batch loss has
# about ten times the standard deviation of batch 32's), taken one after another, so it cannot use the hardware's
# parallelism. Mini-batch gradient descent uses B (32 to a few thousand): noise shrinking like 1/√B, N/B steps per
# epoch, B examples computed at once; after the same 10 epochs it ends well below full-batch (0.78 against 1.96 in
# the cpu run). What deep learning calls SGD is mini-batch. All three on one softmax regression in "Batch,
# stochastic and mini-batch gradient descent on softmax regression: 10 epochs each" and "Loss per epoch and per
# step: exact, noisy and in between".
# </details>
#
# ### Answers you may read that are wrong
#
# <details><summary>Wrong: “Mish is unbounded below.”</summary>
#
# Right: Mish, x·tanh(softplus(x)), is bounded below and unbounded above: it dips to a minimum of ≈ −0.309 at
# x ≈ −1.19 and returns towards 0 as x → −∞. Asserted in "Why the activation must be non-linear" (minimum above
# −0.31) and in "GELU and Mish have zero slope only at their minimum" (its position).
#
# </details>
#
# <details><summary>Wrong: “Test error = bias + variance.”</summary>
#
# Right: for squared error, expected test error = bias² + variance + irreducible noise σ². Bias enters squared, and
# no model removes the noise term. "Error = bias² + variance + noise" measures the three over 400 training sets and
# asserts that their sum matches the measured test MSE (within 10 %) for every polynomial degree.
#
# </details>
#
# <details><summary>Wrong: “At inference BatchNorm normalises with the statistics of the current batch.”</summary>
#
# Right: only in training mode. In eval mode it uses the running averages collected in training — a fixed
# per-channel affine map — so a prediction does not depend on the rest of its batch and works for a batch of one.
# Asserted in "Training vs evaluation mode": the same image in two batches gives different outputs in training
# mode, identical ones in eval mode, equal to normalising with `running_mean` and `running_var`.
#
# </details>
#
# <details><summary>Wrong: “At test time, dropout's outputs must be multiplied by the keep probability.”</summary>
#
# Right: that was the original formulation (Hinton et al., 2012; Srivastava et al., 2014). PyTorch and Keras use
# *inverted* dropout: the survivors are scaled by 1/(1 − p) during training and evaluation is the identity — asserted
# in "Regularisation: Dropout vs Dropout2d" (kept values are 2 at p = 0.5; in `eval()` the input comes back
# unchanged). Scaling again at test time would shrink every activation.
#
# </details>
#
# <details><summary>Wrong: “Weight decay and L2 regularisation are the same thing.”</summary>
#
# Right: only for plain SGD. Adam's `weight_decay` adds λw to the gradient, which Adam then divides by √v, so weights
# with large gradients are barely decayed; AdamW (Loshchilov & Hutter, 2019) decouples the decay and shrinks the
# weights directly. One step in "Weight decay is an L2 penalty only for SGD" asserts all three: SGD's decay equals
# the L2 penalty, Adam's equals the L2 penalty, AdamW's differs.
#
# </details>
#
# <details><summary>Wrong: “Xavier initialisation is made for sigmoid.”</summary>
#
# Right: Xavier (Var = 2/(fan_in + fan_out)) keeps the variance through a linear layer, so it suits zero-centred
# activations with slope 1 at 0, like tanh. Sigmoid's slope at 0 is ¼ and its outputs are centred on ½: under
# Xavier a 20-layer sigmoid MLP's backpropagated signal shrinks by more than 10⁶ while tanh's stays within 10× —
# asserted in "Initialisation and activations", with sigmoid'(0) = ¼ by autograd.
#
# </details>
