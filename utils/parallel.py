"""Training across processes with `torch.distributed`: data parallel (DDP), fully sharded (FSDP2), pipeline and
tensor parallel — each checked against a single-process run of the same model on the same data.

Introduced in Chapter 11 (11_speed_and_scale). Run one mode on two processes with torchrun:

    torchrun --nproc_per_node 2 -m utils.parallel --mode ddp --check
    torchrun --nproc_per_node 2 -m utils.parallel --mode fsdp,pipeline,tensor --check --json out.json

Every rank trains the same MLP on Fashion-MNIST images for a few SGD steps, split the mode's way, and also trains an
unsplit copy alone (no collective touches it: that is the single-process run). ``--check`` compares the loss of
every step and every parameter after the last step, prints the largest difference of each, and exits with status 1
when one exceeds `TOLERANCE`; ``--sabotage`` (DDP only) skips the gradient all-reduce to show the check failing.

Backends: NCCL with one GPU per process when CUDA has enough GPUs, gloo on CPU otherwise. With the installed torch
(2.14) gloo on CPU runs every collective these modes use — FSDP2's all-gather and reduce-scatter
(``reduce_scatter_tensor``), the pipeline's send/recv, all-reduce — so no mode needed a workaround; checked by the
unit tests on 2 gloo processes. What differs from NCCL on GPUs: there are no CUDA streams, so communication does not
overlap computation and shares the same CPU cores — the pipeline's measured idle time includes it.

The modes:

- ``ddp``: `DistributedDataParallel` — each process holds the whole model and half the batch; gradients averaged by
  all-reduce during the backward pass.
- ``fsdp``: `torch.distributed.fsdp.fully_shard` (FSDP2, ZeRO-3) — each process holds 1/N of every parameter,
  gradient and optimizer state; parameters are all-gathered just before a layer needs them and freed after.
- ``pipeline``: `torch.distributed.pipelining` — process i holds stage i (consecutive layers); the batch is cut into
  micro-batches run by the GPipe (all forwards, then all backwards) and 1F1B schedules. `bubble_fraction` gives the
  idle share of an ideal schedule; the run measures the time each stage spends outside forward/backward.
- ``tensor``: one linear layer split across processes by hand (Megatron-LM): the first layer column-wise (each
  process computes some output features), the next row-wise (each process holds the matching input features; the
  partial outputs are summed by all-reduce). `ColumnParallelLinear` with ``gather_output`` all-gathers instead.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .measuring import count_parameters
from .runtime import synchronize

MODES = ("ddp", "fsdp", "pipeline", "tensor")
SCHEDULES = ("GPipe", "1F1B")
TOLERANCE = 1e-4  # largest |difference| allowed in float32 (reduction order differs between the runs: ~1e-7 seen)
HIDDEN, DEPTH = 256, 4  # the MLP: 784 → HIDDEN (→ HIDDEN)×(DEPTH − 1) → 10
LR, MOMENTUM = 0.05, 0.9


# ---------------------------------------------------------------------------------------------------------- helpers
def bubble_fraction(stages: int, microbatches: int) -> float:
    """Idle share of an ideal GPipe or 1F1B schedule: (p − 1)/(m + p − 1) for p stages and m micro-batches.

    Each stage works m forward and m backward slots of the (m + p − 1)-slot schedule per direction; the first stage
    waits p − 1 slots for the last to start its backwards, and the last waits p − 1 slots at the start.
    """
    for name, value in (("stages", stages), ("microbatches", microbatches)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"bubble_fraction: {name} must be a positive integer, not {value!r}")
    return (stages - 1) / (microbatches + stages - 1)


def stage_order(stage: int, stages: int, microbatches: int, schedule: str) -> list[tuple[str, int]]:
    """The order in which ``stage`` runs its forwards ("F", i) and backwards ("B", i) under ``schedule``.

    GPipe: every forward, then every backward. 1F1B: ``stages − stage − 1`` warm-up forwards, then one forward
    and one backward in turn, then the remaining backwards (PyTorch's `Schedule1F1B` order).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, not {schedule!r}")
    if not 0 <= stage < stages:
        raise ValueError(f"stage must lie in 0…{stages - 1}, not {stage}")
    if schedule == "GPipe":
        return [("F", i) for i in range(microbatches)] + [("B", i) for i in range(microbatches)]
    warmup = min(stages - stage - 1, microbatches)
    order = [("F", i) for i in range(warmup)]
    for i in range(microbatches - warmup):
        order += [("F", warmup + i), ("B", i)]
    return order + [("B", i) for i in range(microbatches - warmup, microbatches)]


def ideal_schedule(stages: int, microbatches: int, schedule: str, forward: float = 1.0,
                   backward: float = 2.0) -> list[list[tuple[str, int, float, float]]]:
    """Simulate a pipeline with free communication and equal stages: forward of micro-batch i on stage s waits for
    stage s − 1's, backward for stage s + 1's (the last stage's for its own forward). Per stage, the
    ``(kind, micro-batch, start, end)`` of every slot, in the units of ``forward`` and ``backward``."""
    bubble_fraction(stages, microbatches)  # checks the arguments
    if forward <= 0 or backward <= 0:
        raise ValueError("forward and backward durations must be positive")
    orders = [stage_order(s, stages, microbatches, schedule) for s in range(stages)]
    done: dict[tuple[int, str, int], float] = {}
    clock, position = [0.0] * stages, [0] * stages
    events: list[list] = [[] for _ in range(stages)]
    while any(position[s] < len(orders[s]) for s in range(stages)):
        progressed = False
        for s in range(stages):
            if position[s] == len(orders[s]):
                continue
            kind, i = orders[s][position[s]]
            needs = ((s - 1, "F", i) if s > 0 else None) if kind == "F" else \
                ((s + 1, "B", i) if s < stages - 1 else (s, "F", i))
            if needs is not None and needs not in done:
                continue
            start = max(clock[s], done[needs] if needs else 0.0)
            end = start + (forward if kind == "F" else backward)
            done[(s, kind, i)], clock[s] = end, end
            events[s].append((kind, i, start, end))
            position[s] += 1
            progressed = True
        if not progressed:
            raise RuntimeError("the schedule deadlocked")  # cannot happen for GPipe or 1F1B orders
    return events


def idle_fractions(events) -> list[float]:
    """Per stage, the share of the whole run (first start to last end) spent outside its own slots."""
    total = max(end for stage in events for *_, end in stage) - min(start for stage in events for *_, start, _ in stage)
    return [1 - sum(end - start for *_, start, end in stage) / total for stage in events]


def draw_timeline(ax, events, unit: str = "ms", scale: float = 1e3, labels: bool = True) -> None:
    """Gantt chart of a pipeline: one row per stage, forward slots blue, backward orange, labelled F0, B0, … when
    ``labels`` (up to 8 micro-batches; measured slots of very unequal length are better left unlabelled)."""
    for stage, slots in enumerate(events):
        for kind, chunk, begin, end in slots:
            ax.barh(stage, (end - begin) * scale, left=begin * scale, color="tab:blue" if kind == "F" else "tab:orange",
                    edgecolor="white")
            if labels and len(slots) <= 16:  # labels fit up to 8 micro-batches of equal slots
                ax.text((begin + end) / 2 * scale, stage, f"{kind}{chunk}", ha="center", va="center", fontsize=7)
    ax.set(yticks=range(len(events)), yticklabels=[f"stage {s}" for s in range(len(events))], xlabel=unit)
    ax.set_ylim(len(events) - 0.5, -0.5)


def schedule_figure(stages: int = 4, microbatches: int = 4, schedule: str = "1F1B"):
    """The ideal schedule as a Gantt chart, with its simulated idle share beside the bubble formula (for the
    chapter's pipeline explorer)."""
    import matplotlib.pyplot as plt
    events = ideal_schedule(stages, microbatches, schedule)
    idle = sum(idle_fractions(events)) / stages
    fig, ax = plt.subplots(figsize=(10, 0.6 * stages + 1.4), layout="constrained")
    draw_timeline(ax, events, unit="time (forward = 1, backward = 2)", scale=1.0)
    ax.set_title(f"{schedule}, {stages} stages, {microbatches} micro-batches: idle {idle:.1%} simulated, "
                 f"(p − 1)/(m + p − 1) = {bubble_fraction(stages, microbatches):.1%}")
    return fig


def make_mlp(hidden: int = HIDDEN, depth: int = DEPTH, seed: int = 0) -> nn.Sequential:
    """The model every mode trains: Flatten, ``depth`` Linear+ReLU blocks of width ``hidden``, a 10-way head."""
    if depth < 1 or hidden < 1:
        raise ValueError(f"make_mlp: hidden and depth must be positive, not {hidden} and {depth}")
    torch.manual_seed(seed)
    layers, width = [nn.Flatten()], 28 * 28
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, 10))


