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

import contextlib
import os
import platform
import random
import re
import tempfile
from pathlib import Path

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


def cpu_model() -> str:
    """The CPU's model name ("AMD EPYC 7B13"): CPU timings mean little without it."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name() -> str:
    """The active device in words: the GPU's name ("NVIDIA H100 80GB HBM3"), or the CPU's with the instruction set
    its convolutions use and the threads ("CPU AMD EPYC (oneDNN AVX2, 2 threads)"), or "mps"."""
    dev = device()
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type != "cpu":
        return dev.type
    threads, isa = torch.get_num_threads(), onednn_isa()
    return (f"CPU {cpu_model()} ({'' if isa == 'none' else f'oneDNN {isa.upper()}, '}"
            f"{threads} thread{'s' if threads != 1 else ''})")


def describe() -> str:
    """One line for the top of a chapter: profile, device, library versions."""
    return f"profile={profile()}  device={device_name()}  torch={torch.__version__}  threads={torch.get_num_threads()}"


# ------------------------------------------------------------------ a oneDNN crash on CPUs without AVX-512
# Upstream bug, seen with torch 2.14.1 (oneDNN 3.12.0) and not checked on earlier releases: on a CPU whose oneDNN
# kernels are AVX2 (no AVX-512, or ONEDNN_MAX_CPU_ISA=AVX2), the weight gradient of a 1×1 convolution with stride > 1
# and 2–7 input channels, run in channels_last, corrupts memory: segfault, bus error, "double free or corruption",
# or a hang on 2 threads. The minimal reproducer (torch 2.14.1, ONEDNN_MAX_CPU_ISA=AVX2, one thread):
#     conv = torch.nn.Conv2d(4, 8, 1, stride=2, bias=False).to(memory_format=torch.channels_last)
#     x = torch.randn(32, 4, 28, 28).contiguous(memory_format=torch.channels_last)
#     for _ in range(10): conv(x).sum().backward()
# Standard (NCHW) layout, 1 or ≥ 8 input channels, a 3×3 kernel, AVX (no AVX2) or AVX-512 kernels all pass.
ONEDNN_NHWC_BUG_NEWEST_TORCH = (2, 14)   # the newest release it was reproduced on; earlier ones are guarded too


def onednn_isa() -> str:
    """The instruction-set family oneDNN's CPU kernels use here: "avx512", "avx2", "older" (SSE4.1/AVX) or
    "none" (not an x86 CPU): the CPU's best, capped by ``$ONEDNN_MAX_CPU_ISA`` (oneDNN's own cap; ATen's
    ``$ATEN_CPU_CAPABILITY`` does not move oneDNN). `make doctor` asks oneDNN itself."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return "none"
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    if not torch.cpu._is_avx2_supported() or cap.startswith(("SSE", "AVX_")) or cap == "AVX":
        return "older"
    return "avx512" if torch.cpu._is_avx512_supported() and not cap.startswith("AVX2") else "avx2"


def onednn_nhwc_bug() -> bool:
    """True where the channels_last oneDNN crash above can happen: an AVX2 oneDNN in torch ≤ 2.14."""
    version = tuple(int(part) for part in torch.__version__.split(".")[:2])
    return onednn_isa() == "avx2" and version <= ONEDNN_NHWC_BUG_NEWEST_TORCH


def nhwc_crash_convs(model: torch.nn.Module) -> list[str]:
    """Names of ``model``'s convolutions of the crashing kind: 1×1 kernel, stride > 1, 2–7 input channels."""
    return [name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)
            and m.kernel_size == (1, 1) and max(m.stride) > 1 and 2 <= m.in_channels < 8]


def _standard_layout_input(conv, args):
    x, *rest = args
    return (x.contiguous(), *rest) if x.device.type == "cpu" and not x.is_contiguous() else None


def _layout_of_the_network(conv, args, output):
    return (output.contiguous(memory_format=torch.channels_last)
            if conv.channels_last_around and output.device.type == "cpu" else None)


def avoid_onednn_nhwc_crash(model: torch.nn.Module) -> torch.nn.Module:
    """Where `onednn_nhwc_bug` holds, run ``model``'s convolutions of the crashing kind in the standard layout
    (weights now, inputs at each call; in a channels_last model the output goes back to channels_last): tiny
    layers, so the rest of the network keeps its layout and its speed. Elsewhere, and for models without such a
    layer, nothing changes. Call it after any `.to(memory_format=...)`: `channels_last` does."""
    if not onednn_nhwc_bug():
        return model
    for name in nhwc_crash_convs(model):
        conv = model.get_submodule(name)
        if conv.weight.device.type != "cpu":
            continue
        if not hasattr(conv, "channels_last_around"):
            conv.channels_last_around = False
            conv.register_forward_pre_hook(_standard_layout_input)
            conv.register_forward_hook(_layout_of_the_network)
        conv.channels_last_around |= conv.weight.stride() != conv.weight.new_empty(conv.weight.shape).stride()
        conv.weight.data = conv.weight.data.clone(memory_format=torch.contiguous_format)
    return model


def channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in the channels_last (NHWC) memory layout that convolution kernels prefer, safe on every CPU
    (`avoid_onednn_nhwc_crash`)."""
    return avoid_onednn_nhwc_crash(model.to(memory_format=torch.channels_last))


def _compile_cache_per_instruction_set() -> None:
    """Upstream bug, torch 2.14.1: Inductor's on-disk cache does not key its CPU kernels by ATen's CPU capability, so
    a kernel compiled under one (AVX-512) is served under another (``ATEN_CPU_CAPABILITY=avx2``) and computes wrong
    numbers (Chapter 11's compiled Transformer block was off by 4.4), and the reverse overruns its buffers (glibc's
    "corrupted size vs. prev_size" killed Chapter 11's JupyterLab kernel). A cache folder per capability and oneDNN
    ISA keeps them apart. A ``$TORCHINDUCTOR_CACHE_DIR`` a person chose is kept; torch's own default is not a choice
    (importing torchvision or torch._dynamo writes it into the environment, and child processes such as a Jupyter
    server's kernels inherit it), nor is a folder of ours made for another capability by a parent process."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    user = re.sub(r"\W", "_", os.environ.get("USER") or str(os.getuid() if hasattr(os, "getuid") else "user"))
    ours = os.path.join(tempfile.gettempdir(), f"torchinductor_{user}_")
    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen is None or os.path.abspath(chosen) == os.path.abspath(default_cache_dir()) or chosen.startswith(ours):
        kernels = f"{torch.backends.cpu.get_cpu_capability()}_{onednn_isa()}".lower()
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = ours + kernels


_compile_cache_per_instruction_set()
