"""Showing figures the same way in a notebook and under plain ``python``.

Introduced in Chapter 1 (01a). In a Jupyter kernel `show` displays a figure inline; run as
``python chapters/<file>.py`` it saves the figure as a PNG under ``chapters/outputs/<chapter>/``, the only
place a chapter writes besides ``data/``.
"""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

import matplotlib
import numpy as np

if "ipykernel" not in sys.modules:  # plain python: draw off-screen, figures go to files
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

# Where chapters write figures, headline results and executed notebooks: chapters/outputs, or $COURSE_OUTPUTS where
# the course folder is not the learner's to write (a workshop hub gives each learner their own).
OUTPUTS = Path(os.environ.get("COURSE_OUTPUTS") or Path(__file__).resolve().parents[1] / "chapters" / "outputs")
PAD_INCHES = 0.05  # white margin around a saved figure
MAX_DPI = 150  # 10-pt text at 21 px: drawn any larger, a figure's text outgrows the notebook's own
_state = {"chapter": "scratch", "count": 0}


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, nbval) or `make verify`'s notebook-keeping runner
    (utils.course.execute), False under plain python."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return False
    return shell is not None and ("IPKernelApp" in shell.config or getattr(shell, "keeps_a_notebook", False))


def set_chapter(name: str) -> Path:
    """Name the chapter whose figures `show` saves; returns its output folder."""
    _state.update(chapter=name, count=0)
    return OUTPUTS / name


def current_chapter() -> str:
    """The name given to the last `set_chapter` ("scratch" before any)."""
    return _state["chapter"]


def output_dir() -> Path:
    """The active chapter's output folder (created on first use)."""
    folder = OUTPUTS / _state["chapter"]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# Colour maps that draw a picture rather than a value: no colour bar needed. Category maps (tab10, Set1, …) are
# told apart by what they are: a short list of colours.
PICTURE_CMAPS = {"gray", "gray_r", "Greys", "Greys_r", "binary", "binary_r", "bone"}
MAX_CATEGORY_COLOURS = 20


def images_without_scale(fig) -> list[str]:
    """The images of ``fig`` whose colour encodes a value but that have no colour bar: 2-D arrays drawn opaque through a
    colour map that is neither a picture's grey scale nor a set of category colours, with no colour bar of their own
    or of an image sharing their colour map and limits. Each is named by its axes' title (or its position)."""
    colorbars = [ax._colorbar for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]
    missing = []
    for number, ax in enumerate(fig.axes, 1):
        for image in ax.images:
            cmap = image.get_cmap()
            categories = isinstance(cmap, matplotlib.colors.ListedColormap) and cmap.N <= MAX_CATEGORY_COLOURS
            if (np.ndim(image.get_array()) != 2 or (image.get_alpha() is not None and image.get_alpha() < 1)
                    or cmap.name in PICTURE_CMAPS or categories):
                continue
            scaled = any(bar.mappable is image or (bar.mappable.get_cmap().name == cmap.name
                                                   and bar.mappable.norm.vmin == image.norm.vmin
                                                   and bar.mappable.norm.vmax == image.norm.vmax)
                         for bar in colorbars)
            if not scaled:
                missing.append(ax.get_title() or f"axes {number}")
    return missing


def check_scales(fig) -> None:
    """Refuse a figure with an image whose colour encodes a value but shows no scale (see `images_without_scale`)."""
    missing = images_without_scale(fig)
    if missing:
        raise ValueError(f"figure images {missing} map values to colours without a colour bar: add one with "
                         "utils.plotting.colorbar(image, ax, label) (one shared bar for panels with the same colour "
                         "map and limits), or draw a picture in 'gray' and categories with a 'tab10'-like map")


def show(fig=None, title: str | None = None) -> None:
    """Display ``fig`` (default: the current figure, or an `utils.widgets.Explorer`) inline in a notebook;
    with no notebook, save it (an explorer: its current static figure) as a PNG. A figure whose colours encode
    values without a colour bar is refused (`check_scales`)."""
    fig = fig or plt.gcf()
    if not hasattr(fig, "static_figure"):
        check_scales(fig)
    if in_notebook():
        from IPython.display import display

        display(fig)
        if hasattr(fig, "static_figure"):
            return
    else:
        heading = getattr(fig, "heading", "")                # an explorer's name beats its figure's own titles
        fig = fig.static_figure() if hasattr(fig, "static_figure") else fig
        _state["count"] += 1
        label = title or heading or (fig._suptitle.get_text() if fig._suptitle else "") or (
            fig.axes[0].get_title() if fig.axes else "")
        slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40] or "figure"
        path = output_dir() / f"{_state['count']:02d}-{slug}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        print(f"[figure saved to {path.relative_to(OUTPUTS.parents[1])}]")
    plt.close(fig)


