"""One training loop for the whole course: `fit`, `evaluate`, `History`.

Introduced in Chapter 1 (01b) and used by every chapter after it.

`fit` trains with AdamW (or SGD with momentum) under a one-cycle learning-rate schedule, shows
`tqdm.auto` progress bars (widgets in JupyterLab, text elsewhere) and a live loss/metric plot, and keeps
the best weights. With a ``name`` it saves a checkpoint under ``data/checkpoints/``, keyed by the
model's structure and the training config: rerunning the cell reuses an up-to-date checkpoint instead of
retraining, and changing anything retrains. Ctrl-C stops early, keeps the best weights so far and returns
the history up to that point. On CUDA it uses bf16 autocast and channels_last, and ``compile=True``
wraps the model in `torch.compile`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import plotting
from .data import data_dir
from .runtime import device as default_device, profile


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

    def figure(self):
        """Losses on the left, every other metric on the right, against epochs."""
        import matplotlib.pyplot as plt

        fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(9, 3.2))
        keys = [k for k in self.rows[0] if k not in ("epoch", "seconds", "lr")] if self.rows else []
        for key in keys:
            ax = ax_loss if "loss" in key else ax_metric
            ax.plot(self["epoch"], self[key], marker="o", label=key)
        for ax, title in ((ax_loss, "loss"), (ax_metric, "metrics")):
            ax.set_xlabel("epoch")
            ax.set_title(title)
            if ax.lines:
                ax.legend()
        fig.tight_layout()
        return fig


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the label."""
    return (logits.argmax(1) == labels).float().mean().item()


def classification_loss(model, batch, label_smoothing: float = 0.0):
    """Cross-entropy of ``model(x)`` against ``y`` — the default loss of `fit`."""
    x, y = batch
    return F.cross_entropy(model(x), y, label_smoothing=label_smoothing)


def autocast(dev: torch.device):
    """bf16 autocast on CUDA (tensor cores, no loss scaling needed); a no-op elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)


def _to(batch, dev):
    return tuple(t.to(dev, non_blocking=True) if torch.is_tensor(t) else t for t in batch)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Iterable) -> dict:
    """Mean cross-entropy and accuracy of a classifier over ``loader``."""
    model.eval()
    dev = next(model.parameters()).device
    total_loss, correct, count = 0.0, 0, 0
    for x, y in loader:
        x, y = _to((x, y), dev)
        with autocast(dev):
            logits = model(x).float()
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        count += len(y)
    return {"loss": total_loss / count, "acc": correct / count}


@torch.no_grad()
def predict(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """``model`` applied to ``inputs`` in batches, in eval mode; float32 outputs on the CPU."""
    model.eval()
    dev = next(model.parameters()).device
    outputs = []
    for chunk in inputs.split(batch_size):
        with autocast(dev):
            outputs.append(model(chunk.to(dev)).float().cpu())
    return torch.cat(outputs)


def checkpoint_path(name: str, model: torch.nn.Module, config: dict) -> Path:
    """``data/checkpoints/<profile>/<name>-<key>.pt``; the key hashes the model's structure and config."""
    text = json.dumps({"model": repr(model), "config": config}, sort_keys=True, default=str)
    key = hashlib.sha1(text.encode()).hexdigest()[:12]
    return data_dir() / "checkpoints" / profile() / f"{name}-{key}.pt"


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
        train_loader, val_loader: iterables of batches (tuples of tensors), e.g. `DeviceLoader`.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor`` (default: cross-entropy on ``(x, y)``).
        evaluate_fn: ``evaluate_fn(model, val_loader) -> dict``; its keys are logged as ``val_<key>``.
        optimizer: "adamw" or "sgd" (momentum 0.9, Nesterov); one-cycle schedule peaking at ``lr``.
        name, config: with a name, checkpoint under ``data/checkpoints`` keyed by model and config.
        monitor: the logged key whose best epoch is kept (default ``val_acc``, else ``train_loss``).
        compile: wrap the model in `torch.compile` for the training steps (pays off on GPU).
    The model is left on its device in eval mode holding the best weights.
    """
    dev = next(model.parameters()).device
    settings = dict(config or {}, epochs=epochs, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                    loss=getattr(loss_fn, "__name__", repr(loss_fn)))
    path = checkpoint_path(name, model, settings) if name else None
    if path is not None and path.is_file():
        saved = torch.load(path, map_location=dev, weights_only=False)
        if saved.get("complete"):
            model.load_state_dict(saved["model"])
            model.eval()
            history = saved["history"]
            history.from_checkpoint = True
            print(f"Reusing checkpoint {path.relative_to(path.parents[2])} "
                  f"(delete it to retrain): {_summary(history)}")
            return history

    monitor = monitor or ("val_acc" if val_loader is not None else "train_loss")
    maximize = "loss" not in monitor
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if compile else model
    parameters = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adamw":
        opt = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'adamw' or 'sgd', not {optimizer!r}")
    steps_per_epoch = len(train_loader)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch)

    history, live = History(), _LivePlot(plot)
    best_score, best_state = None, None
    try:
        for epoch in tqdm(range(1, epochs + 1), desc=name or "fit", unit="epoch"):
            model.train()
            start, loss_sum, batches = time.perf_counter(), 0.0, 0
            for batch in tqdm(train_loader, total=steps_per_epoch, leave=False, unit="batch"):
                batch = _to(batch, dev)
                with autocast(dev):
                    loss = loss_fn(step_model, batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
                loss_sum += loss.detach()
                batches += 1
                history.images_seen += len(batch[0])
            loss_value = (loss_sum / max(batches, 1)).item()  # one sync per epoch, not per step
            seconds = time.perf_counter() - start
            history.train_seconds += seconds
            row = {"epoch": epoch, "train_loss": loss_value}
            if val_loader is not None:
                row.update({f"val_{k}": v for k, v in evaluate_fn(model, val_loader).items()})
            row["seconds"] = seconds
            history.rows.append(row)
            print("  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
            live.update(history)
            score = row[monitor]
            if best_score is None or (score > best_score if maximize else score < best_score):
                best_score, best_state = score, copy.deepcopy(model.state_dict())
    except KeyboardInterrupt:
        history.interrupted = True
        print(f"Interrupted after {len(history.rows)} epoch(s); keeping the best weights so far.")

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if path is not None and best_state is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": best_state, "history": history, "complete": not history.interrupted}, path)
    return history


def _summary(history: History) -> str:
    last = history.rows[-1] if history.rows else {}
    return ", ".join(f"{k}={v:.4f}" for k, v in last.items() if isinstance(v, float) and k != "seconds")
