"""The hand-written classics as exercises: what each is checked against, and `check`, the self-check a chapter runs.

The exercises live in the chapters (first in Chapter 1a, 01a_convolution_by_hand). Near where a chapter teaches a
classic (conv2d, softmax, attention, NMS, the PAF score …) its jupytext source holds the official solution in a cell
tagged ``exercise`` — one short, self-contained function whose docstring ends with a ``Hints:`` paragraph — followed
by a cell tagged ``self-check`` that rebinds the name to what `check` returns::

    # %% tags=["exercise"]
    def softmax(logits, axis=-1):
        '''Softmax in NumPy, stable for huge logits.

        Hints: subtract the maximum along the axis before np.exp.
        '''
        ...the solution...


    # %% tags=["self-check"]
    softmax = exercises.check("softmax", softmax)

`EXERCISES` holds the rest of each exercise, one module a chapter (``chapter_01a.py`` …, found by name) — its
chapter, difficulty, the reference it is checked against (PyTorch, torchvision or the course's own tested code), the
cases (chosen so that the classic wrong versions fail: strides that change the rounding, non-square inputs, a batch
of one, empty inputs, ties, huge values), the known mistakes the check names when a learner's output matches one,
and the library functions a solution may not call.

`check` prints ✓ and returns the learner's function, or prints ✗ with the reason — the first case that differs, its
named inputs, the first wrong position, the mistake it looks like, how to fetch the inputs with `case` — and returns
the reference, so Run All in an exercise notebook goes on past an unsolved or wrong exercise. A chapter's own
solution (a function whose source is the chapter's exercise cell, as when nbval or `make verify` runs the chapter)
is strict instead: a failure raises `ExerciseFailure`, so a broken official solution fails the chapter. `verify`
is the comparison alone: it raises `ExerciseFailure` (an AssertionError) or returns. The exercise and drill
notebooks are written by `make exercises` (`utils.course.exercise_notebooks`); nothing here imports notebook tooling.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import numbers
import os
import pkgutil
import textwrap
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .base import DIFFICULTIES, Exercise, Mistake

EXERCISE_TAG, CHECK_TAG = "exercise", "self-check"
CHAPTERS = Path(__file__).resolve().parents[2] / "chapters"
RTOL, ATOL = 1e-5, 1e-6                           # what "matches the reference" means, value by value

__all__ = ["CHAPTERS_WITH_EXERCISES", "CHECK_TAG", "DIFFICULTIES", "EXERCISES", "EXERCISE_TAG", "BY_NAME", "Exercise",
           "ExerciseFailure", "Mistake", "case", "check", "forbidden_uses", "verify"]


class ExerciseFailure(AssertionError):
    """A function does not do what its exercise asks: the message names the case, its inputs and the first
    difference (and the known mistake it looks like)."""


EXERCISES: list[Exercise] = [exercise for module in sorted(m.name for m in pkgutil.iter_modules(__path__))
                             if module.startswith("chapter_")
                             for exercise in importlib.import_module(f"{__name__}.{module}").EXERCISES]
BY_NAME = {e.name: e for e in EXERCISES}
CHAPTERS_WITH_EXERCISES = list(dict.fromkeys(e.chapter for e in EXERCISES))


def _exercise(name) -> Exercise:
    if name not in BY_NAME:
        raise KeyError(f"no exercise named {name!r}; choose one of {sorted(BY_NAME)}")
    return BY_NAME[name]


def case(name: str, number: int) -> tuple:
    """The arguments of case ``number`` (counted from 1, as the check's messages count) of exercise ``name``, fresh:
    call your function on them to debug, e.g. ``nms(*exercises.case("nms", 2))``."""
    cases = _exercise(name).cases()
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= len(cases):
        raise ValueError(f"{name} has cases 1 to {len(cases)}, got {number!r}")
    return cases[number - 1]


# ------------------------------------------------------------------------------ the learner's own code
def _names_in_code(function) -> tuple[set[str], bool]:
    """What the function's code refers to, and whether that was read from its source. From the source: every
    attribute chain as a dotted name ("torchvision.ops.nms", ".softmax" for a method of a computed value), every
    bare name, every imported name ("torchvision.ops.nms" for ``from torchvision.ops import nms``). Without a
    source (a function built by exec, a lambda cut out of a longer line): its code objects' names, undotted."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        code_objects, names = [function.__code__], set()
        while code_objects:
            code = code_objects.pop()
            names |= set(code.co_names)
            code_objects += [const for const in code.co_consts if inspect.iscode(const)]
        return names, False
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts, base = [node.attr], node.value
            while isinstance(base, ast.Attribute):
                parts.append(base.attr)
                base = base.value
            parts.append(base.id if isinstance(base, ast.Name) else "")
            names.add(".".join(reversed(parts)))
        elif isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            prefix = f"{node.module}." if isinstance(node, ast.ImportFrom) and node.module else ""
            names |= {prefix + alias.name for alias in node.names}
    return names, True


def _matches(used: str, entry: str) -> bool:
    """Whether the dotted name ``used`` ends with the dotted name ``entry``: "torchvision.ops.nms" ends with "nms"
    and with "ops.nms", "ops.batched_nms" does not end with "nms"."""
    return used == entry or used.endswith("." + entry)


def forbidden_uses(name: str, function: Callable) -> list[str]:
    """The library functions that ``function`` uses and exercise ``name`` forbids (its ``forbidden`` names), as
    written in its code, or as what a bare name it uses is bound to when that is another module's function (an
    alias such as ``from torchvision.ops import nms as tv_nms``); [] when none. Read from the source, a bare name
    alone never matches: the learner's own helper may share a library function's name. Without a source only the
    code's undotted names are known, so an entry matches when all its parts are among them."""
    exercise = _exercise(name)
    if not callable(function) or not hasattr(function, "__code__"):
        raise TypeError(f"pass a Python function, got {type(function).__name__}")
    names, from_source = _names_in_code(function)
    if from_source:
        found = {used for used in names
                 if "." in used and any(_matches(used, entry) for entry in exercise.forbidden)}
    else:
        found = {entry for entry in exercise.forbidden if set(entry.split(".")) <= names}
    for used in names - {function.__name__}:
        value = function.__globals__.get(used)
        module = getattr(value, "__module__", None)
        if callable(value) and module not in (None, function.__module__) and hasattr(value, "__name__"):
            bound = f"{module}.{value.__name__}"
            found |= {f"{used} (= {bound})" for entry in exercise.forbidden if _matches(bound, entry)}
    return sorted(found)


# ------------------------------------------------------------------------------------------ the comparison
def _as_array(value):
    if isinstance(value, (tuple, list)):
        return [_as_array(v) for v in value]
    if torch.is_tensor(value):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=float)


