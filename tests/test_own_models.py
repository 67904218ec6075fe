"""Your own model (issue 30): the look-inside tools on torchvision's architectures — ResNet-18/50, VGG-11, ViT-B/16,
Swin-T — with random weights and small inputs (utils/look_inside.py, utils/receptive_field.py,
utils/attention_modules.py, utils/vit_attention.py), and utils/own_models.py's choice between untrained weights and
ImageNet's from the torchvision cache, with the network off. Each model is built once: building draws most of the
time (VGG-11's 133 M and ViT-B/16's 86 M random weights)."""

import hashlib
import socket
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import matplotlib
import numpy as np
import pytest
import torch
import torchvision
from torchvision.models.resnet import Bottleneck

from utils import own_models
from utils.attention_modules import grad_cam_explorer, grad_cam_figure, grad_cams
from utils.look_inside import (effective_fields, feature_map_explorer, inside_window, map_layers,
                               receptive_field_explorer, render_feature_maps)
from utils.plotting import images_without_scale, picture
from utils.receptive_field import effective_receptive_field, receptive_field
from utils.vit_attention import (attention_map_figure, swin_window_attentions, vit_attentions,
                                 window_attention_figure, window_heat)

matplotlib.use("Agg")
CNNS = ("resnet18", "resnet50", "vgg11")


@pytest.fixture(scope="module")
def cnns():
    return {name: own_models.torchvision_model(name)[0] for name in CNNS}


@pytest.fixture(scope="module")
def pictures():
    return own_models.photos(("astronaut", "coffee"), size=32)


