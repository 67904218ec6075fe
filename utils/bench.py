"""`make bench`: the course's speed and accuracy targets, measured and written into the README's results table.

Introduced with Chapter 1 (01b's best ResNet); each later chapter with a target adds a benchmark here. On a GPU
every benchmark trains with its chapter's ``gpu``-profile settings; without one it measures CPU figures with the
``cpu``-profile settings, and the table says that no GPU was measured.

    python -m utils.bench                   # every benchmark, the whole table rewritten
    python -m utils.bench vit detection     # only these; their rows replace the old ones

The benchmarks:

- ``resnet``: Chapter 1's ResNet the course's way (device-resident data, batched on-device augmentation, bf16
  autocast and channels_last on CUDA): time to accuracy and images/s, against the same model fed by a plain
  ``torchvision`` Dataset + ``transforms.v2`` + ``DataLoader`` pipeline;
- ``vit``: Chapter 3b's ViT: test accuracy and time to the target;
- ``attention``: Chapter 3a's encoder–decoder Transformer: training tokens/s of the explicit teaching path vs
  ``F.scaled_dot_product_attention`` on the same model and batch;
- ``detection``: Chapter 4's anchor-free detector: mAP@0.5 and mAP@[.5:.95] on the test scenes;
- ``segmentation``: Chapter 5's U-Net: mIoU on the test scenes.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .data import CLASSES, MEAN, STD, DeviceLoader, fashion_mnist, subset
from .results import merge_block
from .runtime import describe, device, seed_everything, synchronize
from .training import History, autocast, evaluate, fit

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
COLUMNS = ("benchmark", "what", "device", "train s", "result", "gpu target", "throughput")


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
            synchronize(dev)
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
    synchronize(dev)
    return seen / (time.perf_counter() - start)


def _time_to(history: History, key: str, target: float) -> str:
    """Training seconds until the logged ``key`` first reached ``target``, as a table cell."""
    elapsed = 0.0
    for row in history.rows:
        elapsed += row["seconds"]
        if row.get(key, float("-inf")) >= target:
            return f"{elapsed:.0f} s to ≥{target:.0%}"
    return f"≥{target:.0%} not reached"


def _classification_data(train_size):
    train_images, train_labels = subset(*fashion_mnist("train"), train_size)
    return train_images, train_labels, *fashion_mnist("test")


def bench_resnet(gpu: bool) -> dict:
    from .models import ResNet
    s = (dict(width=32, epochs=18, batch=512, lr=4e-3, target=0.94, compile=True, workers=8) if gpu else
         dict(width=16, epochs=2, batch=128, lr=3e-3, target=0.88, compile=False, workers=2))
    dev = device()
    train_images, train_labels, test_images, test_labels = _classification_data(None)
    model = ResNet(width=s["width"]).to(dev)
    history = fit(model, DeviceLoader(train_images, train_labels, s["batch"], shuffle=True, augment=True,
                                      device=dev, drop_last=True),
                  epochs=s["epochs"], lr=s["lr"], val_loader=DeviceLoader(test_images, test_labels, 2048, device=dev),
                  compile=s["compile"], plot=False)
    accuracy = evaluate(model, DeviceLoader(test_images, test_labels, 2048, device=dev))["acc"]
    plain = plain_pipeline_images_per_second(ResNet(width=s["width"]).to(dev), train_images, train_labels,
                                             s["batch"], 50 if gpu else 20, s["workers"])
    return {"what": f"Ch. 1 ResNet (width {s['width']}), {s['epochs']} epochs, 60 000 images",
            "train s": f"{history.train_seconds:.0f}",
            "result": f"test acc {accuracy:.4f}; {_time_to(history, 'val_acc', s['target'])}",
            "gpu target": "≥ 94% in ≤ 60 s; ≥ 5× plain pipeline",
            "throughput": f"{history.images_per_second:,.0f} images/s vs {plain:,.0f} for a plain DataLoader "
                          f"({history.images_per_second / plain:.1f}×)"}


def bench_vit(gpu: bool) -> dict:
    """Chapter 3b's main ViT, with that chapter's gpu- or cpu-profile settings."""
    from .models.vit import ViT
    s = (dict(model=dict(dim=192, depth=6, num_heads=6), train=None, epochs=40, lr=1e-3, batch=256, compile=True)
         if gpu else
         dict(model=dict(dim=64, depth=4, num_heads=4), train=10_000, epochs=6, lr=2e-3, batch=128, compile=False))
    dev = device()
    train_images, train_labels, test_images, test_labels = _classification_data(s["train"])
    model = ViT(**s["model"]).to(dev)
    history = fit(model, DeviceLoader(train_images, train_labels, s["batch"], shuffle=True, augment=True, device=dev),
                  epochs=s["epochs"], lr=s["lr"], weight_decay=0.05,
                  val_loader=DeviceLoader(test_images, test_labels, 1000, device=dev), compile=s["compile"],
                  plot=False)
    accuracy = evaluate(model, DeviceLoader(test_images, test_labels, 1000, device=dev))["acc"]
    return {"what": f"Ch. 3b ViT (dim {s['model']['dim']}, depth {s['model']['depth']}), {s['epochs']} epochs, "
                    f"{len(train_images):,} images",
            "train s": f"{history.train_seconds:.0f}",
            "result": f"test acc {accuracy:.4f}; {_time_to(history, 'val_acc', 0.92)}",
            "gpu target": "≥ 92% in ≤ 120 s",
            "throughput": f"{history.images_per_second:,.0f} images/s"}


def bench_attention(gpu: bool) -> dict:
    """Chapter 3a's Transformer: the explicit attention (teaching path) vs SDPA, forward + backward."""
    from .models.transformer import Seq2SeqTransformer
    from .seq2seq import VOCAB_SIZE, reversal_dataset, tokens_per_second
    dim, heads, depth, max_len, batch = (128, 8, 3, 16, 512) if gpu else (64, 4, 2, 10, 128)
    dev = device()
    torch.manual_seed(0)
    model = Seq2SeqTransformer(VOCAB_SIZE, VOCAB_SIZE, dim=dim, num_heads=heads, depth=depth).to(dev)
    src, tgt = (t.to(dev) for t in reversal_dataset(batch, 2, max_len))
    steps = 20 if gpu else 5
    teaching = tokens_per_second(model, src, tgt, need_weights=True, steps=steps)
    fused = tokens_per_second(model, src, tgt, need_weights=False, steps=steps)
    return {"what": f"Ch. 3a Transformer (dim {dim}, {heads} heads, depth {depth}), batch {batch}, training step",
            "train s": "—", "result": f"SDPA {fused / teaching:.2f}× the teaching path",
            "gpu target": "SDPA faster than the teaching path",
            "throughput": f"{teaching:,.0f} tokens/s teaching path vs {fused:,.0f} SDPA"}