def _kind(value) -> str | None:
    """What a returned value is, in words, when it is not numbers (None: a tensor, an array or a number)."""
    if value is None:
        return "None"
    if isinstance(value, (str, bytes)):
        return f"a string ({value[:40]!r})"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} values"
    if isinstance(value, list):
        try:
            np.asarray([_as_array(v) for v in value], dtype=float)
        except (TypeError, ValueError):
            return "a ragged list (items of different shapes or kinds)"
        return f"a list of {len(value)} items"
    if torch.is_tensor(value) or isinstance(value, (np.ndarray, np.generic, numbers.Number)):
        return None
    return f"a {type(value).__name__}"


def _not_comparable(value, expected) -> str | None:
    """Why the learner's return value cannot be compared with the reference's (an array, or a list of arrays when
    the reference returns several values), in words; None when it can."""
    if value is None:
        return "your function returned None: did you forget `return`?"
    if isinstance(expected, list):
        if not isinstance(value, (tuple, list)) or len(value) != len(expected):
            what = _kind(value) or "one array"
            return f"your function returned {what}; expected {len(expected)} values (return them as a tuple)"
        for i, item in enumerate(value, 1):
            if _kind(item) is not None:
                return f"value {i} of what your function returned is {_kind(item)}; expected numbers"
        return None
    if _kind(value) is not None:
        return f"your function returned {_kind(value)}; expected one array of shape {expected.shape}"
    return None


