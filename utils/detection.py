"""Object detection from scratch: box formats, the IoU family, NMS, k-means anchors, letterbox, mAP, and the
pictures of labelled boxes every detection figure draws.

Introduced in Chapter 4 (04_detection). Every function here is small, vectorised and asserted in the chapter
(and in ``tests/test_detection.py``) against its library counterpart: `torchvision.ops` for boxes and NMS,
`torchmetrics.detection.MeanAveragePrecision` for mAP. Boxes are float tensors ``N×4`` in xyxy pixels
(x2, y2 exclusive) unless a name says otherwise.

Bad input, defined once for the whole module:

- a box with x2 < x1 or y2 < y1 (negative width or height: usually xywh passed as xyxy) → ValueError;
- a zero-area box is legal: its IoU with anything is 0, and GIoU/DIoU/CIoU stay finite (an ε guards
  every division), where torchvision would return NaN;
- empty inputs give empty results: `box_iou` of N and 0 boxes is N×0, `nms` of no boxes keeps none;
- scores, labels and boxes of one image must have one entry per box, and a NaN score (a diverged model) is
  refused: it cannot be ranked, and ranking it anyway silently suppresses valid boxes;
- `mean_average_precision`: an image with no predictions contributes only misses; an image with no targets
  contributes only false positives; a class with no targets anywhere is left out of the mean (its entry in
  ``map_per_class`` is −1) and its predictions are ignored; with no targets at all every value is −1 —
  exactly the COCO / torchmetrics conventions.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .checks import check_fraction
from .data import CLASSES

EPS = 1e-7
IOU_KINDS = ("iou", "giou", "diou", "ciou", "siou")
BOX_FORMATS = ("xyxy", "xywh", "cxcywh")
# COCO's thresholds, built as torchmetrics builds them (float32 linspace), so that a recall of exactly 0.7
# falls on the same side of the 0.7 point in both implementations.
COCO_IOU_THRESHOLDS = tuple(torch.linspace(0.5, 0.95, 10).tolist())
COCO_RECALL_POINTS = np.array(torch.linspace(0.0, 1.0, 101).tolist())


# --------------------------------------------------------------------------------------------- box formats
def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Convert ``N×4`` boxes between "xyxy" (corners), "xywh" (top-left + size) and "cxcywh" (centre + size)."""
    for fmt in (in_fmt, out_fmt):
        if fmt not in BOX_FORMATS:
            raise ValueError(f"box format must be one of {BOX_FORMATS}, not {fmt!r}")
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if out_fmt == "xywh":
        return torch.stack([a, b, c - a, d - b], -1)
    if out_fmt == "cxcywh":
        return torch.stack([(a + c) / 2, (b + d) / 2, c - a, d - b], -1)
    return torch.stack([a, b, c, d], -1)


def _check_boxes(boxes: torch.Tensor, name: str) -> torch.Tensor:
    if not torch.is_tensor(boxes) or boxes.ndim != 2 or boxes.shape[-1] != 4:
        shape = tuple(boxes.shape) if torch.is_tensor(boxes) else type(boxes).__name__
        raise ValueError(f"{name} must be an N×4 tensor (x1, y1, x2, y2), got {shape}")
    _check_corners({name: boxes})
    return boxes.float()


def _check_corners(named: dict) -> None:
    """Refuse a box (…×4 xyxy, in any of the named tensors) with a NaN or infinite coordinate or with x2 < x1 or
    y2 < y1; one host sync for all of them. A NaN box overlaps nothing, so NMS would keep it beside its duplicate."""
    flat = [boxes.detach().reshape(-1, 4) for boxes in named.values()]
    every = torch.cat(flat)
    broken = ~torch.isfinite(every).all(1) | (every[:, 2:] < every[:, :2]).any(1)
    if not broken.any():
        return
    row = int(broken.nonzero()[0, 0])
    for name, rows in zip(named, flat):
        if row < len(rows):
            break
        row -= len(rows)
    box = rows[row].tolist()
    if not all(math.isfinite(v) for v in box):
        raise ValueError(f"{name} holds a box with a NaN or infinite coordinate (row {row}: {box}): pass finite "
                         "xyxy boxes (a model whose loss went NaN predicts such boxes)")
    raise ValueError(f"{name} holds a box with x2 < x1 or y2 < y1 (row {row}: {box}): boxes must be xyxy corners "
                     "with x1 ≤ x2 and y1 ≤ y2; xywh or cxcywh boxes passed as xyxy look like this, so convert them "
                     "first: box_convert(boxes, 'xywh', 'xyxy') (or torchvision.ops.box_convert)")


