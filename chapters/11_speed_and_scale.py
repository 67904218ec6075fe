# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 11 — Speed and scale: measuring, the Fashion-MNIST speedrun, fusion, quantisation, many processes
#
# **Deep Vision Lab · Chapter 11.** Every earlier chapter trained a model; this one asks *how fast*, *why not
# faster*, and *what happens when one device is not enough*. Speed work has one rule: **measure first, and measure
# correctly** — a GPU runs asynchronously, so a timer that does not wait for it measures nothing. Then we climb a
# ladder of optimisations one rung at a time, keeping only what pays, and finish with the engines that serve and
# train models beyond one chip:
#
# 1. **how to measure** — warm-up, synchronisation, CUDA events; a `torch.profiler` table; host–device syncs;
#    FLOPs against bytes (arithmetic intensity) and what bounds each layer on *this* machine;
# 2. **the speedrun** — Chapter 1's ResNet on Fashion-MNIST: a plain `DataLoader` → data resident on the device
#    with batched augmentation → channels_last (+ bf16 on a GPU) → `torch.compile` (its cost shown apart) → CUDA
#    graphs (GPU) → batch size; then the tricks that buy accuracy per second (schedule, label smoothing, EMA of
#    the weights, flip test-time augmentation), keeping what pays;
# 3. **inference** — operator fusion as FasterTransformer does it (bias + activation, LayerNorm, fused QKV, fused
#    softmax-attention), through SDPA and `torch.compile`, outputs checked equal; int8 dynamic quantisation;
# 4. **across processes** — `torch.distributed` under `torchrun`: data parallel (DDP), fully sharded (FSDP2),
#    pipeline (GPipe, 1F1B) and tensor parallel, each checked against one process;
# 5. the interview questions.
#
# Open `utils/speed.py` (measurement, ladder, fusion, quantisation) and `utils/parallel.py` (the four parallel
# modes, runnable as `torchrun --nproc_per_node 2 -m utils.parallel --mode ddp --check`) beside this notebook.
#
# **Timings** printed here are measured on the machine running the notebook, in the active profile, and say so; no
# assert depends on them (a loaded machine changes them). Asserts check correctness: equal outputs, equal
# parameters, accuracy above a measured bar. **The gpu profile of this chapter is unmeasured**: it was written and
# run on a 2-core CPU; on a GPU the same cells measure the GPU rungs (bf16, CUDA graphs, the sync finder).

# %%
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils import exercises, parallel, speed, start_chapter
from utils.data import DeviceLoader, fashion_mnist, subset
from utils.measuring import model_bytes
from utils.models import ResNet
from utils.plotting import comparison_chart, output_dir, show
from utils.results import report
from utils.runtime import channels_last, device_name, pick, profile
from utils.training import evaluate, fit

device = start_chapter("11_speed_and_scale")

# %%
REPO = Path(parallel.__file__).resolve().parents[1]
CPU = device.type == "cpu"
CORES = os.cpu_count() or 1
WIDTH = pick(smoke=16, cpu=16, gpu=32)                  # Chapter 1's ResNet, first-stage channels
BATCH = pick(smoke=64, cpu=128, gpu=512)                 # the ladder's batch before the batch-size rung
RUNG_STEPS = pick(smoke=3, cpu=10, gpu=50)               # timed training steps per rung (after 2 warm-up steps)
RUNG_IMAGES = pick(smoke=1024, cpu=4096, gpu=60_000)
WORKERS = pick(smoke=0, cpu=2, gpu=8)                    # the plain DataLoader's worker processes
COMPILE_RUNG = pick(smoke=False, cpu=True, gpu=True)     # compiling a training step costs ~50 CPU-s on 2 cores
TRAIN_IMAGES = pick(smoke=1000, cpu=8000, gpu=None)      # None: all 60 000
TEST_IMAGES = pick(smoke=500, cpu=2000, gpu=None)
EPOCHS = pick(smoke=1, cpu=2, gpu=16)
LR = pick(smoke=3e-3, cpu=3e-3, gpu=4e-3)
EMA_DECAY = pick(smoke=0.8, cpu=0.95, gpu=0.998)         # horizon ~1/(1 − decay) steps: shorter for short runs
RECIPE_BAR = pick(smoke=0.20, cpu=0.72, gpu=0.72)        # best recipe: measured (smoke 0.30, cpu 0.77) − margin;
#                                                          gpu unmeasured: held at the cpu bar
INT8_MARGIN = 0.01                                       # int8 may lose at most this much accuracy
PIPE_HIDDEN = pick(smoke=512, cpu=1024, gpu=1024)        # the pipeline's MLP width: enough work per micro-batch
MICROBATCH_SWEEP = pick(smoke=(), cpu=(2, 4, 8), gpu=(2, 4, 8))  # smoke: the pipeline runs of the first launch
train_images, train_labels = subset(*fashion_mnist("train"), TRAIN_IMAGES)
test_images, test_labels = subset(*fashion_mnist("test"), TEST_IMAGES)
print(f"{len(train_labels):,} training / {len(test_labels):,} test images; {CORES} CPU cores; "
      f"timings below are measured on {device_name()} in the {profile()} profile")

# %% [markdown]
# ## 1. How to measure
# ### 1.1 The asynchronous-GPU trap, warm-up and repeats
# A CUDA call returns as soon as the kernel is **queued**; the GPU runs it later. `t = time.time(); y = model(x);
# time.time() - t` therefore measures the launch (microseconds), and the *next* operation that needs a result
# (`.item()`, `print`, a copy to the host) silently waits for all the queued work — and gets blamed for it. The
# cure: `torch.cuda.synchronize()` before reading the clock, or **CUDA events** recorded on the stream around the
# work (`start.record(); …; end.record(); end.synchronize(); start.elapsed_time(end)`), which time the GPU itself.
# Two more traps hold on every device: the **first call** is slow (memory allocation, cuDNN/oneDNN picking
# algorithms, lazy initialisation, compilation), so time after a **warm-up**; and one measurement is noise, so
# repeat and take the median (or the best, for the least disturbed run). `speed.measure` does all three.
#
# A CPU runs each operation before returning, so the asynchronous trap cannot be shown here; the warm-up and the
# spread over repeats can.

# %%
model = ResNet(width=WIDTH).to(device).eval()
x = torch.randn(BATCH, 1, 28, 28, device=device)
with torch.no_grad():
    timing = speed.measure(lambda: model(x), device=device, warmup=2, repeats=5)
spread = max(timing["times"]) / min(timing["times"])
print(f"ResNet(width={WIDTH}) forward on {BATCH} images, {device_name()}, {profile()} profile: first call "
      f"{timing['first'] * 1e3:.1f} ms, then median {timing['median'] * 1e3:.1f} ms over 5 repeats "
      f"(slowest/fastest = {spread:.2f}); {BATCH / timing['median']:,.0f} images/s")
if device.type == "cuda":  # the trap itself: a timer without synchronisation
    torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        model(x)
    launch = time.perf_counter() - start
    torch.cuda.synchronize()
    print(f"without synchronising, the same forward 'takes' {launch * 1e3:.2f} ms — the launch only")

