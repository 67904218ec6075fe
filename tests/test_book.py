"""`make book` (utils/course/book.py): the page transformations, and the built site read in Chromium as a learner would.

The unit tests need nothing but Python. The browser tests (marker ``browser``, run by `make test-browser`) build one
site the way `make book` does, from a small cpu-profile run: Chapters 1a and 1d, the two cheapest in that profile
(seconds and under 3 CPU minutes; 1d's explorers leave their static figures), as `make verify PROFILE=cpu` kept them
while their code is unchanged, else executed here by the same runner and kept; the other chapters unexecuted for their
text (every chapter's interview answers; Chapter 4's holds the search term, SimOTA). They open it from disk:
navigation, search, figures, no raw Markdown, answers closed until clicked, readable on a desktop and a phone, no
request leaves the disk.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from utils.course import book, execute

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
EXECUTED = ("01a_convolution_by_hand", "01d_look_inside")     # in the cpu profile
SEARCH_TERM = "SimOTA"   # discussed in Chapter 4's sections 11 and 12 only
VIEWPORTS = {"desktop": {"width": 1400, "height": 1000}, "phone": {"width": 390, "height": 844}}


# --- unit tests -----------------------------------------------------------------------------------------------------

def _progress_bar_state(value, total, hidden=False):
    """The widget state tqdm.notebook leaves: an HBox of HTML (description), FloatProgress and HTML (counts)."""
    return {
        "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_left", "IPY_MODEL_bar", "IPY_MODEL_right"],
                                                     "layout": "IPY_MODEL_layout"}},
        "layout": {"model_name": "LayoutModel", "state": {"visibility": "hidden" if hidden else None}},
        "left": {"model_name": "HTMLModel", "state": {"value": "train:\u2007100%"}},
        "bar": {"model_name": "FloatProgressModel", "state": {"value": value, "max": total}},
        "right": {"model_name": "HTMLModel", "state": {"value": "\u20075/5\u2007[00:03&lt;00:00,\u2007loss=0.5]"}}}


def _widget_output(model_id, **extra):
    return nbformat.v4.new_output("display_data", data={book.WIDGET_VIEW: {"model_id": model_id}, **extra})


def test_a_progress_bar_leaves_its_final_line():
    assert book.tqdm_line(_progress_bar_state(5, 5), "box") == "train: 100%|██████████| 5/5 [00:03<00:00, loss=0.5]"
    assert book.tqdm_line(_progress_bar_state(2, 4), "box").count("█") == 5
    assert book.tqdm_line(_progress_bar_state(5, 5, hidden=True), "box") == ""   # leave=False: gone when done
    assert book.tqdm_line(_progress_bar_state(5, 5), "left") is None             # not a progress bar


def test_widgets_become_their_static_figure_or_go():
    cell = nbformat.v4.new_code_cell()
    cell.outputs = [_widget_output("box", **{"text/plain": "train:   0%|          | 0/5"}),
                    _widget_output("explorer", **{"image/png": "iVBOR", "text/plain": "Explorer(children=…)"}),
                    _widget_output("slider", **{"text/plain": "IntSlider(value=3)"}),
                    nbformat.v4.new_output("stream", name="stderr", text="\r 20%|██\r100%|██████████| 5/5\nnext\n")]
    book.static_outputs(cell, _progress_bar_state(5, 5))
    assert [o.get("text") or sorted(o["data"]) for o in cell.outputs] == [
        "train: 100%|██████████| 5/5 [00:03<00:00, loss=0.5]\n", ["image/png"], "100%|██████████| 5/5\nnext\n"]


def test_section_mentions_link_to_their_sections():
    sections = {"04_detection": {5, 8}, "03a_attention_and_transformer": {17}}
    linked = book.link_sections("see section 8, sections 5 and 8, section 99, Chapter 3a, section 17 and "
                                "Chapter 7's section 2", "04_detection", sections)
    assert linked == ("see section {ref}`8 <ch04-section-8>`, sections {ref}`5 <ch04-section-5>` and "
                      "{ref}`8 <ch04-section-8>`, section 99, Chapter 3a, section {ref}`17 <ch03a-section-17>` and "
                      "Chapter 7's section 2")


def test_every_chapter_has_a_part_and_smoke_is_refused():
    assert [book.part_of(s.stem) for s in book.chapter_sources()]       # raises for a chapter without a part
    with pytest.raises(ValueError, match="belongs to no part"):
        book.part_of("12_new_topic")
    with pytest.raises(ValueError, match="cpu or gpu"):
        book.book_profile("smoke")
    assert book.book_profile("cpu") == "cpu"


def test_run_times_come_from_the_last_verify_run_else_the_readme(tmp_path):
    (tmp_path / "verify-cpu.json").write_text(json.dumps([{
        "chapter": "04_detection", "status": "passed", "wall_seconds": 300, "cpu_seconds": 240, "device": "CPU X"}]))
    note = book.run_time_note("04_detection", tmp_path)
    assert "**cpu**: 5.0 min wall, 4.0 min CPU on CPU X (passed" in note
    assert re.search(r"\*\*smoke\*\*: [\d.]+ min wall", note)                  # the README's table
    assert "**gpu**: not yet measured" in note


def test_a_markdown_edit_keeps_the_run_and_a_code_edit_does_not(tmp_path):
    chapter = ROOT / "chapters" / f"{EXECUTED[0]}.py"
    run = jupytext.read(chapter)
    for number, cell in enumerate(c for c in run.cells if c.cell_type == "code"):
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"cell {number}\n")]
    run.metadata[book.METADATA_KEY] = {"profile": "cpu", "completed": True, "code_sha256": execute.code_hash(run)}
    kept = tmp_path / "kept.ipynb"
    nbformat.write(run, kept)
    edited = tmp_path / chapter.name
    edited.write_text(chapter.read_text().replace("# # Chapter 1a — Convolution", "# # Chapter 1a — Convolutions", 1))
    notebook = book.kept_run(edited, kept)
    assert notebook is not None and notebook.cells[0].source.startswith("# Chapter 1a — Convolutions by hand")
    assert [cell.get("outputs") for cell in notebook.cells] == [cell.get("outputs") for cell in run.cells], (
        "the outputs stay with their cells")
    edited.write_text(chapter.read_text().replace("import numpy as np\n", "import numpy as np\nimport math\n", 1))
    assert book.kept_run(edited, kept) is None, "changed code needs a new run"


# --- the site in Chromium -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site as `make book` builds it (see the module's docstring for which chapters are executed)."""
    folder = tmp_path_factory.mktemp("book")
    notebooks = {}
    for source in book.chapter_sources():
        if source.stem in EXECUTED:
            notebooks[source.stem] = book.executed_notebook(source, "cpu")
        else:
            notebooks[source.stem] = jupytext.read(source)
            notebooks[source.stem].metadata[book.METADATA_KEY] = {
                "profile": "unexecuted", "device": "no device", "executed": "never"}
    book.write_source(notebooks, folder / "source")
    return book.build_site(folder / "source", folder).parent