def display_dpi(fig, width: int, max_height: int) -> float:
    """The dpi that draws ``fig`` within ``width`` × ``max_height`` pixels, at most `MAX_DPI`.

    The PNG is then shown at its natural size, so what the learner sees is what was drawn: never upscaled.
    """
    fig_width, fig_height = fig.get_size_inches() + 2 * PAD_INCHES
    return min(width / fig_width, max_height / fig_height, MAX_DPI)


def figure_png(fig, dpi: float = 80) -> bytes:
    """The figure as PNG bytes (for image widgets and static fallbacks); closes it. Refused like `show`'s when a
    colour encodes a value without a colour bar."""
    check_scales(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=PAD_INCHES)
    plt.close(fig)
    return buffer.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels, read from a PNG's header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not PNG data: pass the bytes figure_png returns")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def image_grid(images, titles=None, ncols: int = 8, cmap: str = "gray", size: float = 1.3, suptitle=None,
               colorbar_label: str | None = None, vmin: float | None = None, vmax: float | None = None):
    """A figure with ``images`` (N×H×W or N×1×H×W, any array-like) laid out in a grid.

    Pictures need no scale; maps whose colour is a measured value (filter responses, differences) do: give
    ``colorbar_label`` and every panel gets its own colourbar saying what the colour measures (diverging maps
    such as ``RdBu_r`` are centred on 0). Each panel is scaled to its own range unless ``vmin``/``vmax`` fix one
    scale for all — needed where a value must look the same in every panel (a constant panel scaled to its own
    range is drawn all black)."""
    images = [np.asarray(im.detach().cpu() if hasattr(im, "detach") else im).squeeze() for im in images]
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"give one title per image: {len(titles)} titles for {len(images)} images")
    nrows = -(-len(images) // ncols)
    width = size * ncols * (1.25 if colorbar_label else 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, size * nrows + (0.3 if suptitle else 0)),
                             squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.set(xticks=[], yticks=[])  # a thin frame: a white panel still shows where it is
        if i >= len(images):
            ax.axis("off")
        else:
            limit = np.abs(images[i]).max() if colorbar_label and cmap in ("RdBu_r", "RdBu", "coolwarm", "bwr") else None
            low, high = (-limit, limit) if limit else (None, None)
            shown = ax.imshow(images[i], cmap=cmap, vmin=low if vmin is None else vmin,
                              vmax=high if vmax is None else vmax)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
            if colorbar_label:
                fig.colorbar(shown, ax=ax, shrink=0.8).set_label(colorbar_label, fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def picture(image) -> np.ndarray:
    """One image as imshow draws it: C×H×W (or H×W) of any scale → H×W grey (one channel; other counts than 1 and 3:
    the channel mean) or H×W×3 RGB in [0, 1] (min–max scaled, so standardised inputs show as they look)."""
    array = image.detach().float().cpu().numpy() if hasattr(image, "detach") else np.asarray(image, dtype=float)
    if array.ndim == 2:
        return array
    if array.ndim != 3:
        raise ValueError(f"picture takes one image, C×H×W or H×W, got shape {array.shape}: for a batch pass images[i]")
    if array.shape[0] == 3:
        low, high = array.min(), array.max()
        return np.moveaxis((array - low) / (high - low if high > low else 1.0), 0, -1)
    return array.mean(0)


def colorbar(image, ax, label: str):
    """A colourbar for ``image`` (what ``imshow`` returned) beside ``ax`` (one axes or several sharing the
    scale), saying what the colour measures."""
    return image.axes.figure.colorbar(image, ax=ax, label=label, shrink=0.85)


def _tick(value: float, _position=None) -> str:
    """An axis tick: 150k for 150,000 and 1.5M for 1,500,000, so big counts do not run into each other."""
    size = abs(value)
    return f"{value / 1e6:g}M" if size >= 1e6 else f"{value / 1e3:g}k" if size >= 1e4 else f"{value:g}"


def _number(value: float) -> str:
    """A bar's label: thousands separators for counts, three significant digits below 100, three decimals for
    scores below 1."""
    size = abs(value)
    return f"{value:,.0f}" if size >= 100 else f"{value:.1f}" if size >= 10 else f"{value:.2f}" if size >= 1 else \
        f"{value:.3f}"


def comparison_chart(rows: dict[str, dict[str, float]], columns: dict[str, str], title: str = "",
                     log: tuple[str, ...] = (), best: dict[str, str] | None = None, width: float = 10.0,
                     per_row: int = 4):
    """Compare named things on several measures: one horizontal bar panel per column (``per_row`` panels to a
    row), each bar labelled with its number.

    ``rows`` maps a name (e.g. a network) to {column: value}; ``columns`` maps the columns to show to their axis
    labels (say the unit); ``log`` names columns drawn on a log axis; ``best`` maps a column to "max" or "min",
    and that column's winning bar is drawn darker.
    """
    best = best or {}
    missing = sorted({c for row in rows.values() for c in columns if c not in row})
    if not rows or not columns or missing:
        raise ValueError(f"give at least one row and one column, every row holding every column (missing: {missing})")
    if unknown := {v for v in best.values() if v not in ("max", "min")}:
        raise ValueError(f"best takes 'max' or 'min' per column, not {sorted(unknown)}")
    names = list(rows)
    grid_rows, grid_columns = -(-len(columns) // per_row), min(len(columns), per_row)
    fig, axes = plt.subplots(grid_rows, grid_columns, figsize=(width, grid_rows * (0.7 + 0.3 * len(names)) + 0.3),
                             sharey=True, layout="constrained", squeeze=False)
    for ax in axes.flat[len(columns):]:
        ax.axis("off")
    for ax, (column, label) in zip(axes.flat, columns.items()):
        values = np.array([rows[name][column] for name in names], dtype=float)
        colours = np.full(len(names), "tab:blue", dtype=object)
        if column in best:
            colours[(np.argmax if best[column] == "max" else np.argmin)(values)] = "navy"
        bars = ax.barh(names, values, color=colours.tolist())
        ax.bar_label(bars, [_number(v) for v in values], padding=3, fontsize=8)
        if column in log:  # bars start below the smallest value; the numbers need room past the largest
            ax.set_xscale("log")
            ax.set_xlim(values.min() / 3, values.max() * 20)
        else:
            ax.margins(x=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))  # few enough ticks that their labels never touch
            ax.xaxis.set_major_formatter(FuncFormatter(_tick))
        ax.set_xlabel(label)
        ax.tick_params(axis="x", labelsize=8)
    axes[0, 0].invert_yaxis()  # first row on top, as in a table
    if title:
        fig.suptitle(title)
    return fig


def labelled_grid(panels, row_labels, col_labels, colour_label: str, title: str = "", cmap: str = "viridis",
                  vmin: float | None = None, vmax: float | None = None, size: float = 0.85):
    """Panels (R·C×H×W, row-major) in an R×C grid, rows and columns labelled, on one colour scale with its
    colourbar — e.g. a position embedding's similarity map for every patch of the grid."""
    panels = np.asarray(panels.detach().cpu() if hasattr(panels, "detach") else panels, dtype=float)
    rows, columns = len(row_labels), len(col_labels)
    if panels.ndim != 3 or len(panels) != rows * columns:
        raise ValueError(f"panels must be {rows}·{columns}×H×W (one per grid cell, row-major), got {panels.shape}")
    vmin = panels.min() if vmin is None else vmin
    vmax = panels.max() if vmax is None else vmax
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns + 1.4, size * rows + 0.5), layout="constrained",
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        drawn = ax.imshow(panels[k], cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax, label in zip(axes[:, 0], row_labels):
        ax.set_ylabel(label, fontsize=8)
    for ax, label in zip(axes[0], col_labels):
        ax.set_title(label, fontsize=8)
    colorbar(drawn, axes, colour_label)
    if title:
        fig.suptitle(title)
    return fig
