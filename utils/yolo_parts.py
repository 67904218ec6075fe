"""The parts the YOLO family added from v2 to v8, built small and checked: Chapter 4 (04_detection), sections 11–12.

- `Darknet19` (YOLOv2's backbone): 19 convolutions (3×3 and 1×1 in turn, each with BatchNorm and LeakyReLU 0.1)
  and 5 max-pools, a 1×1 convolution to the classes and global average pooling; input / 32 wide features.
- `YOLOv3Head`: one 1×1 convolution per scale to 3 × (5 + C) channels; `decode_yolov3` turns it into boxes
  with sigmoid centre offsets, anchor-scaled sizes and *independent* sigmoid class scores (multi-label).
- `SPP` (YOLOv4) and `SPPF` (YOLOv5): max-pools of 5, 9 and 13 in parallel vs one 5-pool applied three times
  in a row — the same output (a 5-pool of a 5-pool is a 9-pool), for fewer comparisons. `SimSPPF` (YOLOv6):
  SPPF with ReLU instead of SiLU.
- `Focus` (YOLOv5's first stem): slice every second pixel into 4 channels (space-to-depth), then a convolution;
  `focus_as_conv` writes the same layer as the single 6×6 stride-2 convolution that replaced it.
- `RepVGGBlock` (YOLOv6): 3×3 + 1×1 + identity branches, each with its BatchNorm, while training;
  `reparameterize()` folds them into one 3×3 convolution for inference. `RepConv` (YOLOv7): the same with SiLU,
  and without the identity branch where a residual already adds the input.
- `CSPBlock`: YOLOv5's CSP block, with residual bottlenecks (CSP1_X, backbone) or plain ones (CSP2_X, neck).
- `ELAN` and `EELAN` (YOLOv7): stacked 3×3 convolutions whose intermediate outputs are all concatenated and fused
  by a 1×1; E-ELAN runs several ELANs side by side on the same input and adds them.
- `simota_assign` (YOLOX, YOLOv6): each object takes its k lowest-cost anchors, k chosen from its IoUs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

from .detection import box_iou
from .models.yolo import Bottleneck, conv


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


# Darknet-19 as the YOLOv2 paper's Table 6 lists it: output channels of each 3×3 (odd kernel) or 1×1 convolution,
# "M" a 2×2 stride-2 max-pool. The 1×1 layers halve the channels between two 3×3 ones (the network-in-network
# squeeze); the classifier's 1×1 to the classes is the 19th convolution.
DARKNET19_LAYERS = (32, "M", 64, "M", 128, 64, 128, "M", 256, 128, 256, "M",
                    512, 256, 512, 256, 512, "M", 1024, 512, 1024, 512, 1024)


def darknet_conv(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    """Darknet's unit: convolution (no bias: BatchNorm's β replaces it) → BatchNorm → LeakyReLU(0.1)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.LeakyReLU(0.1, inplace=True))


