"""Fashion scenes: Fashion-MNIST items pasted onto noisy canvases, with exact detection and segmentation targets.

Introduced in Chapter 4 (04_detection) and reused by Chapter 5 (segmentation). No detection data set can be
downloaded here, so the course makes its own; because each scene is generated, its targets are exact.

Interface::

    scenes = fashion_scenes(split, count, size=128, seed=0, min_scale=16, max_scale=64,
                            max_objects=4, max_overlap=0.3, transforms=None)
    image, target = scenes[i]
    # image:  tv_tensors.Image, uint8, 1×size×size
    # target: {"boxes":    tv_tensors.BoundingBoxes K×4, XYXY, canvas_size=(size, size), float32,
    #          "labels":   int64 K, Fashion-MNIST classes 0–9 (names in `utils.data.CLASSES`),
    #          "masks":    tv_tensors.Mask K×size×size, bool, the visible pixels of each object,
    #          "semantic": tv_tensors.Mask size×size, int64, 0 = background, 1 + class for objects}
    images, semantic = scenes.tensors()   # uint8 N×1×S×S and int64 N×S×S, for device-resident training
    boxes, labels = scenes.boxes, scenes.labels   # lists of N tensors (K×4 float32, K int64)

How a scene is made (all randomness from one generator seeded by ``seed`` and ``split``):

1. a textured background: a smooth random field (bilinearly upsampled 6×6 noise) plus pixel noise, in
   roughly 0–70 of 255, so that "dark" is not the same as "background";
2. 1 to ``max_objects`` items drawn from the ``split``'s own images (test scenes use only test items),
   each resized to a random square side in ``[min_scale, max_scale]`` and placed at a random position;
   a placement is retried (up to 20 times, then the item is skipped) unless its box has IoU ≤
   ``max_overlap`` with every earlier box and every earlier object keeps at least half of its pixels;
3. an object's mask is its resized pixels above 30/255; later objects are drawn over earlier ones, so
   ``masks`` are the *visible* pixels (disjoint) and ``boxes`` their tight boxes (x2, y2 exclusive).

Scenes are cached in ``data/scenes/`` as a ``.pt`` file keyed by every argument (except ``transforms``),
written atomically and verified on load (`utils.checkpoints`), so a second call costs a file read and a
damaged cache is reported and rebuilt. ``transforms`` is a ``torchvision.transforms.v2`` transform called as
``transforms(image, target)``; v2 moves boxes and masks together with the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision import tv_tensors

from .checkpoints import atomic_save, verified_load
from .data import data_dir, fashion_mnist
from .detection import box_iou

FORMAT_VERSION = 1
MASK_THRESHOLD = 30      # an item pixel above this (of 255) belongs to the object
PLACEMENT_TRIES = 20
MIN_VISIBLE = 0.5        # every object keeps at least this fraction of its pixels


def cached_scenes(folder: str, version: int, make, *, split, count, size, seed, min_scale, max_scale, max_objects,
                  max_overlap) -> dict:
    """The arrays of ``make(split, count, size, seed, …)``, cached in ``data/<folder>/`` under a name made of every
    argument and ``version``: a second call costs a file read. Also used by Chapter 7's infrared–visible scenes."""
    key = (f"{split}-n{count}-s{size}-seed{seed}-scale{min_scale}to{max_scale}-k{max_objects}"
           f"-overlap{max_overlap:g}-v{version}")
    path = data_dir() / folder / f"{key}.pt"
    arrays = verified_load(path)  # None when absent or damaged (then it says so)
    if arrays is None:
        arrays = make(split, count, size, seed, min_scale, max_scale, max_objects, max_overlap)
        atomic_save(arrays, path)   # a failed write warns; the scenes are still returned
    return arrays