def _check_per_box(values: torch.Tensor, count: int, name: str) -> None:
    """``values`` must be a 1-D tensor with one entry per box; scores must not be NaN."""
    if not torch.is_tensor(values) or values.shape != (count,):
        shape = tuple(values.shape) if torch.is_tensor(values) else type(values).__name__
        raise ValueError(f"{name} must have shape ({count},), one per box, got {shape}")
    if values.is_floating_point() and torch.isnan(values).any():
        raise ValueError(f"{name} hold NaN: the model's output is broken (check its loss for NaN); "
                         "NaN cannot be ranked")


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of ``N×4`` xyxy boxes → ``N``."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


# ------------------------------------------------------------------------------------------- the IoU family
def _iou_family(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """IoU-family value of boxes ``a`` and ``b`` (…×4 each, broadcast together) → ….

    iou  = |A∩B| / |A∪B|
    giou = iou − |C \\ (A∪B)| / |C|            C: the smallest box enclosing both (GIoU, 2019)
    diou = iou − ρ²(centres) / c²              c: the diagonal of C (DIoU, 2020)
    ciou = diou − α·v,  v = 4/π²·(atan(w_b/h_b) − atan(w_a/h_a))²,  α = v / (1 − iou + v)  (CIoU)
    siou = iou − (Δ + Ω)/2   (SIoU, 2022, YOLOv6): the angle cost Λ = cos(2α − π/2) of the line between the
           centres (α its angle to the x axis) sets γ = 2 − Λ in the distance cost Δ = Σ_x,y (1 − e^(−γρ_t)),
           ρ_t = (centre offset along t / side of C along t)²; the shape cost Ω = Σ_w,h (1 − e^(−ω_t))⁴,
           ω_t = |side_a − side_b| / max(side_a, side_b)
    """
    if kind not in IOU_KINDS:
        raise ValueError(f"kind must be one of {IOU_KINDS}, not {kind!r}")
    overlap = (torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2])).clamp(min=0)
    inter = overlap[..., 0] * overlap[..., 1]
    union = box_area(a) + box_area(b) - inter
    iou = inter / union.clamp(min=EPS)
    if kind == "iou":
        return iou
    enclosing = torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])
    if kind == "giou":
        enclosing_area = enclosing[..., 0] * enclosing[..., 1]
        return iou - (enclosing_area - union) / enclosing_area.clamp(min=EPS)
    if kind == "siou":
        offset = (b[..., :2] + b[..., 2:]) / 2 - (a[..., :2] + a[..., 2:]) / 2             # centre b − centre a
        sin_alpha = offset[..., 1].abs() / offset.norm(dim=-1).clamp(min=EPS)
        angle_cost = torch.cos(2 * torch.arcsin(sin_alpha.clamp(max=1)) - math.pi / 2)
        rho = (offset / enclosing.clamp(min=EPS)).pow(2)
        distance_cost = (1 - torch.exp(-(2 - angle_cost)[..., None] * rho)).sum(-1)
        sides_a, sides_b = a[..., 2:] - a[..., :2], b[..., 2:] - b[..., :2]
        omega = (sides_a - sides_b).abs() / torch.maximum(sides_a, sides_b).clamp(min=EPS)
        shape_cost = (1 - torch.exp(-omega)).pow(4).sum(-1)
        return iou - (distance_cost + shape_cost) / 2
    diagonal_squared = (enclosing ** 2).sum(-1) + EPS
    centre_distance_squared = (((a[..., :2] + a[..., 2:]) - (b[..., :2] + b[..., 2:])) / 2).pow(2).sum(-1)
    diou = iou - centre_distance_squared / diagonal_squared
    if kind == "diou":
        return diou
    wa, ha = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
    wb, hb = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    v = 4 / math.pi ** 2 * (torch.atan2(wb, hb) - torch.atan2(wa, ha)).pow(2)  # atan2: finite when h = 0
    with torch.no_grad():  # α is a weight, not a path for gradients (as in the paper and torchvision)
        alpha = v / (1 - iou + v + EPS)
    return diou - alpha * v


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str = "iou") -> torch.Tensor:
    """Pairwise IoU-family matrix of ``N×4`` and ``M×4`` xyxy boxes → ``N×M``; kind in iou|giou|diou|ciou|siou.

    Same values as `torchvision.ops.box_iou`, `generalized_box_iou`, `distance_box_iou`, `complete_box_iou`
    (torchvision has no SIoU; tests check it against the paper's formulas written out for one pair).
    """
    boxes1, boxes2 = _check_boxes(boxes1, "boxes1"), _check_boxes(boxes2, "boxes2")
    return _iou_family(boxes1[:, None, :], boxes2[None, :, :], kind)


