"""Shared test set-up: no test touches the network, and CPU tests use few threads and fixed seeds."""

import os

import pytest
import torch


def pytest_configure(config):
    """Under pytest-xdist (make test-unit) the cores are shared by the workers: one torch thread pool per core."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """Tiny models: one torch thread is faster than synchronising several, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class CtrlCOnCall:
    """Calls ``fn``, except that call number ``counter["ctrl_c_on"]`` raises KeyboardInterrupt, as a Ctrl-C at that
    moment would (set it to 0 to stop interrupting). The count lives in a dict: state, which `fit` leaves out of its
    checkpoint key, unlike a callable's plain attributes (its settings)."""

    def __init__(self, fn, on_call: int):
        self.fn, self.counter = fn, {"calls": 0, "ctrl_c_on": on_call}

    def __call__(self, *args, **kwargs):
        self.counter["calls"] += 1
        if self.counter["calls"] == self.counter["ctrl_c_on"]:
            raise KeyboardInterrupt
        return self.fn(*args, **kwargs)


@pytest.fixture
def ctrl_c_on_call():
    """`CtrlCOnCall`: a training function that is interrupted on its n-th call."""
    return CtrlCOnCall
