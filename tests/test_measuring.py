"""Measuring a model (utils.measuring): parameters, FLOPs of any callable, throughput, bytes."""

import pytest
import torch
from torch import nn

from utils.measuring import count_flops, count_parameters, images_per_second, model_bytes


def test_count_parameters_all_or_trainable_only():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    assert count_parameters(model) == 3 * 4 + 4 + 4 * 2 + 2
    model[0].requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 4 * 2 + 2
    with pytest.raises(TypeError, match="nn.Module"):
        count_parameters(torch.zeros(3))


def test_count_flops_of_a_module_and_of_a_training_step():
    conv = nn.Conv2d(1, 4, 3, padding=1, bias=False).train()
    x = torch.zeros(1, 1, 28, 28)
    assert count_flops(conv, x) == 2 * 4 * 9 * 28 * 28
    assert conv.training, "the module's mode is restored after counting"
    linear, batch = nn.Linear(8, 2, bias=False), torch.randn(5, 8)
    forward = count_flops(linear, batch)
    assert forward == 2 * 5 * 8 * 2
    step = count_flops(lambda: linear(batch).sum().backward(), backward=True)
    assert step == 2 * forward, "backward of a linear layer: the weight gradient (the input needs none)"
    with pytest.raises(TypeError, match="callable"):
        count_flops(3, x)


def test_images_per_second():
    speeds = images_per_second({"a": nn.Conv2d(1, 2, 3), "b": nn.Conv2d(1, 2, 5)}, torch.randn(4, 1, 28, 28), rounds=2)
    assert set(speeds) == {"a", "b"} and all(s > 0 for s in speeds.values())
    with pytest.raises(ValueError, match="rounds"):
        images_per_second({"a": nn.Conv2d(1, 2, 3)}, torch.randn(4, 1, 28, 28), rounds=0)


def test_model_bytes_counts_the_saved_weights():
    small, large = nn.Linear(10, 10), nn.Linear(100, 100)
    assert 4 * 110 <= model_bytes(small) < model_bytes(large)
    assert model_bytes(large) >= 4 * (100 * 100 + 100)
