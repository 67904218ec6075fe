"""utils/exercise_records.py: each attempt is one version-1 JSON line in the learner's folder, a torn or foreign line
is skipped with a warning, and the summary counts attempts, the best timed pass and whether it met the target."""

import json

import pytest

from utils import exercise_records as records
from utils.exercises import BY_NAME, DIFFICULTIES


def _record(name, seconds, passed, reason=""):
    """An attempt as `utils.exercises.check` records it: with the registry's chapter and difficulty."""
    exercise = BY_NAME[name]
    records.record_attempt(name, seconds, passed, reason, chapter=exercise.chapter, difficulty=exercise.difficulty)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_EXERCISES_DIR", str(tmp_path / "exercises"))
    monkeypatch.setenv("COURSE_LEARNER", "ada")
    return tmp_path / "exercises"


def test_every_difficulty_has_a_target():
    assert set(records.TARGET_MINUTES) == set(DIFFICULTIES)
    assert records.TARGET_MINUTES == {"easy": 5, "medium": 10, "hard": 20}


def test_an_attempt_is_one_line_with_what_the_exercise_registry_says(folder):
    _record("nms", 412.34, False, "case 1: wrong order")
    _record("softmax", None, True)
    lines = (folder / records.ATTEMPTS_FILE).read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert set(first) == set(records.FIELDS)
    assert {key: first[key] for key in ("version", "exercise", "chapter", "difficulty", "target_minutes", "seconds",
                                         "passed", "reason", "learner")} == {
        "version": 1, "exercise": "nms", "chapter": BY_NAME["nms"].chapter, "difficulty": "medium",
        "target_minutes": 10, "seconds": 412.3, "passed": False, "reason": "case 1: wrong order", "learner": "ada"}
    assert first["time"].endswith("+00:00")
    assert records.read_attempts() == [first, json.loads(lines[1])]


