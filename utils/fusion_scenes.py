"""Paired infrared–visible scenes: one scene, two sensors — Chapter 7 (07_fusion).

No public infrared–visible set can be downloaded here, so the course renders its own pairs from the Fashion
scenes of Chapter 4 (`utils.scenes`). Fusion itself (classical methods, metrics, registration) is in
`utils.fusion`, the image operations used below in `utils.image_ops`.

Interface::

    scenes = fusion_scenes(split, count, size=64, seed=0, min_scale=12, max_scale=32, max_objects=4)
    scenes.visible              # uint8 N×3×S×S, RGB, under the scene's condition
    scenes.infrared             # uint8 N×1×S×S, registered to the visible image
    scenes.infrared_misaligned  # uint8 N×1×S×S = warp_affine(infrared, warps[i]) (up to rounding)
    scenes.warps                # float32 N×2×3, the true affine (OpenCV convention: dst(M·p) = src(p))
    scenes.conditions           # int64 N, index into CONDITIONS ("clear", "low_light", "haze")
    scenes.glare                # bool N, a bright glare blob in the visible image
    scenes.temperatures         # N tensors K, each object's temperature on the infrared 0–255 scale
    scenes.boxes, scenes.labels # N tensors K×4 (xyxy) and K, as in `utils.scenes`
    scenes.luminance()          # uint8 N×1×S×S, the visible image's Y (BT.601)
    calibration_target(size)    # a board both cameras see, for registration (Chapter 7, section 9)
    render_scene_pairs(scenes)  # the figure: a few pairs under each condition

How a pair is rendered from one grey Fashion scene (randomness from one generator seeded by ``seed``, ``split``):

- **infrared**: each object gets a temperature: the scene's ambient level plus a warmth per class (`CLASS_WARMTH`:
  worn clothes warm, footwear at ambient, bags slightly below) plus a per-object jitter; objects are filled with
  it (thermal images show shapes, hardly any texture), over a background with gentle gradients; then the camera:
  blur, a ×4 lower resolution, sensor noise and column stripes (fixed-pattern noise of uncooled bolometers);
- **visible**: the grey scene's texture tinted with a colour per object on a coloured background, under a
  condition drawn per scene: ``clear``; ``low_light`` (darkened ×0.04–0.12, then noise and 8-bit rounding);
  ``haze`` (smoke over some objects: a blend towards a grey airlight under a smooth mask); low-light and hazy
  scenes may also carry glare (a saturating bright blob). Infrared passes through smoke and needs no light.
- **misaligned infrared**: the infrared image warped by a small random affine (rotation 1–4°, shift 2–5 px,
  scale 0.97–1.03 about the centre), as from an uncalibrated second camera; the true matrix is kept.

Scenes are cached in ``data/fusion/`` as a ``.pt`` file keyed by every argument (atomic write, as in
`utils.scenes`).
"""

from __future__ import annotations

import cv2
import torch
import torch.nn.functional as F

from .data import CLASSES
from .image_ops import gaussian_blur, luminance, warp_affine
from .scenes import cached_scenes, fashion_scenes

FORMAT_VERSION = 1
CONDITIONS = ("clear", "low_light", "haze")
CONDITION_ODDS = (0.4, 0.3, 0.3)
# Warmth of each Fashion-MNIST class above the ambient background, on the infrared 0–255 scale: worn clothes
# are warm; footwear is at the ground's temperature and a bag slightly colder — objects near ambient temperature
# fade into the background of a thermal image (as a parked car or a bench does), but not of a visible one.
CLASS_WARMTH = torch.tensor([110.0, 110.0, 105.0, 110.0, 100.0, 5.0, 110.0, 5.0, -10.0, 5.0])
TEMPERATURE_JITTER = 8.0


# ------------------------------------------------------------------------------------------------ rendering
def _smooth_field(size: int, cells: int, generator: torch.Generator) -> torch.Tensor:
    """A size×size random field in [0, 1] that varies slowly (bilinear upsampling of cells×cells noise)."""
    coarse = torch.rand(1, 1, cells, cells, generator=generator)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0, 0]


def _uniform(low: float, high: float, generator: torch.Generator, shape=()) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator)


def random_affine(size: int, generator: torch.Generator, rotation=(1.0, 4.0), shift=(2.0, 5.0),
                  scale=(0.97, 1.03)) -> torch.Tensor:
    """A random 2×3 affine about the image centre: |rotation| in degrees, |shift| in px per axis, and scale
    drawn uniformly from the given ranges, signs at random (float32, OpenCV convention)."""
    sign = lambda: 1.0 if torch.rand((), generator=generator) < 0.5 else -1.0  # noqa: E731
    angle = sign() * float(_uniform(*rotation, generator))
    factor = float(_uniform(*scale, generator))
    matrix = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), angle, factor)
    matrix[:, 2] += [sign() * float(_uniform(*shift, generator)), sign() * float(_uniform(*shift, generator))]
    return torch.from_numpy(matrix).float()


