"""Semantic segmentation: metrics from a confusion matrix, the three classic losses, mask loaders and overlays.

Introduced in Chapter 5 (05_segmentation). Every metric comes from one ``num_classes × num_classes``
confusion matrix ``C`` whose row is the true class and column the predicted class (FCN, Long et al. 2015):

    PA   = Σ_c C[c, c] / Σ C                   pixel accuracy
    CPA_c = C[c, c] / Σ_k C[c, k]              per-class pixel accuracy (recall of class c)
    MPA  = mean_c CPA_c                         mean pixel accuracy
    IoU_c = C[c, c] / (Σ_k C[c, k] + Σ_k C[k, c] − C[c, c])
    mIoU = mean_c IoU_c

A class in neither the target nor the prediction has no pixels to be right or wrong about: its CPA and
IoU are NaN and the means skip it. A class only predicted (false positives, no true pixel) scores 0 in
both, so hallucinating a class is penalised. These are the conventions of torchmetrics'
``MulticlassAccuracy`` and ``MulticlassJaccardIndex`` with ``average="macro"``.
"""

from __future__ import annotations

import numbers
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torchvision import tv_tensors

from .data import DeviceLoader, standardize


def _as_labels(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Predicted labels: ``pred`` itself (same shape as target) or the arg-max of logits N×C×H×W."""
    if pred.ndim == target.ndim + 1:
        pred = pred.argmax(1)
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} do not match: pass labels "
                         "of the target's shape, or logits N×C×H×W for targets N×H×W")
    if pred.is_floating_point() or target.is_floating_point():
        raise ValueError("labels must be integer tensors (use .long()); pass float scores as N×C×H×W logits")
    return pred


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``C[t, p]`` = number of pixels of true class t predicted as p: int64 ``num_classes × num_classes``.

    ``pred``: labels of the target's shape (any, e.g. N×H×W) or logits N×C×H×W; ``target``: labels in
    ``[0, num_classes)``. One ``bincount`` over ``t·num_classes + p``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer (e.g. 21 for VOC), not {num_classes!r}")
    # int64 whatever the masks' dtype: t·num_classes + p overflows uint8 (PNG masks) from 16 classes on
    pred, target = _as_labels(pred, target).long(), target.long()
    for name, labels in (("pred", pred), ("target", target)):
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} holds labels outside [0, {num_classes}): check num_classes "
                             f"(got min {labels.min().item()}, max {labels.max().item()})")
    index = target.reshape(-1) * num_classes + pred.reshape(-1)
    return torch.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def metrics_from_confusion(matrix: torch.Tensor) -> dict:
    """PA, per-class accuracy (CPA), MPA, per-class IoU and mIoU of a confusion matrix (see module docstring).

    Returns floats for ``pixel_accuracy``, ``mean_pixel_accuracy``, ``miou`` and float64 tensors
    (``num_classes``, NaN where undefined) for ``class_accuracy`` and ``iou``.
    """
    if not torch.is_tensor(matrix) or matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        shape = tuple(matrix.shape) if torch.is_tensor(matrix) else type(matrix).__name__
        raise ValueError(f"matrix must be a square num_classes × num_classes tensor of counts, got {shape}: "
                         "pass confusion_matrix(pred, target, num_classes)")
    matrix = matrix.double()
    if (matrix < 0).any():
        raise ValueError(f"matrix holds negative counts (min {matrix.min().item():g}): a confusion matrix counts "
                         "pixels; pass confusion_matrix(pred, target, num_classes)")
    hits, in_target, in_pred = matrix.diagonal(), matrix.sum(1), matrix.sum(0)
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=matrix.device)
    union = in_target + in_pred - hits
    class_accuracy = torch.where(in_target > 0, hits / in_target, torch.where(union > 0, 0.0, nan))
    iou = torch.where(union > 0, hits / union, nan)
    total = matrix.sum()
    return {
        "pixel_accuracy": (hits.sum() / total).item() if total > 0 else float("nan"),
        "class_accuracy": class_accuracy,
        "mean_pixel_accuracy": class_accuracy.nanmean().item(),
        "iou": iou,
        "miou": iou.nanmean().item(),
    }


def segmentation_metrics(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> dict:
    """`metrics_from_confusion` of `confusion_matrix(pred, target, num_classes)`.

    >>> m = segmentation_metrics(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1, 0]]), 3)
    >>> m["pixel_accuracy"], m["iou"].tolist()   # class 2 in neither: NaN, left out of the mean
    (0.666..., [0.5, 0.5, nan])
    """
    return metrics_from_confusion(confusion_matrix(pred, target, num_classes))


# ---------------------------------------------------------------------------------------------- losses

def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float | None = None,
               reduction: str = "mean") -> torch.Tensor:
    """Multi-class focal loss −α_t (1 − p_t)^γ log p_t per pixel (Lin et al., 2017).

    ``logits`` N×C×H×W, ``target`` N×H×W labels; ``alpha`` (optional) weighs every class but background
    (class 0) by α and background by 1 − α. With γ = 0 and no α it is cross-entropy. The factor
    (1 − p_t)^γ shrinks the loss of pixels already right (p_t → 1), so the many easy background pixels
    stop drowning the few hard ones.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', not {reduction!r}")
    log_pt = F.log_softmax(logits.float(), 1).gather(1, target.unsqueeze(1)).squeeze(1)
    loss = -(1 - log_pt.exp()) ** gamma * log_pt
    if alpha is not None:
        loss = loss * torch.where(target > 0, alpha, 1 - alpha)
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def binary_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25,
                      reduction: str = "mean") -> torch.Tensor:
    """The two-class case with one logit per pixel, as in RetinaNet; ``target`` in {0, 1}, any shape.

    Same arguments and result as ``torchvision.ops.sigmoid_focal_loss`` (``alpha < 0`` turns weighting off).
    """
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * target + (1 - alpha) * (1 - target))
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0,
              include_background: bool = False) -> torch.Tensor:
    """Soft Dice loss of C classes from logits, 1 − mean_c (2 Σ p·y + s) / (Σ p + Σ y + s) (Milletari et al., 2016);
    Chapter 1c's `utils.losses.binary_dice_loss` is the same overlap for one mask of probabilities.

    ``logits`` N×C×H×W, ``target`` N×H×W labels; p the softmax, y the one-hot target, sums over the whole
    batch. Each class weighs the same whatever its area, so a small object counts as much as the
    background; ``smooth`` keeps classes absent from the batch from dividing by zero.
    """
    probs = F.softmax(logits.float(), 1)
    one_hot = F.one_hot(target, probs.shape[1]).permute(0, 3, 1, 2).float()
    if not include_background:
        probs, one_hot = probs[:, 1:], one_hot[:, 1:]
    overlap = (probs * one_hot).sum((0, 2, 3))
    sizes = probs.sum((0, 2, 3)) + one_hot.sum((0, 2, 3))
    return 1 - ((2 * overlap + smooth) / (sizes + smooth)).mean()