def test_the_folder_comes_from_the_environment_else_chapters_exercises(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_EXERCISES_DIR", raising=False)
    assert records.exercise_folder() == records.ROOT / "chapters" / "exercises"
    monkeypatch.setenv("COURSE_EXERCISES_DIR", str(tmp_path))
    assert records.exercise_folder() == tmp_path
    assert records.read_attempts() == []                     # nothing recorded yet


def test_the_learner_is_the_environment_variable_else_the_user_name(monkeypatch):
    monkeypatch.setenv("COURSE_LEARNER", "grace")
    assert records.learner() == "grace"
    monkeypatch.delenv("COURSE_LEARNER")
    monkeypatch.setattr(records.getpass, "getuser", lambda: "os-user")
    assert records.learner() == "os-user"


def test_a_torn_or_foreign_line_is_skipped_with_a_warning_and_the_rest_kept(folder):
    _record("box_iou", 100.0, True)
    with open(folder / records.ATTEMPTS_FILE, "a") as file:
        file.write('{"version": 1, "exercise": "nms", "chap')        # a crash mid-write: no newline
    _record("nms", 200.0, True)                       # starts on a line of its own
    with open(folder / records.ATTEMPTS_FILE, "a") as file:
        file.write('{"version": 2, "exercise": "oks"}\n[1, 2]\n\n')
    with pytest.warns(UserWarning) as caught:
        attempts = records.read_attempts(folder)
    assert [a["exercise"] for a in attempts] == ["box_iou", "nms"]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 3
    assert "line 2: skipped, not JSON" in messages[0]
    assert "line 4: skipped, version 2" in messages[1] and "line 5: skipped, not a JSON object" in messages[2]


def test_summary_counts_attempts_and_the_best_timed_pass_against_the_target(folder):
    _record("nms", 300.0, False, "case 1")             # medium: 10 minutes
    _record("nms", 700.0, True)
    _record("nms", 550.0, True)
    _record("nms", None, True)                         # untimed: counts, but has no time
    _record("info_nce", 1500.0, True)                  # hard: 20 minutes, beaten by 5
    _record("softmax", 60.0, False, "case 2")          # never solved
    _record("box_iou", None, True)                     # solved without a timer
    rows = {row["exercise"]: row for row in records.summary(records.read_attempts())}
    assert list(rows) == ["nms", "info_nce", "softmax", "box_iou"]   # the order first attempted
    assert {key: rows["nms"][key] for key in ("attempts", "solved", "best_seconds", "target_minutes",
                                              "within_target")} == {
        "attempts": 4, "solved": True, "best_seconds": 550.0, "target_minutes": 10, "within_target": True}
    assert rows["info_nce"]["best_seconds"] == 1500.0 and not rows["info_nce"]["within_target"]
    assert rows["softmax"]["attempts"] == 1 and not rows["softmax"]["solved"]
    assert rows["softmax"]["best_seconds"] is None and not rows["softmax"]["within_target"]
    assert rows["box_iou"]["solved"] and rows["box_iou"]["best_seconds"] is None


def test_summary_keeps_learners_apart_and_the_table_names_them_only_when_several(folder, monkeypatch):
    _record("nms", 500.0, True)
    assert "learner" not in records.summary_table(records.read_attempts()).splitlines()[0]
    monkeypatch.setenv("COURSE_LEARNER", "grace")
    _record("nms", 900.0, False, "case 3")
    rows = records.summary(records.read_attempts())
    assert [(row["learner"], row["attempts"], row["solved"]) for row in rows] == [("ada", 1, True),
                                                                                 ("grace", 1, False)]
    table = records.summary_table(records.read_attempts()).splitlines()
    assert table[0] == "| learner | exercise | difficulty | attempts | solved | best time | target | within target |"
    assert table[2] == "| ada | `nms` | medium | 1 | ✓ | 8.3 min | 10 min | ✓ |"
    assert table[3] == "| grace | `nms` | medium | 1 | ✗ | — | 10 min | — |"


def test_an_empty_record_says_how_to_start():
    assert records.summary_table([]).startswith("No attempts recorded yet")


def test_bad_calls_are_refused_with_what_to_do(folder):
    with pytest.raises(ValueError, match="name must be the exercise's name"):
        records.record_attempt("", 1.0, True, chapter="04_detection", difficulty="medium")
    with pytest.raises(ValueError, match="chapter must be"):
        records.record_attempt("nms", 1.0, True, chapter=None, difficulty="medium")
    with pytest.raises(ValueError, match="difficulty must be one of"):
        records.record_attempt("nms", 1.0, True, chapter="04_detection", difficulty="tricky")
    for seconds in (-1.0, float("nan"), "60", True):
        with pytest.raises(ValueError, match="finite number"):
            _record("nms", seconds, True)
    with pytest.raises(TypeError, match="True or False"):
        _record("nms", 1.0, 1)
    with pytest.raises(TypeError, match="reason must be a string"):
        _record("nms", 1.0, False, ValueError("x"))
    with pytest.raises(TypeError, match="folder must be a path"):
        records.read_attempts(3)
    with pytest.raises(ValueError, match="list of attempts"):
        records.summary([{"exercise": "nms"}])
    assert not (folder / records.ATTEMPTS_FILE).exists()             # nothing refused was written


def test_a_drill_time_is_told_against_its_target():
    assert records.against_target("medium", 372.0) == "in 6.2 min, within the 10 min target for a medium exercise"
    assert records.against_target("easy", 301.0) == "in 5.0 min, over the 5 min target for an easy exercise"
    assert records.against_target("hard", 1200.0).endswith("within the 20 min target for a hard exercise")
    with pytest.raises(ValueError, match="difficulty must be one of"):
        records.against_target("nms", 1.0)
    with pytest.raises(ValueError, match="finite number"):
        records.against_target("medium", None)


def test_a_line_with_every_key_but_a_wrong_value_is_skipped_too(folder):
    good = {"version": 1, "exercise": "nms", "chapter": "04_detection", "difficulty": "medium", "target_minutes": 10,
            "seconds": None, "passed": True, "reason": "", "time": "2026-12-06T09:00:00+00:00", "learner": "ada"}
    lines = [good, {**good, "passed": "yes"}, {**good, "seconds": -3}, {**good, "exercise": ["nms"]},
             {**good, "difficulty": "tricky", "target_minutes": "ten"}]
    attempts, problems = records.parse_attempts("\n".join(json.dumps(line) for line in lines) + "\n" + "[" * 10**5)
    assert attempts == [good]
    assert problems == [(2, "wrong values for ['passed']"), (3, "wrong values for ['seconds']"),
                        (4, "wrong values for ['exercise']"), (5, "wrong values for ['difficulty', 'target_minutes']"),
                        (6, problems[-1][1])]
    assert problems[-1][1].startswith("not JSON")
