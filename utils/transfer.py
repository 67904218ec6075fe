"""Pre-train, then fine-tune; and scaling — Chapter 9 (09_contrastive_multimodal), section 5.

- `freeze` — ``requires_grad_(False)`` on a backbone: its weights get no gradient, so no optimiser moves them;
- `keep_batchnorm_statistics` — BatchNorm layers to eval mode: they normalise with the pre-trained running
  statistics and stop updating them (``requires_grad_(False)`` alone does not stop that: the statistics are
  buffers, updated by every forward pass in train mode);
- `parameter_groups` — the optimiser's groups: the head at one learning rate, the backbone at another;
- `fine_tune` — a short AdamW loop (cosine-decayed rates) over a small labelled set, with the backbone frozen (a
  linear probe), trained at its own rate, or trained like the head (from scratch, or fine-tuning all layers at one
  rate);
- `batchnorm_drift` — how far BatchNorm's running statistics moved from a reference copy;
- `scaling_run` — train one model of a scaling sweep with `fit` (cached), then its parameters, FLOPs and test
  accuracy and loss; `power_law` — the slope of log y on log x;
- `render_label_curves`, `render_scaling` — the section's two figures.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .measuring import count_flops, count_parameters
from .training import autocast, evaluate, fit, predict


def freeze(module: nn.Module) -> nn.Module:
    """``module`` with every parameter's ``requires_grad`` off (in place; returned for chaining)."""
    return module.requires_grad_(False)


def keep_batchnorm_statistics(module: nn.Module) -> int:
    """Put every BatchNorm layer inside ``module`` in eval mode (the rest keeps its mode); the number of layers."""
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for layer in layers:
        layer.eval()
    return len(layers)


def parameter_groups(model: nn.Module, backbone: nn.Module, head_lr: float, backbone_lr: float) -> list[dict]:
    """AdamW parameter groups: ``model``'s trainable parameters outside ``backbone`` at ``head_lr`` ("head"), the
    backbone's trainable ones at ``backbone_lr`` ("backbone", left out when all of them are frozen)."""
    for name, rate in (("head_lr", head_lr), ("backbone_lr", backbone_lr)):
        if not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"{name} must be a positive learning rate such as 1e-3, not {rate!r}")
    inside = {id(p) for p in backbone.parameters()}
    if not inside or not inside <= {id(p) for p in model.parameters()}:
        raise ValueError("backbone must be a submodule of model that holds parameters (e.g. model.encoder)")
    head = [p for p in model.parameters() if id(p) not in inside and p.requires_grad]
    body = [p for p in backbone.parameters() if p.requires_grad]
    if not head:
        raise ValueError("the model has no trainable parameter outside the backbone: nothing to train as the head")
    groups = [{"name": "head", "params": head, "lr": head_lr}]
    return groups + ([{"name": "backbone", "params": body, "lr": backbone_lr}] if body else [])


def fine_tune(model: nn.Module, backbone: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, steps: int,
              batch_size: int, head_lr: float, backbone_lr: float | None, batchnorm_eval: bool,
              generator: torch.Generator, weight_decay: float = 1e-4) -> list[float]:
    """Train ``model`` (``backbone`` + a head) on ``images`` (prepared floats, N×…) and class ``labels`` for
    ``steps`` AdamW steps of ``batch_size`` distinct items drawn with ``generator`` (a CPU generator), each group's
    rate decayed from its value to 0 along a cosine (the last steps settle instead of ending on a noisy update);
    under bf16 autocast on CUDA. ``backbone_lr`` None freezes the backbone (`freeze`: a linear probe of its
    features); ``batchnorm_eval`` keeps the backbone's BatchNorm in eval mode (`keep_batchnorm_statistics`). Returns
    the loss of every step; leaves the model in eval mode."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, not {steps!r}")
    if len(images) != len(labels) or not 1 <= batch_size <= len(images):
        raise ValueError(f"batch_size must lie in [1, {len(images)}] (the labelled items), and images and labels "
                         f"must match: {len(images)} images, {len(labels)} labels, batch_size {batch_size!r}")
    if backbone_lr is None:
        freeze(backbone)
    optimizer = torch.optim.AdamW(parameter_groups(model, backbone, head_lr, backbone_lr or head_lr),
                                  weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    device = next(model.parameters()).device
    images, labels = images.to(device), labels.to(device)
    model.train()
    if batchnorm_eval:
        keep_batchnorm_statistics(backbone)
    losses = []
    for _ in range(steps):
        batch = torch.randperm(len(labels), generator=generator)[:batch_size].to(device)
        with autocast(device):
            loss = F.cross_entropy(model(images[batch]).float(), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.detach())
    model.eval()
    return torch.stack(losses).tolist()


def accuracy_of(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on prepared ``images``."""
    return (predict(model, images).argmax(1) == labels.cpu()).float().mean().item()


