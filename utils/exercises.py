"""The hand-written classics as exercises: what each is checked against, and `check`, the self-check a chapter runs.

The exercises live in the chapters (first in Chapter 1a, 01a_convolution_by_hand). Near where a chapter teaches a
classic (conv2d, softmax, attention, NMS, the PAF score …) its jupytext source holds the official solution in a cell
tagged ``exercise`` — one short, self-contained function whose docstring ends with a ``Hints:`` paragraph — followed
by a cell tagged ``self-check``::

    # %% tags=["exercise"]
    def softmax(logits, axis=-1):
        '''Softmax in NumPy, stable for huge logits.

        Hints: subtract the maximum along the axis before np.exp.
        '''
        ...the solution...


    # %% tags=["self-check"]
    exercises.check("softmax", softmax)

The chapter is the solved version: its self-checks run whenever the chapter runs (nbval, `make verify`).
`EXERCISES` holds the rest of each exercise — its chapter, difficulty, the reference it is checked against
(PyTorch, torchvision or the course's own tested code) and the cases — and `check` compares a function with the
reference on every case, printing ✓ or naming the first case that differs. The exercise and drill notebooks are
written by `make exercises` (`utils.course.exercise_notebooks`); nothing here imports notebook tooling.
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from . import contrastive, detection, numpy_layers, pose

EXERCISE_TAG, CHECK_TAG = "exercise", "self-check"
DIFFICULTIES = ("easy", "medium", "hard")         # how long a candidate should need: about 5, 10 and 20 minutes


@dataclass(frozen=True)
class Exercise:
    name: str                             # the function the learner writes, defined by the chapter's tagged cell
    chapter: str                          # the chapter whose source holds the solution
    difficulty: str                       # one of DIFFICULTIES
    reference: Callable                   # what the learner's function is checked against
    cases: Callable[[], list[tuple]]      # argument tuples, drawn from a fixed seed


def _arrays(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in shapes]


def _tensors(*shapes, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=generator, dtype=dtype) for shape in shapes]


def _boxes(count, seed):
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(count, 2, generator=generator) * 50
    return torch.cat([corner, corner + 5 + torch.rand(count, 2, generator=generator) * 30], 1)


def _nms_cases():
    cases = []
    for seed, threshold in ((0, 0.5), (1, 0.3), (2, 0.7)):
        scores = torch.rand(30, generator=torch.Generator().manual_seed(seed + 10))
        cases.append((_boxes(30, seed), scores, threshold))
    return cases


def _pr_cases():
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(4):
        hits = rng.random(20) < 0.6
        true_positives = np.cumsum(hits)
        precision = true_positives / np.arange(1, 21)
        recall = true_positives / max(1, int(hits.sum()) + 3)
        cases.append((precision, recall))
    return cases


def _torch_batch_norm(x, gamma, beta, eps=1e-5):
    return F.batch_norm(torch.from_numpy(x), None, None, torch.from_numpy(gamma), torch.from_numpy(beta),
                        training=True, eps=eps).numpy()


def _torch_layer_norm(x, gamma, beta, eps=1e-5):
    return F.layer_norm(torch.from_numpy(x), x.shape[1:], torch.from_numpy(gamma), torch.from_numpy(beta), eps).numpy()


def _layer_norm_cases():
    (x,) = _arrays((4, 3, 5, 5))
    return [(x * 3 + 2, *_arrays((3, 5, 5), (3, 5, 5), seed=1)), (*_arrays((2, 6), (6,), (6,), seed=2), 1e-3)]


def _torch_attention(q, k, v, mask=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _attention_cases():
    q, k, v = _tensors((2, 3, 5, 8), (2, 3, 5, 8), (2, 3, 5, 8))
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    return [(q, k, v), (q, k, v, causal)]


def _torch_multi_head_attention(x, w_qkv, b_qkv, w_out, b_out, heads):
    sequence_first = x.transpose(0, 1)               # torch's functional form takes (tokens, batch, dim)
    out, _ = F.multi_head_attention_forward(sequence_first, sequence_first, sequence_first, x.shape[-1], heads,
                                            w_qkv, b_qkv, None, None, False, 0.0, w_out, b_out, need_weights=False)
    return out.transpose(0, 1)


def _multi_head_attention_cases():
    return [(*_tensors((2, 6, 16), (48, 16), (48,), (16, 16), (16,), seed=seed), heads)
            for seed, heads in ((0, 4), (1, 1), (2, 8))]


def _torch_lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    cell = torch.nn.LSTMCell(x.shape[1], h.shape[1]).double()
    with torch.no_grad():
        for parameter, value in zip((cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh),
                                    (w_ih, w_hh, b_ih, b_hh)):
            parameter.copy_(value)
    return cell(x, (h, c))


def _lstm_cases():
    n, d, hidden = 3, 5, 4
    return [tuple(_tensors((n, d), (n, hidden), (n, hidden), (4 * hidden, d), (4 * hidden, hidden), (4 * hidden,),
                           (4 * hidden,), seed=seed)) for seed in (0, 1)]


def _gaussian_heatmap_cases():
    return [(64, 48, (20.0, 30.5), 2.0), (17, 23, (3.3, 15.8), 1.5), (10, 12, (-2.0, 4.0), 3.0)]


def _paf_score_cases():
    field = pose.limb_paf(40, 50, (10.0, 12.0), (38.0, 30.0), limb_width=2.0)
    field += 0.1 * torch.randn(field.shape, generator=torch.Generator().manual_seed(0))   # not only 0 and 1
    point = lambda x, y: torch.tensor([x, y])  # noqa: E731
    return [(field, point(10.2, 12.1), point(37.7, 29.6)),       # along the limb: about 1
            (field, point(37.7, 29.6), point(10.2, 12.1)),       # backwards: about −1
            (field, point(5.3, 35.2), point(45.1, 3.4), 7),      # across it
            (field, point(-0.4, 0.3), point(49.5, 39.5)),        # corner to corner: 49.5 rounds one past the edge
            (field, point(20.4, 20.4), point(20.4, 20.4))]       # no length: 0


def _oks_cases():
    generator = torch.Generator().manual_seed(0)
    joints = len(pose.SIGMAS)
    truth = torch.cat([torch.rand(3, joints, 2, generator=generator, dtype=torch.float64) * 60,
                       torch.randint(0, 3, (3, joints, 1), generator=generator).double()], -1)
    truth[2, :, 2] = 0                                             # a person with no labelled keypoint scores 0
    predicted = truth[[0, 1, 1, 2], :, :2] + torch.randn(4, joints, 2, generator=generator, dtype=torch.float64) * 3
    areas = torch.tensor([900.0, 400.0, 2500.0], dtype=torch.float64)
    return [(predicted, truth, areas, torch.from_numpy(pose.SIGMAS)),
            (predicted[:1], truth[1:2], areas[1:2], torch.from_numpy(pose.SIGMAS))]


def _pair_cases(*shapes_and_temperatures):
    return [(*_tensors(shape, shape, seed=seed, dtype=torch.float32), temperature)
            for seed, (shape, temperature) in enumerate(shapes_and_temperatures)]


def _triplet_cases():
    return [(*_tensors((6, 5), (6, 5), (6, 5), dtype=torch.float32), 0.5),
            (*_tensors((4, 3), (4, 3), (4, 3), seed=1, dtype=torch.float32), 2.0)]


EXERCISES = [
    Exercise("conv2d", "01a_convolution_by_hand", "medium", numpy_layers.conv2d,
             lambda: [(*_arrays((2, 3, 9, 9), (4, 3, 3, 3)), None, 1, 0),
                      (*_arrays((1, 2, 8, 8), (3, 2, 3, 3), (3,)), 2, 1),
                      (*_arrays((2, 1, 7, 7), (2, 1, 5, 5), (2,), seed=1), 1, 2)]),
    Exercise("max_pool2d", "01a_convolution_by_hand", "easy",
             lambda x, kernel_size, stride=None: F.max_pool2d(torch.from_numpy(x), kernel_size, stride).numpy(),
             lambda: [(*_arrays((2, 3, 8, 8)), 2), (*_arrays((1, 2, 9, 9), seed=1), 3, 2)]),
    Exercise("batch_norm_train", "01a_convolution_by_hand", "easy", _torch_batch_norm,
             lambda: [tuple(_arrays((4, 3, 5, 5), (3,), (3,))), tuple(_arrays((2, 6, 3, 3), (6,), (6,), seed=2))]),
    Exercise("softmax", "01c_why_training_works", "easy",
             lambda logits, axis=-1: torch.from_numpy(logits).softmax(axis).numpy(),
             lambda: [(_arrays((4, 10))[0],), (_arrays((3, 5))[0] * 1000,), (_arrays((2, 3, 4))[0], 1)]),
    Exercise("cross_entropy", "01c_why_training_works", "easy",
             lambda logits, labels: F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item(),
             lambda: [(_arrays((6, 10))[0], np.array([0, 3, 9, 1, 1, 5])),
                      (_arrays((2, 4))[0] * 500, np.array([2, 0]))]),
    Exercise("layer_norm", "01c_why_training_works", "easy", _torch_layer_norm, _layer_norm_cases),
    Exercise("scaled_dot_product_attention", "03a_attention_and_transformer", "medium", _torch_attention,
             _attention_cases),
    Exercise("multi_head_attention", "03a_attention_and_transformer", "hard", _torch_multi_head_attention,
             _multi_head_attention_cases),
    Exercise("lstm_cell", "03a_attention_and_transformer", "hard", _torch_lstm_cell, _lstm_cases),
    Exercise("box_iou", "04_detection", "easy", torchvision.ops.box_iou,
             lambda: [(_boxes(5, 0), _boxes(7, 1)), (_boxes(1, 2), _boxes(3, 3))]),
    Exercise("nms", "04_detection", "medium", torchvision.ops.nms, _nms_cases),
    Exercise("average_precision_voc", "04_detection", "medium", detection.average_precision_voc, _pr_cases),
    Exercise("gaussian_heatmap", "08_pose", "easy", pose.gaussian_heatmap, _gaussian_heatmap_cases),
    Exercise("paf_score", "08_pose", "medium", pose.paf_score, _paf_score_cases),
    Exercise("oks", "08_pose", "medium", pose.oks, _oks_cases),
    Exercise("triplet_loss", "09_contrastive_multimodal", "easy", contrastive.triplet_loss, _triplet_cases),
    Exercise("info_nce", "09_contrastive_multimodal", "hard", contrastive.info_nce,
             lambda: _pair_cases(((6, 8), 0.1), ((4, 3), 0.5))),
    Exercise("clip_loss", "09_contrastive_multimodal", "medium", contrastive.clip_loss,
             lambda: _pair_cases(((5, 8), 0.07), ((3, 4), 1.0))),
]
BY_NAME = {e.name: e for e in EXERCISES}
CHAPTERS_WITH_EXERCISES = list(dict.fromkeys(e.chapter for e in EXERCISES))


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


def _describe(args) -> str:
    return ", ".join(f"{tuple(a.shape)}" if hasattr(a, "shape") else repr(a) for a in args)


def check(name: str, function: Callable, started: float | None = None) -> None:
    """Run ``function`` (the learner's) and the reference on every case of exercise ``name``; print ✓ or raise
    AssertionError naming the first case that differs and by how much. NotImplementedError passes through."""
    if name not in BY_NAME:
        raise KeyError(f"no exercise named {name!r}; choose one of {sorted(BY_NAME)}")
    if not callable(function):
        raise TypeError(f"pass your function itself, e.g. check({name!r}, {name}), not {type(function).__name__}")
    exercise = BY_NAME[name]
    cases = exercise.cases()
    for number, args in enumerate(cases, 1):
        expected = _as_array(exercise.reference(*args))
        returned = function(*args)
        problem = _not_comparable(returned, expected)
        if problem:
            raise AssertionError(f"✗ {name}, case {number} (inputs {_describe(args)}): {problem}")
        got = _as_array(returned)
        expected_list = expected if isinstance(expected, list) else [expected]
        got_list = got if isinstance(got, list) else [got]
        for g, e in zip(got_list, expected_list):
            if g.shape != e.shape:
                raise AssertionError(f"✗ {name}, case {number} (inputs {_describe(args)}): shape {g.shape}, "
                                     f"expected {e.shape}")
            if not np.allclose(g, e, rtol=1e-5, atol=1e-6):
                worst = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(g - e)), e.shape)) if e.shape else ()
                raise AssertionError(f"✗ {name}, case {number} (inputs {_describe(args)}): at index {worst} got "
                                     f"{g[worst]:.6g}, expected {e[worst]:.6g}")
    timing = "" if started is None else f" in {(time.perf_counter() - started) / 60:.1f} min"
    print(f"✓ {name}: all {len(cases)} cases match the reference{timing}")
