"""Multi-person pose estimation, the method: keypoint heatmaps, part affinity fields (PAFs), peak finding, limb
matching (Hungarian and greedy), assembly of people, top-down crops, OKS and keypoint AP, and their views.

Introduced in Chapter 8 (08_pose); its data, the stick-figure scenes and the skeleton (`KEYPOINTS`, `LIMBS`), are
`utils.pose_scenes`. The bottom-up pipeline of OpenPose (Cao et al., 2017), written out:

    maps  = network(image)                       # J heatmaps + 2L PAF channels
    peaks = find_peaks(heatmaps, threshold)      # candidate keypoints of every type
    for each limb (a → b):
        scores = limb_scores(paf_of_limb, peaks[a], peaks[b])    # line integral of the PAF, A×B
        connections[limb] = match_limbs(scores, "hungarian")       # bipartite matching
    people = assemble_people(peaks, connections)                  # connected limbs → skeletons

Coordinates: pixel (x, y) sits at integer (x, y) — column x, row y — so a keypoint at (3, 5) is the centre of
the pixel in row 5, column 3. Keypoints are ``…×J×3`` tensors of (x, y, v); in ground truth v is COCO's
visibility flag (0 not labelled — here: outside the canvas, 1 labelled but hidden behind a later person,
2 visible); in predictions the third column is the keypoint's confidence.
"""

from __future__ import annotations

import contextlib
import io

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from .checks import check_points_inside
from .detection import COCO_IOU_THRESHOLDS, average_precision_coco, box_convert
from .pose_scenes import KEYPOINTS, LIMB_NAMES, LIMBS

# COCO's per-keypoint OKS constants (head ≈ ears, neck ≈ shoulders): how far a keypoint may stray, relative to
# the person's size, before OKS falls — wide for hips (hard to place on a real body), narrow for the face
SIGMAS = np.array([0.035, 0.079, 0.079, 0.072, 0.062, 0.079, 0.072, 0.062, 0.107, 0.087, 0.089, 0.107, 0.087,
                   0.089])


# ------------------------------------------------------------------------------------------------ validation
def _check_keypoints(keypoints, name: str, columns=(2, 3)) -> torch.Tensor:
    if not torch.is_tensor(keypoints):
        raise TypeError(f"{name} must be a tensor of keypoints (…×J×3: x, y, v), got {type(keypoints).__name__}")
    if keypoints.ndim < 2 or keypoints.shape[-1] not in columns:
        raise ValueError(f"{name} must end in J×{columns[-1]} (x, y, v), got shape {tuple(keypoints.shape)}")
    return keypoints


def _check_point(point, name: str) -> torch.Tensor:
    point = torch.as_tensor(point, dtype=torch.float32)
    if point.shape[-1:] != (2,):
        raise ValueError(f"{name} must be an (x, y) pair (or …×2 pairs), got shape {tuple(point.shape)}")
    return point


def _check_size(height, width) -> None:
    for value, name in ((height, "height"), (width, "width")):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer number of pixels, not {value!r}")


# ------------------------------------------------------------------------------------------ training targets
def gaussian_heatmap(height: int, width: int, center_xy, sigma: float) -> torch.Tensor:
    """``height×width`` map of exp(−((x − cx)² + (y − cy)²) / 2σ²), pixel (x, y) at integer coordinates."""
    _check_size(height, width)
    center = _check_point(center_xy, "center_xy")
    if center.shape != (2,):
        raise ValueError(f"center_xy must be one (x, y) pair, got shape {tuple(center.shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, not {sigma}")
    ys, xs = torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32)
    d2 = (xs[None, :] - center[0]) ** 2 + (ys[:, None] - center[1]) ** 2
    return torch.exp(-d2 / (2 * sigma ** 2))


def limb_paf(height: int, width: int, p1, p2, limb_width: float) -> torch.Tensor:
    """``2×height×width`` part affinity field of one limb: the unit vector from ``p1`` to ``p2`` at every pixel
    within ``limb_width`` of the segment (measured across it, and between its ends along it), zero elsewhere.
    A zero-length limb has no direction: its field is zero."""
    _check_size(height, width)
    p1, p2 = _check_point(p1, "p1"), _check_point(p2, "p2")
    if p1.shape != (2,) or p2.shape != (2,):
        raise ValueError("p1 and p2 must each be one (x, y) pair")
    if not limb_width > 0:
        raise ValueError(f"limb_width must be positive, not {limb_width}")
    return _pafs(p1[None], p2[None], torch.ones(1, dtype=torch.bool), height, width, limb_width)[0]


def _pafs(p1: torch.Tensor, p2: torch.Tensor, valid: torch.Tensor, height: int, width: int,
          limb_width: float) -> torch.Tensor:
    """Vectorised `limb_paf`: p1, p2 ``…×2``, valid ``…`` → ``…×2×H×W``."""
    vector = p2 - p1
    length = vector.norm(dim=-1, keepdim=True)
    unit = vector / length.clamp(min=1e-6)
    ys = torch.arange(height, dtype=p1.dtype, device=p1.device)
    xs = torch.arange(width, dtype=p1.dtype, device=p1.device)
    rel_x = xs[None, :] - p1[..., 0, None, None]                     # …×1×W  (then broadcast to …×H×W)
    rel_y = ys[:, None] - p1[..., 1, None, None]                     # …×H×1
    ux, uy = unit[..., 0, None, None], unit[..., 1, None, None]
    along = rel_x * ux + rel_y * uy
    across = (rel_x * uy - rel_y * ux).abs()
    inside = (along >= 0) & (along <= length[..., None]) & (across <= limb_width)
    inside &= (valid & (length[..., 0] > 1e-6))[..., None, None]
    return torch.stack([ux * inside, uy * inside], -3)


