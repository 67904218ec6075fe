"""The learner's work is never lost (utils/course/exercise_notebooks.py, Makefile): `make exercises` writes into the
learner's git-ignored folder, rewrites an unedited notebook in place, keeps an edited one and writes the new version
beside it; `make clean` leaves the folder alone. And the drills run against the clock: each heading names its target,
each check gets its timer, and the last cell shows the learner's record."""

import ast
import subprocess
from pathlib import Path

import nbformat
import pytest

from utils.course import exercise_notebooks as notebooks
from utils.course.exercise_notebooks import tagged
from utils.exercise_records import TARGET_MINUTES, exercise_folder, record_attempt
from utils.exercises import CHECK_TAG, EXERCISE_TAG, EXERCISES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def drills():
    return notebooks.drills_notebook()


def _tiny_notebook(text="print('the version make exercises writes')"):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Exercises"),
                                           nbformat.v4.new_code_cell(text)])


def _edit(path, text):
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[1].source = text
    nbformat.write(notebook, path)


def test_an_unedited_notebook_is_rewritten_in_place(tmp_path, capsys):
    path = tmp_path / "04_detection_exercises.ipynb"
    assert notebooks.write_notebook(_tiny_notebook(), path) == path
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[1].outputs = [nbformat.v4.new_output("stream", text="ran it\n")]   # running is not editing
    nbformat.write(notebook, path)
    assert notebooks.write_notebook(_tiny_notebook("print('a newer version')"), path) == path
    assert nbformat.read(path, as_version=4).cells[1].source == "print('a newer version')"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name] and capsys.readouterr().out == ""


def test_an_edited_notebook_is_kept_and_the_new_version_written_beside_it(tmp_path, capsys):
    path = tmp_path / "04_detection_exercises.ipynb"
    notebooks.write_notebook(_tiny_notebook(), path)
    _edit(path, "def nms(boxes, scores, threshold):\n    return my_work")
    beside = notebooks.write_notebook(_tiny_notebook("print('a newer version')"), path)
    assert beside == tmp_path / "04_detection_exercises.new.ipynb"
    assert nbformat.read(path, as_version=4).cells[1].source.endswith("return my_work")
    assert nbformat.read(beside, as_version=4).cells[1].source == "print('a newer version')"
    said = capsys.readouterr().out
    assert "kept your edited" in said and path.name in said and beside.name in said
    # Rerun: the learner's file is still kept, the unedited new version rewritten in place.
    assert notebooks.write_notebook(_tiny_notebook("print('newer still')"), path) == beside
    assert nbformat.read(beside, as_version=4).cells[1].source == "print('newer still')"
    # The new version edited too: neither is overwritten.
    _edit(beside, "more of my work")
    assert notebooks.write_notebook(_tiny_notebook(), path) == tmp_path / "04_detection_exercises.new-2.ipynb"
    assert nbformat.read(beside, as_version=4).cells[1].source == "more of my work"


def test_a_notebook_not_written_by_make_exercises_is_never_overwritten(tmp_path):
    path = tmp_path / "drills.ipynb"
    nbformat.write(_tiny_notebook(), path)                       # the learner's own, without the mark
    assert notebooks.edited(path)
    (tmp_path / "broken.ipynb").write_text("{ not a notebook")
    assert notebooks.edited(tmp_path / "broken.ipynb")
    assert notebooks.write_notebook(_tiny_notebook(), path).name == "drills.new.ipynb"
    with pytest.raises(ValueError, match=".ipynb"):
        notebooks.write_notebook(_tiny_notebook(), tmp_path / "drills.py")
    with pytest.raises(TypeError, match="takes a notebook"):
        notebooks.write_notebook({"cells": []}, path)


def test_write_all_keeps_the_learners_edit_on_a_second_run(tmp_path):
    first = notebooks.write_all(tmp_path)
    _edit(first[-1], "my drill work")                              # drills.ipynb: cell 1 is the imports
    second = notebooks.write_all(tmp_path)
    assert second[:-1] == first[:-1] and second[-1].name == "drills.new.ipynb"
    assert nbformat.read(first[-1], as_version=4).cells[1].source == "my drill work"


def test_the_learners_folder_is_git_ignored_and_make_clean_keeps_it(monkeypatch):
    monkeypatch.delenv("COURSE_EXERCISES_DIR", raising=False)
    folder = exercise_folder().relative_to(ROOT)
    assert folder == Path("chapters/exercises")
    ignored = subprocess.run(["git", "check-ignore", "-q", f"{folder}/drills.ipynb"], cwd=ROOT)
    assert ignored.returncode == 0, f"{folder}/ must be in .gitignore"
    recipe = subprocess.run(["make", "-n", "clean"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    removed = [Path(word) for line in recipe.splitlines() if line.startswith("rm ") for word in line.split()[1:]
               if not word.startswith("-")]
    assert removed, recipe
    assert not [p for p in removed if p == folder or p in folder.parents], f"make clean would delete {folder}: {recipe}"


def test_each_drill_heading_states_its_target_and_the_check_gets_the_timer(drills):
    headings = [cell.source for cell in drills.cells if cell.source.startswith("## `")]
    assert len(headings) == len(EXERCISES)
    for exercise in EXERCISES:
        heading = next(h for h in headings if h.startswith(f"## `{exercise.name}`"))
        assert f"{exercise.difficulty}, target ≈ {TARGET_MINUTES[exercise.difficulty]} min" in heading
    for index, cell in enumerate(drills.cells):
        if tagged(cell, CHECK_TAG):
            name = ast.parse(drills.cells[index - 1].source).body[0].name
            assert tagged(drills.cells[index - 1], EXERCISE_TAG)
            assert drills.cells[index - 2].source == f"started_{name} = time.perf_counter()"
            assert cell.source == f'check("{name}", {name}, started_{name})'


def test_the_drills_end_with_the_learners_record(drills, tmp_path, monkeypatch, capsys):
    last = drills.cells[-1]
    assert last.cell_type == "code" and not last.metadata.get("tags")
    monkeypatch.setenv("COURSE_EXERCISES_DIR", str(tmp_path))
    monkeypatch.setenv("COURSE_LEARNER", "ada")
    exec(last.source, {})
    assert capsys.readouterr().out.startswith("No attempts recorded yet")
    record_attempt("nms", 480.0, True, chapter="04_detection", difficulty="medium")
    exec(last.source, {})
    assert "| `nms` | medium | 1 | ✓ | 8.0 min | 10 min | ✓ |" in capsys.readouterr().out
