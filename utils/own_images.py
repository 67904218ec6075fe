"""Your own input: a drawing or an uploaded photo, prepared exactly like a Fashion-MNIST test image.

Introduced in Chapter 1 (01d); also used by the explorers of Chapters 2 and 3b.

Fashion-MNIST items are light on a black background, centred, their longer side filling the 28×28 frame. So a
drawing (white ink on the black pad) or a photo (grey; inverted when its background is light) is prepared in the
same steps: the object found (bounding box of what differs from the background), background set to 0, padded to a
centred square, resized by area averaging to 28×28, then standardised like the course's inputs
(`utils.data.standardize`). Bad files (not an image, empty, huge, animated, 16-bit, CMYK) are refused with a
ValueError that says what to do.

The plain, tested parts are `prepare_drawing`, `prepare_upload`, `render_strokes`, `before_after_figure` and the
render functions of the chapters' own-input explorers (`prediction_figure`, `attention_gates_figure`,
`vit_attention_figure`); `OwnInput` (a drawing pad through ipyevents, brush, clear, undo, and a file upload) and
`OwnInputExplorer` (that pad beside an `utils.widgets.Explorer`) are thin widget layers over them.
"""

from __future__ import annotations

import base64
import html
import io
import time
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from .data import CLASSES, standardize
from .plotting import display_dpi, figure_png, png_size

SIZE = 28                  # px: the course's input side
CANVAS = 280               # px: the drawing pad's side (10 pad pixels per input pixel)
MAX_BYTES = 30_000_000     # an upload larger than this is refused before decoding
MAX_PIXELS = 50_000_000    # width × height: a 50-megapixel photo is the largest accepted
WORK_SIDE = 1024           # px: a photo is reduced to at most this side before the object is looked for
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
EXAMPLES = {  # drawings made by code as a mouse would make them: (brush, points) in pad pixels
    "trousers": [(30, [(112, 40), (168, 40)]), (30, [(112, 40), (96, 250)]), (30, [(168, 40), (184, 250)]),
                 (30, [(140, 40), (140, 110)])],
    "bag": [(12, [(105, 140), (115, 80), (165, 80), (175, 140)])]
           + [(40, [(70, y), (210, y)]) for y in (150, 180, 210, 235)],
}


