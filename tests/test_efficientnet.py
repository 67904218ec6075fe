"""Compound scaling (utils/models/efficientnet.py, Chapter 1b)."""

import pytest
import torch

from utils.measuring import count_flops
from utils.models.efficientnet import ScalableCNN, compound_scaled


def _flops(model):
    return count_flops(model, torch.zeros(1, 1, 28, 28))


def test_compound_scaling_grows_every_axis_and_about_doubles_the_flops_per_step():
    base, one, two = (compound_scaled(phi, width=8) for phi in (0, 1, 2))
    assert base.resolution == 28 and one.resolution == 32 and two.resolution == 37
    widths = [m.features[0].out_channels for m in (base, one, two)]
    assert widths == sorted(widths) and widths[0] == 8
    ratio_one, ratio_two = _flops(one) / _flops(base), _flops(two) / _flops(base)
    assert 1.2 < ratio_one < 3.4 and 2.4 < ratio_two < 6.8, (ratio_one, ratio_two)


def test_scalable_cnn_resizes_its_input_and_refuses_bad_sizes():
    model = ScalableCNN(depth=1, width=4, resolution=20)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="≥ 1"):
        ScalableCNN(depth=0)
    with pytest.raises(ValueError, match="phi"):
        compound_scaled(-1)
