"""`make exercises`: each chapter with exercises as an exercise notebook (its solutions stubbed) and a timed drill
notebook of every classic, written to chapters/outputs/exercises/ (git-ignored).

    python -m utils.course.exercise_notebooks   # <chapter>_exercises.ipynb: the chapter, each exercise cell stubbed
                                                # drills.ipynb: every stub with its check and a timer, easiest first

The exercises, their references and `check` are in `utils.exercises`. A stub is made from the solution by `ast`: the
signature and the docstring kept, the body replaced by ``raise NotImplementedError``. `tests/test_exercises.py`
executes the exercise notebooks up to their last self-check: only the self-checks fail, each with
NotImplementedError, while the solved chapter and drills pass.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import jupytext
import nbformat

from ..exercises import BY_NAME, CHAPTERS_WITH_EXERCISES, CHECK_TAG, DIFFICULTIES, EXERCISE_TAG, EXERCISES

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = ROOT / "chapters"
OUTPUT = CHAPTERS / "outputs" / "exercises"
# What the solutions may use besides builtins, under these names (each chapter imports what its own solutions use).
DRILL_IMPORTS = "import math\nimport time\n\nimport numpy as np\nimport torch\nimport torch.nn.functional as F"


def tagged(cell, tag: str) -> bool:
    """Whether a notebook cell carries the jupytext cell tag ``tag`` (EXERCISE_TAG or CHECK_TAG)."""
    return cell.cell_type == "code" and tag in cell.metadata.get("tags", [])


def solution_function(source: str) -> ast.FunctionDef:
    """The one function an exercise cell defines; ValueError unless the cell is exactly one function whose
    docstring ends with a ``Hints:`` paragraph (what the stub keeps for the learner)."""
    try:
        body = ast.parse(source).body
    except SyntaxError as error:
        raise ValueError(f"an exercise cell must be valid Python: {error}") from error
    if len(body) != 1 or not isinstance(body[0], ast.FunctionDef):
        raise ValueError(f"an exercise cell must define exactly one function and nothing else, got "
                         f"{[type(node).__name__ for node in body]}")
    function = body[0]
    docstring = ast.get_docstring(function) or ""
    if not docstring.split("\n\n")[-1].startswith("Hints:"):
        raise ValueError(f"{function.name}: the docstring's last paragraph must start with 'Hints:' (the stub "
                         f"keeps only the signature and the docstring)")
    if len(function.body) < 2:
        raise ValueError(f"{function.name}: the exercise cell holds the solution, but the function has no body "
                         f"after its docstring")
    return function


def stub(source: str) -> str:
    """The exercise version of a solution cell: its lines up to the end of the docstring (the signature, the
    docstring with its hints), then ``raise NotImplementedError``."""
    function = solution_function(source)
    docstring = function.body[0]
    kept = source.splitlines()[:docstring.end_lineno]
    indent = " " * docstring.col_offset
    return "\n".join(kept + [f'{indent}raise NotImplementedError("write {function.name}, then run the check below")'])


def chapter_notebook(chapter: str):
    """The chapter's notebook as its jupytext source defines it, tags included (the solved version)."""
    source = CHAPTERS / f"{chapter}.py"
    if not source.exists():
        raise FileNotFoundError(f"no chapter source {source.relative_to(ROOT)}; chapters with exercises: "
                                f"{CHAPTERS_WITH_EXERCISES}")
    return jupytext.read(source)


def solutions(chapter: str) -> dict[str, str]:
    """Exercise name → the source of its tagged solution cell, in the chapter's order."""
    found = {}
    for cell in chapter_notebook(chapter).cells:
        if tagged(cell, EXERCISE_TAG):
            name = solution_function(cell.source).name
            if name in found:
                raise ValueError(f"{chapter}: two exercise cells define {name}")
            found[name] = cell.source
    return found


def _header(chapter: str, names: list[str]) -> str:
    listed = ", ".join(f"`{name}` ({BY_NAME[name].difficulty})" for name in names)
    return (f"**Exercise version of `{chapter}`**, written by `make exercises` (rerunning it rewrites this file: "
            f"save your work under another name). {len(names)} cells are yours to write — {listed}: each keeps its "
            f"signature and a docstring with hints and raises `NotImplementedError`. Write the function, then run the "
            f"self-check below it: it prints ✓, or the first input where your function differs from the reference. "
            f"The solutions are in the chapter itself, `chapters/{chapter}.ipynb`.")


def exercise_notebook(chapter: str):
    """The whole chapter with every exercise cell replaced by its stub, under a header naming the exercises."""
    notebook = chapter_notebook(chapter)
    names = []
    for cell in notebook.cells:
        if tagged(cell, EXERCISE_TAG):
            names.append(solution_function(cell.source).name)
            cell.source = stub(cell.source)
    if not names:
        raise ValueError(f"{chapter} has no cell tagged {EXERCISE_TAG!r}")
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell(_header(chapter, names)))
    return notebook


DRILLS_HEADER = """# Interview drills: the classics, timed (easy ≈ 5 min, medium ≈ 10, hard ≈ 20)

For each exercise run the timer cell, write the function where it says `raise NotImplementedError`, then run the
check below it: it compares your function with the reference on several inputs and prints ✓ with the time you took,
or the first input where they differ. Each solution is in the chapter named in its heading. Written by
`make exercises` (rerunning it rewrites this file: save your work under another name)."""


def drills_notebook(stubbed: bool = True):
    """Every exercise, easiest first: a timer cell, the stub (``stubbed=False``: the solution, which the tests
    run) and its check."""
    cells = [nbformat.v4.new_markdown_cell(DRILLS_HEADER),
             nbformat.v4.new_code_cell(DRILL_IMPORTS + "\n\nfrom utils.exercises import check")]
    sources = {}
    for chapter in CHAPTERS_WITH_EXERCISES:
        sources.update(solutions(chapter))
    for exercise in sorted(EXERCISES, key=lambda e: DIFFICULTIES.index(e.difficulty)):
        if exercise.name not in sources:
            raise ValueError(f"{exercise.name} is registered for {exercise.chapter}, but no cell there is tagged "
                             f"{EXERCISE_TAG!r} and defines it")
        cells += [nbformat.v4.new_markdown_cell(f"## `{exercise.name}` — {exercise.difficulty} "
                                                f"(chapter {exercise.chapter.split('_')[0]})"),
                  nbformat.v4.new_code_cell(f"started_{exercise.name} = time.perf_counter()"),
                  nbformat.v4.new_code_cell(stub(sources[exercise.name]) if stubbed else sources[exercise.name],
                                            metadata={"tags": [EXERCISE_TAG]}),
                  nbformat.v4.new_code_cell(f'check("{exercise.name}", {exercise.name}, started_{exercise.name})',
                                            metadata={"tags": [CHECK_TAG]})]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    return notebook


def write_all(folder: Path = OUTPUT) -> list[Path]:
    """Write each chapter's exercise notebook and the drills under ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for chapter in CHAPTERS_WITH_EXERCISES:
        path = folder / f"{chapter}_exercises.ipynb"
        nbformat.write(exercise_notebook(chapter), path)
        written.append(path)
    nbformat.write(drills_notebook(), folder / "drills.ipynb")
    return written + [folder / "drills.ipynb"]


def main(argv: list[str] | None = None) -> int:
    if argv:
        raise SystemExit(f"python -m utils.course.exercise_notebooks takes no arguments, got {argv}")
    paths = write_all()
    print(f"{len(EXERCISES)} exercises → {len(paths)} notebooks in {OUTPUT.relative_to(ROOT)}: "
          + ", ".join(p.name for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