def pose_targets(keypoints: torch.Tensor, size: int, stride: int = 2, sigma: float = 2.0, limb_width: float = 1.5):
    """Training targets at the network's output resolution (``size // stride``), for a batch of scenes.

    ``keypoints``: ``B×P×J×3`` in image pixels (v = 0 for absent keypoints and padding). Returns
    ``(heatmaps B×J×h×w, pafs B×2L×h×w)``: per keypoint type the *maximum* over people of `gaussian_heatmap`
    (so two close people keep two peaks), per limb the *mean* over the people whose limb covers a pixel of
    `limb_paf` (OpenPose's rule: where limbs cross, the field points along their average). ``sigma`` and
    ``limb_width`` are in image pixels. A pixel (i, j) of the output map covers image pixels
    i·stride … i·stride + stride − 1, so an image coordinate x maps to (x + 0.5) / stride − 0.5.
    """
    _check_keypoints(keypoints, "keypoints", columns=(3,))
    if keypoints.ndim != 4:
        raise ValueError(f"keypoints must be B×P×J×3, got shape {tuple(keypoints.shape)}: "
                         f"use scenes.padded() or add batch and people dimensions")
    if not isinstance(stride, int) or stride < 1 or size % stride:
        raise ValueError(f"stride must be a positive integer dividing size={size}, not {stride!r}")
    h = size // stride
    points = (keypoints[..., :2] + 0.5) / stride - 0.5
    labelled = keypoints[..., 2] > 0
    s = sigma / stride
    grid = torch.arange(h, dtype=points.dtype, device=points.device)
    gx = torch.exp(-(grid - points[..., 0, None]) ** 2 / (2 * s ** 2))            # B×P×J×w
    gy = torch.exp(-(grid - points[..., 1, None]) ** 2 / (2 * s ** 2))            # B×P×J×h
    heat = (gy[..., :, None] * gx[..., None, :]) * labelled[..., None, None]      # B×P×J×h×w
    heatmaps = heat.amax(1) if heat.shape[1] else heat.sum(1)
    pafs = []
    for a, b in LIMBS:
        field = _pafs(points[:, :, a], points[:, :, b], labelled[:, :, a] & labelled[:, :, b], h, h,
                      limb_width / stride)                                        # B×P×2×h×w
        count = (field.abs().sum(2, keepdim=True) > 0).sum(1).clamp(min=1)
        pafs.append(field.sum(1) / count)
    return heatmaps, torch.cat(pafs, 1)


# ------------------------------------------------------------------------------------------------- decoding
def find_peaks(heatmaps: torch.Tensor, threshold: float = 0.1) -> list[torch.Tensor]:
    """Heatmap NMS: a pixel is a peak when it is the maximum of its 3×3 neighbourhood and above ``threshold``.

    ``heatmaps``: ``J×H×W``. Returns J tensors ``K×3`` of (x, y, score), highest score first.
    """
    if not torch.is_tensor(heatmaps) or heatmaps.ndim != 3:
        raise ValueError(f"heatmaps must be a J×H×W tensor, got {getattr(heatmaps, 'shape', type(heatmaps))}")
    heatmaps = heatmaps.float()
    pooled = F.max_pool2d(heatmaps[None], 3, stride=1, padding=1)[0]
    peaks = []
    for channel, is_peak in zip(heatmaps, (heatmaps == pooled) & (heatmaps > threshold)):
        ys, xs = is_peak.nonzero(as_tuple=True)
        found = torch.stack([xs.float(), ys.float(), channel[ys, xs]], -1)
        peaks.append(found[found[:, 2].argsort(descending=True)])
    return peaks


