"""Your own model (issue 30): the look-inside tools on torchvision's architectures — ResNet-18/50, VGG-11, ViT-B/16,
Swin-T — with random weights and small inputs (utils/look_inside.py, utils/receptive_field.py, utils/attention_modules.py,
utils/vit_attention.py, utils/own_models.py)."""

import matplotlib
import numpy as np
import pytest
import torch
import torchvision
from torchvision.models.resnet import Bottleneck

from utils import own_models
from utils.attention_modules import grad_cam_explorer, grad_cam_figure, grad_cams
from utils.look_inside import (effective_fields, feature_map_explorer, inside_window, map_layers,
                               receptive_field_explorer)
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
    for name, model in cnns.items():                                 # one drawing each: built, then the last layer
        explorer = feature_map_explorer(model, pictures, title=f"{name}, {own_models.UNTRAINED}")
        assert not explorer.message.value and explorer.image.value, name
        last = list(explorer.controls["layer"].options)[-1]
        fig = explorer.render(**{**explorer.values(), "layer": last, "unit_row": 0, "unit_col": 0, "channel": 0})
        assert own_models.UNTRAINED in fig._suptitle.get_text() and fig.axes[0].images[0].get_array().shape[-1] == 3
        matplotlib.pyplot.close(fig)
    explorer.set(image_index=1)                                       # a control still redraws without an error
    assert not explorer.message.value


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
    explorer = grad_cam_explorer(cnns["resnet18"], pictures, ["layer3", "layer4"], "ResNet-18, untrained weights",
                                 own_models.categories("resnet18"), ["astronaut", "coffee"], top=3)
    explorer.set(rank=2)
    assert not explorer.message.value and explorer.image.value
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


def test_photos_weights_and_pictures(tmp_path, monkeypatch):
    x = own_models.photos(size=24)
    assert x.shape == (len(own_models.PHOTOS), 3, 24, 24) and abs(float(x.mean())) < 1.5
    with pytest.raises(ValueError, match="unknown photo"):
        own_models.photo("moon_landing")
    state = torch.random.get_rng_state()
    first, label = own_models.torchvision_model("resnet18")
    assert torch.equal(state, torch.random.get_rng_state()) and label == own_models.UNTRAINED
    assert torch.equal(first.conv1.weight, own_models.torchvision_model("resnet18")[0].conv1.weight)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert own_models.cached_weights("resnet18") is None
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / weights.url.rsplit("/", 1)[1]).write_bytes(b"")
    assert own_models.cached_weights("resnet18") is weights
    with pytest.raises(ValueError, match="no model"):
        own_models.cached_weights("resnet7")
    assert picture(torch.zeros(1, 5, 6)).shape == (5, 6) and picture(x[0]).shape == (24, 24, 3)
    assert 0 <= picture(x[0]).min() and picture(x[0]).max() <= 1 and picture(np.zeros((4, 5, 6))).shape == (5, 6)
