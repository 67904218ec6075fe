"""utils/course/workshop.py, the progress board: each learner folder's record becomes a row of passed (time) /
stuck on case N / not tried; a damaged record (torn lines, foreign values, a link, a FIFO, a huge file, an unknown
exercise) is shown as such and never stops the board; forty learners read in well under a second."""

import json
import os
import runpy
import time

import numpy as np
import pytest

from utils import exercise_records as records
from utils.course import workshop

EXERCISES = ["softmax", "nms", "box_iou"]


def _record(root, learner, exercise, passed, *, seconds=None, reason="", at="2026-12-06T09:00:00+00:00"):
    """One attempt line in ``learner``'s folder, as `record_attempt` writes it (with a chosen time)."""
    folder = root / learner
    folder.mkdir(parents=True, exist_ok=True)
    line = {"version": 1, "exercise": exercise, "chapter": "04_detection", "difficulty": "medium",
            "target_minutes": 10, "seconds": seconds, "passed": passed, "reason": reason, "time": at,
            "learner": learner}
    with open(folder / records.ATTEMPTS_FILE, "a") as file:
        file.write(json.dumps(line) + "\n")


def _failure(exercise, number, of, why):
    fetch = f'exercises.case("{exercise}", {number})'
    return f"{exercise}: case {number} of {of} (x=array 3×5; fetch them with {fetch}): {why}"


def test_each_learner_is_a_row_of_passed_stuck_and_not_tried(tmp_path):
    _record(tmp_path, "ada", "softmax", True, seconds=372.0)                       # a timed drill
    _record(tmp_path, "ada", "nms", False, reason=_failure("nms", 2, 6, "shape (3,), expected (4,)"),
            at="2026-12-06T09:00:00+00:00")
    _record(tmp_path, "ada", "nms", True, at="2026-12-06T09:07:30+00:00")          # untimed: by the clock
    _record(tmp_path, "grace", "softmax", False, reason="softmax: not written yet (write softmax, then …)")
    _record(tmp_path, "grace", "nms", False, reason=_failure("nms", 1, 6, "got nan, expected 1"))
    _record(tmp_path, "grace", "nms", False, reason=_failure("nms", 3, 6, "got 2, expected 1"))
    _record(tmp_path, "grace", "box_iou", True)
    (tmp_path / "linus").mkdir()                                                   # spawned, nothing checked yet
    board = workshop.progress_board(tmp_path, EXERCISES)
    assert [row.learner for row in board.rows] == ["ada", "grace", "linus"]
    ada, grace, linus = ({name: cell.text for name, cell in row.cells.items()} for row in board.rows)
    assert ada == {"softmax": "✓ 6.2 min", "nms": "✓ 7.5 min, 2 tries", "box_iou": "·"}
    # a check run on the untouched stub is not a try
    assert grace == {"softmax": "·", "nms": "✗ case 3/6 (2×)", "box_iou": "✓ first try"}
    assert set(linus.values()) == {"·"} and not any(row.damage for row in board.rows)
    assert board.rows[1].cells["nms"].detail.endswith("got 2, expected 1")
    text = str(board).splitlines()
    assert text[0].split() == ["learner", "softmax", "nms", "box_iou"]
    assert text[-2].split() == ["room", "1✓", "0✗", "1✓", "1✗", "1✓", "0✗"]


def test_the_page_reloads_itself_escapes_what_learners_wrote_and_shows_the_reason(tmp_path):
    _record(tmp_path, "ada", "nms", False, reason=_failure("nms", 1, 6, '<script>alert("x")</script>'))
    page = workshop.write_page(workshop.progress_board(tmp_path, EXERCISES), tmp_path / "progress.html", 7)
    text = page.read_text()
    assert '<meta http-equiv="refresh" content="7">' in text
    assert "<script>" not in text and "&lt;script&gt;" in text and 'class="stuck"' in text
    assert not list(tmp_path.glob(".*partial"))                                  # written atomically
    assert workshop.progress_board(tmp_path, EXERCISES)._repr_html_().startswith("<style>")   # a notebook's table


def test_a_damaged_record_is_shown_as_such_and_what_can_be_read_still_counts(tmp_path):
    _record(tmp_path, "ada", "softmax", True, seconds=100.0)
    with open(tmp_path / "ada" / records.ATTEMPTS_FILE, "a") as file:
        file.write('{"version": 1, "exercise": "nms", "pas\n')                      # torn by a crash
        file.write(json.dumps({**dict.fromkeys(records.FIELDS, None), "version": 1, "passed": "yes"}) + "\n")
        file.write("[" * 100_000 + "\n" + "\x00\xff garbage\n")
    _record(tmp_path, "ada", "conv3d", True)                                       # no such exercise
    (tmp_path / "grace").mkdir()
    (tmp_path / "grace" / records.ATTEMPTS_FILE).symlink_to("/etc/passwd")
    (tmp_path / "linus").mkdir()
    os.mkfifo(tmp_path / "linus" / records.ATTEMPTS_FILE)                          # would block a plain open()
    (tmp_path / "margaret" / records.ATTEMPTS_FILE).mkdir(parents=True)
    board = workshop.progress_board(tmp_path, EXERCISES)
    damage = {row.learner: row.damage for row in board.rows}
    assert board.rows[0].cells["softmax"].text == "✓ 1.7 min"
    assert [problem.split(":")[0] for problem in damage["ada"]] == ["line 2", "line 3", "line 4", "line 5",
                                                                    "attempts at exercises the course does not have"]
    assert "wrong values for" in damage["ada"][1] and "conv3d" in damage["ada"][-1]
    assert damage["grace"] == ["attempts.jsonl cannot be opened (Too many levels of symbolic links)"]
    assert damage["linus"] == damage["margaret"] == ["attempts.jsonl is not a plain file"]
    text = str(board)
    assert "ada ⚠" in text and "⚠ grace's record is damaged" in text
    assert "damaged record" in workshop.board_html(board)