def _show(value) -> str:
    """An argument in a message: its shape for a tensor or an array, its value for anything small."""
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        kind = "tensor" if torch.is_tensor(value) else "array"
        if value.ndim == 0:
            return f"{kind}({value.item():.6g})"
        if value.ndim == 1 and 0 < len(value) <= 3:
            return f"{kind}([{', '.join(f'{v:.6g}' for v in value.tolist())}])"
        return f"{kind} {'×'.join(map(str, value.shape))}"
    return repr(value)


def _named(args, *functions) -> str:
    """The case's arguments named as the first of ``functions`` whose signature takes them names them."""
    for function in functions:
        try:
            signature = inspect.signature(function)
            bound = signature.bind(*args)
        except (TypeError, ValueError):
            continue
        if any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values()):   # (*args) names nothing
            continue
        return ", ".join(f"{name}={_show(value)}" for name, value in bound.arguments.items())
    return ", ".join(_show(value) for value in args)


def _differences(got, expected) -> str | None:
    """Where the learner's values (``got``, a list of arrays when several) first differ from the reference's, in
    words; None when they match."""
    several = isinstance(expected, list)
    for number, (g, e) in enumerate(zip(got if several else [got], expected if several else [expected]), 1):
        which = f"value {number} of {len(expected)}: " if several else ""
        if g.shape != e.shape:
            shapes = f"{which}shape {g.shape}, expected {e.shape}"
            if g.ndim == e.ndim == 1:       # a list of indices: where it first goes wrong
                common = min(len(g), len(e))
                wrong = np.flatnonzero(~np.isclose(g[:common], e[:common], rtol=RTOL, atol=ATOL, equal_nan=True))
                first = int(wrong[0]) if len(wrong) else common
                got = f"{g[first]:.6g}" if first < len(g) else "nothing"
                return f"{shapes}; first wrong at index ({first},): got {got}, expected " + (
                    f"{e[first]:.6g}" if first < len(e) else "nothing")
            return shapes
        close = np.isclose(g, e, rtol=RTOL, atol=ATOL, equal_nan=True)
        if close.all():
            continue
        if e.ndim == 0:
            return f"{which}got {g.item():.6g}, expected {e.item():.6g}"
        first = tuple(int(i) for i in np.argwhere(~close)[0])
        return (f"{which}first wrong at index {first}: got {g[first]:.6g}, expected {e[first]:.6g} "
                f"({int((~close).sum())} of {close.size} values differ)")
    return None


def _same(got, other) -> bool:
    return _not_comparable(got, other) is None and _differences(_as_array(got), other) is None


def _looks_like(exercise: Exercise, number: int, returned) -> list[str]:
    """What the known mistakes that give exactly the learner's output on case ``number`` say."""
    said = []
    for mistake in exercise.mistakes:
        try:
            with np.errstate(all="ignore"):
                wrong = _as_array(mistake.wrong(*case(exercise.name, number)))
        except Exception:   # noqa: BLE001 - a mistake that cannot run on this case is simply not this one
            continue
        if _same(returned, wrong):
            said.append(mistake.says)
    return said


