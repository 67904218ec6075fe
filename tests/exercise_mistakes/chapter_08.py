"""Chapter 8's exercises (08_pose) done wrong, the way learners do: each entry of `CATALOGUE` is (exercise, mistaken
function, the registered mistake its message must name)."""

import torch


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


CATALOGUE = [
    ("gaussian_heatmap", gaussian_heatmap_sigma_not_squared, "sigma not squared"),
    ("gaussian_heatmap", gaussian_heatmap_without_the_two, "the 2 missing"),
    ("gaussian_heatmap", gaussian_heatmap_swapped, "x and y swapped"),
    ("paf_score", paf_score_unnormalised, "direction not normalised"),
    ("paf_score", paf_score_truncated, "coordinates truncated"),
    ("oks", oks_without_sigmas, "no per-keypoint sigmas"),
    ("oks", oks_k_is_sigma, "k = σ"),
    ("oks", oks_counting_unlabelled, "unlabelled keypoints counted"),
]
