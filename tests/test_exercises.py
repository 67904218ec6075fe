"""`make exercises` (utils/exercises.py, utils/course/exercise_notebooks.py): every exercise is a tagged solution cell in its chapter with a self-check
after it, its stub keeps the signature and hints, stubbing cannot break the cells that follow, and the notebooks
run: in an exercise notebook only the self-checks fail (NotImplementedError), in the solved chapter none does."""

import ast
import asyncio
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from utils import exercises
from utils.course import exercise_notebooks as notebooks
from utils.course.exercise_notebooks import tagged
from utils.exercises import CHAPTERS_WITH_EXERCISES, CHECK_TAG, EXERCISE_TAG, EXERCISES, check

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"


def _chapter_cells():
    """(chapter, its cells) for every chapter source, those without exercises included (a stray tag is an error)."""
    return [(path.stem, jupytext.read(path).cells) for path in sorted(CHAPTERS.glob("[0-9]*.py"))]


def test_every_exercise_is_one_tagged_cell_followed_by_its_self_check():
    found = []
    for chapter, cells in _chapter_cells():
        for index, cell in enumerate(cells):
            if not tagged(cell, EXERCISE_TAG):
                assert not tagged(cell, CHECK_TAG) or tagged(cells[index - 1], EXERCISE_TAG), (
                    f"{chapter}, cell {index}: a self-check cell must follow its exercise cell")
                continue
            name = notebooks.solution_function(cell.source).name
            assert exercises.BY_NAME.get(name) and exercises.BY_NAME[name].chapter == chapter, (
                f"{chapter}, cell {index}: {name} is tagged {EXERCISE_TAG!r} but not registered for {chapter} "
                f"in utils.exercises.EXERCISES")
            following = cells[index + 1] if index + 1 < len(cells) else None
            assert following is not None and tagged(following, CHECK_TAG), (
                f"{chapter}: the cell after exercise {name} must be tagged {CHECK_TAG!r}")
            assert following.source.strip() == f'exercises.check("{name}", {name})', (
                f"{chapter}: {name}'s self-check should be exactly exercises.check(\"{name}\", {name})")
            found.append(name)
    assert sorted(found) == sorted(e.name for e in EXERCISES), (
        f"each registered exercise needs exactly one tagged cell: found {sorted(found)}")


def test_each_chapter_with_exercises_has_three_to_six_of_known_difficulty():
    counts = {chapter: sum(e.chapter == chapter for e in EXERCISES) for chapter in CHAPTERS_WITH_EXERCISES}
    assert all(3 <= count <= 6 for count in counts.values()), counts
    assert {e.difficulty for e in EXERCISES} <= set(exercises.DIFFICULTIES)


def test_stubs_keep_signature_and_docstring_and_raise_not_implemented():
    for exercise in EXERCISES:
        solution = notebooks.solutions(exercise.chapter)[exercise.name]
        stub = notebooks.stub(solution)
        (original,), (stubbed,) = ast.parse(solution).body, ast.parse(stub).body
        assert stubbed.name == original.name and ast.dump(stubbed.args) == ast.dump(original.args)
        assert ast.get_docstring(stubbed) == ast.get_docstring(original)
        assert [type(node) for node in stubbed.body] == [ast.Expr, ast.Raise], f"{exercise.name}: {stub}"
        namespace = {}
        exec(compile(stub, exercise.name, "exec"), namespace)
        with pytest.raises(NotImplementedError, match=f"write {exercise.name}"):
            namespace[exercise.name](*exercise.cases()[0])


def test_stub_refuses_cells_that_are_not_one_documented_function():
    with pytest.raises(ValueError, match="exactly one function"):
        notebooks.stub("x = 1\n\ndef f():\n    '''Hints: none.'''\n    return 1")
    with pytest.raises(ValueError, match="Hints:"):
        notebooks.stub("def f():\n    '''No hints.'''\n    return 1")
    with pytest.raises(ValueError, match="no body"):
        notebooks.stub("def f():\n    '''Do it.\n\n    Hints: none.\n    '''")
    with pytest.raises(FileNotFoundError, match="no chapter source"):
        notebooks.exercise_notebook("99_missing")


