"""Is this machine ready for the course? One line per check, and for every problem its fix.

Course tooling, not a chapter: run by ``make doctor`` (or ``python -m utils.course.doctor``). An instructor runs it on each
learner's machine before a workshop; a learner runs it when something breaks and pastes its output into the bug
report. Each check returns a `Check` — ``ok``, ``warn`` (the course runs; something is worth knowing or fixing) or
``FAIL`` (the course cannot run until it is fixed) — and the exit status is 1 when any check FAILs, else 0.

Nothing here uses the network. What could crash the interpreter runs in a subprocess: the oneDNN probe (a small
convolution with ``ONEDNN_VERBOSE=1``, whose "isa:" line says which instruction set oneDNN really uses) and one
real training step of the course's ResNet on the chosen device (``python -m utils.course.doctor --step``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata as metadata
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch

from .. import data, runtime

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCK = REPO_ROOT / "requirements.lock"
STEP_COMMAND = (sys.executable, "-m", "utils.course.doctor", "--step")
STEP_TIMEOUT = 120  # seconds; one step of a small ResNet takes a few
ISSUE = "paste this whole output into an issue"
# A channels_last 3×3 convolution big enough that PyTorch hands it to oneDNN, which then prints its "isa:" line.
_ISA_PROBE = ("import torch; x = torch.randn(8, 16, 32, 32).to(memory_format=torch.channels_last); "
              "w = torch.randn(16, 16, 3, 3).to(memory_format=torch.channels_last); "
              "torch.nn.functional.conv2d(x, w, padding=1)")


class Check(NamedTuple):
    status: str  # "ok", "warn" or "FAIL"
    name: str
    what: str  # what was found
    fix: str = ""  # one sentence, for a warn or a FAIL


def _run(command, env=None, timeout=60) -> tuple[str | None, str]:
    """Run ``command``; return (what went wrong or None, its stdout and stderr together)."""
    try:
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"no answer within {timeout} s (hung)", ""
    if done.returncode < 0:
        return f"killed by {signal.Signals(-done.returncode).name}", done.stdout
    if done.returncode > 0:
        last = (done.stdout.strip().splitlines() or ["no output"])[-1]
        return f"exited with status {done.returncode}: {last}", done.stdout
    return None, done.stdout


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    found = f"{platform.python_version()} ({platform.system()} {platform.machine()}, {sys.executable})"
    if sys.version_info < (3, 10):
        return Check("FAIL", "python", found, "install Python 3.11, then `make clean && make lab PYTHON=python3.11`")
    return Check("ok", "python", found + ("" if sys.version_info[:2] == (3, 11) else "; the course is tested on 3.11"))


def pinned(lock: Path) -> dict[str, str]:
    """``name → version`` for each ``name==version`` line of ``lock`` whose platform markers fit this machine."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"\s*([A-Za-z0-9][\w.-]*)\s*==\s*([^\s;\\#]+)\s*(?:;\s*([^#\\]+))?", line)
        if match and _applies(match[3]):
            pins[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return pins


def _applies(marker: str | None) -> bool:
    try:
        from packaging.markers import Marker
        return not marker or Marker(marker.strip()).evaluate()
    except Exception:  # no packaging, or a marker it cannot read: count the line
        return True


def _imported_version(module: str) -> str:
    """``module.__version__`` (with its build tag: 2.14.1+cu130), or why it cannot be imported."""
    try:
        return importlib.import_module(module).__version__
    except Exception as error:  # missing, or built for another torch ("operator torchvision::nms does not exist")
        return f"unusable ({type(error).__name__}: {error})"


def check_versions(lock: Path = LOCK) -> Check:
    installed = {name: _imported_version(name) for name in ("torch", "torchvision")}
    found = ", ".join(f"{name} {version}" for name, version in installed.items())
    if any(version.startswith("unusable") for version in installed.values()):
        return Check("FAIL", "packages", found, "`make clean && make lab` installs the course's packages into .venv")
    if not lock.is_file():
        return Check("warn", "packages", f"{found}; no {lock.name} to compare them with",
                     f"restore {lock.name} (`git checkout {lock.name}`) to check them against the tested versions")
    pins = pinned(lock)
    wrong = [f"{name} {version} but {lock.name} pins {pins.get(name, 'no version')}"
             for name, version in installed.items()
             if pins.get(name) not in (version, version.split("+")[0])]  # ==2.14.1 accepts 2.14.1+cu130, as pip does
    if wrong:
        return Check("warn", "packages", "; ".join(wrong),
                     f"rebuild the environment with `make clean && make test`, or `pip install -r {lock.name}`")
    return Check("ok", "packages", f"{found}, as {lock.name} pins")


def check_cpu() -> Check:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return Check("ok", "cpu", f"{runtime.cpu_model()}, {os.cpu_count()} cores ({usable} usable), "
                              f"torch uses {torch.get_num_threads()} threads")


def parse_isa(verbose: str) -> str | None:
    """The instruction set in oneDNN's verbose line ``onednn_verbose,...,info,cpu,isa:Intel AVX2`` (None if absent)."""
    match = re.search(r"^(?:onednn|dnnl)_verbose,.*?\bisa:(.+?)\s*$", verbose, re.MULTILINE)
    return match[1] if match else None


def check_onednn(probe=(sys.executable, "-c", _ISA_PROBE)) -> Check:
    settings = [f"{name}={os.environ[name]}" for name in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
                if os.environ.get(name)]
    aten = f"ATen {torch.backends.cpu.get_cpu_capability()}" + "".join(f", {s}" for s in settings)
    if not torch.backends.mkldnn.is_available():
        return Check("ok", "oneDNN", f"not in this torch build; {aten}")
    problem, output = _run(probe, env={**os.environ, "ONEDNN_VERBOSE": "1"})
    if problem:
        return Check("FAIL", "oneDNN", f"a small convolution {problem}; {aten}",
                     f"{ISSUE}; `ONEDNN_MAX_CPU_ISA=SSE41 make doctor` shows whether oneDNN's vector kernels cause it")
    isa = parse_isa(output)
    if isa is None:
        return Check("warn", "oneDNN", f"printed no isa: line, so its instruction set is unknown; {aten}",
                     f"nothing to do if the training step below is ok; otherwise {ISSUE}")
    if isa.startswith("Intel AVX2") and runtime.onednn_nhwc_bug():
        return Check("ok", "oneDNN", f"isa {isa}; {aten}; the course works around oneDNN 3.12's known bug on this "
                                     "ISA (channels_last 1×1 strided convolution's weight gradient): no action needed")
    return Check("ok", "oneDNN", f"isa {isa}; {aten}")


def check_gpu() -> Check:
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        return Check("ok", "gpu", f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}, "
                                  f"bf16 {'yes' if bf16 else 'no (trains in float32)'}")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return Check("ok", "gpu", "Apple MPS (the cpu profile's settings, run on the GPU)")
    return Check("ok", "gpu", "no GPU: the cpu profile")


def check_jupyter() -> Check:
    versions = {name: _version(name) for name in ("jupyterlab", "ipywidgets", "jupyterlab_widgets", "ipyevents")}
    found = ", ".join(f"{name} {version or 'missing'}" for name, version in versions.items())
    fix = "`make clean && make lab` installs them in one environment and starts JupyterLab from it"
    if not (versions["jupyterlab"] or "").startswith("4."):
        return Check("FAIL", "jupyter", found + " (JupyterLab 4 needed)", fix)
    if None in versions.values() or not versions["ipywidgets"].startswith("8."):
        return Check("warn", "jupyter", found + " (ipywidgets 8 needed): explorers show static figures", fix)
    return Check("ok", "jupyter", found)


@contextlib.contextmanager
def _offline():
    """No socket may connect: the doctor reports where Fashion-MNIST is, and never downloads it."""
    def refuse(*args, **kwargs):
        raise OSError("make doctor never downloads (`make data` does)")
    saved = socket.socket.connect, socket.socket.connect_ex
    socket.socket.connect = socket.socket.connect_ex = refuse
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex = saved


def check_data() -> Check:
    try:
        with _offline():
            return Check("ok", "data", data.source())
    except data.DataNotFoundError as error:
        return Check("FAIL", "data", "Fashion-MNIST not found", str(error))


def check_disk(folder: Path | None = None) -> Check:
    folder = folder or data.data_dir()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    found = f"{free / 1e9:.1f} GB free for {folder}"
    fix = "free disk space there: checkpoints and scene caches are written under data/"
    if free < 200e6:
        return Check("FAIL", "disk", found, fix)
    return Check("warn", "disk", found, fix) if free < 2e9 else Check("ok", "disk", found)


def check_profile() -> Check:
    try:
        chosen = runtime.profile()
    except ValueError as error:
        return Check("FAIL", "profile", f"${runtime.PROFILE_VARIABLE}={os.environ[runtime.PROFILE_VARIABLE]}",
                     str(error))
    if os.environ.get(runtime.PROFILE_VARIABLE, "").strip():
        why = f"${runtime.PROFILE_VARIABLE}={os.environ[runtime.PROFILE_VARIABLE]}"
    elif os.environ.get("CI", "").lower() not in ("", "0", "false"):
        why = "$CI is set"
    else:
        why = "CUDA is available" if torch.cuda.is_available() else "no CUDA"
    found = f"{chosen} ({why}) on {runtime.device_name()}"
    if chosen == "gpu" and not torch.cuda.is_available():
        return Check("warn", "profile", found + ": the full GPU settings, without a GPU, take hours",
                     f"unset {runtime.PROFILE_VARIABLE}, or set it to cpu")
    return Check("ok", "profile", found)


def check_training_step(command=STEP_COMMAND, timeout: int = STEP_TIMEOUT) -> Check:
    problem, output = _run(command, timeout=timeout)
    if problem is None:
        return Check("ok", "training step", (output.strip().splitlines() or ["no output"])[-1])
    return Check("FAIL", "training step", problem,
                 f"{ISSUE}; `ONEDNN_MAX_CPU_ISA=SSE41 make doctor` and `OMP_NUM_THREADS=1 make doctor` tell a "
                 "oneDNN kernel or a threading problem from the rest" if "SIG" in problem or "hung" in problem else
                 f"{ISSUE}, with the error above")


def step() -> int:
    """One training step of the course's ResNet on the chosen device (run in a subprocess by the doctor)."""
    from ..models.resnet import ResNet

    runtime.seed_everything(0)
    dev = runtime.device()
    model = ResNet(width=8).to(dev)
    if dev.type == "cuda":  # as `fit` trains on a GPU: channels_last, bf16 autocast where native
        model = runtime.channels_last(model)
    bf16 = dev.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images, labels = torch.randn(32, 1, 28, 28, device=dev), torch.randint(0, 10, (32,), device=dev)
    start = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
        loss = torch.nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    value = loss.item()
    seconds = time.perf_counter() - start
    if not math.isfinite(value) or not all(torch.isfinite(p).all() for p in model.parameters()):
        print(f"loss {value}: not finite")
        return 1
    print(f"ResNet(width=8), batch of 32, forward + backward + AdamW on {runtime.device_name()}: "
          f"loss {value:.3f} in {seconds:.2f} s")
    return 0


def checks(lock: Path = LOCK, step_command=STEP_COMMAND) -> list[Check]:
    """Every check, in the order of the report; a check that raises is reported as a warn, not a crash."""
    def safely(name, fn, *args):
        try:
            return fn(*args)
        except Exception as error:
            return Check("warn", name, f"could not check ({type(error).__name__}: {error})", ISSUE)
    return [safely("python", check_python), safely("packages", check_versions, lock), safely("cpu", check_cpu),
            safely("oneDNN", check_onednn), safely("gpu", check_gpu), safely("jupyter", check_jupyter),
            safely("data", check_data), safely("disk", check_disk), safely("profile", check_profile),
            safely("training step", check_training_step, step_command)]


def report(results: list[Check]) -> str:
    """The report: one line per check, each problem's fix indented under it, and a verdict."""
    lines = ["Deep Vision Lab doctor (paste this whole output into a bug report)"]
    for check in results:
        lines.append(f"{check.status:<5} {check.name:<14} {check.what}")
        if check.fix and check.status != "ok":
            lines.append("      fix: " + check.fix.replace("\n", "\n           "))
    fails, warns = (sum(c.status == s for c in results) for s in ("FAIL", "warn"))
    lines.append(f"{fails} FAIL: the course cannot run until {'it is' if fails == 1 else 'they are'} fixed" if fails
                 else f"ready: the course runs here ({warns} warn{'s' if warns != 1 else ''})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["--step"]:
        return step()
    results = checks()
    print(report(results), flush=True)
    return 1 if any(c.status == "FAIL" for c in results) else 0


if __name__ == "__main__":
    sys.exit(main())