def paired_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str = "iou", *,
                   check: bool = True) -> torch.Tensor:
    """IoU-family value of row i of ``boxes1`` with row i of ``boxes2`` (both ``…×4`` xyxy) → ``…`` (for losses).

    Boxes with unordered corners (usually xywh passed as xyxy: a box against itself would score 0) or a NaN are
    refused. ``check=False`` skips that for boxes a detector builds itself, ordered by construction: on a GPU the
    check waits for the device, once per training step.
    """
    if not (torch.is_tensor(boxes1) and torch.is_tensor(boxes2)) or boxes1.shape != boxes2.shape or \
            boxes1.ndim == 0 or boxes1.shape[-1] != 4:
        shapes = [tuple(b.shape) if torch.is_tensor(b) else type(b).__name__ for b in (boxes1, boxes2)]
        raise ValueError(f"paired boxes need equal shapes …×4 (xyxy), got {shapes[0]} and {shapes[1]}")
    if check:
        _check_corners({"boxes1": boxes1, "boxes2": boxes2})
    return _iou_family(boxes1.float(), boxes2.float(), kind)


def iou_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "ciou") -> torch.Tensor:
    """Mean of 1 − IoU-family(pred_i, target_i): the box-regression loss of YOLOv4+ (0 for no boxes).

    ``pred`` and ``target`` are N×4 xyxy; an inverted box (x2 < x1: usually xywh passed as xyxy) is refused.
    """
    if not (torch.is_tensor(pred) and torch.is_tensor(target)) or pred.shape != target.shape or pred.ndim != 2 \
            or pred.shape[-1] != 4:
        shapes = [tuple(b.shape) if torch.is_tensor(b) else type(b).__name__ for b in (pred, target)]
        raise ValueError(f"pred and target must both be N×4, got {shapes[0]} and {shapes[1]}")
    _check_corners({"pred": pred, "target": target})
    if len(pred) == 0:
        return pred.sum() * 0.0
    return (1 - paired_box_iou(pred, target, kind, check=False)).mean()


# ------------------------------------------------------------------------------------------------------ NMS
def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, kind: str = "iou") -> torch.Tensor:
    """Greedy non-maximum suppression → indices of the kept boxes, highest score first.

    Take the best remaining box, drop every box whose overlap with it exceeds ``iou_threshold``, repeat.
    ``kind="diou"`` gives DIoU-NMS (YOLOv4): overlap = IoU − ρ²/c², so a box whose centre is far away survives
    even when it overlaps — it is probably another object. With kind="iou" the result equals
    `torchvision.ops.nms`.
    """
    check_fraction(iou_threshold, "iou_threshold")
    boxes = _check_boxes(boxes, "boxes")
    _check_per_box(scores, len(boxes), "scores")
    order = torch.sort(scores, descending=True, stable=True).indices
    overlap = box_iou(boxes[order], boxes[order], kind)   # one matrix, then a cheap loop over rows
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlap[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def batched_nms(boxes, scores, labels, iou_threshold: float, kind: str = "iou") -> torch.Tensor:
    """NMS within each class only: shift each class's boxes by its own offset so classes never overlap.

    Same result as `torchvision.ops.batched_nms` (for kind="iou").
    """
    check_fraction(iou_threshold, "iou_threshold")
    boxes = _check_boxes(boxes, "boxes")
    _check_per_box(scores, len(boxes), "scores")
    _check_per_box(labels, len(boxes), "labels")
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    offsets = labels.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold, kind)


