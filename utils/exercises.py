"""`make exercises`: the hand-written classics as exercises with self-checks, and a timed drill notebook (all chapters).

Each `Exercise` is a function the learner writes: a stub (signature, docstring with hints, ``raise
NotImplementedError``), an official solution (short, self-contained, readable) and a reference from the library
(PyTorch, torchvision, or the course's own tested code) that `check` compares the learner's function with on
several cases, printing a clear pass or the first mismatch.

    python -m utils.exercises               # writes chapters/outputs/exercises/: per chapter an exercise and a
                                            # solution notebook, plus drills.ipynb (all exercises, timed)

`tests/test_exercises.py` executes every generated notebook: in the exercise versions only the self-checks
fail, each with NotImplementedError; in the solution versions every self-check passes.
"""

from __future__ import annotations

import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat
import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from . import scratch
from .contrastive import info_nce as reference_info_nce
from .detection import average_precision_voc as reference_average_precision_voc

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "chapters" / "outputs" / "exercises"


@dataclass
class Exercise:
    name: str
    chapter: str
    difficulty: str                       # easy / medium / hard: how long a candidate should need (5 / 10 / 20 min)
    stub: str                             # signature + docstring with hints + raise NotImplementedError
    solution: str                         # the official solution, self-contained
    reference: Callable                   # what the learner's function is checked against
    cases: Callable[[], list[tuple]]      # argument tuples, drawn from a fixed seed


def _arrays(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in shapes]


def _boxes(count, seed):
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(count, 2, generator=generator) * 50
    return torch.cat([corner, corner + 5 + torch.rand(count, 2, generator=generator) * 30], 1)


def _nms_cases():
    cases = []
    for seed, threshold in ((0, 0.5), (1, 0.3), (2, 0.7)):
        boxes = _boxes(30, seed)
        scores = torch.rand(30, generator=torch.Generator().manual_seed(seed + 10))
        cases.append((boxes, scores, threshold))
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


def _torch_reference_attention(q, k, v, mask=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _torch_reference_batch_norm(x, gamma, beta, eps=1e-5):
    return F.batch_norm(torch.from_numpy(x), None, None, torch.from_numpy(gamma), torch.from_numpy(beta),
                        training=True, eps=eps).numpy()


def _lstm_reference(x, h, c, w_ih, w_hh, b_ih, b_hh):
    cell = torch.nn.LSTMCell(x.shape[1], h.shape[1]).double()
    with torch.no_grad():
        for parameter, value in zip((cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh),
                                    (w_ih, w_hh, b_ih, b_hh)):
            parameter.copy_(value)
    return cell(x, (h, c))


def _lstm_cases():
    generator = torch.Generator().manual_seed(0)
    n, d, hidden = 3, 5, 4
    rand = lambda *shape: torch.randn(*shape, generator=generator, dtype=torch.float64)  # noqa: E731
    return [(rand(n, d), rand(n, hidden), rand(n, hidden), rand(4 * hidden, d), rand(4 * hidden, hidden),
             rand(4 * hidden), rand(4 * hidden)) for _ in range(2)]


def _attention_cases():
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=generator, dtype=torch.float64) for _ in range(3))
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    return [(q, k, v), (q, k, v, causal)]