def paf_score(paf: torch.Tensor, p1, p2, samples: int = 10) -> torch.Tensor:
    """The line integral of a limb's field from ``p1`` to ``p2``, as OpenPose approximates it: the mean, over
    ``samples`` evenly spaced points from p1 to p2 (both ends included), of the dot product of the field at the
    nearest pixel with the unit vector p1→p2.

    ``paf``: ``2×H×W``; ``p1``, ``p2``: ``…×2`` pairs (broadcast against each other) on the map (pixel coordinates
    of the map, −½ ≤ x ≤ W − ½, −½ ≤ y ≤ H − ½) → scores of shape ``…``. 1 for a candidate lying along a limb of the
    same direction, ≈ 0 across empty space, negative backwards; a zero-length pair scores 0.
    """
    if not torch.is_tensor(paf) or paf.ndim != 3 or paf.shape[0] != 2:
        raise ValueError(f"paf must be a 2×H×W field, got {getattr(paf, 'shape', type(paf))}")
    if not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an integer ≥ 2 (both ends are sampled), not {samples!r}")
    p1, p2 = _check_point(p1, "p1").to(paf.device), _check_point(p2, "p2").to(paf.device)
    for point, name in ((p1, "p1"), (p2, "p2")):   # far outside, every sample would read the edge pixels
        check_points_inside(point, paf.shape[1], paf.shape[2], name, "the map")
    p1, p2 = torch.broadcast_tensors(p1, p2)
    vector = p2 - p1
    length = vector.norm(dim=-1, keepdim=True)
    unit = vector / length.clamp(min=1e-6)
    steps = torch.linspace(0, 1, samples, device=paf.device)[:, None]
    points = p1[..., None, :] + steps * vector[..., None, :]                      # …×samples×2
    col = points[..., 0].round().long().clamp(0, paf.shape[2] - 1)
    row = points[..., 1].round().long().clamp(0, paf.shape[1] - 1)
    field = paf.float()[:, row, col]                                               # 2×…×samples
    dots = field[0] * unit[..., None, 0] + field[1] * unit[..., None, 1]
    return dots.mean(-1) * (length[..., 0] > 1e-6)


def limb_scores(paf: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor, samples: int = 10) -> torch.Tensor:
    """`paf_score` of every candidate pair: starts ``A×(2+)`` and ends ``B×(2+)`` peaks → ``A×B`` scores."""
    for points, name in ((starts, "starts"), (ends, "ends")):
        if not torch.is_tensor(points) or points.ndim != 2 or points.shape[1] < 2:
            raise ValueError(f"{name} must be a K×2 (or K×3 peaks) tensor, got {getattr(points, 'shape', points)}")
    return paf_score(paf, starts[:, None, :2], ends[None, :, :2], samples)


def match_limbs(scores: torch.Tensor, method: str = "hungarian", min_score: float = 0.05) -> torch.Tensor:
    """Choose limbs: a one-to-one matching between start peaks (rows) and end peaks (columns) of ``scores``.

    "hungarian": the matching of maximum total score (`scipy.optimize.linear_sum_assignment`); "greedy": take the
    best remaining pair whose two ends are both still free, repeatedly (what OpenPose does — the same answer in
    almost every real case, simpler and faster). Only pairs scoring above ``min_score`` ≥ 0 may be matched.
    Returns ``K×3`` rows of (start index, end index, score), best first.
    """
    if not torch.is_tensor(scores) or scores.ndim != 2:
        raise ValueError(f"scores must be an A×B tensor, got {getattr(scores, 'shape', type(scores))}")
    if method not in ("hungarian", "greedy"):
        raise ValueError(f"method must be 'hungarian' or 'greedy', not {method!r}")
    if not min_score >= 0:
        raise ValueError(f"min_score must be ≥ 0 (invalid pairs are given weight 0), not {min_score}")
    valid = scores.detach().cpu().double()
    valid = torch.where(valid > min_score, valid, torch.zeros_like(valid))
    if method == "hungarian":
        rows, cols = linear_sum_assignment(valid.numpy(), maximize=True)
        pairs = [(r, c) for r, c in zip(rows.tolist(), cols.tolist()) if valid[r, c] > 0]
    else:
        pairs, used_rows, used_cols = [], set(), set()
        for flat in valid.flatten().argsort(descending=True, stable=True).tolist():
            r, c = divmod(flat, valid.shape[1])
            if valid[r, c] <= 0:
                break
            if r not in used_rows and c not in used_cols:
                pairs.append((r, c))
                used_rows.add(r)
                used_cols.add(c)
    out = torch.tensor([(r, c, float(valid[r, c])) for r, c in pairs], dtype=torch.float64).reshape(-1, 3)
    return out[out[:, 2].argsort(descending=True)]