LOSSES: dict[str, Callable] = {
    "cross_entropy": lambda logits, target: F.cross_entropy(logits.float(), target),
    "focal": focal_loss,
    "dice": dice_loss,
    "cross_entropy+dice": lambda logits, target: F.cross_entropy(logits.float(), target) + dice_loss(logits, target),
}


def segmentation_loss(kind: str = "cross_entropy+dice") -> Callable:
    """A `utils.training.fit` ``loss_fn(model, (x, masks))`` built on one of `LOSSES`.

    A model that returns a list of logits (U-Net++ with deep supervision, in training) gets the mean
    of the loss over its outputs.
    """
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r}: choose one of {', '.join(LOSSES)}")
    criterion = LOSSES[kind]

    def loss_fn(model, batch):
        x, masks = batch
        outputs = model(x)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return sum(criterion(out, masks) for out in outputs) / len(outputs)

    loss_fn.__name__ = f"segmentation_{kind}"
    return loss_fn


@torch.no_grad()
def evaluate_segmentation(model: torch.nn.Module, loader, num_classes: int) -> dict:
    """Cross-entropy, PA, MPA and mIoU of ``model`` over ``loader``'s ``(x, masks)`` batches, for `fit`."""
    model.eval()
    dev = next(model.parameters()).device
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.long, device=dev)
    total_loss, pixels = 0.0, 0
    for x, masks in loader:
        x, masks = x.to(dev), masks.to(dev)
        logits = model(x).float()
        total_loss += F.cross_entropy(logits, masks, reduction="sum").item()
        pixels += masks.numel()
        matrix += confusion_matrix(logits, masks, num_classes)
    scores = metrics_from_confusion(matrix)
    return {"loss": total_loss / pixels, "pa": scores["pixel_accuracy"], "mpa": scores["mean_pixel_accuracy"],
            "miou": scores["miou"]}