def _render_infrared(grey, instance, labels, size, generator):
    """Temperatures (K) and the infrared image (float size×size) of one scene."""
    ambient = 70 + 40 * torch.rand((), generator=generator)
    temperatures = ambient + CLASS_WARMTH[labels] + _uniform(-TEMPERATURE_JITTER, TEMPERATURE_JITTER, generator,
                                                             (len(labels),))
    rows = torch.linspace(-1, 1, size)[:, None]
    image = ambient + 12 * _uniform(-1, 1, generator) * rows + 20 * (_smooth_field(size, 3, generator) - 0.5)
    lookup = torch.cat([torch.zeros(1), temperatures])
    # how much of a pixel is fabric: the faint, anti-aliased rim of a garment is partly background; smoothed,
    # because heat spreads through the fabric and hides its printed texture
    fabric = gaussian_blur(torch.where(instance > 0, grey.double() / 60, 0.0).clamp(max=1), 1.0).float()
    image = image + fabric * (lookup[instance.long()] - image) * (instance > 0)
    return temperatures, _thermal_camera(image, generator)


def _thermal_camera(radiance: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What an uncooled thermal camera makes of a scene's radiance (float H×W): blurred optics, a quarter of the
    resolution (160×120 thermal beside 640×480 visible is typical), column stripes (fixed-pattern noise) and
    temporal noise."""
    size = radiance.shape[-1]
    image = gaussian_blur(radiance.double(), 1.0).float()
    low = F.avg_pool2d(image[None, None], 4)
    image = F.interpolate(low, size=radiance.shape, mode="bilinear", align_corners=False)[0, 0]
    stripes = 3 * torch.randn(1, size, generator=generator)
    return image + stripes + 3 * torch.randn(radiance.shape, generator=generator)


def calibration_target(size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A calibration board seen by both cameras, registered → (visible grey, infrared), uint8 1×size×size each.

    The board carries a random pattern of black patches on white (random, not a checkerboard: a periodic
    pattern lets registration lock on a wrong period). Under a heat lamp black paint emits more than white,
    so the infrared image has the *inverse* contrast — the reason registration compares edges, not intensities.
    """
    generator = torch.Generator().manual_seed(seed)
    pattern = F.interpolate(torch.rand(1, 1, 6, 6, generator=generator), size=(size, size), mode="bicubic",
                            align_corners=False)[0, 0]
    black = (pattern > pattern.median()).float()
    visible = 210 - 170 * black + 2 * torch.randn(size, size, generator=generator)
    infrared = _thermal_camera(90 + 70 * black, generator)
    return _to_uint8(visible)[None], _to_uint8(infrared)[None]


def _render_visible(grey, instance, boxes, size, generator):
    """(visible RGB float 3×size×size, condition index, glare flag) of one scene."""
    grey = grey.float()
    count = int(instance.max())
    tints = _uniform(0.55, 1.0, generator, (count + 1, 3))
    tints = tints / tints.max(1, keepdim=True).values                             # brightest channel 1
    tints[0] = _uniform(0.6, 1.0, generator, (3,))                                # background tint
    image = torch.where(instance[None] > 0, grey[None], 0.9 * grey[None] + 25) * tints[instance.long()].permute(2, 0, 1)
    condition = int(torch.multinomial(torch.tensor(CONDITION_ODDS), 1, generator=generator))
    glare = False
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    if CONDITIONS[condition] == "low_light":
        image = image * _uniform(0.04, 0.12, generator) + 6 * torch.randn(3, size, size, generator=generator)
    elif CONDITIONS[condition] == "haze":
        covered = torch.rand(len(boxes), generator=generator) < 0.6
        covered[int(torch.randint(len(boxes), (1,), generator=generator))] = True  # at least one object
        smoke = torch.zeros(size, size)
        for box in boxes[covered]:
            centre, extent = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]).max()
            spread = 0.6 * extent + 3
            smoke += torch.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * spread ** 2))
        smoke = (1.6 * smoke).clamp(max=1) * (0.75 + 0.25 * _smooth_field(size, 5, generator))
        density = _uniform(0.8, 0.95, generator)
        airlight = _uniform(150, 200, generator)
        image = (1 - density * smoke) * image + density * smoke * airlight
    if condition != 0 and torch.rand((), generator=generator) < 0.4:
        glare = True
        centre = _uniform(0, size, generator, (2,))
        spread = _uniform(size / 16, size / 8, generator)
        image = image + 400 * torch.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * spread ** 2))
    return image + 2 * torch.randn(3, size, size, generator=generator), condition, glare


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def _generate(split, count, size, seed, min_scale, max_scale, max_objects, max_overlap) -> dict:
    scenes = fashion_scenes(split, count, size=size, seed=seed, min_scale=min_scale, max_scale=max_scale,
                            max_objects=max_objects, max_overlap=max_overlap)
    generator = torch.Generator().manual_seed(10_007 + seed * 2 + (split == "test"))
    out = {key: [] for key in ("visible", "infrared", "infrared_misaligned", "warps", "conditions", "glare",
                               "temperatures")}
    for grey, instance, boxes, labels in zip(scenes.images, scenes.instances, scenes.boxes, scenes.labels):
        temperatures, infrared = _render_infrared(grey[0].float(), instance, labels, size, generator)
        visible, condition, glare = _render_visible(grey[0], instance, boxes, size, generator)
        warp = random_affine(size, generator)
        infrared = _to_uint8(infrared)
        out["infrared"].append(infrared[None])
        out["infrared_misaligned"].append(warp_affine(infrared, warp)[None])
        out["visible"].append(_to_uint8(visible))
        out["warps"].append(warp)
        out["conditions"].append(condition)
        out["glare"].append(glare)
        out["temperatures"].append(temperatures)
    arrays = {key: torch.stack(out[key]) for key in ("visible", "infrared", "infrared_misaligned", "warps")}
    arrays.update(conditions=torch.tensor(out["conditions"]), glare=torch.tensor(out["glare"]),
                  temperatures=out["temperatures"], boxes=scenes.boxes, labels=scenes.labels)
    return arrays