def postprocess(boxes, scores, labels, confidence: float = 0.25, iou_threshold: float = 0.5,
                max_detections: int = 100, kind: str = "iou") -> dict:
    """The detector's last step, written out: confidence filter → per-class NMS → keep the top ``max_detections``.

    ``boxes`` N×4, ``scores`` N, ``labels`` N for one image → ``{"boxes", "scores", "labels"}`` (torchmetrics format).
    Filtering first is what makes NMS fast: most of a grid's thousands of candidates are background.
    """
    check_fraction(confidence, "confidence")
    check_fraction(iou_threshold, "iou_threshold")
    boxes = _check_boxes(boxes, "boxes")
    _check_per_box(scores, len(boxes), "scores")
    _check_per_box(labels, len(boxes), "labels")
    if not isinstance(max_detections, int) or max_detections < 0:
        raise ValueError(f"max_detections must be a non-negative integer, not {max_detections!r}")
    confident = scores >= confidence
    boxes, scores, labels = boxes[confident], scores[confident], labels[confident]
    keep = batched_nms(boxes, scores, labels, iou_threshold, kind)[:max_detections]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}


# ------------------------------------------------------------------------------------------ k-means anchors
def wh_iou(wh1: torch.Tensor, wh2: torch.Tensor) -> torch.Tensor:
    """IoU of box shapes ``N×2`` and ``M×2`` (width, height) as if they shared a centre → ``N×M``."""
    inter = torch.minimum(wh1[:, None], wh2[None]).prod(-1)
    return inter / (wh1.prod(-1)[:, None] + wh2.prod(-1)[None] - inter).clamp(min=EPS)


def kmeans_anchors(wh: torch.Tensor, k: int, iterations: int = 100, seed: int = 0):
    """YOLOv2's anchors: k-means on box shapes with distance 1 − IoU (not Euclidean: a big box must not dominate).

    ``wh`` N×2 → ``(anchors k×2 sorted by area, mean IoU of each box with its best anchor)``.
    Centres are updated with the median (as darknet's and YOLOv5's scripts do): robust to outliers.
    """
    if wh.ndim != 2 or wh.shape[1] != 2:
        raise ValueError(f"wh must be N×2 (widths, heights), got shape {tuple(wh.shape)}")
    if not 1 <= k <= len(wh):
        raise ValueError(f"k must be between 1 and the number of boxes ({len(wh)}), not {k}")
    wh = wh.float()
    generator = torch.Generator().manual_seed(seed)
    centres = wh[torch.randperm(len(wh), generator=generator)[:k]].clone()
    for _ in range(iterations):
        assignment = wh_iou(wh, centres).argmax(1)      # nearest = highest IoU = smallest 1 − IoU
        updated = torch.stack([wh[assignment == j].median(0).values if (assignment == j).any() else centres[j]
                               for j in range(k)])
        if torch.equal(updated, centres):
            break
        centres = updated
    centres = centres[centres.prod(1).argsort()]
    return centres, wh_iou(wh, centres).max(1).values.mean().item()


# ------------------------------------------------------------------------------------------------ letterbox
def letterbox(image: torch.Tensor, size: int, fill: int = 114):
    """Resize ``image`` (C×H×W, or a batch N×C×H×W of same-sized frames; uint8 or float) so its longer side is
    ``size``, keep the aspect ratio, pad the rest evenly with ``fill`` (YOLO's grey) → ``(size×size image(s),
    scale, (pad_left, pad_top))``. A batch is one resize and one pad for all frames, on their device.

    Stretching to a square would distort shapes the detector learnt; letterboxing keeps them.
    """
    if image.ndim not in (3, 4):
        raise ValueError(f"letterbox takes one C×H×W image or an N×C×H×W batch, got shape {tuple(image.shape)}")
    height, width = image.shape[-2:]
    scale = size / max(height, width)
    new_h, new_w = round(height * scale), round(width * scale)
    batch = image if image.ndim == 4 else image[None]
    resized = F.interpolate(batch.float(), size=(new_h, new_w), mode="bilinear", align_corners=False,
                            antialias=True)
    resized = resized if image.ndim == 4 else resized[0]
    pad_left, pad_top = (size - new_w) // 2, (size - new_h) // 2
    padded = F.pad(resized, (pad_left, size - new_w - pad_left, pad_top, size - new_h - pad_top), value=fill)
    return padded.round().to(image.dtype) if not image.is_floating_point() else padded, scale, (pad_left, pad_top)


