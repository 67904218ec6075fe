"""`make bench`: the course's speed and accuracy targets, measured and written into the README's results table.

Introduced with Chapter 1 (01b's best ResNet); each later chapter with a target adds a benchmark here. On a GPU
every benchmark trains with its chapter's ``gpu``-profile settings; without one it measures CPU figures with the
``cpu``-profile settings, and the table says that no GPU was measured.

    python -m utils.course.bench                   # every benchmark, the whole table rewritten
    python -m utils.course.bench vit detection     # only these; their rows replace the old ones
    python -m utils.course.bench speedrun          # Chapter 11's ladder and recipe (on a GPU: the issue's targets)

The benchmarks:

- ``resnet``: Chapter 1's ResNet the course's way (device-resident data, batched on-device augmentation, bf16
  autocast and channels_last on CUDA): time to accuracy and images/s, against the same model fed by a plain
  ``torchvision`` Dataset + ``transforms.v2`` + ``DataLoader`` pipeline;
- ``vit``: Chapter 3b's ViT: test accuracy and time to the target;
- ``attention``: Chapter 3a's encoder–decoder Transformer: training tokens/s of the explicit teaching path vs
  ``F.scaled_dot_product_attention`` on the same model and batch;
- ``detection``: Chapter 4's anchor-free detector: mAP@0.5 and mAP@[.5:.95] on the test scenes;
- ``segmentation``: Chapter 5's U-Net: mIoU on the test scenes;
- ``speedrun``: Chapter 11's ladder (`utils.speed.speedrun_ladder`: on a GPU plain DataLoader → data on the device →
  channels_last + bf16 → `torch.compile` → CUDA graphs → batch ×4; on a CPU threads, channels_last, compile, batch),
  one row per rung with its images/s, its speed-up over the plain DataLoader measured in the same run and its
  compile seconds apart; then one row for the recipe with every trick (one-cycle, label smoothing, EMA, flip TTA):
  test accuracy, training seconds with and without compilation. A rung that fails (CUDA graphs unsupported, out of
  memory) gets a row saying why; the GPU ladder's rows and the CPU ladder's are kept side by side.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from .. import speed
from ..data import CLASSES, DeviceLoader, PlainFashionMNIST, fashion_mnist, subset
from ..results import merge_block
from ..runtime import describe, device, seed_everything, synchronize
from ..training import History, autocast, evaluate, fit

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
COLUMNS = ("benchmark", "what", "device", "train s", "result", "gpu target", "throughput")


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


def bench_resnet(gpu: bool) -> list[dict]:
    from ..models import ResNet
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
    return [{"what": f"Ch. 1 ResNet (width {s['width']}), {s['epochs']} epochs, 60 000 images",
             "train s": f"{history.train_seconds:.0f}",
             "result": f"test acc {accuracy:.4f}; {_time_to(history, 'val_acc', s['target'])}",
             "gpu target": "≥ 94% in ≤ 60 s; ≥ 5× plain pipeline",
             "throughput": f"{history.images_per_second:,.0f} images/s vs {plain:,.0f} for a plain DataLoader "
                           f"({history.images_per_second / plain:.1f}×)"}]


def bench_vit(gpu: bool) -> list[dict]:
    """Chapter 3b's main ViT, with that chapter's gpu- or cpu-profile settings."""
    from ..models.vit import ViT
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
    return [{"what": f"Ch. 3b ViT (dim {s['model']['dim']}, depth {s['model']['depth']}), {s['epochs']} epochs, "
                     f"{len(train_images):,} images",
             "train s": f"{history.train_seconds:.0f}",
             "result": f"test acc {accuracy:.4f}; {_time_to(history, 'val_acc', 0.93)}",
             "gpu target": "≥ 93% in ≤ 60 s",
             "throughput": f"{history.images_per_second:,.0f} images/s"}]


def bench_attention(gpu: bool) -> list[dict]:
    """Chapter 3a's Transformer: the explicit attention (teaching path) vs SDPA, forward + backward."""
    from ..models.transformer import Seq2SeqTransformer
    from ..seq2seq import VOCAB_SIZE, reversal_dataset, tokens_per_second
    dim, heads, depth, max_len, batch = (128, 8, 3, 16, 512) if gpu else (64, 4, 2, 10, 128)
    dev = device()
    torch.manual_seed(0)
    model = Seq2SeqTransformer(VOCAB_SIZE, VOCAB_SIZE, dim=dim, num_heads=heads, depth=depth).to(dev)
    src, tgt = (t.to(dev) for t in reversal_dataset(batch, 2, max_len))
    steps = 20 if gpu else 5
    teaching = tokens_per_second(model, src, tgt, need_weights=True, steps=steps)
    fused = tokens_per_second(model, src, tgt, need_weights=False, steps=steps)
    return [{"what": f"Ch. 3a Transformer (dim {dim}, {heads} heads, depth {depth}), batch {batch}, training step",
             "train s": "—", "result": f"SDPA {fused / teaching:.2f}× the teaching path",
             "gpu target": "SDPA faster than the teaching path",
             "throughput": f"{teaching:,.0f} tokens/s teaching path vs {fused:,.0f} SDPA"}]


