"""The course's figure helpers (utils.plotting) and the explorer's sizing (utils.widgets)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from utils.plotting import MAX_DPI, colorbar, comparison_chart, display_dpi, figure_png, png_size
from utils.widgets import Explorer, slider


def test_display_dpi_fits_the_box_and_caps_text_size():
    assert display_dpi(plt.figure(figsize=(7.9, 3.9)), 960, 640) == 120        # width decides (0.05" margins)
    assert display_dpi(plt.figure(figsize=(3.9, 7.9)), 960, 640) == 80         # height decides
    assert display_dpi(plt.figure(figsize=(2, 1)), 960, 640) == MAX_DPI        # small figures are not blown up
    plt.close("all")


def test_png_size_reads_the_header():
    fig = plt.figure(figsize=(3, 2))
    fig.patch.set_facecolor("red")  # a plain figure: bbox "tight" keeps the whole canvas
    width, height = png_size(figure_png(fig, dpi=100))
    assert (width, height) == (310, 210)                          # and a 0.05-inch margin
    with pytest.raises(ValueError, match="not PNG"):
        png_size(b"GIF89a")


def _render(value):
    fig, ax = plt.subplots(figsize=(12, 3), layout="constrained")
    ax.plot(np.arange(10) * value)
    ax.set(xlabel="x", ylabel="y")
    return fig


def test_explorer_draws_at_the_size_it_shows():
    explorer = Explorer(_render, {"value": slider("v", 1, 5)}, width=900, max_height=600)
    width, height = png_size(explorer.image.value)
    assert 880 <= width <= 900 and height <= 600                  # drawn for 900 px
    assert explorer.image.layout.width == f"{width}px"            # shown at its natural width: never stretched
    assert explorer.image.layout.max_width == "100%"              # a narrower notebook shrinks it, never the reverse
    tall = Explorer(lambda value: plt.figure(figsize=(4, 8)), {"value": slider("v", 1, 5)}, max_height=500)
    assert png_size(tall.image.value)[1] <= 500
    with pytest.raises(ValueError, match="pixels"):
        Explorer(_render, {"value": slider("v", 1, 5)}, width=9)


def test_colorbar_labels_the_scale():
    fig, ax = plt.subplots()
    bar = colorbar(ax.imshow(np.eye(3)), ax, "weight")
    assert bar.ax.get_ylabel() == "weight"
    plt.close(fig)


def test_comparison_chart_draws_every_number():
    rows = {"A": {"params": 1_234, "acc": 0.5}, "B": {"params": 56_789, "acc": 0.75}}
    fig = comparison_chart(rows, {"params": "parameters", "acc": "test accuracy"}, log=("params",),
                           best={"acc": "max"}, title="t")
    params_ax, acc_ax = fig.axes
    assert [t.get_text() for t in acc_ax.texts] == ["0.500", "0.750"]
    assert [t.get_text() for t in params_ax.texts] == ["1,234", "56,789"]
    assert params_ax.get_xscale() == "log" and acc_ax.get_xlabel() == "test accuracy"
    assert [t.get_text() for t in params_ax.get_yticklabels()] == ["A", "B"]
    colours = [bar.get_facecolor() for bar in acc_ax.patches]
    assert colours[1] != colours[0]                                # the winner stands out
    plt.close(fig)
    with pytest.raises(ValueError, match="missing"):
        comparison_chart({"A": {"acc": 1}}, {"params": "p"})
    with pytest.raises(ValueError, match="max"):
        comparison_chart(rows, {"acc": "a"}, best={"acc": "highest"})