def fashion_batches(steps: int, batch: int, device="cpu") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` fixed batches of ``batch`` standardised Fashion-MNIST test images (the same on every process)."""
    from .data import fashion_mnist, standardize
    if steps < 1 or batch < 1 or steps * batch > 10_000:
        raise ValueError(f"fashion_batches: need 1 ≤ steps × batch ≤ 10 000 images, got {steps} × {batch}")
    images, labels = fashion_mnist("test")
    x, y = standardize(images[:steps * batch]).to(device), labels[:steps * batch].to(device)
    return list(zip(x.split(batch), y.split(batch)))


def train_single(model: nn.Module, batches) -> tuple[list[float], torch.optim.Optimizer]:
    """The single-process reference: SGD with momentum over ``batches``; the loss of each step, the optimizer."""
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    losses = []
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, opt


def max_difference(reference: dict, other: dict) -> float:
    """Largest |difference| between two state dicts with the same keys and shapes."""
    if reference.keys() != other.keys():
        raise ValueError(f"max_difference: the state dicts hold different tensors: {sorted(reference)} vs "
                         f"{sorted(other)}")
    worst = 0.0
    for key, value in reference.items():
        if value.shape != other[key].shape:
            raise ValueError(f"max_difference: {key} has shape {tuple(value.shape)} in the reference but "
                             f"{tuple(other[key].shape)} here")
        worst = max(worst, (value.detach().float().cpu() - other[key].detach().float().cpu()).abs().max().item())
    return worst


def state_bytes(tensors) -> int:
    """Bytes held by these tensors on this process (a DTensor counts its local shard only)."""
    total = 0
    for t in tensors:
        local = t.to_local() if hasattr(t, "to_local") else t
        total += local.numel() * local.element_size()
    return total


def training_state(model: nn.Module, opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Parameters, gradients and optimizer buffers: what training keeps between steps."""
    tensors = [p for p in model.parameters()] + [p.grad for p in model.parameters() if p.grad is not None]
    tensors += [v for state in opt.state.values() for v in state.values() if torch.is_tensor(v)]
    return tensors


# ------------------------------------------------------------------------ tensor parallel by hand (Megatron's f, g)
class _CopyToParallel(torch.autograd.Function):
    """Identity forward; all-reduce of the gradient backward (Megatron's f): each rank's input feeds part of the
    output, so the input's gradient is the sum of the ranks' parts."""

    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad


class _ReduceFromParallel(torch.autograd.Function):
    """All-reduce (sum) forward; identity backward (Megatron's g): the partial products of a row split add up."""

    @staticmethod
    def forward(ctx, x):
        x = x.contiguous()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad


class _GatherFromParallel(torch.autograd.Function):
    """All-gather along the last dimension forward; backward keeps this rank's slice of the gradient."""

    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.width = x.shape[-1]
        return torch.cat(parts, dim=-1)

    @staticmethod
    def backward(ctx, grad):
        rank = dist.get_rank()
        return grad[..., rank * ctx.width:(rank + 1) * ctx.width].contiguous()


def _shard(tensor: torch.Tensor, dim: int) -> torch.Tensor:
    world, rank = dist.get_world_size(), dist.get_rank()
    if tensor.shape[dim] % world:
        raise ValueError(f"cannot split {tuple(tensor.shape)} along dim {dim} over {world} processes: "
                         f"choose sizes divisible by the number of processes")
    return tensor.chunk(world, dim)[rank].clone()


class ColumnParallelLinear(nn.Module):
    """``full``'s output features split across processes: this rank holds rows of W (out/N × in) and of b.

    x (…×in, the same on every rank) → x Wᵢᵀ + bᵢ (…×out/N); with ``gather_output`` all ranks' parts are
    all-gathered into the full …×out output.
    """

    def __init__(self, full: nn.Linear, gather_output: bool = False):
        super().__init__()
        self.weight = nn.Parameter(_shard(full.weight.detach(), 0))
        self.bias = nn.Parameter(_shard(full.bias.detach(), 0))
        self.gather_output = gather_output

    def forward(self, x):
        out = F.linear(_CopyToParallel.apply(x), self.weight, self.bias)
        return _GatherFromParallel.apply(out) if self.gather_output else out


class RowParallelLinear(nn.Module):
    """``full``'s input features split across processes: this rank holds columns of W (out × in/N).

    xᵢ (…×in/N, this rank's features, as a column-parallel layer leaves them) → Σᵢ xᵢ Wᵢᵀ (all-reduce) + b.
    """

    def __init__(self, full: nn.Linear):
        super().__init__()
        self.weight = nn.Parameter(_shard(full.weight.detach(), 1))
        self.bias = nn.Parameter(full.bias.detach().clone())  # added once, after the sum

    def forward(self, x):
        return _ReduceFromParallel.apply(F.linear(x, self.weight)) + self.bias


def _gathered(tensor: torch.Tensor, dim: int) -> torch.Tensor:
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.detach().contiguous())
    return torch.cat(parts, dim)


# --------------------------------------------------------------------------------------------------------- the modes
def _mean_over_ranks(value: torch.Tensor) -> float:
    value = value.detach().clone()
    dist.all_reduce(value)
    return value.item() / dist.get_world_size()


def _train_on_this_ranks_share(model: nn.Module, opt, batches, around_backward=nullcontext) -> list[float]:
    """SGD steps on this rank's 1/N of every batch, forward and backward inside ``around_backward()``; the loss of
    each step averaged over the ranks."""
    world, rank = dist.get_world_size(), dist.get_rank()
    losses = []
    for x, y in batches:
        with around_backward():
            loss = F.cross_entropy(model(x.chunk(world)[rank]), y.chunk(world)[rank])
            opt.zero_grad()
            loss.backward()
        opt.step()
        losses.append(_mean_over_ranks(loss))
    return losses


def run_ddp(batches, dev, hidden=HIDDEN, sabotage=False) -> dict:
    """Each rank: the whole model, 1/N of every batch; DDP all-reduces (averages) the gradients in backward."""
    from torch.nn.parallel import DistributedDataParallel as DDP
    model = make_mlp(hidden).to(dev)
    ddp = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    opt = torch.optim.SGD(ddp.parameters(), lr=LR, momentum=MOMENTUM)
    # no_sync: skip the all-reduce (the broken run)
    losses = _train_on_this_ranks_share(ddp, opt, batches, ddp.no_sync if sabotage else nullcontext)
    bytes_ = state_bytes(training_state(model, opt))
    return {"losses": losses, "state": model.state_dict(), "bytes_per_process": bytes_}


def run_fsdp(batches, dev, hidden=HIDDEN) -> dict:
    """FSDP2: every Linear its own shard group, then the root; each rank keeps 1/N of each parameter (a DTensor)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    mesh = init_device_mesh(dev.type, (dist.get_world_size(),))
    model = make_mlp(hidden).to(dev)
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    losses = _train_on_this_ranks_share(model, opt, batches)
    sharded = state_bytes(training_state(model, opt))
    full = {k: v.full_tensor() for k, v in model.state_dict().items()}  # all-gathers every shard
    extra = {"peak_cuda_bytes": torch.cuda.max_memory_allocated(dev)} if dev.type == "cuda" else {}
    return {"losses": losses, "state": full, "bytes_per_process": sharded, **extra}


def _stage_slices(model: nn.Sequential, stages: int) -> list[slice]:
    """Cut the MLP's Linear(+ReLU) blocks into ``stages`` consecutive groups of near-equal size."""
    starts = [i for i, m in enumerate(model) if isinstance(m, nn.Linear)]
    if stages > len(starts):
        raise ValueError(f"the MLP has {len(starts)} linear layers: at most {len(starts)} pipeline stages, "
                         f"not {stages} (run fewer processes)")
    cuts = [starts[round(k * len(starts) / stages)] for k in range(stages)] + [len(model)]
    cuts[0] = 0
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]


def run_pipeline(batches, dev, hidden=HIDDEN, schedule="GPipe", microbatches=4) -> dict:
    """Stage i of the MLP on rank i; each batch in ``microbatches`` micro-batches under ``schedule``.

    Forward/backward compute per micro-batch is timed by wrapping the stage's ``forward_one_chunk`` and
    ``backward_one_chunk``; the rest of each step is this stage's idle time (waiting, or sending/receiving).
    """
    from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe
    world, rank = dist.get_world_size(), dist.get_rank()
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, not {schedule!r}")
    full = make_mlp(hidden).to(dev)
    part = _stage_slices(full, world)[rank]
    module = full[part]
    stage = PipelineStage(module, rank, world, dev)
    kind = {"GPipe": ScheduleGPipe, "1F1B": Schedule1F1B}[schedule]
    runner = kind(stage, n_microbatches=microbatches, loss_fn=lambda out, y: F.cross_entropy(out, y))
    events = []
    for name in ("forward_one_chunk", "backward_one_chunk"):
        original = getattr(stage, name)

        def timed(chunk, *args, _original=original, _name=name, **kwargs):
            start = time.perf_counter()
            out = _original(chunk, *args, **kwargs)
            synchronize(dev)
            events.append((_name[0].upper(), chunk, start, time.perf_counter()))
            return out
        setattr(stage, name, timed)
    opt = torch.optim.SGD(module.parameters(), lr=LR, momentum=MOMENTUM)
    losses, idle, timeline = [], [], []
    last = rank == world - 1
    for step, (x, y) in enumerate(batches):
        dist.barrier()
        synchronize(dev)
        events.clear()
        start = time.perf_counter()
        micro_losses = []
        if rank == 0:
            runner.step(x)
        elif last:
            runner.step(target=y, losses=micro_losses)
        else:
            runner.step()
        synchronize(dev)
        seconds = time.perf_counter() - start
        opt.step()
        opt.zero_grad()
        busy = sum(end - begin for _, _, begin, end in events)
        if step > 0:  # the first step also infers shapes and allocates buffers
            idle.append(1 - busy / seconds)
        timeline = [(kind_, chunk, begin - start, end - start) for kind_, chunk, begin, end in events]
        loss = torch.stack(micro_losses).mean() if last else torch.zeros((), device=dev)
        dist.broadcast(loss, world - 1)
        losses.append(loss.item())
    state = {f"{i}.{k}": v for i, m in zip(range(part.start, part.stop), module)
             for k, v in m.state_dict().items()}
    every = [None] * world
    dist.all_gather_object(every, {"state": {k: v.cpu() for k, v in state.items()}, "idle": idle,
                                   "timeline": timeline})
    merged = {k: v for r in every for k, v in r["state"].items()}
    return {"losses": losses, "state": merged, "stages": world, "microbatches": microbatches, "schedule": schedule,
            "bubble_formula": bubble_fraction(world, microbatches),
            "idle_per_stage": [sum(r["idle"]) / max(len(r["idle"]), 1) for r in every],
            "timeline": [r["timeline"] for r in every]}


def run_tensor(batches, dev, hidden=HIDDEN) -> dict:
    """The first two Linear layers split Megatron-style (column, then row); the rest replicated; full batches."""
    model = make_mlp(hidden).to(dev)
    first, second = [i for i, m in enumerate(model) if isinstance(m, nn.Linear)][:2]
    model[first], model[second] = ColumnParallelLinear(model[first]), RowParallelLinear(model[second])
    losses, _ = train_single(model, batches)            # the same loop: the split layers do the communication
    state = {}
    for key, value in model.state_dict().items():
        index, name = key.split(".", 1)
        split = {first: 0, second: 1 if name == "weight" else None}.get(int(index))
        state[key] = _gathered(value, split) if split is not None else value
    # One layer alone, output all-gathered: the same output and input gradient as the unsplit layer.
    torch.manual_seed(1)
    layer = nn.Linear(28 * 28, hidden).to(dev)
    x = batches[0][0].flatten(1).clone().requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    out, ref = ColumnParallelLinear(layer, gather_output=True)(x), layer(x_ref)
    (out.square().sum()).backward()
    (ref.square().sum()).backward()
    layer_difference = max((out - ref).abs().max().item(), (x.grad - x_ref.grad).abs().max().item())
    params = count_parameters(model)
    return {"losses": losses, "state": state, "one_layer_difference": layer_difference,
            "parameters_per_process": params}


def run_mode(mode: str, dev, steps: int = 4, batch: int = 64, *, hidden: int = HIDDEN, microbatches: int = 4,
             sabotage: bool = False) -> list[dict]:
    """Run ``mode`` on this process group and the single-process reference on this rank; compare them."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if sabotage and mode != "ddp":
        raise ValueError("--sabotage skips DDP's gradient all-reduce: use it with --mode ddp")
    world = dist.get_world_size()
    if batch % (world * microbatches):
        raise ValueError(f"batch {batch} must be divisible by processes × micro-batches = {world * microbatches}")
    batches = fashion_batches(steps, batch, dev)
    reference = make_mlp(hidden).to(dev)
    reference_losses, reference_opt = train_single(reference, batches)
    reference_state = reference.state_dict()
    runs = []
    if mode == "pipeline":
        for schedule in SCHEDULES:
            runs.append(run_pipeline(batches, dev, hidden, schedule, microbatches))
    else:
        start = time.perf_counter()
        run = {"ddp": lambda: run_ddp(batches, dev, hidden, sabotage), "fsdp": lambda: run_fsdp(batches, dev, hidden),
               "tensor": lambda: run_tensor(batches, dev, hidden)}[mode]()
        run["seconds"] = time.perf_counter() - start
        runs.append(run)
    results = []
    for run in runs:
        state = run.pop("state")
        loss_difference = max(abs(a - b) for a, b in zip(run["losses"], reference_losses))
        parameter_difference = max_difference(reference_state, state)
        worst = max(loss_difference, parameter_difference, run.get("one_layer_difference", 0.0))
        results.append({"mode": mode, "processes": world, "backend": dist.get_backend(), "steps": steps,
                        "batch": batch, "hidden": hidden, **run, "reference_losses": reference_losses,
                        "loss_difference": loss_difference, "parameter_difference": parameter_difference,
                        "largest_difference": worst, "agrees": worst <= TOLERANCE})
    if mode in ("ddp", "fsdp"):
        results[0]["bytes_unsharded"] = state_bytes(training_state(reference, reference_opt))
    return results


def describe(result: dict) -> str:
    """One line per checked run."""
    name = result["mode"] + (f" ({result['schedule']}, {result['microbatches']} micro-batches)"
                             if result["mode"] == "pipeline" else "")
    line = (f"{name}: {result['processes']} processes ({result['backend']}), {result['steps']} steps of "
            f"{result['batch']} (MLP width {result['hidden']}): largest difference "
            f"{result['largest_difference']:.2e} (loss {result['loss_difference']:.2e}, parameters {result['parameter_difference']:.2e}) → "
            f"{'agrees' if result['agrees'] else 'DISAGREES'} with one process (tolerance {TOLERANCE:.0e})")
    if "bytes_per_process" in result:
        line += (f"; training state per process {result['bytes_per_process'] / 1e6:.2f} MB "
                 f"(unsplit {result['bytes_unsharded'] / 1e6:.2f} MB)")
    if "bubble_formula" in result:
        line += (f"; idle per stage measured {', '.join(f'{v:.0%}' for v in result['idle_per_stage'])} vs "
                 f"bubble formula {result['bubble_formula']:.0%}")
    return line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="torchrun --nproc_per_node 2 -m utils.parallel", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", default="ddp", help=f"comma-separated, from {', '.join(MODES)} (or 'all')")
    parser.add_argument("--check", action="store_true", help="exit with status 1 if a mode disagrees")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64, help="global batch (divisible by processes × micro-batches)")
    parser.add_argument("--microbatches", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=HIDDEN, help="width of the MLP (divisible by processes)")
    parser.add_argument("--json", type=Path, help="rank 0 writes the results here")
    parser.add_argument("--sabotage", action="store_true", help="DDP without its all-reduce: the check must fail")
    args = parser.parse_args(argv)
    modes = list(MODES) if args.mode == "all" else args.mode.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}: choose from {', '.join(MODES)} or 'all'")
    if "RANK" not in os.environ:
        parser.error("run me under torchrun: torchrun --nproc_per_node 2 -m utils.parallel --mode ddp --check")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    world = int(os.environ["WORLD_SIZE"])
    use_cuda = torch.cuda.is_available() and torch.cuda.device_count() >= world
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = False  # the check compares float32 runs
    torch.set_num_threads(1)  # N processes on N cores: one thread each
    dist.init_process_group("nccl" if use_cuda else "gloo", device_id=dev if use_cuda else None,
                            timeout=datetime.timedelta(minutes=5))
    try:
        results = []
        for mode in modes:
            results += run_mode(mode, dev, args.steps, args.batch, hidden=args.hidden, microbatches=args.microbatches,
                                sabotage=args.sabotage)
        if dist.get_rank() == 0:
            print("\n".join(describe(r) for r in results), flush=True)
            if args.json:
                from .results import write_json_atomically
                write_json_atomically(args.json, results)
        dist.barrier()   # no rank tears gloo down while another still uses it ("terminate called" on a busy machine)
    finally:
        dist.destroy_process_group()
    return 1 if args.check and not all(r["agrees"] for r in results) else 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Every result is out and the process group is destroyed. Leave without the interpreter's teardown: in it,
    # a joinable std::thread of torch's distributed runtime was destroyed now and then (rank 1: "terminate called
    # without an active exception", SIGABRT) on a loaded 2-core machine, even after the barrier above.
    os._exit(status)
