"""`make questions` (utils/course/questions.py): every interview answer, and every correction of a wrong answer,
points to a cell that exists."""

import re
from pathlib import Path

import jupytext
import pytest

from utils.course.questions import build_index, questions_of

CHAPTERS = sorted((Path(__file__).resolve().parents[1] / "chapters").glob("[0-9]*.py"))


def _plain(text: str) -> str:
    return re.sub(r"[`*]", "", text).lower()


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_every_answer_points_to_a_cell_of_its_chapter(source):
    notebook = jupytext.read(source)
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    lecture = _plain(markdown[:markdown.rfind("Interview questions")] + "\n".join(
        c.source for c in notebook.cells if c.cell_type == "code"))
    sections = set(re.findall(r"^#+ (\d+)\.", markdown, re.MULTILINE))
    unresolved = []
    for question in questions_of(source):
        names = [n.rstrip("….").strip() for n in re.findall(r'"([^"]+)"', question.points_to)]
        numbers = [n for group in re.findall(r"section ([\d\s,–and-]+)", question.points_to)
                   for n in re.findall(r"\d+", group)]
        if not any(_plain(n) in lecture for n in names) and not any(n in sections for n in numbers):
            unresolved.append(f"line {question.line}: {question.question[:60]!r} → {question.points_to or '—'}")
    assert not unresolved, (f"{source.name}: answers must name the cell that demonstrates them (a quoted cell "
                            f"title or 'section N'): " + "; ".join(unresolved[:4]))


def test_the_index_lists_every_chapter():
    text, total, wrong = build_index()
    assert total >= 10 * len(CHAPTERS) // 2 and all(text.count(f"## {p.stem} (") == 2 for p in CHAPTERS)
    assert text.index("# Answers you may read that are wrong") > text.index(f"## {CHAPTERS[-1].stem} (")


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_corrects_the_wrong_answers_learners_meet(source):
    """Each chapter's "Answers you may read that are wrong": at least three, after the interview questions, each a
    correction (not a bare restatement) that points to its cell (checked with the questions above)."""
    found = questions_of(source)
    wrong = [q for q in found if q.wrong_answer]
    assert len(wrong) >= 3, f"{source.name}: {len(wrong)} wrong answers corrected; the section needs at least 3"
    first_wrong = min(q.line for q in wrong)
    assert all(q.line < first_wrong for q in found if not q.wrong_answer), \
        f"{source.name}: the wrong answers come after the interview questions"
    text = source.read_text(encoding="utf-8")
    assert "### Answers you may read that are wrong" in text[text.rfind("## Interview questions"):], \
        f"{source.name}: the wrong answers sit under their own heading in the interview section"
