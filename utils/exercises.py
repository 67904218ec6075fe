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

`EXERCISES` holds the rest of each exercise — its chapter, difficulty, the reference it is checked against
(PyTorch, torchvision or the course's own tested code), the cases (chosen so that the classic wrong versions fail:
strides that change the rounding, non-square inputs, a batch of one, empty inputs, ties, huge values), the known
mistakes the check names when a learner's output matches one, and the library functions a solution may not call.

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
import inspect
import numbers
import textwrap
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from . import contrastive, detection, numpy_layers, pose

EXERCISE_TAG, CHECK_TAG = "exercise", "self-check"
DIFFICULTIES = ("easy", "medium", "hard")         # how long a candidate should need: about 5, 10 and 20 minutes
CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"
RTOL, ATOL = 1e-5, 1e-6                           # what "matches the reference" means, value by value


class ExerciseFailure(AssertionError):
    """A function does not do what its exercise asks: the message names the case, its inputs and the first
    difference (and the known mistake it looks like)."""


@dataclass(frozen=True)
class Mistake:
    name: str                 # short, for the catalogue and the tests
    wrong: Callable           # the mistaken version, called like the reference
    says: str                 # what the check adds after "looks like" when the learner's output matches it


@dataclass(frozen=True)
class Exercise:
    name: str                             # the function the learner writes, defined by the chapter's tagged cell
    chapter: str                          # the chapter whose source holds the solution
    difficulty: str                       # one of DIFFICULTIES
    reference: Callable                   # what the learner's function is checked against
    cases: Callable[[], list[tuple]]      # argument tuples, drawn from a fixed seed
    mistakes: tuple[Mistake, ...] = ()    # classic wrong versions, named when the learner's output matches one
    # Library functions that do the exercise's work, as dotted names: the end of any attribute chain the solution
    # uses (".nms" in torchvision.ops.nms), a name it imports, or a library function a global name is bound to.
    forbidden: tuple[str, ...] = ()


def _arrays(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in shapes]


def _tensors(*shapes, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=generator, dtype=dtype) for shape in shapes]


# --------------------------------------------------------------------------------------------- Chapter 1a
def _conv2d_cases():
    return [(*_arrays((2, 3, 9, 9), (4, 3, 3, 3)), None, 1, 0),
            (*_arrays((1, 2, 8, 8), (3, 2, 3, 3), (3,)), 2, 1),
            (*_arrays((2, 1, 7, 7), (2, 1, 5, 5), (2,), seed=1), 1, 2),
            (*_arrays((1, 2, 9, 12), (3, 2, 3, 3), (3,), seed=2), 2, 1),   # H=9, p=1, k=3, s=2: (H+2p−k)/s is whole
            (*_arrays((2, 3, 10, 6), (2, 3, 3, 3), (2,), seed=3), 1, 0)]   # taller than wide


def _cropped_conv2d(size):
    """A conv2d whose output is cut to ``size(length, k, stride, padding)`` rows and columns (a wrong formula)."""
    def wrong(x, weight, bias=None, stride=1, padding=0):
        out, k = numpy_layers.conv2d(x, weight, bias, stride, padding), weight.shape[-1]
        return out[..., :size(x.shape[-2], k, stride, padding), :size(x.shape[-1], k, stride, padding)]
    return wrong