def bench_detection(gpu: bool) -> list[dict]:
    """Chapter 4's anchor-free detector, with that chapter's gpu- or cpu-profile settings."""
    from ..detection import mean_average_precision
    from ..models.yolo import (AnchorFreeDetector, anchor_free_loss, detect_all, pad_targets, random_flip,
                              scene_input, unpad_targets)
    from ..scenes import fashion_scenes
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
    return [{"what": f"Ch. 4 anchor-free detector (width {s['width']}), {s['train']:,} scenes of {s['size']} px, "
                     f"{s['epochs']} epochs",
             "train s": f"{history.train_seconds:.0f}",
             "result": f"mAP@0.5 {scores['map_50']:.3f}, mAP@[.5:.95] {scores['map']:.3f} ({s['test']:,} test scenes)",
             "gpu target": "mAP@0.5 ≥ 0.90, mAP@[.5:.95] ≥ 0.60",
             "throughput": f"{history.images_per_second:,.0f} scenes/s"}]


def bench_segmentation(gpu: bool) -> list[dict]:
    """Chapter 5's U-Net, with that chapter's gpu- or cpu-profile settings (best validation mIoU kept)."""
    from ..models.unet import UNet
    from ..scenes import fashion_scenes
    from ..segmentation import MaskLoader, evaluate_segmentation, segmentation_loss
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
    return [{"what": f"Ch. 5 U-Net (width {s['width']}), {s['train']:,} scenes of {s['size']} px, {s['epochs']} epochs",
             "train s": f"{history.train_seconds:.0f}",
             "result": f"mIoU {scores['miou']:.3f}, pixel accuracy {scores['pa']:.3f} ({s['test']:,} test scenes)",
             "gpu target": "mIoU ≥ 0.85",
             "throughput": f"{history.images_per_second:,.0f} scenes/s"}]


# Chapter 11's gpu- and cpu-profile settings: the ladder's model, batch, timed steps and images, the plain
# DataLoader's workers; then the recipe's training and test images (None: all), epochs, learning rate and EMA decay.
SPEEDRUN_SETTINGS = {
    "gpu": dict(width=32, batch=512, rung_steps=50, rung_images=60_000, workers=8, compile=True,
                train=None, test=None, epochs=16, lr=4e-3, ema=0.998),
    "cpu": dict(width=16, batch=128, rung_steps=10, rung_images=4096, workers=2, compile=True,
                train=8000, test=2000, epochs=2, lr=3e-3, ema=0.95),
}
SPEEDRUN_RECIPE_NAME = "one-cycle + smoothing + EMA"


def speedrun_recipe_rung(kind: str) -> speed.Rung:
    """How the recipe trains on a "gpu" or "cpu": channels_last, compiled on a GPU only (compiling pays over a long GPU
    run, not over a short CPU one: ~50 CPU-s on 2 cores); `train_recipe` adds bf16 autocast on a GPU."""
    return speed.Rung("recipe", channels_last=True, compile=kind == "gpu")


def speedrun_key(kind: str, part: str) -> str:
    """The first cell of a speedrun row: the ladder's kind ("gpu" or "cpu") and the rung's name (or "recipe")."""
    return f"speedrun {kind} · {part}"


def _failure(error: Exception) -> str:
    """An exception as one table cell: its type and first line (a pipe would end the cell)."""
    lines = str(error).strip().splitlines()
    return f"failed: {type(error).__name__}: {lines[0][:160] if lines else '(no message)'}".replace("|", "\\|")