# %% [markdown]
# ### 1.2 A `torch.profiler` trace, read as a table
# A profiler records every operator (and, on a GPU, every kernel) with its time. Sorted by *self* time — time in the
# operator itself, not in what it calls — the table says where a training step goes. The count column is a check on
# the trace: every `Conv2d` module runs one `aten::convolution` per forward pass.

# %%
train_model = ResNet(width=WIDTH).to(device)
optimizer = torch.optim.AdamW(train_model.parameters(), lr=1e-3)
labels = torch.randint(0, 10, (BATCH,), device=device)


def training_step():
    loss = F.cross_entropy(train_model(x), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


PROFILED_STEPS = 2
table, averages = speed.profile_table(training_step, device=device, steps=PROFILED_STEPS, rows=10)
print(table)
counts = {a.key: a.count for a in averages}
self_time = {a.key: a.self_cpu_time_total for a in averages}
conv_layers = sum(isinstance(m, nn.Conv2d) for m in train_model.modules())
assert counts["aten::convolution"] == conv_layers * PROFILED_STEPS, \
    f"{conv_layers} conv layers × {PROFILED_STEPS} steps should be {conv_layers * PROFILED_STEPS} convolutions in " \
    f"the trace, found {counts['aten::convolution']}"
conv_share = sum(v for k, v in self_time.items() if "conv" in k) / sum(self_time.values())
norm_share = sum(v for k, v in self_time.items() if "batch_norm" in k) / sum(self_time.values())
print(f"On {device_name()} ({profile()} profile), convolutions (forward and backward) take {conv_share:.0%} of the "
      f"step's self CPU time and batch norm {norm_share:.0%}.")

# %% [markdown]
# ### 1.3 Finding host–device synchronisations
# On a GPU the fastest training loop never waits for the device inside a step: no `loss.item()` per step (sum the
# losses on the device and read once per epoch, as `utils.training.fit` does), no `print(tensor)`, no
# `tensor.cpu()`, no `if (x > 0).any():`, no boolean-mask indexing (its output size must be known on the host).
# `torch.cuda.set_sync_debug_mode("warn")` makes PyTorch warn at every such synchronisation; `speed.find_syncs` runs
# a function under it and returns the warnings. (A CPU has nothing to synchronise with, so on this machine the cell
# only says so.)

# %%
def step_with_item():
    training_step()
    return F.cross_entropy(train_model(x), labels).item()   # a sync: the host waits for the GPU's answer


if device.type == "cuda":
    clean, dirty = speed.find_syncs(training_step), speed.find_syncs(step_with_item)
    assert len(dirty) > len(clean), "reading .item() synchronises; the plain step should not"
    print(f"plain step: {len(clean)} syncs; with .item(): {len(dirty)}: {dirty[:1]}")
else:
    print("No CUDA device: speed.find_syncs needs one (on a CPU every operation finishes before the next starts).")

# %% [markdown]
# ### 1.4 FLOPs against bytes: what bounds a layer
# A layer costs arithmetic (FLOPs) and memory traffic (bytes read and written). Its **arithmetic intensity** —
# FLOPs per byte — says which one it waits for. A machine does *P* FLOP/s and moves *B* bytes/s; a layer with
# intensity below the **ridge point** *P/B* is **memory-bound** (faster arithmetic would not help; fusing it with its
# neighbours, so its data is read once, would), above it **compute-bound** (the roofline model). We measure *P* (a
# float32 matmul) and *B* (a copy larger than the caches) on this machine and place every layer of the ResNet
# against the ridge.

# %%
balance = speed.machine_balance(device)
costs = speed.layer_costs(ResNet(width=WIDTH).to(device), x)
stem = costs[0]
assert stem["kind"] == "Conv2d" and stem["flops"] == 2 * BATCH * WIDTH * 28 * 28 * 1 * 9, \
    "a 3×3 conv's FLOPs are 2 × batch × output values × (C_in × 9)"
compute_bound = [c for c in costs if c["intensity"] >= balance["ridge"]]
memory_bound = [c for c in costs if c["intensity"] < balance["ridge"]]
assert all(c["kind"] in ("BatchNorm2d", "ReLU", "AdaptiveAvgPool2d", "Flatten", "Identity")
           or c["intensity"] > 0 for c in memory_bound), "only matmul/conv layers do counted arithmetic"
print(f"{device_name()}: {balance['flops_per_second'] / 1e9:.1f} GFLOP/s (matmul), "
      f"{balance['bytes_per_second'] / 1e9:.1f} GB/s (copy) → ridge at {balance['ridge']:.1f} FLOPs/byte; "
      f"{len(compute_bound)} of {len(costs)} layers are above it (all convolutions or the head), "
      f"{len(memory_bound)} below (batch norm, ReLU, pooling: 0 FLOPs counted, all traffic)")

fig, ax = plt.subplots(figsize=(10, 3.6), layout="constrained")
kinds = sorted({c["kind"] for c in costs})
for kind, colour in zip(kinds, plt.cm.tab10.colors):
    idx = [i for i, c in enumerate(costs) if c["kind"] == kind]
    ax.bar(idx, [max(costs[i]["intensity"], 0.01) for i in idx], color=colour, label=kind)
ax.axhline(balance["ridge"], color="black", linestyle="--", label=f"ridge {balance['ridge']:.1f} FLOPs/byte")
ax.set(yscale="log", xlabel="layer (in forward order)", ylabel="FLOPs per byte (log; 0 drawn at 0.01)",
       title=f"Arithmetic intensity of ResNet(width={WIDTH}) layers, batch {BATCH}, vs this machine's ridge point")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the bars, not over them
show(fig)

# %% [markdown]
# ## 2. The speedrun ladder
# One model — Chapter 1's ResNet — and one training step, changed one rung at a time. Each rung is measured as
# training images/s over a fixed number of steps after two warm-up steps; the first step's extra time (compilation,
# graph capture, lazy initialisation) is shown **apart**, because it is paid once per run, not per image.
#
# | rung | what changes | why it can pay |
# |---|---|---|
# | plain `DataLoader` | `Dataset` + `transforms.v2` per image, worker processes, collate, copy to the device | the baseline most tutorials use |
# | data on the device | all images resident (`DeviceLoader`), one batched shift-and-flip gather (`random_shift_flip`) | no per-image Python, no host→device copy, no workers |
# | channels_last (+ bf16 on a GPU) | NHWC memory layout; bf16 autocast | convolution kernels (oneDNN, cuDNN tensor cores) prefer NHWC; bf16 halves the bytes and runs on tensor cores |
# | threads (CPU) | intra-op threads = cores | parallel GEMMs |
# | `torch.compile` | TorchInductor fuses element-wise chains (BN+ReLU, adds) into generated kernels | fewer passes over memory, fewer launches |
# | CUDA graphs (GPU) | `mode="reduce-overhead"`: the whole step replayed as one graph | no per-kernel launch cost (small batches are launch-bound) |
# | batch size | larger batches (with the learning rate scaled: linearly for SGD, ≈ √k for Adam) | more work per launch, better GEMM shapes |

# %%
rung_images, rung_labels = subset(*fashion_mnist("train"), RUNG_IMAGES)
RUNGS = speed.speedrun_ladder(device, BATCH, compile=COMPILE_RUNG)  # `python -m utils.course.bench speedrun` climbs these
for rung in RUNGS:
    print(f"{rung.name:>24}: batch {rung.batch}" + (f", {rung.threads} thread(s)" if rung.threads else ""))

# Every rung computes the same function: channels_last changes the layout, not the numbers.
reference_model = ResNet(width=WIDTH).to(device).eval()
nhwc_model = channels_last(copy.deepcopy(reference_model))   # safe on every CPU (utils.runtime)
with torch.no_grad():
    layout_difference = (nhwc_model(x.contiguous(memory_format=torch.channels_last)) - reference_model(x)).abs().max()
assert layout_difference < 1e-4, f"channels_last changed the output by {layout_difference:.2e}"

ladder = []
for rung in RUNGS:
    result = speed.measure_rung(rung, lambda: ResNet(width=WIDTH), rung_images, rung_labels, device=device,
                                steps=RUNG_STEPS, workers=WORKERS)
    ladder.append(result)
    print(f"{rung.name:>24}: {result['images_per_second']:8,.0f} images/s; "
          f"first step +{result['first_step_extra_s']:.1f} s")
base = ladder[0]["images_per_second"]
best_rung = max(ladder, key=lambda r: r["images_per_second"])
fig = comparison_chart({r["rung"]: {"ips": r["images_per_second"], "speedup": r["images_per_second"] / base,
                                    "first": r["first_step_extra_s"]} for r in ladder},
                       {"ips": "training images/s", "speedup": "× the plain DataLoader",
                        "first": "first step's extra s (compile)"},
                       title=f"The speedrun ladder on {device_name()} ({profile()} profile, {RUNG_STEPS} timed steps)",
                       best={"ips": "max"}, per_row=3)
show(fig)
report("ladder: best rung's speed-up over the plain DataLoader", best_rung["images_per_second"] / base, digits=2)
print(f"Measured here ({device_name()}, {profile()} profile): the fastest rung, '{best_rung['rung']}', trains "
      f"{best_rung['images_per_second'] / base:.1f}× as many images per second as the plain DataLoader"
      + (f"; torch.compile cost {next(r['first_step_extra_s'] for r in ladder if 'compile' in r['rung']):.0f} s "
         "before its first step" if COMPILE_RUNG else "; the compile rung runs in the cpu and gpu profiles"))

# %% [markdown]
# On a GPU the order of the gains changes: the plain pipeline starves the device (the GPU waits for Python), data
# on the device removes that wait, bf16 and channels_last use the tensor cores, compilation and CUDA graphs remove
# the memory passes and launch costs that dominate a small network at 28×28. The targets for one
# H100-class GPU — ≥ 94 % test accuracy in ≤ 10 s of training (≤ 20 s with compilation), ≥ 5× the plain
# DataLoader's images/s — are **unmeasured** in this course so far (no GPU was available when it was written);
# `python -m utils.course.bench speedrun` climbs the same ladder and trains the recipe to measure them into the README.
#
# The two 16-bit formats split their bits differently. float16 has a 5-bit exponent and 10 stored mantissa bits;
# bfloat16 keeps float32's 8-bit exponent (the same range, so no loss scaling) and stores only 7 mantissa bits —
# 8 bits of precision with the implicit leading one. The step from 1 to the next number (`eps`) shows it:

# %%
# eps = 2^-(stored mantissa bits); max shows the exponent's range
half, brain, single = (torch.finfo(t) for t in (torch.float16, torch.bfloat16, torch.float32))
assert half.eps == 2 ** -10 and brain.eps == 2 ** -7, f"eps: float16 {half.eps}, bfloat16 {brain.eps}"
assert half.max == 65504 and brain.max > 0.99 * single.max, "bfloat16 should reach float32's range, float16 65 504"
for name, info in (("float16", half), ("bfloat16", brain), ("float32", single)):
    print(f"{name:>8}: eps {info.eps:.2e}, largest {info.max:.3g}")

# %% [markdown]
# **Exercise (hard).** A float32 is 1 sign bit, 8 exponent bits and 23 mantissa bits; a bfloat16 is its top 16 bits.
# Casting rounds the 16 bits dropped to the nearest, ties to even. In the exercise version of this notebook
# (`make exercises`) the cell below keeps only the signature and hints of `round_to_bfloat16`, that rounding done on
# the bits: write it, and the self-check compares it with `x.to(torch.bfloat16).float()`.

# %% tags=["exercise"]
def round_to_bfloat16(x):
    """The nearest bfloat16 of every value, from the bits: x float32 (any shape) → float32 of x's shape holding
    bfloat16 values — float32's sign, its 8-bit exponent and the top 7 of its 23 mantissa bits, the 16 bits dropped
    rounded to the nearest, a value exactly halfway to the neighbour whose last kept bit is 0 (ties to even).
    Rounding may carry into the exponent: values beyond bfloat16's largest become ±inf.

    Hints: x.view(torch.int32) gives the bits as integers, .view(torch.float32) turns them back; to round to the
    nearest, add half of the dropped range before clearing the 16 low bits (& -65536 is & 0xFFFF0000 for an int32):
    0x8000 rounds ties away from zero, one less plus the lowest kept bit ((bits >> 16) & 1) rounds them to even.
    """
    bits = x.view(torch.int32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) & -65536).view(torch.float32)