def batchnorm_drift(module: nn.Module, reference: nn.Module) -> float:
    """The largest relative change ‖s − s₀‖ / ‖s₀‖ of a BatchNorm running mean or variance of ``module`` against
    the same buffer of ``reference`` (a copy taken before training): 0 when none moved."""
    reference_buffers = dict(reference.named_buffers())
    drifts = [((buffer.float() - reference_buffers[name].float()).norm()
               / reference_buffers[name].float().norm().clamp_min(1e-12)).item()
              for name, buffer in module.named_buffers() if name.endswith(("running_mean", "running_var"))]
    if not drifts:
        raise ValueError("the module holds no BatchNorm running statistics")
    return max(drifts)


def scaling_run(model: nn.Module, train_loader, test_loader, sample: torch.Tensor, *, epochs: int, lr: float,
                name: str, config: dict) -> dict:
    """Train ``model`` with `fit` (checkpointed as ``name``), then measure it: parameters, forward FLOPs per image
    (on ``sample``, one image), training FLOPs (forward + backward ≈ 3× forward, times the images seen), test
    accuracy and loss (`evaluate` on ``test_loader``)."""
    if len(sample) != 1:
        raise ValueError(f"sample must hold one image (1×…), not {len(sample)}")
    history = fit(model, train_loader, epochs=epochs, lr=lr, name=name, config=config, plot=False)
    forward = count_flops(model, sample.to(next(model.parameters()).device))
    images_seen = epochs * len(train_loader) * train_loader.batch_size
    result = evaluate(model, test_loader)
    return {"parameters": count_parameters(model), "flops": forward, "training flops": 3 * forward * images_seen,
            "accuracy": result["acc"], "loss": result["loss"], "history": history}


def power_law(x, y) -> tuple[float, float]:
    """The least-squares fit of log y = slope · log x + log c: ``(slope, c)``, so y ≈ c · x^slope."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2 or (x <= 0).any() or (y <= 0).any():
        raise ValueError("power_law needs two equal-length lists of at least two positive numbers")
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(np.exp(intercept))


def render_label_curves(results: dict[str, dict[str, list[float]]], sizes, title: str = ""):
    """One panel per pre-trained encoder: test accuracy against labelled-set size (log axis), a line per method,
    each point labelled with its number. ``results`` maps encoder → method → accuracies (one per size)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6), sharey=True, layout="constrained",
                             squeeze=False)
    for ax, (encoder, methods) in zip(axes[0], results.items()):
        for offset, (method, accuracies) in zip((8, -12, 8, -12, 14), methods.items()):
            if len(accuracies) != len(sizes):
                raise ValueError(f"{encoder} / {method}: {len(accuracies)} accuracies for {len(sizes)} sizes")
            line, = ax.plot(sizes, accuracies, marker="o", label=method)
            for size, value in zip(sizes, accuracies):
                ax.annotate(f"{value:.2f}", (size, value), textcoords="offset points", xytext=(0, offset),
                            ha="center", fontsize=7, color=line.get_color())
        ax.set_xscale("log")
        ax.set_xticks(list(sizes), [str(s) for s in sizes])
        ax.minorticks_off()
        ax.set(xlabel="labelled images of the new task", title=encoder)
        ax.margins(y=0.15)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("test accuracy (new task)")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def render_scaling(model_runs: dict[str, dict], data_runs: dict[int, dict], title: str = ""):
    """Three panels: test loss against parameters and against training FLOPs for the model family (log–log, each
    point labelled with its accuracy), and test loss against training-set size for one model; each with its fitted
    power law and slope in the legend."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), layout="constrained")
    panels = ((axes[0], [r["parameters"] for r in model_runs.values()], model_runs.values(), "parameters",
               list(model_runs)),
              (axes[1], [r["training flops"] for r in model_runs.values()], model_runs.values(), "training FLOPs",
               list(model_runs)),
              (axes[2], list(data_runs), data_runs.values(), "training images (same model, same steps)",
               [f"{n:,}" for n in data_runs]))
    for ax, xs, runs, label, names in panels:
        runs = list(runs)
        losses = [r["loss"] for r in runs]
        slope, scale = power_law(xs, losses)
        ax.plot(xs, losses, marker="o", linestyle="none", label="measured")
        grid = np.geomspace(min(xs), max(xs), 20)
        ax.plot(grid, scale * grid ** slope, linestyle="--", label=f"fit: slope {slope:.3f}")
        for x, run, name in zip(xs, runs, names):
            ax.annotate(f"{name}\nacc {run['accuracy']:.3f}", (x, run["loss"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
        ax.set(xscale="log", yscale="log", xlabel=label, ylabel="test loss (cross-entropy)")
        ax.margins(x=0.2, y=0.15)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