EXERCISES = [
    Exercise("conv2d", "01a_convolution_by_hand", "medium", '''
def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D convolution (cross-correlation) in NumPy.

    x: N×C_in×H×W, weight: C_out×C_in×k×k, bias: C_out or None → N×C_out×H_out×W_out,
    H_out = (H + 2·padding − k) // stride + 1.
    Hints: pad with np.pad; loop over output positions (or build all windows with
    np.lib.stride_tricks.sliding_window_view); one np.einsum / tensordot per window multiplies and sums over
    (C_in, k, k).
    """
    raise NotImplementedError("write conv2d")
''', '''
def conv2d(x, weight, bias=None, stride=1, padding=0):
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    k = weight.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    out = np.einsum("nchwij,ocij->nohw", windows, weight)
    return out if bias is None else out + bias[None, :, None, None]
''', lambda x, weight, bias=None, stride=1, padding=0: scratch.conv2d(x, weight, bias, stride, padding),
        lambda: [(*_arrays((2, 3, 9, 9), (4, 3, 3, 3)), None, 1, 0), (*_arrays((1, 2, 8, 8), (3, 2, 3, 3), (3,)), 2, 1),
                 (*_arrays((2, 1, 7, 7), (2, 1, 5, 5), (2,), seed=1), 1, 2)]),
    Exercise("max_pool2d", "01a_convolution_by_hand", "easy", '''
def max_pool2d(x, kernel_size, stride=None):
    """Max pooling in NumPy: N×C×H×W → N×C×H_out×W_out, stride defaults to kernel_size, no padding.

    Hint: sliding_window_view over the last two axes, then the max over the window axes.
    """
    raise NotImplementedError("write max_pool2d")
''', '''
def max_pool2d(x, kernel_size, stride=None):
    stride = stride or kernel_size
    windows = np.lib.stride_tricks.sliding_window_view(x, (kernel_size, kernel_size), axis=(2, 3))
    return windows[:, :, ::stride, ::stride].max(axis=(-2, -1))
''', lambda x, kernel_size, stride=None: F.max_pool2d(torch.from_numpy(x), kernel_size, stride).numpy(),
        lambda: [(*_arrays((2, 3, 8, 8)), 2), (*_arrays((1, 2, 9, 9), seed=1), 3, 2)]),
    Exercise("batch_norm_train", "01a_convolution_by_hand", "easy", '''
def batch_norm_train(x, gamma, beta, eps=1e-5):
    """BatchNorm2d's training-mode forward in NumPy: x N×C×H×W, gamma and beta C.

    Hint: one mean and one (biased) variance per channel, over the axes N, H, W; normalise, then scale and shift.
    """
    raise NotImplementedError("write batch_norm_train")
''', '''
def batch_norm_train(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    return gamma[None, :, None, None] * (x - mean) / np.sqrt(var + eps) + beta[None, :, None, None]
''', _torch_reference_batch_norm, lambda: [tuple(_arrays((4, 3, 5, 5), (3,), (3,))), tuple(_arrays((2, 6, 3, 3), (6,), (6,), seed=2))]),
    Exercise("softmax", "01c_why_training_works", "easy", '''
def softmax(logits, axis=-1):
    """Softmax in NumPy, stable for huge logits (e.g. 1000).

    Hint: subtracting the maximum along the axis changes nothing mathematically but prevents overflow.
    """
    raise NotImplementedError("write softmax")
''', '''
def softmax(logits, axis=-1):
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)
''', lambda logits, axis=-1: torch.from_numpy(logits).softmax(axis).numpy(),
        lambda: [(_arrays((4, 10))[0],), (_arrays((3, 5))[0] * 1000,), (_arrays((2, 3, 4))[0], 1)]),
    Exercise("cross_entropy", "01c_why_training_works", "easy", '''
def cross_entropy(logits, labels):
    """Mean cross-entropy of logits N×K against integer labels N, in NumPy, stable for huge logits.

    Hint: log-softmax = z − max z − log Σ exp(z − max z); pick each row's true-class entry.
    """
    raise NotImplementedError("write cross_entropy")
''', '''
def cross_entropy(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), labels].mean()
''', lambda logits, labels: F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item(),
        lambda: [(_arrays((6, 10))[0], np.array([0, 3, 9, 1, 1, 5])), (_arrays((2, 4))[0] * 500, np.array([2, 0]))]),
    Exercise("scaled_dot_product_attention", "03a_attention_and_transformer", "medium", '''
def scaled_dot_product_attention(q, k, v, mask=None):
    """softmax(Q Kᵀ / √d_k) V in PyTorch. q, k, v: …×L×d; mask: L×L bool, True where attention is allowed.

    Hint: scores = q @ k.transpose(-2, -1) / sqrt(d); masked scores become −inf before the softmax.
    """
    raise NotImplementedError("write scaled_dot_product_attention")
''', '''
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v
''', _torch_reference_attention, _attention_cases),
    Exercise("box_iou", "04_detection", "easy", '''
def box_iou(boxes1, boxes2):
    """IoU of every pair: boxes1 N×4, boxes2 M×4 (x1, y1, x2, y2) → N×M, in PyTorch, without loops.

    Hint: broadcast boxes1[:, None] against boxes2[None]; the intersection's sides are clamped at 0.
    """
    raise NotImplementedError("write box_iou")
''', '''
def box_iou(boxes1, boxes2):
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    return inter / (area(boxes1)[:, None] + area(boxes2)[None] - inter)
''', torchvision.ops.box_iou, lambda: [(_boxes(5, 0), _boxes(7, 1)), (_boxes(1, 2), _boxes(3, 3))]),
    Exercise("nms", "04_detection", "medium", '''
def nms(boxes, scores, iou_threshold):
    """Non-maximum suppression: indices of the kept boxes, highest score first (boxes N×4 xyxy, scores N).

    Hint: sort by score; repeatedly keep the best remaining box and drop every box whose IoU with it exceeds the
    threshold (you may use torchvision.ops.box_iou, or your box_iou).
    """
    raise NotImplementedError("write nms")
''', '''
def nms(boxes, scores, iou_threshold):
    import torchvision
    order = scores.argsort(descending=True)
    keep = []
    while len(order):
        best, order = order[0], order[1:]
        keep.append(best)
        order = order[torchvision.ops.box_iou(boxes[best][None], boxes[order])[0] <= iou_threshold]
    return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.long)
''', torchvision.ops.nms, _nms_cases),
    Exercise("average_precision_voc", "04_detection", "medium", '''
def average_precision_voc(precision, recall):
    """VOC all-point AP from a PR curve (detections ranked by score): the area under the monotone envelope.

    Hints: add recall 0 and 1 at the ends (precision 0 there); replace each precision by the maximum precision at
    any higher recall (a reversed running max); sum (Δ recall) × envelope where recall changes.
    """
    raise NotImplementedError("write average_precision_voc")
''', '''
def average_precision_voc(precision, recall):
    recall = np.concatenate([[0.0], recall, [1.0]])
    envelope = np.maximum.accumulate(np.concatenate([[0.0], precision, [0.0]])[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * envelope[steps + 1]))
''', reference_average_precision_voc, _pr_cases),
    Exercise("info_nce", "09_contrastive_multimodal", "hard", '''
def info_nce(z1, z2, temperature):
    """SimCLR's NT-Xent: z1, z2 N×D, row i of each is a view of image i. Over the 2N L2-normalised views, each
    view's positive is its pair and the other 2N − 2 views are negatives; the mean cross-entropy over all 2N.

    Hints: z = normalize(cat(z1, z2)); logits = z @ zᵀ / temperature with the diagonal set to −inf; the target of
    row i is i + N for i < N and i − N otherwise.
    """
    raise NotImplementedError("write info_nce")
''', '''
def info_nce(z1, z2, temperature):
    n = len(z1)
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / temperature).fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return torch.nn.functional.cross_entropy(logits, targets)
''', reference_info_nce, lambda: [(*(torch.randn(6, 8, generator=torch.Generator().manual_seed(s)) for s in (0, 1)), 0.1),
                                   (*(torch.randn(4, 3, generator=torch.Generator().manual_seed(s)) for s in (2, 3)), 0.5)]),
    Exercise("lstm_cell", "drills", "hard", '''
def lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One LSTM step in PyTorch, with nn.LSTMCell's weight layout: returns (h_new, c_new).

    x N×D, h and c N×H, w_ih 4H×D, w_hh 4H×H, biases 4H; the 4H rows are the gates in the order i, f, g, o.
    Hints: gates = x w_ihᵀ + b_ih + h w_hhᵀ + b_hh, split in four; i, f, o through sigmoid, g through tanh;
    c_new = f·c + i·g, h_new = o·tanh(c_new).
    """
    raise NotImplementedError("write lstm_cell")
''', '''
def lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new
''', _lstm_reference, _lstm_cases),
]
BY_NAME = {e.name: e for e in EXERCISES}


