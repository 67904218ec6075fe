"""The exercises of Chapter 5 (05_segmentation): their references, cases and known mistakes."""

from functools import partial

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_jaccard_index
from torchvision.ops import sigmoid_focal_loss

from .. import segmentation
from .base import Exercise, Mistake, random_tensors


def _labels(shape, num_classes, seed):
    return torch.randint(num_classes, shape, generator=torch.Generator().manual_seed(seed))


def _corrupted(target, num_classes, share, seed):
    """``target`` with about ``share`` of its labels replaced by random ones from ``[0, num_classes)``."""
    generator = torch.Generator().manual_seed(seed)
    flipped = torch.rand(target.shape, generator=generator) < share
    return torch.where(flipped, torch.randint(num_classes, target.shape, generator=generator), target)


# ------------------------------------------------------------------------------------------------ mean IoU
def _mean_iou_cases():
    target = _labels((2, 6, 9), 4, seed=0)                  # classes 4 and 5 in neither map: undefined, skipped
    # the chapter's worked example: class 3 only predicted (IoU 0, counted), class 4 in neither (skipped)
    example_target = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 2, 2, 2]])
    example_pred = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 2, 3]])
    one_image = _labels((1, 7, 5), 3, seed=2)               # a batch of one, non-square, every class present
    images_apart = torch.tensor([[[1, 1, 0], [0, 2, 2]], [[3, 3, 3], [0, 0, 3]], [[0, 1, 0], [2, 0, 3]]])
    return [(_corrupted(target, 4, 0.4, seed=1), target, 6),
            (example_pred, example_target, 5),
            (_corrupted(one_image, 3, 0.3, seed=3), one_image, 3),
            (_corrupted(images_apart, 4, 0.3, seed=4), images_apart, 4)]   # each image lacks some class


def _mean_iou_reference(pred, target, num_classes):
    return multiclass_jaccard_index(pred, target, num_classes)


def _class_ious(pred, target, num_classes, overlap_in_union=True):
    """Per-class intersection and union (the union counting the overlap twice when ``overlap_in_union=False``)."""
    matrix = torch.bincount((target * num_classes + pred).flatten(), minlength=num_classes ** 2)
    matrix = matrix.reshape(num_classes, num_classes).double()
    hits = matrix.diagonal()
    union = matrix.sum(0) + matrix.sum(1) - (hits if overlap_in_union else 0)
    return hits, union, matrix.sum(1)


def _mean_iou_absent_as_zero(pred, target, num_classes):
    hits, union, _ = _class_ious(pred, target, num_classes)
    return (hits / union).nan_to_num().mean()


def _mean_iou_overlap_twice(pred, target, num_classes):
    hits, union, _ = _class_ious(pred, target, num_classes, overlap_in_union=False)
    return (hits[union > 0] / union[union > 0]).mean()


def _mean_iou_target_classes_only(pred, target, num_classes):
    hits, union, in_target = _class_ious(pred, target, num_classes)
    return (hits[in_target > 0] / union[in_target > 0]).mean()


def _mean_iou_pooled(pred, target, num_classes):
    hits, union, _ = _class_ious(pred, target, num_classes)
    return hits.sum() / union.sum()


def _mean_iou_per_image(pred, target, num_classes):
    ious = []
    for image_pred, image_target in zip(pred, target):
        hits, union, _ = _class_ious(image_pred, image_target, num_classes)
        ious.append((hits[union > 0] / union[union > 0]).mean())
    return torch.stack(ious).mean()


MEAN_IOU_MISTAKES = (
    Mistake("absent classes count as 0", _mean_iou_absent_as_zero,
            "a class in neither map counts as IoU 0: its union is 0, so its IoU is undefined — leave it out of the "
            "mean (only a class that is predicted but absent from the target scores 0)"),
    Mistake("union counts the overlap twice", _mean_iou_overlap_twice,
            "the union is row sum + column sum: the diagonal C[c, c] is in both, subtract it once"),
    Mistake("classes of the target only", _mean_iou_target_classes_only,
            "only the classes present in the target are averaged: a class that is only predicted is all false "
            "positives and scores 0 — skip only a class in neither map"),
    Mistake("one pooled IoU", _mean_iou_pooled,
            "all classes pooled into one ratio Σ intersections / Σ unions (the micro average): compute one IoU per "
            "class, then take their mean"),
    Mistake("mean of per-image mIoUs", _mean_iou_per_image,
            "an mIoU per image, then their mean: count one confusion matrix over all the images' pixels"),
)


# ---------------------------------------------------------------------------------------------- focal loss
def _binary_targets(shape, seed, share=0.3):
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) < share).double()


def _binary_focal_loss_cases():
    logits, one_logit_map = random_tensors((3, 5, 7), (1, 4, 6), seed=10)
    # huge logits, right and wrong: sigmoid(40) rounds to 1 in float64, so 1 − p is exactly 0
    extreme = torch.tensor([[40.0, -40.0, 35.0, -35.0, 2.0, -1.0]], dtype=torch.float64)
    extreme_target = torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    return [(2 * logits, _binary_targets((3, 5, 7), seed=11), 2.0, 0.25),
            (one_logit_map, _binary_targets((1, 4, 6), seed=12), 0.5, 0.75),            # a batch of one
            (extreme, extreme_target, 2.0, 0.25),
            (3 * logits[:1], _binary_targets((1, 5, 7), seed=13), 0.0, 0.25)]             # γ = 0: weighted BCE