class Darknet19(nn.Module):
    """YOLOv2's classifier backbone (Redmon and Farhadi, 2016): ``N×in_channels×H×W → N×num_classes`` logits.

    ``features``: 18 Darknet units whose kernels alternate 3×3 (channels doubled after every pool) and 1×1
    (channels halved), with 5 max-pools — so the map is H/32 × W/32: 7×7 at 224, 13×13 at 416. ``classifier``: the
    19th convolution, 1×1 to ``num_classes`` (with a bias, no BatchNorm, as darknet19.cfg), then global average
    pooling — no fully connected layer, so the same weights classify at any input size that is a multiple of 32,
    which is what lets YOLOv2 fine-tune it at 448 and train the detector at several sizes."""

    stride = 32

    def __init__(self, num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        _check_positive(num_classes=num_classes, in_channels=in_channels)
        layers, channels = [], in_channels
        for entry in DARKNET19_LAYERS:
            if entry == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            kernel = 1 if layers and channels > entry else 3       # a 1×1 squeezes; every widening layer is 3×3
            layers.append(darknet_conv(channels, entry, kernel))
            channels = entry
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Conv2d(channels, num_classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x):
        if x.shape[-1] % self.stride or x.shape[-2] % self.stride:
            raise ValueError(f"Darknet-19 halves the map 5 times: H and W must be multiples of 32, got "
                             f"{tuple(x.shape[-2:])}")
        return self.classifier(self.features(x))


class YOLOv3Head(nn.Module):
    """One 1×1 convolution per scale: ``[N×C_s×H_s×W_s] → [N×A×H_s×W_s×(5 + classes)]`` (raw logits).

    With 80 COCO classes and A = 3 anchors a scale this is the famous 3 × 85 = 255 channels.
    """

    def __init__(self, in_channels: tuple[int, ...], num_classes: int, anchors_per_scale: int = 3):
        super().__init__()
        _check_positive(num_classes=num_classes, anchors_per_scale=anchors_per_scale)
        if not in_channels:
            raise ValueError("in_channels needs one entry per scale, e.g. (256, 512, 1024)")
        self.num_classes, self.anchors_per_scale = num_classes, anchors_per_scale
        self.outputs = nn.ModuleList(nn.Conv2d(c, anchors_per_scale * (5 + num_classes), 1) for c in in_channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != len(self.outputs):
            raise ValueError(f"expected {len(self.outputs)} feature maps (one per scale), got {len(features)}")
        maps = []
        for layer, x in zip(self.outputs, features):
            n, _, h, w = x.shape
            maps.append(layer(x).view(n, self.anchors_per_scale, 5 + self.num_classes, h, w).permute(0, 1, 3, 4, 2))
        return maps


def decode_yolov3(raw: torch.Tensor, anchors: torch.Tensor, stride: int):
    """One scale's raw ``N×A×H×W×(5+C)`` → ``(boxes N×A×H×W×4 xyxy pixels, objectness N×A×H×W, classes …×C)``.

    Centre = (cell + σ(t_xy)) · stride, size = anchor · exp(t_wh) (anchors ``A×2`` in pixels); objectness and
    every class through their own sigmoid, so one box can be "person" and "woman" at once.
    """
    if raw.dim() != 5 or raw.shape[1] != len(anchors) or anchors.shape[-1] != 2:
        raise ValueError(f"raw must be N×A×H×W×(5+C) with A = len(anchors) = {len(anchors)}; got {tuple(raw.shape)}")
    h, w = raw.shape[2:4]
    ys, xs = torch.meshgrid(torch.arange(h, device=raw.device), torch.arange(w, device=raw.device), indexing="ij")
    cells = torch.stack((xs, ys), -1).to(raw.dtype)                                   # H×W×2
    centre = (cells + raw[..., :2].sigmoid()) * stride
    size = anchors.to(raw)[None, :, None, None, :] * raw[..., 2:4].exp()
    boxes = torch.cat((centre - size / 2, centre + size / 2), -1)
    return boxes, raw[..., 4].sigmoid(), raw[..., 5:].sigmoid()


class SPP(nn.Module):
    """YOLOv4's spatial pyramid pooling: 1×1 conv, then x and its 5/9/13 max-pools (stride 1) concatenated, 1×1 conv."""

    def __init__(self, c_in: int, c_out: int, pools: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        _check_positive(c_in=c_in, c_out=c_out)
        hidden = c_in // 2
        self.reduce, self.fuse = conv(c_in, hidden, 1), conv(hidden * (len(pools) + 1), c_out, 1)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in pools)

    def forward(self, x):
        x = self.reduce(x)
        return self.fuse(torch.cat([x] + [pool(x) for pool in self.pools], 1))


class SPPF(nn.Module):
    """YOLOv5's fast SPP: one 5×5 max-pool applied three times in a row; equal to `SPP` with pools 5, 9, 13."""

    def __init__(self, c_in: int, c_out: int, pool: int = 5):
        super().__init__()
        _check_positive(c_in=c_in, c_out=c_out, pool=pool)
        hidden = c_in // 2
        self.reduce, self.fuse = conv(c_in, hidden, 1), conv(hidden * 4, c_out, 1)
        self.pool = nn.MaxPool2d(pool, stride=1, padding=pool // 2)

    def forward(self, x):
        outputs = [self.reduce(x)]
        for _ in range(3):
            outputs.append(self.pool(outputs[-1]))
        return self.fuse(torch.cat(outputs, 1))


class SimSPPF(SPPF):
    """YOLOv6's SimSPPF: `SPPF` whose two Conv-BN units end in ReLU instead of SiLU (YOLOv6's SimConv).

    Same layers, same parameters, same state_dict keys — an SPPF's weights load into it unchanged; only the
    activation differs (ReLU needs no sigmoid: cheaper, above all on edge hardware)."""

    def __init__(self, c_in: int, c_out: int, pool: int = 5):
        super().__init__(c_in, c_out, pool)
        for unit in (self.reduce, self.fuse):
            unit[2] = nn.ReLU(inplace=True)


def focus_slices(x: torch.Tensor) -> torch.Tensor:
    """``N×C×H×W → N×4C×H/2×W/2``: the four pixels of every 2×2 block, as YOLOv5's Focus orders them."""
    if x.dim() != 4 or x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"focus_slices needs N×C×H×W with even H and W, got {tuple(x.shape)}")
    return torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1)


class Focus(nn.Module):
    """Space-to-depth then a k×k convolution: halves the resolution without losing a pixel."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        super().__init__()
        _check_positive(c_in=c_in, c_out=c_out, kernel=kernel)
        self.conv = nn.Conv2d(4 * c_in, c_out, kernel, padding=kernel // 2, bias=False)

    def forward(self, x):
        return self.conv(focus_slices(x))


def focus_as_conv(focus: Focus) -> nn.Conv2d:
    """The 6×6, stride-2, padding-2 convolution equal to a 3×3 `Focus` (YOLOv5 v6.0 swapped one for the other).

    Output pixel (y, x) of the Focus conv reads input rows 2(y + dy) + i for dy ∈ {−1, 0, 1} and sub-row i ∈ {0, 1}:
    that is row 2y − 2 + r with r = 2(dy + 1) + i ∈ 0…5 — a 6-row window moving by 2. Same for columns.
    """
    if focus.conv.kernel_size != (3, 3):
        raise ValueError("focus_as_conv rewrites a 3×3 Focus; build Focus(c_in, c_out, kernel=3)")
    weight = focus.conv.weight                                             # O × 4C × 3 × 3
    c_out, c_in = weight.shape[0], weight.shape[1] // 4
    big = weight.new_zeros(c_out, c_in, 6, 6)
    # focus_slices' order of the 2×2 offsets (row i, column j): (0,0), (1,0), (0,1), (1,1)
    for block, (i, j) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
        big[:, :, i::2, j::2] = weight[:, block * c_in:(block + 1) * c_in]
    layer = nn.Conv2d(c_in, c_out, 6, stride=2, padding=2, bias=False).to(weight.device)
    with torch.no_grad():
        layer.weight.copy_(big)
    return layer


def fuse_conv_bn(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """A bias-free convolution followed by BatchNorm (eval mode) → one convolution's (weight, bias)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return kernel * scale[:, None, None, None], bn.bias - bn.running_mean * scale


class RepVGGBlock(nn.Module):
    """Training: ReLU(BN(3×3 conv x) + BN(1×1 conv x) + BN(x)). Inference, after `reparameterize()`: ReLU(3×3 conv x).

    ``identity=False`` drops the BN(x) branch; ``activation`` replaces the ReLU (see `RepConv`)."""

    def __init__(self, channels: int, identity: bool = True, activation: nn.Module | None = None):
        super().__init__()
        _check_positive(channels=channels)
        self.branch3 = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.branch1 = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.identity = nn.BatchNorm2d(channels) if identity else None
        self.act = activation if activation is not None else nn.ReLU()
        self.fused: nn.Conv2d | None = None

    def forward(self, x):
        if self.fused is not None:
            return self.act(self.fused(x))
        out = self.branch3(x) + self.branch1(x)
        return self.act(out if self.identity is None else out + self.identity(x))

    @torch.no_grad()
    def reparameterize(self) -> nn.Conv2d:
        """Fold the three branches and their BatchNorms into one 3×3 convolution with bias (use in eval mode)."""
        if self.training:
            raise RuntimeError("reparameterize() folds BatchNorm's running statistics: call model.eval() first")
        channels = self.branch3[0].out_channels
        w3, b3 = fuse_conv_bn(self.branch3[0].weight, self.branch3[1])
        w1, b1 = fuse_conv_bn(F.pad(self.branch1[0].weight, (1, 1, 1, 1)), self.branch1[1])  # 1×1 at the 3×3 centre
        weight, bias = w3 + w1, b3 + b1
        if self.identity is not None:
            eye = torch.zeros_like(self.branch3[0].weight)
            eye[torch.arange(channels), torch.arange(channels), 1, 1] = 1                     # identity as a 3×3 conv
            wi, bi = fuse_conv_bn(eye, self.identity)
            weight, bias = weight + wi, bias + bi
        self.fused = nn.Conv2d(channels, channels, 3, padding=1).to(weight.device)
        self.fused.weight.copy_(weight)
        self.fused.bias.copy_(bias)
        return self.fused


class RepConv(RepVGGBlock):
    """YOLOv7's RepConv: `RepVGGBlock` with SiLU. ``identity=False`` is YOLOv7's planned re-parameterisation
    (RepConvN): where a residual or a concatenation already carries the input past the layer, the identity branch
    would pass it a second time, so it is dropped."""

    def __init__(self, channels: int, identity: bool = True):
        super().__init__(channels, identity=identity, activation=nn.SiLU())


def simota_assign(cost: torch.Tensor, ious: torch.Tensor, candidate_k: int = 10) -> torch.Tensor:
    """YOLOX's dynamic-k matching: ``cost, ious (G×A) → matching (G×A bool)``.

    Object g takes its k_g lowest-cost anchors, k_g = max(1, ⌊sum of its candidate_k largest IoUs⌋): a large,
    well-covered object gets many positives, a small one few. An anchor claimed by several objects stays with
    the one for which its cost is lowest. Anchors outside an object's candidate region should carry a large
    cost (YOLOX adds 1e5), so they are chosen only when nothing else is left.
    """
    if cost.shape != ious.shape or cost.dim() != 2:
        raise ValueError(f"cost and ious must both be G×A, got {tuple(cost.shape)} and {tuple(ious.shape)}")
    _check_positive(candidate_k=candidate_k)
    if cost.shape[1] == 0:
        return torch.zeros_like(cost, dtype=torch.bool)
    top_ious = ious.topk(min(candidate_k, ious.shape[1]), dim=1).values
    dynamic_k = top_ious.sum(1).floor().clamp(min=1).long()                      # G
    order = cost.argsort(dim=1)                                                   # G×A, cheapest first
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(cost.shape[1], device=cost.device).expand_as(order))
    matching = rank < dynamic_k[:, None]
    shared = matching.sum(0) > 1                                                  # anchors claimed more than once
    cheapest = cost.masked_fill(~matching, torch.inf).argmin(0)                   # per anchor: its lowest-cost object
    keep = F.one_hot(cheapest, cost.shape[0]).T.bool()
    return torch.where(shared[None], matching & keep, matching)