# %% tags=["self-check"]
round_to_bfloat16 = exercises.check("round_to_bfloat16", round_to_bfloat16)

# %%
# a gradient of 1e-8 underflows to 0 in float16 and survives in bfloat16; scaling the loss by 2^16 rescues float16
small_gradient = torch.tensor(1e-8)
assert small_gradient.half() == 0 and small_gradient.bfloat16() != 0, \
    f"1e-8 in float16: {small_gradient.half().item()} (0 expected), in bfloat16: {small_gradient.bfloat16().item():.2e}"
rescued = (small_gradient * 2 ** 16).half().float() / 2 ** 16      # scale, store in float16, unscale in float32
assert abs(rescued - small_gradient) < 1e-3 * small_gradient, f"loss scaling should keep 1e-8, kept {rescued.item():.3e}"

# %%
# autocast keeps the weights in float32: only each op's inputs are cast, and its output is 16-bit
with torch.random.fork_rng(devices=[]):                          # leave the chapter's random stream alone
    layer = nn.Linear(8, 4)
with torch.autocast("cpu", dtype=torch.bfloat16):
    layer_out = layer(torch.ones(2, 8))
assert layer.weight.dtype == torch.float32 and layer_out.dtype == torch.bfloat16, \
    f"weights {layer.weight.dtype} (float32 expected), output {layer_out.dtype} (bfloat16 expected)"

# %% [markdown]
# ### 2.2 Accuracy per second: the training tricks
# Speed is worth nothing without accuracy. Three short runs of the same model and data, the same number of images:
#
# - **constant learning rate** — the baseline;
# - **one-cycle schedule** — warm up, then anneal to ~0 (large steps early, fine steps late);
# - **one-cycle + label smoothing + EMA** — targets (1 − ε) on the true class and ε/K spread over all, so the
#   network stops pushing logits to infinity; an **exponential moving average of the weights** (its decay set by
#   the profile's run length) evaluated instead of the last weights — a free ensemble over the last ~1/(1 − decay)
#   steps.
#
# Each is also evaluated with **flip test-time augmentation** (average the predictions for an image and its
# mirror: 2× the inference cost). Keep what pays: a trick stays if it raises accuracy for its cost.