def _compile_note(measured: dict) -> str:
    """The first step's extra time of a compiled run, and how much of the compilation Inductor's on-disk cache saved
    (a graph compiled by an earlier run loads in a fraction of its compile time)."""
    graphs = measured["graphs_cached"] + measured["graphs_compiled"]
    return (f"compile {measured['first_step_extra_s']:.1f} s, {measured['graphs_cached']} of {graphs} graphs from "
            "Inductor's on-disk cache")


def _describe_rung(rung: speed.Rung, settings: dict) -> str:
    """What a rung runs, in words: how the batches come, what it changes, batch size and threads."""
    feed = (f"Dataset + transforms.v2 + DataLoader ({settings['workers']} workers)" if rung.loader == "plain" else
            "data on the device, batched augmentation")
    changes = [name for name, used in (("channels_last", rung.channels_last), ("bf16", rung.bf16),
                                       ("torch.compile", rung.compile), ("CUDA graphs", rung.cuda_graphs)) if used]
    threads = [f"{rung.threads} thread{'s' * (rung.threads > 1)}"] if rung.threads else []
    return ", ".join([feed, *changes, f"batch {rung.batch}", *threads, f"{settings['rung_steps']} timed steps"])


def speedrun_rows(kind: str, settings: dict, ladder: list[tuple[speed.Rung, dict]], trained: dict, *,
                  train_size: int, test_size: int) -> list[dict]:
    """The speedrun's table rows: one per rung of ``ladder`` ((rung, `measure_rung`'s result or ``{"error": …}``)
    pairs, the plain DataLoader first), then one for ``trained`` (`train_recipe`'s result or ``{"error": …}``)."""
    if not ladder or ladder[0][0].loader != "plain":
        raise ValueError("speedrun_rows: the ladder must start with the plain DataLoader (the speed-ups' baseline)")
    model = f"Ch. 11 ResNet (width {settings['width']})"
    baseline = ladder[0][1].get("images_per_second")
    rows = []
    for rung, measured in ladder:
        row = {"benchmark": speedrun_key(kind, rung.name), "what": f"{model}: {_describe_rung(rung, settings)}",
               "train s": "—", "gpu target": "fastest rung ≥ 5× the plain DataLoader's images/s"}
        if "error" in measured:
            rows.append({**row, "result": measured["error"], "throughput": "—"})
            continue
        speed_up = (f"{measured['images_per_second'] / baseline:.1f}× the plain DataLoader" if baseline else
                    "no speed-up: the plain DataLoader failed")
        if rung.compile:  # paid once per run, so apart from the steady state
            speed_up += f"; {_compile_note(measured)}"
        rows.append({**row, "result": speed_up, "throughput": f"{measured['images_per_second']:,.0f} images/s"})
    compiled = speedrun_recipe_rung(kind).compile
    row = {"benchmark": speedrun_key(kind, "recipe"),
           "what": f"{model}, {SPEEDRUN_RECIPE_NAME} + flip TTA: {settings['epochs']} epochs of {train_size:,} images, "
                   f"batch {settings['batch']}, lr {settings['lr']:g}, EMA {settings['ema']:g}, channels_last"
                   + (", bf16" if kind == "gpu" else "") + (", torch.compile" if compiled else ""),
           "gpu target": "≥ 94% in ≤ 10 s of training (≤ 20 s with compile)"}
    if "error" in trained:
        return rows + [{**row, "train s": "—", "result": trained["error"], "throughput": "—"}]
    compile_s = trained["first_step_extra_s"] if compiled else 0.0  # uncompiled, the first step's extra is lazy init
    train_s = trained["train_s"] - compile_s
    best = max(trained["acc"], trained["ema_acc"], trained["tta_acc"])
    target = (f"94% not reached ({best:.4f})" if best < 0.94 else
              f"≥ 94% in {train_s:.1f} s of training" + (f", {trained['train_s']:.1f} s with compile" if compiled
                                                           else ""))
    return rows + [{**row, "train s": f"{train_s:.1f} + {compile_s:.1f} compile" if compiled else f"{train_s:.1f}",
                    "result": f"test acc {trained['acc']:.4f}, EMA {trained['ema_acc']:.4f}, + flip TTA "
                              f"{trained['tta_acc']:.4f} ({test_size:,} test images); {target}"
                              + (f"; {_compile_note(trained)}" if compiled else ""),
                    "throughput": f"{trained['images'] / train_s:,.0f} images/s"}]


