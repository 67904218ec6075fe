"""Promptable segmentation: ambiguous scenes, simulated clicks, SAM's loss, interactive evaluation, a data engine.

Introduced in Chapter 10 (10_promptable_segmentation); the model is in `utils.models.sam`.

* **Scenes** — Chapter 4's Fashion scenes (`utils.scenes`) with items stacked on one another. A click on an item
  has three right answers, nested like SAM's subpart / part / whole: the **item** (its visible pixels), the
  **stack** (every item it touches, transitively) and **all** the items of the scene. Each object's three targets
  are packed as bits of one ``uint8`` map (bit 0 item, bit 1 stack, bit 2 all): `unpack_levels`.
* **Prompts** — `sample_point` (uniform inside a mask), `noisy_box` (the tight box, each side moved by noise
  of 10% of its length, as SAM), `next_click` (uniform in the error region of the last prediction: a
  foreground click on a missed pixel or a background click on a false positive).
* **Loss** — `sam_loss`: 20 × focal + Dice of the *best* of the masks only (the minimum over masks: an
  ambiguous prompt is not punished for the answers it did not give) + MSE of the predicted IoU of every mask.
* **Evaluation** — `click_ious` (IoU after each of k simulated clicks), `level_ious` (each mask against each
  level), `mask_iou`. **Data engine** — `propose_masks`: prompt a grid of points, keep masks that are confident
  (predicted IoU) and stable (their area barely changes when the threshold moves), remove duplicates.
* **Widget** — `render_masks` (plain, tested) and `ClickSegmenter` (ipyevents clicks on the image); the chapter's
  other figures are the `render_*` functions beside it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torchvision.ops import masks_to_boxes, nms

from .checks import check_fraction
from .plotting import colorbar
from .scenes import fashion_scenes
from .segmentation import binary_focal_loss
from .training import autocast

LEVELS = ("item", "stack", "all")
FOCAL_WEIGHT = 20.0   # SAM: focal and Dice in a 20:1 ratio


# ---------------------------------------------------------------------------------------------- scenes

@dataclass
class PromptScenes:
    """Scenes and, per object, its three nested targets. ``images`` uint8 N×1×S×S; ``instances`` uint8 N×S×S
    (0 background, k item k); ``stacks`` uint8 N×S×S (0 background, g stack g); ``objects`` int64 T×3 rows
    (scene, item id, stack id); ``classes`` int64 T, each object's Fashion-MNIST class (what a text prompt names)."""

    images: torch.Tensor
    instances: torch.Tensor
    stacks: torch.Tensor
    objects: torch.Tensor
    classes: torch.Tensor | None = None

    def levels(self, rows: torch.Tensor | slice = slice(None)) -> torch.Tensor:
        """The packed targets of ``objects[rows]``: uint8 T×S×S, bit 0 item, bit 1 stack, bit 2 all."""
        scene, item, stack = self.objects[rows].T
        inst, stacks = self.instances[scene].long(), self.stacks[scene].long()
        packed = (inst == item[:, None, None]).byte() | (stacks == stack[:, None, None]).byte() << 1
        return packed | (inst > 0).byte() << 2

    def object_images(self) -> torch.Tensor:
        """Each object's scene: uint8 T×1×S×S."""
        return self.images[self.objects[:, 0]]


def stack_map(instance: torch.Tensor) -> torch.Tensor:
    """``S×S`` instance map → stack map: items whose pixels touch (8-neighbours, transitively) share a stack id
    (1, 2, … in order of their first item; 0 = background)."""
    components, count = ndimage.label(instance.numpy() > 0, structure=np.ones((3, 3)))
    parent = list(range(count + 1))

    def find(c):
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for k in range(1, int(instance.max()) + 1):
        touched = np.unique(components[instance.numpy() == k])
        for c in touched[1:]:
            parent[find(c)] = find(touched[0])
    roots = np.array([find(c) for c in range(count + 1)])
    order = {root: i + 1 for i, root in enumerate(dict.fromkeys(roots[1:]))}
    lookup = np.array([0] + [order[r] for r in roots[1:]])
    return torch.from_numpy(lookup[components]).to(torch.uint8)


def prompt_scenes(split: str, count: int, size: int = 64, seed: int = 0) -> PromptScenes:
    """``count`` Fashion scenes of ``split`` with stacked items (overlap up to box IoU 0.5) and their targets."""
    if size % 4:
        raise ValueError(f"size must be a multiple of 4 (the encoder's stride), not {size}")
    scenes = fashion_scenes(split, count, size=size, seed=seed, min_scale=size // 4, max_scale=size * 5 // 8,
                            max_objects=4, max_overlap=0.5)
    stacks = torch.stack([stack_map(instance) for instance in scenes.instances])
    objects, classes = [], []
    for s, (instance, stack) in enumerate(zip(scenes.instances, stacks)):
        for k in range(1, len(scenes.labels[s]) + 1):
            pixels = instance == k
            objects.append((s, k, int(stack[pixels][0])))
            classes.append(int(scenes.labels[s][k - 1]))
    return PromptScenes(scenes.images, scenes.instances, stacks, torch.tensor(objects, dtype=torch.int64),
                        torch.tensor(classes, dtype=torch.int64))


def unpack_levels(packed: torch.Tensor, level: torch.Tensor | int) -> torch.Tensor:
    """The bool target of ``level`` (0 item, 1 stack, 2 all; one per row or one for all) from packed maps."""
    level = torch.as_tensor(level, device=packed.device)
    if level.ndim:
        level = level.view(-1, *([1] * (packed.ndim - 1)))
    return (packed.long() >> level) & 1 == 1


