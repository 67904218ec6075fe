"""Chapter 2's attention modules and their explorers (utils.attention_modules)."""

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import SqueezeExcitation

from utils.attention_modules import (ATTENTIONS, CBAM, ECA, SE, AttentionBlock, ChannelGate, SpatialGate,
                                     attention_resnet, block_label, block_with, channel_weights_explorer,
                                     channel_weights_figure, class_mean_gates, collect_gates, eca_kernel_size,
                                     gate_modules, grad_cam, hidden_channels, spatial_attention_explorer,
                                     spatial_attention_figure)
from utils.measuring import count_flops, count_parameters
from utils.models import BasicBlock, ResNet

matplotlib.use("Agg")
SMALL = dict(width=8, blocks=(1, 1, 1))


@pytest.fixture
def x():
    return torch.randn(3, 32, 6, 6)


def _in_unit_interval(gate):
    return bool(((gate > 0) & (gate < 1)).all())


def test_hidden_channels_floors_and_rejects_bad_input():
    assert hidden_channels(256, 16) == 16
    assert hidden_channels(64, 16) == 8
    assert hidden_channels(4, 16) == 4
    with pytest.raises(ValueError, match="positive"):
        hidden_channels(64, 0)


def test_se_matches_torchvision_and_gates_channels_only(x):
    se = SE(32)
    reference = SqueezeExcitation(32, hidden_channels(32, 16))
    reference.fc1.load_state_dict(se.reduce.state_dict())
    reference.fc2.load_state_dict(se.expand.state_dict())
    out = se(x)
    torch.testing.assert_close(out, reference(x))
    assert out.shape == x.shape and se.gate.shape == (3, 32, 1, 1) and _in_unit_interval(se.gate)
    ratio = out / x
    torch.testing.assert_close(ratio, ratio[..., :1, :1].expand_as(ratio))


def test_eca_kernel_size():
    assert [eca_kernel_size(c) for c in (16, 64, 128, 512)] == [3, 3, 5, 5]
    assert all(eca_kernel_size(c) % 2 == 1 for c in range(1, 2048, 37))
    with pytest.raises(ValueError, match="positive"):
        eca_kernel_size(0)


def test_eca_is_a_banded_linear_layer_and_gates_channels_only(x):
    eca = ECA(32)
    out = eca(x)
    assert out.shape == x.shape and eca.gate.shape == (3, 32, 1, 1) and _in_unit_interval(eca.gate)
    assert count_parameters(eca) == eca_kernel_size(32)
    expected = F.conv1d(x.mean((2, 3))[:, None], eca.conv.weight, padding=eca.conv.padding[0])
    torch.testing.assert_close(eca.gate.flatten(1), torch.sigmoid(expected[:, 0]))
    ratio = out / x
    torch.testing.assert_close(ratio, ratio[..., :1, :1].expand_as(ratio))


def test_channel_gate_uses_average_and_max_through_one_mlp(x):
    gate = ChannelGate(32)
    out = gate(x)
    expected = torch.sigmoid(gate.mlp(x.mean((2, 3), keepdim=True)) + gate.mlp(x.amax((2, 3), keepdim=True)))
    torch.testing.assert_close(gate.gate, expected)
    torch.testing.assert_close(out, x * expected)
    assert count_parameters(gate) == count_parameters(SE(32))


def test_spatial_gate_shape_range_and_kernel_check(x):
    gate = SpatialGate(7).eval()
    out = gate(x)
    assert out.shape == x.shape and gate.gate.shape == (3, 1, 6, 6) and _in_unit_interval(gate.gate)
    ratio = out / x                                  # one weight per position, shared by all channels
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))
    with pytest.raises(ValueError, match="odd"):
        SpatialGate(4)


def test_cbam_factorises_into_channel_and_spatial_gates(x):
    cbam = CBAM(32).eval()
    out = cbam(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x * cbam.channel_gate.gate * cbam.spatial_gate.gate)
    assert isinstance(CBAM(32, channel=False).channel_gate, torch.nn.Identity)
    assert isinstance(CBAM(32, spatial=False).spatial_gate, torch.nn.Identity)
    with pytest.raises(ValueError, match="at least one"):
        CBAM(32, channel=False, spatial=False)


def test_block_with_and_attention_resnet():
    assert block_with("plain") is BasicBlock
    assert issubclass(block_with("SE"), AttentionBlock)
    with pytest.raises(ValueError, match="choose one of"):
        block_with("transformer")
    for name in ATTENTIONS:
        model = attention_resnet(name, **SMALL)
        assert isinstance(model, ResNet)
        assert model(torch.randn(2, 1, 16, 16)).shape == (2, 10)


def test_attention_block_gates_the_residual_branch_only():
    block = attention_resnet("SE", **SMALL).stages[1][0].eval()
    features = torch.randn(2, 8, 14, 14)
    with torch.no_grad():
        block.attention.expand.bias.fill_(-1e4)
        torch.testing.assert_close(block(features), F.relu(block.shortcut(features)))


