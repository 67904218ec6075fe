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