def check_scene_arguments(split, count, size, min_scale, max_scale, max_objects, max_overlap,
                          smallest: int = 8) -> None:
    """The checks every scene generator makes on its arguments (items/people ``smallest`` pixels at least)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, not {count!r}")
    if not smallest <= min_scale <= max_scale <= size:
        raise ValueError(f"need {smallest} ≤ min_scale ≤ max_scale ≤ size, got min_scale={min_scale}, "
                         f"max_scale={max_scale}, size={size}: lower the scales or enlarge the canvas")
    if not isinstance(max_objects, int) or max_objects < 1:
        raise ValueError(f"max_objects must be a positive integer, not {max_objects!r}")
    if not 0.0 <= max_overlap < 1.0:
        raise ValueError(f"max_overlap is an IoU bound in [0, 1), not {max_overlap}")


def noisy_background(size: int, generator: torch.Generator) -> torch.Tensor:
    """A size×size float texture in about [5, 75]: smooth blobs plus fine noise (the canvas of every scene)."""
    coarse = torch.rand(1, 1, 6, 6, generator=generator)
    smooth = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    level = 10 + 40 * torch.rand((), generator=generator)
    return level * smooth + 8 * torch.rand(size, size, generator=generator) + 5


def _compose(items, item_labels, size, generator, min_scale, max_scale, max_objects, max_overlap):
    """One scene: (image uint8 size×size, instance map uint8 size×size (0 = background, k = object k), labels)."""
    canvas = noisy_background(size, generator)
    instance = torch.zeros(size, size, dtype=torch.uint8)
    placed_boxes, labels, full_areas = [], [], []
    for _ in range(int(torch.randint(1, max_objects + 1, (1,), generator=generator))):
        index = int(torch.randint(len(items), (1,), generator=generator))
        side = int(torch.randint(min_scale, max_scale + 1, (1,), generator=generator))
        item = F.interpolate(items[index][None].float(), size=(side, side), mode="bilinear",
                             align_corners=False, antialias=True)[0, 0]
        mask = item > MASK_THRESHOLD
        if not mask.any():  # a nearly black item: nothing to detect
            continue
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        for _ in range(PLACEMENT_TRIES):
            top = int(torch.randint(0, size - side + 1, (1,), generator=generator))
            left = int(torch.randint(0, size - side + 1, (1,), generator=generator))
            box = torch.tensor([left + cols[0], top + rows[0], left + cols[-1] + 1, top + rows[-1] + 1],
                               dtype=torch.float32)
            if placed_boxes and box_iou(box[None], torch.stack(placed_boxes)).max() > max_overlap:
                continue
            trial = instance.clone()
            window = trial[top:top + side, left:left + side]
            window[mask] = len(labels) + 1
            visible = torch.bincount(trial.flatten().long(), minlength=len(labels) + 2)[1:len(labels) + 1]
            if labels and (visible.float() < MIN_VISIBLE * torch.tensor(full_areas)).any():
                continue
            instance = trial
            canvas[top:top + side, left:left + side][mask] = item[mask]
            placed_boxes.append(box)
            labels.append(int(item_labels[index]))
            full_areas.append(float(mask.sum()))
            break
    canvas += 6 * torch.randn(size, size, generator=generator)  # sensor noise over everything
    return canvas.clamp(0, 255).round().to(torch.uint8), instance, torch.tensor(labels, dtype=torch.int64)


def _tight_boxes(instance: torch.Tensor, count: int) -> torch.Tensor:
    """The tight xyxy box (exclusive x2, y2) of each object id 1..count in an instance map."""
    boxes = torch.zeros(count, 4)
    for k in range(count):
        ys, xs = (instance == k + 1).nonzero(as_tuple=True)
        boxes[k] = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
    return boxes


def _generate(split, count, size, seed, min_scale, max_scale, max_objects, max_overlap) -> dict:
    items, item_labels = fashion_mnist(split)
    generator = torch.Generator().manual_seed(seed * 2 + (split == "test"))
    images, instances, boxes, labels = [], [], [], []
    for _ in range(count):
        image, instance, scene_labels = _compose(items, item_labels, size, generator, min_scale, max_scale,
                                                 max_objects, max_overlap)
        images.append(image)
        instances.append(instance)
        labels.append(scene_labels)
        boxes.append(_tight_boxes(instance, len(scene_labels)))
    return {"images": torch.stack(images)[:, None], "instances": torch.stack(instances),
            "boxes": boxes, "labels": labels}


class FashionScenes(torch.utils.data.Dataset):
    """Generated scenes as tv_tensors (see the module docstring for the target format)."""

    def __init__(self, arrays: dict, size: int, transforms=None):
        self.images = arrays["images"]          # uint8 N×1×S×S
        self.instances = arrays["instances"]    # uint8 N×S×S, 0 = background, k = k-th object
        self.boxes = arrays["boxes"]            # N tensors K×4, xyxy
        self.labels = arrays["labels"]          # N tensors K, int64
        self.size = size
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"scene {index} out of range: this set has {len(self)} scenes")
        image = tv_tensors.Image(self.images[index])
        instance = self.instances[index]
        labels = self.labels[index]
        ids = torch.arange(1, len(labels) + 1, dtype=torch.uint8)
        target = {
            "boxes": tv_tensors.BoundingBoxes(self.boxes[index].clone(), format="XYXY",
                                              canvas_size=(self.size, self.size)),
            "labels": labels.clone(),
            "masks": tv_tensors.Mask(instance[None] == ids[:, None, None]),
            "semantic": tv_tensors.Mask(semantic_map(instance, labels)),
        }
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All scenes stacked: images uint8 N×1×S×S and semantic maps int64 N×S×S (untransformed)."""
        semantic = torch.stack([semantic_map(instance, labels)
                                for instance, labels in zip(self.instances, self.labels)])
        return self.images.clone(), semantic


def semantic_map(instance: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Instance map (S×S, 0 = background, k = object k) → semantic map (int64, 0 = background, 1 + class)."""
    lookup = torch.cat([torch.zeros(1, dtype=torch.int64), labels + 1])
    return lookup[instance.long()]


def fashion_scenes(split: str, count: int, size: int = 128, seed: int = 0, min_scale: int = 16,
                   max_scale: int = 64, max_objects: int = 4, max_overlap: float = 0.3,
                   transforms=None) -> FashionScenes:
    """``count`` deterministic scenes of ``split`` ("train" or "test"), cached under ``data/scenes/``."""
    check_scene_arguments(split, count, size, min_scale, max_scale, max_objects, max_overlap)
    arrays = cached_scenes("scenes", FORMAT_VERSION, _generate, split=split, count=count, size=size, seed=seed,
                           min_scale=min_scale, max_scale=max_scale, max_objects=max_objects, max_overlap=max_overlap)
    return FashionScenes(arrays, size, transforms)
