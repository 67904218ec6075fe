"""`make exercises` (utils/exercises.py): the generated notebooks run, only the self-checks fail on the stubs (with
NotImplementedError), and every self-check passes on the official solutions."""

import nbformat
import pytest
from nbclient import NotebookClient

from utils.exercises import EXERCISES, check, write_all


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("exercises"))


def _run(path, allow_errors):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=allow_errors,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebook


def _errors(notebook):
    return [(i, output["ename"]) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.get("output_type") == "error"]


def test_every_exercise_is_in_a_notebook_and_the_drills(notebooks):
    names = {p.name for p in notebooks}
    assert "drills-exercises.ipynb" in names and "drills-solutions.ipynb" in names
    chapters = {e.chapter for e in EXERCISES if e.chapter != "drills"}
    assert all(f"{c}-exercises.ipynb" in names and f"{c}-solutions.ipynb" in names for c in chapters)
    drills = nbformat.read(next(p for p in notebooks if p.name == "drills-exercises.ipynb"), as_version=4)
    stubs = [c.source for c in drills.cells if "exercise" in c.metadata.get("tags", [])]
    assert len(stubs) == len(EXERCISES) and all("raise NotImplementedError" in s for s in stubs)


# The drills hold every exercise; one chapter's pair shows the per-chapter notebooks run the same way (each
# notebook costs a kernel start, and CI has two cores).
EXECUTED = ("drills", "01a_convolution_by_hand")


def _executed(notebooks, suffix):
    return [p for p in notebooks if p.name.endswith(suffix) and p.name.startswith(EXECUTED)]


def test_exercise_notebooks_fail_only_in_their_self_checks_with_not_implemented(notebooks):
    for path in _executed(notebooks, "-exercises.ipynb"):
        notebook = _run(path, allow_errors=True)
        checks = [i for i, cell in enumerate(notebook.cells) if "self-check" in cell.metadata.get("tags", [])]
        assert _errors(notebook) == [(i, "NotImplementedError") for i in checks], f"{path.name}: {_errors(notebook)}"


def test_solution_notebooks_pass_every_self_check(notebooks):
    for path in _executed(notebooks, "-solutions.ipynb"):
        notebook = _run(path, allow_errors=False)
        printed = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
        tags = [c for c in notebook.cells if "self-check" in c.metadata.get("tags", [])]
        assert printed.count("✓") == len(tags), f"{path.name}: {printed}"


def test_check_names_the_first_mismatch_and_refuses_bad_calls():
    import numpy as np

    with pytest.raises(AssertionError, match="softmax, case 2"):
        check("softmax", lambda z, axis=-1: np.exp(z) / np.exp(z).sum(axis, keepdims=True))
    with pytest.raises(KeyError, match="no exercise"):
        check("conv3d", print)
    with pytest.raises(TypeError, match="function itself"):
        check("softmax", "softmax")
