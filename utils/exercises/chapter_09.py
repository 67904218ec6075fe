"""The exercises of Chapter 9 (09_contrastive_multimodal): their references, cases and known mistakes."""

from functools import partial

import torch
import torch.nn.functional as F

from .. import contrastive
from .base import Exercise, Mistake, random_tensors


def _pair_cases(*shapes_and_temperatures):
    return [(*random_tensors(shape, shape, seed=seed, dtype=torch.float32), temperature)
            for seed, (shape, temperature) in enumerate(shapes_and_temperatures)]


def _triplet_cases():
    return [(*random_tensors((6, 5), (6, 5), (6, 5), dtype=torch.float32), 0.5),
            (*random_tensors((4, 3), (4, 3), (4, 3), seed=1, dtype=torch.float32), 2.0),
            (*random_tensors((1, 4), (1, 4), (1, 4), seed=2, dtype=torch.float32), 1.0)]


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
    Exercise("triplet_loss", "09_contrastive_multimodal", "easy", contrastive.triplet_loss, _triplet_cases,
             TRIPLET_MISTAKES, forbidden=("contrastive.triplet_loss", "triplet_margin_loss", "TripletMarginLoss")),
    Exercise("info_nce", "09_contrastive_multimodal", "hard", contrastive.info_nce,
             lambda: _pair_cases(((6, 8), 0.1), ((4, 3), 0.5), ((1, 5), 0.2)), INFO_NCE_MISTAKES,
             forbidden=("contrastive.info_nce",)),
    Exercise("clip_loss", "09_contrastive_multimodal", "medium", contrastive.clip_loss,
             lambda: _pair_cases(((5, 8), 0.07), ((3, 4), 1.0), ((1, 6), 0.1)), CLIP_MISTAKES,
             forbidden=("contrastive.clip_loss", "multimodal.clip_loss")),
]