def simota_cost(pred_boxes: torch.Tensor, pred_scores: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor,
                candidate: torch.Tensor, iou_weight: float = 3.0):
    """YOLOX's matching cost for one image: ``(cost G×A, ious G×A)``.

    pred_boxes A×4 (xyxy), pred_scores A×C (probabilities: objectness × class), gt_boxes G×4, gt_labels G,
    candidate G×A bool (the centre prior). cost = BCE of the scores against the object's class + iou_weight ·
    (−log IoU) + 10⁵ outside the candidate region.
    """
    if pred_boxes.shape[0] != pred_scores.shape[0] or candidate.shape != (len(gt_boxes), len(pred_boxes)):
        raise ValueError(f"need pred_boxes A×4, pred_scores A×C, candidate G×A; got {tuple(pred_boxes.shape)}, "
                         f"{tuple(pred_scores.shape)}, {tuple(candidate.shape)} for G = {len(gt_boxes)}")
    ious = box_iou(gt_boxes, pred_boxes)
    target = F.one_hot(gt_labels.long(), pred_scores.shape[1]).to(pred_scores)[:, None].expand(-1, len(pred_boxes), -1)
    scores = pred_scores[None].expand_as(target).clamp(1e-6, 1 - 1e-6)
    class_cost = F.binary_cross_entropy(scores, target, reduction="none").sum(-1)
    cost = class_cost + iou_weight * -torch.log(ious + 1e-8) + 1e5 * (~candidate).to(ious)
    return cost, ious