# %%
RECIPES = [speed.Recipe("constant LR", schedule="constant"), speed.Recipe("one-cycle"),
           speed.Recipe("one-cycle + smoothing + EMA", label_smoothing=0.1, ema=EMA_DECAY)]
fast = speed.Rung("fast", channels_last=True, compile=device.type == "cuda")  # compile pays over long GPU runs
recipes = []
for recipe in RECIPES:
    torch.manual_seed(0)
    recipes.append(speed.train_recipe(recipe, lambda: ResNet(width=WIDTH), (train_images, train_labels),
                                      (test_images, test_labels), device=device, epochs=EPOCHS, batch=BATCH, lr=LR,
                                      rung=fast))
    r = recipes[-1]
    print(f"{r['recipe']:>28}: {r['train_s']:.0f} s, test acc {r['acc']:.4f}"
          + (f", EMA {r['ema_acc']:.4f}" if "ema_acc" in r else "") + f", + flip TTA {r['tta_acc']:.4f}")
rows = {}
for r in recipes:
    rows[r["recipe"]] = {"acc": r["acc"], "tta": r["tta_acc"], "s": r["train_s"]}
    if "ema_acc" in r:
        rows[r["recipe"]]["acc"] = max(r["acc"], r["ema_acc"])
fig = comparison_chart(rows, {"acc": "test accuracy (EMA if better)", "tta": "with flip TTA", "s": "training s"},
                       title=f"Training tricks, {EPOCHS} epoch(s) of {len(train_labels):,} images ({device_name()})",
                       best={"acc": "max", "tta": "max"}, per_row=3)
show(fig)
best_recipe_acc = max(max(v["acc"], v["tta"]) for v in rows.values())
report("speedrun: best recipe test accuracy", best_recipe_acc, bar=RECIPE_BAR)
assert best_recipe_acc >= RECIPE_BAR, f"best recipe accuracy {best_recipe_acc:.4f} is below the bar {RECIPE_BAR}"
constant, onecycle, tricks = (rows[r.name] for r in RECIPES)
kept = [name for name, gain in (("the one-cycle schedule", onecycle["acc"] - constant["acc"]),
                                ("smoothing + EMA", tricks["acc"] - onecycle["acc"]),
                                ("flip TTA", tricks["tta"] - tricks["acc"])) if gain > 0]
print(f"Measured here: one-cycle vs constant {onecycle['acc'] - constant['acc']:+.4f}, smoothing + EMA "
      f"{tricks['acc'] - onecycle['acc']:+.4f}, flip TTA {tricks['tta'] - tricks['acc']:+.4f} "
      f"({len(test_labels):,} test images: one image is {1 / len(test_labels):.4f}). Worth keeping in this run: "
      f"{', '.join(kept) if kept else 'none of them'}.")

# %% [markdown]
# ## 3. Inference: operator fusion and quantisation
# ### 3.1 Fusion as FasterTransformer does it
# NVIDIA's FasterTransformer (and its successor TensorRT-LLM) makes a Transformer fast mostly by **fusing**: one
# kernel reads a tensor once and does several things to it, instead of one kernel per operation each reading and
# writing memory. Its fusions, and their PyTorch counterparts:
#
# | fusion | naive | fused |
# |---|---|---|
# | QKV projection | three matmuls | one matmul with the three weights concatenated |
# | softmax-attention | QKᵀ, scale, softmax, ×V: four kernels and an N×N matrix in memory | one kernel (FlashAttention-style: tiles in on-chip memory, N×N never stored) — `F.scaled_dot_product_attention` |
# | LayerNorm | mean, subtract, variance, divide, scale, shift | one kernel (`F.layer_norm`) |
# | bias + activation | matmul, add bias, GELU | bias in the matmul epilogue; GELU fused by the compiler |
#
# `speed.UnfusedBlock` writes a Transformer block op by op; `speed.FusedBlock` takes **the same weights** and runs
# them fused. The claim to check first: the fused block computes the same function, in every SDPA back-end present.

# %%
from torch.nn.attention import sdpa_kernel  # noqa: E402

torch.manual_seed(0)
TOKENS, DIM = pick(smoke=64, cpu=196, gpu=196), 128
unfused = speed.UnfusedBlock(dim=DIM, heads=4, hidden=4 * DIM).to(device).eval()
fused = speed.FusedBlock(unfused).to(device).eval()
tokens = torch.randn(pick(smoke=8, cpu=16, gpu=64), TOKENS, DIM, device=device)
backends = speed.sdpa_backends(device)
with torch.no_grad():
    reference_out = unfused(tokens)
    for name, backend in backends.items():
        with sdpa_kernel(backend):
            difference = (fused(tokens) - reference_out).abs().max().item()
        assert difference < 1e-4, f"fused block ({name} SDPA) differs from the unfused one by {difference:.2e}"
        print(f"SDPA back-end {name:>20}: max |fused − unfused| = {difference:.1e}")
compiled = torch.compile(fused)
with torch.no_grad():
    compile_start = time.perf_counter()
    compiled_out = compiled(tokens)
    compile_seconds = time.perf_counter() - compile_start
difference = (compiled_out - reference_out).abs().max().item()
assert difference < 1e-4, f"the compiled block differs from the unfused one by {difference:.2e}"
print(f"torch.compile(fused): max |compiled − unfused| = {difference:.1e}; compiling took {compile_seconds:.1f} s")

# %% [markdown]
# Now the cost. The profiler counts the operators each version launches per forward pass; `speed.measure` times
# them (after warm-up; the compiled version's compile time is above, apart).

# %%
COMPUTE_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::_softmax", "aten::add", "aten::mul", "aten::div",
               "aten::sub", "aten::mean", "aten::gelu", "aten::native_layer_norm", "aten::sqrt", "aten::pow",
               "aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_flash_attention",
               "aten::_scaled_dot_product_efficient_attention", "aten::_scaled_dot_product_cudnn_attention"}
versions = {"unfused (op by op)": unfused, "fused (QKV, SDPA, LayerNorm)": fused, "fused + torch.compile": compiled}
inference = {}
with torch.no_grad():
    for name, block in versions.items():
        _, ops = speed.profile_table(lambda: block(tokens), device=device, steps=1)
        launched = sum(a.count for a in ops if a.key in COMPUTE_OPS)
        seconds = speed.measure(lambda: block(tokens), device=device, warmup=2, repeats=5)["best"]
        inference[name] = {"ms": seconds * 1e3, "ops": launched}
fig = comparison_chart(inference, {"ms": "ms per forward (best of 5)",
                                   "ops": "aten compute ops per forward (Inductor's kernels not counted)"},
                       title=f"One Transformer block, {tokens.shape[0]}×{TOKENS} tokens of {DIM} ({device_name()})",
                       best={"ms": "min"})
show(fig)
assert inference["fused (QKV, SDPA, LayerNorm)"]["ops"] < inference["unfused (op by op)"]["ops"], \
    "the fused block launches fewer operators"
speedup = inference["unfused (op by op)"]["ms"] / inference["fused + torch.compile"]["ms"]
print(f"Measured here ({device_name()}, {profile()} profile): fused + compiled runs the block in "
      f"{inference['fused + torch.compile']['ms']:.2f} ms vs {inference['unfused (op by op)']['ms']:.2f} ms op by op "
      f"({speedup:.2f}×), from {inference['unfused (op by op)']['ops']} to "
      f"{inference['fused (QKV, SDPA, LayerNorm)']['ops']} operators before compilation.")

