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
