"""Stick-figure scenes for multi-person pose estimation: the skeleton (`KEYPOINTS`, `LIMBS`), random poses, their
drawing with COCO visibility flags, and cached scene sets.

Introduced in Chapter 8 (08_pose); the method that reads these scenes (targets, decoding, OKS and keypoint AP) is
`utils.pose`. No pose data set can be downloaded here, so the course draws its own; because each scene is drawn,
its keypoints are exact.

Interface::

    scenes = pose_scenes(split, count, size=64, seed=0, min_scale=20, max_scale=44, max_people=6,
                         max_overlap=0.5)
    scenes.images      # uint8 N×1×S×S
    scenes.keypoints   # list of N float32 tensors P×J×3 (x, y, v)
    scenes.boxes       # list of N float32 tensors P×4, xyxy: each person's drawn pixels, clipped to the canvas
    scenes.padded()    # N×max_people×J×3, v = 0 for padding: device-resident training batches

A person is a 14-keypoint stick figure (`KEYPOINTS`, `LIMBS`: a tree rooted at the neck) with a random lean, arm
and leg angles and height in [min_scale, max_scale] pixels; its left limbs are drawn brighter than its right ones
(a figure facing us has its left side on the image's right), so left and right can be told apart. 1 to
``max_people`` people per scene, placed so that their keypoint boxes overlap by IoU ≤ ``max_overlap`` and at least
`MIN_INSIDE` keypoints lie on the canvas (the rest are truncated); later people are drawn over earlier ones.
Keypoints are (x, y, v), pixel (x, y) at integer (x, y), v COCO's visibility flag: 0 not labelled (here: outside the
canvas), 1 labelled but hidden behind a later person, 2 visible. Cached under ``data/pose/`` by
`utils.scenes.cached_scenes`.
"""

from __future__ import annotations

import math

import torch

from .detection import box_iou
from .scenes import cached_scenes, check_scene_arguments, noisy_background

KEYPOINTS = ("head", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
             "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle")
# (parent, child) pairs in breadth-first order from the neck: assembly grows each person outwards along them
LIMBS = ((1, 0), (1, 2), (1, 5), (1, 8), (1, 11), (2, 3), (5, 6), (8, 9), (11, 12), (3, 4), (6, 7), (9, 10),
         (12, 13))
LIMB_NAMES = tuple(f"{KEYPOINTS[a]}→{KEYPOINTS[b]}" for a, b in LIMBS)

FORMAT_VERSION = 1
MIN_INSIDE = 7            # a placed person keeps at least this many keypoints on the canvas
PLACEMENT_TRIES = 20
# brightness of each limb relative to the person's: left side bright, right side dim, torso in between
_LIMB_SHADE = {(1, 0): 0.8, (1, 2): 0.8, (1, 5): 0.8, (1, 8): 0.8, (1, 11): 0.8}
_LIMB_SHADE.update({limb: 0.55 if KEYPOINTS[limb[1]].startswith("right") else 1.0 for limb in LIMBS[5:]})


def _direction(angle: float) -> torch.Tensor:
    """The unit vector at ``angle`` radians from straight down (0 = down, +π/2 = image right)."""
    return torch.tensor([math.sin(angle), math.cos(angle)])


def random_pose(height: float, generator: torch.Generator) -> torch.Tensor:
    """One stick figure of about ``height`` pixels: ``J×2`` keypoints relative to its neck at (0, 0)."""
    if height <= 0:
        raise ValueError(f"height must be positive, not {height}")

    def uniform(low, high):
        return low + (high - low) * float(torch.rand((), generator=generator))

    lean = uniform(-0.3, 0.3)
    down, across = _direction(lean), torch.tensor([math.cos(lean), -math.sin(lean)])   # across: to image right
    h = height
    points = torch.zeros(len(KEYPOINTS), 2)
    points[0] = -0.13 * h * _direction(lean + uniform(-0.3, 0.3))                        # head above the neck
    hips = 0.33 * h * down
    for side, shoulder, hip in ((-1, 2, 8), (1, 5, 11)):      # right side on the image's left, left on its right
        points[shoulder] = side * 0.11 * h * across
        points[hip] = hips + side * 0.08 * h * across
        upper = lean + side * uniform(-0.3, 2.7)                                          # arm: hanging to raised
        points[shoulder + 1] = points[shoulder] + 0.17 * h * _direction(upper)
        points[shoulder + 2] = points[shoulder + 1] + 0.15 * h * _direction(upper + uniform(-2.0, 2.0))
        thigh = lean + side * uniform(-0.2, 0.7)
        points[hip + 1] = points[hip] + 0.23 * h * _direction(thigh)
        points[hip + 2] = points[hip + 1] + 0.22 * h * _direction(thigh + uniform(-0.5, 0.5))
    return points