# %% [markdown]
# ### 3.2 int8 dynamic quantisation
# **Quantisation** stores weights (and computes) in fewer bits. *Dynamic* int8 quantisation of a linear layer: the
# weights are rounded once to int8 with a scale (w ≈ s·q, q ∈ [−128, 127]); at run time each batch of activations
# gets its own scale, is rounded to int8, multiplied in int8 with int32 accumulation, and scaled back to float. It
# needs no calibration data and no retraining; weights shrink 4×; on a CPU the int8 GEMMs (fbgemm, oneDNN) are
# faster when the matmuls dominate. We train an MLP classifier on Fashion-MNIST with `fit` and quantise it.

# %% [markdown]
# **Exercise (medium).** In the exercise version of this notebook the cell below keeps only the signature and hints
# of `symmetric_int8`, a tensor's symmetric per-tensor int8 codes and scale: write it, and the self-check compares it
# with `torch.quantize_per_tensor` (zero point 0) at the scale max|x| / 127. (PyTorch's own weight observer divides by
# 127.5, half of int8's 255 steps, and clamps at 127; 127 keeps the codes symmetric, −127…127, as TensorRT does.)

# %% tags=["exercise"]
def symmetric_int8(x):
    """Symmetric per-tensor int8 quantisation: x float (any shape, not empty) → (codes, scale), codes int8 of x's
    shape and scale a 0-d float tensor, so that x ≈ codes · scale: scale = max|x| / 127 (1 when x is all zero),
    codes = x / scale rounded to the nearest integer, halves to the even one (as torch.round and the int8 kernels).

    Hints: x.abs().max(); torch.where picks the scale for an all-zero x; torch.round rounds halves to even; cast with
    .to(torch.int8) only after rounding (a cast alone truncates toward zero).
    """
    largest = x.abs().max()
    scale = torch.where(largest > 0, largest / 127, torch.ones_like(largest))
    return torch.round(x / scale).to(torch.int8), scale


# %% tags=["self-check"]
symmetric_int8 = exercises.check("symmetric_int8", symmetric_int8)

# %%
mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
history = fit(mlp.to(device), DeviceLoader(train_images, train_labels, 128, shuffle=True, device=device),
              epochs=pick(smoke=2, cpu=4, gpu=8), lr=2e-3, plot=False)
mlp = mlp.cpu().eval()
int8 = speed.quantize_int8(mlp)
cpu_test = DeviceLoader(test_images, test_labels, 1000, device="cpu")
float_acc, int8_acc = evaluate(mlp, cpu_test)["acc"], evaluate(int8, cpu_test)["acc"]
batch = torch.randn(256, 1, 28, 28)
with torch.no_grad():
    float_ms = speed.measure(lambda: mlp(batch), repeats=7)["best"] * 1e3   # best: the least disturbed run
    int8_ms = speed.measure(lambda: int8(batch), repeats=7)["best"] * 1e3
float_mb, int8_mb = model_bytes(mlp) / 1e6, model_bytes(int8) / 1e6
report("MLP test accuracy, float32", float_acc)
report("MLP test accuracy, int8 dynamic quantisation", int8_acc, bar=float_acc - INT8_MARGIN)
assert int8_acc >= float_acc - INT8_MARGIN, f"int8 lost {float_acc - int8_acc:.4f} accuracy (allowed {INT8_MARGIN})"
assert int8_mb < float_mb / 3, f"int8 weights should be ~4× smaller: {int8_mb:.2f} MB vs {float_mb:.2f} MB"
print(f"float32: acc {float_acc:.4f}, {float_mb:.2f} MB, {float_ms:.2f} ms per 256 images; int8: acc {int8_acc:.4f}, "
      f"{int8_mb:.2f} MB ({float_mb / int8_mb:.1f}× smaller), {int8_ms:.2f} ms ({float_ms / int8_ms:.2f}× the speed) — "
      f"measured on {device_name() if CPU else 'the CPU'}, {profile()} profile")

# %% [markdown]
# **What changes on a GPU.** Dynamic int8 is a CPU technique; GPUs use bf16 (what `fit` does), fp8 on Hopper, and
# *weight-only* int8/int4 (torchao, bitsandbytes, GPTQ/AWQ) when memory bandwidth bounds inference — as it does for
# batch-1 generation. Fusion matters more on a GPU than here: a kernel launch costs microseconds and every
# unfused element-wise op is a full round trip to HBM. **SAM** is made fast in exactly these ways: the PyTorch team's
# *segment-anything-fast* used bf16, `torch.compile`, SDPA/FlashAttention, custom Triton kernels, semi-structured
# (2:4) sparsity and int8 quantisation (≈ 8× on an A100), and MobileSAM/EfficientSAM/EfficientViT-SAM replace the
# ViT-H image encoder (≈ 600 M parameters, most of the cost) with a small distilled one, keeping the prompt encoder
# and mask decoder.
#
# ## 4. Across processes: `torch.distributed` under `torchrun`
# One process per device; `torchrun` starts them, gives each its `RANK` and `WORLD_SIZE`, and they meet in a
# process group (NCCL between GPUs, gloo on CPUs) that runs **collectives**: all-reduce (everyone ends with the sum),
# all-gather, reduce-scatter, broadcast, and point-to-point send/recv. Four ways to split training:
#
# | mode | each process holds | communicates | memory per process |
# |---|---|---|---|
# | **data parallel (DDP)** | the whole model, 1/N of each batch | all-reduce of gradients, overlapped with backward | everything |
# | **fully sharded (FSDP, ZeRO-3)** | 1/N of every parameter, gradient and optimizer state | all-gather parameters before each layer, reduce-scatter gradients | ≈ 1/N of the state + one layer |
# | **pipeline** | consecutive layers (a stage) | activations forward, gradients backward, between neighbours | 1/N of the model + in-flight activations |
# | **tensor (model)** | a slice of each layer's weight matrix | all-reduce / all-gather of activations inside every layer | 1/N of each split layer |
#
# `utils/parallel.py` implements each on the same MLP and the same Fashion-MNIST batches, and **checks** each
# against a single-process run of the same steps: the loss of every step and every parameter after the last must
# agree to 1e-4 (float32 sums in a different order differ by ~1e-7). Here `torchrun` starts 2 processes with gloo
# on the CPU (NCCL needs a GPU per process; with fewer GPUs than processes it uses gloo too). Starting processes
# costs a few CPU-seconds each, so one launch runs all four modes in turn.

# %%
def torchrun(*args: str) -> tuple[list[dict], str]:
    """Run utils.parallel on 2 processes with the given arguments; its results and printed summary."""
    out = output_dir() / f"parallel-{profile()}-{'-'.join(a.strip('-') for a in args)}.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "utils.parallel", "--check", "--json", str(out), *args]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    summary = "\n".join(line for line in run.stdout.splitlines() if line.strip())
    assert run.returncode == 0, f"torchrun {' '.join(args)} failed (exit {run.returncode}):\n{summary}\n" \
                                f"{run.stderr[-3000:]}"
    return json.loads(out.read_text()), summary