def verify(name: str, function: Callable) -> None:
    """Compare ``function`` with exercise ``name``'s reference on every case; raise `ExerciseFailure` naming the
    first case that differs — its named inputs, the first wrong index, the known mistake it looks like, how to
    fetch its inputs — or refusing a function that calls the library's version; return None when all match."""
    exercise = _exercise(name)
    if not callable(function):
        raise TypeError(f"pass your function itself, e.g. check({name!r}, {name}), not {type(function).__name__}")
    used = forbidden_uses(name, function) if hasattr(function, "__code__") else []
    if used:
        raise ExerciseFailure(f"{name}: your function calls {', '.join(used)}, the library's version of what this "
                              f"exercise asks you to write; write it with tensor/array operations (see the hints)")
    cases = exercise.cases()
    for number, args in enumerate(cases, 1):
        where = (f"{name}: case {number} of {len(cases)} ({_named(args, function, exercise.reference)}; "
                 f'fetch them with exercises.case("{name}", {number}))')
        expected = _as_array(exercise.reference(*args))
        try:
            with np.errstate(all="ignore"):
                returned = function(*case(name, number))     # fresh inputs: the function may change them in place
        except NotImplementedError as error:
            raise ExerciseFailure(f"{name}: not written yet ({error})") from error
        except Exception as error:
            raise ExerciseFailure(f"{where}: your function raised {type(error).__name__}: {error}") from error
        problem = _not_comparable(returned, expected) or _differences(_as_array(returned), expected)
        if problem:
            mistakes = _looks_like(exercise, number, returned)
            hint = "".join(f"; looks like {said}" for said in mistakes)
            raise ExerciseFailure(f"{where}: {problem}{hint}")


def _is_official_solution(exercise: Exercise, function: Callable) -> bool:
    """Whether ``function`` is the chapter's own solution: its source is in the chapter's jupytext file (the chapter
    run by nbval or `make verify`, or the solved drills), where a failure must fail loudly."""
    try:
        source = inspect.getsource(function).strip()
    except (OSError, TypeError):
        return False
    chapter = CHAPTERS / f"{exercise.chapter}.py"
    return chapter.exists() and source.startswith("def ") and source in chapter.read_text(encoding="utf-8")


def check(name: str, function: Callable, started: float | None = None) -> Callable:
    """The self-check: compare ``function`` (the learner's) with exercise ``name``'s reference on every case
    (`verify`). Print ✓ and return ``function`` when all match; otherwise print ✗ with the reason and return the
    reference, so the cells after the self-check keep working (``nms = exercises.check("nms", nms)``).

    The chapter's own solution (its source is the chapter's exercise cell: nbval, `make verify`, the solved drills)
    is checked strictly: a failure raises `ExerciseFailure` instead, so a broken official solution fails the run.
    ``started`` (a drill's ``time.perf_counter()`` at its timer cell) times the attempt: the ✓ says the minutes
    against the exercise's target, and the attempt is recorded with `utils.exercise_records.record_attempt`. In a
    workshop (``$COURSE_LEARNER`` set by the hub) every attempt is recorded, untimed ones too, for the progress board
    — never the chapter's own solution, so running a chapter does not show its exercises as passed."""
    exercise = _exercise(name)
    if not callable(function):
        raise TypeError(f"pass your function itself, e.g. check({name!r}, {name}), not {type(function).__name__}")
    if started is not None and (isinstance(started, bool) or not isinstance(started, numbers.Real)):
        raise TypeError(f"started must be a time.perf_counter() reading (or None), got {started!r}")
    official = _is_official_solution(exercise, function)
    try:
        verify(name, function)
        reason = ""
    except ExerciseFailure as failure:
        if official:
            raise
        reason = str(failure)
    timing = ""
    if started is not None or (os.environ.get("COURSE_LEARNER") and not official):
        from .. import exercise_records     # here: a chapter run outside a workshop writes no record

        seconds = None if started is None else max(0.0, time.perf_counter() - started)
        exercise_records.record_attempt(name, seconds, not reason, reason, chapter=exercise.chapter,
                                        difficulty=exercise.difficulty)
        if seconds is not None:
            timing = f" {exercise_records.against_target(exercise.difficulty, seconds)}"
    if reason:
        print(f"✗ {reason}\n  (the cells below use the reference {name} instead)")
        return exercise.reference
    print(f"✓ {name}: all {len(exercise.cases())} cases match the reference{timing}")
    return function
