"""One training loop for the whole course: `fit`, `evaluate`, `History`.

Introduced in Chapter 1 (01b) and used by every chapter after it.

`fit` trains with AdamW (or SGD with momentum) under a one-cycle learning-rate schedule, shows one
`tqdm.auto` progress bar over the epochs (a widget in JupyterLab, text elsewhere) with the latest metrics,
a live loss/metric plot, and one summary line at the end; it keeps the best weights. With a ``name`` it
saves a checkpoint under ``data/checkpoints/`` (atomically, with a checksum: `utils.checkpoints`), keyed
by the model's structure, every setting of every submodule and the training config: rerunning the cell
reuses an up-to-date checkpoint instead of retraining, changing anything retrains, and a damaged file is
reported and retrained; ``$COURSE_RETRAIN=1`` (set by `make verify`) retrains everything. Ctrl-C loads the
best weights so far into the model, saves them beside the checkpoint as ``<name>-<key>.incomplete.pt`` (never
reused as a finished run, and never over a finished one), and re-raises, so one Ctrl-C stops the whole cell.
A run whose loss or weights turn NaN or inf, or whose loss climbs far above where it started, stops at the end
of that epoch, keeps its best earlier epoch the same way, and raises `TrainingDiverged` naming the likely cause.
On CUDA it uses bf16 autocast and channels_last, and ``compile=True`` wraps the model in `torch.compile`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import inspect
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import plotting
from .checkpoints import atomic_save, verified_load
from .data import DeviceLoader, data_dir
from .runtime import avoid_onednn_nhwc_crash, channels_last, model_device, profile, retrain_requested

# An epoch whose mean training loss exceeds this many times the loss of the very first batch (measured before
# any update) has diverged: a working run's loss falls from its start, and one-batch noise is far below 10×.
# A loss that starts at 0 or below (some penalties, log-likelihoods) is only checked for NaN and inf.
RISE_LIMIT = 10


class TrainingDiverged(RuntimeError):
    """`fit` stopped because the loss or the weights went non-finite or the loss climbed far above its start;
    ``history`` holds the epochs that finished before it."""

    def __init__(self, message: str, history: "History"):
        super().__init__(message)
        self.history = history


@dataclass
class History:
    """Per-epoch records (``rows``: dicts of epoch, metrics and seconds) plus training totals."""

    rows: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    images_seen: int = 0
    interrupted: bool = False
    from_checkpoint: bool = False

    def __getitem__(self, key: str) -> list:
        return [row[key] for row in self.rows if key in row]

    def last(self, key: str):
        return self[key][-1]

    def best(self, key: str):
        values = self[key]
        return min(values) if "loss" in key else max(values)

    @property
    def images_per_second(self) -> float:
        return self.images_seen / max(self.train_seconds, 1e-9)

    def assert_loss_went_down(self, what: str = "the model", key: str = "train_loss") -> None:
        """Fail, with both values in the message, unless ``key`` ended below where its first epoch left it; a
        history reloaded from a checkpoint passes (it was checked when that run trained)."""
        if self.from_checkpoint:
            return
        values = self[key]
        assert len(values) >= 2 and values[-1] < values[0], (
            f"training {what} should lower {key}: {len(values)} epoch(s), first {values[0]:.4f}, "
            f"last {values[-1]:.4f}" if values else f"training {what} recorded no {key}")

    def figure(self, title: str = ""):
        """Losses on the left and, if any were measured, the other metrics on the right, against whole epochs;
        ``title`` (what was trained, on which profile) goes above both."""
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        keys = [k for k in self.rows[0] if k not in ("epoch", "seconds", "lr")] if self.rows else []
        has_metrics = any("loss" not in k for k in keys)
        fig, axes = plt.subplots(1, 1 + has_metrics, figsize=(9 if has_metrics else 5, 3.2), layout="constrained",
                                 squeeze=False)
        ax_loss, ax_metric = axes[0, 0], axes[0, -1]
        for key in keys:
            ax = ax_loss if "loss" in key else ax_metric
            ax.plot(self["epoch"], self[key], marker="o", label=key)
        for ax, label in ((ax_loss, "loss"), (ax_metric, "metric"))[:1 + has_metrics]:
            ax.set(xlabel="epoch", ylabel=label)
            if len(self.rows) <= 12:  # whole epochs only: no epoch 1.5
                ax.set_xticks(self["epoch"])
            else:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if ax.lines:
                ax.legend()
        if title:
            fig.suptitle(title)
        return fig


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the label."""
    return (logits.argmax(1) == labels).float().mean().item()