class FusionScenes:
    """Registered infrared–visible pairs with their misaligned infrared and detection targets (see module doc)."""

    def __init__(self, arrays: dict):
        self.visible = arrays["visible"]
        self.infrared = arrays["infrared"]
        self.infrared_misaligned = arrays["infrared_misaligned"]
        self.warps = arrays["warps"]
        self.conditions = arrays["conditions"]
        self.glare = arrays["glare"]
        self.temperatures = arrays["temperatures"]
        self.boxes = arrays["boxes"]
        self.labels = arrays["labels"]

    def __len__(self) -> int:
        return len(self.visible)

    def luminance(self) -> torch.Tensor:
        """The visible images' Y channel, uint8 N×1×S×S (what grey-level fusion and detection read)."""
        return luminance(self.visible)


def fusion_scenes(split: str, count: int, size: int = 64, seed: int = 0, min_scale: int = 12,
                  max_scale: int = 32, max_objects: int = 4, max_overlap: float = 0.3) -> FusionScenes:
    """``count`` deterministic infrared–visible scenes of ``split``, cached under ``data/fusion/``."""
    return FusionScenes(cached_scenes("fusion", FORMAT_VERSION, _generate, split=split, count=count, size=size,
                                      seed=seed, min_scale=min_scale, max_scale=max_scale, max_objects=max_objects,
                                      max_overlap=max_overlap))


# -------------------------------------------------------------------------------------------------- figure
def render_scene_pairs(scenes: FusionScenes, per_condition: int = 3):
    """One row per condition of `CONDITIONS`: its first ``per_condition`` scenes, each as the visible image (titled
    with the condition, and glare where there is some) beside the infrared one (titled with the objects' classes),
    infrared on one shared scale → matplotlib Figure (a row stays short where a condition has fewer scenes)."""
    import matplotlib.pyplot as plt

    from .plotting import colorbar

    if not isinstance(per_condition, int) or per_condition < 1:
        raise ValueError(f"per_condition must be a positive number of scenes per row, not {per_condition!r}")
    if not isinstance(scenes, FusionScenes) or len(scenes) == 0:
        raise ValueError("render_scene_pairs draws a non-empty FusionScenes: pass fusion_scenes(split, count)")
    fig, axes = plt.subplots(len(CONDITIONS), 2 * per_condition, figsize=(4.5 * per_condition, 2.2 * len(CONDITIONS)),
                             layout="constrained", squeeze=False)
    for row, condition in enumerate(CONDITIONS):
        index = (scenes.conditions == row).nonzero().flatten()
        for pair, i in enumerate(index[:per_condition].tolist()):
            axes[row, 2 * pair].imshow(scenes.visible[i].permute(1, 2, 0).numpy())
            axes[row, 2 * pair].set_title(f"{condition}{' + glare' if scenes.glare[i] else ''}: visible", fontsize=8)
            infrared = axes[row, 2 * pair + 1].imshow(scenes.infrared[i, 0].numpy(), cmap="inferno", vmin=0, vmax=255)
            axes[row, 2 * pair + 1].set_title(", ".join(CLASSES[k] for k in scenes.labels[i]), fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    colorbar(infrared, axes, "infrared level (0–255)")
    fig.suptitle("One scene, two sensors: visible (left) and infrared (right) under each condition")
    return fig