def _open(browser, site: Path, outside: list, name: str = "index.html", viewport: str = "desktop"):
    """A page of the site in Chromium; every request that is not a file is refused and recorded in ``outside``."""
    page = browser.new_page(viewport=VIEWPORTS[viewport])
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
               else (outside.append(route.request.url), route.abort()))
    path, _, query = name.partition("?")
    page.goto((site / path).as_uri() + (f"?{query}" if query else ""), wait_until="load")
    return page


def _chapter_pages():
    return [f"{s.stem}.html" for s in book.chapter_sources()]


def _check_navigation(page):
    """The sidebar lists the parts and chapters in the course's order; index → chapter → back."""
    captions = page.locator(".bd-sidebar-primary p.caption").all_inner_texts()
    assert captions == [part for part, _ in book.PARTS] + ["Revision"], captions
    links = page.locator(".bd-sidebar-primary a.reference.internal")
    targets = [href.split("#")[0] for href in (links.nth(i).get_attribute("href") for i in range(links.count()))]
    assert targets == [""] + _chapter_pages() + ["questions.html", "exercises.html"], targets   # "": this page
    page.locator(".bd-sidebar-primary a", has_text="Chapter 4").click()
    page.wait_for_load_state("load")
    assert page.url.endswith("04_detection.html") and page.locator("h1").first.inner_text().startswith("Chapter 4")
    page.go_back()
    assert page.url.endswith("index.html") and page.locator("h1").first.inner_text() == "Deep Vision Lab"


def _check_search(page):
    """Sphinx's offline search finds the term; its result opens Chapter 4 where the term is discussed."""
    result = page.locator("#search-results a").first
    result.wait_for(timeout=20_000)
    assert result.get_attribute("href").startswith("04_detection.html")
    result.click()
    page.wait_for_load_state("load")
    page.locator("article .highlighted", has_text=SEARCH_TERM).first.wait_for(timeout=10_000)
    page.wait_for_timeout(500)                                  # course.js scrolls after the words are marked
    in_view = page.locator("article .highlighted").evaluate_all(
        "marks => marks.filter(m => { const r = m.getBoundingClientRect(); "
        "return r.top >= 0 && r.bottom <= innerHeight && m.checkVisibility(); })"
        ".map(m => m.closest('section:has(> h2)').querySelector(':scope > h2').innerText)")
    assert any(heading.startswith(("11.", "12.")) for heading in in_view), (
        f"the search should land in section 11 or 12, where {SEARCH_TERM} is discussed; marks in view: {in_view}")


