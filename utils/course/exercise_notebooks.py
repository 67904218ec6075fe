"""`make exercises`: each chapter with exercises as an exercise notebook (its solutions stubbed) and a timed drill
notebook of every classic, written to the learner's exercise folder, chapters/exercises/ (git-ignored, spared by
`make clean`; ``$COURSE_EXERCISES_DIR`` moves it, see `utils.exercise_records`).

    python -m utils.course.exercise_notebooks   # <chapter>_exercises.ipynb: the chapter, each exercise cell stubbed
                                                # drills.ipynb: every stub with its check and a timer, easiest first,
                                                # each against its target, and the learner's record at the end

The exercises, their references and `check` are in `utils.exercises`. A stub is made from the solution by `ast`: the
signature and the docstring kept, the body replaced by ``raise NotImplementedError``. An unsolved or wrong exercise's
self-check prints ✗ with the reason and hands the reference on, so Run All reaches the end; `tests/test_exercises.py`
executes the exercise notebooks and the drills (no cell errors, every check ✗) and the solved drills (every check ✓).

Rerunning never overwrites the learner's work: each notebook carries in its metadata a hash of its cells as written.
A notebook on disk whose cells no longer match its hash was edited, so it is kept and the new version is written
beside it as ``<name>.new.ipynb`` (`write_notebook`); an unedited one is rewritten in place.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
from pathlib import Path

import jupytext
import nbformat

from ..exercise_records import TARGET_MINUTES, exercise_folder
from ..exercises import BY_NAME, CHAPTERS_WITH_EXERCISES, CHECK_TAG, DIFFICULTIES, EXERCISE_TAG, EXERCISES

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = ROOT / "chapters"
WRITTEN_MARK = "exercise_notebook"    # notebook metadata: {"cells_sha256": the hash of the cells as written}
FORMER_FOLDER = CHAPTERS / "outputs" / "exercises"   # where make exercises wrote before: make clean deletes it
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
    return (f"**Exercise version of `{chapter}`**, written by `make exercises` (rerunning it never overwrites your "
            f"edits: it writes its new version beside this file as `{chapter}_exercises.new.ipynb`). {len(names)} "
            f"cells are yours to write — {listed}: each keeps its signature and a docstring with hints and raises "
            f"`NotImplementedError`. Write the function, then run the self-check below it: it prints ✓, or ✗ with the "
            f"first input where your function differs from the reference (and the mistake it looks like); until it "
            f"passes, the cells after it use the reference, so Run All still reaches the end. "
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


DRILLS_HEADER = f"""# Interview drills: the classics, against the clock (easy ≈ {TARGET_MINUTES['easy']} min, \
medium ≈ {TARGET_MINUTES['medium']}, hard ≈ {TARGET_MINUTES['hard']})

For each exercise run the timer cell, write the function where it says `raise NotImplementedError`, then run the
check below it: it compares your function with the reference on several inputs and prints ✓ with the time you took
against the heading's target, or the first input where they differ. Every check is recorded in `attempts.jsonl`
beside this notebook; the last cell shows your record — attempts, best time, target, within target. Each solution
is in the chapter named in its heading. Written by `make exercises` (rerunning it never overwrites your edits: it
writes its new version beside this file as `drills.new.ipynb`)."""
RECORD_CELL = "from utils.exercise_records import read_attempts, summary_table\n\nprint(summary_table(read_attempts()))"


def drills_notebook(stubbed: bool = True):
    """Every exercise, easiest first, under a heading with its target time: a timer cell, the stub
    (``stubbed=False``: the solution, which the tests run) and its check; last, the learner's record."""
    cells = [nbformat.v4.new_markdown_cell(DRILLS_HEADER),
             nbformat.v4.new_code_cell(DRILL_IMPORTS + "\n\nfrom utils import exercises  # exercises.case(name, n): a failing case's inputs\nfrom utils.exercises import check")]
    sources = {}
    for chapter in CHAPTERS_WITH_EXERCISES:
        sources.update(solutions(chapter))
    for exercise in sorted(EXERCISES, key=lambda e: DIFFICULTIES.index(e.difficulty)):
        if exercise.name not in sources:
            raise ValueError(f"{exercise.name} is registered for {exercise.chapter}, but no cell there is tagged "
                             f"{EXERCISE_TAG!r} and defines it")
        cells += [nbformat.v4.new_markdown_cell(f"## `{exercise.name}` — {exercise.difficulty}, target ≈ "
                                                f"{TARGET_MINUTES[exercise.difficulty]} min "
                                                f"(chapter {exercise.chapter.split('_')[0]})"),
                  nbformat.v4.new_code_cell(f"started_{exercise.name} = time.perf_counter()"),
                  nbformat.v4.new_code_cell(stub(sources[exercise.name]) if stubbed else sources[exercise.name],
                                            metadata={"tags": [EXERCISE_TAG]}),
                  nbformat.v4.new_code_cell(f'check("{exercise.name}", {exercise.name}, started_{exercise.name})',
                                            metadata={"tags": [CHECK_TAG]})]
    cells += [nbformat.v4.new_markdown_cell("## Your record"), nbformat.v4.new_code_cell(RECORD_CELL)]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    return notebook