def test_no_later_cell_but_a_self_check_uses_an_exercise_function():
    """The exercise notebook replaces each solution by a stub: a later cell that called the function would fail
    there, so later cells use the library's version (`scratch.conv2d`, `detection.box_iou` …)."""
    for chapter in CHAPTERS_WITH_EXERCISES:
        defined = set()
        for index, cell in enumerate(jupytext.read(CHAPTERS / f"{chapter}.py").cells):
            if cell.cell_type != "code" or tagged(cell, CHECK_TAG):
                continue
            tree = ast.parse(cell.source)
            used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} & defined
            assert not used, f"{chapter}, cell {index} uses {sorted(used)}, which an exercise cell above defines"
            if tagged(cell, EXERCISE_TAG):
                defined |= {node.name for node in tree.body}


def _through_last_self_check(notebook):
    last = max(i for i, cell in enumerate(notebook.cells) if tagged(cell, CHECK_TAG))
    notebook.cells = notebook.cells[:last + 1]
    return notebook


def _execute_together(runs):
    """Execute (notebook, folder) pairs at once, one kernel each (the two cores of CI work in parallel); the errors
    stay in the outputs."""
    async def execute_all():
        await asyncio.gather(*(NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=True,
                                              resources={"metadata": {"path": str(folder)}}).async_execute()
                               for notebook, folder in runs))
    asyncio.run(execute_all())


def _errors(notebook):
    return [(i, output["ename"]) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.get("output_type") == "error"]


def _checks(notebook):
    return [i for i, cell in enumerate(notebook.cells) if tagged(cell, CHECK_TAG)]


def _passed(notebook):
    printed = "".join(o.get("text", "") for c in notebook.cells if tagged(c, CHECK_TAG) for o in c.get("outputs", []))
    return printed.count("✓")


@pytest.mark.parametrize("chapter", CHAPTERS_WITH_EXERCISES)
def test_exercise_notebook_fails_only_in_its_self_checks(chapter, tmp_path, monkeypatch):
    """Each notebook runs up to its last self-check (the rest is the chapter itself). The solved chapter passing its
    self-checks is the notebook run's to prove (make test-notebooks executes every chapter as it is): run once."""
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    stubbed = _through_last_self_check(notebooks.exercise_notebook(chapter))
    _execute_together([(stubbed, tmp_path)])
    assert _errors(stubbed) == [(i, "NotImplementedError") for i in _checks(stubbed)], _errors(stubbed)


def test_drills_fail_only_in_their_checks_and_pass_with_the_solutions(tmp_path):
    stubbed, solved = notebooks.drills_notebook(), notebooks.drills_notebook(stubbed=False)
    _execute_together([(stubbed, tmp_path), (solved, tmp_path)])
    assert len(_checks(stubbed)) == len(EXERCISES)
    assert _errors(stubbed) == [(i, "NotImplementedError") for i in _checks(stubbed)], _errors(stubbed)
    assert _errors(solved) == [] and _passed(solved) == len(EXERCISES), _errors(solved)


def test_write_all_writes_each_chapter_and_the_drills(tmp_path):
    paths = notebooks.write_all(tmp_path)
    assert [p.name for p in paths] == [f"{c}_exercises.ipynb" for c in CHAPTERS_WITH_EXERCISES] + ["drills.ipynb"]
    notebook = nbformat.read(paths[0], as_version=4)
    stubs = [cell.source for cell in notebook.cells if tagged(cell, EXERCISE_TAG)]
    assert stubs and all(source.rstrip().endswith("then run the check below\")") for source in stubs)


def test_check_names_the_first_mismatch_and_refuses_bad_calls():
    with pytest.raises(AssertionError, match="softmax, case 2"), np.errstate(over="ignore", invalid="ignore"):
        check("softmax", lambda z, axis=-1: np.exp(z) / np.exp(z).sum(axis, keepdims=True))  # overflows
    with pytest.raises(KeyError, match="no exercise"):
        check("conv3d", print)
    with pytest.raises(TypeError, match="function itself"):
        check("softmax", "softmax")