def _as_array(value):
    if isinstance(value, (tuple, list)):
        return [_as_array(v) for v in value]
    if torch.is_tensor(value):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=float)


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
        got = _as_array(function(*args))
        expected_list = expected if isinstance(expected, list) else [expected]
        got_list = got if isinstance(got, list) else [got]
        if len(got_list) != len(expected_list):
            raise AssertionError(f"✗ {name}, case {number} (inputs {_describe(args)}): returned {len(got_list)} "
                                 f"values, expected {len(expected_list)}")
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


HEADER = """# {title}

Write each function where it says `raise NotImplementedError`, then run the cell below it: `check` compares your
function with the reference on several inputs and prints ✓, or the first input where they differ.
The official solutions are in `{other}` beside this notebook. Generated by `make exercises`."""


def _notebook(title: str, exercises: list[Exercise], solutions: bool, timed: bool, other: str):
    cells = [nbformat.v4.new_markdown_cell(HEADER.format(title=title, other=other)),
             nbformat.v4.new_code_cell("import time\n\nimport numpy as np\nimport torch\n\n"
                                       "from utils.exercises import check")]
    for exercise in exercises:
        cells.append(nbformat.v4.new_markdown_cell(
            f"## `{exercise.name}` — {exercise.difficulty} (chapter {exercise.chapter.split('_')[0]})"
            + ("\nRun the timer cell, then write the function; the check prints the time you took." if timed else "")))
        if timed:
            cells.append(nbformat.v4.new_code_cell(f"started_{exercise.name} = time.perf_counter()"))
        body = textwrap.dedent(exercise.solution if solutions else exercise.stub).strip()
        cells.append(nbformat.v4.new_code_cell(body, metadata={"tags": ["exercise"]}))
        started = f", started_{exercise.name}" if timed else ""
        cells.append(nbformat.v4.new_code_cell(f'check("{exercise.name}", {exercise.name}{started})',
                                               metadata={"tags": ["self-check"]}))
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    return notebook