def test_a_huge_record_is_read_from_its_end_only(tmp_path, monkeypatch):
    monkeypatch.setattr(workshop, "MAX_RECORD_BYTES", 4096)
    for _ in range(40):
        _record(tmp_path, "ada", "nms", False, reason=_failure("nms", 1, 6, "wrong"))
    _record(tmp_path, "ada", "nms", True)
    row = workshop.progress_board(tmp_path, EXERCISES).rows[0]
    assert row.cells["nms"].state == "passed"
    size = (tmp_path / "ada" / records.ATTEMPTS_FILE).stat().st_size
    # the line cut at the start of what was read is not the learner's damage
    assert row.damage == [f"attempts.jsonl holds {size:,} bytes: only its last 4,096 read"]


def test_forty_learners_are_read_in_well_under_a_second(tmp_path):
    for number in range(40):
        for exercise in EXERCISES:
            for attempt in range(5):
                _record(tmp_path, f"learner{number:02d}", exercise, attempt == 4 and number % 2 == 0,
                        reason="" if attempt == 4 and number % 2 == 0 else _failure(exercise, attempt + 1, 6, "no"))
    started = time.perf_counter()
    board = workshop.progress_board(tmp_path, EXERCISES)
    text, page = str(board), workshop.board_html(board, 10)
    assert time.perf_counter() - started < 1.0
    assert len(board.rows) == 40 and text.count("✗ case 5/6 (5×)") == 60
    assert sum(row.cells["nms"].state == "passed" for row in board.rows) == 20
    assert page.count("<tr>") == 42                                            # header, 40 learners, the room


def test_the_columns_are_the_exercises_someone_tried_of_the_whole_course(tmp_path):
    _record(tmp_path, "ada", "nms", True)
    board = workshop.progress_board(tmp_path)
    assert len(board.exercises) > 20 and "softmax" in board.exercises
    assert workshop.shown_exercises(board) == ["nms"]
    (tmp_path / "empty").mkdir()
    assert "No learner folders" in str(workshop.progress_board(tmp_path / "empty", EXERCISES))
    (tmp_path / "empty" / "grace").mkdir()
    assert str(workshop.progress_board(tmp_path / "empty", EXERCISES)).startswith("1 learners, no self-check run")


def test_bad_calls_say_what_to_pass(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="one folder per learner"):
        workshop.progress_board(tmp_path / "missing", EXERCISES)
    with pytest.raises(TypeError, match="workshop root's path"):
        workshop.progress_board(3, EXERCISES)
    with pytest.raises(ValueError, match="non-empty list of exercise names"):
        workshop.progress_board(tmp_path, [])
    assert workshop.main([str(tmp_path / "missing")]) == 2
    assert "make workshop-progress ROOT=" in capsys.readouterr().err


def test_the_command_prints_the_table_and_writes_the_page(tmp_path, capsys):
    _record(tmp_path, "ada", "nms", True, seconds=30.0)
    assert workshop.main([str(tmp_path), "--refresh", "5"]) == 0
    printed = capsys.readouterr().out
    assert "✓ 0.5 min" in printed and str(tmp_path / "progress.html") in printed
    assert 'content="5"' in (tmp_path / "progress.html").read_text()


@pytest.fixture
def recording(tmp_path, monkeypatch):
    """A workshop learner's kernel: ``$COURSE_LEARNER`` set, attempts recorded in ada's folder under ``tmp_path``."""
    from utils import exercises

    monkeypatch.setenv("COURSE_EXERCISES_DIR", str(tmp_path / "ada"))
    monkeypatch.setenv("COURSE_LEARNER", "ada")
    return exercises



def _softmax(logits, axis=-1):
    shifted = np.exp(logits - logits.max(axis, keepdims=True))
    return shifted / shifted.sum(axis, keepdims=True)


def _overflowing_softmax(logits, axis=-1):
    return np.exp(logits) / np.exp(logits).sum(axis, keepdims=True)


def test_every_self_check_in_an_exercise_notebook_reaches_the_board(recording, tmp_path, capsys):
    with np.errstate(all="ignore"):
        assert recording.check("softmax", _overflowing_softmax) is recording.BY_NAME["softmax"].reference
    assert recording.check("softmax", _softmax) is _softmax
    recording.check("softmax", _softmax, time.perf_counter())        # a drill: recorded once, by check itself
    attempts = records.read_attempts(tmp_path / "ada")
    assert [(a["passed"], a["seconds"] is None) for a in attempts] == [(False, True), (True, True), (True, False)]
    assert attempts[0]["reason"].startswith("softmax: case 2 of 5") and "✗ softmax: case 2" in capsys.readouterr().out
    assert workshop.progress_board(tmp_path, ["softmax"]).rows[0].cells["softmax"].state == "passed"


def test_a_chapters_own_solution_is_not_recorded(recording, tmp_path):
    from utils.course import exercise_notebooks

    path = tmp_path / "solutions.py"
    path.write_text(exercise_notebooks.DRILL_IMPORTS + "\n\n\n" + exercise_notebooks.solutions("01c_why_training_works")
                    ["softmax"] + "\n")
    official = runpy.run_path(str(path))["softmax"]
    assert recording.check("softmax", official) is official
    assert records.read_attempts(tmp_path / "ada") == []
