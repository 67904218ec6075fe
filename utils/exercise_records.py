"""The learner's record of exercise attempts: one JSON line per self-check run, kept in the learner's exercise folder.

Where the learner's work lives: ``$COURSE_EXERCISES_DIR`` if set, else ``chapters/exercises/`` in the repository
(git-ignored, and spared by `make clean`). `make exercises` writes the exercise notebooks and the drills there, and
`utils.exercises.check` appends each attempt to ``attempts.jsonl`` there through `record_attempt`.

The file format, version 1 — plain JSON Lines, one object per attempt, appended, never rewritten::

    {"version": 1, "exercise": "nms", "chapter": "04_detection", "difficulty": "medium", "target_minutes": 10,
     "seconds": 412.3, "passed": true, "reason": "", "time": "2026-12-06T01:02:03+00:00", "learner": "ada"}

- ``seconds``: from the drill's timer cell to the check, or null when the check was run without a timer;
- ``passed``: whether every case matched the reference; ``reason``: why not (the check's message), "" when passed;
- ``target_minutes``: how long the difficulty should take — easy 5, medium 10, hard 20;
- ``time``: when the attempt was checked, UTC, ISO 8601; ``learner``: ``$COURSE_LEARNER``, else the OS user name.

Readers (`read_attempts`, and the workshop progress board, `utils.course.workshop`, through `parse_attempts`) skip a
line that is not a version-1 attempt — not JSON, a key missing, a value of the wrong type — `read_attempts` with a
warning, so a line torn by a crash or edited by hand costs that one attempt, never the record. A later format adds
keys or raises ``version``; a reader keeps only the versions it knows.

    read_attempts()                         # every readable attempt in the learner's folder, oldest first
    summary(read_attempts())                # per learner and exercise: attempts, solved, best time, target
    print(summary_table(read_attempts()))   # the same as a Markdown table

This module imports nothing of the course's: `utils.exercises.check` calls `record_attempt` with the exercise's
chapter and difficulty, and readers need only the records.
"""

from __future__ import annotations

import datetime
import getpass
import json
import math
import os
import warnings
from pathlib import Path

VERSION = 1
ROOT = Path(__file__).resolve().parents[1]
ATTEMPTS_FILE = "attempts.jsonl"
TARGET_MINUTES = {"easy": 5, "medium": 10, "hard": 20}
FIELDS = ("version", "exercise", "chapter", "difficulty", "target_minutes", "seconds", "passed", "reason", "time",
          "learner")


def exercise_folder() -> Path:
    """Where the learner's exercise notebooks and record live: ``$COURSE_EXERCISES_DIR`` if set, else
    ``chapters/exercises/`` in the repository."""
    return Path(os.environ.get("COURSE_EXERCISES_DIR") or ROOT / "chapters" / "exercises")


def learner() -> str:
    """Who is attempting: ``$COURSE_LEARNER`` if set (a shared machine in a workshop), else the OS user name."""
    if os.environ.get("COURSE_LEARNER"):
        return os.environ["COURSE_LEARNER"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):          # a container user with no name in /etc/passwd and no $USER
        return "unknown"


def _is_duration(seconds) -> bool:
    return (isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and math.isfinite(seconds)
            and seconds >= 0)