def _binary_focal_loss_reference(logits, target, gamma, alpha):
    return sigmoid_focal_loss(logits, target, alpha, gamma, reduction="mean")


def _focal(logits, target, gamma, alpha, factor="1 - p_t", alpha_on_positives=True, stable=True, reduce="mean"):
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    modulating = {"1 - p_t": 1 - p_t, "p_t": p_t, "1 - p": 1 - p}[factor] ** gamma
    positive_weight = alpha if alpha_on_positives else 1 - alpha
    alpha_t = positive_weight * target + (1 - positive_weight) * (1 - target)
    cross_entropy = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") if stable
                     else -torch.log(p_t))
    loss = alpha_t * modulating * cross_entropy
    return loss.mean() if reduce == "mean" else loss.sum()


BINARY_FOCAL_LOSS_MISTAKES = (
    Mistake("α on the negatives", partial(_focal, alpha_on_positives=False),
            "α weighs the negatives: α_t is α where the target is 1 and 1 − α where it is 0"),
    Mistake("p_t^γ", partial(_focal, factor="p_t"),
            "the factor is p_t^γ, which weighs the easy pixels up: use (1 − p_t)^γ"),
    Mistake("(1 − p)^γ whatever the target", partial(_focal, factor="1 - p"),
            "the factor is (1 − p)^γ with p the sigmoid whatever the target: use p_t, the probability of the true "
            "label (p where the target is 1, 1 − p where it is 0)"),
    Mistake("log of the sigmoid", partial(_focal, stable=False),
            "−log p_t taken as the log of the sigmoid, which is log 0 = −inf for logits of ±40: take it from "
            "F.binary_cross_entropy_with_logits(logits, target, reduction=\"none\")"),
    Mistake("sum, not mean", partial(_focal, reduce="sum"),
            "the losses are summed: average them over every element (reduction=\"mean\")"),
)


# ----------------------------------------------------------------------------------------------- Dice loss
def _dice_loss_cases():
    logits, one_image, confident = random_tensors((2, 4, 5, 7), (1, 3, 6, 4), (3, 5, 4, 4), seed=20)
    sure_target = _labels((3, 4, 4), 5, seed=22)
    sure_logits = confident + 8 * F.one_hot(sure_target, 5).permute(0, 3, 1, 2)           # right and confident
    only_two = torch.zeros(1, 6, 4, dtype=torch.long)
    only_two[0, 2:5, 1:3] = 1                                                              # class 2 absent
    images_apart = _labels((2, 5, 7), 4, seed=21)
    images_apart[0][images_apart[0] == 3] = 0                                              # class 3 in image 2 only
    return [(logits, images_apart, 1.0),
            (one_image, only_two, 1.0),                                                    # a batch of one
            (2 * logits, _labels((2, 5, 7), 4, seed=23), 0.5),
            (sure_logits, sure_target, 1.0)]


def _dice_loss_reference(logits, target, smooth):
    return segmentation.dice_loss(logits, target, smooth)


def _dice(logits, target, smooth, softmax=True, background=False, summed_over=(0, 2, 3)):
    probs = F.softmax(logits, 1) if softmax else logits
    one_hot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).double()
    if not background:
        probs, one_hot = probs[:, 1:], one_hot[:, 1:]
    overlap = (probs * one_hot).sum(summed_over)
    sizes = probs.sum(summed_over) + one_hot.sum(summed_over)
    return 1 - ((2 * overlap + smooth) / (sizes + smooth)).mean()


DICE_LOSS_MISTAKES = (
    Mistake("no smoothing", lambda logits, target, smooth: _dice(logits, target, 0.0),
            "smooth is not added: put it in both the numerator and the denominator, (2 Σ p·y + smooth) / "
            "(Σ p + Σ y + smooth), so a class absent from the batch still has a defined Dice"),
    Mistake("Dice per image", partial(_dice, summed_over=(2, 3)),
            "the Dice is computed per image and then averaged: sum the overlaps and sizes over the whole batch "
            "(dims 0, 2, 3), as seg.dice_loss does"),
    Mistake("logits as probabilities", partial(_dice, softmax=False),
            "the logits are used as probabilities: take the softmax over the class dimension (dim 1) first"),
    Mistake("background included", partial(_dice, background=True),
            "the background (class 0) is averaged in: average over the foreground classes 1 … C − 1 only"),
)


EXERCISES = [
    Exercise("mean_iou", "05_segmentation", "medium", _mean_iou_reference, _mean_iou_cases, MEAN_IOU_MISTAKES,
             forbidden=("multiclass_jaccard_index", "MulticlassJaccardIndex", "jaccard_index", "JaccardIndex",
                        "jaccard_score", "MeanIoU", "mean_iou", "confusion_matrix", "multiclass_confusion_matrix",
                        "MulticlassConfusionMatrix", "segmentation_metrics", "metrics_from_confusion")),
    Exercise("binary_focal_loss", "05_segmentation", "easy", _binary_focal_loss_reference, _binary_focal_loss_cases,
             BINARY_FOCAL_LOSS_MISTAKES, forbidden=("sigmoid_focal_loss", "binary_focal_loss", "focal_loss")),
    Exercise("dice_loss", "05_segmentation", "medium", _dice_loss_reference, _dice_loss_cases, DICE_LOSS_MISTAKES,
             forbidden=("dice_loss", "binary_dice_loss", "DiceLoss", "dice", "dice_score", "generalized_dice_score")),
]