# ---------------------------------------------------------------------------------------------- data

class MaskLoader(DeviceLoader):
    """`DeviceLoader` for ``(images uint8 N×1×H×W, masks int64 N×H×W)`` with joint v2 augmentation.

    ``transform`` is a ``torchvision.transforms.v2`` transform called on ``(tv_tensors.Image,
    tv_tensors.Mask)`` so geometric changes move image and mask together (masks are resampled with
    nearest-neighbour, never blended). It draws its parameters once per call; ``groups`` calls per batch
    give different augmentations to different parts of the batch while staying batched on the device.
    """

    def __init__(self, images, masks, batch_size=32, *, transform=None, groups: int = 4, **kwargs):
        if images.ndim != 4 or masks.ndim != 3 or images.shape[0] != masks.shape[0] \
                or images.shape[-2:] != masks.shape[-2:]:
            raise ValueError(f"expected images N×C×H×W and masks N×H×W of the same N, H, W; got "
                             f"{tuple(images.shape)} and {tuple(masks.shape)}")
        if kwargs.get("augment"):
            raise ValueError("MaskLoader augments through `transform` (random_shift_flip would move images only)")
        kwargs.setdefault("prepare", standardize)
        super().__init__(images, masks, batch_size, **kwargs)
        self.transform, self.groups = transform, groups

    def __iter__(self):
        for x, masks in super().__iter__():
            if self.transform is not None:
                pairs = [self.transform(tv_tensors.Image(xs), tv_tensors.Mask(ms))
                         for xs, ms in zip(x.chunk(self.groups), masks.chunk(self.groups))]
                x = torch.cat([p[0] for p in pairs]).as_subclass(torch.Tensor)
                masks = torch.cat([p[1] for p in pairs]).as_subclass(torch.Tensor)
            yield x, masks


# ---------------------------------------------------------------------------------------------- overlays

def palette(num_classes: int) -> np.ndarray:
    """RGB colours in [0, 1], ``num_classes × 3``: transparent-looking black for background, tab10 after."""
    colours = plt.get_cmap("tab10" if num_classes <= 11 else "tab20")(np.arange(num_classes - 1))[:, :3]
    return np.vstack([np.zeros(3), colours])


