"""Widgets proven in a real browser: the project's JupyterLab, driven by headless Chromium (make test-browser).

For every chapter: open the generated notebook in a 1600×1000 window, run all cells (smoke profile), wait for the
kernel, then check that no cell failed or emitted more than 20 outputs, none is cut by JupyterLab's output limit
("Show more outputs") and no widget failed to render. In a chapter with explorers, every explorer is drawn as a live
widget whose image is not upscaled (natural width ≥ displayed width) and which fits the window with its
controls, and moving each explorer's first control through the page changes its figure; in Chapter 10, a click
on the scene, undo and a dragged box redraw the masks; in the chapters with a drawing pad (1d, 2, 3b), a stroke drawn
with the mouse and a PNG uploaded through the file chooser redraw the own-input explorer (the time from mouse release
to the new figure is printed, not asserted). Under `make test` these runs are the only execution of the chapters
(tests/nbval_course.py leaves them all to this stage). Every chapter's interview answers, as JupyterLab renders
them, stay hidden until their question is clicked. (The book, `make book`, is read in Chromium by tests/test_book.py.)
Screenshots are saved under tests/artifacts/ for a person to look at. One chapter:
``pytest -m browser tests/test_browser.py -k 01d``.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from nbval_course import MAX_OUTPUTS  # per cell, the notebook run's limit: JupyterLab hides more behind "Show more"

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHAPTER_NAMES = sorted(p.stem for p in CHAPTERS.glob("*.py"))    # every one is run here
WIDGET_CHAPTERS = [name for name in CHAPTER_NAMES if "explorer" in (CHAPTERS / f"{name}.py").read_text().lower()]
RUN_TIMEOUT_S = 600
CLICK_CHAPTER = "10_promptable_segmentation"  # its explorer also takes clicks and dragged boxes
VIEWPORT = {"width": 1600, "height": 1000}


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_redraw(page, image, old_source: str, stuck_png: str, failure: str, timeout: int = 120_000) -> None:
    """Wait until ``image`` shows a new PNG (a new blob URL); otherwise keep a full-page screenshot and fail."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("([el, old]) => el.getAttribute('src') !== old",
                               arg=[image.element_handle(), old_source], timeout=timeout)
    except PlaywrightTimeout:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / stuck_png), full_page=True)
        raise AssertionError(failure) from None


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if executable is None:
        pytest.skip("browser tests skipped: no Chromium found — install it with `sudo apt-get install chromium` "
                    "(or set $CHROMIUM to a Chrome/Chromium binary)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The course's own JupyterLab on a free localhost port, with a token; always shut down afterwards."""
    port, token = free_port(), secrets.token_hex(16)
    home = tmp_path_factory.mktemp("jupyter")
    notebooks = home / "chapters"  # a copy: JupyterLab autosaves outputs into what it opens
    notebooks.mkdir()
    for chapter in CHAPTER_NAMES:
        shutil.copy(CHAPTERS / f"{chapter}.ipynb", notebooks)
    notification = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text('{"fetchNews": "false", "checkForUpdates": false}')  # no pop-up over the widgets
    env = dict(os.environ, COURSE_PROFILE="smoke", JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)  # the server's log: a kernel that died and restarted shows there
    log = open(ARTIFACTS / f"jupyter-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.log", "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}", "--expose-app-in-browser",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         f"--LabApp.user_settings_dir={home / 'settings'}", "--ServerApp.allow_root=True"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError("JupyterLab did not start")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", token, notebooks
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


# JavaScript helpers run in the page, against the JupyterLab app exposed by --expose-app-in-browser.
PANEL = """(path) => window.jupyterapp && Array.from(window.jupyterapp.shell.widgets('main'))
  .find(w => w.context && w.context.path === path && w.content)"""
# Started, not awaited (the page keeps the promise): the polling loop below waits for the cells with a deadline and
# reports where they stand, where an awaited Run All would wait forever on a kernel that died.
# Polled from Python, not awaited in the page: a CI run lost the page's promise of `sessionContext.ready`
# ("Resulting promise was garbage collected") while the kernel was still starting.
KERNEL_READY = """(path) => {
  const panel = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === path);
  return Boolean(panel && panel.sessionContext.isReady && panel.sessionContext.session
                 && panel.sessionContext.session.kernel);
}"""
RUN_ALL = """(path) => {
  const panel = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === path);
  window.jupyterapp.shell.activateById(panel.id);
  window.dvlRunAll = window.jupyterapp.commands.execute('notebook:run-all-cells');
}"""
STATE = """(path) => {
  const panel = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === path);
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = panel.content.widgets.filter(c => c.model.type === 'code');
  const errors = [];
  const crowded = cells.map((c, i) => [i + 1, c.model.outputs.length]).filter(([i, n]) => n > MAX_OUTPUTS);
  for (const cell of cells) {
    for (let i = 0; i < cell.model.outputs.length; i++) {
      const out = cell.model.outputs.get(i).toJSON();
      if (out.output_type === 'error') errors.push(out.ename + ': ' + out.evalue);
    }
  }
  return {status: kernel ? kernel.status : 'none',
          pending: cells.filter(c => c.promptNode && c.promptNode.textContent.includes('*')).length,
          unexecuted: cells.filter(c => c.model.executionCount === null).length, errors, crowded,
          trimmed: document.querySelectorAll('.jp-TrimmedOutputs').length};
}""".replace("MAX_OUTPUTS", str(MAX_OUTPUTS))
# The explorer's image as drawn and as shown, and the explorer's box (controls included), in CSS pixels.
EXPLORER_GEOMETRY = """(explorer) => {
  const image = explorer.querySelector('img');
  const box = explorer.getBoundingClientRect();
  return {natural: image.naturalWidth, shown: image.getBoundingClientRect().width,
          width: box.width, height: box.height};
}"""
SHUTDOWN = """async (path) => {
  const panel = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === path);
  await panel.sessionContext.shutdown();
}"""


def _kernel_events() -> list[str]:
    """The JupyterLab server log's lines about kernels dying or restarting, from every worker's log."""
    lines = []
    for path in sorted(ARTIFACTS.glob("jupyter-*.log")):
        lines += [line.strip()[-200:] for line in path.read_text(errors="replace").splitlines()
                  if any(word in line for word in ("died", "restart", "Restart", "KernelRestarter"))]
    return lines[-10:]


def run_all(page, url: str, token: str, path: str, workspace: str, *, open_timeout_ms: int = 120_000,
            run_timeout_s: float = RUN_TIMEOUT_S) -> None:
    """Open notebook ``path`` in a JupyterLab workspace of its own (reset, so JupyterLab does not restore the previous
    test's notebooks), wait for its kernel, Run All and wait until every cell has run. A failed cell, or cells still
    running after ``run_timeout_s``, fail the test with a screenshot in ARTIFACTS (and, when stalled, the server's
    kernel messages)."""
    page.goto(f"{url}/lab/workspaces/{workspace}/tree/{path}?reset&token={token}", wait_until="domcontentloaded")
    page.wait_for_function(PANEL, arg=path, timeout=open_timeout_ms)
    page.wait_for_function(KERNEL_READY, arg=path, timeout=open_timeout_ms)
    page.evaluate(RUN_ALL, path)
    deadline = time.time() + run_timeout_s
    while True:
        state = page.evaluate(STATE, path)
        if state["errors"]:
            page.screenshot(path=str(ARTIFACTS / f"{workspace}-error.png"), full_page=True)
            raise AssertionError(f"{path}: a cell failed in JupyterLab: {state['errors']}")
        if state["status"] == "idle" and state["pending"] == 0 and state["unexecuted"] == 0:
            return
        if time.time() > deadline:
            page.screenshot(path=str(ARTIFACTS / f"{workspace}-stalled.png"), full_page=True)
            raise AssertionError(f"{path}: cells still running after {run_timeout_s} s: {state}; "
                                 f"the server's kernel messages: {_kernel_events()}")
        time.sleep(0.5)


def _png(data: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def _redrawn_by(page, image, act, name: str, failure: str, settle_ms: int = 500) -> tuple[bytes, bytes]:
    """Screenshots of ``image`` before and after ``act()`` redraws it, kept as ARTIFACTS/<name>-before/-after.png."""
    source, before = image.get_attribute("src"), image.screenshot()
    act()
    _wait_for_redraw(page, image, source, f"{name}-stuck.png", failure)
    page.wait_for_timeout(settle_ms)                # let the new image finish painting
    after = image.screenshot()
    (ARTIFACTS / f"{name}-before.png").write_bytes(before)
    (ARTIFACTS / f"{name}-after.png").write_bytes(after)
    return before, after


def _pixel_difference(before: bytes, after: bytes) -> float:
    from PIL import ImageChops

    a, b = _png(before), _png(after)
    if a.size != b.size:
        return 1.0
    diff = ImageChops.difference(a, b).convert("L").point(lambda value: 255 if value > 16 else 0)
    return diff.histogram()[255] / (a.size[0] * a.size[1])


def _change_first_control(explorer) -> None:
    """Move the explorer's first control as a person would: a slider by keyboard, a dropdown by selection."""
    control = explorer.locator(".widget-hbox > .widget-inline-hbox, .widget-hbox > .jupyter-widgets").first
    classes = control.get_attribute("class") or ""
    if "widget-slider" in classes:  # to its far end, as a person dragging it would: one step may change too little
        handle = control.locator(".noUi-handle").first
        handle.focus()
        at_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
        handle.press("Home" if at_end else "End")
        return
    if "widget-dropdown" in classes:
        select = control.locator("select")
        options = select.locator("option").all_inner_texts()
        current = select.input_value()
        choice = next(o for o in reversed(options) if o != current)
        select.select_option(label=choice)
        return
    raise AssertionError(f"first control of an explorer is neither a slider nor a dropdown: {classes}")


@pytest.mark.parametrize("chapter", CHAPTER_NAMES)
def test_chapter_runs_and_its_explorers_react(browser, lab, chapter, tmp_path):
    url, token, notebooks = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport=VIEWPORT)
    try:
        path = f"{chapter}.ipynb"
        run_all(page, url, token, path, chapter)

        page.wait_for_timeout(1500)  # let the widget views finish rendering
        body = page.inner_text("body")
        assert "Error displaying widget" not in body, f"{chapter}: a widget failed to render"
        state = page.evaluate(STATE, path)
        assert not state["crowded"], (f"{chapter}: cells (code cell number, outputs) with more than {MAX_OUTPUTS} "
                                      f"outputs: {state['crowded']}")
        assert state["trimmed"] == 0 and "Show more outputs" not in body, (
            f"{chapter}: JupyterLab hides outputs behind 'Show more outputs'")
        if chapter in WIDGET_CHAPTERS:
            _check_explorers(page, chapter, tmp_path)
        page.screenshot(path=str(ARTIFACTS / f"{chapter}.png"), full_page=True)
        page.evaluate(SHUTDOWN, path)  # free the kernel's memory before the next chapter
    finally:
        page.close()


def _check_explorers(page, chapter: str, folder: Path) -> None:
    """Every explorer is live, drawn at its size, fits the window and redraws when its first control moves; the
    drawing pads and Chapter 10's clicks redraw theirs."""
    explorers = page.locator(".dvl-explorer")
    count = explorers.count()
    assert count >= 1, (f"{chapter}: no explorer rendered as a live widget (a bare text repr or a static image "
                        "means the widget front end is missing)")
    for i in range(count):
        explorer = explorers.nth(i)
        explorer.scroll_into_view_if_needed()
        image = explorer.locator("img").first
        image.wait_for(state="visible", timeout=60_000)
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        geometry = explorer.evaluate(EXPLORER_GEOMETRY)
        assert geometry["natural"] >= geometry["shown"] - 0.5, (
            f"{chapter}: explorer {i}'s image is upscaled: drawn {geometry['natural']} px wide, shown at "
            f"{geometry['shown']:.0f} px")
        assert geometry["height"] <= VIEWPORT["height"] and geometry["width"] <= VIEWPORT["width"], (
            f"{chapter}: explorer {i} with its controls is {geometry['width']:.0f}×{geometry['height']:.0f} px, "
            f"larger than the {VIEWPORT['width']}×{VIEWPORT['height']} window")
        before, after = _redrawn_by(page, image, lambda: _change_first_control(explorer), f"{chapter}-explorer{i}",
                                    f"{chapter}: explorer {i} did not redraw after its first control was moved")
        changed = _pixel_difference(before, after)
        assert changed > 0.001, f"{chapter}: explorer {i}'s figure did not change ({changed:.4%} of pixels)"
    if page.locator("img.dvl-drawing-pad").count():        # Chapters 1d, 2 and 3b: your own drawing or photo
        _draw_and_upload(page, chapter, folder)
    if chapter == CLICK_CHAPTER:  # in the same run: a second Run All of the chapter would cost minutes
        _click_to_segment(page)


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


def _draw_and_upload(page, chapter: str, folder: Path) -> None:
    """The chapter's own-input explorer (utils.own_images), run already: a stroke drawn with the mouse on its pad
    redraws the prediction and the maps, and a PNG uploaded through the file chooser is prepared (its before/after
    shown) and redraws them again. The redraw time (mouse release → new figure in the page) is printed."""
    pad = page.locator("img.dvl-drawing-pad").first
    pad.scroll_into_view_if_needed()
    pad.wait_for(state="visible", timeout=30_000)
    explorer = page.locator(".widget-hbox:has(img.dvl-drawing-pad):has(.dvl-explorer)").last  # pad | explorer
    figure = explorer.locator(".dvl-explorer img").first
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=figure.element_handle())

    source, before = figure.get_attribute("src"), figure.screenshot()
    box = pad.bounding_box()                                     # press, move, release, as a learner's mouse does
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.85, steps=8)
    released = time.perf_counter()
    page.mouse.up()
    _wait_for_redraw(page, figure, source, f"{chapter}-draw-stuck.png",
                     f"{chapter}: drawing a stroke on the pad did not redraw the explorer", timeout=30_000)
    seconds = time.perf_counter() - released
    page.wait_for_timeout(300)
    drawn = figure.screenshot()
    (ARTIFACTS / f"{chapter}-own-input-drawn.png").write_bytes(drawn)
    changed = _pixel_difference(before, drawn)
    assert changed > 0.01, f"{chapter}: the explorer did not change after a stroke ({changed:.2%} of pixels)"
    status = explorer.locator(".dvl-status").first.inner_text()
    assert "drawing: redrawn in" in status, f"{chapter}: the pad's status should give the redraw time: {status!r}"
    print(f"\n{chapter}: mouse release → new figure in the page {seconds:.2f} s; the kernel's redraw: {status}")

    path = folder / "shirt.png"
    path.write_bytes(_upload_png())
    source = figure.get_attribute("src")
    with page.expect_file_chooser() as chooser:
        explorer.locator(".dvl-upload").first.click()
    chooser.value.set_files(str(path))
    _wait_for_redraw(page, figure, source, f"{chapter}-upload-stuck.png",
                     f"{chapter}: uploading a PNG did not redraw the explorer", timeout=30_000)
    prepared = explorer.locator("img.dvl-before-after").first
    prepared.wait_for(state="visible", timeout=30_000)
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=prepared.element_handle())
    page.wait_for_timeout(300)
    uploaded = figure.screenshot()
    (ARTIFACTS / f"{chapter}-own-input-uploaded.png").write_bytes(uploaded)
    (ARTIFACTS / f"{chapter}-own-input-before-after.png").write_bytes(prepared.screenshot())
    assert _pixel_difference(drawn, uploaded) > 0.01, f"{chapter}: the explorer did not change after the upload"
    assert "upload shirt.png: redrawn in" in explorer.locator(".dvl-status").first.inner_text()