print("torchrun --standalone --nproc_per_node 2 -m utils.parallel --mode ddp,fsdp,pipeline,tensor --check")
parallel_results, summary = torchrun("--mode", "ddp,fsdp,pipeline,tensor")
print(summary)
by_mode = {(r["mode"] + (f" {r['schedule']}" if r["mode"] == "pipeline" else "")): r for r in parallel_results}
worst = max(r["largest_difference"] for r in parallel_results)
assert all(r["agrees"] for r in parallel_results), "every mode agrees with one process"
report("parallel modes: largest difference from one process", worst, bar=parallel.TOLERANCE,
       higher_is_better=False, digits=8)

fig, (ax_diff, ax_loss) = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
names = list(by_mode)
ax_diff.barh(names, [max(by_mode[n]["largest_difference"], 1e-10) for n in names], color="tab:blue")
ax_diff.axvline(parallel.TOLERANCE, color="red", linestyle="--", label=f"tolerance {parallel.TOLERANCE:.0e}")
ax_diff.set(xscale="log", xlabel="largest |difference| from one process (log)", title="Agreement after the steps")
ax_diff.invert_yaxis()
ax_diff.legend(fontsize=8)
for n, marker in zip(names, "os^vD"):
    ax_loss.plot(by_mode[n]["losses"], marker=marker, linestyle="none", label=n, alpha=0.7)
ax_loss.plot(parallel_results[0]["reference_losses"], color="black", label="one process")
ax_loss.set(xlabel="step", ylabel="training loss", xticks=range(len(parallel_results[0]["losses"])),
            title="Loss of every step: all modes on the single-process line")
ax_loss.legend(fontsize=7)
show(fig)

# %% [markdown]
# ### 4.1 FSDP: memory per process
# DDP keeps a full copy of parameters, gradients and optimizer state (here SGD momentum) in every process; FSDP2's
# `fully_shard` turns each parameter into a `DTensor` sharded across processes and all-gathers a layer's parameters
# only while that layer runs. Measured as the bytes each process holds between steps (local shards only):

# %%
ddp, fsdp = by_mode["ddp"], by_mode["fsdp"]
assert abs(fsdp["bytes_per_process"] - ddp["bytes_per_process"] / 2) <= 0.01 * ddp["bytes_per_process"], \
    "with 2 processes FSDP holds half of DDP's training state per process"
report("FSDP training state per process / DDP's (2 processes)", fsdp["bytes_per_process"] / ddp["bytes_per_process"])
fig = comparison_chart({"DDP (replicated)": {"mb": ddp["bytes_per_process"] / 1e6},
                        "FSDP2 fully_shard": {"mb": fsdp["bytes_per_process"] / 1e6}},
                       {"mb": "MB of parameters + gradients + momentum per process"},
                       title="Training state per process, 2 processes", width=7, best={"mb": "min"})
show(fig)
print(f"DDP holds {ddp['bytes_per_process'] / 1e6:.2f} MB per process, FSDP {fsdp['bytes_per_process'] / 1e6:.2f} MB"
      + (f"; peak CUDA memory {fsdp['peak_cuda_bytes'] / 1e6:.1f} MB" if "peak_cuda_bytes" in fsdp else "")
      + ". With N processes FSDP holds 1/N, plus the gathered parameters of the layer running now.")

# %% [markdown]
# ### 4.2 Pipelines and their bubble
# With p stages and the batch cut into m micro-batches, a stage waits while the pipeline fills and drains. In an
# ideal schedule (equal stage times, free communication) the idle share is the **bubble fraction**
# (p − 1)/(m + p − 1). **GPipe** runs all m forwards, then all m backwards (m micro-batches of activations held at
# once); **1F1B** alternates one forward and one backward after a warm-up, so a stage holds at most p micro-batches
# of activations — the same bubble, less memory. Below: the measured timeline of each stage's forward (F) and
# backward (B) per micro-batch, and the measured idle share beside the formula as m grows (a wider MLP, so that each
# micro-batch has enough work to time).

# %%
pipeline_runs = [] if MICROBATCH_SWEEP else [r for r in parallel_results if r["mode"] == "pipeline"]
for m in MICROBATCH_SWEEP:
    runs, summary = torchrun("--mode", "pipeline", "--microbatches", str(m), "--hidden", str(PIPE_HIDDEN),
                             "--batch", str(64 * m), "--steps", "3")
    print(summary)
    pipeline_runs += runs
assert all(r["agrees"] for r in pipeline_runs), "every pipeline run agrees with one process"

fig, axes = plt.subplots(1, 2, figsize=(12, 2.6), layout="constrained")
shown = [r for r in pipeline_runs if r["microbatches"] == pipeline_runs[-1]["microbatches"]]
for ax, run in zip(axes, shown):
    parallel.draw_timeline(ax, run["timeline"], unit="ms into the step", labels=False)
    ax.set_title(f"{run['schedule']}, {run['microbatches']} micro-batches, measured (blue forward, orange backward)")
show(fig)

fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
for schedule, marker in zip(parallel.SCHEDULES, "os"):
    pts = [(r["microbatches"], np.mean(r["idle_per_stage"])) for r in pipeline_runs if r["schedule"] == schedule]
    ax.plot(*zip(*pts), marker=marker, label=f"{schedule}: measured idle (mean of stages)")
ms = np.arange(1, max(r["microbatches"] for r in pipeline_runs) + 1)
ax.plot(ms, [parallel.bubble_fraction(2, int(k)) for k in ms], "k--", label="bubble (p − 1)/(m + p − 1), p = 2")
ax.set(xlabel="micro-batches m", ylabel="idle share of the step", ylim=(0, 1), xticks=ms,
       title=f"Pipeline idle time, 2 stages, gloo on {CORES} CPU cores")
ax.legend(fontsize=8)
show(fig)
for r in pipeline_runs:
    print(f"{r['schedule']:>5}, m = {r['microbatches']}: idle measured {np.mean(r['idle_per_stage']):.0%} "
          f"(stages {', '.join(f'{v:.0%}' for v in r['idle_per_stage'])}) vs formula {r['bubble_formula']:.0%}")
above = sum(np.mean(r["idle_per_stage"]) > r["bubble_formula"] for r in pipeline_runs)
print(f"The measured idle time is above the formula in {above} of {len(pipeline_runs)} runs ({profile()} profile, "
      f"{CORES} CPU cores): besides the bubble it holds the send/recv between processes (on the same CPU cores as "
      "the compute, with no streams to overlap them) and the imbalance between stages (the last stage also computes "
      "the loss).")

# %% [markdown]
# **Pipeline explorer.** The formula comes from the ideal schedule: equal stages, free communication.
# `parallel.ideal_schedule` simulates it — each forward waits for the previous stage's, each backward for the next
# stage's — and the idle share it finds is exactly (p − 1)/(m + p − 1) for GPipe and 1F1B alike (the unit tests check
# it for several p and m). Move the sliders: more stages widen the bubble, more micro-batches shrink it; 1F1B starts
# backwards early, so it holds fewer micro-batches of activations at once, for the same bubble.

# %%
from utils.widgets import Explorer, dropdown, slider  # noqa: E402