CONV2D_MISTAKES = (
    Mistake("output size missing the +1", _cropped_conv2d(lambda n, k, s, p: (n + 2 * p - k) // s),
            "the output size is missing the +1: H_out = (H + 2·padding − k) // stride + 1"),
    Mistake("+1 inside the division", _cropped_conv2d(lambda n, k, s, p: (n + 2 * p - k + 1) // s),
            "the +1 is inside the division: H_out = (H + 2·padding − k) // stride + 1, not (H + 2·padding − k + 1) "
            "// stride (they differ when the stride divides H + 2·padding − k)"),
    Mistake("square image assumed", lambda *args: (out := numpy_layers.conv2d(*args))[..., :out.shape[-2]],
            "the image is assumed square: the output's width comes from W, not H"),
    Mistake("padding forgotten", lambda x, weight, bias=None, stride=1, padding=0:
            numpy_layers.conv2d(x, weight, bias, stride, 0), "the padding is forgotten (np.pad H and W first)"),
    Mistake("kernel flipped", lambda x, weight, bias=None, stride=1, padding=0:
            numpy_layers.conv2d(x, weight[..., ::-1, ::-1], bias, stride, padding),
            "the kernel is flipped: deep learning's conv2d is a cross-correlation (no flip)"),
    Mistake("bias forgotten", lambda x, weight, bias=None, stride=1, padding=0:
            numpy_layers.conv2d(x, weight, None, stride, padding), "the bias is not added"),
)


def _torch_max_pool2d(x, kernel_size, stride=None):
    return F.max_pool2d(torch.from_numpy(x), kernel_size, stride).numpy()


def _max_pool2d_cases():
    return [(*_arrays((2, 3, 8, 8)), 2), (*_arrays((1, 2, 9, 9), seed=1), 3, 2),
            (-np.abs(_arrays((2, 2, 7, 10), seed=2)[0]), 2)]       # all negative, not square, one row left over


MAX_POOL2D_MISTAKES = (
    Mistake("stride ignored", lambda x, kernel_size, stride=None: _torch_max_pool2d(x, kernel_size),
            "the stride is ignored: the windows step by kernel_size"),
    Mistake("windows step by one", lambda x, kernel_size, stride=None: _torch_max_pool2d(x, kernel_size, 1),
            "the windows step by 1: the stride defaults to kernel_size"),
    Mistake("maximum starts at 0", lambda *args: np.maximum(_torch_max_pool2d(*args), 0),
            "the running maximum starts at 0, so all-negative windows give 0 (start from −∞ or the window itself)"),
)


def _torch_batch_norm(x, gamma, beta, eps=1e-5):
    return F.batch_norm(torch.from_numpy(x), None, None, torch.from_numpy(gamma), torch.from_numpy(beta),
                        training=True, eps=eps).numpy()


def _batch_norm_cases():
    (constant,) = _arrays((1, 4, 3, 5), seed=3)
    constant[:, 2] = 3.0                                           # variance 0: only eps keeps it finite
    return [tuple(_arrays((4, 3, 5, 5), (3,), (3,))), tuple(_arrays((2, 6, 3, 3), (6,), (6,), seed=2)),
            (constant, *_arrays((4,), (4,), seed=4))]


def _normalised(x, gamma, beta, eps, axes, ddof=0):
    """(x − mean) / sqrt(var + eps) · gamma + beta over ``axes``, ``ddof=1`` the unbiased variance."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return gamma * (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, ddof=ddof, keepdims=True) + eps) + beta


def _channel(vector):
    return vector[None, :, None, None]


BATCH_NORM_MISTAKES = (
    Mistake("unbiased variance", lambda x, gamma, beta, eps=1e-5:
            _normalised(x, _channel(gamma), _channel(beta), eps, (0, 2, 3), ddof=1),
            "the variance is unbiased (ddof=1): BatchNorm normalises with the biased one, x.var()"),
    Mistake("batch axis only", lambda x, gamma, beta, eps=1e-5:
            _normalised(x, _channel(gamma), _channel(beta), eps, 0),
            "the statistics are over N only: one mean and variance per channel over N, H and W, axis=(0, 2, 3)"),
    Mistake("eps forgotten", lambda x, gamma, beta, eps=1e-5:
            _normalised(x, _channel(gamma), _channel(beta), 0.0, (0, 2, 3)),
            "eps is forgotten: a constant channel has variance 0, divide by sqrt(var + eps)"),
)


# --------------------------------------------------------------------------------------------- Chapter 1c
def _softmax_cases():
    return [(_arrays((4, 10))[0],), (_arrays((3, 5))[0] * 1000,), (_arrays((2, 3, 4))[0], 1),
            (np.array([[1000.0, 999.0, 998.0], [-1000.0, -1001.0, -1000.0]]),),   # rows far apart, a tie
            (_arrays((1, 7), seed=1)[0],)]


def _naive_softmax(logits, axis=-1):
    with np.errstate(over="ignore", invalid="ignore"):
        return np.exp(logits) / np.exp(logits).sum(axis, keepdims=True)


def _global_max_softmax(logits, axis=-1):
    with np.errstate(invalid="ignore"):
        shifted = np.exp(logits - logits.max())
        return shifted / shifted.sum(axis, keepdims=True)


SOFTMAX_MISTAKES = (
    Mistake("no max-subtraction", _naive_softmax,
            "the maximum is not subtracted: np.exp overflows for large logits (inf / inf = nan)"),
    Mistake("global maximum", _global_max_softmax,
            "the maximum of the whole array is subtracted: take it along the axis (keepdims=True), or rows far below "
            "it underflow to 0 / 0"),
    Mistake("axis ignored", lambda logits, axis=-1: torch.from_numpy(logits).softmax(-1).numpy(),
            "the axis argument is ignored: max and sum along `axis`, not always the last one"),
)


def _torch_cross_entropy(logits, labels):
    return F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()


def _cross_entropy_cases():
    return [(_arrays((6, 10))[0], np.array([0, 3, 9, 1, 1, 5])), (_arrays((2, 4))[0] * 500, np.array([2, 0])),
            (_arrays((1, 5), seed=1)[0], np.array([4]))]


def _log_softmax(logits):
    return torch.from_numpy(logits).log_softmax(1).numpy()


def _cross_entropy_without_log_sum_exp(logits, labels):
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return -np.log(_naive_softmax(logits, 1)[np.arange(len(labels)), labels]).mean()


CROSS_ENTROPY_MISTAKES = (
    Mistake("no log-sum-exp", _cross_entropy_without_log_sum_exp,
            "the log-softmax is not computed with log-sum-exp: np.exp overflows for large logits (subtract each "
            "row's maximum first)"),
    Mistake("sum instead of mean", lambda logits, labels: -_log_softmax(logits)[np.arange(len(labels)), labels].sum(),
            "the losses are summed: the cross-entropy is their mean over the batch"),
    Mistake("every row at every label", lambda logits, labels: -_log_softmax(logits)[:, labels].mean(),
            "log_probs[:, labels] picks every row at every label: use log_probs[np.arange(N), labels]"),
)


def _torch_layer_norm(x, gamma, beta, eps=1e-5):
    return F.layer_norm(torch.from_numpy(x), x.shape[1:], torch.from_numpy(gamma), torch.from_numpy(beta), eps).numpy()


def _layer_norm_cases():
    (x,) = _arrays((4, 3, 5, 5))
    return [(x * 3 + 2, *_arrays((3, 5, 5), (3, 5, 5), seed=1)), (*_arrays((2, 6), (6,), (6,), seed=2), 1e-3),
            (*_arrays((1, 2, 4), (2, 4), (2, 4), seed=3),)]


def _sample_axes(x):
    return tuple(range(1, x.ndim))


LAYER_NORM_MISTAKES = (
    Mistake("last axis only", lambda x, gamma, beta, eps=1e-5: _normalised(x, gamma, beta, eps, -1),
            "the statistics are over the last axis only: LayerNorm uses every axis but the batch, "
            "tuple(range(1, x.ndim))"),
    Mistake("unbiased variance", lambda x, gamma, beta, eps=1e-5: _normalised(x, gamma, beta, eps, _sample_axes(x), 1),
            "the variance is unbiased (ddof=1): LayerNorm uses the biased one, x.var()"),
    Mistake("batch axis", lambda x, gamma, beta, eps=1e-5: _normalised(x, gamma, beta, eps, 0),
            "the statistics are over the batch axis (that is batch norm): one mean and variance per sample"),
)


# ---------------------------------------------------------------------------------------------- Chapter 3a
def _torch_attention(q, k, v, mask=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _attention_cases():
    q, k, v = _tensors((2, 3, 5, 8), (2, 3, 5, 8), (2, 3, 5, 8))
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    return [(q, k, v), (q, k, v, causal), tuple(_tensors((1, 4, 16), (1, 4, 16), (1, 4, 16), seed=1))]


def _attention(q, k, v, mask=None, scaled=True, mask_after_softmax=False, inverted_mask=False):
    scores = q @ k.transpose(-2, -1) / (q.shape[-1] ** 0.5 if scaled else 1)
    blocked = None if mask is None else (mask if inverted_mask else ~mask)
    if blocked is not None and not mask_after_softmax:
        scores = scores.masked_fill(blocked, float("-inf"))
    weights = scores.softmax(-1)
    if blocked is not None and mask_after_softmax:
        weights = weights.masked_fill(blocked, 0.0)
    return weights @ v


ATTENTION_MISTAKES = (
    Mistake("no scale", lambda q, k, v, mask=None: _attention(q, k, v, mask, scaled=False),
            "the scores are not divided by √d_k"),
    Mistake("mask after softmax", lambda q, k, v, mask=None: _attention(q, k, v, mask, mask_after_softmax=True),
            "the mask is applied after the softmax: fill the blocked scores with −inf before it, so each row still "
            "sums to 1"),
    Mistake("mask inverted", lambda q, k, v, mask=None: _attention(q, k, v, mask, inverted_mask=True),
            "the mask is inverted: True means attention is allowed, so fill where ~mask"),
)


def _torch_multi_head_attention(x, w_qkv, b_qkv, w_out, b_out, heads):
    sequence_first = x.transpose(0, 1)               # torch's functional form takes (tokens, batch, dim)
    out, _ = F.multi_head_attention_forward(sequence_first, sequence_first, sequence_first, x.shape[-1], heads,
                                            w_qkv, b_qkv, None, None, False, 0.0, w_out, b_out, need_weights=False)
    return out.transpose(0, 1)


def _multi_head_attention_cases():
    return [(*_tensors((2, 6, 16), (48, 16), (48,), (16, 16), (16,), seed=seed), heads)
            for seed, heads in ((0, 4), (1, 1), (2, 8))]


def _multi_head(x, w_qkv, b_qkv, w_out, b_out, heads, scale_by_dim=False, plain_view=False):
    batch, tokens, dim = x.shape
    q, k, v = (x @ w_qkv.T + b_qkv).chunk(3, dim=-1)
    if plain_view:        # heads cut out of the flat (token, feature) memory: tokens and heads get mixed
        q, k, v = (t.reshape(batch, heads, tokens, dim // heads) for t in (q, k, v))
    else:
        q, k, v = (t.view(batch, tokens, heads, dim // heads).transpose(1, 2) for t in (q, k, v))
    weights = (q @ k.transpose(-2, -1) / (dim if scale_by_dim else dim // heads) ** 0.5).softmax(-1)
    merged = weights @ v
    merged = merged.reshape(batch, tokens, dim) if plain_view else merged.transpose(1, 2).reshape(batch, tokens, dim)
    return merged @ w_out.T + b_out


MULTI_HEAD_ATTENTION_MISTAKES = (
    Mistake("scaled by the model width", partial(_multi_head, scale_by_dim=True),
            "the scores are divided by √dim: each head divides by √(dim / heads), its own width"),
    Mistake("heads split by a plain reshape", partial(_multi_head, plain_view=True),
            "the heads are split with a plain reshape to B×heads×N×d: view as B×N×heads×d, then transpose(1, 2) "
            "(and back before merging)"),
)


def _torch_lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    cell = torch.nn.LSTMCell(x.shape[1], h.shape[1]).double()
    with torch.no_grad():
        for parameter, value in zip((cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh),
                                    (w_ih, w_hh, b_ih, b_hh)):
            parameter.copy_(value)
    return cell(x, (h, c))


def _lstm_cases():
    d, hidden = 5, 4
    def shapes(n):
        return (n, d), (n, hidden), (n, hidden), (4 * hidden, d), (4 * hidden, hidden), (4 * hidden,), (4 * hidden,)
    return [tuple(_tensors(*shapes(n), seed=seed)) for seed, n in ((0, 3), (1, 3), (2, 1))]


def _lstm(x, h, c, w_ih, w_hh, b_ih, b_hh, order="ifgo", tanh_of_cell=True):
    gates = dict(zip(order, (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)))
    c_new = torch.sigmoid(gates["f"]) * c + torch.sigmoid(gates["i"]) * torch.tanh(gates["g"])
    return torch.sigmoid(gates["o"]) * (torch.tanh(c_new) if tanh_of_cell else c_new), c_new


LSTM_MISTAKES = (
    Mistake("gate order i, f, o, g", partial(_lstm, order="ifog"),
            "the gates are read in the order i, f, o, g: PyTorch stacks them i, f, g, o"),
    Mistake("forget and input gates swapped", partial(_lstm, order="figo"),
            "the forget and input gates are swapped: PyTorch stacks them i, f, g, o"),
    Mistake("no tanh of the cell", partial(_lstm, tanh_of_cell=False),
            "h_new is o · c_new: it is o · tanh(c_new)"),
)


# ----------------------------------------------------------------------------------------------- Chapter 4
def _boxes(count, seed):
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(count, 2, generator=generator) * 50
    return torch.cat([corner, corner + 5 + torch.rand(count, 2, generator=generator) * 30], 1)


def _box_iou_cases():
    apart = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0]])
    return [(_boxes(5, 0), _boxes(7, 1)), (_boxes(1, 2), _boxes(3, 3)),
            (apart, torch.tensor([[20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.0]])),   # far apart, identical
            (torch.zeros(0, 4), _boxes(3, 4))]                                            # no boxes


def _box_iou(boxes1, boxes2, plus_one=0.0, clamped=True, minus_intersection=True):
    def area(b):
        return (b[:, 2] - b[:, 0] + plus_one) * (b[:, 3] - b[:, 1] + plus_one)
    sides = (torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:]) + plus_one
             - torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2]))
    intersection = (sides.clamp(min=0) if clamped else sides).prod(-1)
    union = area(boxes1)[:, None] + area(boxes2)[None] - (intersection if minus_intersection else 0)
    return intersection / union


BOX_IOU_MISTAKES = (
    Mistake("sides not clamped", lambda b1, b2: _box_iou(b1, b2, clamped=False),
            "the intersection's sides are not clamped at 0: two negative sides of boxes far apart multiply to a "
            "positive area"),
    Mistake("+1 pixel convention", lambda b1, b2: _box_iou(b1, b2, plus_one=1.0),
            "widths are x2 − x1 + 1 (the old pixel convention): torchvision's boxes are continuous, x2 − x1"),
    Mistake("union counts the overlap twice", lambda b1, b2: _box_iou(b1, b2, minus_intersection=False),
            "the union is area1 + area2: subtract the intersection, counted twice"),
)


def _nms_cases():
    cases = []
    for seed, threshold in ((0, 0.5), (1, 0.3), (2, 0.7)):
        scores = torch.rand(30, generator=torch.Generator().manual_seed(seed + 10))
        cases.append((_boxes(30, seed), scores, threshold))
    # boxes 0 and 1 overlap by exactly the threshold (IoU 50/100 = 0.5): kept, only IoU above it suppresses
    tie = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0], [20.0, 20.0, 30.0, 30.0],
                        [21.0, 20.0, 31.0, 30.0]])
    return cases + [(tie, torch.tensor([0.9, 0.8, 0.3, 0.95]), 0.5),
                    (_boxes(1, 5), torch.tensor([0.5]), 0.5),                               # one box
                    (torch.zeros(0, 4), torch.zeros(0), 0.5)]                               # no boxes


def _greedy_nms(boxes, scores, iou_threshold, by_score=True, suppress_equal=False):
    """Greedy NMS visiting the boxes by decreasing score (or, ``by_score=False``, in their given order)."""
    remaining = scores.argsort(descending=True) if by_score else torch.arange(len(scores))
    keep = []
    while len(remaining):
        best, remaining = remaining[0], remaining[1:]
        keep.append(int(best))
        iou = torchvision.ops.box_iou(boxes[best][None], boxes[remaining])[0]
        remaining = remaining[iou < iou_threshold] if suppress_equal else remaining[iou <= iou_threshold]
    return torch.tensor(keep, dtype=torch.long)


def _nms_positions_in_sorted_order(boxes, scores, iou_threshold):
    order = scores.argsort(descending=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    return rank[torchvision.ops.nms(boxes, scores, iou_threshold)]


NMS_MISTAKES = (
    Mistake("not sorted by score", partial(_greedy_nms, by_score=False),
            "the boxes are not sorted by score: visit them by decreasing score (scores.argsort(descending=True))"),
    Mistake(">= on the threshold", partial(_greedy_nms, suppress_equal=True),
            "boxes whose IoU equals the threshold are suppressed: suppress only IoU > iou_threshold (>, not >=)"),
    Mistake("positions in the sorted order", _nms_positions_in_sorted_order,
            "the kept positions in the score-sorted order are returned: return the boxes' own indices (order[kept])"),
)


def _pr_cases():
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(4):
        hits = rng.random(20) < 0.6
        true_positives = np.cumsum(hits)
        precision = true_positives / np.arange(1, 21)
        recall = true_positives / max(1, int(hits.sum()) + 3)
        cases.append((precision, recall))
    return cases + [(np.array([1.0]), np.array([0.5])),                    # one detection, half the objects
                    (np.zeros(0), np.zeros(0))]                             # no detection at all: AP 0


def _average_precision_11_point(precision, recall):
    return float(np.mean([precision[recall >= t].max(initial=0.0) for t in np.linspace(0, 1, 11)]))


def _average_precision_without_envelope(precision, recall):
    recall = np.concatenate([[0.0], recall])
    return float(np.sum((recall[1:] - recall[:-1]) * precision))


AVERAGE_PRECISION_MISTAKES = (
    Mistake("no envelope", _average_precision_without_envelope,
            "the precision is not made monotone: replace each by the largest at any higher recall (the envelope)"),
    Mistake("11-point interpolation", _average_precision_11_point,
            "VOC2007's 11-point interpolation: VOC's all-point AP sums Δrecall × envelope at every recall step"),
)


# ----------------------------------------------------------------------------------------------- Chapter 8
def _gaussian_heatmap_cases():
    return [(17, 23, (3.3, 15.8), 1.5), (64, 48, (20.0, 30.5), 2.0), (10, 12, (-2.0, 4.0), 3.0)]   # 2σ ≠ σ² first


def _heatmap(height, width, center_xy, sigma, denominator):
    xs, ys = torch.arange(width, dtype=torch.float32), torch.arange(height, dtype=torch.float32)
    cx, cy = center_xy
    return torch.exp(-((xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2) / denominator(sigma))


GAUSSIAN_HEATMAP_MISTAKES = (
    Mistake("sigma not squared", lambda h, w, c, sigma: _heatmap(h, w, c, sigma, lambda s: 2 * s),
            "σ is not squared: the denominator is 2σ²"),
    Mistake("the 2 missing", lambda h, w, c, sigma: _heatmap(h, w, c, sigma, lambda s: s ** 2),
            "the 2 of 2σ² is missing"),
    Mistake("x and y swapped", lambda h, w, center, sigma: pose.gaussian_heatmap(h, w, center[::-1], sigma),
            "x and y are swapped: center_xy is (x, y) = (column, row)"),
    Mistake("height and width swapped", lambda h, w, center, sigma: pose.gaussian_heatmap(w, h, center, sigma),
            "height and width are swapped: the map is height×width, xs along the columns"),
)


def _paf_score_cases():
    field = pose.limb_paf(40, 50, (10.0, 12.0), (38.0, 30.0), limb_width=2.0)
    field += 0.1 * torch.randn(field.shape, generator=torch.Generator().manual_seed(0))   # not only 0 and 1
    point = lambda x, y: torch.tensor([x, y])  # noqa: E731
    return [(field, point(10.2, 12.1), point(37.7, 29.6)),       # along the limb: about 1
            (field, point(37.7, 29.6), point(10.2, 12.1)),       # backwards: about −1
            (field, point(5.3, 35.2), point(45.1, 3.4), 7),      # across it
            (field, point(-0.4, 0.3), point(49.5, 39.5)),        # corner to corner: 49.5 rounds one past the edge
            (field, point(20.4, 20.4), point(20.4, 20.4))]       # no length: 0


def _paf(paf, p1, p2, samples=10, unit=True, to_pixel=torch.round, reduce=torch.mean):
    vector = p2 - p1
    length = vector.norm()
    if length < 1e-6:
        return torch.tensor(0.0)
    points = p1 + torch.linspace(0, 1, samples)[:, None] * vector
    columns = to_pixel(points[:, 0]).long().clamp(0, paf.shape[2] - 1)
    rows = to_pixel(points[:, 1]).long().clamp(0, paf.shape[1] - 1)
    return reduce((paf[:, rows, columns] * (vector / length if unit else vector)[:, None]).sum(0))


PAF_SCORE_MISTAKES = (
    Mistake("direction not normalised", partial(_paf, unit=False),
            "the field is dotted with p2 − p1: divide it by its length, the unit vector"),
    Mistake("coordinates truncated", partial(_paf, to_pixel=torch.floor),
            "the points' coordinates are truncated: round them to the nearest pixel (x.round().long())"),
    Mistake("sum over the samples", partial(_paf, reduce=torch.sum),
            "the dot products are summed: the score is their mean over the samples"),
)


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


def _oks(predicted, truth, areas, sigmas, k=lambda sigmas: 2 * sigmas, only_labelled=True):
    d2 = ((predicted[:, None, :, :2] - truth[None, :, :, :2]) ** 2).sum(-1)
    similarity = torch.exp(-d2 / (2 * areas[None, :, None] * k(sigmas) ** 2))
    labelled = (truth[:, :, 2] > 0 if only_labelled else torch.ones_like(truth[:, :, 2])).to(similarity.dtype)
    return (similarity * labelled).sum(-1) / labelled.sum(-1).clamp(min=1)


OKS_MISTAKES = (
    Mistake("no per-keypoint sigmas", partial(_oks, k=lambda sigmas: torch.ones_like(sigmas)),
            "the per-keypoint sigmas are left out: each keypoint type's Gaussian has its width, k = 2σ"),
    Mistake("k = σ", partial(_oks, k=lambda sigmas: sigmas),
            "k = σ: COCO's k is 2σ"),
    Mistake("unlabelled keypoints counted", partial(_oks, only_labelled=False),
            "every keypoint is counted: average over the labelled ones only (visibility v > 0)"),
)


# ----------------------------------------------------------------------------------------------- Chapter 9
def _pair_cases(*shapes_and_temperatures):
    return [(*_tensors(shape, shape, seed=seed, dtype=torch.float32), temperature)
            for seed, (shape, temperature) in enumerate(shapes_and_temperatures)]


def _triplet_cases():
    return [(*_tensors((6, 5), (6, 5), (6, 5), dtype=torch.float32), 0.5),
            (*_tensors((4, 3), (4, 3), (4, 3), seed=1, dtype=torch.float32), 2.0),
            (*_tensors((1, 4), (1, 4), (1, 4), seed=2, dtype=torch.float32), 1.0)]


def _triplet(anchor, positive, negative, margin, power=2, hinge=True, reduce=torch.mean):
    d_positive = (anchor - positive).norm(dim=1) ** power
    d_negative = (anchor - negative).norm(dim=1) ** power
    losses = d_positive - d_negative + margin
    return reduce(losses.clamp_min(0) if hinge else losses)


TRIPLET_MISTAKES = (
    Mistake("distances not squared", partial(_triplet, power=1),
            "the distances are not squared: FaceNet uses ‖a − p‖² and ‖a − n‖²"),
    Mistake("no hinge", partial(_triplet, hinge=False),
            "the hinge max(0, ·) is missing: triplets already beyond the margin must count 0"),
    Mistake("sum instead of mean", partial(_triplet, reduce=torch.sum),
            "the losses are summed: the loss is their mean over the triplets"),
)


def _nt_xent(z1, z2, temperature, scaled=True, masked=True, normalised=True, symmetric=True):
    n = len(z1)
    z = torch.cat([z1, z2])
    z = F.normalize(z, dim=1) if normalised else z
    logits = z @ z.T / (temperature if scaled else 1)
    if masked:
        logits = logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, targets) if symmetric else F.cross_entropy(logits[:n], targets[:n])


def _contrastive_mistakes(loss, one_direction: str) -> tuple:
    """The mistakes every contrastive loss invites; ``loss`` takes the switches scaled, normalised and symmetric."""
    return (Mistake("no temperature", partial(loss, scaled=False),
                    "there is no temperature: divide the similarities by it"),
            Mistake("unnormalised embeddings", partial(loss, normalised=False),
                    "the embeddings are not L2-normalised: the logits are cosine similarities (F.normalize(…, dim=1))"),
            Mistake("one direction only", partial(loss, symmetric=False), one_direction))


INFO_NCE_MISTAKES = _contrastive_mistakes(_nt_xent, "only z1's views are anchors: the mean runs over all 2N views") + (
    Mistake("diagonal unmasked", partial(_nt_xent, masked=False),
            "the diagonal is not masked: a view is not its own negative, set z·zᵀ's diagonal to −inf"),)


def _clip(image_embeddings, text_embeddings, temperature, scaled=True, normalised=True, symmetric=True):
    images, texts = image_embeddings, text_embeddings
    if normalised:
        images, texts = F.normalize(images, dim=1), F.normalize(texts, dim=1)
    logits = images @ texts.T / (temperature if scaled else 1)
    targets = torch.arange(len(logits))
    rows = F.cross_entropy(logits, targets)
    return (rows + F.cross_entropy(logits.T, targets)) / 2 if symmetric else rows


CLIP_MISTAKES = _contrastive_mistakes(
    _clip, "only images → texts is counted: average it with texts → images, the cross-entropy of logitsᵀ")


EXERCISES = [
    Exercise("conv2d", "01a_convolution_by_hand", "medium", numpy_layers.conv2d, _conv2d_cases, CONV2D_MISTAKES,
             forbidden=("conv2d", "Conv2d", "correlate2d", "convolve2d", "ndimage.correlate", "ndimage.convolve")),
    Exercise("max_pool2d", "01a_convolution_by_hand", "easy", _torch_max_pool2d, _max_pool2d_cases,
             MAX_POOL2D_MISTAKES, forbidden=("max_pool2d", "MaxPool2d", "maximum_filter")),
    Exercise("batch_norm_train", "01a_convolution_by_hand", "easy", _torch_batch_norm, _batch_norm_cases,
             BATCH_NORM_MISTAKES, forbidden=("batch_norm", "BatchNorm2d")),
    Exercise("softmax", "01c_why_training_works", "easy",
             lambda logits, axis=-1: torch.from_numpy(logits).softmax(axis).numpy(), _softmax_cases,
             SOFTMAX_MISTAKES, forbidden=("softmax", "log_softmax", "Softmax")),
    Exercise("cross_entropy", "01c_why_training_works", "easy", _torch_cross_entropy, _cross_entropy_cases,
             CROSS_ENTROPY_MISTAKES,
             forbidden=("cross_entropy", "CrossEntropyLoss", "nll_loss", "log_softmax", "softmax", "logsumexp",
                        "log_loss")),
    Exercise("layer_norm", "01c_why_training_works", "easy", _torch_layer_norm, _layer_norm_cases,
             LAYER_NORM_MISTAKES, forbidden=("layer_norm", "LayerNorm")),
    Exercise("scaled_dot_product_attention", "03a_attention_and_transformer", "medium", _torch_attention,
             _attention_cases, ATTENTION_MISTAKES,
             forbidden=("scaled_dot_product_attention", "MultiheadAttention", "multi_head_attention_forward")),
    Exercise("multi_head_attention", "03a_attention_and_transformer", "hard", _torch_multi_head_attention,
             _multi_head_attention_cases, MULTI_HEAD_ATTENTION_MISTAKES,
             forbidden=("MultiheadAttention", "multi_head_attention_forward")),
    Exercise("lstm_cell", "03a_attention_and_transformer", "hard", _torch_lstm_cell, _lstm_cases, LSTM_MISTAKES,
             forbidden=("LSTMCell", "LSTM", "lstm_cell", "lstm")),
    Exercise("box_iou", "04_detection", "easy", torchvision.ops.box_iou, _box_iou_cases, BOX_IOU_MISTAKES,
             forbidden=("box_iou", "generalized_box_iou", "complete_box_iou", "distance_box_iou")),
    Exercise("nms", "04_detection", "medium", torchvision.ops.nms, _nms_cases, NMS_MISTAKES,
             forbidden=("nms", "batched_nms")),
    Exercise("average_precision_voc", "04_detection", "medium", detection.average_precision_voc, _pr_cases,
             AVERAGE_PRECISION_MISTAKES,
             forbidden=("average_precision_voc", "average_precision_score", "average_precision",
                        "MeanAveragePrecision")),
    Exercise("gaussian_heatmap", "08_pose", "easy", pose.gaussian_heatmap, _gaussian_heatmap_cases,
             GAUSSIAN_HEATMAP_MISTAKES, forbidden=("pose.gaussian_heatmap",)),
    Exercise("paf_score", "08_pose", "medium", pose.paf_score, _paf_score_cases, PAF_SCORE_MISTAKES,
             forbidden=("pose.paf_score",)),
    Exercise("oks", "08_pose", "medium", pose.oks, _oks_cases, OKS_MISTAKES, forbidden=("pose.oks",)),
    Exercise("triplet_loss", "09_contrastive_multimodal", "easy", contrastive.triplet_loss, _triplet_cases,
             TRIPLET_MISTAKES, forbidden=("contrastive.triplet_loss", "triplet_margin_loss", "TripletMarginLoss")),
    Exercise("info_nce", "09_contrastive_multimodal", "hard", contrastive.info_nce,
             lambda: _pair_cases(((6, 8), 0.1), ((4, 3), 0.5), ((1, 5), 0.2)), INFO_NCE_MISTAKES,
             forbidden=("contrastive.info_nce",)),
    Exercise("clip_loss", "09_contrastive_multimodal", "medium", contrastive.clip_loss,
             lambda: _pair_cases(((5, 8), 0.07), ((3, 4), 1.0), ((1, 6), 0.1)), CLIP_MISTAKES,
             forbidden=("contrastive.clip_loss", "multimodal.clip_loss")),
]
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
    against the exercise's target, and the attempt is recorded with `utils.exercise_records.record_attempt`."""
    exercise = _exercise(name)
    if not callable(function):
        raise TypeError(f"pass your function itself, e.g. check({name!r}, {name}), not {type(function).__name__}")
    if started is not None and (isinstance(started, bool) or not isinstance(started, numbers.Real)):
        raise TypeError(f"started must be a time.perf_counter() reading (or None), got {started!r}")
    try:
        verify(name, function)
        reason = ""
    except ExerciseFailure as failure:
        if _is_official_solution(exercise, function):
            raise
        reason = str(failure)
    timing = ""
    if started is not None:
        from . import exercise_records     # here: only a drill's timed check writes a record, never a chapter

        seconds = max(0.0, time.perf_counter() - started)
        exercise_records.record_attempt(name, seconds, not reason, reason, chapter=exercise.chapter,
                                        difficulty=exercise.difficulty)
        timing = f" {exercise_records.against_target(exercise.difficulty, seconds)}"
    if reason:
        print(f"✗ {reason}\n  (the cells below use the reference {name} instead)")
        return exercise.reference
    print(f"✓ {name}: all {len(exercise.cases())} cases match the reference{timing}")
    return function