# ---------------------------------------------------------------------------------------------- prompts

def _check_masks(mask: torch.Tensor, name: str = "mask") -> None:
    if mask.ndim != 3 or mask.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool N×H×W tensor, got {mask.dtype} {tuple(mask.shape)}")
    if mask.device.type == "cpu" and not mask.flatten(1).any(1).all():   # on a GPU the check would sync the step
        raise ValueError(f"every {name} needs at least one pixel: drop empty masks before sampling prompts")


def _pixels(index: torch.Tensor, width: int) -> torch.Tensor:
    return torch.stack([index % width, index // width], -1).float()


def sample_point(mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One pixel drawn uniformly inside each mask: ``mask`` bool N×H×W → N×2 pixel coordinates (x, y)."""
    _check_masks(mask)
    index = torch.multinomial(mask.flatten(1).float(), 1, generator=generator)[:, 0]
    return _pixels(index, mask.shape[-1])


def next_click(predicted: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None):
    """A corrective click drawn uniformly in each error region: ``(points N×2, labels N)``.

    A missed pixel (in ``target``, not in ``predicted``) gives a foreground click (label 1), a false positive a
    background click (label 0). A perfect prediction gets a foreground click inside the target (harmless)."""
    _check_masks(target, "target")
    if predicted.shape != target.shape or predicted.dtype != torch.bool:
        raise ValueError(f"predicted must be a bool tensor of the target's shape {tuple(target.shape)}, got "
                         f"{predicted.dtype} {tuple(predicted.shape)}")
    error = (predicted ^ target).flatten(1)
    weights = torch.where(error.any(1, keepdim=True), error, target.flatten(1)).float()
    index = torch.multinomial(weights, 1, generator=generator)
    labels = target.flatten(1).gather(1, index)[:, 0].long()
    return _pixels(index[:, 0], target.shape[-1]), labels


def tight_boxes(mask: torch.Tensor) -> torch.Tensor:
    """Bool N×H×W → N×4 xyxy boxes (x2, y2 exclusive), vectorised; equal to `torchvision.ops.masks_to_boxes` + 1."""
    columns, rows = mask.any(1).float(), mask.any(2).float()
    width, height = mask.shape[-1], mask.shape[-2]
    return torch.stack([columns.argmax(1), rows.argmax(1), width - columns.flip(1).argmax(1),
                        height - rows.flip(1).argmax(1)], 1).float()


def noisy_box(mask: torch.Tensor, generator: torch.Generator | None = None, noise: float = 0.1) -> torch.Tensor:
    """The tight box of each mask with every side moved by Gaussian noise of ``noise`` × the box's side (SAM:
    10%), kept on the image and at least one pixel wide: N×4 xyxy."""
    _check_masks(mask)
    box = tight_boxes(mask)
    sides = (box[:, 2:] - box[:, :2]).repeat(1, 2)
    box = box + noise * sides * torch.randn(box.shape, generator=generator, device=box.device)
    size = torch.tensor(mask.shape[-2:][::-1], device=box.device).repeat(2).float()
    box = torch.minimum(box.clamp(min=0), size)
    return torch.cat([torch.minimum(box[:, :2], box[:, 2:] - 1), torch.maximum(box[:, 2:], box[:, :2] + 1)], 1)


def box_prompt(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """N×4 xyxy boxes (x2, y2 exclusive) → two corner points N×2×2 with labels 2 (top-left) and 3 (bottom-right)."""
    corners = torch.stack([boxes[:, :2], boxes[:, 2:] - 1], 1)
    return corners, torch.tensor([2, 3], device=boxes.device).expand(len(boxes), 2)


def first_prompt(target: torch.Tensor, generator: torch.Generator | None, box_fraction: float = 0.0):
    """A point inside each target, or (for a ``box_fraction`` of rows, drawn at random) its noisy box as two
    corners: points N×2×2 and labels N×2 (a point is padded with a label −1 slot)."""
    point = sample_point(target, generator)
    corners, corner_labels = box_prompt(noisy_box(target, generator))
    use_box = torch.rand(len(target), generator=generator, device=target.device) < box_fraction
    padded = torch.stack([point, point], 1)
    labels = torch.tensor([1, -1], device=target.device).expand(len(target), 2)
    return torch.where(use_box[:, None, None], corners, padded), torch.where(use_box[:, None], corner_labels, labels)


# ---------------------------------------------------------------------------------------------- loss

def mask_iou(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of bool masks over the last two dimensions (broadcast); 1 where both are empty."""
    inter = (predicted & target).sum((-2, -1)).float()
    union = (predicted | target).sum((-2, -1)).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def mask_losses(logits: torch.Tensor, target: torch.Tensor, focal_weight: float = FOCAL_WEIGHT) -> torch.Tensor:
    """``focal_weight`` × focal + Dice of every mask: logits N×M×H×W, target bool N×H×W → N×M."""
    target = target[:, None].expand_as(logits).float()
    logits = logits.float()
    focal = binary_focal_loss(logits, target, reduction="none").mean((-2, -1))
    probs = logits.sigmoid()
    dice = 1 - (2 * (probs * target).sum((-2, -1)) + 1) / (probs.sum((-2, -1)) + target.sum((-2, -1)) + 1)
    return focal_weight * focal + dice


def sam_loss(logits: torch.Tensor, predicted_iou: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SAM's loss: the mask loss of the best mask only (minimum over the M masks) + MSE between the predicted
    and the actual IoU of every mask. logits N×M×H×W, predicted_iou N×M, target bool N×H×W → a scalar."""
    if logits.ndim != 4 or predicted_iou.shape != logits.shape[:2] or target.shape != (len(logits), *logits.shape[2:]):
        raise ValueError(f"need logits N×M×H×W, predicted_iou N×M, target N×H×W; got {tuple(logits.shape)}, "
                         f"{tuple(predicted_iou.shape)}, {tuple(target.shape)}")
    best = mask_losses(logits, target).min(1).values
    actual = mask_iou(logits.detach() > 0, target[:, None])
    return best.mean() + F.mse_loss(predicted_iou.float(), actual)


def best_mask(logits: torch.Tensor, predicted_iou: torch.Tensor) -> torch.Tensor:
    """The logits of the mask with the highest predicted IoU: N×M×H×W → N×1×H×W (what an interactive tool shows)."""
    index = predicted_iou.argmax(1)
    return logits[torch.arange(len(logits), device=logits.device), index][:, None]


def interactive_loss(model, images: torch.Tensor, target: torch.Tensor, generator: torch.Generator, rounds: int = 3,
                     box_fraction: float = 0.5) -> torch.Tensor:
    """SAM's simulated interaction, one image embedding for all rounds: a first point or noisy box, then
    ``rounds − 1`` corrective clicks from the error region of the previous best mask, whose logits are fed back
    as the dense prompt. Returns the mean of `sam_loss` over the rounds."""
    embedding = model.embed(images)
    points, labels = first_prompt(target, generator, box_fraction)
    mask_input, total = None, 0.0
    for r in range(rounds):
        logits, predicted_iou = model.predict(embedding, points, labels, mask_input)
        total = total + sam_loss(logits, predicted_iou, target)
        if r + 1 < rounds:
            chosen = best_mask(logits.detach(), predicted_iou.detach())
            point, label = next_click(chosen[:, 0] > 0, target, generator)
            points, labels = torch.cat([points, point[:, None]], 1), torch.cat([labels, label[:, None]], 1)
            mask_input = chosen.float()
    return total / rounds


def level_loss(rounds: int = 3, box_fraction: float = 0.5, seed: int = 0):
    """A `utils.training.fit` loss on ``(images, packed levels)`` batches: each object's target level is drawn at
    random (so a prompt on a stacked item is truly ambiguous), then `interactive_loss`."""
    state = {}

    def loss_fn(model, batch):
        images, packed = batch
        if "generator" not in state or state["generator"].device != packed.device:
            state["generator"] = torch.Generator(device=packed.device).manual_seed(seed)
        generator = state["generator"]
        level = torch.randint(0, len(LEVELS), (len(packed),), generator=generator, device=packed.device)
        return interactive_loss(model, images, unpack_levels(packed, level), generator, rounds, box_fraction)

    loss_fn.__name__ = f"sam_interactive_r{rounds}_box{box_fraction:g}"
    return loss_fn


# ---------------------------------------------------------------------------------------------- evaluation

def scene_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 scenes → float in [0, 1]."""
    return images.float() / 255


@torch.no_grad()
def click_ious(model, images: torch.Tensor, targets: torch.Tensor, clicks: int = 5, first: str = "point",
               seed: int = 0, batch_size: int = 256, embed=None) -> dict:
    """Simulated interactive segmentation: IoU after each of ``clicks`` prompts, for every target.

    ``images`` uint8 T×1×S×S, ``targets`` bool T×S×S; ``first`` "point" or "box" (a box then counts as the first
    prompt). Each round shows the mask with the highest predicted IoU (``chosen``); ``oracle`` is the best of the
    masks by true IoU. ``embed`` replaces ``model.embed`` (e.g. a distilled encoder). Returns float CPU tensors
    ``chosen`` and ``oracle`` T×clicks and ``first_masks`` (bool T×M×S×S, the masks of the first prompt)."""
    if first not in ("point", "box"):
        raise ValueError(f"first must be 'point' or 'box', not {first!r}")
    if clicks < 1 or len(images) != len(targets):
        raise ValueError(f"need clicks ≥ 1 and one target per image (got {clicks}, {len(images)} vs {len(targets)})")
    model.eval()
    dev = next(model.parameters()).device
    embed = embed or model.embed
    generator = torch.Generator(device=dev).manual_seed(seed)
    chosen, oracle, first_masks = [], [], []
    for image_batch, target in zip(images.split(batch_size), targets.split(batch_size)):
        target = target.to(dev)
        with autocast(dev):
            embedding = embed(scene_input(image_batch.to(dev)))
        points, labels = first_prompt(target, generator, box_fraction=1.0 if first == "box" else 0.0)
        mask_input, rows, best_rows = None, [], []
        for r in range(clicks):
            with autocast(dev):
                logits, predicted_iou = model.predict(embedding, points, labels, mask_input)
            logits, predicted_iou = logits.float(), predicted_iou.float()
            ious = mask_iou(logits > 0, target[:, None])
            if r == 0:
                first_masks.append((logits > 0).cpu())
            choice = best_mask(logits, predicted_iou)
            rows.append(ious.gather(1, predicted_iou.argmax(1, keepdim=True))[:, 0])
            best_rows.append(ious.max(1).values)
            point, label = next_click(choice[:, 0] > 0, target, generator)
            points, labels = torch.cat([points, point[:, None]], 1), torch.cat([labels, label[:, None]], 1)
            mask_input = choice
        chosen.append(torch.stack(rows, 1).cpu())
        oracle.append(torch.stack(best_rows, 1).cpu())
    return {"chosen": torch.cat(chosen), "oracle": torch.cat(oracle), "first_masks": torch.cat(first_masks)}


@torch.no_grad()
def level_ious(model, images: torch.Tensor, packed: torch.Tensor, points: torch.Tensor, batch_size: int = 256):
    """One foreground click per object: IoU of every mask with every level, and the predicted IoUs.

    ``images`` uint8 T×1×S×S, ``packed`` uint8 T×S×S levels, ``points`` T×2 → ``(ious T×3×M, predicted T×M)``."""
    model.eval()
    dev = next(model.parameters()).device
    all_ious, all_predicted = [], []
    for image_batch, levels, point in zip(images.split(batch_size), packed.split(batch_size), points.split(batch_size)):
        levels, point = levels.to(dev), point.to(dev)
        with autocast(dev):
            logits, predicted = model(scene_input(image_batch.to(dev)), point[:, None],
                                      torch.ones(len(point), 1, dtype=torch.long, device=dev))
        targets = torch.stack([unpack_levels(levels, level) for level in range(len(LEVELS))], 1)    # T×3×S×S
        all_ious.append(mask_iou(logits.float()[:, None] > 0, targets[:, :, None]).cpu())
        all_predicted.append(predicted.float().cpu())
    return torch.cat(all_ious), torch.cat(all_predicted)


# ---------------------------------------------------------------------------------------------- data engine

def stability(logits: torch.Tensor, offset: float = 1.0) -> torch.Tensor:
    """SAM's stability score: IoU of the mask thresholded at logit +offset with the one at −offset (…×H×W → …)."""
    return mask_iou(logits > offset, logits > -offset)


@torch.no_grad()
def propose_masks(model, images: torch.Tensor, grid: int = 6, min_iou: float = 0.85, min_stability: float = 0.85,
                  duplicate_iou: float = 0.7, min_area: int = 16, batch_size: int = 64) -> list[dict]:
    """SAM's fully automatic stage: prompt a ``grid``×``grid`` lattice of foreground points on each image, keep the
    masks that are confident (predicted IoU ≥ ``min_iou``) and stable (`stability` ≥ ``min_stability``) and at
    least ``min_area`` pixels, drop duplicates by box NMS at ``duplicate_iou``.

    Returns one dict per image: ``masks`` bool K×S×S (kept), ``scores`` K, and ``all_masks`` / ``kept`` (every
    candidate and whether it was kept) for measuring what the filter buys."""
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ValueError(f"grid must be a positive integer (points per side of the lattice), not {grid!r}")
    for value, name in ((min_iou, "min_iou"), (min_stability, "min_stability"), (duplicate_iou, "duplicate_iou")):
        check_fraction(value, name)
    model.eval()
    dev = next(model.parameters()).device
    size = images.shape[-1]
    lattice = (torch.arange(grid, device=dev) + 0.5) * size / grid - 0.5
    ys, xs = torch.meshgrid(lattice, lattice, indexing="ij")
    points = torch.stack([xs.flatten(), ys.flatten()], -1)[:, None]               # G²×1×2
    labels = torch.ones(len(points), 1, dtype=torch.long, device=dev)
    proposals = []
    for image_batch in images.split(batch_size):
        with autocast(dev):
            embeddings = model.embed(scene_input(image_batch.to(dev)))
        for embedding in embeddings:
            with autocast(dev):
                logits, predicted = model.predict(embedding[None].expand(len(points), -1, -1, -1), points, labels)
            logits, predicted = logits.float().flatten(0, 1), predicted.float().flatten()
            masks = logits > 0
            areas = masks.sum((-2, -1))
            keep = (predicted >= min_iou) & (stability(logits) >= min_stability) & (areas >= min_area)
            candidates = keep.nonzero()[:, 0]
            if len(candidates):
                boxes = masks_to_boxes(masks[candidates]).float()
                candidates = candidates[nms(boxes, predicted[candidates], duplicate_iou)]
            kept = torch.zeros_like(keep)
            kept[candidates] = True
            proposals.append({"masks": masks[candidates].cpu(), "scores": predicted[candidates].cpu(),
                              "all_masks": masks[areas >= min_area].cpu(), "kept": kept[areas >= min_area].cpu()})
    return proposals


def best_match_iou(masks: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    """For each proposed mask (K×S×S) the IoU of the true target it matches best, any level of any object of its
    scene (``packed`` O×S×S): K."""
    if len(masks) == 0:
        return torch.zeros(0)
    targets = torch.stack([unpack_levels(packed, level) for level in range(len(LEVELS))], 1).flatten(0, 1)
    return mask_iou(masks[:, None], targets[None]).max(1).values


# ---------------------------------------------------------------------------------------------- pictures

MASK_COLOURS = ((0.12, 0.47, 0.71), (1.0, 0.5, 0.05), (0.17, 0.63, 0.17))


def tint(image: np.ndarray, mask: np.ndarray, colour, opacity: float = 0.55) -> np.ndarray:
    """Grey uint8 H×W image with ``mask`` tinted: H×W×3 floats in [0, 1]."""
    rgb = np.repeat((np.asarray(image, dtype=float) / 255)[..., None], 3, -1)
    mask = np.asarray(mask, bool)
    rgb[mask] = (1 - opacity) * rgb[mask] + opacity * np.asarray(colour)
    return rgb


def draw_prompts(ax, points, labels) -> None:
    """Foreground clicks as green stars, background clicks as red crosses, box corners as a yellow rectangle."""
    points, labels = np.asarray(points, float).reshape(-1, 2), np.asarray(labels).reshape(-1)
    for label, marker, colour in ((1, "*", "lime"), (0, "X", "red")):
        chosen = points[labels == label]
        ax.scatter(chosen[:, 0], chosen[:, 1], marker=marker, s=110, c=colour, edgecolors="black", linewidths=0.8)
    if (labels == 2).any() and (labels == 3).any():
        (x1, y1), (x2, y2) = points[labels == 2][0], points[labels == 3][0]
        ax.add_patch(plt.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1 + 1, y2 - y1 + 1, fill=False, color="yellow", lw=1.5))


def render_masks(image, points, labels, masks, predicted_iou, title: str = ""):
    """The click-to-segment picture: the image with its prompts, then each mask with its predicted IoU (the one
    an interactive tool would show, the highest, framed). ``image`` uint8 H×W; ``masks`` bool M×H×W or None
    (no prompt yet); ``predicted_iou`` M."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be H×W grey, got shape {image.shape}")
    count = 3 if masks is None else len(masks)
    fig, axes = plt.subplots(1, count + 1, figsize=(2.6 * (count + 1), 3.0), layout="constrained")
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=255)
    draw_prompts(axes[0], points, labels)
    axes[0].set_title("image + prompts" if len(np.asarray(labels).reshape(-1)) else "click on the image")
    best = None if masks is None else int(np.argmax(np.asarray(predicted_iou)))
    for i, ax in enumerate(axes[1:]):
        if masks is None:
            ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"mask {i + 1}: no prompt yet")
        else:
            ax.imshow(tint(image, np.asarray(masks[i]), MASK_COLOURS[i % 3]))
            draw_prompts(ax, points, labels)
            ax.set_title(f"mask {i + 1}: predicted IoU {float(predicted_iou[i]):.2f}" + (" ★" if i == best else ""),
                         fontsize=9)
            if i == best:
                for spine in ax.spines.values():
                    spine.set(color="gold", linewidth=3)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set(xticks=[], yticks=[])
    if title:
        fig.suptitle(title)
    return fig


def render_levels(images: torch.Tensor, objects: torch.Tensor, targets: dict, shown: list[int]):
    """One row per shown object: its scene, then the scene tinted with each of its targets. ``images`` uint8
    N×1×S×S scenes; ``objects`` T×3 rows (scene, item id, stack id); ``targets`` maps each level's name (at most
    three) to bool T×S×S; ``shown`` the object rows to draw."""
    if not shown or any(not 0 <= i < len(objects) for i in shown):
        raise ValueError(f"shown must name object rows from 0 to {len(objects) - 1}, not {shown!r}")
    if not 0 < len(targets) <= len(MASK_COLOURS) or any(len(m) != len(objects) for m in targets.values()):
        raise ValueError(f"targets must map 1 to {len(MASK_COLOURS)} level names to one mask per object row")
    fig, axes = plt.subplots(len(shown), 1 + len(targets), figsize=(2.1 * (1 + len(targets)), 2.2 * len(shown)),
                             layout="constrained", squeeze=False)
    for row, index in zip(axes, shown):
        scene = int(objects[index, 0])
        row[0].imshow(images[scene, 0], cmap="gray", vmin=0, vmax=255)
        row[0].set_title(f"scene {scene}", fontsize=9)
        for ax, (name, masks), colour in zip(row[1:], targets.items(), MASK_COLOURS):
            ax.imshow(tint(images[scene, 0], masks[index], colour))
            ax.set_title(f"{name}: {int(masks[index].sum())} px", fontsize=9)
    for ax in axes.flat:
        ax.set(xticks=[], yticks=[])
    fig.suptitle("One object, three right answers: the item, its stack, all items")
    return fig


def render_prompt_samplers(image, item, point, box, error, click, label):
    """The three simulated prompts on one object: a first click inside ``item`` (bool S×S) at ``point`` (x, y),
    or its noisy ``box`` (x1, y1, x2, y2, x2 and y2 exclusive); the next ``click`` (x, y) with its ``label`` (1
    foreground, 0 background) in the ``error`` region (bool S×S, drawn red). ``image`` uint8 S×S."""
    image = np.asarray(image)
    if image.ndim != 2 or np.asarray(item).shape != image.shape or np.asarray(error).shape != image.shape:
        raise ValueError(f"image, item and error must be S×S maps of one size, got {image.shape}, "
                         f"{np.asarray(item).shape}, {np.asarray(error).shape}")
    if torch.as_tensor(box).shape != (4,):
        raise ValueError("box must be one x1, y1, x2, y2 box (e.g. noisy_box(masks)[i])")
    fig, axes = plt.subplots(1, 3, figsize=(8.4, 3.0), layout="constrained")
    axes[0].imshow(tint(image, item, MASK_COLOURS[0]))
    draw_prompts(axes[0], point, torch.tensor([1]))
    axes[0].set_title("first click: inside the item", fontsize=9)
    axes[1].imshow(tint(image, item, MASK_COLOURS[0]))
    draw_prompts(axes[1], box_prompt(torch.as_tensor(box)[None])[0][0], torch.tensor([2, 3]))
    axes[1].set_title("or its box, sides moved 10%", fontsize=9)
    axes[2].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[2].imshow(np.ma.masked_equal(np.asarray(error, float), 0), cmap="autumn", alpha=0.7)
    draw_prompts(axes[2], click, torch.as_tensor(label).reshape(1))
    axes[2].set_title("next click: in the error region (red)", fontsize=9)
    for ax in axes:
        ax.set(xticks=[], yticks=[])
    return fig


def render_caching_cost(encoder_flops: float, per_prompt_flops: float, prompts: int = 20):
    """MFLOPs of 1 to ``prompts`` prompts on one image, with the embedding cached (the encoder once) and
    recomputed for every prompt: ``encoder_flops`` and ``per_prompt_flops`` (prompt encoder + decoder) > 0."""
    if not (encoder_flops > 0 and per_prompt_flops > 0) or not isinstance(prompts, int) or prompts < 1:
        raise ValueError("encoder_flops and per_prompt_flops must be > 0 (utils.measuring.count_flops) and prompts "
                         f"a count ≥ 1, got {encoder_flops}, {per_prompt_flops}, {prompts!r}")
    counts = np.arange(1, prompts + 1)
    fig, ax = plt.subplots(figsize=(5.6, 3.2), layout="constrained")
    ax.plot(counts, (encoder_flops + counts * per_prompt_flops) / 1e6, "o-", ms=3,
            label="embedding cached: encoder once + decoder per prompt")
    ax.plot(counts, counts * (encoder_flops + per_prompt_flops) / 1e6, "s-", ms=3,
            label="embedding recomputed for every prompt")
    ax.set(xlabel="prompts (clicks) on one image", ylabel="MFLOPs", title="Why SAM caches the image embedding",
           xticks=[k for k in counts if k == 1 or k % 5 == 0])
    ax.legend(fontsize=7)
    return fig


def render_click_curves(curves: dict, title: str):
    """Item mIoU click by click: ``curves`` maps a label to a 1-D sequence whose value k − 1 is the mIoU after k
    prompts (curves may differ in length)."""
    styles = ("o-", "s--", "^-", "v:")
    if not 0 < len(curves) <= len(styles) or any(len(c) == 0 for c in curves.values()):
        raise ValueError(f"curves must map 1 to {len(styles)} labels to non-empty mIoU sequences")
    fig, ax = plt.subplots(figsize=(5.6, 3.4), layout="constrained")
    for (label, curve), style in zip(curves.items(), styles):
        ax.plot(range(1, len(curve) + 1), curve, style, label=label)
    longest = max(len(c) for c in curves.values())
    ax.set(xlabel="prompts (clicks)", ylabel="item mIoU", title=title, xticks=range(1, longest + 1))
    ax.legend(fontsize=7)
    return fig


def render_ablation(level_scores: dict, single: torch.Tensor, three: torch.Tensor, three_iou: torch.Tensor, click):
    """Single- vs three-mask training: mIoU per reading (``level_scores`` maps 1 and 3 outputs to T×3 best-mask
    IoUs, one column per level), then one click (x, y) on a stacked item — the single model's mask probabilities
    ``single`` S×S and the three model's ``three`` 3×S×S with their predicted IoUs ``three_iou`` (3)."""
    if set(level_scores) != {1, 3} or any(s.ndim != 2 or s.shape[1] != len(LEVELS) for s in level_scores.values()):
        raise ValueError(f"level_scores must map 1 and 3 (outputs) to T×{len(LEVELS)} IoUs, one column per level")
    if single.ndim != 2 or three.shape != (3, *single.shape) or len(three_iou) != 3:
        raise ValueError(f"need single S×S, three 3×S×S and three_iou of 3; got {tuple(single.shape)}, "
                         f"{tuple(three.shape)}, {len(three_iou)}")
    fig, (ax_bars, *mask_axes) = plt.subplots(1, 5, figsize=(13, 3.0), layout="constrained",
                                              gridspec_kw={"width_ratios": [1.6, 1, 1, 1, 1]})
    positions = np.arange(len(LEVELS))
    for offset, outputs, colour in ((-0.2, 1, "tab:gray"), (0.2, 3, "tab:blue")):
        bars = ax_bars.bar(positions + offset, level_scores[outputs].mean(0), 0.4, color=colour,
                           label=f"{outputs} mask{'s' * (outputs > 1)}")
        ax_bars.bar_label(bars, fmt="%.2f", fontsize=7)
    ax_bars.set_xticks(positions, LEVELS)
    ax_bars.set(xlabel="the reading the user meant", ylabel="mIoU (best mask)", title="one click on a stacked item")
    ax_bars.legend(fontsize=7)
    mask_axes[0].imshow(single, cmap="viridis", vmin=0, vmax=1)
    mask_axes[0].set_title("1 mask: probabilities", fontsize=8)
    for i, ax in enumerate(mask_axes[1:]):
        drawn = ax.imshow(three[i], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"3 masks: #{i + 1}, IoU pred {float(three_iou[i]):.2f}", fontsize=8)
    for ax in mask_axes:
        draw_prompts(ax, click, torch.tensor([1]))
        ax.set(xticks=[], yticks=[])
    colorbar(drawn, mask_axes, "p(pixel in mask)")
    return fig


def render_iou_head(expected: torch.Tensor, predicted: torch.Tensor, choices: dict, correlation: float):
    """The IoU head judged: predicted against actual (``expected``, mean over the readings) IoU of every mask
    (both T×3), and the expected IoU of the mask each of ``choices`` ({name: float}, e.g. random, the head, the
    oracle) would show; ``correlation`` titles the scatter plot."""
    if expected.shape != predicted.shape or expected.ndim != 2 or expected.shape[1] > len(MASK_COLOURS):
        raise ValueError(f"expected and predicted must both be T×M (M ≤ {len(MASK_COLOURS)}), got "
                         f"{tuple(expected.shape)} and {tuple(predicted.shape)}")
    if not choices:
        raise ValueError("choices must name at least one way of choosing a mask, e.g. {'IoU head': 0.4}")
    fig, (ax_scatter, ax_bars) = plt.subplots(1, 2, figsize=(9.6, 3.6), layout="constrained")
    for i, colour in zip(range(expected.shape[1]), MASK_COLOURS):
        ax_scatter.scatter(expected[:, i], predicted[:, i], s=6, alpha=0.5, color=colour, label=f"mask {i + 1}")
    ax_scatter.plot([0, 1], [0, 1], "k:", lw=1)
    ax_scatter.set(xlabel="actual IoU (mean over the readings)", ylabel="predicted IoU",
                   title=f"IoU head: r = {correlation:.2f}")
    ax_scatter.legend(fontsize=7, markerscale=2)
    colours = ["tab:gray", "tab:blue", "navy", "tab:orange"]
    bars = ax_bars.barh(list(choices), list(choices.values()), color=colours[:len(choices)])
    ax_bars.bar_label(bars, fmt="%.3f", fontsize=8, padding=3)
    ax_bars.set(xlabel="expected IoU of the chosen mask", title="which mask to show", xlim=(0, 1))
    ax_bars.invert_yaxis()
    return fig


def render_pseudo_labels(images: torch.Tensor, examples: list):
    """The data engine's kept masks: ``examples`` (scene index, bool S×S mask) pairs drawn on their scenes of
    ``images`` (uint8 N×1×S×S)."""
    if not examples or any(not 0 <= s < len(images) for s, _ in examples):
        raise ValueError(f"examples must be (scene, mask) pairs with scenes from 0 to {len(images) - 1}")
    fig, axes = plt.subplots(1, len(examples), figsize=(2.4 * len(examples), 2.6), layout="constrained",
                             squeeze=False)
    for ax, (s, mask) in zip(axes[0], examples):
        ax.imshow(tint(images[s, 0], mask, MASK_COLOURS[2]))
        ax.set(title=f"unlabelled scene {s}", xticks=[], yticks=[])
    fig.suptitle("Pseudo-labels: masks the model was confident and stable about")
    return fig


def prompt_png(image, points, labels, scale: int = 4) -> bytes:
    """The image drawn ``scale`` times larger pixel by pixel, with the prompts: PNG bytes for the click target."""
    from PIL import Image, ImageDraw

    image = np.asarray(image, dtype=np.uint8)
    picture = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    picture = picture.convert("RGB")
    draw = ImageDraw.Draw(picture)
    points, labels = np.asarray(points, float).reshape(-1, 2), np.asarray(labels).reshape(-1)
    if (labels == 2).any() and (labels == 3).any():              # a box prompt: its frame, not two dots
        (x1, y1), (x2, y2) = points[labels == 2][0], points[labels == 3][0]
        draw.rectangle(((x1 + 0.5) * scale, (y1 + 0.5) * scale, (x2 + 0.5) * scale, (y2 + 0.5) * scale),
                       outline=(255, 200, 0), width=2)
    for (x, y), label in zip(points[labels <= 1], labels[labels <= 1]):
        cx, cy, r = (x + 0.5) * scale, (y + 0.5) * scale, 1.5 * scale
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(0, 220, 0) if label == 1 else (230, 0, 0),
                     outline=(0, 0, 0))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def event_pixel(event: dict, size: int) -> tuple[int, int]:
    """An ipyevents click on an image shown ``boundingRectWidth`` × ``boundingRectHeight`` CSS pixels → the image
    pixel (x, y) of a ``size``×``size`` image."""
    try:
        x = event["relativeX"] / event["boundingRectWidth"] * size
        y = event["relativeY"] / event["boundingRectHeight"] * size
    except (KeyError, ZeroDivisionError):
        raise ValueError("the event needs relativeX/Y and a non-zero boundingRectWidth/Height (an ipyevents click)")
    return min(max(int(x), 0), size - 1), min(max(int(y), 0), size - 1)


class ClickSegmenter:
    """Click-to-segment: click on the left image (foreground; shift-click or the dropdown for background), or drag
    a box; see the three masks with their predicted IoUs. "undo" removes the last click (or the box), the slider
    replays the history.

    The figure is an `utils.widgets.Explorer` (its render function is `render_masks`); the mouse events arrive
    through ``ipyevents`` (a press and a release: the same pixel is a click, two pixels apart a box). Each scene's
    image embedding is computed once and cached: a prompt costs one decoder pass."""

    def __init__(self, model, images: torch.Tensor, first_clicks: dict | None = None, scale: int = 4):
        import ipywidgets as widgets
        from ipyevents import Event

        from .widgets import Explorer, dropdown, slider

        if images.ndim != 4 or images.shape[1] != 1 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 N×1×S×S scenes, got {images.dtype} {tuple(images.shape)}")
        self.model, self.images, self.scale = model.eval(), images, scale
        self.size = images.shape[-1]
        self.clicks = {s: list(c) for s, c in (first_clicks or {}).items()}   # scene → [(x, y, label), …]
        self.embeddings: dict[int, torch.Tensor] = {}
        self.explorer = Explorer(self.render, {
            "scene": slider("scene", 0, len(images) - 1, 0),
            "shown": slider("clicks used", 0, 20, len(self.clicks.get(0, []))),
            "label": dropdown("a click adds", [("foreground", 1), ("background", 0)]),
        }, title="Click to segment (shift-click: background)", width=780)
        self.target = widgets.Image(value=self._png(), format="png",
                                    layout=widgets.Layout(width=f"{self.size * scale}px", height=f"{self.size * scale}px"))
        self.target.add_class("dvl-click-image")
        self.undo = widgets.Button(description="undo", icon="undo")
        self.undo.add_class("dvl-undo")
        self.undo.on_click(lambda _: self.remove_last())
        self._pressed_at: tuple[int, int] | None = None
        self.events = Event(source=self.target, watched_events=["mousedown", "mouseup"], prevent_default_action=True)
        self.events.on_dom_event(self._mouse)
        self.explorer.controls["scene"].observe(lambda _: self._scene_changed(), names="value")
        title, controls, message, figure = self.explorer.children
        self.explorer.children = (title, controls, widgets.HBox([widgets.VBox([self.target, self.undo]), figure]),
                                  message)

    # the plain part: what the figure shows for the current controls
    def prompts(self, scene: int, shown: int):
        used = self.clicks.get(scene, [])[:shown]
        points = torch.tensor([[x, y] for x, y, _ in used], dtype=torch.float32).reshape(-1, 2)
        return points, torch.tensor([label for _, _, label in used], dtype=torch.long)

    def embedding(self, scene: int) -> torch.Tensor:
        if scene not in self.embeddings:               # the heavy encoder: once per image
            dev = next(self.model.parameters()).device
            with torch.no_grad(), autocast(dev):
                self.embeddings[scene] = self.model.embed(scene_input(self.images[scene:scene + 1].to(dev)))
        return self.embeddings[scene]

    def render(self, scene: int = 0, shown: int = 0, label: int = 1):
        if not 0 <= scene < len(self.images):
            raise ValueError(f"scene must lie in 0…{len(self.images) - 1}")
        points, labels = self.prompts(scene, shown)
        masks = predicted = None
        if len(points):
            embedding = self.embedding(scene)
            dev = embedding.device
            with torch.no_grad(), autocast(dev):
                logits, predicted = self.model.predict(embedding, points[None].to(dev), labels[None].to(dev))
            masks, predicted = (logits[0].float() > 0).cpu(), predicted[0].float().cpu()
        clicks = int((labels <= 1).sum())
        return render_masks(self.images[scene, 0], points, labels, masks, predicted,
                            title=f"scene {scene}: {clicks} click{'s' * (clicks != 1)}"
                                  + (" and a box" if (labels == 2).any() else ""))

    # the thin part: widget plumbing
    def _png(self) -> bytes:
        values = self.explorer.values()
        return prompt_png(self.images[values["scene"], 0], *self.prompts(values["scene"], values["shown"]),
                          scale=self.scale)

    def add_click(self, x: int, y: int, label: int) -> None:
        values = self.explorer.values()
        history = self.clicks.setdefault(values["scene"], [])
        del history[values["shown"]:]                 # a click after an undo replaces the undone ones
        history.append((x, y, label))
        self._show(len(history))

    def add_box(self, x1: int, y1: int, x2: int, y2: int) -> None:
        """A box prompt (SAM takes one): its two corners join the history, replacing an earlier box."""
        values = self.explorer.values()
        history = self.clicks.setdefault(values["scene"], [])
        del history[values["shown"]:]
        history[:] = [entry for entry in history if entry[2] in (0, 1)]
        history += [(min(x1, x2), min(y1, y2), 2), (max(x1, x2), max(y1, y2), 3)]
        self._show(len(history))

    def remove_last(self) -> None:
        values = self.explorer.values()
        history = self.clicks.get(values["scene"], [])[:values["shown"]]
        last_is_box = bool(history) and history[-1][2] == 3
        self._show(max(values["shown"] - (2 if last_is_box else 1), 0))

    def _show(self, shown: int) -> None:
        control = self.explorer.controls["shown"]
        control.max = max(control.max, shown)
        control.value = shown
        self.target.value = self._png()

    def _clicked(self, event: dict) -> None:
        x, y = event_pixel(event, self.size)
        label = 0 if event.get("shiftKey") else self.explorer.values()["label"]
        self.add_click(x, y, label)

    def _mouse(self, event: dict) -> None:
        if event.get("type") == "mousedown":
            self._pressed_at = event_pixel(event, self.size)
            return
        start, self._pressed_at = self._pressed_at, None
        if start is None:
            return
        end = event_pixel(event, self.size)
        if max(abs(end[0] - start[0]), abs(end[1] - start[1])) < 2:
            self._clicked(event)                                  # pressed and released in place: a click
        else:
            self.add_box(*start, *end)

    def _scene_changed(self) -> None:
        scene = self.explorer.values()["scene"]
        self.explorer.controls["shown"].value = len(self.clicks.get(scene, []))
        self.target.value = self._png()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.explorer)
