"""`make exercises` (utils/exercises/, utils/course/exercise_notebooks.py): every exercise is a tagged solution cell
in its chapter with a self-check after it, its stub keeps the signature and hints, stubbing cannot break the cells that
follow, and the notebooks run on: in an exercise notebook every self-check prints ✗ and hands the reference to the
cells below, no cell fails; the chapter's own solutions pass, and fail loudly when they do not. The messages, the
known mistakes and the refused library calls are in tests/test_exercise_mistakes.py and below."""

import ast
import asyncio
import dataclasses
import runpy
import time
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest
import torch
import torchvision
from nbclient import NotebookClient
from torchvision.ops import nms as aliased_library_nms

from utils import exercises
from utils.course import exercise_notebooks as notebooks
from utils.course.exercise_notebooks import tagged
from utils.exercise_records import read_attempts
from utils.exercises import (CHAPTERS_WITH_EXERCISES, CHECK_TAG, EXERCISE_TAG, EXERCISES, ExerciseFailure, check,
                             verify)

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
            expected = f'{name} = exercises.check("{name}", {name})'
            assert following.source.strip() == expected, f"{chapter}: {name}'s self-check should be exactly {expected}"
            found.append(name)
    assert sorted(found) == sorted(e.name for e in EXERCISES), (
        f"each registered exercise needs exactly one tagged cell: found {sorted(found)}")


def test_every_chapter_has_three_to_six_exercises_of_known_difficulty():
    counts = {path.stem: sum(e.chapter == path.stem for e in EXERCISES) for path in sorted(CHAPTERS.glob("[0-9]*.py"))}
    assert len(counts) == 15 and all(3 <= count <= 6 for count in counts.values()), counts
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


def _set_up_and_exercises(notebook):
    """The chapter's set-up (its cells through the one that calls ``start_chapter``: the imports) and then only its
    exercise and self-check cells."""
    set_up = next(i for i, cell in enumerate(notebook.cells) if "start_chapter(" in cell.source)
    notebook.cells = notebook.cells[:set_up + 1] + [cell for cell in notebook.cells[set_up + 1:]
                                                     if tagged(cell, EXERCISE_TAG) or tagged(cell, CHECK_TAG)]
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


def _printed(notebook):
    """What each self-check cell printed, in order."""
    return ["".join(o.get("text", "") for o in notebook.cells[i].get("outputs", [])) for i in _checks(notebook)]


@pytest.mark.parametrize("chapter", CHAPTERS_WITH_EXERCISES)
def test_exercise_notebook_runs_on_past_every_unsolved_exercise(chapter, tmp_path, monkeypatch):
    """Run All with every exercise unsolved: each self-check prints ✗ and hands the reference on, no cell fails.
    Executed are the set-up and the exercises: a stub is one self-contained function, and the chapter's other cells
    use no exercise function (test_no_later_cell_but_a_self_check_uses_an_exercise_function) and run in
    test-notebooks."""
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    stubbed = _set_up_and_exercises(notebooks.exercise_notebook(chapter))
    _execute_together([(stubbed, tmp_path)])
    assert _errors(stubbed) == [], _errors(stubbed)
    printed = _printed(stubbed)
    assert printed and all(p.startswith("✗ ") and "not written yet" in p for p in printed), printed