def _check_labels(logits, labels, where: str, *, values: bool = False) -> None:
    """Refuse labels that cross-entropy cannot read as class indices for ``logits``, with the fix. Only their
    dtype and shape are read, so no step waits on the GPU; ``values=True`` also checks their range (one sync)."""
    if not torch.is_tensor(logits) or logits.ndim < 2:
        given = f"shape {tuple(logits.shape)}" if torch.is_tensor(logits) else type(logits).__name__
        raise ValueError(f"{where}: the model returned {given}; cross-entropy needs N×classes logits "
                         "(N×classes×H×W for one label per pixel): pass a loss_fn that fits the model's output")
    if not torch.is_tensor(labels):
        raise TypeError(f"{where}: labels must be a tensor of class indices, not {type(labels).__name__}")
    if labels.dtype != torch.int64:
        extra = (" if they hold whole class numbers (soft or regression targets need a loss_fn of your own)"
                 if labels.is_floating_point() else "")
        raise TypeError(f"{where}: the labels are {labels.dtype}; cross-entropy needs int64 class indices: "
                        f"pass labels.long(){extra}")
    wanted = (logits.shape[0], *logits.shape[2:])
    if tuple(labels.shape) != wanted:
        extra = (": drop the extra axis with labels.squeeze(1)"
                 if labels.ndim == len(wanted) + 1 and labels.shape[1] == 1 else "")
        raise ValueError(f"{where}: labels of shape {tuple(labels.shape)} for logits of shape {tuple(logits.shape)}; "
                         f"cross-entropy needs one class index per {'image' if logits.ndim == 2 else 'pixel'}, "
                         f"shape {wanted}{extra}")
    if values:
        low, high = torch.stack([labels.min(), labels.max()]).tolist()
        classes = logits.shape[1]
        if low < 0 or high >= classes:
            raise ValueError(f"{where}: the labels run from {low} to {high}, but the model has {classes} outputs, "
                             f"so they must lie in [0, {classes - 1}]: check the labels (counted from 1? subtract "
                             f"1) or give the model's last layer {high + 1} outputs")


def classification_loss(model, batch, label_smoothing: float = 0.0):
    """Cross-entropy of ``model(x)`` against ``y`` — the default loss of `fit`."""
    x, y = batch
    logits = model(x)
    _check_labels(logits, y, "classification_loss")
    return F.cross_entropy(logits, y, label_smoothing=label_smoothing)


def autocast(dev: torch.device):
    """bf16 autocast on a CUDA GPU with native bf16 (Ampere and later: tensor cores, no loss scaling needed);
    float32 on older GPUs (T4, V100: emulated bf16 would be slower than float32) and elsewhere."""
    native_bf16 = dev.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.autocast("cuda", dtype=torch.bfloat16) if native_bf16 else torch.autocast(dev.type, enabled=False)


def _to(batch, dev):
    return tuple(t.to(dev, non_blocking=True) if torch.is_tensor(t) else t for t in batch)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Iterable) -> dict:
    """Mean cross-entropy and accuracy of a classifier over ``loader``."""
    model.eval()
    dev = model_device(model)
    total_loss, correct, count = torch.zeros((), device=dev), torch.zeros((), device=dev), 0
    for x, y in loader:
        x, y = _to((x, y), dev)
        with autocast(dev):
            logits = model(x).float()
        _check_labels(logits, y, "evaluate")
        total_loss += F.cross_entropy(logits, y, reduction="sum")  # summed on the device: one sync at the end
        correct += (logits.argmax(1) == y).sum()
        count += len(y)
    if count == 0:
        raise ValueError("evaluate: the loader yielded no images; give it data (or drop_last=False)")
    return {"loss": total_loss.item() / count, "acc": correct.item() / count}