def assemble_people(peaks: list[torch.Tensor], connections: list[torch.Tensor], min_parts: int = 4,
                    min_mean_score: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Grow skeletons from matched limbs, in `LIMBS` order (outwards from the neck).

    A connection (i, j) of limb a → b joins the person that already owns peak i of type a (or peak j of type b);
    if two different people own its ends and share no keypoint type, they are merged; if nobody owns either end,
    it starts a new person. People with fewer than ``min_parts`` keypoints, or whose mean score per part
    (peak scores plus limb scores, over their parts) is below ``min_mean_score``, are dropped.

    Returns ``(keypoints P×J×3 (x, y, peak score; zeros where missing), scores P)``; a person's score is the sum of
    its peak and limb scores over J + L, so complete, confident skeletons rank first.
    """
    if len(peaks) != len(KEYPOINTS) or len(connections) != len(LIMBS):
        raise ValueError(f"need {len(KEYPOINTS)} peak tensors and {len(LIMBS)} connection tensors, got "
                         f"{len(peaks)} and {len(connections)}")
    people = []                                      # each: [peak index per type (−1 = none), total score]
    for (a, b), found in zip(LIMBS, connections):
        for i, j, score in found.tolist():
            i, j = int(i), int(j)
            owners = [p for p in people if p[0][a] == i or p[0][b] == j]
            if len(owners) == 1:
                parts = owners[0][0]
                if parts[a] == i and parts[b] == -1:
                    parts[b] = j
                    owners[0][1] += float(peaks[b][j, 2]) + score
                elif parts[b] == j and parts[a] == -1:
                    parts[a] = i
                    owners[0][1] += float(peaks[a][i, 2]) + score
            elif len(owners) == 2:
                first, second = owners
                if all(x == -1 or y == -1 for x, y in zip(first[0], second[0])):
                    first[0] = [x if x != -1 else y for x, y in zip(first[0], second[0])]
                    first[1] += second[1] + score
                    people.remove(second)
            elif not owners:
                parts = [-1] * len(KEYPOINTS)
                parts[a], parts[b] = i, j
                people.append([parts, float(peaks[a][i, 2]) + float(peaks[b][j, 2]) + score])
    keypoints, scores = [], []
    for parts, total in people:
        count = sum(p >= 0 for p in parts)
        if count < min_parts or total / (2 * count - 1) < min_mean_score:
            continue
        person = torch.zeros(len(KEYPOINTS), 3)
        for kind, index in enumerate(parts):
            if index >= 0:
                person[kind] = peaks[kind][index].cpu()
        keypoints.append(person)
        scores.append(total / (len(KEYPOINTS) + len(LIMBS)))
    if not keypoints:
        return torch.zeros(0, len(KEYPOINTS), 3), torch.zeros(0)
    order = torch.tensor(scores).argsort(descending=True)
    return torch.stack(keypoints)[order], torch.tensor(scores)[order]


def decode_people(heatmaps: torch.Tensor, pafs: torch.Tensor, size: int, threshold: float = 0.1,
                  method: str = "hungarian", min_score: float = 0.05) -> dict:
    """The bottom-up pipeline on one image's network output: maps (``J×h×w`` and ``2L×h×w``) upsampled to the image
    (``size``), `find_peaks`, `limb_scores` + `match_limbs` per limb, `assemble_people`.
    Returns ``{"keypoints": P×J×3, "scores": P}`` in image pixels."""
    if heatmaps.ndim != 3 or pafs.ndim != 3 or pafs.shape[0] != 2 * len(LIMBS):
        raise ValueError(f"need J×h×w heatmaps and {2 * len(LIMBS)}×h×w PAFs, got {tuple(heatmaps.shape)} and "
                         f"{tuple(pafs.shape)}")
    maps = F.interpolate(torch.cat([heatmaps, pafs])[None].float(), size=(size, size), mode="bilinear",
                         align_corners=False)[0]
    heat, field = maps[:len(KEYPOINTS)], maps[len(KEYPOINTS):]
    peaks = find_peaks(heat, threshold)
    connections = [match_limbs(limb_scores(field[2 * k:2 * k + 2], peaks[a], peaks[b]), method, min_score)
                   for k, (a, b) in enumerate(LIMBS)]
    keypoints, scores = assemble_people(peaks, connections)
    return {"keypoints": keypoints, "scores": scores}


# ------------------------------------------------------------------------------------------------- top-down
def square_boxes(boxes: torch.Tensor, expand: float = 1.25) -> torch.Tensor:
    """Person boxes (``K×4`` xyxy, x2/y2 exclusive) → squares of side ``expand`` × the longer side, same centre:
    the crop a top-down model sees (square, so one scale maps keypoints in and out; margin for limbs)."""
    if not torch.is_tensor(boxes) or boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be a K×4 xyxy tensor, got {getattr(boxes, 'shape', type(boxes))}")
    if not expand > 0:
        raise ValueError(f"expand must be positive, not {expand}")
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).amax(1, keepdim=True).clamp(min=1) * expand / 2
    return torch.cat([centre - half, centre + half], 1)


def crop_people(images: torch.Tensor, squares: list[torch.Tensor], crop: int) -> torch.Tensor:
    """Resample each square (per image, ``K×4`` xyxy) to ``crop×crop`` with `torchvision.ops.roi_align`
    (bilinear; outside the canvas reads as 0). ``images``: ``N×C×H×W`` → ``(ΣK)×C×crop×crop`` float."""
    from torchvision.ops import roi_align

    if images.ndim != 4 or len(squares) != len(images):
        raise ValueError(f"need N×C×H×W images and one K×4 tensor of squares per image, got "
                         f"{tuple(images.shape)} and {len(squares)} tensors")
    return roi_align(images.float(), [s.float().to(images.device) for s in squares], output_size=crop,
                     spatial_scale=1.0, sampling_ratio=1, aligned=True)


def to_crop(points: torch.Tensor, squares: torch.Tensor, crop: int) -> torch.Tensor:
    """Image pixel coordinates (``K×J×2``) → coordinates in each square's ``crop×crop`` resampling (`crop_people`).
    A square's edges are pixel edges, so pixel x sits at x + 0.5 on its axis (half a pixel inside its own edge)."""
    _check_crop_points(points, squares)
    scale = (squares[:, 2:] - squares[:, :2]) / crop
    return (points + 0.5 - squares[:, None, :2]) / scale[:, None] - 0.5


def from_crop(points: torch.Tensor, squares: torch.Tensor, crop: int) -> torch.Tensor:
    """The inverse of `to_crop`: crop coordinates (``K×J×2``) → image pixel coordinates."""
    _check_crop_points(points, squares)
    scale = (squares[:, 2:] - squares[:, :2]) / crop
    return (points + 0.5) * scale[:, None] + squares[:, None, :2] - 0.5


def _check_crop_points(points: torch.Tensor, squares: torch.Tensor) -> None:
    if points.ndim != 3 or points.shape[-1] != 2 or squares.shape != (len(points), 4):
        raise ValueError(f"need points K×J×2 and one square (K×4) per row of points, got {tuple(points.shape)} and "
                         f"{tuple(squares.shape)}")


def heatmap_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """Single-person decoding: per map (``K×J×H×W``) the location and value of its maximum → ``K×J×3``
    (x, y, value)."""
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be K×J×H×W, got {tuple(heatmaps.shape)}")
    values, flat = heatmaps.flatten(2).max(-1)
    width = heatmaps.shape[-1]
    return torch.stack([(flat % width).float(), (flat // width).float(), values.float()], -1)


# ----------------------------------------------------------------------------------------------- evaluation
def oks(predicted: torch.Tensor, truth: torch.Tensor, areas: torch.Tensor, sigmas=SIGMAS) -> torch.Tensor:
    """Object keypoint similarity of every predicted person with every true person → ``P×G``.

    OKS = mean over the true person's labelled keypoints (v > 0) of exp(−d² / (2 s² k²)), d the distance of the
    predicted keypoint, s² the person's area, k = 2σ per keypoint type: IoU's role for keypoints, in [0, 1].
    ``predicted``: ``P×J×(2|3)``; ``truth``: ``G×J×3``; ``areas``: ``G``. A true person with no labelled keypoint
    scores 0 (COCO ignores such people).
    """
    _check_keypoints(predicted, "predicted")
    _check_keypoints(truth, "truth", columns=(3,))
    if predicted.shape[-2] != truth.shape[-2] or len(sigmas) != truth.shape[-2]:
        raise ValueError(f"predicted, truth and sigmas must have the same number of keypoints, got "
                         f"{predicted.shape[-2]}, {truth.shape[-2]} and {len(sigmas)}")
    if not torch.is_tensor(areas) or areas.shape != truth.shape[:1]:
        shape = tuple(areas.shape) if torch.is_tensor(areas) else type(areas).__name__
        raise ValueError(f"need a tensor of one area per true person, got {shape} for {len(truth)} people")
    bad = ~(areas.double() > 0) | ~torch.isfinite(areas.double())   # a negative area turns exp(−d²/2s²k²) above 1
    if bad.any():
        g = int(bad.nonzero()[0, 0])
        raise ValueError(f"areas must be finite and > 0, got areas[{g}] = {areas[g].item():g}: pass each true "
                         "person's area in pixels² (e.g. its box's width × height)")
    variances = (2 * torch.as_tensor(sigmas, dtype=torch.float64)) ** 2
    d2 = ((predicted[:, None, :, :2].double() - truth[None, :, :, :2].double()) ** 2).sum(-1)          # P×G×J
    e = d2 / variances / (areas.double()[None, :, None] + np.spacing(1)) / 2
    labelled = (truth[:, :, 2] > 0)[None].double()
    return (torch.exp(-e) * labelled).sum(-1) / labelled.sum(-1).clamp(min=1)


def _check_evaluation(predictions: list, truths: list) -> None:
    if len(predictions) != len(truths):
        raise ValueError(f"need one prediction dict per image: {len(predictions)} predictions, {len(truths)} images")
    for p in predictions:
        if not {"keypoints", "scores"} <= set(p):
            raise ValueError("each prediction must be a dict with 'keypoints' (P×J×3) and 'scores' (P)")
    for t in truths:
        if not {"keypoints", "boxes"} <= set(t):
            raise ValueError("each ground truth must be a dict with 'keypoints' (G×J×3) and 'boxes' (G×4, xyxy, or xywh "
                             "with box_format='xywh')")


def _truth_boxes(truths: list, box_format: str) -> list[torch.Tensor]:
    """Each image's true person boxes as xyxy, each of positive width and height (OKS reads its area)."""
    if box_format not in ("xyxy", "xywh"):
        raise ValueError(f"box_format must be 'xyxy' (corners) or 'xywh' (COCO's top-left, width, height), "
                         f"not {box_format!r}")
    converted = []
    for i, truth in enumerate(truths):
        boxes = torch.as_tensor(truth["boxes"]).double()
        if boxes.shape != (len(truth["keypoints"]), 4):
            raise ValueError(f"truths[{i}]['boxes'] must be one box (G×4) per person, got {tuple(boxes.shape)} "
                             f"for {len(truth['keypoints'])} people")
        boxes = box_convert(boxes, box_format, "xyxy")
        empty = ~((boxes[:, 2:] - boxes[:, :2] > 0).all(1) & torch.isfinite(boxes).all(1))
        if empty.any():
            g = int(empty.nonzero()[0, 0])
            raise ValueError(f"truths[{i}]['boxes'][{g}] = {truth['boxes'][g].tolist()} read as {box_format} has no "
                             f"positive width and height: " + ("COCO's boxes are xywh, pass box_format='xywh'"
                                                                if box_format == "xyxy" else
                                                                "pass xyxy corners with box_format='xyxy'"))
        converted.append(boxes)
    return converted


def part_recall(candidates: list[list[torch.Tensor]], truths: list[dict], radius: float = 3.0) -> float:
    """The share of labelled true keypoints with a candidate of the same type within ``radius`` pixels — the parts
    found, before (or regardless of) grouping them into people. ``candidates``: per image, J tensors ``K×(2+)``
    (e.g. `find_peaks` of the image's heatmaps, or the keypoints of its predicted people)."""
    if len(candidates) != len(truths) or any(len(c) != len(KEYPOINTS) for c in candidates):
        raise ValueError(f"need, per image, {len(KEYPOINTS)} tensors of candidates: got {len(candidates)} images "
                         f"for {len(truths)} truths")
    found = total = 0
    for per_type, truth in zip(candidates, truths):
        for j, points in enumerate(per_type):
            true = truth["keypoints"][:, j]
            true = true[true[:, 2] > 0, :2]
            total += len(true)
            if len(true) and len(points):
                found += int((torch.cdist(true.float(), points[:, :2].float().cpu()).amin(1) <= radius).sum())
    return found / max(total, 1)


def keypoint_ap(predictions: list[dict], truths: list[dict], sigmas=SIGMAS, max_detections: int = 20,
                box_format: str = "xyxy") -> dict:
    """COCO keypoint AP from scratch: OKS in place of IoU, otherwise detection AP.

    Per image the ``max_detections`` best-scoring people are matched, in score order, to the unmatched true person
    of highest OKS ≥ t; over all images, precision–recall at each t ∈ 0.50:0.05:0.95, COCO's 101-point AP,
    averaged over t. A true person's area is its box's (w·h). Predictions: ``{"keypoints": P×J×3, "scores": P}``;
    truths: ``{"keypoints": G×J×3, "boxes": G×4}``, boxes xyxy (the scenes') or, with ``box_format="xywh"``,
    COCO's (x, y, width, height). Returns ``{"ap", "ap50", "ap75"}`` (−1 with no true people).
    """
    _check_evaluation(predictions, truths)
    truth_boxes = _truth_boxes(truths, box_format)
    thresholds = np.array(COCO_IOU_THRESHOLDS)
    scores_all, hits_all, total = [], [], 0
    for pred, truth, boxes in zip(predictions, truths, truth_boxes):
        labelled = truth["keypoints"][:, :, 2] > 0
        counted = labelled.any(1)                          # COCO ignores people without labelled keypoints
        total += int(counted.sum())
        order = torch.as_tensor(pred["scores"]).double().neg().numpy().argsort(kind="mergesort")[:max_detections]
        hits = np.zeros((len(order), len(thresholds)), dtype=bool)
        ignored = np.zeros((len(order), len(thresholds)), dtype=bool)
        if len(order) and len(truth["keypoints"]):
            areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            similarity = oks(pred["keypoints"][order], truth["keypoints"], areas, sigmas).numpy()
            gt_order = np.argsort(~counted.numpy(), kind="mergesort")          # ignored people last, as COCO
            similarity, counted_sorted = similarity[:, gt_order], counted.numpy()[gt_order]
            for t, threshold in enumerate(thresholds):
                taken = np.zeros(len(gt_order), dtype=bool)
                for d in range(len(order)):
                    best, match = min(threshold, 1 - 1e-10), -1
                    for g in range(len(gt_order)):
                        if taken[g]:
                            continue
                        if match > -1 and counted_sorted[match] and not counted_sorted[g]:
                            break
                        if similarity[d, g] < best:
                            continue
                        best, match = similarity[d, g], g
                    if match > -1:
                        taken[match] = True
                        hits[d, t] = counted_sorted[match]
                        ignored[d, t] = not counted_sorted[match]
        scores_all.append(torch.as_tensor(pred["scores"]).double().numpy()[order])
        hits_all.append(np.where(ignored, -1, hits))
    if total == 0:
        return {"ap": -1.0, "ap50": -1.0, "ap75": -1.0}
    scores = np.concatenate(scores_all) if scores_all else np.zeros(0)
    marks = np.concatenate(hits_all) if hits_all else np.zeros((0, len(thresholds)))
    ranked = marks[np.argsort(-scores, kind="mergesort")]
    per_threshold = []
    for t in range(len(thresholds)):
        kept = ranked[:, t][ranked[:, t] >= 0].astype(bool)
        tp, fp = np.cumsum(kept), np.cumsum(~kept)
        precision, recall = tp / np.maximum(tp + fp, np.spacing(1)), tp / total
        per_threshold.append(average_precision_coco(precision, recall))
    return {"ap": float(np.mean(per_threshold)), "ap50": per_threshold[0], "ap75": per_threshold[5]}


def coco_keypoint_ap(predictions: list[dict], truths: list[dict], sigmas=SIGMAS, box_format: str = "xyxy") -> dict:
    """The same figures from pycocotools' ``COCOeval(iouType="keypoints")`` — the reference `keypoint_ap` is
    checked against (same arguments). Builds the COCO ground-truth and result structures in memory."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    _check_evaluation(predictions, truths)
    truth_boxes = _truth_boxes(truths, box_format)
    images, annotations, results = [], [], []
    for image_id, (pred, truth, boxes) in enumerate(zip(predictions, truths, truth_boxes)):
        images.append({"id": image_id})
        for box, person in zip(boxes.tolist(), truth["keypoints"]):
            flat = torch.where(person[:, 2:] > 0, person, torch.zeros_like(person)).flatten().tolist()
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                                "keypoints": flat, "num_keypoints": int((person[:, 2] > 0).sum()),
                                "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                                "area": (box[2] - box[0]) * (box[3] - box[1])})
        for person, score in zip(pred["keypoints"], torch.as_tensor(pred["scores"]).tolist()):
            results.append({"image_id": image_id, "category_id": 1, "score": score,
                            "keypoints": torch.cat([person[:, :2], torch.ones(len(person), 1)], 1).flatten().tolist()})
    if not annotations:
        return {"ap": -1.0, "ap50": -1.0, "ap75": -1.0}
    if not results:
        return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):         # pycocotools prints progress and a table
        truth_api = COCO()
        truth_api.dataset = {"images": images, "annotations": annotations,
                             "categories": [{"id": 1, "name": "person", "keypoints": list(KEYPOINTS),
                                             "skeleton": [[a + 1, b + 1] for a, b in LIMBS]}]}
        truth_api.createIndex()
        evaluator = COCOeval(truth_api, truth_api.loadRes(results), iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"ap": float(evaluator.stats[0]), "ap50": float(evaluator.stats[1]), "ap75": float(evaluator.stats[2])}


# ---------------------------------------------------------------------------------------------------- views
def draw_skeletons(ax, keypoints: torch.Tensor, color: str = "lime", linewidth: float = 1.5, labels=None) -> None:
    """Draw people (``P×J×3``; a keypoint with third column 0 is absent) as skeletons on ``ax``."""
    _check_keypoints(keypoints, "keypoints", columns=(3,))
    for k, person in enumerate(keypoints.reshape(-1, len(KEYPOINTS), 3).cpu().numpy()):
        present = person[:, 2] > 0
        for a, b in LIMBS:
            if present[a] and present[b]:
                ax.plot(person[[a, b], 0], person[[a, b], 1], color=color, lw=linewidth)
        ax.scatter(person[present, 0], person[present, 1], s=6, color=color, zorder=3)
        if labels is not None and present.any():
            x, y = person[present, :2].min(0)
            ax.text(x, y - 1, labels[k], color=color, fontsize=7, va="bottom")


def render_limb_matching(image: torch.Tensor, heatmaps: torch.Tensor, pafs: torch.Tensor, limb: int = 5,
                         threshold: float = 0.3, method: str = "hungarian", min_score: float = 0.05):
    """The explorer's figure for one image and one limb type: the two endpoint heatmaps with their peaks above
    ``threshold``; the limb's PAF as arrows over its magnitude; every candidate connection scoring above
    ``min_score`` with its line integral (dashed, orange) and the chosen matching (thick, green) on the image.

    ``image``: ``S×S`` (or 1×S×S) uint8; ``heatmaps``/``pafs``: the network's (or true) ``J×h×w`` and ``2L×h×w``
    maps. Raises ValueError for a limb outside 0…L−1 or a threshold outside (0, 1).
    """
    if not 0 <= limb < len(LIMBS):
        raise ValueError(f"limb must be between 0 and {len(LIMBS) - 1} ({', '.join(LIMB_NAMES)}), not {limb}")
    if not 0 < threshold < 1:
        raise ValueError(f"the peak threshold must be between 0 and 1, not {threshold}")
    image = image.reshape(image.shape[-2:]).cpu().numpy()
    size = image.shape[-1]
    maps = F.interpolate(torch.cat([heatmaps, pafs])[None].float().cpu(), size=(size, size), mode="bilinear",
                         align_corners=False)[0]
    a, b = LIMBS[limb]
    heat, field = maps[[a, b]], maps[len(KEYPOINTS) + 2 * limb:len(KEYPOINTS) + 2 * limb + 2]
    peaks = find_peaks(heat, threshold)
    scores = limb_scores(field, peaks[0], peaks[1])
    chosen = match_limbs(scores, method, min_score)
    heat, field, peaks = heat.numpy(), field.numpy(), [p.numpy() for p in peaks]

    fig, (ax_heat, ax_paf, ax_match) = plt.subplots(1, 3, figsize=(13, 4.3))
    shown = ax_heat.imshow(heat.max(0), cmap="magma", vmin=0, vmax=1)
    fig.colorbar(shown, ax=ax_heat, fraction=0.046, pad=0.04, label="heatmap value")
    for points, marker, name in ((peaks[0], "o", KEYPOINTS[a]), (peaks[1], "s", KEYPOINTS[b])):
        ax_heat.scatter(points[:, 0], points[:, 1], marker=marker, s=30, facecolors="none", edgecolors="cyan",
                        label=f"{name} ({len(points)})")
    ax_heat.legend(fontsize=7, loc="lower right")
    ax_heat.set(title=f"{KEYPOINTS[a]} and {KEYPOINTS[b]} heatmaps\npeaks > {threshold:.2f}", xlabel="x (pixels)",
                ylabel="y (pixels)")
    magnitude = np.linalg.norm(field, axis=0)
    shown = ax_paf.imshow(magnitude, cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(shown, ax=ax_paf, fraction=0.046, pad=0.04, label="|PAF|")
    step = max(1, size // 24)
    ys, xs = np.meshgrid(np.arange(0, size, step), np.arange(0, size, step), indexing="ij")
    u, v = field[0][ys, xs], field[1][ys, xs]
    strong = magnitude[ys, xs] > 0.1
    length = magnitude[ys, xs][strong]                         # arrows show the direction; colour, the magnitude
    ax_paf.quiver(xs[strong], ys[strong], u[strong] / length, v[strong] / length, color="white", angles="xy",
                  scale_units="xy", scale=1 / (0.9 * step), width=0.006)
    ax_paf.set(title=f"PAF of {LIMB_NAMES[limb]}\n(arrows where |PAF| > 0.1)", xlabel="x (pixels)",
               ylabel="y (pixels)")
    ax_match.imshow(image, cmap="gray", vmin=0, vmax=255)
    matched = {(int(i), int(j)) for i, j, _ in chosen.tolist()}
    edges = (scores > min_score).nonzero().tolist()            # the bipartite graph: pairs the matching may choose
    for i, j in edges:
        (x1, y1), (x2, y2) = peaks[0][i, :2].tolist(), peaks[1][j, :2].tolist()
        if (i, j) in matched:
            ax_match.plot([x1, x2], [y1, y2], color="lime", lw=2.5)
        else:
            ax_match.plot([x1, x2], [y1, y2], color="orange", lw=0.8, ls="--")
        if len(edges) <= 16 or (i, j) in matched:
            ax_match.text((x1 + x2) / 2, (y1 + y2) / 2, f"{scores[i, j]:.2f}", fontsize=7,
                          color="lime" if (i, j) in matched else "orange")
    ax_match.scatter(peaks[0][:, 0], peaks[0][:, 1], marker="o", s=14, color="cyan")
    ax_match.scatter(peaks[1][:, 0], peaks[1][:, 1], marker="s", s=14, color="cyan")
    ax_match.set(title=f"{len(edges)} candidates scoring > {min_score} (dashed)\n{method} matching (green): "
                       f"{len(chosen)} limbs",
                 xlabel="x (pixels)", ylabel="y (pixels)", xlim=(-0.5, size - 0.5), ylim=(size - 0.5, -0.5))
    fig.tight_layout()
    return fig


def render_crowd_comparison(comparison: dict, device_name: str, profile_name: str):
    """Bottom-up vs top-down by crowd size, three bar charts side by side: keypoint AP, MFLOPs per image (networks
    only) and milliseconds per image on ``device_name``, one pair of bars per group of scenes.

    ``comparison``: ``{group name: row}`` in display order, each row holding "bottom-up AP", "top-down AP",
    "bottom-up MFLOPs", "top-down MFLOPs", "bottom-up ms" and "top-down ms"; ``profile_name`` goes in the title.
    """
    needed = {f"{method} {key}" for method in ("bottom-up", "top-down") for key in ("AP", "MFLOPs", "ms")}
    if not isinstance(comparison, dict) or not comparison:
        raise ValueError("comparison must be a non-empty dict {group name: row of measurements}")
    for group, row in comparison.items():
        if not needed <= set(row):
            raise ValueError(f"the row of group {group!r} lacks {sorted(needed - set(row))}: measure both pipelines' "
                             "AP, MFLOPs and ms per image for every group")
    groups = list(comparison)
    fig, (ax_ap, ax_cost, ax_time) = plt.subplots(1, 3, figsize=(13, 3.9), layout="constrained")
    positions = np.arange(len(groups))
    for offset, method, colour in ((-0.2, "bottom-up", "tab:blue"), (0.2, "top-down", "tab:orange")):
        for ax, key in ((ax_ap, "AP"), (ax_cost, "MFLOPs"), (ax_time, "ms")):
            values = [comparison[g][f"{method} {key}"] for g in groups]
            bars = ax.bar(positions + offset, values, 0.4, label=method, color=colour)
            ax.bar_label(bars, fmt="%.2g" if key == "AP" else "%.0f", fontsize=8)  # a smoke AP of 0.0013 is not 0.00
    labels = ("keypoint AP", "MFLOPs per image", f"ms per image ({device_name})")
    for ax, label in zip((ax_ap, ax_cost, ax_time), labels):
        ax.set_xticks(positions, [f"{g} people" for g in groups])
        ax.set(xlabel="people in the scene", ylabel=label)
        ax.margins(y=0.15)                                          # room for the numbers above the bars
    ax_ap.set_title("accuracy")
    ax_cost.set_title("arithmetic (networks only)")
    ax_time.set_title("wall clock, this machine (not asserted)")
    fig.legend(*ax_ap.get_legend_handles_labels(), loc="outside upper right", ncols=2, fontsize=8)  # off the bars
    fig.suptitle(f"Bottom-up vs top-down by crowd size ({profile_name} profile)")
    return fig
