"""Why training works: small configurable networks and the instruments to look at them while they learn.

Introduced in Chapter 1 (01c). The experiments of that chapter are built from these pieces:

- networks: `plain_mlp` (a deep stack of Linear + activation with a chosen initialisation) and `SmallCNN`
  (optional BatchNorm, global-average-pooling or flatten head);
- instruments: `layer_gradient_norms`, `activation_statistics`, `train_steps` (a per-step trace of loss
  and per-layer gradient norms), `shift_images` / `accuracy_under_shift`, `sparsity`;
- optimisers: `make_optimizer`, `optimizer_trajectory` (torch) and `hand_trajectory` (the update rules
  written out in NumPy) on the 2-D `valley` function;
- figures behind the chapter's explorers: `gradient_norm_figure`, `trajectory_figure`; and of its
  experiments: `render_batch_size_grid`, `render_learning_rates`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .runtime import model_device

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "mish": nn.Mish}
INITS = ("xavier", "kaiming", "default")
OPTIMIZERS = ("SGD", "SGD+momentum", "AdaGrad", "RMSprop", "Adam")


def _check(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; choose one of {', '.join(map(str, allowed))}")


# ----------------------------------------------------------------------------------------------- networks

def initialize(model: nn.Module, init: str = "kaiming", scale: float = 1.0) -> nn.Module:
    """Re-draw every Linear/Conv weight in place; biases to zero. Returns ``model``.

    ``xavier``: N(0, 2 / (fan_in + fan_out)) — keeps the variance for symmetric, unit-slope activations (tanh).
    ``kaiming``: N(0, 2 / fan_in) — the factor 2 makes up for ReLU zeroing half its inputs.
    ``default``: leave torch's own initialisation. ``scale`` multiplies the standard deviation.
    """
    _check("init", init, INITS)
    if init == "default":
        return model
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            if init == "xavier":
                nn.init.xavier_normal_(module.weight)
            else:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            module.weight.data.mul_(scale)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def plain_mlp(depth: int, width: int, activation: str = "relu", init: str = "kaiming", scale: float = 1.0,
              in_features: int = 784, num_classes: int = 10) -> nn.Sequential:
    """Flatten, then ``depth`` × (Linear(width) → activation), then Linear(num_classes): no norm, no shortcut."""
    _check("activation", activation, ACTIVATIONS)
    if depth < 1 or width < 1:
        raise ValueError(f"depth and width must be at least 1, got depth={depth}, width={width}")
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(depth):
        layers += [nn.Linear(in_features if i == 0 else width, width), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(width, num_classes))
    return initialize(nn.Sequential(*layers), init, scale)


class SmallCNN(nn.Module):
    """Three stages of ``convs`` 3×3 convolutions (28 → 14 → 7 pixels; width, 2·width, 4·width channels).

    ``batch_norm`` puts a BatchNorm2d after every convolution; ``head`` is ``"gap"`` (global average pooling
    then one Linear: position is averaged away) or ``"flatten"`` (one Linear weight per position and channel).
    """

    def __init__(self, width: int = 16, convs: int = 1, batch_norm: bool = False, head: str = "gap",
                 num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        _check("head", head, ("gap", "flatten"))
        layers, channels = [], in_channels
        for stage in range(3):
            for _ in range(convs):
                out = width * 2 ** stage
                layers += [nn.Conv2d(channels, out, 3, padding=1, bias=not batch_norm)]
                layers += [nn.BatchNorm2d(out)] if batch_norm else []
                layers += [nn.ReLU()]
                channels = out
            if stage < 2:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        pool = [nn.AdaptiveAvgPool2d(1), nn.Flatten()] if head == "gap" else [nn.Flatten()]
        self.head = nn.Sequential(*pool, nn.Linear(channels * (1 if head == "gap" else 49), num_classes))

    def forward(self, x):
        return self.head(self.features(x))


# ---------------------------------------------------------------------------------------------- instruments

def weight_layers(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """``(name, weight)`` of every Linear/Conv2d in order, input side first."""
    return [(name, module.weight) for name, module in model.named_modules()
            if isinstance(module, (nn.Linear, nn.Conv2d))]


def layer_gradient_norms(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gradient norms of one batch's cross-entropy, layer by layer (input side first); ``.grad`` is untouched.

    Returns ``{"weight": L, "signal": A}``: ‖∂loss/∂W‖ for each of the L Linear/Conv2d weights, and the
    backpropagated signal ‖∂loss/∂a‖ (per sample, root-mean-square over the batch) at the output of each of
    the A activation modules — the quantity that vanishes or explodes as it travels back through depth.
    """
    dev = model_device(model)
    inputs, labels = inputs.to(dev), labels.to(dev)
    weights = [w for _, w in weight_layers(model)]
    outputs, hooks = [], [module.register_forward_hook(lambda module, args, output: outputs.append(output))
                          for module in model.modules() if isinstance(module, tuple(ACTIVATIONS.values()))]
    try:
        loss = F.cross_entropy(model(inputs), labels)
    finally:
        for handle in hooks:
            handle.remove()
    grads = torch.autograd.grad(loss, weights + outputs)
    signal = [g.flatten(1).norm(dim=1).pow(2).mean().sqrt() * len(inputs) for g in grads[len(weights):]]
    return {"weight": torch.stack([g.norm() for g in grads[:len(weights)]]).detach(),
            "signal": torch.stack(signal).detach() if signal else torch.empty(0)}


