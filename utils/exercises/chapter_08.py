"""The exercises of Chapter 8 (08_pose): their references, cases and known mistakes."""

from functools import partial

import torch

from .. import pose
from .base import Exercise, Mistake


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


EXERCISES = [
    Exercise("gaussian_heatmap", "08_pose", "easy", pose.gaussian_heatmap, _gaussian_heatmap_cases,
             GAUSSIAN_HEATMAP_MISTAKES, forbidden=("pose.gaussian_heatmap",)),
    Exercise("paf_score", "08_pose", "medium", pose.paf_score, _paf_score_cases, PAF_SCORE_MISTAKES,
             forbidden=("pose.paf_score",)),
    Exercise("oks", "08_pose", "medium", pose.oks, _oks_cases, OKS_MISTAKES, forbidden=("pose.oks",)),
]
