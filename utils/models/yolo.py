"""Two one-stage detectors for Fashion scenes: a YOLOv1-style grid detector and a YOLOX/YOLOv8-style
anchor-free detector with a decoupled head.

Introduced in Chapter 4 (04_detection). Both read a 1×S×S uint8 scene (scaled to [0, 1] by `scene_input`)
and learn from a padded target tensor ``B×M×5`` of rows (label, x1, y1, x2, y2), label −1 for padding
(`pad_targets` builds it), so that batches stay on the device and `utils.training.fit` can train them.

- `GridDetector` (YOLOv1, 2015): one cell of an S×S grid is *responsible* for each object whose centre
  falls in it; every cell predicts B boxes (x, y, √w, √h, confidence) and one class distribution →
  an ``S×S×(5B+C)`` tensor. Sum-squared loss with λ_coord = 5 and λ_noobj = 0.5.
- `AnchorFreeDetector` (YOLOX 2021 / YOLOv8 2023): C2f backbone, a small PAN neck over strides 8 and 16,
  a decoupled head (separate classification and regression branches) predicting, at every grid point,
  distances to the four box sides, an objectness and C class scores. Centre assignment: a point is a
  positive of the smallest object whose box contains it and whose centre lies within 2.5 strides.
  Losses: CIoU (or GIoU) on positive boxes, BCE on objectness and classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..detection import paired_box_iou, postprocess


def scene_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 scenes → float in [0, 1] (the detectors' input)."""
    return images.float() / 255


def pad_targets(boxes: list[torch.Tensor], labels: list[torch.Tensor], max_objects: int | None = None):
    """Per-scene boxes (K×4) and labels (K) → one ``N×M×5`` tensor of (label, x1, y1, x2, y2), label −1 = none."""
    width = max_objects or max([len(l) for l in labels] + [1])
    padded = torch.zeros(len(boxes), width, 5)
    padded[..., 0] = -1
    for i, (b, l) in enumerate(zip(boxes, labels)):
        if len(l) > width:
            raise ValueError(f"scene {i} has {len(l)} objects but max_objects={width}: raise max_objects")
        padded[i, :len(l), 0] = l.float()
        padded[i, :len(l), 1:] = b
    return padded


def unpad_targets(targets: torch.Tensor) -> list[dict]:
    """``N×M×5`` padded targets → torchmetrics' list of ``{"boxes", "labels"}``."""
    return [{"boxes": t[t[:, 0] >= 0, 1:], "labels": t[t[:, 0] >= 0, 0].long()} for t in targets.cpu()]