def test_gate_modules_collect_gates_and_class_means():
    model = attention_resnet("CBAM", **SMALL)
    assert list(gate_modules(model, SpatialGate)) == [f"stages.{i}.0.attention.spatial_gate" for i in range(3)]
    images = torch.randn(20, 1, 28, 28)
    labels = torch.arange(20) % 10
    spatial = collect_gates(model, images, SpatialGate)
    assert [g.shape for g in spatial.values()] == [(20, 28, 28), (20, 14, 14), (20, 7, 7)]
    means = class_mean_gates(model, images, labels, ChannelGate)
    assert [g.shape for g in means.values()] == [(10, 8), (10, 16), (10, 32)]
    channel = collect_gates(model, images, ChannelGate)
    first = next(iter(channel))
    torch.testing.assert_close(means[first][3], channel[first][labels == 3].mean(0))
    with pytest.raises(ValueError, match="no SE modules"):
        collect_gates(model, images, SE)
    with pytest.raises(ValueError, match="every class"):
        class_mean_gates(model, images, labels % 5, ChannelGate)


def test_gates_add_their_own_parameters_and_flops():
    plain, se = attention_resnet("plain", **SMALL), attention_resnet("SE", **SMALL)
    assert count_parameters(se) - count_parameters(plain) == sum(count_parameters(m) for m in gate_modules(se, SE).values())
    probe = torch.zeros(1, 1, 28, 28)
    assert count_flops(se, probe) > count_flops(plain, probe)


def test_grad_cam_from_torchcam():
    model = attention_resnet("plain", **SMALL)
    images = torch.randn(3, 1, 28, 28)
    cam = grad_cam(model, images, "stages")
    assert cam.shape == (3, 28, 28) and cam.min() >= 0 and cam.max() <= 1
    assert cam.flatten(1).amax(1).gt(0.5).all()           # each map is scaled so its peak is 1
    assert grad_cam(model, images, "stages", torch.tensor([1, 2, 3])).shape == (3, 28, 28)
    with pytest.raises(ValueError, match="no layer"):
        grad_cam(model, images, "layer4")


def test_block_label():
    assert block_label("stages.2.0.attention.spatial_gate") == "stage 3, block 1"
    assert block_label("head") == "head"


def _sample(n=20):
    images = torch.rand(n, 1, 28, 28)
    labels = torch.arange(n) % 10
    return images, labels


def test_spatial_attention_figure_and_explorer():
    images, labels = _sample()
    gates = {"a": torch.rand(20, 28, 28), "b": torch.rand(20, 7, 7)}
    cams = {"m": torch.rand(20, 28, 28)}
    fig = spatial_attention_figure(images[0], gates["b"][0], {"m": cams["m"][0]}, "t", "b")
    assert len(fig.axes) == 4                                  # image, gate, one Grad-CAM, their colour bar
    explorer = spatial_attention_explorer(images, labels, labels, gates, cams)
    before = explorer.image.value
    explorer.set(image=5)                                     # the first control changes the picture
    assert explorer.image.value != before
    explorer.set(layer=0)
    assert explorer.values() == {"image": 5, "layer": 0}
    with pytest.raises(ValueError, match="out of range"):
        explorer.set(image=99)
    with pytest.raises(ValueError, match="empty"):
        spatial_attention_explorer(images, labels, labels, {}, cams)


def test_channel_weights_figure_and_explorer():
    images, labels = _sample()
    class_gates = {"SE": {"b0": torch.rand(10, 8), "b1": torch.rand(10, 16)},
                   "ECA": {"b0": torch.rand(10, 8), "b1": torch.rand(10, 16)}}
    cams = {"SE": torch.rand(20, 28, 28), "ECA": torch.rand(20, 28, 28)}
    fig = channel_weights_figure(class_gates["SE"]["b1"], 3, "b1", "SE", images[:2], cams["SE"][:2])
    assert len(fig.axes) == 6                                  # heat map, colour bar, bars, two Grad-CAMs, their bar
    explorer = channel_weights_explorer(class_gates, images, labels, cams)
    before = explorer.image.value
    explorer.set(model="ECA")                                  # the first control changes the picture
    assert explorer.image.value != before
    explorer.set(layer=0, label=7)
    assert explorer.values() == {"model": "ECA", "layer": 0, "label": 7}
    explorer.set(label=0)
    assert explorer.message.value == ""
    with pytest.raises(ValueError, match="empty"):
        channel_weights_explorer({}, images, labels, cams)
    missing = channel_weights_explorer(class_gates, images[:5], labels[:5], cams)
    missing.set(label=9)                                      # no image of that class: a message, no traceback
    assert "no image" in missing.message.value
