"""`make bench`: the course's speed and accuracy targets, measured and written into the README's results table.

Introduced with Chapter 1 (01b's best ResNet). Trains that ResNet on Fashion-MNIST the course's way
(device-resident data, batched on-device augmentation, bf16 autocast and channels_last on CUDA) and
measures time-to-accuracy and images/s; then times the same model fed by a plain ``torchvision``
Dataset + ``transforms.v2`` + ``DataLoader`` pipeline. On a GPU it uses the gpu profile's settings; without
one it measures CPU figures with the cpu profile's settings and the table says that no GPU was measured.
"""

from __future__ import annotations

import datetime
import os
import re
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .data import MEAN, STD, DeviceLoader, fashion_mnist, subset
from .models import ResNet
from .runtime import describe, device, seed_everything
from .training import autocast, evaluate, fit

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


class PlainFashionMNIST(Dataset):
    """Image by image, as most tutorials do: PIL-free uint8 tensors through a transforms.v2 pipeline."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels
        self.transform = v2.Compose([v2.RandomCrop(28, padding=2), v2.RandomHorizontalFlip(),
                                     v2.ToDtype(torch.float32, scale=True), v2.Normalize([MEAN], [STD])])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


def plain_pipeline_images_per_second(model, images, labels, batch_size, steps, workers) -> float:
    """Training images/s of ``model`` fed by a DataLoader with ``workers`` processes, over ``steps`` batches."""
    dev = next(model.parameters()).device
    loader = DataLoader(PlainFashionMNIST(images, labels), batch_size=batch_size, shuffle=True,
                        num_workers=workers, pin_memory=dev.type == "cuda", drop_last=True,
                        persistent_workers=workers > 0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    seen, start = 0, None
    for step, (x, y) in enumerate(loader):
        if step == 2:  # skip warm-up (worker start, cuDNN autotune)
            _sync(dev)
            start, seen = time.perf_counter(), 0
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        with autocast(dev):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(y)
        if step == steps + 1:
            break
    _sync(dev)
    return seen / (time.perf_counter() - start)


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def run() -> list[dict]:
    dev = device()
    gpu = dev.type == "cuda"
    settings = (dict(width=32, epochs=18, batch=512, lr=4e-3, train=None, target=0.94, compile=True, workers=8)
                if gpu else
                dict(width=16, epochs=2, batch=128, lr=3e-3, train=None, target=0.88, compile=False, workers=2))
    print(describe(), settings)
    seed_everything(0)
    train_images, train_labels = subset(*fashion_mnist("train"), settings["train"])
    test_images, test_labels = fashion_mnist("test")
    model = ResNet(width=settings["width"]).to(dev)
    history = fit(model, DeviceLoader(train_images, train_labels, settings["batch"], shuffle=True, augment=True,
                                      device=dev, drop_last=True),
                  epochs=settings["epochs"], lr=settings["lr"],
                  val_loader=DeviceLoader(test_images, test_labels, 2048, device=dev), compile=settings["compile"],
                  plot=False)
    elapsed, time_to_target = 0.0, None
    for row in history.rows:
        elapsed += row["seconds"]
        if time_to_target is None and row["val_acc"] >= settings["target"]:
            time_to_target = elapsed
    accuracy = evaluate(model, DeviceLoader(test_images, test_labels, 2048, device=dev))["acc"]
    steps = 50 if gpu else 20
    plain = plain_pipeline_images_per_second(ResNet(width=settings["width"]).to(dev), train_images, train_labels,
                                             settings["batch"], steps, settings["workers"])
    name = torch.cuda.get_device_name(dev) if gpu else f"CPU ({os.cpu_count()} cores), no GPU measured"
    return [{
        "what": f"Ch. 1 ResNet (width {settings['width']}), {settings['epochs']} epochs, full train set",
        "device": name, "train s": f"{history.train_seconds:.0f}",
        "time to target": (f"{time_to_target:.0f} s to ≥{settings['target']:.0%}" if time_to_target is not None
                           else f"not reached (≥{settings['target']:.0%})"),
        "test acc": f"{accuracy:.4f}", "images/s (course loop)": f"{history.images_per_second:,.0f}",
        "images/s (plain DataLoader)": f"{plain:,.0f}",
        "speed-up": f"{history.images_per_second / plain:.1f}×",
    }]


def write_table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = [f"Measured by `make bench` on {datetime.date.today()}.", "",
             "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows]
    table = "\n".join(lines)
    text = README.read_text()
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), f"{START}\n{table}\n{END}", text, flags=re.S)
        README.write_text(text)
    return table


if __name__ == "__main__":
    print(write_table(run()))
