"""The course's figure helpers (utils.plotting) and the explorer's sizing (utils.widgets)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from utils import plotting
from utils.plotting import MAX_DPI, colorbar, comparison_chart, display_dpi, figure_png, png_size
from utils.widgets import Explorer, dropdown, slider


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


def test_labelled_grid_labels_rows_columns_and_scale():
    from utils.plotting import labelled_grid

    panels = np.random.default_rng(0).uniform(-1, 1, (6, 3, 3))
    fig = labelled_grid(panels, ["r0", "r1"], ["c0", "c1", "c2"], "cosine similarity", vmin=-1, vmax=1)
    grid = [ax for ax in fig.axes if ax.images]
    assert len(grid) == 6 and all(ax.images[0].get_clim() == (-1, 1) for ax in grid)
    assert [grid[0].get_ylabel(), grid[3].get_ylabel()] == ["r0", "r1"]
    assert [ax.get_title() for ax in grid[:3]] == ["c0", "c1", "c2"]
    assert any(ax.get_ylabel() == "cosine similarity" for ax in fig.axes)
    plt.close(fig)
    with pytest.raises(ValueError, match="one per grid cell"):
        labelled_grid(panels[:5], ["r0", "r1"], ["c0", "c1", "c2"], "x")


def test_dropdown_opens_on_a_visible_choice():
    assert dropdown("classes", [("all", 0), ("shirt", 1)]).label == "all"
    assert dropdown("model", ["a", "b"], "b").value == "b"
    with pytest.raises(ValueError, match="blank"):
        dropdown("classes", [("all", None), ("shirt", 1)])


def test_comparison_chart_wraps_panels_into_rows():
    rows = {name: {f"m{k}": float(k) + 1 for k in range(5)} for name in ("A", "B")}
    fig = comparison_chart(rows, {f"m{k}": f"metric {k}" for k in range(5)}, per_row=3)
    drawn = [ax for ax in fig.axes if ax.patches]
    assert len(drawn) == 5 and len(fig.axes) == 6                       # 2 rows of 3, the last panel left empty
    assert drawn[4].get_xlabel() == "metric 4"
    plt.close(fig)


def test_history_figure_draws_no_empty_panel():
    from utils.training import History

    losses_only = History(rows=[{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}])
    fig = losses_only.figure()
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "loss"
    plt.close(fig)
    fig = History(rows=[{"epoch": 1, "train_loss": 1.0, "val_acc": 0.5}]).figure()
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "metric"] and all(ax.lines for ax in fig.axes)
    plt.close(fig)


def test_images_that_encode_values_need_a_colour_bar():
    values = np.arange(12.0).reshape(3, 4)
    fig, (heat, shared_a, shared_b, picture, overlay, mask) = plt.subplots(1, 6)
    heat.imshow(values, cmap="viridis")
    heat.set_title("heat")
    first = shared_a.imshow(values, cmap="magma", vmin=0, vmax=11)
    shared_b.imshow(values * 0.5, cmap="magma", vmin=0, vmax=11)
    fig.colorbar(first, ax=[shared_a, shared_b], label="value")
    picture.imshow(values, cmap="gray")
    picture.imshow(values, cmap="autumn", alpha=0.5)              # an overlay on a picture
    overlay.imshow(np.stack([values] * 3, -1) / 11)                # RGB
    mask.imshow(values.astype(int) % 3, cmap="tab10")              # categories
    assert plotting.images_without_scale(fig) == ["heat"]
    with pytest.raises(ValueError, match="colour bar"):
        plotting.check_scales(fig)
    fig.colorbar(heat.images[0], ax=heat)
    assert plotting.images_without_scale(fig) == []
    plotting.check_scales(fig)
    plt.close(fig)
    unlabelled = plt.figure()
    unlabelled.add_subplot().imshow(values, cmap="magma", vmin=0, vmax=5)     # other limits than the bar's
    assert plotting.images_without_scale(unlabelled) == ["axes 1"]
    with pytest.raises(ValueError, match="colour bar"):
        plotting.figure_png(unlabelled)
    plt.close("all")


def test_show_saves_an_explorer_under_its_heading(tmp_path, monkeypatch):
    monkeypatch.setattr(plotting, "OUTPUTS", tmp_path)
    monkeypatch.setattr(plotting, "_state", {"chapter": "scratch", "count": 0})   # the session's chapter untouched
    plotting.set_chapter("chapter")
    explorer = Explorer(_render, {"value": slider("v", 1, 5)}, title="Loss landscape explorer")
    plotting.show(explorer)
    assert [p.name for p in (tmp_path / "chapter").iterdir()] == ["01-loss-landscape-explorer.png"]


def test_outputs_go_where_course_outputs_says(tmp_path):
    """A workshop hub points each learner's chapters at their own folder: the course's is read-only to them."""
    import subprocess
    import sys

    code = "from utils import plotting; print(plotting.OUTPUTS)"
    env = {"COURSE_OUTPUTS": str(tmp_path / "mine"), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"}
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                           cwd=plotting.OUTPUTS.parents[1]).stdout.strip()
    assert shown == str(tmp_path / "mine")
