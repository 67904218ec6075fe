"""`make book`: the course as a Jupyter Book site, built from the chapters executed in the cpu (or gpu) profile.

    python -m utils.course.book [--profile cpu|gpu] [chapter ...]   # all chapters when none is named

1. **Executed notebooks.** The pages are the notebooks `make verify` keeps: it runs each chapter with
   utils.course.execute, which writes ``chapters/outputs/executed/<profile>/<chapter>.ipynb`` with the profile, the
   device, the run time and the hash of the code in its metadata. The book's profile is `cpu` (or `gpu` on a machine
   with CUDA; never `smoke`: the book shows real results); a kept notebook is used while its chapter's code is
   unchanged (with the chapter's current Markdown), and a chapter with none (or changed code) is run here the same
   way, so ``make verify PROFILE=cpu`` then ``make book`` executes every chapter once.
2. **Pages.** A copy of each executed notebook becomes a page: every explorer keeps the static figure it carries
   beside its live view (a page has no kernel), a tqdm progress bar is reduced to its final line, a note under the
   title states the profile, the device and the chapter's run time per profile (`make verify`'s last tables), each
   numbered section gets a label that the interview answers' "section N" link to, and the exercise cells (the
   official solutions) are folded. The site adds an introduction with the parts, the question index and the
   exercises page.
3. **Site.** Jupyter Book 1 (Sphinx, sphinx-book-theme) builds ``chapters/outputs/book/_build/html/`` from
   ``chapters/outputs/book/source/``, executing nothing. It needs no network at build or view time: the theme's
   assets and MathJax (from jupyter-server-mathjax) are copied into the site, and search is Sphinx's own index.

`tests/test_book.py` builds a small site and reads it in Chromium as a learner would.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import functools
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import yaml
from jupytext.combine import combine_inputs_with_outputs

from .. import results
from ..plotting import OUTPUTS
from . import execute, questions
from .execute import METADATA_KEY

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = ROOT / "chapters"
EXECUTED = OUTPUTS / "executed"
BOOK = OUTPUTS / "book"
STATIC = Path(__file__).with_name("book_static")   # the site's own script and style sheet
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PROFILES = ("smoke", "cpu", "gpu")
# The course's parts, in order, each with the chapter prefixes it holds.
PARTS = (("Foundations", ("01a", "01b", "01c", "01d")),
         ("Attention", ("02", "03a", "03b")),
         ("Detection and segmentation", ("04", "05")),
         ("Generative models", ("06",)),
         ("Fusion and pose", ("07", "08")),
         ("Multimodal and SAM", ("09", "10")),
         ("Speed and scale", ("11",)))
NUMBERED_HEADING = re.compile(r"^## (\d+)\. ", re.MULTILINE)
DETAILS = re.compile(r"<details>.*?</details>", re.DOTALL)
# "section 8", "sections 5 and 8", "sections 1–2", optionally after "Chapter 3a, " / "Chapter 3a's " / "Chapter 3a ("
SECTION_MENTION = re.compile(r"(?:Chapter (?P<chapter>\d+[a-d]?)(?:'s|’s|,| \()? )?[Ss]ections? "
                             r"(?P<numbers>\d+(?:\s*(?:[–-]|,|and)\s*\d+)*)")


def chapter_sources(names: list[str] | None = None) -> list[Path]:
    """The chapter sources to render: every ``chapters/NN_*.py``, or those whose name starts with one of ``names``."""
    sources = sorted(CHAPTERS.glob("[0-9]*.py"))
    if names:
        sources = [s for s in sources if any(s.stem.startswith(n) for n in names)]
        if not sources:
            raise ValueError(f"no chapter matches {names}: use names like 01a or 04_detection")
    return sources


def chapter_id(chapter: str) -> str:
    """``04_detection`` → ``04``."""
    return chapter.split("_")[0]


def part_of(chapter: str) -> str:
    """The part of the course a chapter belongs to; a chapter added without a part is refused, not left out."""
    for part, ids in PARTS:
        if chapter_id(chapter) in ids:
            return part
    raise ValueError(f"{chapter} belongs to no part of the book: add its id to PARTS in {Path(__file__).name}")


def book_profile(requested: str = "") -> str:
    """The profile the book shows: ``requested``, else gpu where CUDA is available, else cpu. Smoke is refused:
    its tiny runs teach the wrong numbers (a smoke detector finds 13 of 155 items)."""
    if not requested:
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    if requested not in ("cpu", "gpu"):
        raise ValueError(f"the book is built from the cpu or gpu profile, not {requested!r}: smoke runs are too "
                         f"small to show what a chapter teaches")
    return requested


def kept_run(source: Path, kept: Path):
    """The run kept in ``kept`` shown with the chapter's current text, or None when it cannot stand for the chapter:
    there is none, it stopped early, or the chapter's code changed since. A change to the Markdown alone needs no new
    run: the kept outputs are paired with the current cells, as `jupytext --update` pairs them."""
    if not kept.exists():
        return None
    run = nbformat.read(kept, as_version=4)
    chapter = jupytext.read(source)
    record = run.metadata.get(METADATA_KEY, {})
    if not record.get("completed") or record.get("code_sha256") != execute.code_hash(chapter):
        return None
    notebook = combine_inputs_with_outputs(chapter, run)
    notebook.metadata.update({key: run.metadata[key] for key in (METADATA_KEY, "widgets") if key in run.metadata})
    return notebook


def executed_notebook(source: Path, profile_name: str, folder: Path = EXECUTED):
    """The chapter executed top to bottom in ``profile_name``: the notebook `make verify` kept in
    ``folder/<profile>/`` while the chapter's code is unchanged (kept_run), else a fresh run of the same runner
    (utils.course.execute), kept there for next time."""
    kept = folder / profile_name / f"{source.stem}.ipynb"
    notebook = kept_run(source, kept)
    if notebook is not None:
        print(f"{source.stem}: executed notebook reused ({kept})", flush=True)
        return notebook
    print(f"{source.stem}: executing in the {profile_name} profile …", flush=True)
    environment = dict(os.environ, COURSE_PROFILE=profile_name, PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, "-m", "utils.course.execute", str(source), "--output", str(kept)],
                         cwd=ROOT, env=environment)
    if run.returncode != 0:
        raise RuntimeError(f"{source.stem} failed in the {profile_name} profile (its traceback is above); the book "
                           "shows only chapters that ran to the end: fix it, or leave it out of CHAPTERS")
    return nbformat.read(kept, as_version=4)


# --- the page: static outputs -------------------------------------------------------------------------------------

def _widget_models(notebook) -> dict:
    return notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def _model(models: dict, reference: str) -> dict:
    return models.get(reference.removeprefix("IPY_MODEL_"), {})


def tqdm_line(models: dict, model_id: str) -> str | None:
    """The final line of a tqdm progress bar (an HBox of HTML, FloatProgress, HTML) from the widget state the
    execution saved: ``train: 100%|██████████| 5/5 [00:03<00:00, …]``; "" for a bar tqdm hid when it closed
    (``leave=False``); None if the widget is no progress bar."""
    box = models.get(model_id, {})
    children = [_model(models, c) for c in box.get("state", {}).get("children", [])]
    if [c.get("model_name") for c in children] != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    if _model(models, box["state"].get("layout", "")).get("state", {}).get("visibility") == "hidden":
        return ""
    left, bar, right = (c["state"] for c in children)
    filled = round(10 * bar.get("value", 0) / bar["max"]) if bar.get("max") else 0
    text = f"{left.get('value', '')}|{'█' * filled}{' ' * (10 - filled)}|{right.get('value', '')}"
    return html.unescape(text).replace("\u2007", " ")


def static_outputs(cell, models: dict) -> None:
    """A code cell's outputs as a page without a kernel shows them: live widget views replaced by the static figure
    each explorer carries beside them (or a progress bar's final line), other widgets dropped."""
    kept = []
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if WIDGET_VIEW in data:
            line = tqdm_line(models, data[WIDGET_VIEW]["model_id"])
            if line:
                kept.append(nbformat.v4.new_output("stream", name="stderr", text=line + "\n"))
            if line is not None or not any(key.startswith("image/") for key in data):
                continue                        # a progress bar, or a widget with no static figure to show
            data.pop(WIDGET_VIEW)
            data.pop("text/plain", None)        # the widget's repr, not a caption
        elif output.get("output_type") == "stream":
            output["text"] = execute.terminal_text(output["text"])
        kept.append(output)
    cell["outputs"] = kept


# --- the page: notes and links ------------------------------------------------------------------------------------

def section_label(chapter: str, number: int | str) -> str:
    return f"ch{chapter_id(chapter)}-section-{number}"


def numbered_sections(notebook) -> set[int]:
    """The numbers of a chapter's ``## N. Title`` sections."""
    return {int(n) for cell in notebook.cells if cell.cell_type == "markdown"
            for n in NUMBERED_HEADING.findall(cell.source)}


def link_sections(text: str, chapter: str, sections: dict[str, set[int]]) -> str:
    """``text`` with each "section N" that names a section of the book linked to it: of ``chapter``, or of the
    chapter named just before ("Chapter 3a, section 17"). ``sections``: chapter → its section numbers."""
    def linked(match: re.Match) -> str:
        target = chapter
        if match["chapter"]:
            padded = re.sub(r"^(\d)(?!\d)", r"0\1", match["chapter"])      # 3a → 03a, 4 → 04
            named = [c for c in sections if chapter_id(c) == padded]
            if len(named) != 1:
                return match[0]                 # a chapter not in this book: plain text
            target = named[0]
        numbers = re.sub(r"\d+", lambda n: (f"{{ref}}`{n[0]} <{section_label(target, n[0])}>`"
                                            if int(n[0]) in sections.get(target, ()) else n[0]), match["numbers"])
        return match[0][:match.start("numbers") - match.start()] + numbers
    return SECTION_MENTION.sub(linked, text)


def run_time_note(chapter: str, verify_folder: Path = OUTPUTS) -> str:
    """The chapter's run time per profile: `make verify`'s last run of it (verify-<profile>.json) where it has one,
    else the README's tables."""
    readme = results.measured_runtimes(chapter)
    parts = []
    for profile_name in PROFILES:
        sidecar = verify_folder / f"verify-{profile_name}.json"
        rows = json.loads(sidecar.read_text()) if sidecar.exists() else []
        row = next((r for r in rows if r.get("chapter") == chapter), None)
        if row:
            date = datetime.date.fromtimestamp(sidecar.stat().st_mtime).isoformat()
            wall, cpu, status, device = row["wall_seconds"], row["cpu_seconds"], row["status"], row["device"]
        elif profile_name in readme:
            m = readme[profile_name]
            date, wall, cpu, status, device = m["date"], m["wall"], m["cpu"], m["status"], m["device"]
        else:
            parts.append(f"**{profile_name}**: not yet measured")
            continue
        parts.append(f"**{profile_name}**: {wall / 60:.1f} min wall, {cpu / 60:.1f} min CPU on {device} "
                     f"({status}, {date})")
    return "; ".join(parts)


def page_note(notebook, chapter: str) -> str:
    """The note under a chapter's title: what run the page shows and how long the chapter takes."""
    run = notebook.metadata[METADATA_KEY]
    return (f"```{{admonition}} This page is the {run['profile']} profile's run\n:class: note\n"
            f"Executed on {run['executed']} in the **{run['profile']}** profile on **{run['device']}** "
            f"(`make book`). Every output below is that run's.\n\n"
            f"Run time measured by `make verify`: {run_time_note(chapter)}.\n```")


def chapter_page(notebook, chapter: str, sections: dict[str, set[int]]):
    """An executed chapter as the book's page (a copy; the executed notebook is left as it is)."""
    page = copy.deepcopy(notebook)
    models = _widget_models(page)
    page.metadata.pop("widgets", None)
    for cell in page.cells:
        if cell.cell_type == "code":
            static_outputs(cell, models)
            if "exercise" in cell.metadata.get("tags", []):
                cell.metadata["tags"] = [*cell.metadata["tags"], "hide-input"]   # the solution: folded
        elif cell.cell_type == "markdown":
            source = NUMBERED_HEADING.sub(lambda m: f"({section_label(chapter, m[1])})=\n{m[0]}", cell.source)
            source = source.replace("## Interview questions", f"(ch{chapter_id(chapter)}-interview)=\n"
                                    "## Interview questions", 1)
            cell.source = DETAILS.sub(lambda m: link_sections(m[0], chapter, sections), source)
    title = next(i for i, cell in enumerate(page.cells) if cell.cell_type == "markdown")
    page.cells.insert(title + 1, nbformat.v4.new_markdown_cell(page_note(notebook, chapter)))
    return page


# --- the other pages ----------------------------------------------------------------------------------------------

def _readme_descriptions() -> dict[str, str]:
    """Chapter → its line in the README's chapter table."""
    found = {}
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `(\d\d[a-d]?_\w+)` \| (.+) \|$", line)
        if match:
            found[match[1]] = match[2]
    return found


def intro_page(chapters: list[str], runs: dict[str, dict]) -> str:
    descriptions = _readme_descriptions()
    lines = ["# Deep Vision Lab", "",
             "An interactive course in deep learning for computer vision. Each chapter builds a model from parts you "
             "can see, trains it, proves what it claims with executable checks and lets you look inside. This site "
             "is the course's notebooks **as they ran**: every figure and number below comes from that run, each "
             "chapter's first lines say its profile and device. In JupyterLab the same chapters are live "
             "(`make lab`).", "",
             "Every chapter ends with the interview questions asked on its topic: try to answer first, then click a "
             "question to open its answer, which points to the section that demonstrates it. Search (the magnifier, "
             "or Ctrl+K) works offline.", ""]
    for part, _ in PARTS:
        members = [c for c in chapters if part_of(c) == part]
        if members:
            lines += [f"## {part}", ""]
            lines += [f"- [{_title(c)}]({c}.ipynb) — {descriptions.get(c, '')} ({_run_words(runs[c])})"
                      for c in members]
            lines.append("")
    lines += ["## Revision", "", "- [Interview questions, all chapters](questions.md)",
              "- [Exercises and their self-checks](exercises.md)", ""]
    return "\n".join(lines)


def _run_words(run: dict) -> str:
    return f"{run['profile']} profile on {run['device']}"


@functools.lru_cache
def _title(chapter: str) -> str:
    """The chapter's H1 ("Chapter 1a — Convolution by hand"), from its source."""
    match = re.search(r"^# # (.+)$", (CHAPTERS / f"{chapter}.py").read_text(encoding="utf-8"), re.MULTILINE)
    return match[1].strip() if match else chapter


def questions_page(chapters: list[str], sections: dict[str, set[int]]) -> str:
    """Every chapter's interview questions (`make questions`' index), each linked to its chapter's answers, and
    the sections the answers point to linked to them."""
    lines = ["# Interview questions, all chapters", "",
             "Each chapter's questions, with the cells and sections their answers point to. The answers are on the "
             "chapter's page, closed until you open them: answer first, then check.", ""]
    for kind, wanted in (("interview questions", False), ("wrong answers you may read", True)):
        for chapter in chapters:
            found = [q for q in questions.questions_of(CHAPTERS / f"{chapter}.py") if q.wrong_answer == wanted]
            if not found:
                continue
            lines += [f"## {_title(chapter)}: {len(found)} {kind}", "",
                      f"On the page: {{ref}}`the answers <ch{chapter_id(chapter)}-interview>`.", "",
                      "| # | question | the answer points to |", "|---|---|---|"]
            lines += [f"| {i} | {q.question.replace('|', '/')} | "
                      f"{link_sections(q.points_to.replace('|', '/'), chapter, sections)} |"
                      for i, q in enumerate(found, 1)]
            lines.append("")
    return "\n".join(lines)


def exercises_page(chapters: list[str]) -> str:
    """What each exercise asks (its signature and docstring, as `make exercises` hands it out) and what its
    self-check compares and recognises; never the solution."""
    from ..exercise_records import TARGET_MINUTES
    from ..exercises import EXERCISES
    from .exercise_notebooks import solutions, stub

    lines = ["# Exercises", "",
             "The hand-written classics are cells tagged `exercise` in their chapters, each followed by a "
             "self-check. `make exercises` writes into `chapters/exercises/` (your folder: `make clean` keeps it, "
             "and rerunning never overwrites a notebook you edited) each chapter's exercise notebook, "
             "`<chapter>_exercises.ipynb` — the chapter with every exercise cut down to its signature, docstring "
             "and hints and `raise NotImplementedError` — and `drills.ipynb`, every exercise against the clock of "
             "its difficulty (easy ≈ 5 min, medium ≈ 10, hard ≈ 20), each attempt recorded in "
             "`chapters/exercises/attempts.jsonl`.", "",
             "**What a self-check does.** `exercises.check(\"name\", name)` runs your function on fixed, seeded "
             "cases chosen so that the classic wrong versions fail (odd sizes, non-square inputs, a stride that "
             "changes the rounding, a batch of one, empty inputs, ties, huge values) and compares every value with "
             "the reference. It prints ✓, or ✗ with the first case that differs, its inputs, the first wrong "
             "position and the known mistake your output matches; `exercises.case(\"name\", n)` fetches that case's "
             "inputs. After a ✗ it hands the reference on, so Run All goes on. A solution may not call the library "
             "function that does the exercise's work.", "",
             "The chapter pages hold the official solutions, folded under each exercise cell: open one only after "
             "your own attempt.", ""]
    for chapter in chapters:
        mine = [e for e in EXERCISES if e.chapter == chapter]
        if not mine:
            continue
        cells = solutions(chapter)
        lines += [f"## {_title(chapter)}", ""]
        for exercise in mine:
            reference = f"{exercise.reference.__module__}.{exercise.reference.__qualname__}"
            lines += [f"### `{exercise.name}` — {exercise.difficulty} (≈ {TARGET_MINUTES[exercise.difficulty]} min)",
                      ""]
            if exercise.name in cells:
                lines += ["```python", stub(cells[exercise.name]), "```", ""]
            lines.append(f"Checked against `{reference}` on {len(exercise.cases())} cases.")
            if exercise.mistakes:
                lines += ["", "Mistakes it recognises:", ""]
                lines += [f"- {mistake.says}" for mistake in exercise.mistakes]
            if exercise.forbidden:
                lines += ["", "Not allowed: " + ", ".join(f"`{name}`" for name in exercise.forbidden) + "."]
            lines.append("")
    return "\n".join(lines)


# --- the site -----------------------------------------------------------------------------------------------------

def _mathjax_folder() -> Path:
    """MathJax 2's files as jupyter-server-mathjax ships them: the book's formulas render without a CDN."""
    import jupyter_server_mathjax

    return Path(jupyter_server_mathjax.__file__).with_name("static")


def site_config(runs: dict[str, dict]) -> dict:
    """Jupyter Book's _config.yml: no execution, nothing fetched from the network, the run stated on every page."""
    pairs = sorted({_run_words(run) for run in runs.values()})
    return {
        "title": "Deep Vision Lab", "author": "Deep Vision Lab", "copyright": str(datetime.date.today().year),
        "only_build_toc_files": True,
        "execute": {"execute_notebooks": "off"},
        "html": {"use_download_button": False, "home_page_in_navbar": True,
                 "announcement": f"Built by <code>make book</code> from the {'; '.join(pairs)} run."},
        "launch_buttons": {"notebook_interface": "jupyterlab", "binderhub_url": "", "jupyterhub_url": "",
                           "colab_url": "", "deepnote_url": "", "thebe": False},
        "repository": {"url": ""},
        "parse": {"myst_enable_extensions": ["colon_fence", "dollarmath", "substitution", "tasklist"]},
        "sphinx": {"config": {
            # Jupyter Book's extensions less sphinx-thebe (it names a CDN's copy of thebe) and intersphinx
            "extensions": ["sphinx_togglebutton", "sphinx_copybutton", "myst_nb", "jupyter_book", "sphinx_comments",
                           "sphinx_external_toc", "sphinx_design", "sphinx_book_theme"],
            # MathJax 2 from the site itself; outside _static, where Jupyter Book would load every .js file it finds
            # (it does load the site's own course.js and course.css from there)
            "html_extra_path": ["_extra"],
            "mathjax_path": "../mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full",
            "mathjax2_config": {
                "HTML-CSS": {"availableFonts": [], "preferredFont": None, "imageFont": None,
                             "webFont": "STIX-Web"},                     # the one font the package ships
                "tex2jax": {"processClass": "tex2jax_process|mathjax_process|math|output_area"}},  # as MyST's v3
            "html_show_sourcelink": False,
            "nb_ipywidgets_js": {},                                   # no widget manager from a CDN
            "suppress_warnings": ["mystnb.unknown_mime_type"]}},
    }


def table_of_contents(chapters: list[str]) -> dict:
    parts = [{"caption": part, "chapters": [{"file": c} for c in chapters if part_of(c) == part]}
             for part, _ in PARTS]
    parts = [p for p in parts if p["chapters"]]
    parts.append({"caption": "Revision", "chapters": [{"file": "questions"}, {"file": "exercises"}]})
    return {"format": "jb-book", "root": "index", "parts": parts}


def write_source(notebooks: dict, folder: Path) -> None:
    """The Jupyter Book project in ``folder``: config, table of contents, the pages. ``notebooks``: chapter →
    executed notebook (with its `METADATA_KEY` record), in the course's order."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "_static").mkdir(parents=True)
    chapters = list(notebooks)
    for chapter in chapters:
        part_of(chapter)                        # refuse a chapter with no part before anything is written
    runs = {c: nb.metadata[METADATA_KEY] for c, nb in notebooks.items()}
    sections = {c: numbered_sections(nb) for c, nb in notebooks.items()}
    for chapter, notebook in notebooks.items():
        nbformat.write(chapter_page(notebook, chapter, sections), folder / f"{chapter}.ipynb")
    (folder / "index.md").write_text(intro_page(chapters, runs), encoding="utf-8")
    (folder / "questions.md").write_text(questions_page(chapters, sections), encoding="utf-8")
    (folder / "exercises.md").write_text(exercises_page(chapters), encoding="utf-8")
    (folder / "_config.yml").write_text(yaml.safe_dump(site_config(runs), sort_keys=False), encoding="utf-8")
    (folder / "_toc.yml").write_text(yaml.safe_dump(table_of_contents(chapters), sort_keys=False), encoding="utf-8")
    for asset in STATIC.iterdir():
        shutil.copy(asset, folder / "_static")
    shutil.copytree(_mathjax_folder(), folder / "_extra" / "mathjax")


def build_site(source: Path, output: Path) -> Path:
    """Run Jupyter Book on ``source`` into ``output``; print Sphinx's warnings; return the site's index.html."""
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    run = subprocess.run([str(jupyter_book), "build", "--path-output", str(output), str(source)],
                         capture_output=True, text=True)
    for line in (run.stdout + run.stderr).splitlines():
        if "WARNING" in line or "ERROR" in line:
            print(line, file=sys.stderr)
    if run.returncode:
        raise RuntimeError(f"jupyter-book build failed (exit {run.returncode}):\n"
                           f"{run.stdout[-3000:]}{run.stderr[-3000:]}")
    return output / "_build" / "html" / "index.html"


def write_book(sources: list[Path], profile_name: str, *, executed: Path = EXECUTED, book: Path = BOOK) -> Path:
    """Execute (or reuse) ``sources`` in ``profile_name``, write the Jupyter Book project under ``book/source`` and
    build the site; return its index.html."""
    notebooks = {source.stem: executed_notebook(source, profile_name, executed) for source in sources}
    write_source(notebooks, book / "source")
    return build_site(book / "source", book)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="", help="cpu or gpu (default: gpu where CUDA is available, else cpu)")
    parser.add_argument("chapters", nargs="*", help="chapter prefixes, e.g. 01a 04 (default: all)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    index = write_book(chapter_sources(args.chapters or None), book_profile(args.profile.strip()))
    print(f"book built in {time.perf_counter() - start:.0f} s → {index.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