def speedrun(dev: torch.device, settings: dict, train, test) -> list[dict]:
    """Climb `utils.speed.speedrun_ladder` on ``dev`` with Chapter 1's ResNet, then train the recipe; ``train`` and
    ``test`` are (uint8 images, labels), subset here to the settings' sizes. Returns `speedrun_rows`' rows."""
    from ..models import ResNet

    def model_fn():
        return ResNet(width=settings["width"])

    kind = "gpu" if dev.type == "cuda" else "cpu"
    rung_images, rung_labels = subset(*train, settings["rung_images"])
    ladder = []
    for rung in speed.speedrun_ladder(dev, settings["batch"], compile=settings["compile"]):
        print(f"rung: {rung.name}")
        try:
            measured = speed.measure_rung(rung, model_fn, rung_images, rung_labels, device=dev,
                                          steps=settings["rung_steps"], workers=settings["workers"])
        except Exception as error:  # noqa: BLE001 — a rung this device cannot climb is a row saying why, not a crash
            measured = {"error": _failure(error)}
        ladder.append((rung, measured))
    recipe_train, recipe_test = subset(*train, settings["train"]), subset(*test, settings["test"])
    recipe = speed.Recipe(SPEEDRUN_RECIPE_NAME, label_smoothing=0.1, ema=settings["ema"])
    print(f"recipe: {recipe.name}")
    try:
        torch.manual_seed(0)
        trained = speed.train_recipe(recipe, model_fn, recipe_train, recipe_test, device=dev,
                                     epochs=settings["epochs"], batch=settings["batch"], lr=settings["lr"],
                                     rung=speedrun_recipe_rung(kind))
    except Exception as error:  # noqa: BLE001 — as for a rung
        trained = {"error": _failure(error)}
    return speedrun_rows(kind, settings, ladder, trained, train_size=len(recipe_train[1]),
                         test_size=len(recipe_test[1]))


def bench_speedrun(gpu: bool) -> list[dict]:
    """Chapter 11's speedrun with that chapter's gpu- or cpu-profile settings."""
    return speedrun(device(), SPEEDRUN_SETTINGS["gpu" if gpu else "cpu"], fashion_mnist("train"),
                    fashion_mnist("test"))


BENCHMARKS = {"resnet": bench_resnet, "vit": bench_vit, "attention": bench_attention, "detection": bench_detection,
              "segmentation": bench_segmentation, "speedrun": bench_speedrun}


def table_order() -> list[str]:
    """Every row's first cell, in table order: each benchmark's name, the speedrun's in its place by its rows —
    the GPU ladder's rungs and recipe, then the CPU ladder's (a run on one kind of device keeps the other's rows)."""
    speedrun_keys = [speedrun_key(kind, part) for kind, dev in (("gpu", "cuda"), ("cpu", "cpu"))
                     for part in [*(rung.name for rung in speed.speedrun_ladder(dev, 1)), "recipe"]]
    return [key for name in BENCHMARKS for key in (speedrun_keys if name == "speedrun" else [name])]


def run(names=None) -> list[dict]:
    """Run the named benchmarks (all by default); one table row each (the speedrun: one per rung, one for its
    recipe)."""
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
        for measured in BENCHMARKS[bench](gpu):
            row = {"benchmark": bench, "device": name, **measured}  # the speedrun's rows name themselves
            print(row)
            rows.append({key: row[key] for key in COLUMNS})
    return rows


def merge_table(text: str, rows: list[dict], date: str) -> str:
    """``text`` with the table between the bench markers holding ``rows``, in place of old rows with the same first
    cell (other rows are kept; all in `table_order`)."""
    return merge_block(text, START, END, f"Measured by `make bench`; last run on {date}.", COLUMNS,
                       {row["benchmark"]: [row[c] for c in COLUMNS] for row in rows}, table_order())


if __name__ == "__main__":
    results = run(sys.argv[1:])
    README.write_text(merge_table(README.read_text(), results, str(datetime.date.today())))
    print(README.read_text().split(START)[1].split(END)[0])
