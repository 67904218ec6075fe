"""Each chapter's .ipynb is generated from its jupytext py:percent source and must agree with it."""

from pathlib import Path

import jupytext
import nbformat
import pytest

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"
SOURCES = sorted(CHAPTERS.glob("*.py"))


def _cells(notebook):
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def test_there_are_chapters():
    assert SOURCES, "no chapters/*.py found"
    orphans = [p.name for p in CHAPTERS.glob("*.ipynb") if not p.with_suffix(".py").exists()]
    assert not orphans, f"notebooks without a .py source: {orphans}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_matches_source(source):
    notebook_path = source.with_suffix(".ipynb")
    assert notebook_path.exists(), f"{notebook_path.name} is missing: run `make notebooks`"
    generated = nbformat.read(notebook_path, as_version=4)
    assert _cells(generated) == _cells(jupytext.read(source)), (
        f"{notebook_path.name} differs from {source.name}: edit the .py, then run `make notebooks`")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_has_no_outputs(source):
    notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    dirty = [i for i, cell in enumerate(notebook.cells)
             if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))]
    assert not dirty, f"{source.stem}.ipynb has outputs in cells {dirty}: regenerate it with `make notebooks`"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_chapter_ends_with_interview_questions(source):
    notebook = jupytext.read(source)
    text = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    assert "Interview questions" in text, f"{source.name} has no 'Interview questions' section"
    tail = text[text.rindex("Interview questions"):]
    assert tail.count("<details>") >= 3, f"{source.name}: answers belong in collapsed <details> blocks"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_details_blocks_render_their_markdown(source):
    """A blank line must follow `</summary>`, or viewers show the answer's markdown raw; `</details>` on its own line."""
    notebook = jupytext.read(source)
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.split("\n")
        opened = sum(line.count("<details>") for line in lines)
        closed = sum(line.count("</details>") for line in lines)
        if opened != closed:
            problems.append(f"cell {index}: {opened} <details> but {closed} </details>")
        for number, line in enumerate(lines):
            if "</summary>" in line and (number + 1 == len(lines) or lines[number + 1].strip()):
                problems.append(f"cell {index}: no blank line after {line.strip()[:70]!r}")
            if "</details>" in line and line.strip() != "</details>":
                problems.append(f"cell {index}: `</details>` shares a line with text: {line.strip()[:70]!r}")
    assert not problems, f"{source.name}: " + "; ".join(problems[:5]) + (
        f" … and {len(problems) - 5} more" if len(problems) > 5 else "")