def cells_hash(notebook) -> str:
    """A hash of what the learner edits: each cell's type and source (not outputs, nor the metadata Jupyter adds)."""
    cells = [[cell.cell_type, cell.source] for cell in notebook.cells]
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode("utf-8")).hexdigest()


def edited(path: Path) -> bool:
    """Whether the notebook at ``path`` differs from what `make exercises` wrote there. One without the mark, or
    that cannot be read as a notebook, counts as edited: it is not ours to overwrite."""
    try:
        on_disk = nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return True
    return on_disk.metadata.get(WRITTEN_MARK, {}).get("cells_sha256") != cells_hash(on_disk)


def write_notebook(notebook, path: Path) -> Path:
    """Write ``notebook`` to ``path``, marked with its cells' hash, unless the learner edited the notebook there: then
    keep theirs, write the new version beside it (``<name>.new.ipynb``, or ``.new-2`` … if that was edited too), say
    so, and return where it went."""
    if not isinstance(notebook, nbformat.NotebookNode):
        raise TypeError(f"write_notebook takes a notebook (nbformat), got {type(notebook).__name__}")
    if not isinstance(path, Path) or path.suffix != ".ipynb":
        raise ValueError(f"write_notebook writes to an .ipynb Path, got {path!r}")
    notebook.metadata[WRITTEN_MARK] = {"cells_sha256": cells_hash(notebook)}
    target, number = path, 1
    while target.exists() and edited(target):
        target = path.with_name(f"{path.stem}.new{'' if number == 1 else f'-{number}'}.ipynb")
        number += 1
    nbformat.write(notebook, target)
    if target != path:
        print(f"kept your edited {_shown(path)}; the new version is {_shown(target)} beside it")
    return target


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def write_all(folder: Path | None = None) -> list[Path]:
    """Write each chapter's exercise notebook and the drills under ``folder`` (default: the learner's exercise
    folder), never over the learner's edits (`write_notebook`); return where each went."""
    folder = exercise_folder() if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [write_notebook(exercise_notebook(chapter), folder / f"{chapter}_exercises.ipynb")
               for chapter in CHAPTERS_WITH_EXERCISES]
    return written + [write_notebook(drills_notebook(), folder / "drills.ipynb")]


def main(argv: list[str] | None = None) -> int:
    if argv:
        raise SystemExit(f"python -m utils.course.exercise_notebooks takes no arguments, got {argv}")
    paths = write_all()
    print(f"{len(EXERCISES)} exercises → {len(paths)} notebooks in {_shown(exercise_folder())}: "
          + ", ".join(p.name for p in paths))
    if FORMER_FOLDER.exists():
        print(f"Your earlier exercise notebooks are in {_shown(FORMER_FOLDER)}, which `make clean` deletes: move "
              f"the ones you worked on to {_shown(exercise_folder())}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