def _click_to_segment(page) -> None:
    """Chapter 10's explorer, run already: a mouse click on the scene (ipyevents) redraws the three masks, undo
    brings the old ones back, and dragging a box prompts with the box."""
    target = page.locator("img.dvl-click-image").first
    target.scroll_into_view_if_needed()
    target.wait_for(state="visible", timeout=60_000)
    figure = page.locator(".dvl-explorer").filter(has=target).locator("img:not(.dvl-click-image)").first
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=figure.element_handle())
    box = target.bounding_box()
    before, after = _redrawn_by(page, figure, lambda: target.click(position={"x": box["width"] * 0.7,
                                                                             "y": box["height"] * 0.3}),
                                f"{CLICK_CHAPTER}-click", f"{CLICK_CHAPTER}: clicking on the scene did not redraw "
                                "the masks", settle_ms=300)
    assert _pixel_difference(before, after) > 0.001, f"{CLICK_CHAPTER}: the masks did not change after a click"
    clicked = figure.get_attribute("src")
    page.locator(".dvl-undo").first.click()
    page.wait_for_function("([el, old]) => el.getAttribute('src') !== old",  # a new blob URL: redrawn
                           arg=[figure.element_handle(), clicked], timeout=60_000)
    page.wait_for_timeout(300)
    undone = figure.screenshot()
    (ARTIFACTS / f"{CLICK_CHAPTER}-click-undone.png").write_bytes(undone)
    assert _pixel_difference(before, undone) < 0.001, f"{CLICK_CHAPTER}: undo did not bring the first masks back"
    box, shown = target.bounding_box(), figure.get_attribute("src")          # a box prompt, by dragging
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.7, steps=5)
    page.mouse.up()
    _wait_for_redraw(page, figure, shown, f"{CLICK_CHAPTER}-drag-stuck.png",
                     f"{CLICK_CHAPTER}: dragging a box on the scene did not redraw the masks")
    page.wait_for_timeout(300)
    (ARTIFACTS / f"{CLICK_CHAPTER}-drag-box.png").write_bytes(figure.screenshot())


