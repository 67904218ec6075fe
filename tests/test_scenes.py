"""Chapter 4's Fashion scenes: format, exact targets, determinism, caching, split hygiene, transforms, bad input."""

import pytest
import torch
import torchvision.transforms.v2 as T
from torchvision import tv_tensors

from utils import scenes
from utils.scenes import FashionScenes, fashion_scenes, semantic_map

SMALL = dict(size=64, min_scale=12, max_scale=32)


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """Scenes are cached under a temporary data folder, never in the repository's data/."""
    monkeypatch.setattr(scenes, "data_dir", lambda: tmp_path)


def test_item_format():
    data = fashion_scenes("test", 5, **SMALL)
    assert len(data) == 5 and isinstance(data, FashionScenes)
    image, target = data[0]
    k = len(target["labels"])
    assert isinstance(image, tv_tensors.Image) and image.shape == (1, 64, 64) and image.dtype == torch.uint8
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes) and target["boxes"].shape == (k, 4)
    assert target["boxes"].format == tv_tensors.BoundingBoxFormat.XYXY and tuple(target["boxes"].canvas_size) == (64, 64)
    assert target["labels"].dtype == torch.int64 and 1 <= k <= 4 and ((0 <= target["labels"]) & (target["labels"] <= 9)).all()
    assert isinstance(target["masks"], tv_tensors.Mask) and target["masks"].shape == (k, 64, 64)
    assert target["masks"].dtype == torch.bool
    assert isinstance(target["semantic"], tv_tensors.Mask) and target["semantic"].shape == (64, 64)
    assert target["semantic"].dtype == torch.int64


def test_targets_are_exact_and_overlap_bounded():
    data = fashion_scenes("train", 12, max_overlap=0.2, **SMALL)
    for i in range(len(data)):
        _, target = data[i]
        masks = target["masks"]
        assert (masks.sum(0) <= 1).all(), "visible instance masks are disjoint"
        for box, mask, label in zip(target["boxes"], masks, target["labels"]):
            ys, xs = mask.nonzero(as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert (target["semantic"][mask] == label + 1).all()
        assert (target["semantic"][~masks.any(0)] == 0).all()
        boxes = target["boxes"].as_subclass(torch.Tensor)
        if len(boxes) > 1:
            from torchvision.ops import box_iou
            assert box_iou(boxes, boxes).fill_diagonal_(0).max() <= 0.2 + 1e-6


def test_deterministic_cached_and_seed_dependent(tmp_path):
    first = fashion_scenes("test", 4, seed=3, **SMALL)
    assert len(list(tmp_path.glob("scenes/*.pt"))) == 1
    again = fashion_scenes("test", 4, seed=3, **SMALL)
    assert torch.equal(first.images, again.images) and torch.equal(first.instances, again.instances)
    other = fashion_scenes("test", 4, seed=4, **SMALL)
    assert not torch.equal(first.images, other.images)
    assert len(list(tmp_path.glob("scenes/*.pt"))) == 2


def test_items_come_from_the_requested_split(monkeypatch):
    asked = []
    real = scenes.fashion_mnist

    def spy(split):
        asked.append(split)
        return real(split)

    monkeypatch.setattr(scenes, "fashion_mnist", spy)
    fashion_scenes("test", 2, **SMALL)
    fashion_scenes("train", 2, **SMALL)
    assert asked == ["test", "train"]


def test_transforms_move_boxes_and_masks_with_the_image():
    plain = fashion_scenes("test", 3, **SMALL)
    flipped = fashion_scenes("test", 3, **SMALL, transforms=T.RandomHorizontalFlip(p=1.0))
    (image, target), (image_f, target_f) = plain[1], flipped[1]
    assert torch.equal(image_f, image.flip(-1))
    assert torch.equal(target_f["masks"], target["masks"].flip(-1))
    assert torch.equal(target_f["semantic"], target["semantic"].flip(-1))
    boxes = target["boxes"].as_subclass(torch.Tensor)
    expected = torch.stack([64 - boxes[:, 2], boxes[:, 1], 64 - boxes[:, 0], boxes[:, 3]], 1)
    assert torch.allclose(target_f["boxes"].as_subclass(torch.Tensor), expected)
    assert torch.equal(target_f["labels"], target["labels"])


def test_tensors_stack_images_and_semantic_maps():
    data = fashion_scenes("test", 4, **SMALL)
    images, semantic = data.tensors()
    assert images.shape == (4, 1, 64, 64) and images.dtype == torch.uint8
    assert semantic.shape == (4, 64, 64) and semantic.dtype == torch.int64
    for i in range(4):
        assert torch.equal(semantic[i], data[i][1]["semantic"].as_subclass(torch.Tensor))


def test_semantic_map_lookup():
    instance = torch.tensor([[0, 1], [2, 2]], dtype=torch.uint8)
    assert semantic_map(instance, torch.tensor([7, 0])).tolist() == [[0, 8], [1, 1]]


def test_index_out_of_range():
    data = fashion_scenes("test", 2, **SMALL)
    with pytest.raises(IndexError):
        data[2]


@pytest.mark.parametrize("arguments, message", [
    (dict(split="val", count=2), "split"),
    (dict(split="test", count=0), "count"),
    (dict(split="test", count=2, size=64, min_scale=40, max_scale=32), "min_scale"),
    (dict(split="test", count=2, size=32, min_scale=12, max_scale=64), "max_scale"),
    (dict(split="test", count=2, max_objects=0), "max_objects"),
    (dict(split="test", count=2, max_overlap=1.5), "max_overlap"),
])
def test_bad_arguments_say_what_to_do(arguments, message):
    with pytest.raises(ValueError, match=message):
        fashion_scenes(**arguments)