MARKDOWN_TEXT = """() => {
  const article = document.querySelector('article').cloneNode(true);
  article.querySelectorAll('.cell, pre, code, .highlight, .math').forEach(e => e.remove());
  return article.innerText;
}"""


def _check_page(page, name: str):
    """Every figure loads, no Markdown or HTML shows raw, the run is stated (and on a chapter, its run time)."""
    broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    assert not broken, f"{name}: images that did not load: {broken[:3]}"
    text = page.evaluate(MARKDOWN_TEXT)
    for raw in ("<details", "</summary>", "```", "](", "**", "{ref}", "\\["):
        assert raw not in text, f"{name}: raw Markdown/HTML {raw!r} shows on the page"
    banner = page.locator(".bd-header-announcement").inner_text()
    assert "cpu profile" in banner, f"{name}: the run is not stated: {banner!r}"
    chapter = name.removesuffix(".html")
    if chapter in EXECUTED:
        note = page.locator(".admonition", has_text="This page is the").inner_text()
        assert "in the cpu profile" in note and "Run time measured by make verify" in note, note
        assert page.evaluate("document.querySelectorAll('article img').length") >= 3, f"{name}: figures missing"


def _check_answers(page, name: str):
    """Every interview answer is hidden (not merely in the DOM) until its question is clicked; its links lead on."""
    details = page.locator("article details:not(.hide)")          # .hide: a folded solution cell (MyST-NB)
    count = details.count()
    assert count >= 5, f"{name}: the interview answers should be <details> elements, found {count}"
    shown = details.evaluate_all("ds => ds.filter(d => [...d.children].some(c => c.tagName !== 'SUMMARY' "
                                 "&& c.checkVisibility())).map(d => d.querySelector('summary').innerText)")
    assert not shown, f"{name}: {len(shown)} answers are visible before their question is clicked: {shown[:2]}"
    for i in (0, count - 1):                                     # the first and the last, opened by a click
        answer = details.nth(i).locator("> :not(summary)").first
        assert not answer.is_visible()
        details.nth(i).locator("> summary").click()
        assert answer.is_visible(), f"{name}: answer {i + 1} did not open on its click"
    anchors = details.evaluate_all("ds => ds.flatMap(d => [...d.querySelectorAll('a.reference.internal')])"
                                   ".map(a => a.getAttribute('href')).filter(h => h.startsWith('#'))")
    for anchor in anchors:
        assert page.locator(f"[id='{anchor[1:]}']").count() == 1, f"{name}: the link to {anchor} leads nowhere"


def _check_readable(page, viewport: str, chapter: str):
    """No sideways scrolling, a paragraph as wide as the window allows in a readable size, figures within it."""
    width = VIEWPORTS[viewport]["width"]
    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= width + 1, f"{viewport}: the page is {page_width} px wide in a {width} px window"
    paragraph = page.locator("article section p").first
    box = paragraph.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width and box["width"] >= min(320, width - 60), box
    assert float(paragraph.evaluate("p => getComputedStyle(p).fontSize").removesuffix("px")) >= 14
    figure = page.locator("article .cell_output img").first
    figure.scroll_into_view_if_needed()
    assert figure.bounding_box()["width"] <= width
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"book-{chapter}-{viewport}.png"))


@pytest.mark.browser
def test_the_site_as_a_reader_uses_it(site):
    """One test, so that the site is built once even when pytest-xdist spreads tests over workers."""
    from test_browser import chromium_path

    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium found — install it with `sudo apt-get install chromium`")
    from playwright.sync_api import sync_playwright

    for path in sorted(site.glob("*.html")):
        assets = re.findall(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="(https?://[^"]+)"', path.read_text())
        assert not assets, f"{path.name} loads {assets[:3]} from the network"
    outside = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            _check_navigation(_open(browser, site, outside))
            _check_search(_open(browser, site, outside, f"search.html?q={SEARCH_TERM}"))
            for name in ["index.html", *_chapter_pages(), "questions.html", "exercises.html"]:
                page = _open(browser, site, outside, name)
                _check_page(page, name)
                if name in _chapter_pages():
                    _check_answers(page, name)
                page.close()
            for viewport in VIEWPORTS:
                _check_readable(_open(browser, site, outside, f"{EXECUTED[1]}.html", viewport), viewport, EXECUTED[1])
        finally:
            browser.close()
    assert not outside, f"the site requested something off the disk: {sorted(set(outside))[:5]}"
