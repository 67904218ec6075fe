"""One training loop for the whole course: `fit`, `evaluate`, `History`.

Introduced in Chapter 1 (01b) and used by every chapter after it.

`fit` trains with AdamW (or SGD with momentum) under a one-cycle learning-rate schedule, shows one
`tqdm.auto` progress bar over the epochs (a widget in JupyterLab, text elsewhere) with the latest metrics,
a live loss/metric plot, and one summary line at the end; it keeps the best weights. With a ``name`` it
saves a checkpoint under ``data/checkpoints/`` (atomically, with a checksum: `utils.checkpoints`), keyed
by the model's structure, every setting of every submodule and the training config: rerunning the cell
reuses an up-to-date checkpoint instead of retraining, changing anything retrains, and a damaged file is
reported and retrained; ``$COURSE_RETRAIN=1`` (set by `make verify`) retrains everything. Ctrl-C loads the
best weights so far into the model, saves them marked incomplete (never reused as a finished run), and
re-raises, so one Ctrl-C stops the whole cell. On CUDA it uses bf16 autocast and channels_last, and
``compile=True`` wraps the model in `torch.compile`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import plotting
from .checkpoints import atomic_save, verified_load
from .data import data_dir
from .runtime import (avoid_onednn_nhwc_crash, channels_last, device as default_device, model_device, profile,
                      retrain_requested)


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


def classification_loss(model, batch, label_smoothing: float = 0.0):
    """Cross-entropy of ``model(x)`` against ``y`` — the default loss of `fit`."""
    x, y = batch
    return F.cross_entropy(model(x), y, label_smoothing=label_smoothing)


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
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
    model.eval()
    dev = next(model.parameters()).device
    outputs = []
    for chunk in inputs.split(batch_size):
        with autocast(dev):
            outputs.append(model(chunk.to(dev)).float().cpu())
    return torch.cat(outputs)


def _setting(value):
    """``value`` as JSON-able plain data if it is a setting (number, string, tuple of them, function or class),
    else None: tensors and submodules are covered elsewhere, and None is how modules mark "nothing cached yet"."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        items = [_setting(item) for item in value]
        return items if all(item is not None for item in items) else None
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
        return f"{value.__module__}.{value.__qualname__}"
    return None


def model_settings(model: torch.nn.Module) -> dict:
    """Everything about ``model`` that decides what it computes, except its weights: for each submodule, its
    class and plain attributes (``ViT.pool``, ``Seq2SeqTransformer.max_len``: settings that ``repr`` does not
    show), and the name, shape and dtype of every parameter and buffer."""
    modules = {}
    for name, module in model.named_modules():
        attributes = {key: _setting(value) for key, value in vars(module).items()
                      if not key.startswith("_") and key != "training"}
        modules[name or "(model)"] = [type(module).__qualname__,
                                      {key: value for key, value in attributes.items() if value is not None}]
    tensors = {f"{kind} {name}": [list(tensor.shape), str(tensor.dtype)]
               for kind, named in (("parameter", model.named_parameters()), ("buffer", model.named_buffers()))
               for name, tensor in named}
    return {"modules": modules, "tensors": tensors}


def checkpoint_path(name: str, model: torch.nn.Module, config: dict) -> Path:
    """``data/checkpoints/<profile>/<name>-<key>.pt``; the key hashes the model's structure, its `model_settings`
    and the training ``config``, so changing any of them names another file (and so retrains)."""
    if not isinstance(name, str) or not name or any(c in name for c in "/\\"):
        raise ValueError(f"name must be a short label such as 'resnet' (no slashes), not {name!r}")
    text = json.dumps({"model": repr(model), "settings": model_settings(model), "config": config},
                      sort_keys=True, default=str)
    key = hashlib.sha1(text.encode()).hexdigest()[:12]
    return data_dir() / "checkpoints" / profile() / f"{name}-{key}.pt"


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


