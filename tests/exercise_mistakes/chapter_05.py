"""Chapter 5's exercises (05_segmentation) done wrong, the way learners do: each entry of `CATALOGUE` is (exercise, mistaken function, the registered mistake its message must name)."""

import torch
import torch.nn.functional as F


def _confusion(pred, target, num_classes):
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.float64)
    for t, p in zip(target.flatten().tolist(), pred.flatten().tolist()):
        matrix[t, p] += 1
    return matrix


def mean_iou_absent_as_zero(pred, target, num_classes):
    matrix = _confusion(pred, target, num_classes)
    ious = []
    for c in range(num_classes):
        union = matrix[c].sum() + matrix[:, c].sum() - matrix[c, c]
        ious.append(matrix[c, c] / union if union > 0 else torch.tensor(0.0))
    return torch.stack(ious).mean()


def mean_iou_overlap_twice(pred, target, num_classes):
    matrix = _confusion(pred, target, num_classes)
    union = matrix.sum(0) + matrix.sum(1)
    return (matrix.diagonal() / union).nanmean()


def mean_iou_target_classes_only(pred, target, num_classes):
    ious = []
    for c in target.unique().tolist():
        intersection = ((pred == c) & (target == c)).sum()
        union = ((pred == c) | (target == c)).sum()
        ious.append(intersection / union)
    return torch.stack(ious).mean()


def mean_iou_pooled(pred, target, num_classes):
    intersection = union = 0
    for c in range(num_classes):
        intersection += ((pred == c) & (target == c)).sum()
        union += ((pred == c) | (target == c)).sum()
    return intersection / union


def mean_iou_per_image(pred, target, num_classes):
    scores = []
    for image_pred, image_target in zip(pred, target):
        matrix = _confusion(image_pred, image_target, num_classes)
        hits = matrix.diagonal()
        scores.append((hits / (matrix.sum(0) + matrix.sum(1) - hits)).nanmean())
    return sum(scores) / len(scores)


def _focal_terms(logits, target):
    p = torch.sigmoid(logits)
    p_t = torch.where(target == 1, p, 1 - p)
    return p, p_t, F.binary_cross_entropy_with_logits(logits, target, reduction="none")


def binary_focal_loss_alpha_swapped(logits, target, gamma, alpha):
    _, p_t, cross_entropy = _focal_terms(logits, target)
    weight = torch.where(target == 1, 1 - alpha, alpha)
    return (weight * (1 - p_t) ** gamma * cross_entropy).mean()


def binary_focal_loss_easy_weighted_up(logits, target, gamma, alpha):
    _, p_t, cross_entropy = _focal_terms(logits, target)
    weight = torch.where(target == 1, alpha, 1 - alpha)
    return (weight * p_t ** gamma * cross_entropy).mean()


def binary_focal_loss_gamma_on_p(logits, target, gamma, alpha):
    p, _, cross_entropy = _focal_terms(logits, target)
    weight = torch.where(target == 1, alpha, 1 - alpha)
    return (weight * (1 - p) ** gamma * cross_entropy).mean()


def binary_focal_loss_log_sigmoid(logits, target, gamma, alpha):
    p = torch.sigmoid(logits)
    loss = -alpha * (1 - p) ** gamma * target * torch.log(p) \
        - (1 - alpha) * p ** gamma * (1 - target) * torch.log(1 - p)
    return loss.mean()


def binary_focal_loss_summed(logits, target, gamma, alpha):
    _, p_t, cross_entropy = _focal_terms(logits, target)
    weight = torch.where(target == 1, alpha, 1 - alpha)
    return (weight * (1 - p_t) ** gamma * cross_entropy).sum()


def _one_hot(target, num_classes):
    return F.one_hot(target, num_classes).permute(0, 3, 1, 2).to(torch.float64)


def dice_loss_without_smoothing(logits, target, smooth):
    probs = logits.softmax(1)[:, 1:]
    truth = _one_hot(target, logits.shape[1])[:, 1:]
    dice = 2 * (probs * truth).sum((0, 2, 3)) / (probs.sum((0, 2, 3)) + truth.sum((0, 2, 3)))
    return 1 - dice.mean()


def dice_loss_per_image(logits, target, smooth):
    probs = logits.softmax(1)[:, 1:]
    truth = _one_hot(target, logits.shape[1])[:, 1:]
    dice = (2 * (probs * truth).sum((2, 3)) + smooth) / (probs.sum((2, 3)) + truth.sum((2, 3)) + smooth)
    return 1 - dice.mean()


def dice_loss_on_logits(logits, target, smooth):
    truth = _one_hot(target, logits.shape[1])
    scores = []
    for c in range(1, logits.shape[1]):
        overlap = (logits[:, c] * truth[:, c]).sum()
        scores.append((2 * overlap + smooth) / (logits[:, c].sum() + truth[:, c].sum() + smooth))
    return 1 - torch.stack(scores).mean()


def dice_loss_with_background(logits, target, smooth):
    probs = logits.softmax(1)
    truth = _one_hot(target, logits.shape[1])
    dice = (2 * (probs * truth).sum((0, 2, 3)) + smooth) / (probs.sum((0, 2, 3)) + truth.sum((0, 2, 3)) + smooth)
    return 1 - dice.mean()


CATALOGUE = [
    ("mean_iou", mean_iou_absent_as_zero, "absent classes count as 0"),
    ("mean_iou", mean_iou_overlap_twice, "union counts the overlap twice"),
    ("mean_iou", mean_iou_target_classes_only, "classes of the target only"),
    ("mean_iou", mean_iou_pooled, "one pooled IoU"),
    ("mean_iou", mean_iou_per_image, "mean of per-image mIoUs"),
    ("binary_focal_loss", binary_focal_loss_alpha_swapped, "α on the negatives"),
    ("binary_focal_loss", binary_focal_loss_easy_weighted_up, "p_t^γ"),
    ("binary_focal_loss", binary_focal_loss_gamma_on_p, "(1 − p)^γ whatever the target"),
    ("binary_focal_loss", binary_focal_loss_log_sigmoid, "log of the sigmoid"),
    ("binary_focal_loss", binary_focal_loss_summed, "sum, not mean"),
    ("dice_loss", dice_loss_without_smoothing, "no smoothing"),
    ("dice_loss", dice_loss_per_image, "Dice per image"),
    ("dice_loss", dice_loss_on_logits, "logits as probabilities"),
    ("dice_loss", dice_loss_with_background, "background included"),
]
