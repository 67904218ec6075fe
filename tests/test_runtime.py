import copy
import os

import pytest
import torch

from utils import runtime


def test_profile_override_and_error(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "cpu")
    assert runtime.profile() == "cpu"
    assert runtime.pick(smoke=1, cpu=2, gpu=3) == 2
    monkeypatch.setenv("COURSE_PROFILE", "turbo")
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        runtime.profile()


def test_profile_automatic_choice(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setenv("CI", "true")
    assert runtime.profile() == "smoke"
    monkeypatch.setenv("CI", "")
    assert runtime.profile() == ("gpu" if torch.cuda.is_available() else "cpu")


def test_seed_everything_repeats():
    runtime.seed_everything(3)
    a = torch.randn(4)
    runtime.seed_everything(3)
    assert torch.equal(a, torch.randn(4))


def test_device_is_available():
    assert runtime.device().type in ("cuda", "mps", "cpu")


@pytest.mark.parametrize("cap, isa", [("AVX2", "avx2"), ("avx2_vnni", "avx2"), ("SSE41", "older"), ("AVX", "older")])
def test_onednn_isa_follows_onednn_s_own_cap(monkeypatch, cap, isa):
    if runtime.onednn_isa() in ("none", "older"):
        pytest.skip("not an AVX2 x86 CPU")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert runtime.onednn_isa() == isa
    assert runtime.onednn_nhwc_bug() == (isa == "avx2" and torch.__version__ < "2.15")


def test_the_onednn_workaround_keeps_the_numbers_and_the_layout(monkeypatch):
    from utils.models import ResNet
    monkeypatch.setattr(runtime, "onednn_nhwc_bug", lambda: True)
    torch.manual_seed(0)
    plain = ResNet(width=4)
    assert runtime.nhwc_crash_convs(plain) == ["stages.1.0.shortcut.0"]   # 4 → 8 channels, 1×1, stride 2
    guarded = runtime.channels_last(copy.deepcopy(plain))
    conv = guarded.get_submodule("stages.1.0.shortcut.0")
    assert conv.weight.stride() == torch.empty(conv.weight.shape).stride(), "the crashing conv's weight is NCHW"
    x = torch.randn(8, 1, 28, 28)
    nhwc = x.contiguous(memory_format=torch.channels_last)
    assert conv(torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last)).is_contiguous(
        memory_format=torch.channels_last), "the layers after it stay channels_last"
    plain(x).square().sum().backward()
    guarded(nhwc).square().sum().backward()
    for (name, a), b in zip(plain.named_parameters(), guarded.parameters()):
        gap = (a.grad - b.grad).abs().max() / a.grad.abs().max()   # NHWC sums in another order: float noise only
        assert gap < 1e-3, f"{name}: gradients differ by {gap:.1e} of their largest"
    assert len(runtime.avoid_onednn_nhwc_crash(guarded).get_submodule("stages.1.0.shortcut.0")._forward_hooks) == 1


def test_compiled_kernels_are_cached_per_cpu_capability():
    """Inductor served kernels compiled under AVX-512 to an ATEN_CPU_CAPABILITY=avx2 run (wrong numbers, and a heap
    overrun that killed Chapter 11's JupyterLab kernel): the course gives each capability its own cache folder, even
    where torchvision was imported first (it writes torch's default folder into the environment) or a parent process
    passed its own capability's folder down; a folder a person chose is kept."""
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}

    def folder(extra, first="os"):
        ask = [sys.executable, "-c", f"import {first}, os, utils; print(os.environ['TORCHINDUCTOR_CACHE_DIR'])"]
        return subprocess.run(ask, env={**env, **extra}, capture_output=True, text=True, check=True).stdout.strip()

    folders = {cap: folder({"ATEN_CPU_CAPABILITY": cap}) for cap in ("default", "avx2")}
    assert folders["default"] != folders["avx2"] and folders["avx2"].split("torchinductor_")[1].count("avx2")
    assert folder({"ATEN_CPU_CAPABILITY": "avx2"}, first="torchvision") == folders["avx2"], \
        "importing torchvision first put torch's shared default cache folder in place of the capability's own"
    assert folder({"ATEN_CPU_CAPABILITY": "avx2", "TORCHINDUCTOR_CACHE_DIR": folders["default"]}) == folders["avx2"], \
        "a parent's folder for another capability was inherited"
    assert folder({"TORCHINDUCTOR_CACHE_DIR": "/tmp/mine"}) == "/tmp/mine"
