"""Chapter 9's exercises (09_contrastive_multimodal) done wrong, the way learners do: each entry of `CATALOGUE` is
(exercise, mistaken function, the registered mistake its message must name)."""

import torch
import torch.nn.functional as F


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
    ("triplet_loss", triplet_loss_unsquared, "distances not squared"),
    ("triplet_loss", triplet_loss_without_hinge, "no hinge"),
    ("info_nce", info_nce_without_temperature, "no temperature"),
    ("info_nce", info_nce_diagonal_unmasked, "diagonal unmasked"),
    ("info_nce", info_nce_unnormalised, "unnormalised embeddings"),
    ("clip_loss", clip_loss_without_temperature, "no temperature"),
    ("clip_loss", clip_loss_one_direction, "one direction only"),
    ("clip_loss", clip_loss_unnormalised, "unnormalised embeddings"),
]