events = parallel.ideal_schedule(4, 8, "1F1B")
assert max(abs(v - parallel.bubble_fraction(4, 8)) for v in parallel.idle_fractions(events)) < 1e-9, \
    "the simulated idle share of every stage equals the bubble formula (p − 1)/(m + p − 1)"
explorer = Explorer(parallel.schedule_figure, {"stages": slider("stages p", 1, 6, 4),
                                               "microbatches": slider("micro-batches m", 1, 12, 4),
                                               "schedule": dropdown("schedule", list(parallel.SCHEDULES), "1F1B")},
                    title="Pipeline schedule explorer")
show(explorer)
before = explorer.image.value
explorer.set(stages=explorer.values()["stages"] % 6 + 1)
assert explorer.image.value != before, "the first control changes the figure"

# %% [markdown]
# **Exercise (medium).** What a schedule costs in memory: a stage holds a micro-batch's activations from its forward
# until its backward. In the exercise version of this notebook the cell below keeps only the signature and hints of
# `peak_activations`, the most micro-batches each stage holds at once under GPipe and under 1F1B: write it, and the
# self-check compares it with the counts read off the course's schedules (`parallel.stage_order`).

# %% tags=["exercise"]
def peak_activations(stages, microbatches):
    """Activation memory of a pipeline, in micro-batches: p = stages, m = microbatches (ints ≥ 1) → long tensor p×2,
    row s (stage s, 0 the first) = (GPipe, 1F1B): the most micro-batches whose forward has run on stage s and whose
    backward has not, at any moment of the step.

    Hints: GPipe runs all m forwards before any backward. 1F1B runs p − s − 1 warm-up forwards on stage s (all m if
    there are fewer), then one forward and one backward in turn: count the forward before the first backward too.
    """
    stage = torch.arange(stages)
    one_f_one_b = (stages - stage).clamp(max=microbatches)
    return torch.stack([torch.full((stages,), microbatches), one_f_one_b], 1)


# %% tags=["self-check"]
peak_activations = exercises.check("peak_activations", peak_activations)

# %% [markdown]
# ### 4.3 Tensor parallelism by hand, and gradient accumulation
# `parallel.ColumnParallelLinear` keeps rows of W on each process (each computes some output features);
# `parallel.RowParallelLinear` keeps columns (each takes the matching input features; the partial outputs are
# summed by all-reduce). Megatron-LM pairs them — column then row — so a whole MLP block needs **one** all-reduce
# forward and one backward; the two autograd functions `_CopyToParallel` (identity forward, all-reduce backward) and
# `_ReduceFromParallel` (all-reduce forward, identity backward) are Megatron's *f* and *g*. The tensor run above
# checked the pair, and a column split with an all-gathered output alone (`one_layer_difference`).
#
# **Gradient accumulation** is the pipeline's micro-batching without the pipeline: sum the gradients of k small
# batches, then step once — the same update as one batch k times larger, in the memory of a small one. Checked here
# in one process:

# %%
torch.manual_seed(0)
accumulate, whole = parallel.make_mlp(hidden=64), parallel.make_mlp(hidden=64)
xb, yb = parallel.fashion_batches(1, 64)[0]
F.cross_entropy(whole(xb), yb).backward()
for x_part, y_part in zip(xb.chunk(4), yb.chunk(4)):
    (F.cross_entropy(accumulate(x_part), y_part) / 4).backward()   # divide by k: the mean over the whole batch
grad_difference = max((a.grad - b.grad).abs().max().item() for a, b in zip(accumulate.parameters(),
                                                                          whole.parameters()))
assert grad_difference < 1e-6, f"accumulated gradients differ from the full batch's by {grad_difference:.1e}"
print(f"4 accumulated micro-batches of 16 vs one batch of 64: largest gradient difference {grad_difference:.1e}")

# %%
# with BatchNorm, accumulation is not the larger batch: each micro-batch is normalised by its own statistics
with torch.random.fork_rng(devices=[]):                          # leave the chapter's random stream alone
    bn_accumulate = nn.Sequential(parallel.make_mlp(hidden=64), nn.BatchNorm1d(10))
bn_whole = copy.deepcopy(bn_accumulate)
F.cross_entropy(bn_whole(xb), yb).backward()
for x_part, y_part in zip(xb.chunk(4), yb.chunk(4)):
    (F.cross_entropy(bn_accumulate(x_part), y_part) / 4).backward()
bn_difference = max((a.grad - b.grad).abs().max().item() for a, b in zip(bn_accumulate.parameters(),
                                                                          bn_whole.parameters()))
assert bn_difference > 1e-3, f"with BatchNorm the accumulated gradients should differ; they differ by {bn_difference:.1e}"
print(f"the same MLP with BatchNorm on its logits: largest gradient difference {bn_difference:.2f}")