def write_all(folder: Path = OUTPUT) -> list[Path]:
    """Write every exercise/solution notebook and the drills pair under ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    groups = {}
    for exercise in EXERCISES:
        if exercise.chapter != "drills":
            groups.setdefault(exercise.chapter, []).append(exercise)
    written = []
    for chapter, exercises in groups.items():
        for solutions in (False, True):
            name = f"{chapter}-{'solutions' if solutions else 'exercises'}.ipynb"
            other = f"{chapter}-{'exercises' if solutions else 'solutions'}.ipynb"
            nbformat.write(_notebook(f"{chapter}: exercises", exercises, solutions, False, other), folder / name)
            written.append(folder / name)
    for solutions in (False, True):
        name = f"drills-{'solutions' if solutions else 'exercises'}.ipynb"
        other = f"drills-{'exercises' if solutions else 'solutions'}.ipynb"
        drills = sorted(EXERCISES, key=lambda e: ("easy", "medium", "hard").index(e.difficulty))
        nbformat.write(_notebook("Interview drills: the classics, timed (easy ≈ 5 min, medium ≈ 10, hard ≈ 20)",
                                 drills, solutions, True, other), folder / name)
        written.append(folder / name)
    return written


def main(argv: list[str] | None = None) -> int:
    paths = write_all()
    print(f"{len(EXERCISES)} exercises → {len(paths)} notebooks in {OUTPUT.relative_to(ROOT)}: "
          + ", ".join(p.name for p in paths if p.name.endswith("-exercises.ipynb")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