INTERVIEW_NOTEBOOK = "interview_questions.ipynb"
# Each question not yet looked at: is its answer visible, then (after a click on the question, as a reader's) is it.
# JupyterLab draws only the cells near the view, and draws a cell again, closed, when it comes back into view.
LOOK_AT_ANSWERS = """() => Array.from(document.querySelectorAll('.jp-MarkdownOutput details:not([data-dvl-seen])'))
  .map(d => {
    d.dataset.dvlSeen = '1';
    const answerShown = () => [...d.children].some(c => c.tagName !== 'SUMMARY' && c.checkVisibility());
    const before = answerShown();
    d.querySelector('summary').click();
    return [d.querySelector('summary').innerText.trim(), before, answerShown()];
  })"""
SCROLL_DOWN = """() => { const panel = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');
  const top = panel.scrollTop; panel.scrollTop += 0.8 * panel.clientHeight; return panel.scrollTop === top; }"""


def test_interview_answers_stay_hidden_until_clicked(browser, lab):
    """Every chapter's interview cells, as JupyterLab renders their Markdown: each answer is hidden (not merely in
    the page: the browser does not show it) until its question is clicked, and shown after."""
    import jupytext
    import nbformat

    url, token, notebooks = lab
    cells = [cell for source in sorted(CHAPTERS.glob("[0-9]*.py")) for cell in jupytext.read(source).cells
             if cell.cell_type == "markdown" and "<details>" in cell.source]
    questions = {" ".join(q.split()) for cell in cells
                 for q in re.findall(r"<summary>(.*?)</summary>", cell.source, re.DOTALL)}
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(cell.source) for cell in cells])
    notebook.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nbformat.write(notebook, notebooks / INTERVIEW_NOTEBOOK)
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(f"{url}/lab/workspaces/interview/tree/{INTERVIEW_NOTEBOOK}?reset&token={token}",
                  wait_until="domcontentloaded")
        first = page.locator(".jp-MarkdownOutput details").first
        first.wait_for(timeout=120_000)
        answer = first.locator("> :not(summary)").first
        assert not answer.is_visible(), "the first interview answer shows before its question is clicked"
        first.locator("> summary").click()
        assert answer.is_visible(), "the first interview answer does not open when its question is clicked"
        first.locator("> summary").click()                       # closed again, as the walk below expects
        looked = {}
        for _ in range(2000):
            looked.update({question: (before, after) for question, before, after in page.evaluate(LOOK_AT_ANSWERS)})
            if page.evaluate(SCROLL_DOWN):
                break
            page.wait_for_timeout(50)
        shown_early = [q for q, (before, _) in looked.items() if before]
        not_opened = [q for q, (_, after) in looked.items() if not after]
        assert not shown_early, f"{len(shown_early)} answers show before their question is clicked: {shown_early[:3]}"
        assert not not_opened, f"{len(not_opened)} answers do not open on a click: {not_opened[:3]}"
        assert len(looked) == len(questions), f"{len(looked)} questions rendered of {len(questions)} in the sources"
        page.evaluate(SHUTDOWN, INTERVIEW_NOTEBOOK)
    finally:
        page.close()
