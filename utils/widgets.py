"""The course's widget pattern: a plain, tested ``render(**values) -> Figure`` behind thin ipywidgets controls.

Introduced in Chapter 1 (01d). An `Explorer` shows its controls above the rendered figure (a PNG in an
``ipywidgets.Image``) and redraws whenever a control changes. The PNG is drawn at the size it is shown (dpi
chosen so it fits ``width`` × ``max_height`` pixels; the image is displayed at its natural width, never
stretched), so the figure and its controls fit one 1600×1000 screen. A value the render function rejects
(``ValueError``) is shown as a plain message under the controls, never as a traceback. Where no widget front end
exists (nbval, nbconvert, GitHub) the notebook output carries a static PNG of the current figure, and under
plain ``python`` `utils.plotting.show` saves that figure to the chapter's output folder.
"""

from __future__ import annotations

import base64
import html
from typing import Callable

import ipywidgets as widgets

from .plotting import display_dpi, figure_png, png_size

DISPLAY_WIDTH = 960  # px: fits JupyterLab's notebook column in a 1600-px window, side bar open
MAX_HEIGHT = 640     # px: the figure, its title and two rows of controls fit a 1000-px-tall window


class Explorer(widgets.VBox):
    """``controls`` maps each keyword of ``render`` to the widget that sets it; the figure is drawn to fit
    ``width`` × ``max_height`` pixels and shown at exactly its drawn size."""

    def __init__(self, render: Callable, controls: dict[str, widgets.ValueWidget], title: str = "",
                 width: int = DISPLAY_WIDTH, max_height: int = MAX_HEIGHT):
        if width < 100 or max_height < 100:
            raise ValueError(f"width={width} and max_height={max_height} are pixels: give at least 100 each")
        self.render = render
        self.controls = controls
        self.heading = title
        self.width, self.max_height = width, max_height
        self.message = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        super().__init__([widgets.HTML(f"<b>{html.escape(title)}</b>"),
                          widgets.HBox(list(controls.values()), layout=widgets.Layout(flex_flow="row wrap")),
                          self.message, self.image])
        self.add_class("dvl-explorer")
        for control in controls.values():
            control.observe(self._redraw, names="value")
        self._redraw()

    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def set(self, **values) -> None:
        """Set controls by name, as the learner would; out-of-range values raise a ValueError that says so."""
        for name, value in values.items():
            if name not in self.controls:
                raise ValueError(f"unknown control {name!r}; this explorer has {', '.join(self.controls)}")
            control = self.controls[name]
            options = getattr(control, "options", None)
            if options is not None:
                allowed = [o[1] if isinstance(o, tuple) else o for o in options]
                if value not in allowed:
                    raise ValueError(f"{name}={value!r} is not one of {allowed}")
            elif hasattr(control, "min") and not control.min <= value <= control.max:
                raise ValueError(f"{name}={value} is out of range: choose from {control.min} to {control.max}")
        for name, value in values.items():
            self.controls[name].value = value

    def static_figure(self):
        """The figure for the current control values (what a front-end-less output shows)."""
        return self.render(**self.values())

    def _redraw(self, change=None) -> None:
        try:
            fig = self.render(**self.values())
        except Exception as error:  # noqa: BLE001 — every render error becomes the red message, never a traceback
            text = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
            self.message.value = f"<span style='color:#b00020'>{html.escape(text)}</span>"
            return
        self.message.value = ""
        png = figure_png(fig, dpi=display_dpi(fig, self.width, self.max_height))
        self.image.layout.width = f"{png_size(png)[0]}px"  # its natural width: the browser never stretches it
        self.image.value = png

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        if self.image.value:  # static fallback; JupyterLab prefers the live widget view
            bundle["image/png"] = base64.b64encode(self.image.value).decode()
        return bundle


def slider(description: str, low: int, high: int, value: int | None = None) -> widgets.IntSlider:
    """An integer slider with the course's layout (continuous_update off: redraw on release)."""
    return widgets.IntSlider(value=low if value is None else value, min=low, max=high, description=description,
                             continuous_update=False, style={"description_width": "initial"})


def dropdown(description: str, options, value=None) -> widgets.Dropdown:
    """A dropdown with the course's layout."""
    options = list(options)
    if any(isinstance(o, tuple) and o[1] is None for o in options):
        raise ValueError("an option whose value is None shows as a blank dropdown: give it a real value, e.g. "
                         "('all', 0)")
    return widgets.Dropdown(options=options, value=value if value is not None else
                            (options[0][1] if isinstance(options[0], tuple) else options[0]),
                            description=description, style={"description_width": "initial"})
