"""Showing figures the same way in a notebook and under plain ``python``.

Introduced in Chapter 1 (01a). In a Jupyter kernel `show` displays a figure inline; run as
``python chapters/<file>.py`` it saves the figure as a PNG under ``chapters/outputs/<chapter>/``, the only
place a chapter writes besides ``data/``.
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import matplotlib
import numpy as np

if "ipykernel" not in sys.modules:  # plain python: draw off-screen, figures go to files
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OUTPUTS = Path(__file__).resolve().parents[1] / "chapters" / "outputs"
_state = {"chapter": "scratch", "count": 0}


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, nbval), False under plain python."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return False
    return shell is not None and "IPKernelApp" in shell.config


def set_chapter(name: str) -> Path:
    """Name the chapter whose figures `show` saves; returns its output folder."""
    _state.update(chapter=name, count=0)
    return OUTPUTS / name


def output_dir() -> Path:
    """The active chapter's output folder (created on first use)."""
    folder = OUTPUTS / _state["chapter"]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def show(fig=None, title: str | None = None) -> None:
    """Display ``fig`` (default: the current figure, or an `utils.widgets.Explorer`) inline in a notebook;
    with no notebook, save it (an explorer: its current static figure) as a PNG."""
    fig = fig or plt.gcf()
    if in_notebook():
        from IPython.display import display

        display(fig)
        if hasattr(fig, "static_figure"):
            return
    else:
        fig = fig.static_figure() if hasattr(fig, "static_figure") else fig
        _state["count"] += 1
        label = title or (fig._suptitle.get_text() if fig._suptitle else "") or (
            fig.axes[0].get_title() if fig.axes else "")
        slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40] or "figure"
        path = output_dir() / f"{_state['count']:02d}-{slug}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        print(f"[figure saved to {path.relative_to(OUTPUTS.parents[1])}]")
    plt.close(fig)


def figure_png(fig, dpi: int = 80) -> bytes:
    """The figure as PNG bytes (for image widgets and static fallbacks); closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def image_grid(images, titles=None, ncols: int = 8, cmap: str = "gray", size: float = 1.3, suptitle=None):
    """A figure with ``images`` (N×H×W or N×1×H×W, any array-like) laid out in a grid."""
    images = [np.asarray(im.detach().cpu() if hasattr(im, "detach") else im).squeeze() for im in images]
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if suptitle else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap=cmap)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