def conv(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv → BatchNorm → SiLU, the unit every YOLO since v5 is built of."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.SiLU(inplace=True))


class Bottleneck(nn.Module):
    """Two 3×3 convs with a residual connection."""

    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(conv(channels, channels), conv(channels, channels))

    def forward(self, x):
        return x + self.block(x)


class C2f(nn.Module):
    """YOLOv8's block: split the channels, run bottlenecks on one half, keep *every* intermediate output,
    concatenate and fuse with a 1×1 conv — richer gradient paths than v5's C3 for the same cost."""

    def __init__(self, c_in: int, c_out: int, depth: int = 1):
        super().__init__()
        self.hidden = c_out // 2
        self.split = conv(c_in, 2 * self.hidden, 1)
        self.blocks = nn.ModuleList(Bottleneck(self.hidden) for _ in range(depth))
        self.fuse = conv((2 + depth) * self.hidden, c_out, 1)

    def forward(self, x):
        parts = list(self.split(x).chunk(2, dim=1))
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.fuse(torch.cat(parts, dim=1))


# --------------------------------------------------------------------------------------------- YOLOv1-style
class GridDetector(nn.Module):
    """YOLOv1 on a small scale: a strided CNN to an S×S grid, then a 1×1 conv to 5B + C channels per cell.

    ``forward`` returns the raw ``N×S×S×(5B+C)`` tensor: per cell, B × (x, y, √w, √h, confidence) —
    all squashed to [0, 1] by a sigmoid, x and y relative to the cell, w and h to the image — then C
    class logits.
    """

    def __init__(self, image_size: int = 128, grid: int = 8, boxes_per_cell: int = 2, num_classes: int = 10,
                 width: int = 32):
        super().__init__()
        if image_size % grid:
            raise ValueError(f"image_size {image_size} must be a multiple of the grid {grid}")
        stride = image_size // grid
        if stride & (stride - 1) or stride < 4:
            raise ValueError(f"image_size / grid = {stride} must be a power of two ≥ 4 (one stride-2 stage each)")
        self.image_size, self.grid, self.boxes_per_cell, self.num_classes = image_size, grid, boxes_per_cell, num_classes
        layers, channels = [conv(1, width, 3, 2)], width
        while stride > 2:
            layers += [conv(channels, channels * 2, 3, 2), C2f(channels * 2, channels * 2)]
            channels, stride = channels * 2, stride // 2
        self.features = nn.Sequential(*layers, conv(channels, channels, 3))
        self.head = nn.Conv2d(channels, 5 * boxes_per_cell + num_classes, 1)

    def forward(self, x):
        return self.head(self.features(x)).permute(0, 2, 3, 1)

    def boxes(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw output → (xyxy boxes ``N×S×S×B×4`` in pixels, confidences ``N×S×S×B``)."""
        n, s = out.shape[0], self.grid
        pred = out[..., :5 * self.boxes_per_cell].reshape(n, s, s, self.boxes_per_cell, 5).sigmoid()
        cell = self.image_size / s
        ys, xs = torch.meshgrid(torch.arange(s, device=out.device), torch.arange(s, device=out.device),
                                indexing="ij")
        cx = (xs[None, :, :, None] + pred[..., 0]) * cell
        cy = (ys[None, :, :, None] + pred[..., 1]) * cell
        w, h = pred[..., 2] ** 2 * self.image_size, pred[..., 3] ** 2 * self.image_size
        return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1), pred[..., 4]

    @torch.no_grad()
    def detect(self, images, confidence: float = 0.25, iou_threshold: float = 0.5) -> list[dict]:
        """uint8 scenes → per-image ``{"boxes", "scores", "labels"}``; score = confidence × class probability."""
        self.eval()
        out = self(scene_input(images.to(next(self.parameters()).device))).float()
        boxes, conf = self.boxes(out)
        probs = out[..., 5 * self.boxes_per_cell:].softmax(-1)
        best_prob, label = probs.max(-1)
        scores = conf * best_prob[..., None]
        n = len(out)
        labels = label[..., None].expand_as(conf)
        return [postprocess(boxes[i].reshape(-1, 4), scores[i].reshape(-1), labels[i].reshape(-1),
                            confidence, iou_threshold) for i in range(n)]


def yolo_v1_loss(model: GridDetector, batch, coord_weight: float = 5.0, noobj_weight: float = 0.5):
    """YOLOv1's sum-squared loss, per image.

    For each object, the cell holding its centre is responsible, and of that cell's B boxes the one with the
    highest IoU with the object learns it: (x, y, √w, √h) weighted by λ_coord and its confidence towards the
    IoU. Every other box's confidence is pushed to 0 with weight λ_noobj — most cells are empty, and without
    the small weight their gradient would swamp the few cells with objects. √w makes an error of 4 px cost
    more on a small box than on a big one. Class probabilities (softmax here) are learnt in responsible cells.
    (Two objects centred in one cell: one of them is lost — YOLOv1's known weakness on crowds.)
    """
    images, targets = batch
    out = model(images).float()
    n, s, b = out.shape[0], model.grid, model.boxes_per_cell
    pred = out[..., :5 * b].reshape(n, s, s, b, 5).sigmoid()
    pred_boxes, _ = model.boxes(out)
    valid = targets[..., 0] >= 0
    image_index = torch.arange(n, device=out.device)[:, None].expand_as(valid)[valid]
    labels, gt = targets[valid][:, 0].long(), targets[valid][:, 1:]
    cell = model.image_size / s
    centre = (gt[:, :2] + gt[:, 2:]) / 2
    col, row = (centre / cell).long().clamp(0, s - 1).unbind(-1)
    candidates = pred_boxes[image_index, row, col]                                      # K×B×4
    # check=False: the model's boxes are ordered by construction (w, h ≥ 0), the targets by the scenes
    ious = paired_box_iou(candidates, gt[:, None].expand_as(candidates), check=False).detach()      # K×B
    best = ious.argmax(1)
    responsible = torch.zeros(n, s, s, b, dtype=torch.bool, device=out.device)
    responsible[image_index, row, col, best] = True
    chosen = pred[image_index, row, col, best]                                          # K×5
    wh = (gt[:, 2:] - gt[:, :2]) / model.image_size
    target_xy = centre / cell - torch.stack([col, row], -1)
    coord = ((chosen[:, :2] - target_xy) ** 2).sum() + ((chosen[:, 2:4] - wh.sqrt()) ** 2).sum()
    obj = ((chosen[:, 4] - ious[torch.arange(len(best)), best]) ** 2).sum()
    noobj = (pred[..., 4][~responsible] ** 2).sum()
    class_probs = out[image_index, row, col, 5 * b:].softmax(-1)
    classes = ((class_probs - F.one_hot(labels, model.num_classes).float()) ** 2).sum()
    return (coord_weight * coord + obj + noobj_weight * noobj + classes) / n


# ------------------------------------------------------------------------------------ anchor-free, decoupled
class DecoupledHead(nn.Module):
    """YOLOX's head: a 1×1 stem, then *separate* 3×3 branches for "what" (classes) and "where" (box sides +
    objectness). Sharing one branch (YOLOv3–v5's coupled head) makes the two tasks fight over features."""

    def __init__(self, channels: int, num_classes: int, hidden: int = 64):
        super().__init__()
        self.stem = conv(channels, hidden, 1)
        self.cls_branch = nn.Sequential(conv(hidden, hidden), conv(hidden, hidden), nn.Conv2d(hidden, num_classes, 1))
        self.reg_branch = nn.Sequential(conv(hidden, hidden), conv(hidden, hidden))
        self.box = nn.Conv2d(hidden, 4, 1)
        self.obj = nn.Conv2d(hidden, 1, 1)
        nn.init.constant_(self.cls_branch[-1].bias, -4.6)   # prior p ≈ 0.01: most points are background
        nn.init.constant_(self.obj.bias, -4.6)

    def forward(self, x):
        x = self.stem(x)
        reg = self.reg_branch(x)
        return torch.cat([self.box(reg), self.obj(reg), self.cls_branch(x)], dim=1)


class AnchorFreeDetector(nn.Module):
    """Backbone (C2f stages) → PAN neck (top-down then bottom-up) over strides 8 and 16 → one decoupled head
    per level. ``forward`` returns ``N×P×(4+1+C)``: for every grid point P of both levels, raw side
    distances (l, t, r, b), objectness logit and class logits. ``in_channels`` > 1 stacks several aligned
    images as channels (Chapter 7's early fusion of visible and infrared)."""

    strides = (8, 16)

    def __init__(self, num_classes: int = 10, width: int = 16, in_channels: int = 1):
        super().__init__()
        w = width
        self.num_classes = num_classes
        self.stem = nn.Sequential(conv(in_channels, w, 3, 2), conv(w, 2 * w, 3, 2), C2f(2 * w, 2 * w))  # stride 4
        self.stage8 = nn.Sequential(conv(2 * w, 4 * w, 3, 2), C2f(4 * w, 4 * w, 2))            # stride 8
        self.stage16 = nn.Sequential(conv(4 * w, 8 * w, 3, 2), C2f(8 * w, 8 * w, 2))           # stride 16
        self.top_down = C2f(12 * w, 4 * w)         # upsampled stride-16 features enrich stride 8
        self.down = conv(4 * w, 4 * w, 3, 2)
        self.bottom_up = C2f(12 * w, 8 * w)        # and stride-8 detail flows back up (PAN)
        self.heads = nn.ModuleList([DecoupledHead(4 * w, num_classes), DecoupledHead(8 * w, num_classes)])

    def forward(self, x):
        c8 = self.stage8(self.stem(x))
        c16 = self.stage16(c8)
        p8 = self.top_down(torch.cat([F.interpolate(c16, scale_factor=2.0, mode="nearest"), c8], 1))
        p16 = self.bottom_up(torch.cat([self.down(p8), c16], 1))
        return torch.cat([head(p).flatten(2) for head, p in zip(self.heads, (p8, p16))], 2).transpose(1, 2)

    def points(self, image_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Centres of every grid point of every level (``P×2``, pixels) and their strides (``P``)."""
        centres, strides = [], []
        for stride in self.strides:
            cells = torch.arange(image_size // stride, device=device, dtype=torch.float32) * stride + stride / 2
            ys, xs = torch.meshgrid(cells, cells, indexing="ij")
            centres.append(torch.stack([xs.flatten(), ys.flatten()], -1))
            strides.append(torch.full((len(cells) ** 2,), float(stride), device=device))
        return torch.cat(centres), torch.cat(strides)

    def decode(self, out: torch.Tensor, image_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw output → (boxes ``N×P×4`` xyxy, objectness ``N×P``, class probabilities ``N×P×C``).

        A side's distance is softplus(raw) × stride: positive, and in units of the level's cell.
        """
        centres, strides = self.points(image_size, out.device)
        sides = F.softplus(out[..., :4]) * strides[:, None]
        boxes = torch.cat([centres - sides[..., :2], centres + sides[..., 2:]], -1)
        return boxes, out[..., 4].sigmoid(), out[..., 5:].sigmoid()

    @torch.no_grad()
    def detect(self, images, confidence: float = 0.25, iou_threshold: float = 0.5) -> list[dict]:
        """uint8 scenes → per-image ``{"boxes", "scores", "labels"}``: decode, score = objectness × class
        probability (best class per point), confidence filter, per-class NMS."""
        self.eval()
        out = self(scene_input(images.to(next(self.parameters()).device))).float()
        boxes, objectness, probs = self.decode(out, images.shape[-1])
        best_prob, labels = probs.max(-1)
        scores = objectness * best_prob
        return [postprocess(boxes[i], scores[i], labels[i], confidence, iou_threshold) for i in range(len(out))]


def centre_candidates(points, strides, boxes, radius: float = 2.5):
    """YOLOX's centre prior: ``points P×2, strides P, boxes N×M×4 → N×P×M bool``, true where a point lies inside
    the box and within ``radius`` strides of its centre."""
    px, py = points[:, 0][None, :, None], points[:, 1][None, :, None]         # 1×P×1
    inside = ((px > boxes[:, None, :, 0]) & (px < boxes[:, None, :, 2]) &
              (py > boxes[:, None, :, 1]) & (py < boxes[:, None, :, 3]))       # N×P×M
    cx = (boxes[..., 0] + boxes[..., 2])[:, None] / 2
    cy = (boxes[..., 1] + boxes[..., 3])[:, None] / 2
    reach = radius * strides[None, :, None]
    return inside & ((px - cx).abs() < reach) & ((py - cy).abs() < reach)


def centre_assignment(points, strides, targets, radius: float = 2.5):
    """Which object each grid point learns: ``(assigned N×P long, −1 = background)``.

    A point is a candidate for an object when `centre_candidates` says so; a point claimed by several objects
    takes the smallest.
    """
    boxes, valid = targets[..., 1:], targets[..., 0] >= 0                       # N×M×4, N×M
    candidate = centre_candidates(points, strides, boxes, radius) & valid[:, None, :]
    area = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]))[:, None].expand_as(candidate)
    area = torch.where(candidate, area, torch.inf)
    smallest, assigned = area.min(-1)
    return torch.where(torch.isfinite(smallest), assigned, -1)


def anchor_free_loss(model: AnchorFreeDetector, batch, box_kind: str = "ciou", box_weight: float = 5.0,
                     label_smoothing: float = 0.0):
    """CIoU (or GIoU) loss on the boxes of positive points, BCE on every point's objectness and on the
    classes of positive points; each averaged over the positives, as YOLOX does. ``label_smoothing`` ε turns the
    class targets 1 and 0 into 1 − ε/2 and ε/2 (YOLOv4/v5's smoothed BCE).

    Positives are selected by weighting with a 0/1 mask, not by indexing with it: the number of positives is then
    never needed on the host, so a training step on a GPU does not wait for it."""
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    images, targets = batch
    out = model(images).float()
    boxes, _, _ = model.decode(out, images.shape[-1])
    points, strides = model.points(images.shape[-1], out.device)
    assigned = centre_assignment(points, strides, targets)
    positive = (assigned >= 0).float()                                                     # N×P
    matched = torch.gather(targets, 1, assigned.clamp(min=0)[..., None].expand(-1, -1, 5))  # N×P×5
    count = positive.sum().clamp(min=1)
    # Background points get a fixed valid target so their (zero-weighted) IoU stays finite.
    target_boxes = torch.where(positive[..., None] > 0, matched[..., 1:], boxes.new_tensor([0.0, 0.0, 1.0, 1.0]))
    # check=False: decoded boxes are ordered by construction, and a check would make each GPU step wait
    box_iou_value = paired_box_iou(boxes.flatten(0, 1), target_boxes.flatten(0, 1), box_kind,
                                   check=False).view_as(positive)
    box_loss = ((1 - box_iou_value) * positive).sum() / count
    obj_loss = F.binary_cross_entropy_with_logits(out[..., 4], positive, reduction="sum") / count
    class_target = F.one_hot(matched[..., 0].long().clamp(min=0), model.num_classes).float()
    class_target = class_target * (1 - label_smoothing) + label_smoothing / 2
    class_bce = F.binary_cross_entropy_with_logits(out[..., 5:], class_target, reduction="none").sum(-1)
    cls_loss = (class_bce * positive).sum() / count
    return box_weight * box_loss + obj_loss + cls_loss


def random_flip(images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
    """Mirror a random half of a batch left–right, boxes included (x ↦ W − x): the detectors' augmentation.

    ``generator`` lives on the images' device (``torch.Generator(device=images.device)``): no host copy per step."""
    if generator.device.type != images.device.type:
        raise ValueError(f"the generator is on {generator.device.type} but the images are on "
                         f"{images.device.type}: pass torch.Generator(device=images.device)")
    flip = torch.rand(len(images), generator=generator, device=images.device) < 0.5
    width = images.shape[-1]
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    mirrored = targets.clone()
    mirrored[..., 1], mirrored[..., 3] = width - targets[..., 3], width - targets[..., 1]
    return images, torch.where(flip[:, None, None] & (targets[..., :1] >= 0), mirrored, targets)


def detect_all(model: nn.Module, images: torch.Tensor, confidence: float = 0.25, iou_threshold: float = 0.5,
               batch_size: int = 256) -> list[dict]:
    """``model.detect`` over many uint8 scenes in batches → one ``{"boxes", "scores", "labels"}`` per scene (CPU)."""
    results = []
    for chunk in images.split(batch_size):
        results += [{k: v.cpu() for k, v in d.items()} for d in model.detect(chunk, confidence, iou_threshold)]
    return results