def _check_fit_arguments(model, train_loader, val_loader, epochs, lr, optimizer, weight_decay, monitor, config):
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model has no trainable parameters: nothing to fit (are they all frozen?)")
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
    if val_loader is not None:
        _batch_count(val_loader, "val_loader")
    if monitor is not None and monitor != "train_loss" and not str(monitor).startswith("val_"):
        raise ValueError(f"monitor must be 'train_loss' or 'val_<key>' for a key of evaluate_fn's result, "
                         f"not {monitor!r}")
    if monitor is not None and monitor.startswith("val_") and val_loader is None:
        raise ValueError(f"monitor={monitor!r} needs a val_loader to measure it: pass val_loader=… "
                         "or monitor='train_loss'")


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
    """
    _check_fit_arguments(model, train_loader, val_loader, epochs, lr, optimizer, weight_decay, monitor, config)
    dev = next(model.parameters()).device
    label = name or "fit"
    monitor = monitor or ("val_acc" if val_loader is not None else "train_loss")
    steps_per_epoch = len(train_loader)
    settings = dict(config or {}, epochs=epochs, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                    loss=getattr(loss_fn, "__name__", repr(loss_fn)), monitor=monitor,
                    evaluate=getattr(evaluate_fn, "__name__", repr(evaluate_fn)) if val_loader is not None else None,
                    steps_per_epoch=steps_per_epoch)
    path = checkpoint_path(name, model, settings) if name else None
    saved = verified_load(path) if path is not None and not retrain_requested() else None
    if saved is not None and saved["complete"]:
        model.load_state_dict(saved["model"])
        model.eval()
        history = History(**saved["history"])
        history.from_checkpoint = True
        print(f"{label}: reused {_shown(path)} (delete it to retrain): {_summary(history)}")
        return history
    if saved is not None:
        print(f"{label}: {_shown(path)} holds an interrupted run ({len(saved['history']['rows'])} of {epochs} "
              "epochs); training again from the start")

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
    try:
        with tqdm(total=epochs, desc=label, unit="epoch") as bar:
            for epoch in range(1, epochs + 1):
                model.train()
                start, loss_sum, images = time.perf_counter(), 0.0, 0
                for batch in train_loader:
                    batch = _to(batch, dev)
                    with autocast(dev):
                        loss = loss_fn(step_model, batch)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    schedule.step()
                    loss_sum += loss.detach()
                    images += len(batch[0])
                row = {"epoch": epoch, "train_loss": (loss_sum / steps_per_epoch).item()}  # one sync per epoch
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
        _keep_best(model, best, history, path, label, monitor, epochs)
        raise
    _keep_best(model, best, history, path, label, monitor, epochs)
    return history


def _keep_best(model, best, history: History, path: Path | None, label: str, monitor: str, epochs: int) -> None:
    """Load the best epoch's weights into ``model``, save them when named (marked incomplete after Ctrl-C),
    and say in one line what was kept and where."""
    model.eval()
    if best is None:
        print(f"{label}: interrupted before the first epoch finished, so nothing was kept "
              "(the model holds part-trained weights; no checkpoint written)")
        return
    score, epoch, state = best
    model.load_state_dict(state)
    done = (f"interrupted after {len(history.rows)} of {epochs} epochs" if history.interrupted
            else f"{epochs} epochs in {history.train_seconds:.1f} s ({history.images_per_second:,.0f} images/s)")
    line = f"{label}: {done}; kept epoch {epoch} ({monitor} {score:.4f})"
    if path is not None and atomic_save({"model": state, "history": dataclasses.asdict(history),
                                         "complete": not history.interrupted}, path):
        line += f"; saved {_shown(path)}" + (" as incomplete (rerun to train it fully)" if history.interrupted else "")
    print(line)


def _metrics(row: dict) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in row.items() if isinstance(v, float) and k != "seconds")


def _summary(history: History) -> str:
    return _metrics(history.rows[-1]) if history.rows else "no epochs"