def mosaic(images: torch.Tensor, boxes: list[torch.Tensor], labels: list[torch.Tensor], count: int,
           generator: torch.Generator, min_visible: float = 0.25, min_size: float = 3.0):
    """YOLOv4's mosaic: ``count`` new S×S scenes, each cut from four random scenes tiled 2×2.

    images N×C×S×S; boxes and labels one K_i×4 (xyxy pixels) / K_i tensor per scene. The four scenes are tiled on a
    2S×2S canvas and an S×S window is cropped at a random offset in [S/4, 3S/4] — the same as splitting the output
    at a random centre, so every scene shows a part of each of the four. Boxes travel as `tv_tensors.BoundingBoxes`
    through `transforms.v2`: clamped to the window, and dropped by `SanitizeBoundingBoxes` when smaller than
    ``min_size`` pixels or when less than ``min_visible`` of their area is left (a sliver of a shoe is not a shoe).
    Returns ``(images count×C×S×S, boxes list, labels list)``.
    """
    if images.dim() != 4 or images.shape[-1] != images.shape[-2] or len(boxes) != len(images) != len(labels):
        raise ValueError("mosaic needs square images N×C×S×S and one boxes and one labels tensor per image")
    _check_positive(count=count)
    size = images.shape[-1]
    clamp, sanitize = v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=min_size)
    out_images, out_boxes, out_labels = [], [], []
    for _ in range(count):
        picks = torch.randint(len(images), (4,), generator=generator).tolist()
        rows = [torch.cat([images[picks[2 * r]], images[picks[2 * r + 1]]], -1) for r in range(2)]
        canvas = tv_tensors.Image(torch.cat(rows, -2))
        shifts = torch.tensor([[0, 0], [size, 0], [0, size], [size, size]], dtype=torch.float32)   # (x, y) per tile
        tiles = [boxes[i].float() + shifts[t].repeat(2) for t, i in enumerate(picks)]
        canvas_boxes = tv_tensors.BoundingBoxes(torch.cat(tiles), format="XYXY", canvas_size=(2 * size, 2 * size))
        tile_labels = torch.cat([labels[i] for i in picks])
        top, left = (torch.randint(size // 4, 3 * size // 4 + 1, (2,), generator=generator)).tolist()
        window = v2.functional.crop(canvas, top, left, size, size)
        cropped = clamp(v2.functional.crop(canvas_boxes, top, left, size, size))
        area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])          # noqa: E731
        visible = area(cropped) >= min_visible * area(canvas_boxes)
        kept = sanitize({"image": window, "boxes": tv_tensors.wrap(cropped[visible], like=cropped),
                         "labels": tile_labels[visible]})
        out_images.append(kept["image"].as_subclass(torch.Tensor))
        out_boxes.append(kept["boxes"].as_subclass(torch.Tensor))
        out_labels.append(kept["labels"])
    return torch.stack(out_images), out_boxes, out_labels