def letterbox_boxes(boxes: torch.Tensor, scale: float, pad: tuple[int, int]) -> torch.Tensor:
    """Map xyxy boxes from the original image into the letterboxed one."""
    offset = boxes.new_tensor([pad[0], pad[1], pad[0], pad[1]])
    return boxes * scale + offset


def unletterbox_boxes(boxes: torch.Tensor, scale: float, pad: tuple[int, int]) -> torch.Tensor:
    """Map xyxy boxes predicted on the letterboxed image back to the original image (inverse of the above)."""
    offset = boxes.new_tensor([pad[0], pad[1], pad[0], pad[1]])
    return (boxes - offset) / scale


# ------------------------------------------------------------------------------------------------------ mAP
def _check_detections(preds: list, targets: list) -> None:
    if len(preds) != len(targets):
        raise ValueError(f"preds and targets must list the same images: got {len(preds)} and {len(targets)}")
    for i, (p, t) in enumerate(zip(preds, targets)):
        for keys, item, name in (({"boxes", "scores", "labels"}, p, "preds"), ({"boxes", "labels"}, t, "targets")):
            missing = keys - set(item)
            if missing:
                raise ValueError(f"{name}[{i}] lacks {sorted(missing)}: each entry is a dict with {sorted(keys)}")
            _check_boxes(item["boxes"], f"{name}[{i}]['boxes']")
            for key in sorted(keys - {"boxes"}):
                _check_per_box(item[key], len(item["boxes"]), f"{name}[{i}][{key!r}]")


def _greedy_match(ious: np.ndarray, thresholds) -> np.ndarray:
    """IoUs ``D×G`` (rows sorted best score first) → hits ``T×D``, one row per IoU threshold."""
    hits = np.zeros((len(thresholds), ious.shape[0]), dtype=bool)
    if ious.size == 0:
        return hits
    for t, threshold in enumerate(thresholds):
        taken = np.zeros(ious.shape[1], dtype=bool)
        for row in range(ious.shape[0]):
            candidates = np.where(taken, -1.0, ious[row])
            best = candidates.argmax()
            if candidates[best] >= threshold:
                taken[best] = hits[t, row] = True
    return hits


def match_detections(pred_boxes, pred_scores, gt_boxes, iou_threshold: float) -> torch.Tensor:
    """COCO's greedy matching in one image and class → bool per prediction (True = true positive).

    Predictions, best score first, each take the unmatched ground-truth box they overlap most, if that IoU
    ≥ ``iou_threshold``; a ground-truth box is matched at most once, so duplicates become false positives.
    """
    check_fraction(iou_threshold, "iou_threshold")
    order = torch.sort(pred_scores.detach().cpu(), descending=True, stable=True).indices.numpy()
    ious = box_iou(pred_boxes.detach().cpu()[order], gt_boxes.cpu()).double().numpy()
    matched = np.zeros(len(order), dtype=bool)
    matched[order] = _greedy_match(ious, [iou_threshold])[0]
    return torch.from_numpy(matched)


def _ranked_hits(preds, targets, label, thresholds, max_detections):
    """All images' detections of ``label`` (None: every class, matched within its class), by decreasing
    score → (hits ``T×D`` per IoU threshold, scores ``D``, number of ground-truth boxes)."""
    hits, scores, ground_truths = [], [], 0
    for p, t in zip(preds, targets):
        classes = set(p["labels"].tolist()) | set(t["labels"].tolist()) if label is None else [label]
        for c in classes:
            mine = p["labels"] == c
            conf = p["scores"][mine].detach().cpu()
            top = torch.sort(conf, descending=True, stable=True).indices[:max_detections]
            truth = t["boxes"][t["labels"] == c].cpu()
            ground_truths += len(truth)
            ious = box_iou(p["boxes"][mine].detach().cpu()[top], truth).double().numpy()
            hits.append(_greedy_match(ious, thresholds))
            scores.append(conf[top].double().numpy())
    hits = np.concatenate(hits + [np.zeros((len(thresholds), 0), dtype=bool)], axis=1)
    scores = np.concatenate(scores + [np.zeros(0)])
    order = np.argsort(-scores, kind="mergesort")  # stable, as COCO's accumulate
    return hits[:, order], scores[order], ground_truths


