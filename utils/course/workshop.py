"""The workshop progress board (issue 27): the room as a table, learner × exercise → passed (how long it took),
stuck on case N (why), or not tried — read from every learner's attempt record under a workshop root.

The workshop root holds one folder per learner, named after them: that learner's exercise folder
(``$COURSE_EXERCISES_DIR`` in their server, as the hub sets it — `utils.course.hub`), where each self-check appends
to ``attempts.jsonl`` (`utils.exercise_records`). The instructor reads the folders; learners cannot read each other's.

    python -m utils.course.workshop ROOT                 # make workshop-progress ROOT=…: the table, and
                                                         # ROOT/progress.html, a page that reloads itself
    python -m utils.course.workshop ROOT --watch 15      # rewrite the page every 15 s until Ctrl-C
    progress_board(ROOT)                                 # in a notebook: displays as the HTML table

Nothing a learner writes can break the board: a record that is not a plain file, cannot be opened, is too large, or
holds lines that are not version-1 attempts (torn, hand-edited, an unknown exercise) marks that learner's row as
damaged, says what is wrong, and the board shows what could still be read.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import html
import os
import re
import stat
import sys
import time
from pathlib import Path

from ..exercise_records import ATTEMPTS_FILE, parse_attempts

MAX_RECORD_BYTES = 2 * 1024 * 1024   # a record this long is thousands of attempts: read only its end, so it stays fast
PAGE_NAME = "progress.html"
CASE = re.compile(r": case (\d+) of (\d+) \(")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One learner's standing on one exercise: ``state`` is "passed", "stuck" or "not tried"; ``text`` the short
    form the table shows, ``detail`` the longer one (the failing case's reason) a tooltip shows."""
    state: str
    text: str
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class LearnerRow:
    learner: str
    cells: dict[str, Cell]
    damage: list[str]           # what is wrong with the record, [] when nothing


@dataclasses.dataclass(frozen=True)
class Board:
    """The room at ``read_at``: one row per learner folder under ``root``, one column per exercise."""
    root: Path
    exercises: list[str]
    rows: list[LearnerRow]
    read_at: datetime.datetime

    def _repr_html_(self) -> str:                # what a notebook displays
        return board_html(self)

    def __str__(self) -> str:
        return board_text(self)


# ------------------------------------------------------------------------------------------------ reading
def read_record(folder: Path) -> tuple[list[dict], list[str]]:
    """The attempts in ``folder``'s record and what is wrong with it, in words; ([], []) when nothing is recorded.
    Opened without following a link and without blocking (a learner's folder may hold a link or a FIFO there)."""
    path = folder / ATTEMPTS_FILE
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return [], []
    except OSError as error:
        return [], [f"{ATTEMPTS_FILE} cannot be opened ({error.strerror or type(error).__name__})"]
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        return [], [f"{ATTEMPTS_FILE} is not a plain file"]
    with os.fdopen(descriptor, "rb") as file:
        damage = []
        if info.st_size > MAX_RECORD_BYTES:
            file.seek(info.st_size - MAX_RECORD_BYTES)
            damage.append(f"{ATTEMPTS_FILE} holds {info.st_size:,} bytes: only its last {MAX_RECORD_BYTES:,} read")
        text = file.read(MAX_RECORD_BYTES).decode("utf-8", errors="replace")
    if damage:
        text = text.partition("\n")[2]          # the first line read is cut in the middle: not the learner's damage
    attempts, problems = parse_attempts(text)
    damage += [f"line {number}: {problem}" for number, problem in problems]
    return attempts, damage


def learner_folders(root: Path) -> list[Path]:
    """The learner folders under ``root``, by name: its sub-folders (not links, not hidden)."""
    if not root.is_dir():
        raise FileNotFoundError(f"no workshop root {root}: pass the folder holding one folder per learner "
                                f"(make workshop-progress ROOT=…)")
    return sorted(Path(entry.path) for entry in os.scandir(root)
                  if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."))


# ------------------------------------------------------------------------------------------------ judging
def _when(attempt: dict) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(attempt["time"])
    except ValueError:
        return None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _took(tried: list[dict], first_pass: dict) -> str:
    """How long the exercise took: the fastest timed pass (a drill's timer), else from the first real attempt to
    the first pass by the clock; "first try" when the first attempt passed untimed."""
    timed = [a["seconds"] for a in tried if a["passed"] and a["seconds"] is not None]
    if timed:
        return _minutes(min(timed))
    if first_pass is tried[0]:
        return "first try"
    start, end = _when(tried[0]), _when(first_pass)
    if start is None or end is None or end < start:
        return f"{tried.index(first_pass) + 1} tries"
    return f"{_minutes((end - start).total_seconds())}, {tried.index(first_pass) + 1} tries"


def exercise_cell(name: str, attempts: list[dict]) -> Cell:
    """A learner's standing on exercise ``name`` from their attempts at it, oldest first. Running a check on the
    untouched stub ("not written yet", as Run All does) is not trying."""
    tried = [a for a in attempts if not a["reason"].startswith(f"{name}: not written yet")]
    if not tried:
        return Cell("not tried", "·")
    first_pass = next((a for a in tried if a["passed"]), None)
    if first_pass is not None:
        return Cell("passed", f"✓ {_took(tried, first_pass)}")
    reason = tried[-1]["reason"]
    case = CASE.search(reason)
    where = f"case {case.group(1)}/{case.group(2)}" if case else "stuck"
    return Cell("stuck", f"✗ {where} ({len(tried)}×)", reason)


def learner_row(folder: Path, exercises: list[str]) -> LearnerRow:
    attempts, damage = read_record(folder)
    unknown = sorted({a["exercise"] for a in attempts} - set(exercises))
    if unknown:
        damage.append(f"attempts at exercises the course does not have: {', '.join(unknown)[:200]}")
    cells = {name: exercise_cell(name, [a for a in attempts if a["exercise"] == name]) for name in exercises}
    return LearnerRow(folder.name, cells, damage)


def course_exercises() -> list[str]:
    """Every exercise's name, in the course's order (chapter by chapter)."""
    from ..exercises import EXERCISES      # here: the registry imports torch, which reading a board does not need

    return [exercise.name for exercise in EXERCISES]


def progress_board(root: Path | str, exercises: list[str] | None = None) -> Board:
    """The board of every learner folder under ``root``, for ``exercises`` (default: every exercise of the course).
    In a notebook the returned `Board` displays as the HTML table: run the cell again to refresh it."""
    if not isinstance(root, (str, Path)):
        raise TypeError(f"root must be the workshop root's path, got {type(root).__name__}")
    root = Path(root)
    names = course_exercises() if exercises is None else list(exercises)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"exercises must be a non-empty list of exercise names, got {exercises!r}")
    rows = [learner_row(folder, names) for folder in learner_folders(root)]
    return Board(root, names, rows, datetime.datetime.now(datetime.timezone.utc))


