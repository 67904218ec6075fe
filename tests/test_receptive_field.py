import pytest
import torch
import torchvision
from torch import nn

from utils.models import ARCHITECTURES, ResNet
from utils.receptive_field import effective_receptive_field, receptive_field


def test_published_receptive_fields():
    assert receptive_field(torchvision.models.vgg16().features, (3, 224, 224))[-1].rf == 212
    assert receptive_field(torchvision.models.alexnet().features, (3, 224, 224))[-1].rf == 195


def test_arithmetic_on_a_small_stack():
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3, dilation=2))
    records = receptive_field(model, (1, 16, 16))
    assert [r.name for r in records] == ["0", "1", "2", "output"]
    assert [(r.rf, r.jump) for r in records] == [(3, 1), (4, 2), (12, 2), (12, 2)]
    assert records[0].start == 0.5 and records[1].start == 1.0


def test_branches_take_the_largest_path():
    class TwoPaths(nn.Module):
        def __init__(self):
            super().__init__()
            self.small, self.large = nn.Conv2d(1, 2, 1), nn.Conv2d(1, 2, 5, padding=2)

        def forward(self, x):
            return torch.cat([self.small(x), self.large(x)], 1), self.small(x) + self.large(x)

    class Concatenated(TwoPaths):
        def forward(self, x):
            return super().forward(x)[0]

    class Added(TwoPaths):
        def forward(self, x):
            return super().forward(x)[1]

    assert receptive_field(Concatenated(), (1, 8, 8))[-1].rf == 5
    assert receptive_field(Added(), (1, 8, 8))[-1].rf == 5


def test_resnet_and_classifier_heads_cover_the_image():
    records = receptive_field(torchvision.models.resnet18(), (3, 224, 224))
    assert records[-1].name == "output" and records[-1].rf >= 224
    for name, constructor in ARCHITECTURES.items():
        assert receptive_field(constructor(), (1, 28, 28))[-1].rf >= 28, name


def test_unsupported_layer_is_named():
    with pytest.raises(ValueError, match="ConvTranspose2d"):
        receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), nn.ConvTranspose2d(1, 1, 3)), (1, 8, 8))


def test_effective_receptive_field_is_inside_theoretical():
    torch.manual_seed(0)
    features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    erf = effective_receptive_field(features, (1, 15, 15))
    assert erf.shape == (15, 15)
    nonzero = erf > 0
    rows, cols = nonzero.any(1).nonzero()[0], nonzero.any(0).nonzero()[0]
    assert rows.min() >= 5 and rows.max() <= 9 and cols.min() >= 5 and cols.max() <= 9   # 5×5 around pixel 7
    assert erf[7, 7] > 0


def test_effective_receptive_field_needs_a_feature_map():
    with pytest.raises(ValueError, match="feature map"):
        effective_receptive_field(ResNet(), (1, 28, 28))