@pytest.fixture
def network_attempts(monkeypatch):
    """Every way out to the network refuses (as with no internet) and is recorded: the list must stay empty."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("the network is off in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "urlopen", refuse)               # torch.hub imported its own name for it
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return attempts


class _Unused(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.spare = torch.nn.Conv2d(3, 2, 3), torch.nn.Conv2d(2, 2, 1)

    def forward(self, x):
        return self.conv(x)


def _last_conv(model) -> str:
    return [name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)][-1]


def test_theoretical_fields_match_the_published_values():
    with torch.device("meta"):                                      # shapes only: no weights drawn, no memory
        nets = {name: torchvision.models.get_model(name) for name in ("resnet18", "resnet50", "vgg11", "vgg16")}
        v1 = torchvision.models.resnet50()
    for block in v1.modules():                                      # ResNet v1 (He et al.): stride in the first 1×1
        if isinstance(block, Bottleneck) and block.conv2.stride == (2, 2):
            block.conv1.stride, block.conv2.stride = (2, 2), (1, 1)
    last = {name: map_layers(net, (3, 224, 224)) for name, net in {**nets, "resnet50 v1": v1}.items()}
    rf = {name: list(layers.values())[-1].rf for name, layers in last.items()}
    # Araujo et al., Distill 2019: ResNet-50 (v1) 483 px, VGG-16 212 px; torchvision's v1.5 (stride on the 3×3) 427
    assert rf == {"resnet18": 435, "resnet50": 427, "vgg11": 150, "vgg16": 212, "resnet50 v1": 483}, rf
    assert all(list(layers.values())[-1].jump == 32 for layers in last.values())


def test_receptive_field_takes_any_input_size():
    with torch.device("meta"):
        resnet, vgg = torchvision.models.resnet18(), torchvision.models.vgg11()
    square, wide = receptive_field(resnet, (3, 224, 224)), receptive_field(resnet, (3, 64, 96))
    conv_records = lambda records: [r for r in records if "conv" in r.name]  # noqa: E731
    assert conv_records(square) == conv_records(wide), "convolutions' records do not depend on the input size"
    assert wide[-1].rf == 435 + 2 * 32 and wide[-1].jump == 0, "2×3 map pooled to 1×1: the larger side, one window"
    small = {r.name: r for r in receptive_field(vgg, (3, 48, 48))}  # 1×1 map pooled to 7×7: windows differ → mixed
    assert small["avgpool"].rf == small["features.20"].rf and small["avgpool"].jump == 0


def test_feature_map_explorer_on_each_cnn(cnns, pictures):
    for name, model in cnns.items():       # one drawing each, then the last layer (the controls: test_look_inside)
        explorer = feature_map_explorer(model, pictures, title=f"{name}, {own_models.UNTRAINED}")
        assert not explorer.message.value and explorer.image.value, name
        last = list(explorer.controls["layer"].options)[-1]
        fig = explorer.render(**{**explorer.values(), "layer": last, "unit_row": 0, "unit_col": 0, "channel": 0})
        assert own_models.UNTRAINED in fig._suptitle.get_text() and fig.axes[0].images[0].get_array().shape[-1] == 3
        matplotlib.pyplot.close(fig)


def test_effective_field_stays_inside_the_theoretical_one(cnns, pictures):
    model = cnns["resnet18"]
    records = map_layers(model, (3, 32, 32))
    chosen = ["conv1", "layer1.1.conv2", "layer2.0.conv1"]
    erfs = effective_fields({own_models.UNTRAINED: model}, chosen, pictures)
    for layer in chosen:
        erf = erfs[own_models.UNTRAINED][layer]
        assert erf.shape == (32, 32) and erf.sum() > 0
        assert erf[~inside_window(records[layer], 32, 32)].sum() == 0, f"{layer}: gradient outside the window"
    explorer = receptive_field_explorer(records, erfs, title="ResNet-18, untrained weights")
    assert list(explorer.controls["layer"].options) == chosen and not explorer.message.value
    with pytest.raises(ValueError, match="no effective receptive field"):
        explorer.render(layer="layer4.1.conv2")
    with pytest.raises(ValueError, match="not used in the model's forward pass"):
        effective_receptive_field(_Unused(), (3, 8, 8), layer="spare")


def test_grad_cam_on_each_cnn(cnns, pictures):
    for name, model in cnns.items():
        layer = _last_conv(model)
        cams = grad_cams(model, pictures, [layer])[layer]
        assert cams.shape == (2, 32, 32) and 0 <= cams.min() and cams.max() <= 1, name
    names = own_models.categories("resnet18")
    explorer = grad_cam_explorer(cnns["resnet18"], pictures, ["layer3", "layer4"], "ResNet-18, untrained weights",
                                 names, ["astronaut", "coffee"], top=3)
    assert not explorer.message.value and explorer.image.value
    with torch.no_grad():
        third = names[int(cnns["resnet18"](pictures[1:]).topk(3).indices[0, 2])]
    fig = explorer.render(image="coffee", rank=2)                     # the rank control's figure, without its PNG
    assert fig.axes[0].get_title().startswith(f"coffee: class 3 of the top 3\n{third} (p = "), (
        f"the figure should name the ImageNet class it explains: {fig.axes[0].get_title()!r}")
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="no layer"):
        grad_cams(cnns["resnet18"], pictures, ["nope"])
    with pytest.raises(ValueError, match="compute the maps on this image"):
        grad_cam_figure(pictures[0], {"x": torch.zeros(8, 8)}, "t")


def test_vit_b_16_attention_and_rollout():
    model, label = own_models.torchvision_model("vit_b_16", image_size=32)
    image = own_models.photo("chelsea", 32)
    logits, attentions = vit_attentions(model, image[None])
    with torch.no_grad():
        torch.testing.assert_close(logits, model(image[None]), rtol=1e-4, atol=1e-4)
    assert len(attentions) == 12 and attentions[0].shape == (1, 12, 5, 5)   # class token + 2×2 patches, 12 heads
    torch.testing.assert_close(attentions[5].sum(-1), torch.ones(1, 12, 5))
    fig = attention_map_figure(image, [a[0] for a in attentions], 16, 11, 0, 0, rollout=True, title=label)
    assert label in fig._suptitle.get_text() and not images_without_scale(fig)
    with pytest.raises(ValueError, match="image_size"):
        vit_attentions(model, torch.zeros(1, 3, 48, 48))


def test_swin_t_window_attention():
    model, label = own_models.torchvision_model("swin_t")
    image = own_models.photo("rocket", 56)                           # 14×14 tokens: 2×2 windows of 7×7 in stage 1
    logits, records = swin_window_attentions(model, image)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(image[None]))
    assert len(records) == 12 and [r["shift"] for r in records[:2]] == [(0, 0), (3, 3)]
    assert records[0]["attention"].shape == (4, 3, 49, 49) and records[0]["token"] == 4
    for record, row, col in ((records[0], 2, 3), (records[1], 0, 0), (records[1], 13, 5)):
        heat = window_heat(record, row, col)
        assert abs(heat.sum() - 1) < 1e-5 and heat[row, col] > 0, "a query's row of attention lies in the map"
        assert (heat > 0).sum() <= 49, "keys only from the query's own window"
    shifted = window_heat(records[1], 0, 0)                          # the corner window mixes wrapped regions...
    assert shifted[:4, :4].sum() > 0.999, "...but the mask keeps the query in its own region"
    fig = window_attention_figure(image, records[1], 0, 0, head=1, title=label)
    assert "SW-MSA" in fig.axes[0].get_title() and not images_without_scale(fig)
    with pytest.raises(ValueError, match="outside the 14×14 token map"):
        window_heat(records[0], 14, 0)


def test_photos_and_pictures():
    x = own_models.photos(size=24)
    assert x.shape == (len(own_models.PHOTOS), 3, 24, 24) and abs(float(x.mean())) < 1.5
    with pytest.raises(ValueError, match="unknown photo"):
        own_models.photo("moon_landing")
    with pytest.raises(ValueError, match="no model"):
        own_models.cached_weights("resnet7")
    assert picture(torch.zeros(1, 5, 6)).shape == (5, 6) and picture(x[0]).shape == (24, 24, 3)
    assert 0 <= picture(x[0]).min() and picture(x[0]).max() <= 1 and picture(np.zeros((4, 5, 6))).shape == (5, 6)


def test_untrained_without_the_cache_imagenet_weights_with_it(cnns, pictures, tmp_path, monkeypatch,
                                                              network_attempts):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert torch.hub.get_dir() == str(tmp_path / "hub"), "torch.hub.set_dir() was called: TORCH_HOME is ignored"
    state = torch.random.get_rng_state()
    untrained, label = own_models.torchvision_model("resnet18")
    assert label == own_models.UNTRAINED and own_models.cached_weights("resnet18") is None
    assert torch.equal(state, torch.random.get_rng_state()), "building should leave the caller's random stream"
    assert torch.equal(untrained.conv1.weight, cnns["resnet18"].conv1.weight), "the same seed, the same weights"

    weights = torchvision.models.ResNet18_Weights.DEFAULT
    assert not network_attempts, f"the untrained model may not try a download: {network_attempts}"
    with pytest.raises(OSError, match="network is off"):              # the guard holds: asked for the weights
        weights.get_state_dict(progress=False)                        # themselves, torchvision would download
    network_attempts.clear()
    file = tmp_path / "hub" / "checkpoints" / Path(urlparse(weights.url).path).name   # where torchvision looks
    file.parent.mkdir(parents=True, exist_ok=True)                   # made by the refused download
    stand_in = own_models.torchvision_model("resnet18", seed=1)[0].state_dict()     # in place of ImageNet's file
    torch.save(stand_in, file)
    # torch checks the SHA-256 prefix in the file name only when it downloads; a cached file is loaded as it is.
    # So this covers which weights are picked and that they are loaded, not that a learner's file holds ImageNet's.
    assert hashlib.sha256(file.read_bytes()).hexdigest()[:8] != file.stem.rsplit("-", 1)[1]
    # image_size (a ViT's) is dropped with pretrained weights: a ResNet given it would refuse it
    pretrained, label = own_models.torchvision_model("resnet18", image_size=32)
    assert own_models.cached_weights("resnet18") is weights and label == own_models.PRETRAINED
    assert "ImageNet weights" in label and "untrained" not in label, label
    assert torch.equal(state, torch.random.get_rng_state()), "loading should leave the caller's random stream too"
    assert all(torch.equal(value, stand_in[key]) for key, value in pretrained.state_dict().items()), (
        "the model should hold the cached file's weights")
    assert not torch.equal(pretrained.conv1.weight, untrained.conv1.weight) and not pretrained.training
    assert own_models.categories("resnet18") == weights.meta["categories"] and len(weights.meta["categories"]) == 1000
    layers = map_layers(pretrained, (3, 32, 32))
    fig = render_feature_maps(pretrained, pictures, layers, 0, "conv1", 0, 0, 0, title=f"resnet18, {label}")
    assert "ImageNet weights" in fig._suptitle.get_text() and "untrained" not in fig._suptitle.get_text()
    matplotlib.pyplot.close(fig)
    assert not network_attempts, f"nothing may be downloaded: {network_attempts}"