@torch.no_grad()
def predict(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """``model`` applied to ``inputs`` in batches, in eval mode; float32 outputs on the CPU."""
    if not torch.is_tensor(inputs) or inputs.ndim == 0 or len(inputs) == 0:
        raise ValueError("predict needs a non-empty batch tensor of inputs (N×…), "
                         f"got {tuple(inputs.shape) if torch.is_tensor(inputs) else type(inputs).__name__}")
    if inputs.dtype == torch.uint8:
        raise TypeError("predict: the inputs are uint8 images (0–255) but the model computes in float: pass them "
                        "prepared as in training, utils.data.standardize(images) for Fashion-MNIST (or "
                        "images.float() / 255 for a model trained on [0, 1] images)")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
    model.eval()
    dev = next(model.parameters()).device
    outputs = []
    for chunk in inputs.split(batch_size):
        with autocast(dev):
            outputs.append(model(chunk.to(dev)).float().cpu())
    return torch.cat(outputs)


_NOT_A_SETTING = object()  # what `_setting` returns for a tensor, a submodule or any other non-plain value


def _setting(value):
    """``value`` as JSON-able plain data if it is a setting (None, a number, a string, a tuple, list or dict of
    them, a function or a class), else `_NOT_A_SETTING`: tensors and submodules are covered elsewhere."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        items = [_setting(item) for item in value]
        return _NOT_A_SETTING if any(item is _NOT_A_SETTING for item in items) else items
    if isinstance(value, dict):
        items = {str(key): _setting(item) for key, item in value.items()}  # json.dumps sorts them
        return _NOT_A_SETTING if any(item is _NOT_A_SETTING for item in items.values()) else items
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
        return f"{value.__module__}.{value.__qualname__}"
    return _NOT_A_SETTING


def _plain_settings(values: dict) -> dict:
    """The entries of ``values`` that are settings, as plain data."""
    settings = {key: _setting(value) for key, value in values.items()}
    return {key: value for key, value in settings.items() if value is not _NOT_A_SETTING}


def model_settings(model: torch.nn.Module) -> dict:
    """Everything about ``model`` that decides what it computes, except its weights: for each submodule, its
    class and plain attributes (``ViT.pool``, ``Seq2SeqTransformer.max_len``, a dict of options: settings that
    ``repr`` does not show), and the name, shape and dtype of every parameter and buffer. Attributes that are
    None are left out: that is how modules mark "nothing cached yet"."""
    modules = {}
    for name, module in model.named_modules():
        attributes = _plain_settings({key: value for key, value in vars(module).items()
                                      if not key.startswith("_") and key != "training" and value is not None})
        modules[name or "(model)"] = [type(module).__qualname__, attributes]
    tensors = {f"{kind} {name}": [list(tensor.shape), str(tensor.dtype)]
               for kind, named in (("parameter", model.named_parameters()), ("buffer", model.named_buffers()))
               for name, tensor in named}
    return {"modules": modules, "tensors": tensors}


def _bytecode(code) -> str:
    """A hash of ``code``'s instructions, constants and names (nested functions' included): what a function
    computes when its source is not kept. The instructions alone would not tell ``x * 1`` from ``x * 2``."""
    constants = [_bytecode(c) if inspect.iscode(c) else repr(c) for c in code.co_consts]
    return hashlib.sha1(code.co_code + repr((constants, code.co_names)).encode()).hexdigest()


def _code_key(fn: Callable) -> dict:
    """What ``fn`` (a loss or evaluate function) computes, as plain data for the checkpoint key: its name, its
    source code (so an edited body retrains even under the same name), the immutable settings its closure holds
    (``simclr_loss(0.1)``'s temperature) or, for a callable object, its immutable attributes, and for a
    `functools.partial` the function and its arguments. Lists and dicts in a closure or object are left out: they
    are mostly state (a counter, a cache) that changes while it trains, and would make the key change with it.
    Module-level constants the function reads are not seen either: put them in ``fit``'s ``config``."""
    if isinstance(fn, functools.partial):
        return {"partial": _code_key(fn.func), "args": _plain_settings(dict(enumerate(fn.args))),
                "keywords": _plain_settings(fn.keywords)}
    routine = inspect.isroutine(fn)
    code = fn if routine else type(fn)
    try:
        source = inspect.getsource(code)
    except (OSError, TypeError):  # built in, or made by exec or in a deleted file: its bytecode instead
        compiled = getattr(code, "__code__", None)
        source = _bytecode(compiled) if compiled is not None else "no source"
    if routine:
        names = getattr(getattr(fn, "__code__", None), "co_freevars", ())
        values = {}
        for name, cell in zip(names, getattr(fn, "__closure__", None) or ()):
            try:
                values[name] = cell.cell_contents
            except ValueError:  # a closure variable not yet assigned
                continue
    else:
        values = vars(fn) if hasattr(fn, "__dict__") else {}
    state = _plain_settings({key: value for key, value in values.items() if not isinstance(value, (list, dict))})
    return {"name": getattr(fn, "__name__", type(fn).__qualname__), "qualname": getattr(code, "__qualname__", ""),
            "source": source, "state": state}


def _state_mismatch(model: torch.nn.Module, state: dict) -> str | None:
    """The first difference between ``model``'s tensors and a saved state dict, in words; None when they fit."""
    own = model.state_dict()
    for key in sorted(own.keys() | state.keys()):
        if key not in state or key not in own:
            return f"{key} is {'missing from the file' if key not in state else 'not in this model'}"
        if own[key].shape != state[key].shape:
            return f"{key} has shape {tuple(state[key].shape)} in the file, {tuple(own[key].shape)} in this model"
    return None


def checkpoint_path(name: str, model: torch.nn.Module, config: dict) -> Path:
    """``data/checkpoints/<profile>/<name>-<key>.pt``; the key hashes the model's structure, its `model_settings`
    and the training ``config`` (`fit` puts the loss and evaluate functions' code in it), so changing any of them
    names another file (and so retrains). Only finished runs are saved there; `fit` keeps a stopped one beside it
    as ``<name>-<key>.incomplete.pt``."""
    if not isinstance(name, str) or not name or any(c in name for c in "/\\"):
        raise ValueError(f"name must be a short label such as 'resnet' (no slashes), not {name!r}")
    text = json.dumps({"model": repr(model), "settings": model_settings(model), "config": config},
                      sort_keys=True, default=str)
    key = hashlib.sha1(text.encode()).hexdigest()[:12]
    return data_dir() / "checkpoints" / profile() / f"{name}-{key}.pt"


def _incomplete_path(path: Path) -> Path:
    """Where `fit` keeps an interrupted or diverged run of the checkpoint ``path``: ``<name>-<key>.incomplete.pt``
    beside it, so a stopped retrain never overwrites a finished model."""
    return path.with_suffix(".incomplete.pt")


def _shown(path: Path) -> str:
    """``path`` as the learner finds it: relative to the folder holding ``data/`` when it is inside."""
    try:
        return str(path.relative_to(data_dir().parent))
    except ValueError:
        return str(path)


class _LivePlot:
    """Redraws the history figure in place after each epoch, inside a notebook; silent elsewhere."""

    def __init__(self, enabled: bool):
        self.handle = None
        if enabled and plotting.in_notebook():
            from IPython.display import display

            self.handle = display(display_id=True)

    def update(self, history: History):
        if self.handle is not None:
            import matplotlib.pyplot as plt

            fig = history.figure()
            self.handle.update(fig)
            plt.close(fig)


def _batch_count(loader, name: str) -> int:
    try:
        count = len(loader)
    except TypeError:
        raise TypeError(f"{name} must have a length (a DeviceLoader, a DataLoader or a list of batches), "
                        f"not {type(loader).__name__}") from None
    if count == 0:
        raise ValueError(f"{name} yields no batches: it holds fewer images than one batch with drop_last=True, "
                         "or none at all; give it data or a smaller batch size")
    return count


def _last_batch_size(loader) -> int | None:
    """How many items ``loader``'s last batch holds where its type tells (a `DeviceLoader`, a `DataLoader` over a
    sized dataset, a list of batches), else None."""
    if isinstance(loader, (list, tuple)):
        last = loader[-1]
        inputs = last[0] if isinstance(last, (tuple, list)) and last else last
        return len(inputs) if torch.is_tensor(inputs) and inputs.ndim else None
    items = loader.labels if isinstance(loader, DeviceLoader) else getattr(loader, "dataset", None)
    batch_size = getattr(loader, "batch_size", None)
    if getattr(loader, "drop_last", False) or not isinstance(batch_size, int) or not hasattr(items, "__len__"):
        return None
    return len(items) % batch_size or batch_size


def _weights_finite(model: torch.nn.Module) -> torch.Tensor:
    """One boolean on the device: every parameter and floating-point buffer of ``model`` is finite (BatchNorm's
    running statistics included: NaN there spoils every prediction). Reading it is one sync."""
    return torch.stack([torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point()]).all()


def _check_fit_arguments(model, train_loader, val_loader, epochs, lr, optimizer, weight_decay, monitor, config,
                         loss_fn, evaluate_fn):
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model has no trainable parameters: nothing to fit (are they all frozen?)")
    if not _weights_finite(model).item():
        raise ValueError("model's weights hold NaN or inf before training (a diverged fit leaves them so): "
                         "build the model again, then fit it with a lower lr")
    for key, fn in (("loss_fn", loss_fn), ("evaluate_fn", evaluate_fn)):
        if not callable(fn):
            raise TypeError(f"{key} must be a function, not {type(fn).__name__}")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, not {epochs!r}")
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive number such as 1e-3, not {lr!r}")
    if not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
        raise ValueError(f"weight_decay must be a number ≥ 0, not {weight_decay!r}")
    if optimizer not in ("adamw", "sgd"):
        raise ValueError(f"optimizer must be 'adamw' or 'sgd', not {optimizer!r}")
    if config is not None and not isinstance(config, dict):
        raise TypeError(f"config must be a dict of the settings that define this run, not {type(config).__name__}")
    _batch_count(train_loader, "train_loader")
    if (any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
            and _last_batch_size(train_loader) == 1):
        raise ValueError("train_loader's last batch holds a single image, and BatchNorm cannot compute batch "
                         "statistics from one: pass drop_last=True to the loader (or pick a batch size that "
                         "leaves no single image over)")
    if val_loader is not None:
        _batch_count(val_loader, "val_loader")
    if monitor is not None and monitor != "train_loss" and not str(monitor).startswith("val_"):
        raise ValueError(f"monitor must be 'train_loss' or 'val_<key>' for a key of evaluate_fn's result, "
                         f"not {monitor!r}")
    if monitor is not None and monitor.startswith("val_") and val_loader is None:
        raise ValueError(f"monitor={monitor!r} needs a val_loader to measure it: pass val_loader=… "
                         "or monitor='train_loss'")


def _check_first_batch(model: torch.nn.Module, batch, loss_fn, dev: torch.device) -> None:
    """Mistakes in the data that would fail deep inside PyTorch, or train on garbage, refused with the fix before
    the first step. Only the first batch is looked at, so no later step waits on the GPU."""
    if not isinstance(batch, (tuple, list)) or not batch or not torch.is_tensor(batch[0]):
        raise TypeError("train_loader must yield tuples of tensors such as (images, labels), "
                        f"got a {type(batch).__name__}")
    inputs = batch[0]
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is not None and inputs.ndim == 3:
        raise ValueError(f"the batches' inputs have shape {tuple(inputs.shape)}, B×H×W with no channel axis, but "
                         f"the model's first Conv2d takes B×{conv.in_channels}×H×W (it would read the "
                         f"{len(inputs)} images as channels of one image): add the axis with images.unsqueeze(1)")
    if getattr(loss_fn, "func", loss_fn) is classification_loss:
        if len(batch) < 2:
            raise ValueError("the default loss (cross-entropy) needs (images, labels) batches; "
                             f"train_loader yields {len(batch)} tensor(s): add the labels or pass a loss_fn")
        model.eval()  # a look at the output's shape must not move BatchNorm's running statistics
        with torch.no_grad(), autocast(dev):
            logits = model(inputs)
        model.train()
        _check_labels(logits, batch[1], "fit", values=True)


def _check_loss(loss) -> None:
    """Refuse a loss that cannot be backpropagated, with the fix. Reads attributes only: no sync."""
    if not torch.is_tensor(loss):
        raise TypeError(f"loss_fn returned a {type(loss).__name__} ({loss!r}), not a tensor: return the loss "
                        "tensor itself, not loss.item() or float(loss), so that fit can backpropagate through it")
    if loss.ndim != 0:
        raise ValueError(f"loss_fn returned a tensor of shape {tuple(loss.shape)}; return one number "
                         "(reduce it with .mean() or .sum())")
    if not loss.requires_grad:
        raise ValueError("loss_fn returned a tensor without a gradient: it was computed under torch.no_grad(), "
                         "detached, or from tensors that do not come from the model; compute it from model(…)")


def _divergence(mean_loss: float, start_loss: float, weights_finite: bool) -> str:
    """What went wrong in an epoch with this mean training loss, first-batch loss and weights ('' if nothing)."""
    if not math.isfinite(mean_loss):
        return f"the mean training loss is {mean_loss}"
    if not weights_finite:
        return "the weights hold NaN or inf (the loss was still finite)"
    if start_loss > 0 and mean_loss > RISE_LIMIT * start_loss:
        return (f"the mean training loss rose to {mean_loss:.4g}, over {RISE_LIMIT}× the first batch's "
                f"{start_loss:.4g}")
    return ""


def _first_non_finite_batch(loader) -> int | None:
    """The number (from 1) of the first batch of ``loader`` holding NaN or inf in a float tensor, or None.
    Run only after a divergence, so its syncs cost nothing while training."""
    for number, batch in enumerate(loader, 1):
        tensors = [t for t in batch if torch.is_tensor(t) and t.is_floating_point()]
        if tensors and not torch.stack([torch.isfinite(t).all() for t in tensors]).all():
            return number
    return None


def _likely_cause(problem: str, train_loader, lr: float) -> str:
    lower = f"lr={lr} is likely too high: try lr={lr / 10:g}"
    if problem.startswith("the mean training loss rose"):
        return f"the learning rate: {lower}"
    bad = _first_non_finite_batch(train_loader)
    if bad is not None:
        return (f"the inputs: batch {bad} of train_loader holds NaN or inf (torch.isfinite(tensor).all() is False "
                "for it); repair or drop those items, a lower lr will not help")
    return (f"the learning rate, since every batch of train_loader is finite (checked with torch.isfinite): "
            f"{lower}; if a lower lr diverges too, look for a log of 0 or a division by 0 in loss_fn")


def _number(value, key: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"evaluate_fn must return a dict of numbers; {key!r} is {type(value).__name__}") from None


def fit(
    model: torch.nn.Module,
    train_loader: Iterable,
    *,
    epochs: int,
    lr: float,
    val_loader: Iterable | None = None,
    loss_fn: Callable = classification_loss,
    evaluate_fn: Callable[[torch.nn.Module, Iterable], dict] = evaluate,
    optimizer: str = "adamw",
    weight_decay: float = 5e-4,
    name: str | None = None,
    config: dict | None = None,
    monitor: str | None = None,
    compile: bool = False,
    plot: bool = True,
) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_loader``; return its `History`.

    Args:
        train_loader, val_loader: iterables of batches (tuples of tensors) with a length, e.g. `DeviceLoader`.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor`` (default: cross-entropy on ``(x, y)``).
        evaluate_fn: ``evaluate_fn(model, val_loader) -> dict``; its keys are logged as ``val_<key>``.
        optimizer: "adamw" or "sgd" (momentum 0.9, Nesterov); one-cycle schedule peaking at ``lr``.
        name, config: with a name, checkpoint under ``data/checkpoints`` keyed by model and config (put
            what the model cannot know in ``config``: data size, augmentation, seed).
        monitor: the logged key whose best epoch is kept (default ``val_acc``, else ``train_loss``).
        compile: wrap the model in `torch.compile` for the training steps (pays off on GPU).
    The model is left on its device in eval mode holding the best weights. Ctrl-C keeps (and saves, marked
    incomplete) the best weights so far, then re-raises `KeyboardInterrupt` so the whole cell stops.

    Raises:
        TrainingDiverged: at the end of an epoch whose mean training loss is NaN or inf, whose weights are, or
            whose mean loss is above ``RISE_LIMIT`` (10) times the first batch's loss. The best earlier epoch
            is kept and saved like an interrupted run (never reused as finished); the message names the
            epoch and the likely cause: NaN or inf in some batch (it says which), else a too-high ``lr``.
            The loss is read once per epoch, from the sum kept on the device, so no step waits on the GPU.
    """
    _check_fit_arguments(model, train_loader, val_loader, epochs, lr, optimizer, weight_decay, monitor, config,
                         loss_fn, evaluate_fn)
    dev = next(model.parameters()).device
    label = name or "fit"
    monitor = monitor or ("val_acc" if val_loader is not None else "train_loss")
    steps_per_epoch = len(train_loader)
    settings = dict(config or {}, epochs=epochs, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                    loss=_code_key(loss_fn), monitor=monitor,
                    evaluate=_code_key(evaluate_fn) if val_loader is not None else None,
                    steps_per_epoch=steps_per_epoch)
    path = checkpoint_path(name, model, settings) if name else None
    if path is not None and not retrain_requested():
        saved = verified_load(path)
        mismatch = _state_mismatch(model, saved["model"]) if saved is not None else None
        if mismatch:   # a file renamed by hand: one sentence, not load_state_dict's line per tensor
            print(f"{label}: ignoring {_shown(path)}: it holds another model's weights ({mismatch}); training again")
        elif saved is not None and saved["complete"]:
            model.load_state_dict(saved["model"])
            model.eval()
            history = History(**saved["history"])
            history.from_checkpoint = True
            _resume_as_if_trained(saved, train_loader, epochs)
            print(f"{label}: reused {_shown(path)} (delete it to retrain): {_summary(history)}")
            return history
        stopped = verified_load(_incomplete_path(path))
        if stopped is not None:
            kind = "an interrupted" if stopped["stopped"] == "interrupted" else "a diverged"
            print(f"{label}: {_shown(_incomplete_path(path))} holds {kind} run "
                  f"({len(stopped['history']['rows'])} of {epochs} epochs); training again from the start"
                  + (" (lower lr if it diverges again)" if stopped["stopped"] == "diverged" else ""))

    maximize = "loss" not in monitor
    model = channels_last(model) if dev.type == "cuda" else avoid_onednn_nhwc_crash(model)
    step_model = torch.compile(model) if compile else model
    parameters = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adamw":
        opt = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch)

    history, live = History(), _LivePlot(plot)
    best = None  # (score, epoch, state_dict) of the best finished epoch
    start_loss = None  # the very first batch's loss, before any update: what a diverging loss is measured against
    problem = ""  # why training stopped early, if it diverged
    try:
        with tqdm(total=epochs, desc=label, unit="epoch") as bar:
            for epoch in range(1, epochs + 1):
                model.train()
                start, loss_sum, images = time.perf_counter(), torch.zeros((), device=dev), 0
                for batch in train_loader:
                    batch = _to(batch, dev)
                    if start_loss is None:
                        _check_first_batch(model, batch, loss_fn, dev)
                    with autocast(dev):
                        loss = loss_fn(step_model, batch)
                    _check_loss(loss)
                    if start_loss is None:
                        start_loss = loss.detach().float()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    schedule.step()
                    loss_sum += loss.detach()
                    images += len(batch[0])
                # one sync per epoch: the loss summed on the device, the first batch's loss, the weights' state
                mean_loss, first_loss, finite = torch.stack(
                    [loss_sum / steps_per_epoch, start_loss, _weights_finite(model).float()]).tolist()
                problem = _divergence(mean_loss, first_loss, bool(finite))
                if problem:
                    break
                row = {"epoch": epoch, "train_loss": mean_loss}
                seconds = time.perf_counter() - start
                history.train_seconds += seconds
                history.images_seen += images  # counted per finished epoch, so images/s stays honest
                if val_loader is not None:
                    row.update({f"val_{k}": _number(v, k) for k, v in evaluate_fn(model, val_loader).items()})
                if monitor not in row:
                    raise ValueError(f"monitor={monitor!r} is not logged; the logged keys are {sorted(row)}")
                row["seconds"] = seconds
                history.rows.append(row)
                bar.set_postfix_str(_metrics(row), refresh=False)
                bar.update()
                live.update(history)
                score = row[monitor]
                if best is None or (score > best[0] if maximize else score < best[0]):
                    best = (score, epoch, copy.deepcopy(model.state_dict()))
    except KeyboardInterrupt:
        history.interrupted = True
        _keep_best(model, best, history, path, label, monitor, epochs, "interrupted")
        raise
    if problem:
        _keep_best(model, best, history, path, label, monitor, epochs, "diverged")
        kept = ("The model holds the best earlier epoch, kept only as incomplete (never reused as a finished model)"
                if best is not None else
                "No epoch finished before it, so nothing was kept and the model holds the diverged weights: "
                "build it again before training")
        raise TrainingDiverged(f"{label}: training diverged in epoch {len(history.rows) + 1} of {epochs}: "
                               f"{problem}. Likely cause: {_likely_cause(problem, train_loader, lr)}. {kept}.",
                               history)
    _keep_best(model, best, history, path, label, monitor, epochs, "")
    return history


def _random_state() -> dict:
    """torch's global random state (CPU, and each GPU's) as training left it: tensors only."""
    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _resume_as_if_trained(saved: dict, train_loader, epochs: int) -> None:
    """Leave the random state and the training loader as training would have: a reused checkpoint then changes
    nothing downstream (the next model's batches, dropout, samples), so a chapter's figures are the same whether its
    earlier models were trained now or loaded. Checkpoints written before the state was saved restore the loader
    only."""
    random_state = saved.get("random_state")
    if random_state is not None:
        torch.set_rng_state(random_state["cpu"])
        if torch.cuda.is_available() and len(random_state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(random_state["cuda"])
    if isinstance(train_loader, DeviceLoader):  # its shuffle and augmentation are seeded by the epochs it served
        train_loader.epoch += epochs


def _keep_best(model, best, history: History, path: Path | None, label: str, monitor: str, epochs: int,
               stopped: str) -> None:
    """Load the best epoch's weights into ``model``, save them when named, and say in one line what was kept and
    where. ``stopped`` is "" for a finished run (saved at ``path``, replacing any incomplete one), else
    "interrupted" or "diverged" (saved at `_incomplete_path`, so a finished checkpoint stays in place)."""
    model.eval()
    finished = len(history.rows)
    if best is None:
        what = ("interrupted before the first epoch finished" if stopped == "interrupted"
                else f"diverged in epoch 1 of {epochs}")
        weights = "part-trained" if stopped == "interrupted" else "diverged"
        print(f"{label}: {what}, so nothing was kept (the model holds {weights} weights; no checkpoint written)")
        return
    score, epoch, state = best
    model.load_state_dict(state)
    done = {"": f"{epochs} epochs in {history.train_seconds:.1f} s ({history.images_per_second:,.0f} images/s)",
            "interrupted": f"interrupted after {finished} of {epochs} epochs",
            "diverged": f"diverged in epoch {finished + 1} of {epochs}"}[stopped]
    line = f"{label}: {done}; kept epoch {epoch} ({monitor} {score:.4f})"
    if path is not None:
        target = _incomplete_path(path) if stopped else path
        content = {"model": state, "history": dataclasses.asdict(history), "complete": not stopped,
                   "stopped": stopped, "random_state": _random_state()}
        if atomic_save(content, target):
            if not stopped:
                _incomplete_path(path).unlink(missing_ok=True)  # the finished run supersedes it
            line += f"; saved {_shown(target)}" + {"": "", "interrupted": " as incomplete (rerun to train it fully)",
                                                    "diverged": " as incomplete (never reused as finished)"}[stopped]
    print(line)


def _metrics(row: dict) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in row.items() if isinstance(v, float) and k != "seconds")


def _summary(history: History) -> str:
    return _metrics(history.rows[-1]) if history.rows else "no epochs"