# ---------------------------------------------------------------------------------------------- rendering
def shown_exercises(board: Board) -> list[str]:
    """The columns worth showing: the exercises someone in the room has tried (the course has dozens)."""
    return [name for name in board.exercises if any(row.cells[name].state != "not tried" for row in board.rows)]


def _counts(board: Board, name: str) -> str:
    states = [row.cells[name].state for row in board.rows]
    return f"{states.count('passed')}✓ {states.count('stuck')}✗"


def board_text(board: Board) -> str:
    """The board as a plain-text table (a terminal's), damaged records listed under it."""
    if not board.rows:
        return f"No learner folders under {board.root} yet: each learner's first server start creates theirs."
    names = shown_exercises(board)
    if not names:
        return f"{len(board.rows)} learners, no self-check run yet (read {board.read_at:%H:%M:%S} UTC)."
    table = [["learner", *names]] + [[row.learner + (" ⚠" if row.damage else ""),
                                      *(row.cells[name].text for name in names)] for row in board.rows]
    table.append(["room", *(_counts(board, name) for name in names)])
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for row in board.rows:
        lines += [f"⚠ {row.learner}'s record is damaged: {problem}" for problem in row.damage[:5]]
        if len(row.damage) > 5:
            lines.append(f"⚠ {row.learner}: {len(row.damage) - 5} more problems")
    return "\n".join(lines + [f"read {board.read_at:%H:%M:%S} UTC from {board.root}"])


STYLE = """body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;white-space:nowrap}
.passed{background:#d9f2d9}.stuck{background:#f9d6c9}.not-tried{color:#999}.damaged{background:#fff3b0}"""


def _html_cell(cell: Cell) -> str:
    title = f' title="{html.escape(cell.detail)}"' if cell.detail else ""
    return f'<td class="{cell.state.replace(" ", "-")}"{title}>{html.escape(cell.text)}</td>'


def board_html(board: Board, refresh_seconds: int | None = None) -> str:
    """The board as an HTML table (hover a ✗ for its reason); with ``refresh_seconds``, a whole page that reloads
    itself that often."""
    names = shown_exercises(board)
    head = "".join(f"<th>{html.escape(name)}</th>" for name in names)
    rows = []
    for row in board.rows:
        learner = html.escape(row.learner)
        if row.damage:
            learner = f'<span class="damaged" title="{html.escape("; ".join(row.damage[:20]))}">{learner} ⚠ ' \
                      f'damaged record</span>'
        rows.append(f"<tr><th>{learner}</th>{''.join(_html_cell(row.cells[name]) for name in names)}</tr>")
    rows.append(f"<tr><th>room</th>{''.join(f'<td>{_counts(board, name)}</td>' for name in names)}</tr>")
    table = (f"<table><tr><th>learner</th>{head}</tr>{''.join(rows)}</table>" if board.rows else
             f"<p>No learner folders under {html.escape(str(board.root))} yet.</p>")
    caption = f"<p>Read {board.read_at:%H:%M:%S} UTC from {html.escape(str(board.root))}.</p>"
    if refresh_seconds is None:
        return f"<style>{STYLE}</style>{table}{caption}"
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv="refresh" '
            f'content="{int(refresh_seconds)}"><title>Workshop progress</title><style>{STYLE}</style></head>'
            f"<body><h1>Workshop progress</h1>{table}{caption}</body></html>")


def write_page(board: Board, path: Path, refresh_seconds: int) -> Path:
    """Write the self-reloading page to ``path`` atomically (a browser reloading mid-write never sees half)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(board_html(board, refresh_seconds), encoding="utf-8")
    os.replace(partial, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.course.workshop", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the workshop root: one folder per learner")
    parser.add_argument("--html", type=Path, help=f"where to write the page (default: ROOT/{PAGE_NAME})")
    parser.add_argument("--refresh", type=int, default=10, help="seconds between the page's reloads (default 10)")
    parser.add_argument("--watch", type=float, help="rewrite the page every WATCH seconds until Ctrl-C")
    args = parser.parse_args(argv)
    if args.refresh < 1 or (args.watch is not None and args.watch <= 0):
        parser.error("--refresh and --watch take a number of seconds above 0")
    page = args.html or args.root / PAGE_NAME
    try:
        while True:
            board = progress_board(args.root)
            write_page(board, page, args.refresh)
            print(board_text(board) + f"\npage: {page}", flush=True)
            if args.watch is None:
                return 0
            time.sleep(args.watch)
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
