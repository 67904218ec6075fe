"""Your own input, as a learner uses it (issue 30): in headless Chromium, draw a stroke with the mouse on the drawing
pad and see the prediction and the feature maps change; upload a PNG through the file chooser and see it prepared.

It runs a two-cell notebook (Chapter 1d's own-input explorer, `utils.own_images.prediction_explorer`, on a small
untrained ResNet) rather than a whole chapter, so it takes well under a minute; the chapters' own explorers are
checked by tests/test_browser.py. It reuses that file's JupyterLab and browser fixtures. The redraw time (mouse
release → new figure in the page) is printed, not asserted. ``pytest -m browser tests/test_browser_own_input.py -s``
"""

from __future__ import annotations

import io
import time

import pytest
import test_browser as shared
from test_browser import ARTIFACTS, SHUTDOWN, VIEWPORT, _pixel_difference, _wait_for_redraw

browser, lab = shared.browser, shared.lab  # test_browser.py's fixtures: headless Chromium and the course's JupyterLab

pytestmark = pytest.mark.browser

NOTEBOOK = "own_input.ipynb"
CELLS = [
    "import torch\n"
    "from utils.data import fashion_mnist, standardize\n"
    "from utils.models import ResNet\n"
    "from utils.own_images import prediction_explorer\n"
    "torch.manual_seed(0)\n"
    "model = ResNet(width=8, blocks=(1, 1, 1)).eval()\n"
    "start = standardize(torch.zeros(1, 28, 28, dtype=torch.uint8))  # a black image: nothing drawn yet",
    "own = prediction_explorer(model, start)\n"
    "own",
]


def _write_notebook(folder) -> None:
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, folder / NOTEBOOK)


def _upload_png() -> bytes:
    """A photo-like PNG: a dark shirt-shaped block on a light background (to be inverted and centred)."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (240, 180), (230, 228, 220))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((95, 40, 165, 160), fill=(40, 50, 70))
    draw.polygon([(95, 40), (60, 90), (75, 100), (95, 70)], fill=(40, 50, 70))
    draw.polygon([(165, 40), (200, 90), (185, 100), (165, 70)], fill=(40, 50, 70))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def test_draw_and_upload_change_the_explorer(browser, lab, tmp_path):
    url, token, notebooks = lab
    _write_notebook(notebooks)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport=VIEWPORT)
    try:
        shared.run_all(page, url, token, NOTEBOOK, "own-input", open_timeout_ms=60_000, run_timeout_s=120)
        pad = page.locator("img.dvl-drawing-pad").first
        pad.wait_for(state="visible", timeout=30_000)
        pad.scroll_into_view_if_needed()
        figure = page.locator(".dvl-explorer img").first
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=figure.element_handle())
        assert "Error displaying widget" not in page.inner_text("body"), "a widget failed to render"

        # draw: press, move, release, as a learner's mouse does
        source, before = figure.get_attribute("src"), figure.screenshot()
        box = pad.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.85, steps=8)
        released = time.perf_counter()
        page.mouse.up()
        _wait_for_redraw(page, figure, source, "own-input-draw-stuck.png",
                         "drawing a stroke on the pad did not redraw the explorer", timeout=30_000)
        seconds = time.perf_counter() - released
        page.wait_for_timeout(300)
        drawn = figure.screenshot()
        (ARTIFACTS / "own-input-before.png").write_bytes(before)
        (ARTIFACTS / "own-input-drawn.png").write_bytes(drawn)
        changed = _pixel_difference(before, drawn)
        assert changed > 0.01, f"the prediction and feature maps did not change after a stroke ({changed:.2%})"
        status = page.locator(".dvl-status").first.inner_text()
        assert "drawing: redrawn in" in status, f"the pad's status should give the redraw time, says {status!r}"
        print(f"\nmouse release → new figure in the page: {seconds:.2f} s; the kernel's redraw: {status}")

        # upload a PNG through the file chooser: the before/after figure appears and the explorer redraws
        path = tmp_path / "shirt.png"
        path.write_bytes(_upload_png())
        source = figure.get_attribute("src")
        with page.expect_file_chooser() as chooser:
            page.locator(".dvl-upload").first.click()
        chooser.value.set_files(str(path))
        _wait_for_redraw(page, figure, source, "own-input-upload-stuck.png",
                         "uploading a PNG did not redraw the explorer", timeout=30_000)
        prepared = page.locator("img.dvl-before-after").first
        prepared.wait_for(state="visible", timeout=30_000)
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=prepared.element_handle())
        page.wait_for_timeout(300)
        uploaded = figure.screenshot()
        (ARTIFACTS / "own-input-uploaded.png").write_bytes(uploaded)
        (ARTIFACTS / "own-input-before-after.png").write_bytes(prepared.screenshot())
        assert _pixel_difference(drawn, uploaded) > 0.01, "the explorer did not change after the upload"
        assert "upload shirt.png: redrawn in" in page.locator(".dvl-status").first.inner_text()
        page.screenshot(path=str(ARTIFACTS / "own-input.png"), full_page=True)
        page.evaluate(SHUTDOWN, NOTEBOOK)
    finally:
        page.close()
