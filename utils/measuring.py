"""Measuring a model: its parameters, the FLOPs of a call, its throughput and the bytes of its weights.

First used in Chapter 1a (01a_convolution_by_hand) and by every chapter that compares models after it; Chapter 11
(11_speed_and_scale) adds the timing lesson itself (`utils.speed.measure`: warm-up, CUDA events, repeats).
"""
from __future__ import annotations

import io
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters of ``module`` (only those with ``requires_grad`` if ``trainable_only``)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"count_parameters needs an nn.Module, got {type(module).__name__}")
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def count_flops(fn, *inputs, backward: bool = False, **kwargs) -> int:
    """FLOPs of one call ``fn(*inputs, **kwargs)`` — a model, a layer or any function — as
    `torch.utils.flop_counter.FlopCounterMode` counts them: matrix products and convolutions, 2 FLOPs per
    multiply-add; pooling, activations and element-wise products count 0 (cheap in arithmetic, not in memory
    traffic, which is why throughput is measured too).

    A module is called in eval mode (its mode is restored after). Without ``backward`` the call runs under
    ``torch.no_grad()``; with it, ``fn`` is a whole training step and its backward pass is counted too.
    """
    if not callable(fn):
        raise TypeError(f"count_flops(fn, *inputs): fn must be callable, got {type(fn).__name__}")
    was_training = fn.training if isinstance(fn, nn.Module) else None
    if was_training is not None:
        fn.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(backward):
            fn(*inputs, **kwargs)
    finally:
        if was_training is not None:
            fn.train(was_training)
    return counter.get_total_flops()


def timed(fn, *args) -> float:
    """Seconds taken by ``fn(*args)``; on CUDA, queued work is waited for on both sides, so the time is the call's."""
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn(*args)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


@torch.no_grad()
def images_per_second(models: dict[str, nn.Module], batch: torch.Tensor, rounds: int = 5) -> dict[str, float]:
    """Inference throughput of each model (eval mode) on ``batch``: the best of ``rounds`` timed passes.

    The models take turns within every round, so a burst of load from other processes slows them all
    alike instead of one of them; the best pass is the least disturbed one.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    best = dict.fromkeys(models, float("inf"))
    for model in models.values():  # warm-up: allocations, cuDNN autotuning
        model.eval()(batch.to(next(model.parameters()).device))
    for _ in range(rounds):
        for name, model in models.items():
            best[name] = min(best[name], timed(model, batch.to(next(model.parameters()).device)))
    return {name: len(batch) / seconds for name, seconds in best.items()}


def model_bytes(module: nn.Module) -> int:
    """Bytes of the module's saved weights: its state dict as `torch.save` writes it (packed int8 weights too)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"model_bytes needs an nn.Module, got {type(module).__name__}")
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.getbuffer().nbytes
