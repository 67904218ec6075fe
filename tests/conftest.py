"""Shared test set-up: no test touches the network, and CPU tests use few threads and fixed seeds."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
