"""Chapter 4's exercises (04_detection) done wrong, the way learners do: each entry of `CATALOGUE` is (exercise,
mistaken function, the registered mistake its message must name)."""

import numpy as np
import torch


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


CATALOGUE = [
    ("box_iou", box_iou_unclamped, "sides not clamped"),
    ("box_iou", box_iou_plus_one, "+1 pixel convention"),
    ("nms", nms_unsorted, "not sorted by score"),
    ("nms", nms_greater_or_equal, ">= on the threshold"),
    ("nms", nms_sorted_positions, "positions in the sorted order"),
    ("average_precision_voc", average_precision_no_envelope, "no envelope"),
    ("average_precision_voc", average_precision_11_point, "11-point interpolation"),
]
