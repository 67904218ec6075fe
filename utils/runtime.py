"""Profiles, devices and seeding: how much work a chapter does, and where.

Introduced in Chapter 1 (01a); every chapter starts with `profile()`, `device()` and `seed_everything()`.

A *profile* scales a chapter to the machine:

- ``smoke`` — CI: CPU, tiny subsets, a whole notebook in about a minute on 2 cores;
- ``cpu``   — a learner without a GPU: minutes, still reaching a real result;
- ``gpu``   — full settings and the chapter's targets.

It is chosen automatically (``CI`` set → smoke, CUDA present → gpu, otherwise cpu) and overridden by
the environment variable ``COURSE_PROFILE``.
"""

from __future__ import annotations

import os
import random
import time

import numpy as np
import torch

PROFILES = ("smoke", "cpu", "gpu")
PROFILE_VARIABLE = "COURSE_PROFILE"
RETRAIN_VARIABLE = "COURSE_RETRAIN"  # set (by `make verify`) to retrain models instead of reusing checkpoints


def profile() -> str:
    """The active profile: ``$COURSE_PROFILE`` if set, else smoke under CI, gpu with CUDA, cpu otherwise."""
    chosen = os.environ.get(PROFILE_VARIABLE, "").strip().lower()
    if chosen:
        if chosen not in PROFILES:
            raise ValueError(
                f"Unknown profile {chosen!r} in ${PROFILE_VARIABLE}. "
                f"Use one of {', '.join(PROFILES)} (for example `export {PROFILE_VARIABLE}=cpu`), "
                f"or unset it to choose automatically."
            )
        return chosen
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        return "smoke"
    return "gpu" if torch.cuda.is_available() else "cpu"


def pick(*, smoke, cpu, gpu):
    """The value for the active profile: ``EPOCHS = pick(smoke=1, cpu=3, gpu=20)``."""
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[profile()]


def retrain_requested() -> bool:
    """True when ``$COURSE_RETRAIN`` asks every `fit` to train afresh (and overwrite its checkpoint)."""
    return os.environ.get(RETRAIN_VARIABLE, "").lower() not in ("", "0", "false")


def device() -> torch.device:
    """The fastest device present, in the order cuda → mps → cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model`` lives (its first parameter or buffer; the CPU for a model with neither). Utilities that take
    a model and tensors move the tensors there, so a learner can pass CPU tensors to a model on the GPU."""
    tensor = next(model.parameters(), None)
    tensor = tensor if tensor is not None else next(model.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch so that a rerun on CPU gives the same numbers.

    Returns a CPU ``torch.Generator`` seeded with ``seed``, for code that wants its own stream.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a CUDA GPU runs asynchronously; elsewhere nothing to wait for):
    call it before reading a clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def device_name() -> str:
    """The active device in words: the GPU's name ("NVIDIA H100 80GB HBM3"), or "CPU (2 threads)", or "mps"."""
    dev = device()
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads != 1 else ''})" if dev.type == "cpu" else dev.type


def describe() -> str:
    """One line for the top of a chapter: profile, device, library versions."""
    return f"profile={profile()}  device={device_name()}  torch={torch.__version__}  threads={torch.get_num_threads()}"