class CSPBlock(nn.Module):
    """YOLOv5's C3, a Cross Stage Partial block: half the channels go through ``depth`` bottlenecks, the other half
    skips them, and a 1×1 convolution fuses the two — the bottlenecks run at half width (a quarter of the FLOPs)
    and the gradient reaches the input by two paths.

    ``shortcut=True`` (YOLOv5's backbone, drawn as CSP1_X): X residual bottlenecks, x + conv(conv(x)).
    ``shortcut=False`` (its neck, CSP2_X): the same X pairs of convolutions without the residual — 2X plain
    Conv-BN-SiLU units in a row. Same parameters either way; only the additions differ."""

    def __init__(self, c_in: int, c_out: int, depth: int = 1, shortcut: bool = True):
        super().__init__()
        _check_positive(c_in=c_in, c_out=c_out, depth=depth)
        if c_out < 2:
            raise ValueError(f"c_out must be at least 2 (the block splits it in two halves), got {c_out}")
        hidden = c_out // 2
        self.main, self.skip = conv(c_in, hidden, 1), conv(c_in, hidden, 1)

        def pair():
            return Bottleneck(hidden) if shortcut else nn.Sequential(conv(hidden, hidden), conv(hidden, hidden))

        self.blocks = nn.Sequential(*(pair() for _ in range(depth)))
        self.fuse = conv(2 * hidden, c_out, 1)

    def forward(self, x):
        return self.fuse(torch.cat((self.blocks(self.main(x)), self.skip(x)), 1))