# %% [markdown]
# ## Interview questions
#
# <details><summary>Data vs model vs pipeline parallelism: what is split, and when is each used?</summary>
#
# Data parallelism replicates the model and splits the batch; gradients are averaged by all-reduce. It is the
# default whenever the model fits one device. Model (tensor) parallelism splits each layer's weights across devices
# and communicates activations inside every layer — bandwidth-hungry, used within a node (NVLink) for layers too big
# for one device. Pipeline parallelism gives consecutive layers to different devices and streams micro-batches
# through them — little communication (only activations at stage borders), but a bubble. Large models combine all
# three (3-D parallelism) plus sharding. (see "4. Across processes": all four checked against one process)
# </details>
#
# <details><summary>What is all-reduce, and what does it cost?</summary>
#
# Every process contributes a tensor and every process ends with their sum (or mean). Ring all-reduce does it as a
# reduce-scatter then an all-gather around a ring: each process sends and receives 2(N − 1)/N × the tensor's size —
# nearly independent of N — in 2(N − 1) latency steps. DDP all-reduces gradients in buckets during the backward pass
# so communication overlaps computation. (see "4. Across processes": the DDP run, and `_ReduceFromParallel`)
# </details>
#
# <details><summary>What are ZeRO stages 1–3 and FSDP?</summary>
#
# ZeRO removes the redundancy of data parallelism: stage 1 shards optimizer states, stage 2 also gradients (reduce-
# scatter instead of all-reduce), stage 3 also parameters (all-gathered layer by layer just before use, freed
# after). FSDP is PyTorch's ZeRO-3; FSDP2's `fully_shard` shards each parameter as a DTensor. Memory per process
# falls to ≈ 1/N of the training state at the cost of ~1.5× DDP's communication. (see "4.1 FSDP: memory per
# process": half of DDP's bytes with 2 processes)
# </details>
#
# <details><summary>What is a pipeline bubble, and how do GPipe and 1F1B differ?</summary>
#
# The idle time while a pipeline fills and drains: with p stages and m micro-batches it is (p − 1)/(m + p − 1) of
# an ideal schedule, so more micro-batches shrink it. GPipe runs all forwards then all backwards, holding m
# micro-batches of activations; 1F1B interleaves one forward and one backward after a warm-up, holding at most p —
# the same bubble, less memory. Interleaved and zero-bubble schedules shrink the bubble further. (see "4.2
# Pipelines and their bubble": the timelines and measured idle vs formula)
# </details>
#
# <details><summary>What is gradient accumulation, and when do you need it?</summary>
#
# Running k micro-batches forward and backward, summing their gradients (each loss divided by k), and stepping once:
# the update of a k× larger batch in the memory of one micro-batch. Used when the batch you want does not fit; with
# BatchNorm it is not exactly equivalent (statistics are per micro-batch). With DDP, skip the all-reduce on all but
# the last micro-batch (`no_sync`). (see "4.3": gradients equal to the full batch's)
# </details>
#
# <details><summary>Mixed precision: why bf16, and what is loss scaling for?</summary>
#
# Tensor cores run 16-bit matmuls many times faster than float32 and 16-bit tensors halve memory traffic. fp16 has
# a 5-bit exponent: small gradients underflow to zero, so the loss is multiplied by a scale (dynamic: raised until
# an overflow, then halved) and gradients divided back before the step (`torch.amp.GradScaler`). bf16 keeps
# float32's 8-bit exponent, so it needs no loss scaling, at the cost of precision: 7 stored mantissa bits (8 with the
# implicit leading one; fp16 stores 10, float32 23). Weights and optimizer state stay float32 (the master copy);
# autocast picks the precision per op. (see "2. The speedrun ladder": the bf16 rung on a GPU and `eps` of each
# format; `utils.training.autocast`)
# </details>
#
# <details><summary>Why do compilation and operator fusion make a model faster?</summary>
#
# Most operations in a network (activations, normalisation, adds) are memory-bound: they do a few FLOPs per byte,
# below the machine's ridge point, so their time is spent reading and writing memory, and every separate kernel
# launch adds overhead. Fusing a chain into one kernel reads the input once and writes the output once; a compiler
# (TorchInductor, XLA, TensorRT) does this automatically and picks kernels for the exact shapes; CUDA graphs remove
# the remaining launch overhead. Compilation costs time up front, repaid over many steps. (see "1.4 FLOPs against
# bytes", "3.1 Fusion" and the compile rung of the ladder)
# </details>
#
# <details><summary>What is quantisation, and what do static, dynamic and weight-only mean?</summary>
#
# Representing weights and/or activations with fewer bits (int8, int4, fp8) and a scale (and zero point): 4× less
# memory for int8, faster integer GEMMs. Dynamic: weights quantised ahead, activation scales computed per batch at
# run time (no calibration; good for linear/LSTM layers on CPU). Static: activation scales calibrated on sample data
# ahead (fastest; needs calibration). Weight-only: only weights are quantised and dequantised on the fly (for
# memory-bound inference on GPUs). Quantisation-aware training simulates rounding during training to recover
# accuracy. (see "3.2 int8 dynamic quantisation": the accuracy kept and the size)
# </details>
#
# <details><summary>How are SAM and FasterTransformer made fast?</summary>
#
# FasterTransformer fuses the Transformer's memory-bound steps into few kernels (fused QKV GEMM, fused
# softmax-attention, LayerNorm with residual add, bias + activation in the GEMM epilogue), uses fp16/int8 kernels
# and tensor/pipeline parallelism, and caches keys and values for generation. SAM's image encoder (a ViT-H) is the
# cost: segment-anything-fast used bf16, `torch.compile`, SDPA/FlashAttention, Triton kernels, 2:4 sparsity and int8
# quantisation; MobileSAM, EfficientSAM and EfficientViT-SAM distil a much smaller encoder, while the light prompt
# encoder and mask decoder run per prompt on the cached image embedding. (see "3.1 Fusion" and "3.2 int8")
# </details>
#
# ### Answers you may read that are wrong
#
# <details><summary>Wrong: “Pipeline parallelism is data parallelism plus model parallelism.”</summary>
#
# Right: pipeline parallelism is one kind of model parallelism: it splits the model's *layers* into consecutive
# stages, one per device, and feeds micro-batches through them so that the stages work at the same time; every
# stage sees every micro-batch, and no device holds the whole model. Replicating the whole pipeline for data
# parallelism is a separate choice (with tensor parallelism too: 3-D parallelism). "4.2 Pipelines and their
# bubble" runs GPipe and 1F1B on 2 stages, each checked against one process, and asserts the ideal schedule's idle
# share (p − 1)/(m + p − 1).
#
# </details>
#
# <details><summary>Wrong: “bf16 training needs loss scaling, like fp16.”</summary>
#
# Right: loss scaling exists because float16's 5-bit exponent flushes small gradients to zero (its smallest number
# above zero is 2⁻²⁴ ≈ 6e-8); bfloat16 keeps float32's 8-bit exponent and so its range, down to ~1e-38, and
# `torch.amp.GradScaler` is for fp16 only. "a gradient of 1e-8 underflows to 0 in float16" asserts 1e-8 lost in
# float16, kept in bfloat16, and rescued in float16 by a 2^16 scale; "eps = 2^-(stored mantissa bits); max shows the
# exponent's range" asserts bfloat16's float32-sized range.
#
# </details>
#
# <details><summary>Wrong: “Mixed precision halves the model's memory: the weights are kept in 16 bits.”</summary>
#
# Right: automatic mixed precision keeps the weights, their gradients and the optimizer state in float32 (the
# master copy) and casts each op's inputs to 16 bits as it runs; what shrinks is the activations saved for the
# backward pass and the time of the matmuls, not the 16 bytes each weight costs with AdamW (4 for the weight, 4 for
# its gradient, 8 for the optimizer's two moments). Training wholly in 16 bits is another recipe. "autocast keeps
# the weights in float32" asserts a layer's weight in float32 and its output in bfloat16 under autocast.
#
# </details>
#
# <details><summary>Wrong: “FSDP is model parallelism: each GPU holds and runs part of the model.”</summary>
#
# Right: FSDP (ZeRO-3) is data parallelism with sharded *state*: every process runs the whole model on its own share
# of the batch, but stores only 1/N of every parameter, gradient and optimizer state, all-gathering a layer's
# parameters just before the layer runs and reduce-scattering its gradients. No process computes only part of the
# model, as in tensor or pipeline parallelism. "4.1 FSDP: memory per process" asserts half of DDP's state per
# process with 2 processes, and "4. Across processes" FSDP's losses and parameters equal to one process's.
#
# </details>
#
# <details><summary>Wrong: “torch.compile always speeds up training.”</summary>
#
# Right: compiling costs time up front — about 50 CPU-seconds for our training step on 2 cores — repaid only over
# enough steps, and what it speeds up is mostly memory-bound element-wise chains and launch overhead: a
# compute-bound model, a short run, changing shapes (recompilation) or graph breaks can leave it slower overall.
# "2. The speedrun ladder" shows the compile rung's first-step cost apart from its speed, and "2.2 Accuracy per
# second" compiles the recipes on a GPU only. Timings are printed, not asserted: they depend on the machine.
#
# </details>
#
# <details><summary>Wrong: “Gradient accumulation is exactly the same as training with the larger batch.”</summary>
#
# Right: only when each example's loss ignores the rest of its batch, and each micro-batch's loss is divided by k
# (equal micro-batches). BatchNorm normalises each micro-batch by its own mean and variance (and updates its running
# statistics k times), so the gradients differ. "with BatchNorm, accumulation is not the larger batch" asserts a
# difference above 1e-3 (0.18 measured) where the plain MLP of "4.3 Tensor parallelism by hand, and gradient
# accumulation" agrees to 1e-6.
#
# </details>