# ----------------------------------------------------------------------------------------- the shared preparation
def fit_to_frame(grey: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """Light-on-dark H×W uint8 → the 28×28 uint8 input: background to 0, object cropped, centred in a square, resized.

    The background level is the median of the border pixels; the object is every pixel brighter than the background
    by more than ``threshold`` of the brightest pixel's excess (and by at least 8 grey levels).
    """
    if not isinstance(grey, np.ndarray) or grey.ndim != 2 or grey.dtype != np.uint8:
        raise ValueError(f"fit_to_frame takes one H×W uint8 grey image, not "
                         f"{grey.dtype if isinstance(grey, np.ndarray) else type(grey).__name__} "
                         f"{getattr(grey, 'shape', '')}: convert with np.asarray(pil_image.convert('L'))")
    values = grey.astype(np.float32)
    border = np.concatenate([values[0], values[-1], values[:, 0], values[:, -1]])
    background = float(np.median(border))
    excess = np.clip(values - background, 0, None)
    peak = float(excess.max())
    mask = excess > max(8.0, threshold * peak)
    if not mask.any():
        raise ValueError("no object found: the image is (nearly) one flat shade — draw something, or photograph the "
                         "item against a plain background of a different brightness")
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    crop = excess[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] / peak * 255   # background 0, object up to 255
    h, w = crop.shape
    side = max(h, w)
    square = np.zeros((side, side), np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    square[top:top + h, left:left + w] = crop
    picture = Image.fromarray(square.round().astype(np.uint8))
    resample = Image.Resampling.BOX if side >= SIZE else Image.Resampling.BILINEAR  # area averaging when reducing
    return np.asarray(picture.resize((SIZE, SIZE), resample=resample))


def as_input(pixels: np.ndarray) -> torch.Tensor:
    """28×28 uint8 → the 1×28×28 float input the course's models take (`utils.data.standardize`)."""
    return standardize(torch.from_numpy(np.array(pixels, np.uint8))[None])


def as_picture(image: torch.Tensor) -> np.ndarray:
    """A standardised 1×H×W input → H×W floats in [0, 1], for showing it."""
    from .data import MEAN, STD

    return (image.detach().float().cpu()[0] * STD + MEAN).clamp(0, 1).numpy()


# ----------------------------------------------------------------------------------------------------- drawings
def render_strokes(strokes, size: int = CANVAS) -> np.ndarray:
    """Strokes → the pad's size×size uint8 canvas, white ink (255) on black (0).

    ``strokes`` is a list of ``(brush, points)``: brush width in pad pixels, points a list of (x, y) pad coordinates.
    Each stroke is drawn with round ends and joints, as a pen would.
    """
    picture = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(picture)
    for number, stroke in enumerate(strokes):
        try:
            brush, points = stroke
            points = [(float(x), float(y)) for x, y in points]
        except (TypeError, ValueError):
            raise ValueError(f"stroke {number} must be (brush, [(x, y), ...]), not {stroke!r}") from None
        if not points or brush <= 0:
            raise ValueError(f"stroke {number} needs at least one point and a positive brush, got {len(points)} "
                             f"point(s) and brush {brush}")
        radius = brush / 2
        if len(points) > 1:
            draw.line(points, fill=255, width=int(round(brush)), joint="curve")
        for x, y in points:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    return np.asarray(picture)


def prepare_drawing(canvas) -> torch.Tensor:
    """The pad's canvas (H×W, white ink on black: uint8 0–255, or floats in [0, 1]) → the 1×28×28 standardised
    input, prepared like a Fashion-MNIST image (object centred, its longer side filling the frame)."""
    canvas = np.asarray(canvas)
    if canvas.ndim != 2 or canvas.shape[0] < SIZE or canvas.shape[1] < SIZE:
        raise ValueError(f"the canvas must be one H×W grey array of at least {SIZE}×{SIZE}, got shape "
                         f"{canvas.shape}: pass OwnInput.canvas or render_strokes(strokes)")
    if canvas.dtype != np.uint8:
        if not np.issubdtype(canvas.dtype, np.floating) or canvas.min() < 0 or canvas.max() > 1:
            raise ValueError(f"a {canvas.dtype} canvas must hold floats in [0, 1] (or be uint8 0–255)")
        canvas = (canvas * 255).round().astype(np.uint8)
    if canvas.max() == 0:
        raise ValueError("the pad is empty: draw something with the mouse first")
    return as_input(fit_to_frame(canvas))


# ------------------------------------------------------------------------------------------------------ uploads
def _bit_depth(data: bytes) -> int | None:
    """A PNG's bit depth from its IHDR chunk (Pillow reads 16-bit colour PNGs as 8-bit RGB and hides it)."""
    return data[24] if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 24 else None


def open_upload(data: bytes) -> Image.Image:
    """Uploaded bytes → an RGB or L Pillow image (EXIF orientation applied), or a ValueError that says what to do."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"pass the file's bytes (e.g. open(path, 'rb').read()), not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ValueError("the file is empty (0 bytes): choose a PNG or JPEG photo or drawing")
    if len(data) > MAX_BYTES:
        raise ValueError(f"the file is {len(data) / 1e6:.0f} MB, over the {MAX_BYTES / 1e6:.0f} MB limit: save a "
                         "smaller copy (a few megapixels is plenty for a 28×28 input)")
    try:
        picture = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        if isinstance(error, Image.DecompressionBombError):
            raise ValueError(f"the image is too large to open safely ({error}): resize it below "
                             f"{MAX_PIXELS / 1e6:.0f} megapixels") from None
        raise ValueError("this file is not an image that can be read: choose a PNG or JPEG file") from None
    width, height = picture.size
    if width * height > MAX_PIXELS:
        raise ValueError(f"the image is {width}×{height} = {width * height / 1e6:.0f} megapixels, over the "
                         f"{MAX_PIXELS / 1e6:.0f}-megapixel limit: resize it (a few megapixels is plenty)")
    frames = getattr(picture, "n_frames", 1)
    if frames > 1:
        raise ValueError(f"the image is animated ({frames} frames, {picture.format}): save the one frame you want "
                         "as a PNG or JPEG")
    if picture.format not in FORMATS:
        raise ValueError(f"{picture.format} files are not taken: save it as PNG or JPEG")
    if picture.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F") or _bit_depth(data) == 16:
        raise ValueError(f"the image has 16 bits per channel ({picture.mode}): export it with 8 bits per channel "
                         "(e.g. PNG 8-bit, or JPEG)")
    if picture.mode == "CMYK":
        raise ValueError("the image is CMYK (print colours): convert it to RGB (sRGB) and save it as PNG or JPEG")
    try:
        if picture.format == "JPEG":
            picture.draft("RGB", (WORK_SIDE, WORK_SIDE))  # decode a big JPEG at a reduced scale: fast
        picture = ImageOps.exif_transpose(picture)
        picture.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"the image could not be decoded ({error}): the file is probably damaged or truncated; "
                         "save it again as PNG or JPEG") from None
    if picture.mode in ("RGBA", "LA", "PA") or (picture.mode == "P" and "transparency" in picture.info):
        flat = Image.new("RGB", picture.size, (255, 255, 255))                  # transparent → white paper
        flat.paste(picture.convert("RGBA"), mask=picture.convert("RGBA").getchannel("A"))
        picture = flat
    picture = picture.convert("RGB") if picture.mode not in ("RGB", "L") else picture
    picture.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
    return picture


def light_on_dark(picture: Image.Image) -> tuple[np.ndarray, bool]:
    """A Pillow image → its H×W uint8 grey, inverted when the background (median of the border) is light; and
    whether it was inverted."""
    grey = np.asarray(picture.convert("L"))
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    inverted = bool(np.median(border) > 127)
    return (255 - grey if inverted else grey), inverted


def prepare_upload(data: bytes) -> torch.Tensor:
    """An uploaded PNG/JPEG's bytes → the 1×28×28 standardised input: grey, inverted when the background is light,
    the object found and centred, padded square, resized by area averaging (`fit_to_frame`)."""
    grey, _ = light_on_dark(open_upload(data))
    return as_input(fit_to_frame(grey))


def before_after_figure(picture, prepared: torch.Tensor, title: str = "your image"):
    """The upload (or drawing) as it came, beside the 28×28 input it became (grey, 0 = black)."""
    if not torch.is_tensor(prepared) or tuple(prepared.shape) != (1, SIZE, SIZE):
        raise ValueError(f"prepared must be the 1×{SIZE}×{SIZE} input from prepare_upload/prepare_drawing, got "
                         f"{tuple(prepared.shape) if torch.is_tensor(prepared) else type(prepared).__name__}")
    fig, (before, after) = plt.subplots(1, 2, figsize=(3.5, 2.1), layout="constrained")  # fits under the pad
    shown = np.asarray(picture)
    before.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
    before.set_title(f"before: {title}\n{shown.shape[1]}×{shown.shape[0]} px", fontsize=8)
    after.imshow(as_picture(prepared), cmap="gray", vmin=0, vmax=1)
    after.set_title("after: the model's input\n28×28, light on black", fontsize=8)
    for ax in (before, after):
        ax.axis("off")
    return fig


# ------------------------------------------------------------------------------ what the chapters' explorers draw
@torch.no_grad()
def probabilities(model: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Softmax over the classes for one C×H×W input (eval mode): a K vector on the CPU."""
    model.eval()
    param = next(model.parameters())
    return model(image[None].to(param.device, param.dtype)).float().softmax(1)[0].cpu()


def _probability_bars(ax, probs: torch.Tensor, title: str = "prediction") -> None:
    order = list(range(len(probs)))
    best = int(probs.argmax())
    ax.barh(order, probs.numpy(), color=["tab:orange" if i == best else "tab:blue" for i in order])
    ax.set_yticks(order, [CLASSES[i] if i < len(CLASSES) else str(i) for i in order], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(f"{title}: {CLASSES[best]} {probs[best]:.0%}", fontsize=9)


def prediction_figure(model, image: torch.Tensor, layers: dict, layer: str, channel: int, unit_row: int,
                      unit_col: int, channels_shown: int = 6):
    """Chapter 1d's own-input figure: the input with the chosen unit's receptive field (red), the class
    probabilities, and ``channels_shown`` feature maps of ``layer`` from ``channel`` on (one colour scale)."""
    from .look_inside import feature_maps, unit_window

    if not torch.is_tensor(image) or image.ndim != 3:
        raise ValueError("image must be one C×H×W input: pass prepare_drawing(...) or prepare_upload(...)")
    if layer not in layers:
        raise ValueError(f"unknown layer {layer!r}: choose one of {list(layers)}")
    maps = feature_maps(model, image, [layer])[layer].numpy()
    c, h, w = maps.shape
    for what, value, size in (("channel", channel, c), ("unit row", unit_row, h), ("unit column", unit_col, w)):
        if not 0 <= value < size:
            raise ValueError(f"{what} {value} is outside layer {layer!r} ({c}×{h}×{w}): choose 0–{size - 1}")
    probs = probabilities(model, image)
    # Axes placed by hand, no layout engine: the figure is redrawn on every mouse release and must take well
    # under half a second on two cores.
    fig = plt.figure(figsize=(7.6, 4.3))
    ax_input = fig.add_axes((0.02, 0.45, 0.28, 0.42))
    ax_probs = fig.add_axes((0.125, 0.09, 0.17, 0.26))
    ax_input.imshow(as_picture(image), cmap="gray", vmin=0, vmax=1)
    top, left_edge, bottom, right_edge = unit_window(layers[layer], unit_row, unit_col)
    ax_input.add_patch(Rectangle((left_edge - 0.5, top - 0.5), right_edge - left_edge, bottom - top, fill=False,
                                 color="red", lw=1.5))
    height, width = image.shape[-2:]
    ax_input.set_xlim(min(left_edge, 0) - 0.5, max(right_edge, width) - 0.5)
    ax_input.set_ylim(max(bottom, height) - 0.5, min(top, 0) - 0.5)
    ax_input.set_title(f"your input; red: the {layers[layer].rf:.0f}-px\nreceptive field of unit "
                       f"({unit_row}, {unit_col})", fontsize=9)
    ax_input.axis("off")
    _probability_bars(ax_probs, probs)
    shown = list(range(channel, min(channel + channels_shown, c)))
    columns = -(-channels_shown // 2)
    cell = 0.5 / columns
    axes = [fig.add_axes((0.36 + cell * (i % columns), 0.47 - 0.42 * (i // columns), cell * 0.94, 0.36))
            for i in range(channels_shown)]
    low, high = float(maps[shown].min()), float(maps[shown].max())
    high = high if high - low > 1e-6 else low + 1.0     # a flat map: a colour bar needs a range
    for ax in axes:
        ax.axis("off")
    for ax, k in zip(axes, shown):
        drawn = ax.imshow(maps[k], cmap="magma", vmin=low, vmax=high)
        ax.scatter([unit_col], [unit_row], s=12, c="cyan", marker="s")
        ax.set_title(f"channel {k}", fontsize=8)
    bar = fig.colorbar(drawn, cax=fig.add_axes((0.885, 0.1, 0.015, 0.7)))
    bar.set_label("activation (one scale)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    fig.text(0.61, 0.93, f"{layer}: {c} maps of {h}×{w} (cyan: the unit)", ha="center", fontsize=9)
    return fig


def unit_grid_png(feature_map: np.ndarray, row: int, col: int, side: int = 168) -> bytes:
    """One h×w feature map drawn ``side`` px wide (grey, nearest pixels) with the chosen unit framed in red: the
    image a learner clicks to choose a unit."""
    values = np.asarray(feature_map, np.float32)
    if values.ndim != 2:
        raise ValueError(f"feature_map must be one h×w map, got shape {values.shape}")
    low, high = float(values.min()), float(values.max())
    grey = ((values - low) / (high - low) * 255 if high > low else np.full_like(values, 128)).astype(np.uint8)
    h, w = grey.shape
    scale = max(side // max(h, w), 1)
    picture = Image.fromarray(grey).resize((w * scale, h * scale), Image.Resampling.NEAREST).convert("RGB")
    ImageDraw.Draw(picture).rectangle((col * scale, row * scale, (col + 1) * scale - 1, (row + 1) * scale - 1),
                                      outline=(230, 0, 0), width=max(scale // 6, 1))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def event_point(event: dict, size: float) -> tuple[float, float]:
    """An ipyevents mouse event on an image shown ``boundingRectWidth`` × ``boundingRectHeight`` CSS pixels → the
    (x, y) position in an image ``size`` pixels wide and high (clipped to the image)."""
    try:
        x = event["relativeX"] / event["boundingRectWidth"] * size
        y = event["relativeY"] / event["boundingRectHeight"] * size
    except (KeyError, TypeError, ZeroDivisionError):
        raise ValueError("the event needs relativeX/Y and a non-zero boundingRectWidth/Height (an ipyevents "
                         "mouse event)") from None
    return min(max(x, 0.0), size - 1e-3), min(max(y, 0.0), size - 1e-3)


def _overlay(ax, picture, heat, title):
    ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
    drawn = ax.imshow(heat, cmap="jet", alpha=0.5, vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return drawn


def attention_gates_figure(models: dict, image: torch.Tensor, block: int, class_gates: dict | None = None,
                           cam_layer: str = "stages"):
    """Chapter 2's own-input figure. ``models`` holds a CBAM and an SE network (keys "CBAM" and "SE"): the input
    with both predictions; Grad-CAM of the CBAM network's top class; CBAM's spatial gate in ``block``; SE's channel
    gates in ``block`` for this input beside the mean gates of its top class (``class_gates["SE"][block name]``,
    classes×C, from `utils.attention_modules.class_mean_gates`)."""
    from .attention_modules import SE, SpatialGate, block_label, collect_gates, grad_cam

    if set(models) != {"CBAM", "SE"}:
        raise ValueError(f"models must map 'CBAM' and 'SE' to the two networks, got {sorted(models)}")
    if not torch.is_tensor(image) or image.ndim != 3:
        raise ValueError("image must be one C×H×W input: pass prepare_drawing(...) or prepare_upload(...)")
    spatial = collect_gates(models["CBAM"], image[None], SpatialGate)
    channel = collect_gates(models["SE"], image[None], SE)
    if not 0 <= block < min(len(spatial), len(channel)):
        raise ValueError(f"block {block} is out of range: choose 0–{min(len(spatial), len(channel)) - 1}")
    probs = {name: probabilities(model, image) for name, model in models.items()}
    top = {name: int(p.argmax()) for name, p in probs.items()}
    cam = grad_cam(models["CBAM"], image[None], cam_layer, torch.tensor([top["CBAM"]]))[0]
    spatial_name, channel_name = list(spatial)[block], list(channel)[block]
    gate = spatial[spatial_name][0]
    gate = F.interpolate(gate[None, None], size=image.shape[-2:], mode="nearest")[0, 0]
    gate = (gate - gate.min()) / (gate.max() - gate.min()) if gate.max() > gate.min() else torch.full_like(gate, 0.5)
    picture = as_picture(image)
    fig = plt.figure(figsize=(9.0, 3.1))         # axes placed by hand: no layout engine, a fast redraw
    axes = [fig.add_axes((0.01 + 0.175 * i, 0.08, 0.165, 0.7)) for i in range(3)]
    axes.append(fig.add_axes((0.685, 0.17, 0.3, 0.63)))
    axes[0].imshow(picture, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("\n".join(f"{n}: {CLASSES[top[n]]} {probs[n][top[n]]:.0%}" for n in ("CBAM", "SE")),
                      fontsize=9)
    axes[0].axis("off")
    _overlay(axes[1], picture, cam.numpy(), f"Grad-CAM (CBAM)\nfor {CLASSES[top['CBAM']]}")
    drawn = _overlay(axes[2], picture, gate.numpy(), f"CBAM spatial gate\n{block_label(spatial_name)}")
    bar = fig.colorbar(drawn, cax=fig.add_axes((0.535, 0.15, 0.012, 0.56)))
    bar.set_label("scaled to [0, 1]", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    mine = channel[channel_name][0]
    order = mine.argsort(descending=True)
    axes[3].bar(range(len(mine)), mine[order].numpy(), color="tab:blue", label="your input")
    if class_gates is not None and channel_name in class_gates.get("SE", {}):
        mean = class_gates["SE"][channel_name][top["SE"]]
        axes[3].plot(range(len(mine)), mean[order].numpy(), color="tab:orange", lw=1.2,
                     label=f"mean over test images of {CLASSES[top['SE']]}")
    axes[3].set(xlabel="channel (sorted by your gate)", ylabel="SE gate σ", ylim=(0, 1))
    axes[3].set_title(f"SE channel gates, {block_label(channel_name)}", fontsize=9)
    axes[3].legend(fontsize=7, loc="upper right")
    return fig


@torch.no_grad()
def vit_attention_figure(vit, image: torch.Tensor, patch_size: int, layer: int, head: int, rollout: bool):
    """Chapter 3b's own-input figure: the class token's attention (one layer and head, or the rollout up to
    ``layer``) over the input, titled with the ViT's prediction."""
    from .vit_attention import attention_map_figure

    if not torch.is_tensor(image) or image.ndim != 3:
        raise ValueError("image must be one C×H×W input: pass prepare_drawing(...) or prepare_upload(...)")
    vit.eval()
    param = next(vit.parameters())
    logits, attentions = vit(image[None].to(param.device, param.dtype), return_attention=True)
    probs = logits.float().softmax(1)[0].cpu()
    best = int(probs.argmax())
    fig = attention_map_figure(as_picture(image), [a[0] for a in attentions], patch_size=patch_size, layer=layer,
                               head=head, query=0, rollout=rollout)
    fig.axes[0].set_title(f"ViT: {CLASSES[best]} {probs[best]:.0%}\n(query: class token)", fontsize=9)
    return fig


# ------------------------------------------------------------------------------------------- the widget layers
class OwnInput:
    """A drawing pad (mouse on an ipywidgets Image, through ipyevents), brush size, clear, undo, and a file upload.

    On mouse release (and after an upload) it calls ``on_input(prepared)`` with the 1×28×28 input; a drawing or
    file that cannot be prepared shows a red message under the controls instead. ``widget`` is what to display.
    """

    def __init__(self, on_input: Callable[[torch.Tensor], None], size: int = CANVAS, brush: int = 24):
        import ipywidgets as widgets
        from ipyevents import Event

        self.on_input, self.size = on_input, size
        self.strokes: list[tuple[float, list[tuple[float, float]]]] = []
        self.drawing = False
        self.original = None                      # what the last upload showed, for the before/after figure
        self.pad = widgets.Image(value=self._png(), format="png",
                                 layout=widgets.Layout(width=f"{size}px", height=f"{size}px",
                                                       border="1px solid #888"))
        self.pad.add_class("dvl-drawing-pad")
        self.brush = widgets.IntSlider(value=brush, min=6, max=48, description="brush", continuous_update=False,
                                       style={"description_width": "initial"}, layout=widgets.Layout(width=f"{size}px"))
        self.clear_button = widgets.Button(description="clear", icon="eraser", layout=widgets.Layout(width="90px"))
        self.undo_button = widgets.Button(description="undo", icon="undo", layout=widgets.Layout(width="90px"))
        self.clear_button.add_class("dvl-clear")
        self.undo_button.add_class("dvl-undo-stroke")
        self.clear_button.on_click(lambda _: self.clear())
        self.undo_button.on_click(lambda _: self.undo())
        self.upload = widgets.FileUpload(accept="image/png,image/jpeg,.png,.jpg,.jpeg", multiple=False,
                                         description="upload", tooltip="upload a PNG or JPEG photo or drawing")
        self.upload.add_class("dvl-upload")
        self.upload.observe(self._uploaded, names="value")
        self.message = widgets.HTML()
        self.status = widgets.HTML("<i>draw with the mouse (white ink) or upload a PNG/JPEG</i>")
        self.status.add_class("dvl-status")
        self.before_after = widgets.Image(format="png", layout=widgets.Layout(display="none"))
        self.before_after.add_class("dvl-before-after")
        self.clicks = Event(source=self.pad, watched_events=["mousedown", "mouseup", "mouseleave"],
                            prevent_default_action=True)
        self.clicks.on_dom_event(self._mouse)
        self.moves = Event(source=self.pad, watched_events=["mousemove"], prevent_default_action=True,
                           throttle_or_debounce="throttle", wait=40)
        self.moves.on_dom_event(self._mouse)
        self.widget = widgets.VBox([self.pad, self.brush, widgets.HBox([self.clear_button, self.undo_button,
                                                                        self.upload]),
                                    self.message, self.status, self.before_after],
                                   layout=widgets.Layout(width=f"{size + 12}px", flex="0 0 auto"))

    # the plain part
    @property
    def canvas(self) -> np.ndarray:
        """The pad as a size×size uint8 array, white ink on black."""
        return render_strokes(self.strokes, self.size)

    def add_stroke(self, points, brush: float | None = None, notify: bool = True) -> None:
        """Draw a stroke as the mouse would (pad coordinates), then report the new input."""
        self.strokes.append((float(brush or self.brush.value), [(float(x), float(y)) for x, y in points]))
        self._refresh(notify)

    def undo(self) -> None:
        if self.strokes:
            self.strokes.pop()
        self._refresh(notify=bool(self.strokes))

    def clear(self) -> None:
        self.strokes.clear()
        self._refresh(notify=False)

    def load(self, data: bytes, name: str = "upload") -> None:
        """Take an uploaded file's bytes (what the upload control does); a bad file shows its message."""
        try:
            picture = open_upload(data)
            grey, inverted = light_on_dark(picture)
            prepared = as_input(fit_to_frame(grey))
        except ValueError as error:
            self._fail(f"{name}: {error}")
            return
        self.original = picture
        self.strokes.clear()                       # the pad no longer shows the input: empty it
        self.pad.value = self._png()
        png = _png_bytes(before_after_figure(picture, prepared, name + (" (inverted)" if inverted else "")),
                         self.size)
        self.before_after.value = png
        self.before_after.layout.display = ""
        self.before_after.layout.width = f"{png_size(png)[0]}px"     # drawn at the size shown, never stretched
        self._deliver(prepared, f"upload {name}")

    # the thin part
    def _png(self) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(self.canvas).save(buffer, format="PNG")
        return buffer.getvalue()

    def _refresh(self, notify: bool) -> None:
        self.pad.value = self._png()
        if not notify:
            self.message.value = ""
            return
        try:
            prepared = prepare_drawing(self.canvas)
        except ValueError as error:
            self._fail(str(error))
            return
        self._deliver(prepared, "drawing")

    def _deliver(self, prepared: torch.Tensor, what: str) -> None:
        self.message.value = ""
        start = time.perf_counter()
        try:
            self.on_input(prepared)
        except Exception as error:  # noqa: BLE001 — the widget never crashes: the error becomes the message
            self._fail(str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}")
            return
        self.seconds = time.perf_counter() - start
        self.status.value = f"{html.escape(what)}: redrawn in <span class='dvl-seconds'>{self.seconds:.2f}</span> s"

    def _fail(self, text: str) -> None:
        self.message.value = f"<span style='color:#b00020'>{html.escape(text)}</span>"

    def _uploaded(self, change) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        self.load(bytes(item["content"]), item.get("name", "upload"))

    def _mouse(self, event: dict) -> None:
        kind = event.get("type")
        try:
            x, y = event_point(event, self.size)
        except ValueError:
            return
        if kind == "mousedown":
            self.drawing = True
            self.strokes.append((float(self.brush.value), [(x, y)]))
            self.pad.value = self._png()
        elif kind == "mousemove" and self.drawing:
            self.strokes[-1][1].append((x, y))
            self.pad.value = self._png()
        elif kind in ("mouseup", "mouseleave") and self.drawing:
            self.drawing = False
            if kind == "mouseup":
                self.strokes[-1][1].append((x, y))
            self._refresh(notify=True)


def _png_bytes(fig, width: int) -> bytes:
    """The figure as PNG bytes drawn at most ``width`` px wide (and 240 px high)."""
    return figure_png(fig, dpi=display_dpi(fig, width, 240))


class OwnInputExplorer:
    """An `utils.widgets.Explorer` whose image is the learner's drawing or upload: the pad on the left, the
    explorer on the right. ``render(image, **values)`` draws the figure for the input ``image`` (1×28×28).

    ``picker`` (optional) maps the current input and values to ``(feature map h×w, row, col)``: a small image of it
    is shown under the pad and a click on it sets the controls ``unit_row`` and ``unit_col``.
    """

    def __init__(self, render: Callable, controls: dict, title: str, start: torch.Tensor, width: int = 660,
                 picker: Callable | None = None):
        import ipywidgets as widgets

        from .widgets import Explorer

        if not torch.is_tensor(start) or tuple(start.shape) != (1, SIZE, SIZE):
            raise ValueError(f"start must be one 1×{SIZE}×{SIZE} standardised input (e.g. standardize(images)[0]), "
                             f"got {tuple(start.shape) if torch.is_tensor(start) else type(start).__name__}")
        self.image = start
        self.heading = title
        self.own = OwnInput(self.set_image)
        self.explorer = Explorer(lambda **values: render(self.image, **values), controls, title, width=width)
        self.picker = picker
        column = [self.own.widget]
        if picker is not None:
            from ipyevents import Event

            self.unit_image = widgets.Image(format="png", layout=widgets.Layout(width="168px", height="168px"))
            self.unit_image.add_class("dvl-unit-picker")
            self.unit_events = Event(source=self.unit_image, watched_events=["click"], prevent_default_action=True)
            self.unit_events.on_dom_event(self._unit_clicked)
            for name in ("layer", "channel", "unit_row", "unit_col"):
                if name in controls:
                    controls[name].observe(lambda _: self._draw_picker(), names="value")
            self._draw_picker()
            column += [widgets.HTML("<b>click a unit</b> (the chosen channel's map)"), self.unit_image]
        self.widget = widgets.HBox([widgets.VBox(column, layout=widgets.Layout(flex="0 0 auto")), self.explorer])

    def set_image(self, image: torch.Tensor) -> None:
        """Make ``image`` (1×28×28) the explorer's input and redraw; a render error shows under the controls."""
        self.image = image
        self.explorer._redraw()
        if self.picker is not None:
            self._draw_picker()

    def static_figure(self):
        return self.explorer.static_figure()

    def _draw_picker(self) -> None:
        try:
            feature_map, row, col = self.picker(self.image, **self.explorer.values())
            self.unit_image.value = unit_grid_png(feature_map, row, col)
        except ValueError:
            pass      # the explorer shows the same error under its controls

    def _unit_clicked(self, event: dict) -> None:
        feature_map, _, _ = self.picker(self.image, **self.explorer.values())
        h, w = np.asarray(feature_map).shape
        x, y = event_point(event, 1.0)
        self.explorer.set(unit_row=int(y * h), unit_col=int(x * w))

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)  # the live widget; a static PNG where there is no front end
        if self.explorer.image.value:
            bundle["image/png"] = base64.b64encode(self.explorer.image.value).decode()
        return bundle


# ------------------------------------------------------------------------------- the chapters' own-input explorers
def prediction_explorer(model, start: torch.Tensor, input_shape=(1, SIZE, SIZE)) -> OwnInputExplorer:
    """Chapter 1d: your input's prediction with its probabilities, the feature maps of a chosen layer and the
    receptive field of a unit you click (`prediction_figure`)."""
    from .look_inside import feature_maps, map_layers
    from .widgets import dropdown, slider

    layers = map_layers(model, input_shape)
    names = list(layers)
    sizes = {name: tuple(m.shape) for name, m in feature_maps(model, start, names).items()}
    layer = names[min(2, len(names) - 1)]
    controls = {"layer": dropdown("layer", names, layer),
                "channel": slider("first channel", 0, max(c for c, _, _ in sizes.values()) - 1),
                "unit_row": slider("unit row", 0, input_shape[1] - 1, 3),
                "unit_col": slider("unit column", 0, input_shape[2] - 1, 3)}

    def fit_ranges(change):  # keep the channel and unit sliders inside the chosen layer's map
        for name, size in zip(("channel", "unit_row", "unit_col"), sizes[change["new"]]):
            controls[name].value = min(controls[name].value, size - 1)
            controls[name].max = size - 1

    controls["layer"].observe(fit_ranges, names="value")
    fit_ranges({"new": layer})

    def picker(image, layer, channel, unit_row, unit_col):
        return feature_maps(model, image, [layer])[layer][channel].numpy(), unit_row, unit_col

    return OwnInputExplorer(lambda image, **values: prediction_figure(model, image, layers, **values), controls,
                            "Your input: prediction, feature maps, receptive field", start, picker=picker)


def gates_explorer(cbam_model, se_model, start: torch.Tensor, class_gates: dict | None = None) -> OwnInputExplorer:
    """Chapter 2: Grad-CAM and the CBAM/SE gates of your input, block by block (`attention_gates_figure`)."""
    from .attention_modules import SE, gate_modules
    from .widgets import slider

    blocks = len(gate_modules(se_model, SE))
    models = {"CBAM": cbam_model, "SE": se_model}
    return OwnInputExplorer(lambda image, block: attention_gates_figure(models, image, block, class_gates),
                            {"block": slider("block", 0, blocks - 1, blocks - 1)},
                            "Your input: Grad-CAM and the SE/CBAM gates", start)


def vit_explorer(vit, start: torch.Tensor, patch_size: int) -> OwnInputExplorer:
    """Chapter 3b: the class token's attention over your input, per layer and head or rolled out
    (`vit_attention_figure`)."""
    from .widgets import dropdown, slider

    with torch.no_grad():
        param = next(vit.eval().parameters())
        _, attentions = vit(start[None].to(param.device, param.dtype), return_attention=True)
    controls = {"layer": slider("layer", 0, len(attentions) - 1, len(attentions) - 1),
                "head": slider("head", 0, attentions[0].shape[1] - 1),
                "mode": dropdown("map", ["rollout", "single head"])}
    return OwnInputExplorer(lambda image, layer, head, mode: vit_attention_figure(vit, image, patch_size, layer, head,
                                                                                  mode == "rollout"),
                            controls, "Your input: ViT attention of the class token", start, width=640)