def _curve(hits: np.ndarray, ground_truths: int):
    true_positives = np.cumsum(hits)
    return true_positives / np.arange(1, len(hits) + 1), true_positives / ground_truths


def precision_recall(preds: list, targets: list, label: int | None, iou_threshold: float = 0.5,
                     max_detections: int = 100):
    """The PR curve of one class (``label=None``: all classes pooled, matching still within a class):
    ``(precision, recall, scores)`` NumPy arrays, by decreasing score.

    Entry i is the precision and recall when every prediction scoring ≥ ``scores[i]`` is kept. Returns
    ``None`` when there is no ground truth (recall is undefined).
    """
    check_fraction(iou_threshold, "iou_threshold")
    hits, scores, ground_truths = _ranked_hits(preds, targets, label, [iou_threshold], max_detections)
    if ground_truths == 0:
        return None
    return (*_curve(hits[0], ground_truths), scores)


def average_precision_voc(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC (2010+) AP: area under the PR curve made monotone ("all-point interpolation").

    Precision at recall r is replaced by the best precision at any recall ≥ r; AP sums that envelope over
    every recall step.
    """
    recall = np.concatenate([[0.0], recall, [1.0]])
    envelope = np.maximum.accumulate(np.concatenate([[0.0], precision, [0.0]])[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * envelope[steps + 1]))


def average_precision_coco(precision: np.ndarray, recall: np.ndarray) -> float:
    """COCO AP: the monotone envelope sampled at 101 recall points 0, 0.01, …, 1 and averaged
    (0 where the recall is never reached)."""
    if len(precision) == 0:
        return 0.0
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    positions = np.searchsorted(recall, COCO_RECALL_POINTS, side="left")
    sampled = np.where(positions < len(envelope), envelope[np.minimum(positions, len(envelope) - 1)], 0.0)
    return float(sampled.mean())


def mean_average_precision(preds: list[dict], targets: list[dict], max_detections: int = 100) -> dict:
    """COCO-style mAP from scratch, in torchmetrics' format, with the same values as
    `torchmetrics.detection.MeanAveragePrecision` (box IoU, area "all", ``max_detections`` per image).

    Args:
        preds: one dict per image with ``boxes`` (K×4 xyxy), ``scores`` (K), ``labels`` (K int).
        targets: one dict per image with ``boxes`` and ``labels``.
    Returns a dict of floats and tensors:
        ``map`` (mean over classes and IoU thresholds 0.50:0.05:0.95), ``map_50``, ``map_75``,
        ``voc_map_50`` (VOC all-point AP at IoU 0.5, averaged over classes),
        ``map_per_class`` (COCO AP per class, −1 where a class has no targets), ``classes``.
    See the module docstring for empty and absent inputs.
    """
    _check_detections(preds, targets)
    classes = sorted(set().union(*[set(d["labels"].tolist()) for d in list(preds) + list(targets)]))
    table = np.full((len(COCO_IOU_THRESHOLDS), len(classes)), -1.0)  # AP per threshold and class
    voc = np.full(len(classes), -1.0)
    for column, label in enumerate(classes):
        hits, _, ground_truths = _ranked_hits(preds, targets, label, COCO_IOU_THRESHOLDS, max_detections)
        if ground_truths == 0:
            continue  # no ground truth of this class: left out, as COCO does
        for row in range(len(COCO_IOU_THRESHOLDS)):
            table[row, column] = average_precision_coco(*_curve(hits[row], ground_truths))
        voc[column] = average_precision_voc(*_curve(hits[0], ground_truths))

    def mean(values):
        values = values[values > -1]
        return float(values.mean()) if values.size else -1.0

    return {"map": mean(table), "map_50": mean(table[0]), "map_75": mean(table[5]), "voc_map_50": mean(voc),
            "map_per_class": torch.tensor([mean(table[:, c]) for c in range(len(classes))]),
            "classes": torch.tensor(classes, dtype=torch.long)}


# --------------------------------------------------------------------------------- looking at detections
def operating_point(preds: list, targets: list, iou_threshold: float = 0.5, label: int | None = None):
    """Precision and recall of ``preds`` as given (one label, or all labels pooled) → (precision, recall, TP, FP, FN)."""
    check_fraction(iou_threshold, "iou_threshold")
    tp = fp = fn = 0
    for p, t in zip(preds, targets):
        for c in (set(p["labels"].tolist()) | set(t["labels"].tolist())) if label is None else {label}:
            mine, truth = p["labels"] == c, t["boxes"][t["labels"] == c]
            hits = match_detections(p["boxes"][mine], p["scores"][mine], truth, iou_threshold)
            tp, fp, fn = tp + int(hits.sum()), fp + int((~hits).sum()), fn + len(truth) - int(hits.sum())
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1), tp, fp, fn


def render_detections(images, candidates: list, targets: list, scene: int = 0, confidence: float = 0.3,
                      nms_iou: float = 0.5, label: int | None = None, class_names=None, match_iou: float = 0.5):
    """The detection explorer's figure: one scene with true positives (green), false positives (red) and
    misses (orange, dashed) after confidence filter + NMS, and the PR curve over all scenes with the current
    operating point.

    ``candidates``: per-image raw detections before filtering (dicts of boxes, scores, labels);
    ``label``: show one class only (None: all).
    """
    import matplotlib.pyplot as plt

    if not 0 <= scene < len(images):
        raise ValueError(f"scene must be between 0 and {len(images) - 1}, not {scene}")
    for value, name in ((confidence, "confidence"), (nms_iou, "nms_iou"), (match_iou, "match_iou")):
        check_fraction(value, name)

    def only(item):
        return item if label is None else {k: v[item["labels"] == label] for k, v in item.items()}

    ranked = [only(postprocess(c["boxes"], c["scores"], c["labels"], 0.0, nms_iou)) for c in candidates]
    kept = [{k: v[r["scores"] >= confidence] for k, v in r.items()} for r in ranked]
    truths = [only(t) for t in targets]
    names = class_names or [str(i) for i in range(100)]
    fig, (ax_image, ax_pr) = plt.subplots(1, 2, figsize=(10, 4.6), gridspec_kw={"width_ratios": [1, 1.1]})
    ax_image.imshow(images[scene].squeeze().cpu().numpy(), cmap="gray", vmin=0, vmax=255)
    pred, truth = kept[scene], truths[scene]
    found = torch.zeros(len(truth["boxes"]), dtype=torch.bool)
    for c in set(pred["labels"].tolist()) | set(truth["labels"].tolist()):
        mine, theirs = pred["labels"] == c, (truth["labels"] == c).nonzero().flatten()
        boxes, scores = pred["boxes"][mine], pred["scores"][mine]
        hits = match_detections(boxes, scores, truth["boxes"][theirs], match_iou)
        for outcome, color in ((hits, "limegreen"), (~hits, "red")):
            draw_boxes(ax_image, boxes[outcome], [f"{names[c]} {s:.2f}" for s in scores[outcome].tolist()], color,
                       below=True)
        if len(theirs) and hits.any():
            found[theirs] = box_iou(truth["boxes"][theirs], boxes[hits]).max(1).values >= match_iou
    missed = ~found
    draw_boxes(ax_image, truth["boxes"][missed], [f"missed {names[c]}" for c in truth["labels"][missed].tolist()],
               "orange", dashed=True)
    ax_image.set_title(f"scene {scene}: green TP, red FP, orange missed")
    ax_image.axis("off")

    curve = precision_recall(ranked, truths, label, match_iou)
    if curve is not None:
        ax_pr.plot(curve[1], curve[0], lw=1.5, label=names[label] if label is not None else "all classes")
    precision, recall, tp, fp, fn = operating_point(kept, truths, match_iou)
    ax_pr.plot([recall], [precision], "ko", ms=9, label=f"confidence ≥ {confidence:.2f}, NMS IoU {nms_iou:.2f}")
    ax_pr.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
              title=f"PR at IoU {match_iou}: TP {tp}, FP {fp}, missed {fn}")
    ax_pr.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def draw_boxes(ax, boxes, texts, color, *, dashed: bool = False, below: bool = False) -> None:
    """Draw ``boxes`` (N×4 xyxy pixels, x2 and y2 exclusive) on the image already shown in ``ax``, each with its
    text (N strings): above the box, or under it with ``below=True`` (detections, so that their labels do not sit
    on the ground truth's); on the other side where there is no room, and ending at the box's right edge for a box
    far right — no label runs off the picture.
    """
    import matplotlib.patches as patches

    boxes = torch.as_tensor(boxes).detach().cpu()
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be N×4 (x1, y1, x2, y2), got shape {tuple(boxes.shape)}")
    if len(texts) != len(boxes):
        raise ValueError(f"give one text per box: {len(boxes)} boxes but {len(texts)} texts")
    if not ax.images:
        raise ValueError("show the image in ax first (ax.imshow): the labels are placed against its edges")
    height, width = ax.images[-1].get_array().shape[:2]
    for (x1, y1, x2, y2), text in zip(boxes.tolist(), texts):
        ax.add_patch(patches.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, color=color, lw=1.3,
                                       linestyle="--" if dashed else "-"))
        under = below
        if under and y2 > height - 6 or not under and y1 < 6:  # no room on that side of the box: the other one
            under = not under
        right = x1 > width * 0.6  # a label starting far right would run off the picture: end it at the box's edge
        ax.text(min(x2, width - 1) if right else x1, y2 + 1 if under else y1 - 1, text, color=color, fontsize=7,
                va="top" if under else "bottom", ha="right" if right else "left", clip_on=True)


def draw_scene(ax, image, boxes, labels, color: str = "yellow", scores=None, class_names=CLASSES) -> None:
    """A grey scene (uint8 1×H×W or H×W) with its boxes (N×4 xyxy), each labelled with its class name; with
    ``scores`` (N, detections) the score follows the name and the label goes under the box."""
    if len(labels) != len(boxes) or scores is not None and len(scores) != len(boxes):
        raise ValueError(f"give one label (and score) per box: {len(boxes)} boxes, {len(labels)} labels"
                         + ("" if scores is None else f", {len(scores)} scores"))
    ax.imshow(torch.as_tensor(image).cpu().squeeze().numpy(), cmap="gray", vmin=0, vmax=255)
    names = [class_names[int(label)] for label in labels]
    texts = names if scores is None else [f"{name} {float(score):.2f}" for name, score in zip(names, scores)]
    draw_boxes(ax, boxes, texts, color, below=scores is not None)
    ax.axis("off")


def render_scenes(images, targets: list, *, semantic: bool = False, detections: list | None = None,
                  title: str = ""):
    """Scenes side by side, each with its true boxes labelled in yellow → Figure.

    ``images``: N grey uint8 scenes (1×H×W or H×W); ``targets``: N dicts with ``boxes`` (K×4 xyxy) and ``labels``
    (K); ``semantic=True`` adds a row with each target's ``semantic`` map (H×W, 0 = background, 1 + class);
    ``detections``: N dicts with ``boxes``, ``labels`` and ``scores``, drawn on top in cyan with their scores.
    """
    import matplotlib.pyplot as plt

    if len(images) == 0 or len(targets) != len(images):
        raise ValueError(f"give one target per image (and at least one image): {len(images)} images, "
                         f"{len(targets)} targets")
    if detections is not None and len(detections) != len(images):
        raise ValueError(f"give one detections dict per image: {len(images)} images, {len(detections)} detections")
    if semantic and not all("semantic" in target for target in targets):
        raise ValueError("semantic=True needs a 'semantic' map in every target (as fashion_scenes gives)")
    rows = 2 if semantic else 1
    fig, axes = plt.subplots(rows, len(images), figsize=(2.3 * len(images), 2.4 * rows + 0.5), squeeze=False,
                             layout="constrained")
    for i, (image, target) in enumerate(zip(images, targets)):
        draw_scene(axes[0, i], image, target["boxes"], target["labels"])
        if detections is not None:
            found = detections[i]
            draw_scene(axes[0, i], image, found["boxes"], found["labels"], color="cyan", scores=found["scores"])
        if semantic:
            axes[1, i].imshow(torch.as_tensor(target["semantic"]).cpu().numpy(), cmap="tab20", vmin=0, vmax=19,
                              interpolation="nearest")
            axes[1, i].axis("off")
    fig.suptitle(title)
    return fig