def test_drills_run_on_past_their_stubs_pass_with_the_solutions_and_record_each_attempt(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_EXERCISES_DIR", str(tmp_path))       # the kernels write the record there
    stubbed, solved = notebooks.drills_notebook(), notebooks.drills_notebook(stubbed=False)
    _execute_together([(stubbed, tmp_path), (solved, tmp_path)])
    assert len(_checks(stubbed)) == len(EXERCISES)
    assert _errors(stubbed) == [] and all(p.startswith("✗ ") for p in _printed(stubbed)), _printed(stubbed)
    assert _errors(solved) == [] and all(p.startswith("✓ ") and " min target for a" in p
                                         for p in _printed(solved)), (_errors(solved), _printed(solved))
    attempts = read_attempts(tmp_path)
    assert sorted(a["passed"] for a in attempts) == [False] * len(EXERCISES) + [True] * len(EXERCISES)
    assert all(a["reason"].startswith(f"{a['exercise']}: not written yet") for a in attempts if not a["passed"])


def test_write_all_writes_each_chapter_and_the_drills(tmp_path):
    paths = notebooks.write_all(tmp_path)
    assert [p.name for p in paths] == [f"{c}_exercises.ipynb" for c in CHAPTERS_WITH_EXERCISES] + ["drills.ipynb"]
    notebook = nbformat.read(paths[0], as_version=4)
    stubs = [cell.source for cell in notebook.cells if tagged(cell, EXERCISE_TAG)]
    assert stubs and all(source.rstrip().endswith("then run the check below\")") for source in stubs)


# ------------------------------------------------------------------------------------------ check itself
def _softmax(logits, axis=-1):
    shifted = np.exp(logits - logits.max(axis, keepdims=True))
    return shifted / shifted.sum(axis, keepdims=True)


def _overflowing_softmax(logits, axis=-1):
    return np.exp(logits) / np.exp(logits).sum(axis, keepdims=True)


def _unwritten_softmax(logits, axis=-1):
    raise NotImplementedError("write softmax, then run the check below")


def test_check_returns_the_learners_function_when_right_and_the_reference_otherwise(capsys):
    assert check("softmax", _softmax) is _softmax
    assert capsys.readouterr().out == "✓ softmax: all 5 cases match the reference\n"
    reference = exercises.BY_NAME["softmax"].reference
    with np.errstate(all="ignore"):
        assert check("softmax", _overflowing_softmax) is reference
    printed = capsys.readouterr().out
    assert printed.startswith("✗ softmax: case 2 of 5 (logits=array 3×5; fetch them with exercises.case(\"softmax\", "
                              "2)): first wrong at index (1, 1): got nan, expected 1")
    assert "looks like the maximum is not subtracted" in printed and "use the reference softmax instead" in printed
    assert check("softmax", _unwritten_softmax) is reference
    assert capsys.readouterr().out.startswith("✗ softmax: not written yet (write softmax, then run the check below)")


def test_check_refuses_bad_calls():
    with pytest.raises(KeyError, match="no exercise"):
        check("conv3d", print)
    with pytest.raises(TypeError, match="function itself"):
        check("softmax", "softmax")
    with pytest.raises(TypeError, match="perf_counter"):
        check("softmax", _softmax, started="now")


def test_a_learners_exception_names_its_case_and_is_chained():
    def nms(boxes, scores, iou_threshold):
        return boxes[100]
    with pytest.raises(ExerciseFailure, match=r"nms: case 1 of 6 \(boxes=tensor 30×4, scores=tensor 30, "
                                              r"iou_threshold=0.5; fetch them with exercises.case\(\"nms\", 1\)\): "
                                              r"your function raised IndexError: index 100") as failure:
        verify("nms", nms)
    assert isinstance(failure.value, AssertionError) and isinstance(failure.value.__cause__, IndexError)


def test_case_returns_fresh_inputs_and_refuses_a_number_out_of_range():
    boxes, scores, threshold = exercises.case("nms", 2)
    assert boxes.shape == (30, 4) and threshold == 0.3
    boxes.zero_()                                                   # a learner's function may change its inputs
    assert exercises.case("nms", 2)[0].abs().sum() > 0
    for number in (0, 7, "2"):
        with pytest.raises(ValueError, match="nms has cases 1 to 6"):
            exercises.case("nms", number)


def _official_solutions(tmp_path):
    """Every chapter's exercise solutions, loaded from a file (so their source is readable, as in a chapter)."""
    sources = [source for chapter in CHAPTERS_WITH_EXERCISES for source in notebooks.solutions(chapter).values()]
    path = tmp_path / "solutions.py"
    path.write_text(notebooks.DRILL_IMPORTS + "\n\n\n" + "\n\n\n".join(sources) + "\n")
    return runpy.run_path(str(path))


def test_the_official_solutions_pass_and_a_broken_one_fails_loudly(tmp_path, monkeypatch, capsys):
    solutions = _official_solutions(tmp_path)
    for exercise in EXERCISES:
        assert check(exercise.name, solutions[exercise.name]) is solutions[exercise.name]
    assert capsys.readouterr().out.count("✓") == len(EXERCISES)
    # The chapter's own solution is checked strictly: against a wrong reference it raises instead of falling back.
    wrong = dataclasses.replace(exercises.BY_NAME["softmax"], reference=lambda logits, axis=-1: logits)
    monkeypatch.setitem(exercises.BY_NAME, "softmax", wrong)
    with pytest.raises(ExerciseFailure, match="softmax: case 1 of 5"):
        check("softmax", solutions["softmax"])
    assert check("softmax", _softmax) is wrong.reference             # a learner's function falls back


def test_a_timed_check_records_the_attempt_and_an_untimed_one_does_not(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_EXERCISES_DIR", str(tmp_path))
    check("softmax", _softmax)
    assert read_attempts(tmp_path) == []                            # a chapter's self-check writes nothing
    check("softmax", _softmax, time.perf_counter())
    with np.errstate(all="ignore"):
        check("softmax", _overflowing_softmax, time.perf_counter())
    passed, failed = read_attempts(tmp_path)
    assert passed["passed"] and passed["reason"] == "" and passed["difficulty"] == "easy"
    assert not failed["passed"] and failed["reason"].startswith("softmax: case 2 of 5")
    assert "min, within the 5 min target for an easy exercise" in capsys.readouterr().out


# ------------------------------------------------------------------------------- the learner's own code
def _library_nms(boxes, scores, iou_threshold):
    return torchvision.ops.nms(boxes, scores, iou_threshold)


def _aliased_nms(boxes, scores, iou_threshold):
    return aliased_library_nms(boxes, scores, iou_threshold)


def _method_softmax(logits, axis=-1):
    return torch.from_numpy(logits).softmax(axis).numpy()


def _imported_box_iou(boxes1, boxes2):
    from torchvision.ops import box_iou
    return box_iou(boxes1, boxes2)


def _cross_entropy_with_own_helper(logits, labels):
    log_probs = log_softmax(logits)                                 # the learner's own helper, not the library's
    return -log_probs[np.arange(len(labels)), labels].mean()


def log_softmax(logits):
    shifted = logits - logits.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


@pytest.mark.parametrize("name, function, called", [
    ("nms", _library_nms, "torchvision.ops.nms"),
    ("nms", _aliased_nms, "aliased_library_nms (= torchvision.ops.boxes.nms)"),
    ("softmax", _method_softmax, ".softmax"),                        # a method of a computed value
    ("box_iou", _imported_box_iou, "torchvision.ops.box_iou"),
])
def test_check_refuses_a_solution_that_calls_the_library(name, function, called, capsys):
    assert called in exercises.forbidden_uses(name, function)
    assert check(name, function) is exercises.BY_NAME[name].reference
    printed = capsys.readouterr().out
    assert printed.startswith(f"✗ {name}: your function calls ") and "the library's version" in printed


def test_forbidden_names_are_found_without_source_and_spare_the_learners_own_helpers():
    namespace = {"torch": torch}
    exec(compile("def conv2d(x, weight, bias=None, stride=1, padding=0):\n"
                 "    return torch.nn.functional.conv2d(x, weight, bias, stride, padding)", "<no file>", "exec"),
         namespace)
    assert exercises.forbidden_uses("conv2d", namespace["conv2d"]) == ["conv2d"]
    assert exercises.forbidden_uses("cross_entropy", _cross_entropy_with_own_helper) == []
    verify("cross_entropy", _cross_entropy_with_own_helper)
