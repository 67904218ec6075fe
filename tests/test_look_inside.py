import matplotlib
import numpy as np
import pytest
import torch

from utils.look_inside import (EDGE_DETECTORS, centre_unit, edge_match, effective_fields, erf_radius,
                               feature_map_explorer, feature_maps, inside_window, kernel_figure, map_layers,
                               receptive_field_explorer, render_feature_maps, render_receptive_fields, unit_window)
from utils.models import ResNet, VGG
from utils.receptive_field import LayerRF


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return ResNet(width=8, blocks=(1, 1, 1)).eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_map_layers_are_convs_and_pools_in_order(resnet):
    layers = map_layers(resnet)
    names = list(layers)
    assert names[0] == "stem.0" and all("conv" in n or "shortcut" in n or n == "stem.0" for n in names)
    assert layers["stem.0"] == LayerRF("stem.0", 3, 1, 0.5)
    assert layers[names[-1]].jump == 4


def test_feature_maps_shapes_and_errors(resnet, images):
    maps = feature_maps(resnet, images[0], ["stem.0", "stages.2.0.conv2"])
    assert maps["stem.0"].shape == (8, 28, 28) and maps["stages.2.0.conv2"].shape == (32, 7, 7)
    with pytest.raises(ValueError, match="no layer named"):
        feature_maps(resnet, images[0], ["nope"])


def test_unit_window_and_centre_unit(resnet, images):
    record = LayerRF("x", rf=5, jump=2, start=1.5)
    assert unit_window(record, 0, 0) == (-1.0, -1.0, 4.0, 4.0)
    assert unit_window(record, 1, 2) == (1.0, 3.0, 6.0, 8.0)
    layers = map_layers(resnet)
    maps = feature_maps(resnet, images[0], layers)
    for name, rec in layers.items():
        assert centre_unit(rec, 28, 28) == (maps[name].shape[1] // 2, maps[name].shape[2] // 2)


def test_effective_field_stays_in_theoretical_window(resnet, images):
    layers = map_layers(resnet)
    erfs = effective_fields({"m": resnet}, layers, images)
    for name, record in layers.items():
        erf = erfs["m"][name]
        assert erf.shape == (28, 28) and erf.sum() > 0
        assert erf[~inside_window(record, 28, 28)].sum() == 0


def test_erf_radius():
    erf = np.zeros((9, 9))
    erf[4, 4] = 1
    assert erf_radius(erf) == 1
    erf[:, :] = 1
    assert erf_radius(erf, mass=1.0) == 9


def test_render_rejects_out_of_range(resnet, images):
    layers = map_layers(resnet)
    with pytest.raises(ValueError, match="choose 0–27"):
        render_feature_maps(resnet, images, layers, 0, "stem.0", 0, 28, 0)
    with pytest.raises(ValueError, match="image 5"):
        render_feature_maps(resnet, images, layers, 5, "stem.0", 0, 0, 0)
    fig = render_feature_maps(resnet, images, layers, 0, "stem.0", 0, 3, 3)
    assert isinstance(fig, matplotlib.figure.Figure)


def test_feature_map_explorer_redraws_and_limits(resnet, images):
    explorer = feature_map_explorer(resnet, images)
    before = bytes(explorer.image.value)
    assert before.startswith(b"\x89PNG")
    explorer.set(image_index=2)
    assert bytes(explorer.image.value) != before
    last = list(map_layers(resnet))[-1]
    explorer.set(layer=last)
    assert explorer.controls["unit_row"].max == 6            # the 7×7 map of the last stage
    with pytest.raises(ValueError, match="out of range"):
        explorer.set(unit_row=7)
    with pytest.raises(ValueError, match="not one of"):
        explorer.set(layer="nope")
    assert "image/png" in explorer._repr_mimebundle_()


def test_receptive_field_explorer(resnet, images):
    layers = map_layers(resnet)
    explorer = receptive_field_explorer(layers, effective_fields({"a": resnet}, layers, images[:1]))
    before = bytes(explorer.image.value)
    explorer.set(layer=list(layers)[0])
    assert bytes(explorer.image.value) != before


def test_explorer_shows_message_instead_of_traceback():
    from utils.widgets import Explorer, slider

    def render(value):
        if value > 2:
            raise ValueError("value too large: choose at most 2")
        import matplotlib.pyplot as plt
        return plt.figure()

    explorer = Explorer(render, {"value": slider("v", 0, 5)})
    explorer.controls["value"].value = 4
    assert "choose at most 2" in explorer.message.value
    explorer.controls["value"].value = 1
    assert explorer.message.value == ""


def test_vgg_feature_maps():
    model = VGG().eval()
    names = list(map_layers(model))
    assert "features.0.0" in names and "features.0.3" in names   # first conv and first pool


def test_edge_match_scores_sobel_kernels_one():
    sobels = torch.stack(list(EDGE_DETECTORS.values()))
    score, names = edge_match(torch.cat([sobels, -sobels + 5]))    # sign flips and offsets do not matter
    torch.testing.assert_close(score, torch.ones(8))
    assert names[:4] == list(EDGE_DETECTORS)
    blob = torch.tensor([[[0.0, 1, 0], [1, 4, 1], [0, 1, 0]]])       # centre-surround: no orientation
    assert edge_match(blob)[0].item() < 0.1
    with pytest.raises(ValueError, match="K×3×3"):
        edge_match(torch.zeros(2, 5, 5))


def test_kernel_figure_has_scale_and_scores():
    fig = kernel_figure(torch.randn(16, 3, 3, generator=torch.Generator().manual_seed(0)), "stem")
    titled = [ax for ax in fig.axes if ax.get_title().startswith("edge ")]
    assert len(titled) == 16
    assert any(ax.get_ylabel() == "weight" for ax in fig.axes)         # the colourbar says what colour means
    assert fig.get_layout_engine() is not None


def test_explorer_figures_have_colourbars_and_open_early(resnet, images):
    layers = map_layers(resnet)
    explorer = feature_map_explorer(resnet, images)
    assert list(layers).index(explorer.controls["layer"].value) <= 2   # opens where a unit sees a few pixels
    fig = render_feature_maps(resnet, images, layers, 0, "stem.0", 0, 3, 3)
    assert any(ax.get_ylabel().startswith("activation") for ax in fig.axes)
    erfs = effective_fields({"a": resnet}, layers, images[:1])
    fig = render_receptive_fields(layers, erfs, "stem.0")
    assert any("∂" in ax.get_ylabel() for ax in fig.axes) and fig.axes[0].get_ylabel() == "pixels"