def bench_detection(gpu: bool) -> dict:
    """Chapter 4's anchor-free detector, with that chapter's gpu- or cpu-profile settings."""
    from .detection import mean_average_precision
    from .models.yolo import (AnchorFreeDetector, anchor_free_loss, detect_all, pad_targets, random_flip,
                              scene_input, unpad_targets)
    from .scenes import fashion_scenes
    s = (dict(size=128, min_scale=16, train=20_000, test=2000, epochs=60, width=32, batch=64) if gpu else
         dict(size=64, min_scale=12, train=2000, test=300, epochs=10, width=16, batch=32))
    dev = device()
    scales = dict(size=s["size"], min_scale=s["min_scale"], max_scale=s["size"] // 2)
    train, test = fashion_scenes("train", s["train"], **scales), fashion_scenes("test", s["test"], **scales)
    flips = torch.Generator(device=dev).manual_seed(0)
    model = AnchorFreeDetector(num_classes=10, width=s["width"]).to(dev)
    loader = DeviceLoader(train.images, pad_targets(train.boxes, train.labels, max_objects=4), batch_size=s["batch"],
                          shuffle=True, device=dev, prepare=scene_input, drop_last=True)
    history = fit(model, loader, epochs=s["epochs"], lr=3e-3, plot=False,
                  loss_fn=lambda m, batch: anchor_free_loss(m, random_flip(*batch, flips)))
    targets = unpad_targets(pad_targets(test.boxes, test.labels, max_objects=4))
    scores = mean_average_precision(detect_all(model, test.images, confidence=0.01, iou_threshold=0.5), targets)
    return {"what": f"Ch. 4 anchor-free detector (width {s['width']}), {s['train']:,} scenes of {s['size']} px, "
                    f"{s['epochs']} epochs",
            "train s": f"{history.train_seconds:.0f}",
            "result": f"mAP@0.5 {scores['map_50']:.3f}, mAP@[.5:.95] {scores['map']:.3f} ({s['test']:,} test scenes)",
            "gpu target": "mAP@0.5 ≥ 0.90, mAP@[.5:.95] ≥ 0.60",
            "throughput": f"{history.images_per_second:,.0f} scenes/s"}


def bench_segmentation(gpu: bool) -> dict:
    """Chapter 5's U-Net, with that chapter's gpu- or cpu-profile settings (best validation mIoU kept)."""
    from .models.unet import UNet
    from .scenes import fashion_scenes
    from .segmentation import MaskLoader, evaluate_segmentation, segmentation_loss
    s = (dict(size=128, train=20_000, test=1000, width=32, epochs=30, batch=64, lr=5e-3) if gpu else
         dict(size=64, train=3000, test=500, width=8, epochs=8, batch=16, lr=1e-2))
    dev = device()
    scales = dict(size=s["size"], min_scale=s["size"] // 4, max_scale=s["size"] // 2)
    images, masks = fashion_scenes("train", s["train"], **scales).tensors()
    test_images, test_masks = fashion_scenes("test", s["test"], **scales).tensors()
    n_val = len(images) // 10
    augment = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomAffine(degrees=0, translate=(0.1, 0.1),
                                                                     scale=(0.9, 1.1))])
    classes = 1 + len(CLASSES)  # background + the Fashion-MNIST classes
    evaluate_fn = lambda model, loader: evaluate_segmentation(model, loader, classes)  # noqa: E731
    model = UNet(classes, width=s["width"], depth=3).to(dev)
    history = fit(model, MaskLoader(images[:-n_val], masks[:-n_val], s["batch"], shuffle=True, transform=augment,
                                    device=dev),
                  epochs=s["epochs"], lr=s["lr"],
                  val_loader=MaskLoader(images[-n_val:], masks[-n_val:], 64, device=dev),
                  loss_fn=segmentation_loss("cross_entropy+dice"), evaluate_fn=evaluate_fn, monitor="val_miou",
                  plot=False)
    scores = evaluate_fn(model, MaskLoader(test_images, test_masks, 64, device=dev))
    return {"what": f"Ch. 5 U-Net (width {s['width']}), {s['train']:,} scenes of {s['size']} px, {s['epochs']} epochs",
            "train s": f"{history.train_seconds:.0f}",
            "result": f"mIoU {scores['miou']:.3f}, pixel accuracy {scores['pa']:.3f} ({s['test']:,} test scenes)",
            "gpu target": "mIoU ≥ 0.85",
            "throughput": f"{history.images_per_second:,.0f} scenes/s"}