class ELAN(nn.Module):
    """YOLOv7's ELAN block (efficient layer aggregation, as in its backbone): ``N×c_in×H×W → N×c_out×H×W``.

    Two 1×1 convolutions of the input (a, b); b then goes through ``stages`` stages of ``convs_per_stage`` 3×3
    convolutions, and the output of every stage is kept. All of them — [last stage, …, first stage, b, a], as
    YOLOv7's Concat [-1, -3, -5, -6] orders them — are concatenated ((stages + 2) · hidden channels) and fused by a
    1×1 convolution. Every kept map is a shortcut from the fuse back into the stack: short gradient paths of
    every length, as in YOLOv7's backbone (hidden = c_out / 4, stages = 2, convs_per_stage = 2)."""

    def __init__(self, c_in: int, c_out: int, hidden: int | None = None, stages: int = 2, convs_per_stage: int = 2):
        super().__init__()
        _check_positive(c_in=c_in, c_out=c_out, stages=stages, convs_per_stage=convs_per_stage)
        hidden = hidden if hidden is not None else c_out // 4
        if not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden must be a positive integer (by default c_out // 4), got {hidden!r}: "
                             "use c_out ≥ 4 or pass hidden")
        self.a, self.b = conv(c_in, hidden, 1), conv(c_in, hidden, 1)
        self.stages = nn.ModuleList(nn.Sequential(*(conv(hidden, hidden, 3) for _ in range(convs_per_stage)))
                                    for _ in range(stages))
        self.fuse = conv((stages + 2) * hidden, c_out, 1)

    def forward(self, x):
        kept = [self.a(x), self.b(x)]
        for stage in self.stages:
            kept.append(stage(kept[-1]))
        return self.fuse(torch.cat(kept[::-1], 1))


class EELAN(nn.Module):
    """YOLOv7's Extended ELAN: ``groups`` ELANs side by side on the same input, their outputs added.

    The paper draws it as expand (every convolution grouped, ``groups`` times the channels), shuffle (the group
    outputs interleaved before the concatenation) and merge cardinality (the groups' fused maps added): with the
    weights split by group that is exactly ``groups`` independent ELANs summed, which is how YOLOv7-E6E's
    configuration writes it (two ELAN stacks joined by a Shortcut layer)."""

    def __init__(self, c_in: int, c_out: int, groups: int = 2, **elan_options):
        super().__init__()
        _check_positive(groups=groups)
        self.branches = nn.ModuleList(ELAN(c_in, c_out, **elan_options) for _ in range(groups))

    def forward(self, x):
        return torch.stack([branch(x) for branch in self.branches]).sum(0)


def cross_minibatch_statistics(chunks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """CmBN's idea (YOLOv4): accumulate per-channel Σx and Σx² over the mini-batches of one iteration, so the
    statistics are those of the whole batch although each mini-batch is processed alone.

    chunks: tensors ``n_i×C×H×W`` → (mean C, biased variance C), equal to BatchNorm's over the concatenation."""
    if not chunks or any(c.dim() != 4 or c.shape[1] != chunks[0].shape[1] for c in chunks):
        raise ValueError("chunks must be a non-empty list of N×C×H×W tensors with the same C")
    count = sum(c.numel() // c.shape[1] for c in chunks)
    total = sum(c.sum((0, 2, 3)) for c in chunks)
    squares = sum(c.pow(2).sum((0, 2, 3)) for c in chunks)
    mean = total / count
    return mean, squares / count - mean.pow(2)


def detr_matching_cost(pred_probs: torch.Tensor, pred_boxes: torch.Tensor, gt_labels: torch.Tensor,
                       gt_boxes: torch.Tensor, class_weight: float = 1.0, l1_weight: float = 5.0,
                       giou_weight: float = 2.0) -> torch.Tensor:
    """DETR's matching cost ``Q×G``: −p(class of the object) + 5·L1 + 2·(−GIoU) between every query and object.

    pred_probs Q×C, pred_boxes Q×4 and gt_boxes G×4 (xyxy, normalised to the image size for the L1 term), gt_labels
    G. `scipy.optimize.linear_sum_assignment` on it gives the one-to-one matching the set loss is computed on.
    """
    if pred_probs.shape[0] != pred_boxes.shape[0] or gt_labels.shape[0] != gt_boxes.shape[0]:
        raise ValueError("need pred_probs Q×C with pred_boxes Q×4, and gt_labels G with gt_boxes G×4")
    class_cost = -pred_probs[:, gt_labels.long()]                                    # Q×G
    l1_cost = torch.cdist(pred_boxes, gt_boxes, p=1)
    giou_cost = -box_iou(pred_boxes, gt_boxes, kind="giou")
    return class_weight * class_cost + l1_weight * l1_cost + giou_weight * giou_cost
