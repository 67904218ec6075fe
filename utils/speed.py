"""Measuring speed honestly, the Fashion-MNIST speedrun, operator fusion and int8 quantisation.

Introduced in Chapter 11 (11_speed_and_scale).

- `measure`: a call's time after warm-up, over repeats, with CUDA events and synchronisation on a GPU (the GPU runs
  asynchronously: without a sync a timer measures only the launch); `profile_table` reads a `torch.profiler` trace
  as a table; `find_syncs` lists host–device synchronisations with `torch.cuda.set_sync_debug_mode` (GPU only).
- `layer_costs`: FLOPs, bytes moved and arithmetic intensity of each layer; `machine_balance` measures this machine's
  FLOP/s and bandwidth, whose ratio says which layers are bound by compute and which by memory.
- `Rung` + `measure_rung`: one step of the speedrun ladder — plain DataLoader or device-resident data, threads,
  channels_last, bf16, `torch.compile` (its cost apart), CUDA graphs, batch size — measured as training images/s;
  `speedrun_ladder` lists the rungs climbed on a GPU or on a CPU (the chapter and `make bench` climb the same).
- `train_recipe`: a short training run with the tricks that buy accuracy per second (schedule, label smoothing, EMA
  of the weights, flip test-time augmentation).
- `UnfusedBlock` / `FusedBlock`: a Transformer block written op by op, and the same weights with fused QKV, SDPA and
  library LayerNorm/GELU — as FasterTransformer fuses them; `quantize_int8` wraps dynamic int8 quantisation.
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .data import DeviceLoader, PlainFashionMNIST, standardize
from .measuring import count_flops
from .runtime import channels_last, synchronize
from .training import autocast


# ------------------------------------------------------------------------------------------------- measuring
def measure(fn, *, device=None, warmup: int = 2, repeats: int = 5) -> dict:
    """Seconds per call of ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed ones.

    On CUDA each call is timed by CUDA events recorded around it on the stream, and the host waits for the end
    event: the GPU's own time, not the microseconds the host took to queue the kernels. Returns
    ``{"median", "best", "first", "times"}`` (``first``: the first warm-up call, where lazy initialisation,
    allocation and compilation land).
    """
    if not callable(fn) or warmup < 0 or repeats < 1:
        raise ValueError("measure(fn, warmup=≥0, repeats=≥1): fn must be a callable taking no arguments")
    dev = torch.device(device or "cpu")
    cuda = dev.type == "cuda"
    first = None
    for i in range(warmup):
        start = time.perf_counter()
        fn()
        synchronize(dev)
        first = time.perf_counter() - start if i == 0 else first
    times = []
    for _ in range(repeats):
        if cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn()
            end.record()
            end.synchronize()
            times.append(begin.elapsed_time(end) / 1000)
        else:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "best": min(times), "first": first, "times": times}


def profile_table(fn, *, device=None, steps: int = 3, rows: int = 12) -> tuple[str, list]:
    """A `torch.profiler` trace of ``steps`` calls of ``fn()`` read as a table (most self time first).

    Returns the table text and the key averages (``.key``, ``.count``, ``.self_cpu_time_total``…) for counting.
    """
    from torch.profiler import ProfilerActivity, profile
    dev = torch.device(device or "cpu")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    fn()  # warm-up outside the trace
    synchronize(dev)
    with profile(activities=activities) as prof:
        for _ in range(steps):
            fn()
        synchronize(dev)
    averages = prof.key_averages()
    sort = "self_device_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    return averages.table(sort_by=sort, row_limit=rows, max_name_column_width=40), list(averages)


def find_syncs(fn) -> list[str]:
    """The host–device synchronisations ``fn()`` makes on CUDA, as the warnings of
    ``torch.cuda.set_sync_debug_mode("warn")`` (``.item()``, ``.cpu()``, ``print(tensor)``, boolean masks…)."""
    if not torch.cuda.is_available():
        raise RuntimeError("find_syncs needs a CUDA GPU: on a CPU nothing runs asynchronously, so nothing syncs")
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]


def layer_costs(model: nn.Module, x: torch.Tensor) -> list[dict]:
    """FLOPs and bytes of each leaf layer in one forward pass on ``x`` (float32).

    bytes = input + output + parameters, each read or written once (the least traffic a kernel needs); intensity =
    FLOPs / byte. FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions only:
    a ReLU or a BatchNorm counts 0 FLOPs here but still moves its bytes).
    """
    if not torch.is_tensor(x):
        raise TypeError("layer_costs(model, x): x must be an input batch tensor")
    rows, handles = [], []

    def hook(module, inputs, output):
        flops = count_flops(module.forward, *inputs)  # not module(): that would call this hook again
        moved = sum(t.numel() * t.element_size() for t in (*inputs, output) if torch.is_tensor(t))
        moved += sum(p.numel() * p.element_size() for p in module.parameters(recurse=False))
        rows.append({"layer": names[module], "kind": type(module).__name__, "flops": flops, "bytes": moved,
                     "intensity": flops / moved})

    names = {m: n for n, m in model.named_modules() if not list(m.children())}
    for module in names:
        handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return rows


def machine_balance(device=None, size: int = 1024) -> dict:
    """This machine's float32 matmul FLOP/s, copy bandwidth in bytes/s, and their ratio (FLOPs per byte): a layer
    whose intensity is below the ratio waits on memory, above it on arithmetic (the roofline's ridge point)."""
    dev = torch.device(device or "cpu")
    a, b = torch.randn(size, size, device=dev), torch.randn(size, size, device=dev)
    matmul = measure(lambda: a @ b, device=dev, repeats=5)["best"]
    mib = 512 if dev.type == "cuda" else 32  # larger than the caches (an H100's L2 holds 50 MB)
    big = torch.empty(mib * 2 ** 20 // 4, device=dev)
    copy_ = measure(lambda: big.clone(), device=dev, repeats=5)["best"]
    flops, bandwidth = 2 * size ** 3 / matmul, 2 * big.numel() * 4 / copy_
    return {"flops_per_second": flops, "bytes_per_second": bandwidth, "ridge": flops / bandwidth}


# ------------------------------------------------------------------------------------------- the speedrun ladder
@dataclass(frozen=True)
class Rung:
    """One configuration of the training step. ``loader``: "plain" (Dataset + transforms.v2 + DataLoader) or
    "device" (`DeviceLoader`: data resident, batched augmentation); ``threads``: CPU threads (None: as set)."""
    name: str
    loader: str = "device"
    channels_last: bool = False
    bf16: bool = False
    compile: bool = False
    cuda_graphs: bool = False
    batch: int = 128
    threads: int | None = None

    def __post_init__(self):
        if self.loader not in ("plain", "device"):
            raise ValueError(f"Rung.loader must be 'plain' or 'device', not {self.loader!r}")
        if self.cuda_graphs and not self.compile:
            raise ValueError("Rung: cuda_graphs come through torch.compile(mode='reduce-overhead'): set compile=True")


def speedrun_ladder(device, batch: int, *, compile: bool = True) -> list[Rung]:
    """The speedrun's rungs on ``device``'s kind, each adding one change to the rung before, from the plain
    DataLoader up. On CUDA: data on the device → channels_last + bf16 → `torch.compile` → CUDA graphs → batch ×4.
    Elsewhere the steps that matter on a CPU, the first three on one thread: data on the device → channels_last →
    a thread per core → `torch.compile` → batch ×2 (eager: a compiled step would compile again for the new batch
    shape). ``compile=False`` leaves the compile rung out (it costs ~50 CPU-s on 2 cores)."""
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"speedrun_ladder: batch must be a positive integer, not {batch!r}")
    if torch.device(device).type == "cuda":
        fast = dict(channels_last=True, bf16=True, batch=batch)
        rungs = [Rung("plain DataLoader", loader="plain", batch=batch), Rung("data on device", batch=batch),
                 Rung("+ channels_last + bf16", **fast)]
        if compile:
            rungs += [Rung("+ torch.compile", compile=True, **fast),
                      Rung("+ CUDA graphs", compile=True, cuda_graphs=True, **fast),
                      Rung("+ batch ×4", compile=True, cuda_graphs=True, **{**fast, "batch": 4 * batch})]
        return rungs
    cores = os.cpu_count() or 1
    rungs = [Rung("plain DataLoader", loader="plain", batch=batch, threads=1),
             Rung("data on device", batch=batch, threads=1),
             Rung("+ channels_last", channels_last=True, batch=batch, threads=1),
             Rung("+ a thread per core", channels_last=True, batch=batch, threads=cores)]
    if compile:
        rungs += [Rung("+ torch.compile", channels_last=True, compile=True, batch=batch, threads=cores)]
    return rungs + [Rung("+ batch ×2 (eager)", channels_last=True, batch=2 * batch, threads=cores)]


def _step_model(model: nn.Module, rung: Rung) -> nn.Module:
    """``model`` as ``rung``'s training step calls it: compiled when the rung says so, from a clean slate — dynamo
    forgets what this process compiled before (a batch size seen earlier would make this one dynamic), while
    Inductor's on-disk cache still serves kernels it generated before (the compile time shown is what the library's
    caches leave)."""
    if not rung.compile:
        return model
    torch.compiler.reset()
    return torch.compile(model, mode="reduce-overhead" if rung.cuda_graphs else None)


def _inductor_graph_counts() -> tuple[int, int]:
    """Graphs Inductor has so far, in this process, loaded from its on-disk cache and compiled afresh (read from
    torch's private counters: the one place the library says whether a compile was served from the cache)."""
    from torch._dynamo.utils import counters
    return counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"]


def _graphs_since(before: tuple[int, int]) -> dict:
    (cached, compiled), (cached_before, compiled_before) = _inductor_graph_counts(), before
    return {"graphs_cached": cached - cached_before, "graphs_compiled": compiled - compiled_before}


def _batches(rung: Rung, images, labels, dev, workers: int):
    if rung.loader == "device":
        return DeviceLoader(images, labels, rung.batch, shuffle=True, augment=True, device=dev, drop_last=True)
    return DataLoader(PlainFashionMNIST(images, labels), batch_size=rung.batch, shuffle=True, num_workers=workers,
                      pin_memory=dev.type == "cuda", drop_last=True, persistent_workers=workers > 0)


def _endless(loader):
    """Batches of ``loader``, epoch after epoch (a large batch may need more steps than one epoch holds)."""
    while True:
        yield from loader


def measure_rung(rung: Rung, model_fn, images, labels, *, device, steps: int, workers: int = 2) -> dict:
    """Training images/s of ``model_fn()`` (a fresh model) with ``rung``'s settings, over ``steps`` steps after two
    warm-up steps; the first step's extra time (compilation, graph capture, lazy init) is reported apart as
    ``first_step_extra_s``, with the graphs Inductor took from its on-disk cache (``graphs_cached``) or compiled
    (``graphs_compiled``). The step never reads a value back to the host: one sync at each end of the timing."""
    dev = torch.device(device)
    if rung.cuda_graphs and dev.type != "cuda":
        raise ValueError(f"{rung.name}: CUDA graphs need a CUDA device")
    if rung.bf16 and dev.type != "cuda":
        raise ValueError(f"{rung.name}: bf16 autocast is a GPU rung here (CPU bf16 matmuls are emulated on most "
                         "CPUs and slower than float32)")
    threads = torch.get_num_threads()
    if rung.threads:
        torch.set_num_threads(rung.threads)
    try:
        model = model_fn().to(dev)
        if rung.channels_last:
            model = channels_last(model)
        step_model = _step_model(model, rung)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        precision = autocast(dev) if rung.bf16 else torch.autocast(dev.type, enabled=False)

        def step(x, y):
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            if rung.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with precision:
                loss = F.cross_entropy(step_model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        loader = _batches(rung, images, labels, dev, workers)
        if len(loader) == 0:
            raise ValueError(f"{rung.name}: {len(images)} images make no full batch of {rung.batch}")
        it = _endless(loader)
        graphs_before = _inductor_graph_counts()
        first = measure_step = None
        for i in range(2):
            start = time.perf_counter()
            step(*next(it))
            synchronize(dev)
            if i == 0:
                first = time.perf_counter() - start
            else:
                measure_step = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps):
            step(*next(it))
        synchronize(dev)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    per_step = seconds / steps
    return {"rung": rung.name, "images_per_second": steps * rung.batch / seconds, "step_s": per_step,
            "first_step_extra_s": max(first - per_step, 0.0), "second_step_s": measure_step,
            **_graphs_since(graphs_before)}


# ------------------------------------------------------------------------------------------- accuracy per second
@dataclass(frozen=True)
class Recipe:
    """The tricks a training run uses: ``schedule`` "constant" or "onecycle"; ``label_smoothing`` ε; ``ema`` decay
    of an exponential moving average of the weights (0: none)."""
    name: str
    schedule: str = "onecycle"
    label_smoothing: float = 0.0
    ema: float = 0.0

    def __post_init__(self):
        if self.schedule not in ("constant", "onecycle"):
            raise ValueError(f"Recipe.schedule must be 'constant' or 'onecycle', not {self.schedule!r}")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.ema < 1:
            raise ValueError("Recipe: label_smoothing and ema must lie in [0, 1)")


@torch.no_grad()
def accuracy(model: nn.Module, images, labels, *, flip_tta: bool = False, batch: int = 1000) -> float:
    """Test accuracy of ``model`` on uint8 ``images``; with ``flip_tta`` the logits of each image and its mirror
    image are averaged (test-time augmentation: two forward passes for one answer)."""
    model.eval()
    dev = next(model.parameters()).device
    correct = torch.zeros((), device=dev)
    for x, y in DeviceLoader(images, labels, batch, device=dev):
        with autocast(dev):
            logits = model(x).float()
            if flip_tta:
                logits = logits.softmax(1) + model(x.flip(3)).float().softmax(1)
        correct += (logits.argmax(1) == y).sum()
    return correct.item() / len(labels)


def train_recipe(recipe: Recipe, model_fn, train, test, *, device, epochs: int, batch: int, lr: float,
                 rung: Rung | None = None) -> dict:
    """Train ``model_fn()`` on ``train`` = (images, labels) with ``recipe``; accuracy on ``test`` with the final
    weights, the EMA weights (when kept) and flip TTA on the better of them, plus the training seconds ``train_s``
    and, within them, the first step's extra time ``first_step_extra_s`` (compilation, lazy initialisation) with the
    graphs Inductor took from its on-disk cache or compiled (``graphs_cached``, ``graphs_compiled``).

    The steps never read a value back to the host — the EMA too is updated on the device (torch's `AveragedModel`
    checks its step counter with ``bool(tensor)``: a host–device sync at every step on a GPU); the one sync is after
    the first step, to time it apart."""
    dev = torch.device(device)
    rung = rung or Rung("eager")
    model = model_fn().to(dev)
    if rung.channels_last:
        model = channels_last(model)
    step_model = _step_model(model, rung)
    loader = DeviceLoader(*train, batch, shuffle=True, augment=True, device=dev, drop_last=True)
    if len(loader) == 0 or epochs < 1:
        raise ValueError(f"train_recipe: {epochs} epoch(s) of {len(train[1])} training images in full batches of "
                         f"{batch}: no step to take")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    schedule = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs, steps_per_epoch=len(loader))
                if recipe.schedule == "onecycle" else None)
    ema = copy.deepcopy(model).requires_grad_(False) if recipe.ema else None
    if ema is not None:  # the floating-point weights and buffers (BatchNorm's running statistics) are averaged
        averaged, current = ([t for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]
                             for m in (ema, model))
    model.train()
    graphs_before = _inductor_graph_counts()
    first_step_s = None
    start = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            with autocast(dev):
                loss = F.cross_entropy(step_model(x), y, label_smoothing=recipe.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if schedule is not None:
                schedule.step()
            if ema is not None:  # foreach: a few fused kernels for all the tensors, not one kernel a tensor
                with torch.no_grad():  # weight 1 at the first step: the average starts from the trained weights
                    torch._foreach_lerp_(averaged, current, 1.0 if first_step_s is None else 1 - recipe.ema)
            if first_step_s is None:
                synchronize(dev)
                first_step_s = time.perf_counter() - start
    synchronize(dev)
    seconds = time.perf_counter() - start
    steps = epochs * len(loader)
    later_step_s = (seconds - first_step_s) / (steps - 1) if steps > 1 else first_step_s
    result = {"recipe": recipe.name, "train_s": seconds, "first_step_extra_s": max(first_step_s - later_step_s, 0.0),
              **_graphs_since(graphs_before), "images": steps * batch, "acc": accuracy(model, *test)}
    best = model
    if ema is not None:
        result["ema_acc"] = accuracy(ema, *test)
        best = ema if result["ema_acc"] >= result["acc"] else model
    result["tta_acc"] = accuracy(best, *test, flip_tta=True)
    return result


# ------------------------------------------------------------------------------------------------ operator fusion
class UnfusedBlock(nn.Module):
    """A pre-norm Transformer block written op by op, as a naive implementation launches it: LayerNorm from mean
    and variance, separate Q, K, V projections, softmax(QKᵀ/√d)V as four ops, bias then GELU as two."""

    def __init__(self, dim: int = 128, heads: int = 4, hidden: int = 512):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.k, self.v, self.proj = (nn.Linear(dim, dim) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    @staticmethod
    def layer_norm(x, norm):
        mean = x.mean(-1, keepdim=True)
        var = (x - mean).square().mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias

    def split(self, x):  # B×N×D → B×heads×N×D/heads
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, x):
        h = self.layer_norm(x, self.norm1)
        q, k, v = self.split(self.q(h)), self.split(self.k(h)), self.split(self.v(h))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        attention = scores.softmax(-1) @ v
        x = x + self.proj(attention.transpose(1, 2).flatten(2))
        h = self.layer_norm(x, self.norm2)
        h = F.linear(h, self.fc1.weight) + self.fc1.bias        # matmul, then bias: two passes over memory
        return x + self.fc2(F.gelu(h))


class FusedBlock(nn.Module):
    """``UnfusedBlock``'s weights with FasterTransformer's fusions: one QKV matmul (3 weights concatenated),
    softmax-attention in one SDPA kernel, the library's one-kernel LayerNorm, bias folded into the matmul
    (addmm); `torch.compile` then fuses the remaining element-wise chains (bias+GELU, residual adds)."""

    def __init__(self, unfused: UnfusedBlock):
        super().__init__()
        if not isinstance(unfused, UnfusedBlock):
            raise TypeError("FusedBlock(unfused): pass the UnfusedBlock whose weights it should reuse")
        self.heads = unfused.heads
        self.norm1, self.norm2 = copy.deepcopy(unfused.norm1), copy.deepcopy(unfused.norm2)
        dim = unfused.q.in_features
        self.qkv = nn.Linear(dim, 3 * dim)
        with torch.no_grad():
            self.qkv.weight.copy_(torch.cat([unfused.q.weight, unfused.k.weight, unfused.v.weight]))
            self.qkv.bias.copy_(torch.cat([unfused.q.bias, unfused.k.bias, unfused.v.bias]))
        self.proj, self.fc1, self.fc2 = (copy.deepcopy(m) for m in (unfused.proj, unfused.fc1, unfused.fc2))

    def forward(self, x):
        q, k, v = self.qkv(self.norm1(x)).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        attention = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(attention.transpose(1, 2).flatten(2))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


def sdpa_backends(device) -> dict:
    """The SDPA back-ends that run here: name → `torch.nn.attention.SDPBackend` (math, flash, memory-efficient,
    cuDNN; which ones depends on the device, dtype and shapes)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    dev = torch.device(device)
    q = torch.randn(2, 4, 16, 32, device=dev)
    found = {}
    for name in ("MATH", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION"):
        backend = getattr(SDPBackend, name, None)
        if backend is None:
            continue
        try:
            with sdpa_kernel(backend):
                F.scaled_dot_product_attention(q, q, q)
            found[name.lower()] = backend
        except RuntimeError:
            pass  # not available for this device / dtype
    return found


# ------------------------------------------------------------------------------------------------ quantisation
def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` dynamically quantised to int8 (CPU): weights stored as int8 with
    one scale per tensor, activations quantised per batch on the fly, int8×int8 → int32 matmuls (fbgemm/oneDNN).

    ``torch.ao.quantization`` is deprecated in favour of the torchao package; its warning is silenced here.
    """
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("quantize_int8: dynamic int8 quantisation runs on the CPU; move the model there first")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8)


def flat_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 N×1×28×28 → standardised float N×784 (input of an MLP)."""
    return standardize(images).flatten(1)

