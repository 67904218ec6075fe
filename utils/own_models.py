"""Your own model: torchvision's networks on real photographs, for the look-inside tools of Chapters 1d, 2 and 3b.

Introduced in Chapter 1 (01d), used again in Chapter 2 (Grad-CAM) and Chapter 3b (ViT and Swin attention).

- `photo` / `photos`: photographs that ship inside scikit-image's wheel (`PHOTOS`: no download), centre-cropped
  square, area-resized and standardised with ImageNet's mean and std, as torchvision's classifiers expect:
  3×S×S float tensors.
- `torchvision_model`: a torchvision classifier by name (``"resnet18"``, ``"vit_b_16"``…) with its ImageNet weights
  when they are already in the torchvision cache (``torch.hub.get_dir()/checkpoints``; nothing is downloaded),
  else untrained — built under its own seed, so the chapter's random stream is left alone — and the words that say
  which (`UNTRAINED` or `PRETRAINED`), for every figure's title.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")   # in skimage/data/ of the wheel: no pooch download
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
UNTRAINED = "untrained weights"
PRETRAINED = "ImageNet weights (torchvision DEFAULT, from the cache)"


def photo(name: str, size: int = 224) -> torch.Tensor:
    """scikit-image's photograph ``name`` (one of `PHOTOS`) as a 3×size×size float tensor: the centred square,
    area-resized, standardised with ImageNet's mean and std."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}: choose one of {PHOTOS} (they ship inside scikit-image's wheel)")
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an integer of at least 16 pixels, not {size!r}")
    from skimage import data   # here: only the photo cells need scikit-image

    pixels = np.asarray(getattr(data, name)())                                   # H×W×3 uint8
    height, width = pixels.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = torch.from_numpy(pixels[top:top + side, left:left + side].copy()).permute(2, 0, 1).float() / 255
    resized = F.interpolate(square[None], size=(size, size), mode="area")[0] if side >= size else \
        F.interpolate(square[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    return (resized - mean) / std


def photos(names=PHOTOS, size: int = 224) -> torch.Tensor:
    """`photo` of each name, stacked: N×3×size×size."""
    names = list(names)
    if not names:
        raise ValueError(f"give at least one photo name from {PHOTOS}")
    return torch.stack([photo(name, size) for name in names])


def cached_weights(name: str):
    """torchvision's DEFAULT weights of model ``name`` if their file is already in the torchvision cache, else None."""
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except ValueError as error:
        raise ValueError(f"torchvision has no model {name!r}: choose one of torchvision.models.list_models(), "
                         "e.g. resnet18, resnet50, vgg11, vit_b_16, swin_t") from error
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    return weights if file.is_file() else None


def categories(name: str) -> list[str]:
    """The 1 000 ImageNet class names of torchvision's model ``name``, from the meta of its DEFAULT weights — those
    `torchvision_model` loads from the cache (the names are kept in torchvision's code: no download)."""
    return list(torchvision.models.get_model_weights(name).DEFAULT.meta["categories"])


def torchvision_model(name: str, seed: int = 0, **kwargs) -> tuple[nn.Module, str]:
    """torchvision's model ``name`` in eval mode and `PRETRAINED` or `UNTRAINED`: ImageNet weights where the cache
    has them (a ViT then keeps its 224-px ``image_size``), else random weights drawn from ``seed``. Either way it is
    built inside ``torch.random.fork_rng`` — torchvision draws random weights before loading the cached ones — so
    the caller's random stream moves on as if nothing was drawn. ``kwargs`` go to the model (e.g.
    ``image_size=112`` for an untrained ViT)."""
    weights = cached_weights(name)
    if weights is not None:
        kwargs.pop("image_size", None)         # the pretrained position embeddings are for this size only
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torchvision.models.get_model(name, weights=weights, **kwargs)
    return model.eval(), UNTRAINED if weights is None else PRETRAINED