def activation_statistics(model: nn.Module, inputs: torch.Tensor) -> list[dict]:
    """For every activation module: its output's mean and std, and two ways it can block gradients.

    ``flat``: fraction of (sample, unit) inputs where the activation's slope is below 5 % of its peak slope
    (saturated sigmoid/tanh, the negative side of ReLU). ``dead``: fraction of units whose output is exactly
    zero for every sample of the batch — a dead ReLU passes no gradient for any input, so it never recovers.
    """
    records, hooks = [], []

    def hook(module, args, output):
        pre = args[0].detach().requires_grad_(True)
        with torch.enable_grad():
            slope, = torch.autograd.grad(module.forward(pre).sum(), pre)  # forward(): no hook recursion
        peak = {"sigmoid": 0.25}.get(type(module).__name__.lower(), 1.0)
        units = output.detach().flatten(1)
        records.append({"mean": units.mean().item(), "std": units.std().item(),
                        "flat": (slope.abs() < 0.05 * peak).float().mean().item(),
                        "dead": (units == 0).all(0).float().mean().item()})

    for module in model.modules():
        if isinstance(module, tuple(ACTIVATIONS.values())):
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(inputs.to(model_device(model)))
    finally:
        for handle in hooks:
            handle.remove()
    return records


@dataclass
class Trace:
    """What `train_steps` saw: per-step ``loss`` and ``grad_norms`` (steps × layers), wall-clock ``seconds``."""

    loss: list[float] = field(default_factory=list)
    grad_norms: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    layer_names: list[str] = field(default_factory=list)
    seconds: float = 0.0
    diverged: bool = False

    def smoothed_loss(self, window: int = 10) -> np.ndarray:
        """Running mean of the loss over ``window`` steps (shorter at the start)."""
        loss = np.asarray(self.loss, dtype=float)
        cumulative = np.cumsum(np.insert(loss, 0, 0.0))
        counts = np.minimum(np.arange(1, len(loss) + 1), window)
        return (cumulative[1:] - cumulative[np.arange(1, len(loss) + 1) - counts]) / counts