BENCHMARKS = {"resnet": bench_resnet, "vit": bench_vit, "attention": bench_attention, "detection": bench_detection,
              "segmentation": bench_segmentation}


def run(names=None) -> list[dict]:
    """Run the named benchmarks (all by default); one table row each."""
    names = list(names or BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
    dev = device()
    gpu = dev.type == "cuda"
    name = torch.cuda.get_device_name(dev) if gpu else f"CPU ({os.cpu_count()} cores), no GPU measured"
    print(describe())
    rows = []
    for bench in names:
        seed_everything(0)
        print(f"--- {bench}")
        row = {"benchmark": bench, "device": name, **BENCHMARKS[bench](gpu)}
        print(row)
        rows.append({key: row[key] for key in COLUMNS})
    return rows


def merge_table(text: str, rows: list[dict], date: str) -> str:
    """``text`` with the table between the bench markers holding ``rows``, in place of old rows of the same
    benchmark (rows of other benchmarks are kept, in ``BENCHMARKS`` order)."""
    return merge_block(text, START, END, f"Measured by `make bench`; last run on {date}.", COLUMNS,
                       {row["benchmark"]: [row[c] for c in COLUMNS] for row in rows}, list(BENCHMARKS))


if __name__ == "__main__":
    results = run(sys.argv[1:])
    README.write_text(merge_table(README.read_text(), results, str(datetime.date.today())))
    print(README.read_text().split(START)[1].split(END)[0])