def overlay(image: np.ndarray, labels: np.ndarray, num_classes: int, opacity: float = 0.5,
            only_class: int | None = None) -> np.ndarray:
    """Grey ``image`` (H×W, any range) with each labelled pixel tinted by its class colour: H×W×3 in [0, 1].

    Background (0) is left untinted; with ``only_class`` only that class is tinted.
    """
    if not 0 <= opacity <= 1:
        raise ValueError(f"opacity must lie in [0, 1], not {opacity}")
    grey = (image - image.min()) / max(float(image.max() - image.min()), 1e-8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    tinted = labels > 0 if only_class is None else labels == only_class
    colours = palette(num_classes)[labels]
    rgb[tinted] = (1 - opacity) * rgb[tinted] + opacity * colours[tinted]
    return rgb


def overlay_figure(image, target, prediction, class_names, opacity: float = 0.5, only_class: int | None = None,
                   right: str = "prediction"):
    """Image | ground truth | prediction or error map, for the Chapter 5 overlay explorer.

    ``image`` H×W, ``target`` and ``prediction`` H×W labels with 0 = background and ``c`` =
    ``class_names[c - 1]``. ``right`` is "prediction" or "errors" (wrong pixels red, right foreground
    green); ``only_class`` restricts tinting, and the error map, to one class.
    """
    image, target, prediction = (np.asarray(a) for a in (image, target, prediction))
    num_classes = len(class_names) + 1
    if right not in ("prediction", "errors"):
        raise ValueError(f"right must be 'prediction' or 'errors', not {right!r}")
    if only_class is not None and not 1 <= only_class < num_classes:
        raise ValueError(f"only_class must be a class from 1 to {num_classes - 1} (or None for all)")
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 4.0), layout="constrained")
    scores = segmentation_metrics(torch.as_tensor(prediction)[None], torch.as_tensor(target)[None], num_classes)
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title("image")
    axes[1].imshow(overlay(image, target, num_classes, opacity, only_class))
    axes[1].set_title("ground truth")
    if right == "prediction":
        axes[2].imshow(overlay(image, prediction, num_classes, opacity, only_class))
        axes[2].set_title(f"prediction (mIoU {scores['miou']:.2f})")
    else:
        relevant = np.ones_like(target, bool) if only_class is None else (target == only_class) | (
            prediction == only_class)
        wrong, right_fg = relevant & (prediction != target), relevant & (prediction == target) & (target > 0)
        rgb = overlay(image, np.zeros_like(target), num_classes)
        rgb[right_fg] = (1 - opacity) * rgb[right_fg] + opacity * np.array([0.1, 0.7, 0.2])
        rgb[wrong] = (1 - opacity) * rgb[wrong] + opacity * np.array([0.9, 0.1, 0.1])
        axes[2].imshow(rgb)
        axes[2].set_title(f"errors: {int(wrong.sum())} px wrong")
    present = sorted((set(np.unique(target)) | set(np.unique(prediction) if right == "prediction" else ())) - {0})
    colours = palette(num_classes)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c]) for c in present]
    labels = [class_names[c - 1] for c in present]
    legend = dict(loc="upper center", bbox_to_anchor=(0.5, -0.01), fontsize=8, frameon=False, ncol=2)
    if right == "errors":  # there colour means right or wrong, not a class: a legend of its own under that panel
        axes[1].legend(handles, labels, **legend)
        axes[2].legend([plt.Rectangle((0, 0), 1, 1, color=c) for c in ((0.1, 0.7, 0.2), (0.9, 0.1, 0.1))],
                       ["right (object pixel)", "wrong"], **legend)
    else:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6) or 1, fontsize=8,
                   frameon=False)
    for ax in axes:
        ax.axis("off")
    return fig


def render_ambiguous_prompt(image, point, single, answers, answer_names):
    """One click, one fitted mask and the K masks that could each commit to one reading (Chapter 5, section 11).

    ``image`` H×W grey; ``point`` the clicked pixel as (row, column); ``single`` H×W probabilities of the one
    output; ``answers`` K×H×W masks in [0, 1], one per valid reading, named by ``answer_names`` (K names).
    """
    image, single, answers = (np.asarray(a, dtype=float) for a in (image, single, answers))
    if image.ndim != 2 or single.shape != image.shape or answers.ndim != 3 or answers.shape[1:] != image.shape:
        raise ValueError(f"pass image and single as H×W and answers as K×H×W of the same H, W; got {image.shape}, "
                         f"{single.shape} and {answers.shape}")
    if len(answer_names) != len(answers):
        raise ValueError(f"give one name per answer: {len(answers)} answers, {len(answer_names)} names")
    fig, axes = plt.subplots(1, 2 + len(answers), figsize=(2.7 * (2 + len(answers)), 3.1), layout="constrained")
    axes[0].imshow(image, cmap="gray")
    axes[0].plot(point[1], point[0], "r*", markersize=12)
    axes[0].set_title("prompt: one click", fontsize=10)
    drawn = axes[1].imshow(single, cmap="magma", vmin=0, vmax=1)
    axes[1].set_title("one output:\nthe average", fontsize=10)
    for k, (answer, name) in enumerate(zip(answers, answer_names)):
        axes[2 + k].imshow(answer, cmap="magma", vmin=0, vmax=1)
        axes[2 + k].set_title(f"output {k + 1}\ncan commit: {name}", fontsize=10)
    for ax in axes:
        ax.axis("off")
    fig.colorbar(drawn, ax=axes[1:], shrink=0.8, label="mask probability")
    fig.suptitle("An ambiguous prompt: one mask averages the answers, three masks keep them apart")
    return fig