def _segment_distance(points: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """Distance of each of ``points`` (M×2) to each segment (L×2 starts, L×2 ends) → L×M."""
    direction = ends - starts
    length2 = (direction ** 2).sum(-1).clamp(min=1e-9)
    along = (((points[None] - starts[:, None]) * direction[:, None]).sum(-1) / length2[:, None]).clamp(0, 1)
    closest = starts[:, None] + along[..., None] * direction[:, None]
    return (points[None] - closest).norm(dim=-1)


def draw_people(poses: list[torch.Tensor], heights: list[float], size: int, generator: torch.Generator,
                shades: list[float] | None = None):
    """Render stick figures (each ``J×2`` absolute keypoints) over a random background, later ones on top.

    Returns ``(image uint8 size×size, keypoints P×J×3 with COCO visibility, boxes P×4 xyxy clipped)``:
    v = 0 outside the canvas, 1 hidden under a later person's pixels, 2 visible. A person's box is the tight box
    of its own drawn pixels on the canvas (x2, y2 exclusive).
    """
    if len(poses) != len(heights):
        raise ValueError(f"need one height per pose, got {len(poses)} poses and {len(heights)} heights")
    if any(not torch.is_tensor(p) or p.shape != (len(KEYPOINTS), 2) for p in poses):
        raise ValueError(f"each pose must be a {len(KEYPOINTS)}×2 tensor of (x, y) keypoints (see random_pose)")
    canvas = noisy_background(size, generator)
    owner = torch.zeros(size, size, dtype=torch.long)                      # 0 = background, k + 1 = person k
    boxes = torch.zeros(len(poses), 4)
    for k, (pose, height) in enumerate(zip(poses, heights)):
        shade = shades[k] if shades is not None else 150 + 105 * float(torch.rand((), generator=generator))
        thickness, radius = max(1.6, 0.06 * height), max(2.0, 0.07 * height)
        # only the pixels near the figure can be drawn: render that window of the canvas
        x0, y0 = (pose.min(0).values - radius - 1).floor().long().clamp(0, size).tolist()
        x1, y1 = (pose.max(0).values + radius + 2).ceil().long().clamp(0, size).tolist()
        if x1 <= x0 or y1 <= y0:
            continue
        ys, xs = torch.meshgrid(torch.arange(y0, y1, dtype=torch.float32), torch.arange(x0, x1, dtype=torch.float32),
                                indexing="ij")
        pixels = torch.stack([xs.flatten(), ys.flatten()], -1)
        starts = torch.stack([pose[a] for a, b in LIMBS])
        ends = torch.stack([pose[b] for a, b in LIMBS])
        cover = (thickness / 2 + 0.5 - _segment_distance(pixels, starts, ends)).clamp(0, 1)          # L×M
        head = (radius + 0.5 - (pixels - pose[0]).norm(dim=-1)).clamp(0, 1)
        values = torch.tensor([_LIMB_SHADE[limb] for limb in LIMBS] + [0.8]) * shade
        alpha, strongest = torch.cat([cover, head[None]]).max(0)
        alpha, value = alpha.view(y1 - y0, x1 - x0), values[strongest].view(y1 - y0, x1 - x0)
        window = canvas[y0:y1, x0:x1]
        window.copy_(window * (1 - alpha) + value * alpha)
        drawn = alpha > 0.5
        owner[y0:y1, x0:x1][drawn] = k + 1
        rows, cols = drawn.any(1).nonzero().flatten(), drawn.any(0).nonzero().flatten()
        if len(rows):
            boxes[k] = torch.tensor([x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1],
                                    dtype=torch.float32)
    canvas += 6 * torch.randn(size, size, generator=generator)                                     # sensor noise
    keypoints = torch.zeros(len(poses), len(KEYPOINTS), 3)
    for k, pose in enumerate(poses):
        keypoints[k, :, :2] = pose
        inside = ((pose > -0.5) & (pose < size - 0.5)).all(-1)
        col, row = pose.round().long().clamp(0, size - 1).unbind(-1)
        keypoints[k, :, 2] = torch.where(inside, torch.where(owner[row, col] == k + 1, 2.0, 1.0), 0.0)
    return canvas.clamp(0, 255).round().to(torch.uint8), keypoints, boxes


def _keypoint_box(pose: torch.Tensor) -> torch.Tensor:
    return torch.cat([pose.min(0).values, pose.max(0).values])


def _generate(split, count, size, seed, min_scale, max_scale, max_people, max_overlap) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)              # tensors of a few dozen numbers: a thread pool costs more than it saves
    try:
        return _generate_scenes(split, count, size, seed, min_scale, max_scale, max_people, max_overlap)
    finally:
        torch.set_num_threads(threads)


