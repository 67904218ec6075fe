"""Your own input (utils/own_images.py): drawings and uploads prepared like Fashion-MNIST, bad files refused with a
message, the own-input figures and the thin widget layer."""

import datetime
import io

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from utils import own_images
from utils.data import MEAN, STD
from utils.own_images import (CANVAS, SIZE, OwnInput, OwnInputExplorer, as_picture, attention_gates_figure,
                              before_after_figure, event_point, fit_to_frame, prediction_figure, prepare_drawing,
                              prepare_upload, render_strokes, unit_grid_png, vit_attention_figure)

matplotlib.use("Agg")
BACKGROUND = (0 - MEAN) / STD      # a black pixel, standardised


def png(picture: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format=options.pop("format", "PNG"), **options)
    return buffer.getvalue()


def dark_square_on_white(size=(120, 90), box=(30, 20, 70, 80)) -> Image.Image:
    """A photo-like RGB image: a dark 40×60 rectangle (x 30–69, y 20–79) on a light background."""
    picture = Image.new("RGB", size, (235, 235, 230))
    picture.paste((30, 40, 50), box)
    return picture


def rgb48_png(width: int, height: int) -> bytes:
    """A valid 16-bit-per-channel RGB PNG (Pillow cannot write one; it reads it as 8-bit RGB)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\0" + bytes(range(6)) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


# ----------------------------------------------------------------------------------------------- preparation
def test_fit_to_frame_centres_and_fills_the_frame():
    grey = np.zeros((100, 200), np.uint8)
    grey[10:30, 20:100] = 200                                 # an 80-wide, 20-high bar, off-centre
    out = fit_to_frame(grey)
    assert out.shape == (SIZE, SIZE) and out.dtype == np.uint8
    rows, cols = np.flatnonzero(out.max(1) > 0), np.flatnonzero(out.max(0) > 0)
    assert cols[0] == 0 and cols[-1] == SIZE - 1              # the longer side fills the frame
    assert abs((rows[0] + rows[-1]) / 2 - (SIZE - 1) / 2) <= 1  # the shorter one is centred
    assert out.max() == 255 and out[0, 0] == 0                # object stretched to 255, background 0


def test_fit_to_frame_subtracts_a_grey_background_and_refuses_a_flat_image():
    grey = np.full((50, 50), 60, np.uint8)
    grey[20:30, 15:35] = 180
    out = fit_to_frame(grey)
    assert out[0, 0] == 0 and out.max() == 255
    with pytest.raises(ValueError, match="no object found"):
        fit_to_frame(np.full((50, 50), 90, np.uint8))
    with pytest.raises(ValueError, match="H×W uint8"):
        fit_to_frame(np.zeros((50, 50, 3), np.uint8))


def test_render_strokes_and_prepare_drawing():
    canvas = render_strokes([(20, [(140, 40), (140, 240)])])      # one vertical stroke
    assert canvas.shape == (CANVAS, CANVAS) and canvas.dtype == np.uint8
    assert canvas[140, 140] == 255 and canvas[140, 20] == 0
    assert canvas[30, 140] == 255                                   # round end: the brush radius past the end point
    image = prepare_drawing(canvas)
    assert image.shape == (1, SIZE, SIZE) and image.dtype == torch.float32
    assert torch.isclose(image[0, 0, 0], torch.tensor(BACKGROUND))  # standardised exactly like the course's inputs
    assert torch.isclose(image.max(), torch.tensor((1 - MEAN) / STD), atol=0.05)
    rows = torch.nonzero(image[0].amax(1) > BACKGROUND).flatten()
    assert rows[0] == 0 and rows[-1] == SIZE - 1                    # a tall stroke fills the frame's height
    floats = prepare_drawing(canvas.astype(np.float32) / 255)
    torch.testing.assert_close(floats, image)


def test_examples_are_drawings_that_fill_the_frame():
    for name, strokes in own_images.EXAMPLES.items():
        picture = as_picture(prepare_drawing(render_strokes(strokes)))
        assert picture.max() == 1 and picture[0, 0] == 0, name
        assert (picture.max(0) > 0).all() or (picture.max(1) > 0).all(), f"{name}: its longer side fills the frame"


def test_prepare_drawing_errors():
    with pytest.raises(ValueError, match="the pad is empty: draw something"):
        prepare_drawing(np.zeros((CANVAS, CANVAS), np.uint8))
    with pytest.raises(ValueError, match="one H×W grey array"):
        prepare_drawing(np.zeros((3, CANVAS, CANVAS), np.uint8))
    with pytest.raises(ValueError, match=r"floats in \[0, 1\]"):
        prepare_drawing(np.full((CANVAS, CANVAS), 3.0))
    with pytest.raises(ValueError, match="stroke 0 needs at least one point"):
        render_strokes([(10, [])])
    with pytest.raises(ValueError, match=r"stroke 0 must be \(brush"):
        render_strokes([5])


def test_upload_dark_object_on_light_background_is_inverted_and_centred():
    image = prepare_upload(png(dark_square_on_white()))
    picture = as_picture(image)
    assert image.shape == (1, SIZE, SIZE)
    assert picture[0, 0] == 0 and picture[SIZE // 2, SIZE // 2] > 0.95     # light object on black
    cols = np.flatnonzero(picture.max(0) > 0.5)
    rows = np.flatnonzero(picture.max(1) > 0.5)
    assert rows[0] == 0 and rows[-1] == SIZE - 1                             # 60 px tall: fills the height
    assert abs((cols[0] + cols[-1]) / 2 - (SIZE - 1) / 2) <= 1               # 40 px wide: centred
    assert len(cols) in (18, 19, 20)                                         # 40/60 of the frame, area-averaged


def test_upload_light_object_on_dark_background_and_jpeg_and_transparency():
    dark = Image.new("L", (64, 64), 10)
    dark.paste(220, (20, 10, 44, 54))
    light = prepare_upload(png(dark))
    inverted = prepare_upload(png(Image.eval(dark, lambda v: 255 - v)))
    torch.testing.assert_close(light, inverted, atol=0.02, rtol=0)           # same input either way round
    jpeg = prepare_upload(png(dark_square_on_white(), format="JPEG", quality=90))
    torch.testing.assert_close(jpeg, prepare_upload(png(dark_square_on_white())), atol=0.3, rtol=0)
    clear = Image.new("RGBA", (80, 80), (0, 0, 0, 0))                        # a drawing on a transparent sheet
    clear.paste((0, 0, 0, 255), (30, 10, 50, 70))
    assert as_picture(prepare_upload(png(clear)))[SIZE // 2, SIZE // 2] > 0.95


def test_upload_honours_exif_orientation():
    wide = dark_square_on_white(size=(120, 90), box=(10, 40, 110, 50))      # a horizontal bar
    exif = Image.Exif()
    exif[0x0112] = 6                                                         # "rotate 90° to view"
    upright = as_picture(prepare_upload(png(wide, format="JPEG", exif=exif, quality=95)))
    assert upright[:, SIZE // 2].min() > 0.5                                  # shown vertical: fills the middle column


@pytest.mark.parametrize("data, message", [
    (b"", "the file is empty"),
    (b"just some text, not an image", "not an image that can be read"),
    ("a path.png", "pass the file's bytes"),
])
def test_bad_files_are_refused_with_what_to_do(data, message):
    with pytest.raises(ValueError, match=message):
        prepare_upload(data)


def test_animated_16_bit_and_cmyk_are_refused():
    frames = [Image.new("L", (32, 32), v) for v in (0, 255)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(ValueError, match=r"animated \(2 frames, GIF\): save the one frame"):
        prepare_upload(gif.getvalue())
    apng = io.BytesIO()
    frames[0].save(apng, format="PNG", save_all=True, append_images=frames[1:])
    with pytest.raises(ValueError, match=r"animated \(2 frames, PNG\)"):
        prepare_upload(apng.getvalue())
    deep = Image.fromarray(np.full((32, 32), 40000, np.uint16))
    with pytest.raises(ValueError, match="16 bits per channel.*8 bits per channel"):
        prepare_upload(png(deep))
    with pytest.raises(ValueError, match="16 bits per channel"):
        prepare_upload(rgb48_png(16, 12))
    cmyk = Image.new("CMYK", (40, 40), (0, 0, 0, 30))
    with pytest.raises(ValueError, match="CMYK.*convert it to RGB"):
        prepare_upload(png(cmyk, format="JPEG"))


def test_huge_files_are_refused(monkeypatch):
    huge = png(Image.new("1", (8000, 7000), 0))                               # 56 megapixels in a few kB
    with pytest.raises(ValueError, match="56 megapixels, over the 50-megapixel limit: resize it"):
        prepare_upload(huge)
    monkeypatch.setattr(own_images, "MAX_BYTES", 100)
    with pytest.raises(ValueError, match="over the 0 MB limit: save a smaller copy"):
        prepare_upload(png(dark_square_on_white()))


def test_truncated_and_other_formats():
    whole = png(dark_square_on_white(), format="JPEG")
    with pytest.raises(ValueError, match="could not be decoded.*truncated"):
        prepare_upload(whole[: len(whole) * 4 // 5])
    tiff = png(dark_square_on_white(), format="TIFF")
    with pytest.raises(ValueError, match="TIFF files are not taken: save it as PNG or JPEG"):
        prepare_upload(tiff)


def test_before_after_figure():
    picture = dark_square_on_white()
    fig = before_after_figure(picture, prepare_upload(png(picture)), "shirt.png")
    assert len(fig.axes) == 2 and "shirt.png" in fig.axes[0].get_title()
    assert fig.axes[1].images[0].get_array().shape == (SIZE, SIZE)
    with pytest.raises(ValueError, match="1×28×28 input"):
        before_after_figure(picture, torch.zeros(28, 28))


# -------------------------------------------------------------------------------------------- explorer figures
@pytest.fixture(scope="module")
def drawn():
    return prepare_drawing(render_strokes([(24, [(100, 40), (100, 240)]), (24, [(180, 40), (180, 240)])]))


def test_prediction_figure(drawn):
    from utils.look_inside import map_layers
    from utils.models import ResNet

    torch.manual_seed(0)
    model = ResNet(width=8, blocks=(1, 1, 1)).eval()
    layers = map_layers(model)
    fig = prediction_figure(model, drawn, layers, "stem.0", 0, 3, 4)
    titles = [ax.get_title() for ax in fig.axes]
    assert any("receptive field of unit (3, 4)" in t for t in titles)
    assert any(t.startswith("prediction: ") for t in titles)
    assert sum(t.startswith("channel ") for t in titles) == 6
    bars = [ax for ax in fig.axes if ax.patches and ax.get_xlabel() == "probability"][0]
    assert abs(sum(p.get_width() for p in bars.patches) - 1) < 1e-5            # the ten probabilities sum to 1
    with pytest.raises(ValueError, match="unit row 99 is outside layer"):
        prediction_figure(model, drawn, layers, "stem.0", 0, 99, 0)
    with pytest.raises(ValueError, match="unknown layer"):
        prediction_figure(model, drawn, layers, "nope", 0, 0, 0)
    matplotlib.pyplot.close("all")


def test_attention_gates_figure(drawn):
    from utils.attention_modules import SE, attention_resnet, class_mean_gates

    torch.manual_seed(0)
    models = {name: attention_resnet(name, width=8, blocks=(1, 1, 1)).eval() for name in ("CBAM", "SE")}
    labels = torch.arange(10)
    gates = {"SE": class_mean_gates(models["SE"], torch.randn(10, 1, 28, 28), labels, SE)}
    fig = attention_gates_figure(models, drawn, 2, gates)
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("Grad-CAM (CBAM)") for t in titles) and any("spatial gate" in t for t in titles)
    se_axes = [ax for ax in fig.axes if ax.get_title().startswith("SE channel gates")][0]
    assert len(se_axes.patches) == 32 and len(se_axes.lines) == 1             # 32 channels; the class mean
    with pytest.raises(ValueError, match="block 3 is out of range: choose 0–2"):
        attention_gates_figure(models, drawn, 3)
    with pytest.raises(ValueError, match="'CBAM' and 'SE'"):
        attention_gates_figure({"SE": models["SE"]}, drawn, 0)
    matplotlib.pyplot.close("all")


def test_vit_attention_figure(drawn):
    from utils.models.vit import ViT

    torch.manual_seed(0)
    vit = ViT(dim=16, depth=2, num_heads=2).eval()
    for rollout in (False, True):
        fig = vit_attention_figure(vit, drawn, 4, 1, 1, rollout)
        assert fig.axes[0].get_title().startswith("ViT: ")
        assert ("rollout" in fig.axes[1].get_title()) == rollout
    with pytest.raises(ValueError, match="head=5 is out of range"):
        vit_attention_figure(vit, drawn, 4, 0, 5, False)
    matplotlib.pyplot.close("all")


def test_unit_grid_png_and_event_point():
    data = unit_grid_png(np.arange(49.0).reshape(7, 7), 2, 5)
    picture = Image.open(io.BytesIO(data)).convert("RGB")
    assert picture.size == (168, 168)                                         # 24 px a unit
    assert picture.getpixel((5 * 24 + 12, 2 * 24)) == (230, 0, 0)              # the chosen unit's frame is red
    event = {"relativeX": 140, "relativeY": 70, "boundingRectWidth": 280, "boundingRectHeight": 280}
    assert event_point(event, 280) == (140.0, 70.0)
    assert event_point({**event, "relativeX": 400}, 280)[0] < 280             # clipped to the image
    with pytest.raises(ValueError, match="ipyevents mouse event"):
        event_point({"relativeX": 3}, 280)


# ---------------------------------------------------------------------------------------------- widget layers
def _mouse(kind, x, y):
    return {"type": kind, "relativeX": x, "relativeY": y, "boundingRectWidth": CANVAS, "boundingRectHeight": CANVAS}


def test_own_input_pad_draws_undoes_and_reports_on_release():
    pytest.importorskip("ipyevents")
    received = []
    pad = OwnInput(received.append)
    pad._mouse(_mouse("mousedown", 140, 40))
    for y in range(60, 241, 30):
        pad._mouse(_mouse("mousemove", 140, y))
    assert received == [] and pad.canvas[150, 140] == 255                    # drawn, not reported until release
    pad._mouse(_mouse("mouseup", 140, 240))
    assert len(received) == 1 and received[0].shape == (1, SIZE, SIZE)
    assert "redrawn in" in pad.status.value
    pad.add_stroke([(60, 140), (220, 140)])
    assert len(received) == 2 and not torch.equal(received[0], received[1])
    pad.undo()
    torch.testing.assert_close(received[-1], received[0])                    # undo brings the first input back
    pad.clear()
    assert pad.canvas.max() == 0 and len(received) == 3
    pad._mouse(_mouse("mousemove", 10, 10))                                 # moving without a press draws nothing
    assert pad.canvas.max() == 0


def test_own_input_upload_and_bad_files_show_messages():
    pytest.importorskip("ipyevents")
    received = []
    pad = OwnInput(received.append)
    pad.load(png(dark_square_on_white()), "shirt.png")
    assert len(received) == 1 and pad.before_after.value[:4] == b"\x89PNG" and pad.message.value == ""
    pad.load(b"not an image", "notes.txt")
    assert len(received) == 1 and "notes.txt: this file is not an image" in pad.message.value
    pad.upload.value = ({"name": "empty.png", "content": memoryview(b""), "type": "image/png", "size": 0,
                         "last_modified": datetime.datetime.now()},)
    assert "empty.png: the file is empty" in pad.message.value


def test_prediction_explorer_redraws_on_a_new_input_and_picks_units(drawn):
    pytest.importorskip("ipyevents")
    from utils.models import ResNet

    torch.manual_seed(0)
    own = own_images.prediction_explorer(ResNet(width=8, blocks=(1, 1, 1)).eval(), torch.zeros(1, SIZE, SIZE))
    first = own.explorer.image.value
    own.own.add_stroke([(140, 40), (140, 240)])
    assert own.explorer.image.value != first and "redrawn in" in own.own.status.value
    own.explorer.set(layer="stages.2.0.conv1")                                 # a 7×7 map: the sliders follow it
    assert own.explorer.controls["unit_row"].max == 6 and own.explorer.controls["channel"].max == 31
    own._unit_clicked({"relativeX": 10, "relativeY": 160, "boundingRectWidth": 168, "boundingRectHeight": 168})
    assert (own.explorer.values()["unit_row"], own.explorer.values()["unit_col"]) == (6, 0)
    assert Image.open(io.BytesIO(own.unit_image.value)).size == (168, 168)
    own.own.load(b"GIF89a", "broken.gif")
    assert "broken.gif" in own.own.message.value and not own.explorer.message.value
    assert own.static_figure() is not None and "image/png" in own._repr_mimebundle_()
    with pytest.raises(ValueError, match="start must be one 1×28×28"):
        OwnInputExplorer(lambda image: None, {}, "x", torch.zeros(28, 28))
    matplotlib.pyplot.close("all")


def test_gates_and_vit_explorers_redraw_on_a_drawing(drawn):
    pytest.importorskip("ipyevents")
    from utils.attention_modules import attention_resnet
    from utils.models.vit import ViT

    torch.manual_seed(0)
    explorers = [own_images.gates_explorer(attention_resnet("CBAM", width=8, blocks=(1, 1, 1)),
                                           attention_resnet("SE", width=8, blocks=(1, 1, 1)), drawn),
                 own_images.vit_explorer(ViT(dim=16, depth=2, num_heads=2), drawn, patch_size=4)]
    assert explorers[0].explorer.controls["block"].max == 2 and explorers[1].explorer.controls["head"].max == 1
    for own in explorers:
        first = own.explorer.image.value
        for brush, points in own_images.EXAMPLES["bag"]:
            own.own.add_stroke(points, brush)
        assert own.explorer.image.value != first and not own.explorer.message.value
    matplotlib.pyplot.close("all")