def record_attempt(name: str, seconds: float | None, passed: bool, reason: str = "", *, chapter: str,
                   difficulty: str) -> None:
    """Append one attempt at exercise ``name`` to ``attempts.jsonl`` in the learner's exercise folder. ``chapter``
    and ``difficulty`` are the exercise's, from `utils.exercises.BY_NAME` (the caller's: the registry imports this
    module, so this one cannot import the registry back — tests/test_layout.py forbids import cycles)."""
    for label, value in (("name", name), ("chapter", chapter)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{label} must be the exercise's {label} (a non-empty string), got {value!r}")
    if difficulty not in TARGET_MINUTES:
        raise ValueError(f"difficulty must be one of {list(TARGET_MINUTES)}, got {difficulty!r}")
    if seconds is not None and not _is_duration(seconds):
        raise ValueError(f"seconds must be None (no timer) or a finite number ≥ 0, got {seconds!r}")
    if not isinstance(passed, bool):
        raise TypeError(f"passed must be True or False, got {passed!r}")
    if not isinstance(reason, str):
        raise TypeError(f"reason must be a string (the check's message), got {type(reason).__name__}")
    record = {"version": VERSION, "exercise": name, "chapter": chapter, "difficulty": difficulty,
              "target_minutes": TARGET_MINUTES[difficulty],
              "seconds": None if seconds is None else round(float(seconds), 1), "passed": passed, "reason": reason,
              "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "learner": learner()}
    folder = exercise_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ATTEMPTS_FILE
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with open(path, "a+b") as file:
        # A crash mid-write can leave a last line without its newline: start on a fresh line so only that one is lost.
        if file.seek(0, os.SEEK_END) > 0:
            file.seek(-1, os.SEEK_END)
            if file.read(1) != b"\n":
                line = "\n" + line
        file.write(line.encode("utf-8"))
        file.flush()
        os.fsync(file.fileno())


def against_target(difficulty: str, seconds: float) -> str:
    """The time an attempt took against its ``difficulty``'s target, in words (what a drill's check prints), e.g.
    "in 6.2 min, within the 10 min target for a medium exercise"."""
    if difficulty not in TARGET_MINUTES:
        raise ValueError(f"difficulty must be one of {list(TARGET_MINUTES)}, got {difficulty!r}")
    if not _is_duration(seconds):
        raise ValueError(f"seconds must be a finite number ≥ 0 (the time since the drill's timer cell), got "
                         f"{seconds!r}")
    target = TARGET_MINUTES[difficulty]
    verdict = "within" if seconds <= 60 * target else "over"
    return f"in {seconds / 60:.1f} min, {verdict} the {target} min target for a{'n' * (difficulty == 'easy')} " \
           f"{difficulty} exercise"


def _problem(record) -> str | None:
    """Why a parsed line is not a version-1 attempt, in words; None when it is. The values' types are checked too:
    a learner can write anything into their own record, and the readers (the workshop board) must not trip on it."""
    if not isinstance(record, dict):
        return f"not a JSON object but {type(record).__name__}"
    if record.get("version") != VERSION:
        return f"version {record.get('version')!r}, this reader knows version {VERSION}"
    missing = [key for key in FIELDS if key not in record]
    if missing:
        return f"missing {missing}"
    wrong = [key for key in ("exercise", "chapter", "reason", "time", "learner") if not isinstance(record[key], str)]
    wrong += [] if isinstance(record["passed"], bool) else ["passed"]
    wrong += [] if record["seconds"] is None or _is_duration(record["seconds"]) else ["seconds"]
    wrong += [] if record["difficulty"] in TARGET_MINUTES else ["difficulty"]
    wrong += [] if _is_duration(record["target_minutes"]) else ["target_minutes"]
    return f"wrong values for {wrong}" if wrong else None


def parse_attempts(text: str) -> tuple[list[dict], list[tuple[int, str]]]:
    """The version-1 attempts in ``text`` (an ``attempts.jsonl``'s content), oldest first, and each other non-empty
    line's number and what is wrong with it, (3, "not JSON (…)"): what `read_attempts` and the workshop board
    share."""
    attempts, problems = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as error:   # RecursionError: "[[[[…" nested past the limit
            problem = f"not JSON ({getattr(error, 'msg', 'nested too deeply')})"
        else:
            problem = _problem(record)
        if problem:
            problems.append((number, problem))
        else:
            attempts.append(record)
    return attempts, problems


def read_attempts(folder: Path | str | None = None) -> list[dict]:
    """Every attempt recorded in ``folder``'s ``attempts.jsonl`` (default: the learner's exercise folder), oldest
    first; [] when nothing is recorded yet. A line that is not a version-1 record is skipped with a warning."""
    if folder is not None and not isinstance(folder, (str, Path)):
        raise TypeError(f"folder must be a path (or None for the learner's exercise folder), got "
                        f"{type(folder).__name__}")
    path = (exercise_folder() if folder is None else Path(folder)) / ATTEMPTS_FILE
    if not path.exists():
        return []
    attempts, problems = parse_attempts(path.read_text(encoding="utf-8", errors="replace"))
    for number, problem in problems:
        warnings.warn(f"{path}, line {number}: skipped, {problem}", stacklevel=2)
    return attempts


def summary(attempts: list[dict]) -> list[dict]:
    """Per learner and exercise, in the order first attempted: attempts, solved (any attempt passed), best_seconds
    (the fastest timed pass, None if none), target_minutes and within_target (best_seconds within the target)."""
    if not isinstance(attempts, list) or any(_problem(a) for a in attempts):
        raise ValueError("summary takes the list of attempts read_attempts() returns")
    rows = {}
    for attempt in attempts:
        row = rows.setdefault((attempt["learner"], attempt["exercise"]), {
            "learner": attempt["learner"], "exercise": attempt["exercise"], "difficulty": attempt["difficulty"],
            "attempts": 0, "solved": False, "best_seconds": None, "target_minutes": attempt["target_minutes"]})
        row["attempts"] += 1
        if attempt["passed"]:
            row["solved"] = True
            if attempt["seconds"] is not None:
                best = row["best_seconds"]
                row["best_seconds"] = attempt["seconds"] if best is None else min(best, attempt["seconds"])
    for row in rows.values():
        row["within_target"] = row["best_seconds"] is not None and row["best_seconds"] <= 60 * row["target_minutes"]
    return list(rows.values())


def summary_table(attempts: list[dict]) -> str:
    """`summary` as a Markdown table (a learner column only when the record holds several learners)."""
    rows = summary(attempts)
    if not rows:
        return "No attempts recorded yet: run a drill's timer cell, write the function, then run its check."
    several = len({row["learner"] for row in rows}) > 1
    header = (["learner"] if several else []) + ["exercise", "difficulty", "attempts", "solved", "best time",
                                                  "target", "within target"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        timed = row["best_seconds"] is not None
        best = f"{row['best_seconds'] / 60:.1f} min" if timed else "—"
        within = ("✓" if row["within_target"] else "✗") if timed else "—"
        cells = ([row["learner"]] if several else []) + [
            f"`{row['exercise']}`", row["difficulty"], str(row["attempts"]), "✓" if row["solved"] else "✗", best,
            f"{row['target_minutes']} min", within]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
