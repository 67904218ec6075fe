"""The classic mistakes, written as a learner would write them: every one fails its exercise's check, and where the
exercise knows the mistake (`Exercise.mistakes`), the message names it — found by comparing outputs, not by
recognising the code. The cases are what makes this possible (utils/exercises.py): a stride that changes the
rounding (H=9, p=1, k=3, s=2), non-square inputs, a batch of one, empty inputs, an IoU tie at the threshold,
logits of ±1000, a constant channel."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from utils import exercises
from utils.exercises import BY_NAME, EXERCISES, ExerciseFailure, verify


# ------------------------------------------------------------------------------------------------ conv2d
def _loop_conv2d(x, weight, bias, stride, padding, out_size, square=False, pad=True, flip=False):
    """conv2d with explicit loops over the output, the way most first attempts are written."""
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        size_padding = padding
    else:
        size_padding = 0
    k = weight.shape[-1]
    weight = weight[..., ::-1, ::-1] if flip else weight
    h_out = out_size(x.shape[2] - 2 * size_padding, k, stride, size_padding)
    w_out = h_out if square else out_size(x.shape[3] - 2 * size_padding, k, stride, size_padding)
    out = np.zeros((x.shape[0], weight.shape[0], h_out, w_out))
    for i in range(h_out):
        for j in range(w_out):
            window = x[:, None, :, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, :, i, j] = (window * weight[None]).sum((2, 3, 4))
    return out if bias is None else out + bias[None, :, None, None]


def _right_size(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def conv2d_without_plus_one(x, weight, bias=None, stride=1, padding=0):
    return _loop_conv2d(x, weight, bias, stride, padding, lambda n, k, s, p: (n + 2 * p - k) // s)


def conv2d_plus_one_inside(x, weight, bias=None, stride=1, padding=0):
    return _loop_conv2d(x, weight, bias, stride, padding, lambda n, k, s, p: (n + 2 * p - k + 1) // s)


def conv2d_square(x, weight, bias=None, stride=1, padding=0):
    return _loop_conv2d(x, weight, bias, stride, padding, _right_size, square=True)


def conv2d_unpadded(x, weight, bias=None, stride=1, padding=0):
    return _loop_conv2d(x, weight, bias, stride, padding, _right_size, pad=False)


def conv2d_flipped(x, weight, bias=None, stride=1, padding=0):
    return _loop_conv2d(x, weight, bias, stride, padding, _right_size, flip=True)


# ------------------------------------------------------------------------------ max-pool, the norms (Chapter 1)
def max_pool2d_stride_ignored(x, kernel_size, stride=None):
    windows = np.lib.stride_tricks.sliding_window_view(x, (kernel_size, kernel_size), axis=(2, 3))
    return windows[:, :, ::kernel_size, ::kernel_size].max(axis=(-2, -1))


def max_pool2d_from_zero(x, kernel_size, stride=None):
    stride = stride or kernel_size
    h, w = (x.shape[2] - kernel_size) // stride + 1, (x.shape[3] - kernel_size) // stride + 1
    out = np.zeros(x.shape[:2] + (h, w))
    for i in range(h):
        for j in range(w):
            for di in range(kernel_size):
                for dj in range(kernel_size):
                    out[:, :, i, j] = np.maximum(out[:, :, i, j], x[:, :, i * stride + di, j * stride + dj])
    return out


def batch_norm_unbiased(x, gamma, beta, eps=1e-5):
    mean, var = x.mean((0, 2, 3), keepdims=True), x.var((0, 2, 3), ddof=1, keepdims=True)
    return gamma[None, :, None, None] * (x - mean) / np.sqrt(var + eps) + beta[None, :, None, None]


def batch_norm_without_eps(x, gamma, beta, eps=1e-5):
    mean, std = x.mean((0, 2, 3), keepdims=True), x.std((0, 2, 3), keepdims=True)
    return gamma[None, :, None, None] * (x - mean) / std + beta[None, :, None, None]


def batch_norm_over_batch_only(x, gamma, beta, eps=1e-5):
    return gamma[None, :, None, None] * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + beta[None, :, None, None]


def softmax_overflowing(logits, axis=-1):
    return np.exp(logits) / np.sum(np.exp(logits), axis=axis, keepdims=True)


def softmax_global_max(logits, axis=-1):
    e = np.exp(logits - np.max(logits))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_last_axis(logits, axis=-1):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def cross_entropy_overflowing(logits, labels):
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return -np.mean(np.log(probabilities[np.arange(len(labels)), labels]))


def _log_softmax(logits):
    shifted = logits - logits.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


def cross_entropy_summed(logits, labels):
    return -_log_softmax(logits)[np.arange(len(labels)), labels].sum()


def cross_entropy_every_label(logits, labels):
    return -_log_softmax(logits)[:, labels].mean()


def layer_norm_last_axis(x, gamma, beta, eps=1e-5):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def layer_norm_unbiased(x, gamma, beta, eps=1e-5):
    axes = tuple(range(1, x.ndim))
    mean, var = x.mean(axes, keepdims=True), x.var(axes, ddof=1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


# --------------------------------------------------------------------------------------- attention (Chapter 3a)
def attention_unscaled(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def attention_masked_after_softmax(q, k, v, mask=None):
    weights = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
    return (weights if mask is None else weights * mask) @ v


def attention_mask_inverted(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def multi_head_attention_scaled_by_dim(x, w_qkv, b_qkv, w_out, b_out, heads):
    batch, tokens, dim = x.shape
    q, k, v = (x @ w_qkv.T + b_qkv).chunk(3, dim=-1)
    q, k, v = (t.view(batch, tokens, heads, -1).transpose(1, 2) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-2, -1) / dim ** 0.5, -1)
    return (weights @ v).transpose(1, 2).reshape(batch, tokens, dim) @ w_out.T + b_out


def multi_head_attention_reshaped(x, w_qkv, b_qkv, w_out, b_out, heads):
    batch, tokens, dim = x.shape
    q, k, v = (x @ w_qkv.T + b_qkv).chunk(3, dim=-1)
    q, k, v = (t.reshape(batch, heads, tokens, dim // heads) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-2, -1) / (dim // heads) ** 0.5, -1)
    return (weights @ v).reshape(batch, tokens, dim) @ w_out.T + b_out


def lstm_cell_ifog(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, o, g = (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new


def lstm_cell_without_tanh(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * c_new, c_new


# --------------------------------------------------------------------------------------- detection (Chapter 4)
def _pairwise_iou(boxes1, boxes2, plus_one=0.0, clamp=True):
    x1 = torch.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    y1 = torch.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    x2 = torch.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
    y2 = torch.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
    w, h = x2 - x1 + plus_one, y2 - y1 + plus_one
    intersection = w.clamp(min=0) * h.clamp(min=0) if clamp else w * h
    area1 = (boxes1[:, 2] - boxes1[:, 0] + plus_one) * (boxes1[:, 3] - boxes1[:, 1] + plus_one)
    area2 = (boxes2[:, 2] - boxes2[:, 0] + plus_one) * (boxes2[:, 3] - boxes2[:, 1] + plus_one)
    return intersection / (area1[:, None] + area2[None] - intersection)


def box_iou_unclamped(boxes1, boxes2):
    return _pairwise_iou(boxes1, boxes2, clamp=False)


def box_iou_plus_one(boxes1, boxes2):
    return _pairwise_iou(boxes1, boxes2, plus_one=1.0)


def nms_unsorted(boxes, scores, iou_threshold):
    keep, suppressed = [], set()
    for i in range(len(boxes)):
        if i in suppressed:
            continue
        keep.append(i)
        ious = _pairwise_iou(boxes[i:i + 1], boxes)[0]
        suppressed |= {j for j in range(i + 1, len(boxes)) if ious[j] > iou_threshold}
    return torch.tensor(keep, dtype=torch.long)


def nms_greater_or_equal(boxes, scores, iou_threshold):
    order = scores.argsort(descending=True).tolist()
    keep = []
    while order:
        best = order.pop(0)
        keep.append(best)
        ious = _pairwise_iou(boxes[best:best + 1], boxes)[0]
        order = [j for j in order if ious[j] < iou_threshold]
    return torch.tensor(keep, dtype=torch.long)


def nms_sorted_positions(boxes, scores, iou_threshold):
    order = scores.argsort(descending=True)
    boxes = boxes[order]
    keep, alive = [], list(range(len(boxes)))
    while alive:
        best = alive.pop(0)
        keep.append(best)
        ious = _pairwise_iou(boxes[best:best + 1], boxes)[0]
        alive = [j for j in alive if ious[j] <= iou_threshold]
    return torch.tensor(keep, dtype=torch.long)         # forgot order[keep]


def average_precision_no_envelope(precision, recall):
    previous, area = 0.0, 0.0
    for p, r in zip(precision, recall):
        area += (r - previous) * p
        previous = r
    return area


def average_precision_11_point(precision, recall):
    return np.mean([max([p for p, r in zip(precision, recall) if r >= t], default=0) for t in np.arange(0, 1.1, 0.1)])


# -------------------------------------------------------------------------------------------- pose (Chapter 8)
def gaussian_heatmap_sigma_not_squared(height, width, center_xy, sigma):
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.exp(-((xs - center_xy[0]) ** 2 + (ys - center_xy[1]) ** 2) / (2 * sigma))


def gaussian_heatmap_without_the_two(height, width, center_xy, sigma):
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.exp(-((xs - center_xy[0]) ** 2 + (ys - center_xy[1]) ** 2) / sigma ** 2)


def gaussian_heatmap_swapped(height, width, center_xy, sigma):
    row, column = center_xy                                           # read (x, y) as (row, column)
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.exp(-((xs - column) ** 2 + (ys - row) ** 2) / (2 * sigma ** 2))


def _sampled_field(paf, p1, p2, samples, to_pixel):
    points = [p1 + t * (p2 - p1) for t in torch.linspace(0, 1, samples)]
    return torch.stack([paf[:, min(max(to_pixel(y), 0), paf.shape[1] - 1), min(max(to_pixel(x), 0), paf.shape[2] - 1)]
                        for x, y in points])


def paf_score_unnormalised(paf, p1, p2, samples=10):
    if torch.equal(p1, p2):
        return torch.tensor(0.0)
    return (_sampled_field(paf, p1, p2, samples, lambda v: int(v.round())) @ (p2 - p1)).mean()


def paf_score_truncated(paf, p1, p2, samples=10):
    if torch.equal(p1, p2):
        return torch.tensor(0.0)
    direction = (p2 - p1) / (p2 - p1).norm()
    return (_sampled_field(paf, p1, p2, samples, lambda v: int(v)) @ direction).mean()


def _oks(predicted, truth, areas, k, labelled_only=True):
    d2 = ((predicted[:, None, :, :2] - truth[None, :, :, :2]) ** 2).sum(-1)
    similarity = torch.exp(-d2 / (2 * areas[None, :, None] * k ** 2))
    labelled = (truth[:, :, 2] > 0).double() if labelled_only else torch.ones_like(truth[:, :, 2])
    return (similarity * labelled).sum(-1) / labelled.sum(-1).clamp(min=1)


def oks_without_sigmas(predicted, truth, areas, sigmas):
    return _oks(predicted, truth, areas, 1.0)


def oks_k_is_sigma(predicted, truth, areas, sigmas):
    return _oks(predicted, truth, areas, sigmas)


def oks_counting_unlabelled(predicted, truth, areas, sigmas):
    return _oks(predicted, truth, areas, 2 * sigmas, labelled_only=False)


# -------------------------------------------------------------------------------- contrastive (Chapter 9)
def triplet_loss_unsquared(anchor, positive, negative, margin):
    return torch.relu((anchor - positive).norm(dim=1) - (anchor - negative).norm(dim=1) + margin).mean()


def triplet_loss_without_hinge(anchor, positive, negative, margin):
    return ((anchor - positive).pow(2).sum(1) - (anchor - negative).pow(2).sum(1) + margin).mean()


def _nt_xent(z1, z2, divide_by, normalise=True, mask=True):
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True) if normalise else z
    logits = z @ z.T / divide_by
    if mask:
        logits = logits - torch.eye(len(z)) * 1e9
    n = len(z1)
    return F.cross_entropy(logits, torch.cat([torch.arange(n) + n, torch.arange(n)]))


def info_nce_without_temperature(z1, z2, temperature):
    return _nt_xent(z1, z2, 1.0)


def info_nce_diagonal_unmasked(z1, z2, temperature):
    return _nt_xent(z1, z2, temperature, mask=False)


def info_nce_unnormalised(z1, z2, temperature):
    return _nt_xent(z1, z2, temperature, normalise=False)


def clip_loss_without_temperature(image_embeddings, text_embeddings, temperature):
    logits = F.normalize(image_embeddings, dim=1) @ F.normalize(text_embeddings, dim=1).T
    targets = torch.arange(len(logits))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def clip_loss_one_direction(image_embeddings, text_embeddings, temperature):
    logits = F.normalize(image_embeddings, dim=1) @ F.normalize(text_embeddings, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(logits)))


def clip_loss_unnormalised(image_embeddings, text_embeddings, temperature):
    logits = image_embeddings @ text_embeddings.T / temperature
    targets = torch.arange(len(logits))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


# The catalogue: (exercise, the learner's wrong function, the registered mistake its message must name).
CATALOGUE = [
    ("conv2d", conv2d_without_plus_one, "output size missing the +1"),
    ("conv2d", conv2d_plus_one_inside, "+1 inside the division"),
    ("conv2d", conv2d_square, "square image assumed"),
    ("conv2d", conv2d_unpadded, "padding forgotten"),
    ("conv2d", conv2d_flipped, "kernel flipped"),
    ("max_pool2d", max_pool2d_stride_ignored, "stride ignored"),
    ("max_pool2d", max_pool2d_from_zero, "maximum starts at 0"),
    ("batch_norm_train", batch_norm_unbiased, "unbiased variance"),
    ("batch_norm_train", batch_norm_without_eps, "eps forgotten"),
    ("batch_norm_train", batch_norm_over_batch_only, "batch axis only"),
    ("softmax", softmax_overflowing, "no max-subtraction"),
    ("softmax", softmax_global_max, "global maximum"),
    ("softmax", softmax_last_axis, "axis ignored"),
    ("cross_entropy", cross_entropy_overflowing, "no log-sum-exp"),
    ("cross_entropy", cross_entropy_summed, "sum instead of mean"),
    ("cross_entropy", cross_entropy_every_label, "every row at every label"),
    ("layer_norm", layer_norm_last_axis, "last axis only"),
    ("layer_norm", layer_norm_unbiased, "unbiased variance"),
    ("scaled_dot_product_attention", attention_unscaled, "no scale"),
    ("scaled_dot_product_attention", attention_masked_after_softmax, "mask after softmax"),
    ("scaled_dot_product_attention", attention_mask_inverted, "mask inverted"),
    ("multi_head_attention", multi_head_attention_scaled_by_dim, "scaled by the model width"),
    ("multi_head_attention", multi_head_attention_reshaped, "heads split by a plain reshape"),
    ("lstm_cell", lstm_cell_ifog, "gate order i, f, o, g"),
    ("lstm_cell", lstm_cell_without_tanh, "no tanh of the cell"),
    ("box_iou", box_iou_unclamped, "sides not clamped"),
    ("box_iou", box_iou_plus_one, "+1 pixel convention"),
    ("nms", nms_unsorted, "not sorted by score"),
    ("nms", nms_greater_or_equal, ">= on the threshold"),
    ("nms", nms_sorted_positions, "positions in the sorted order"),
    ("average_precision_voc", average_precision_no_envelope, "no envelope"),
    ("average_precision_voc", average_precision_11_point, "11-point interpolation"),
    ("gaussian_heatmap", gaussian_heatmap_sigma_not_squared, "sigma not squared"),
    ("gaussian_heatmap", gaussian_heatmap_without_the_two, "the 2 missing"),
    ("gaussian_heatmap", gaussian_heatmap_swapped, "x and y swapped"),
    ("paf_score", paf_score_unnormalised, "direction not normalised"),
    ("paf_score", paf_score_truncated, "coordinates truncated"),
    ("oks", oks_without_sigmas, "no per-keypoint sigmas"),
    ("oks", oks_k_is_sigma, "k = σ"),
    ("oks", oks_counting_unlabelled, "unlabelled keypoints counted"),
    ("triplet_loss", triplet_loss_unsquared, "distances not squared"),
    ("triplet_loss", triplet_loss_without_hinge, "no hinge"),
    ("info_nce", info_nce_without_temperature, "no temperature"),
    ("info_nce", info_nce_diagonal_unmasked, "diagonal unmasked"),
    ("info_nce", info_nce_unnormalised, "unnormalised embeddings"),
    ("clip_loss", clip_loss_without_temperature, "no temperature"),
    ("clip_loss", clip_loss_one_direction, "one direction only"),
    ("clip_loss", clip_loss_unnormalised, "unnormalised embeddings"),
]


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
        verify("nms", nms_unsorted)
    assert "case 1 of 6 (boxes=tensor 30×4, scores=tensor 30, iou_threshold=0.5;" in str(failure.value)
    assert "first wrong at index (0,)" in str(failure.value)      # the first wrong position, not the largest
    assert "boxes are not sorted by score" in str(failure.value)
    with pytest.raises(ExerciseFailure, match=r"info_nce: case 1 of 3 \(z1=tensor 6×8, z2=tensor 6×8, "
                                              r"temperature=0.1; fetch them with exercises.case\(\"info_nce\", 1\)\): "
                                              r"got 2.43966, expected 5.89327; looks like there is no temperature"):
        verify("info_nce", info_nce_without_temperature)
    with pytest.raises(ExerciseFailure, match=r"case 4 of 5 \(x=array 1×2×9×12, weight=array 3×2×3×3, bias=array\("
                                              r"\[.*\]\), stride=2, padding=1; .*looks like the \+1 is inside"):
        verify("conv2d", conv2d_plus_one_inside)


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
