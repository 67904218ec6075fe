"""The classic mistakes, written as a learner would write them: every one fails its exercise's check, and where the
exercise knows the mistake (`Exercise.mistakes`), the message names it — found by comparing outputs, not by
recognising the code. The cases are what makes this possible (utils/exercises/): a stride that changes the
rounding (H=9, p=1, k=3, s=2), non-square inputs, a batch of one, empty inputs, an IoU tie at the threshold,
logits of ±1000, a constant channel. The learners' versions are in exercise_mistakes/, one module a chapter."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from utils import exercises
from utils.exercises import BY_NAME, EXERCISES, ExerciseFailure, verify


def _chapter_catalogue(path):
    spec = importlib.util.spec_from_file_location(f"exercise_mistakes_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MISTAKE_MODULES = {path.stem: _chapter_catalogue(path)
                   for path in sorted((Path(__file__).parent / "exercise_mistakes").glob("chapter_*.py"))}
CATALOGUE = [entry for module in MISTAKE_MODULES.values() for entry in module.CATALOGUE]


def _says(exercise, mistake_name):
    return next(m.says for m in BY_NAME[exercise].mistakes if m.name == mistake_name)


@pytest.mark.parametrize("exercise, wrong, mistake", CATALOGUE, ids=[f"{e}-{f.__name__}" for e, f, _ in CATALOGUE])
def test_a_learners_classic_mistake_fails_and_is_named(exercise, wrong, mistake):
    with pytest.raises(ExerciseFailure) as failure, np.errstate(all="ignore"):
        verify(exercise, wrong)
    assert f"looks like {_says(exercise, mistake)}" in str(failure.value)


def test_every_exercise_knows_two_mistakes_and_the_catalogue_writes_each_of_them():
    assert all(len(e.mistakes) >= 2 for e in EXERCISES), [e.name for e in EXERCISES if len(e.mistakes) < 2]
    written = {(exercise, mistake) for exercise, _, mistake in CATALOGUE}
    registered = {(e.name, m.name) for e in EXERCISES for m in e.mistakes}
    assert written <= registered
    assert {e for e, _ in registered} == {e for e, _ in written}    # every exercise has learner-written mistakes


@pytest.mark.parametrize("exercise, mistake", [(e, m) for e in EXERCISES for m in e.mistakes],
                         ids=[f"{e.name}-{m.name}" for e in EXERCISES for m in e.mistakes])
def test_every_registered_mistake_fails_its_check_and_is_named(exercise, mistake):
    """The registered versions call the library (the check would refuse them for that): wrapped, they are compared."""
    with pytest.raises(ExerciseFailure) as failure:
        verify(exercise.name, lambda *args: mistake.wrong(*args))
    assert f"looks like {mistake.says}" in str(failure.value)


def test_the_issues_examples_say_where_and_why():
    with pytest.raises(ExerciseFailure) as failure:
        verify("nms", MISTAKE_MODULES["chapter_04"].nms_unsorted)
    assert "case 1 of 6 (boxes=tensor 30×4, scores=tensor 30, iou_threshold=0.5;" in str(failure.value)
    assert "first wrong at index (0,)" in str(failure.value)      # the first wrong position, not the largest
    assert "boxes are not sorted by score" in str(failure.value)
    with pytest.raises(ExerciseFailure, match=r"info_nce: case 1 of 3 \(z1=tensor 6×8, z2=tensor 6×8, "
                                              r"temperature=0.1; fetch them with exercises.case\(\"info_nce\", 1\)\): "
                                              r"got 2.43966, expected 5.89327; looks like there is no temperature"):
        verify("info_nce", MISTAKE_MODULES["chapter_09"].info_nce_without_temperature)
    with pytest.raises(ExerciseFailure, match=r"case 4 of 5 \(x=array 1×2×9×12, weight=array 3×2×3×3, bias=array\("
                                              r"\[.*\]\), stride=2, padding=1; .*looks like the \+1 is inside"):
        verify("conv2d", MISTAKE_MODULES["chapter_01a"].conv2d_plus_one_inside)


def test_a_wrong_answer_no_mistake_explains_fails_without_a_guess():
    with pytest.raises(ExerciseFailure) as failure:
        verify("triplet_loss", lambda anchor, positive, negative, margin: torch.tensor(0.0))
    assert "looks like" not in str(failure.value)


def test_the_cases_separate_what_a_single_easy_case_would_not():
    """The stride case changes the rounding; the IoU tie sits exactly on the threshold; there are empty inputs."""
    x, weight, _, stride, padding = exercises.case("conv2d", 4)
    height, k = x.shape[2], weight.shape[-1]
    assert (height + 2 * padding - k) // stride + 1 != (height + 2 * padding - k + 1) // stride
    assert x.shape[2] != x.shape[3] and x.shape[0] == 1
    boxes, scores, threshold = exercises.case("nms", 4)
    assert torchvision.ops.box_iou(boxes[:1], boxes[1:2]).item() == threshold
    assert len(exercises.case("nms", 6)[0]) == 0 and len(exercises.case("box_iou", 4)[0]) == 0