def _generate_scenes(split, count, size, seed, min_scale, max_scale, max_people, max_overlap) -> dict:
    generator = torch.Generator().manual_seed(seed * 2 + (split == "test") + 7919)
    images, keypoints, boxes = [], [], []
    for _ in range(count):
        poses, heights = [], []
        for _ in range(int(torch.randint(1, max_people + 1, (1,), generator=generator))):
            height = float(torch.randint(min_scale, max_scale + 1, (1,), generator=generator))
            pose = random_pose(height, generator)
            for _ in range(PLACEMENT_TRIES):
                centre = torch.rand(2, generator=generator) * size
                placed = pose - (pose.min(0).values + pose.max(0).values) / 2 + centre
                inside = ((placed > -0.5) & (placed < size - 0.5)).all(-1).sum()
                if inside < MIN_INSIDE:
                    continue
                if poses and box_iou(_keypoint_box(placed)[None], torch.stack([_keypoint_box(p) for p in poses])).max() \
                        > max_overlap:
                    continue
                poses.append(placed)
                heights.append(height)
                break
        image, scene_keypoints, scene_boxes = draw_people(poses, heights, size, generator)
        images.append(image)
        keypoints.append(scene_keypoints)
        boxes.append(scene_boxes)
    return {"images": torch.stack(images)[:, None], "keypoints": keypoints, "boxes": boxes}


class PoseScenes:
    """Generated stick-figure scenes (see the module docstring)."""

    def __init__(self, arrays: dict, max_people: int):
        self.images = arrays["images"]
        self.keypoints = arrays["keypoints"]
        self.boxes = arrays["boxes"]
        self.max_people = max_people

    def __len__(self) -> int:
        return len(self.images)

    def padded(self) -> torch.Tensor:
        """All keypoints as one ``N×max_people×J×3`` tensor, v = 0 for padding."""
        out = torch.zeros(len(self), self.max_people, len(KEYPOINTS), 3)
        for i, k in enumerate(self.keypoints):
            out[i, :len(k)] = k
        return out

    def ground_truth(self, indices=None) -> list[dict]:
        """Per scene ``{"keypoints": P×J×3, "boxes": P×4}``: the format of `utils.pose.keypoint_ap` and
        `utils.pose.coco_keypoint_ap`."""
        indices = range(len(self)) if indices is None else indices
        return [{"keypoints": self.keypoints[i], "boxes": self.boxes[i]} for i in indices]


def pose_scenes(split: str, count: int, size: int = 64, seed: int = 0, min_scale: int = 20, max_scale: int = 44,
                max_people: int = 6, max_overlap: float = 0.5) -> PoseScenes:
    """``count`` deterministic stick-figure scenes of ``split`` ("train" or "test"), cached under ``data/pose/``."""
    check_scene_arguments(split, count, size, min_scale, max_scale, max_people, max_overlap, smallest=12)
    arrays = cached_scenes("pose", FORMAT_VERSION, _generate, split=split, count=count, size=size, seed=seed,
                           min_scale=min_scale, max_scale=max_scale, max_objects=max_people, max_overlap=max_overlap)
    return PoseScenes(arrays, max_people)