def train_steps(model: nn.Module, loader, optimizer: torch.optim.Optimizer, steps: int) -> Trace:
    """The bare training loop — forward, loss, backward, step — for ``steps`` batches, cycling ``loader``.

    Records every step's loss and the gradient norm of each weight layer (kept on the device and read once
    at the end, so a GPU is never stalled). Stops early, flagging ``diverged``, if the loss is not finite.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    names, weights = zip(*weight_layers(model))
    losses, norms = [], []
    model.train()
    start = time.perf_counter()
    while len(losses) < steps:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
            norms.append(torch.stack([w.grad.norm() for w in weights]))
            if len(losses) == steps:
                break
        if not torch.isfinite(losses[-1]):
            break
    loss = torch.stack(losses).float().cpu()  # waits for the device, so the time below is honest on a GPU
    seconds = time.perf_counter() - start
    finite = torch.isfinite(loss)
    keep = len(loss) if finite.all() else int(finite.float().argmin())
    return Trace(loss=loss[:keep].tolist(), grad_norms=torch.stack(norms)[:keep].float().cpu(),
                 layer_names=list(names), seconds=seconds, diverged=not bool(finite.all()))


def shift_images(images: torch.Tensor, dx: int, dy: int = 0) -> torch.Tensor:
    """Translate ``B×C×H×W`` images by ``dx`` pixels right and ``dy`` down; uncovered pixels become 0."""
    h, w = images.shape[-2:]
    if abs(dx) >= w or abs(dy) >= h:
        raise ValueError(f"shift ({dx}, {dy}) moves a {h}×{w} image out of the frame; use |shift| < {min(h, w)}")
    padded = F.pad(images, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top:top + h, left:left + w]


@torch.no_grad()
def accuracy_under_shift(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, shifts,
                         prepare=None) -> np.ndarray:
    """Accuracy of ``model`` on ``images`` moved right by each of ``shifts`` pixels (uint8 in, background 0).

    ``prepare`` turns the shifted uint8 images into model inputs (default: `utils.data.standardize`).
    """
    from .data import standardize

    prepare = prepare or standardize
    model.eval()
    dev = next(model.parameters()).device
    labels = labels.to(dev)
    return np.array([(model(prepare(shift_images(images, s)).to(dev)).argmax(1) == labels).float().mean().item()
                     for s in shifts])


def penalized_loss(kind: str, strength: float):
    """A `fit` loss: cross-entropy + ``strength`` × (Σ|w| for ``"l1"``, Σw² for ``"l2"``) over weight layers."""
    _check("kind", kind, ("l1", "l2"))

    def loss_fn(model, batch):
        x, y = batch
        weights = [w for _, w in weight_layers(model)]
        penalty = sum(w.abs().sum() if kind == "l1" else w.pow(2).sum() for w in weights)
        return F.cross_entropy(model(x), y) + strength * penalty

    loss_fn.__name__ = f"{kind}_penalty_{strength:g}"  # part of fit's checkpoint key
    return loss_fn


def sparsity(model: nn.Module, threshold: float = 1e-3) -> float:
    """Fraction of the weights of Linear/Conv2d layers whose magnitude is below ``threshold``."""
    weights = torch.cat([w.detach().flatten() for _, w in weight_layers(model)])
    return (weights.abs() < threshold).float().mean().item()


# ---------------------------------------------------------------------------------------------- optimisers

def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """One of `OPTIMIZERS` from torch.optim with textbook settings (momentum 0.9; RMSprop α 0.9)."""
    _check("optimizer", name, OPTIMIZERS)
    params = list(params)
    if name == "SGD":
        return torch.optim.SGD(params, lr=lr)
    if name == "SGD+momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "AdaGrad":
        return torch.optim.Adagrad(params, lr=lr)
    if name == "RMSprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9)
    return torch.optim.Adam(params, lr=lr)


def valley(xy):
    """f(x, y) = 0.1·x² + 2·y²: a long, narrow bowl (curvatures 0.2 and 4) with its minimum at (0, 0).

    Works on a torch tensor or NumPy array whose last axis holds (x, y).
    """
    return 0.1 * xy[..., 0] ** 2 + 2 * xy[..., 1] ** 2


def valley_gradient(xy: np.ndarray) -> np.ndarray:
    """∇f of `valley`: (0.2·x, 4·y)."""
    return np.stack([0.2 * xy[..., 0], 4 * xy[..., 1]], axis=-1)


START = (-4.0, 1.0)


def optimizer_trajectory(name: str, lr: float, steps: int, start=START) -> np.ndarray:
    """The ``(steps + 1)×2`` path of torch.optim's ``name`` minimising `valley` from ``start``."""
    point = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer(name, [point], lr)
    path = [point.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        valley(point).backward()
        optimizer.step()
        path.append(point.detach().clone())
    return torch.stack(path).numpy()


def hand_trajectory(name: str, lr: float, steps: int, start=START, eps: float = 1e-8) -> np.ndarray:
    """`optimizer_trajectory` with each update rule written out (v: velocity, s: squared-gradient memory).

    SGD: θ −= lr·g.  Momentum: v = 0.9·v + g; θ −= lr·v (a heavy ball: consistent directions build speed).
    AdaGrad: s += g²; θ −= lr·g/(√s + ε) (per-coordinate steps shrink with all past gradient).
    RMSprop: s = 0.9·s + 0.1·g²; θ −= lr·g/(√s + ε) (the same, but forgets: a moving average).
    Adam: m = 0.9·m + 0.1·g; s = 0.999·s + 0.001·g²; bias-correct both; θ −= lr·m̂/(√ŝ + ε).
    """
    _check("optimizer", name, OPTIMIZERS)
    theta = np.array(start, dtype=float)
    velocity, memory = np.zeros(2), np.zeros(2)
    path = [theta.copy()]
    for t in range(1, steps + 1):
        g = valley_gradient(theta)
        if name == "SGD":
            theta = theta - lr * g
        elif name == "SGD+momentum":
            velocity = 0.9 * velocity + g
            theta = theta - lr * velocity
        elif name == "AdaGrad":
            memory = memory + g ** 2
            theta = theta - lr * g / (np.sqrt(memory) + 1e-10)
        elif name == "RMSprop":
            memory = 0.9 * memory + 0.1 * g ** 2
            theta = theta - lr * g / (np.sqrt(memory) + eps)
        else:
            velocity = 0.9 * velocity + 0.1 * g
            memory = 0.999 * memory + 0.001 * g ** 2
            m_hat, s_hat = velocity / (1 - 0.9 ** t), memory / (1 - 0.999 ** t)
            theta = theta - lr * m_hat / (np.sqrt(s_hat) + eps)
        path.append(theta.copy())
    return np.stack(path)


# ------------------------------------------------------------------------------------------------- figures

def gradient_norm_figure(activation: str = "relu", init: str = "kaiming", depth: int = 20, scale: float = 1.0,
                         width: int = 256, batch: int = 256, seed: int = 0):
    """Per-layer gradient norms (log scale) and activation statistics of a fresh `plain_mlp` on Fashion-MNIST.

    The network sees ``batch`` standardised training images; the figure's title gives the ratio of the first
    layer's gradient norm to the last one's (≪ 1 vanishing, ≫ 1 exploding).
    """
    from .data import fashion_mnist, standardize

    if not 1 <= depth <= 100:
        raise ValueError(f"depth={depth} is out of range: choose 1 to 100 layers")
    images, labels = fashion_mnist("train")
    torch.manual_seed(seed)
    model = plain_mlp(depth, width, activation, init, scale)
    x, y = standardize(images[:batch]), labels[:batch]
    norms = layer_gradient_norms(model, x, y)
    weight, signal = norms["weight"].numpy(), norms["signal"].numpy()
    stats = activation_statistics(model, x)
    fig, (ax_signal, ax_weight, ax_stat) = plt.subplots(1, 3, figsize=(13, 3.4))
    ax_signal.semilogy(range(1, len(signal) + 1), signal, marker="o")
    ax_signal.set(xlabel="activation layer (1 = input side)", ylabel="‖∂L/∂a‖ per image", ylim=(1e-14, 1e8),
                  title=f"backprop signal: layer 1 / layer {len(signal)} = {signal[0] / signal[-1]:.1e}")
    ax_weight.semilogy(range(1, len(weight) + 1), weight, marker="o", color="C1")
    ax_weight.set(xlabel="weight layer (1 = input side)", ylabel="‖∂L/∂W‖", ylim=(1e-14, 1e8),
                  title=f"weight gradients: median {np.median(weight):.1e}")
    layers = range(1, len(stats) + 1)
    ax_stat.plot(layers, [min(s["std"], 2.0) for s in stats], marker="o", label="output std (clipped at 2)")
    ax_stat.plot(layers, [s["flat"] for s in stats], marker="s", label="fraction flat (slope < 5 %)")
    ax_stat.plot(layers, [s["dead"] for s in stats], marker="^", label="fraction of dead units")
    ax_stat.set(xlabel="activation layer", ylabel="std or fraction (see legend)", ylim=(0, 2.05), title="activations")
    ax_stat.legend(fontsize=8)
    fig.suptitle(f"{depth}-layer plain MLP, {activation} + {init} init ×{scale:g}, at initialisation")
    fig.tight_layout()
    return fig


def trajectory_figure(lr_exponent: float = -1.0, steps: int = 60):
    """Every optimiser's path on `valley` over its contour lines, at learning rate 10**lr_exponent."""
    if not -3 <= lr_exponent <= 0.5:
        raise ValueError(f"lr_exponent={lr_exponent} is out of range: choose from -3 to 0.5 (lr 0.001 to 3)")
    if not 1 <= steps <= 500:
        raise ValueError(f"steps={steps} is out of range: choose 1 to 500")
    lr = 10.0 ** lr_exponent
    grid = np.stack(np.meshgrid(np.linspace(-4.5, 1.5, 200), np.linspace(-1.5, 1.5, 120)), axis=-1)
    fig, ax = plt.subplots(figsize=(8.5, 4))
    ax.contour(grid[..., 0], grid[..., 1], valley(grid), levels=np.geomspace(0.01, 5, 12), cmap="Greys")
    for name in OPTIMIZERS:
        path = optimizer_trajectory(name, lr, steps)
        shown = np.clip(path, [-4.5, -1.5], [1.5, 1.5])  # a diverging path stays on the canvas
        ax.plot(shown[:, 0], shown[:, 1], marker=".", markersize=3, lw=1, label=f"{name}: f = {valley(path[-1]):.2g}")
    ax.plot(0, 0, "k*", markersize=12)
    ax.set(xlim=(-4.5, 1.5), ylim=(-1.5, 1.5), xlabel="x (along the valley)", ylabel="y (across it)",
           title=f"lr = {lr:.3g}, {steps} steps on f = 0.1x² + 2y² (grey: contour lines of f, ★ its minimum)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def render_batch_size_grid(test_loss: np.ndarray, seconds: np.ndarray, batch_sizes, learning_rates, epochs: int,
                           device_name: str):
    """The batch-size × learning-rate grid: test loss per cell (NaN: diverged), and seconds per epoch per batch size.

    ``test_loss`` and ``seconds`` are B×L arrays, row i for ``batch_sizes[i]``, column j for ``learning_rates[j]``;
    the bars show each row's mean seconds, measured on ``device_name`` over ``epochs`` epochs.
    """
    test_loss, seconds = np.asarray(test_loss, dtype=float), np.asarray(seconds, dtype=float)
    shape = (len(batch_sizes), len(learning_rates))
    if test_loss.shape != shape or seconds.shape != shape:
        raise ValueError(f"test_loss and seconds must be batch sizes × learning rates = {shape}, got "
                         f"{test_loss.shape} and {seconds.shape}")
    fig, (ax_loss, ax_time) = plt.subplots(1, 2, figsize=(11, 3.4))
    image = ax_loss.imshow(test_loss, cmap="viridis_r")
    for (i, j), value in np.ndenumerate(test_loss):
        ax_loss.text(j, i, "diverged" if np.isnan(value) else f"{value:.2f}", ha="center", va="center",
                     bbox={"facecolor": "white", "alpha": 0.8})
    ax_loss.set(xticks=range(shape[1]), xticklabels=learning_rates, yticks=range(shape[0]), yticklabels=batch_sizes,
                xlabel="learning rate", ylabel="batch size", title=f"test loss after {epochs} epochs")
    fig.colorbar(image, ax=ax_loss, label="test loss (blank: diverged)")
    ax_time.bar([str(b) for b in batch_sizes], seconds.mean(1))
    ax_time.set(xlabel="batch size", ylabel="seconds per epoch", title=f"speed on {device_name}")
    fig.tight_layout()
    return fig


def render_learning_rates(curves: dict[str, list[float]], title: str):
    """The learning rate at every training step, one line per schedule (``curves``: name → one value per step)."""
    if not curves or any(len(curve) == 0 for curve in curves.values()):
        raise ValueError("give at least one schedule, each with one learning rate per step, e.g. {'constant': [0.1]}")
    fig, ax = plt.subplots(figsize=(9, 3), layout="constrained")
    for name, curve in curves.items():
        ax.plot(curve, label=name)
    ax.set(xlabel="training step", ylabel="learning rate", title=title)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside the curves, not over them
    return fig
