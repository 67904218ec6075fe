"""The exercises of Chapter 4 (04_detection): their references, cases and known mistakes."""

from functools import partial

import numpy as np
import torch
import torchvision

from .. import detection
from .base import Exercise, Mistake


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


EXERCISES = [
    Exercise("box_iou", "04_detection", "easy", torchvision.ops.box_iou, _box_iou_cases, BOX_IOU_MISTAKES,
             forbidden=("box_iou", "generalized_box_iou", "complete_box_iou", "distance_box_iou")),
    Exercise("nms", "04_detection", "medium", torchvision.ops.nms, _nms_cases, NMS_MISTAKES,
             forbidden=("nms", "batched_nms")),
    Exercise("average_precision_voc", "04_detection", "medium", detection.average_precision_voc, _pr_cases,
             AVERAGE_PRECISION_MISTAKES,
             forbidden=("average_precision_voc", "average_precision_score", "average_precision",
                        "MeanAveragePrecision")),
]
