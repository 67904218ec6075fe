"""Infrared–visible image fusion: paired scenes, classical fusion, fusion metrics, registration, the explorer figure.

Introduced in Chapter 7 (07_fusion). No public infrared–visible set can be downloaded here, so the course renders
its own pairs from the Fashion scenes of Chapter 4 (`utils.scenes`): one scene, two sensors.

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
`utils.scenes`). Every image function below takes float tensors on the 0–255 scale with shape ``…×H×W``
unless a name says otherwise; ``fusion_metrics`` also takes NumPy arrays and uint8.
"""

from __future__ import annotations

import math
import numbers

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .scenes import cached_scenes, fashion_scenes

FORMAT_VERSION = 1
CONDITIONS = ("clear", "low_light", "haze")
CONDITION_ODDS = (0.4, 0.3, 0.3)
# Warmth of each Fashion-MNIST class above the ambient background, on the infrared 0–255 scale: worn clothes
# are warm; footwear is at the ground's temperature and a bag slightly colder — objects near ambient temperature
# fade into the background of a thermal image (as a parked car or a bench does), but not of a visible one.
CLASS_WARMTH = torch.tensor([110.0, 110.0, 105.0, 110.0, 100.0, 5.0, 110.0, 5.0, -10.0, 5.0])
TEMPERATURE_JITTER = 8.0
METHODS = ("average", "max", "weighted", "laplacian", "gradient")
WEIGHTED_METHODS = ("weighted", "laplacian")  # the methods of METHODS that use an infrared weight
METRICS = ("EN", "SD", "SF", "AG", "MI", "SSIM", "PSNR", "Qabf", "MSE", "NRMSE")
EPS = 1e-12
# A float image whose brightest pixel is at most this lies in [0, 1], not on 0–255 (where it would be black): resizing
# overshoots [0, 1] by 0.45 at worst with bicubic (a = −0.75, OpenCV's and PyTorch's), 0.81 with Lanczos-4 — never 1.
UNIT_RANGE_CEILING = 2.0


# ------------------------------------------------------------------------------------------- small filters
def gaussian_kernel(sigma: float, size: int | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps (default: 2·⌈3σ⌉ + 1), float64."""
    size = size or 2 * math.ceil(3 * sigma) + 1
    distance = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-0.5 * (distance / sigma) ** 2)
    return kernel / kernel.sum()


def _separable(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``x`` (…×H×W) filtered by a symmetric 1-D ``kernel`` along rows and columns, borders reflected
    (OpenCV's BORDER_REFLECT_101); same shape."""
    flat = x.reshape(-1, 1, *x.shape[-2:])
    k = kernel.to(flat)
    half = len(k) // 2
    flat = F.pad(flat, (half, half, half, half), mode="reflect")
    flat = F.conv2d(F.conv2d(flat, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return flat.reshape(x.shape)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``x`` (…×H×W), reflected borders; same shape."""
    return _separable(x, gaussian_kernel(sigma))


SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def _filter3x3(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """``x`` (…×H×W) correlated with each 3×3 kernel (K×3×3), replicated borders → …×K×H×W.

    Replicated (not zero) borders: a flat image has no edges, also at its border."""
    flat = F.pad(x.reshape(-1, 1, *x.shape[-2:]), (1, 1, 1, 1), mode="replicate")
    out = F.conv2d(flat, kernels.to(flat)[:, None])
    return out.reshape(*x.shape[:-2], len(kernels), *x.shape[-2:])


def sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First derivatives (gx, gy) of ``x`` (…×H×W) by the Sobel kernels: gx grows to the right, gy downwards."""
    gx, gy = _filter3x3(x, torch.stack([SOBEL_X, SOBEL_X.T])).unbind(-3)
    return gx, gy


def gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|∇x| = √(gx² + gy²) from Sobel (…×H×W)."""
    gx, gy = sobel(x)
    return torch.sqrt(gx ** 2 + gy ** 2)


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """Second derivative ∂²x/∂u² + ∂²x/∂v² by the 4-neighbour Laplacian kernel (…×H×W): zero on ramps, signed."""
    return _filter3x3(x, LAPLACIAN[None])[..., 0, :, :]


# -------------------------------------------------------------------------------------------------- colour
# BT.601 full range (JPEG/JFIF): Y = 0.299 R + 0.587 G + 0.114 B, chroma centred on 128.
RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114],
                             [-0.168736, -0.331264, 0.5],
                             [0.5, -0.418688, -0.081312]], dtype=torch.float64)
CHROMA_OFFSET = torch.tensor([0.0, 128.0, 128.0], dtype=torch.float64)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """RGB (…×3×H×W, 0–255) → YCbCr (…×3×H×W): luminance carries the structure, Cb and Cr the colour."""
    if rgb.shape[-3] != 3:
        raise ValueError(f"rgb_to_ycbcr takes …×3×H×W images, got shape {tuple(rgb.shape)}")
    matrix = RGB_TO_YCBCR.to(rgb.device, rgb.dtype if rgb.is_floating_point() else torch.float64)
    out = torch.einsum("ij,...jhw->...ihw", matrix, rgb.to(matrix.dtype))
    return out + CHROMA_OFFSET.to(out)[:, None, None]


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """YCbCr (…×3×H×W) → RGB, the exact inverse of `rgb_to_ycbcr` (not clamped)."""
    if ycbcr.shape[-3] != 3:
        raise ValueError(f"ycbcr_to_rgb takes …×3×H×W images, got shape {tuple(ycbcr.shape)}")
    inverse = torch.linalg.inv(RGB_TO_YCBCR).to(ycbcr)
    return torch.einsum("ij,...jhw->...ihw", inverse, ycbcr - CHROMA_OFFSET.to(ycbcr)[:, None, None])


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """The Y channel of RGB images (…×3×H×W) → …×1×H×W, same dtype (uint8 is rounded)."""
    y = rgb_to_ycbcr(rgb.double())[..., :1, :, :]
    return y.round().clamp(0, 255).to(rgb.dtype) if not rgb.is_floating_point() else y.to(rgb.dtype)


# ------------------------------------------------------------------------------------------ paired scenes
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


def warp_affine(image: torch.Tensor, matrix: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """``image`` (H×W or 1×H×W, any dtype) warped by a 2×3 ``matrix``: out(M·p) = image(p); with ``inverse``,
    out(p) = image(M·p) — which undoes a warp by M. Bilinear, reflected borders; same shape and dtype."""
    array = image.squeeze(0).numpy() if image.ndim == 3 else image.numpy()
    flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse else 0)
    out = cv2.warpAffine(array.astype(np.float32), matrix.numpy().astype(np.float64), array.shape[::-1],
                         flags=flags, borderMode=cv2.BORDER_REFLECT)
    out = torch.from_numpy(out)
    out = out.round().clamp(0, 255).to(image.dtype) if not image.is_floating_point() else out.to(image.dtype)
    return out.reshape(image.shape)


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


# ----------------------------------------------------------------------------------------- classical fusion
def _check_pair(ir: torch.Tensor, vis: torch.Tensor) -> None:
    if ir.shape != vis.shape:
        raise ValueError(f"infrared and visible must have the same shape, got {tuple(ir.shape)} and "
                         f"{tuple(vis.shape)}: fuse the visible luminance (rgb_to_ycbcr) with the infrared image")


def _check_weight(weight: float, name: str = "weight") -> None:
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"{name}={weight} is the infrared share and must lie in [0, 1]: "
                         "0 keeps only the visible image, 1 only the infrared")


def weighted(ir: torch.Tensor, vis: torch.Tensor, weight: float = 0.5) -> torch.Tensor:
    """w·IR + (1 − w)·VIS, pixel by pixel (…×H×W); w = ½ is plain averaging."""
    _check_pair(ir, vis)
    _check_weight(weight)
    return weight * ir + (1 - weight) * vis


def maximum(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """The brighter source at each pixel (…×H×W): keeps warm targets, but also glare and haze."""
    _check_pair(ir, vis)
    return torch.maximum(ir, vis)


BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64) / 16  # Burt–Adelson's 5-tap Gaussian


def pyramid_down(x: torch.Tensor) -> torch.Tensor:
    """Blur with the 5-tap binomial, keep every second row and column: …×H×W → …×⌈H/2⌉×⌈W/2⌉ (= cv2.pyrDown)."""
    return _separable(x, BINOMIAL)[..., ::2, ::2]


def pyramid_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Insert zeros between samples, blur with 4× the binomial (twice 2 per axis: the zeros' missing energy):
    …×h×w → …×size (= cv2.pyrUp for size = 2h×2w)."""
    up = x.new_zeros(*x.shape[:-2], *size)
    up[..., ::2, ::2] = x
    return _separable(up, 2 * BINOMIAL)


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[detail₀ (finest), …, detail_{levels−1}, base]: detail_k = G_k − up(G_{k+1}), base the coarsest Gaussian
    level. The decomposition is exact: `reconstruct` gives ``x`` back."""
    pyramid, current = [], x
    for _ in range(levels):
        smaller = pyramid_down(current)
        pyramid.append(current - pyramid_up(smaller, current.shape[-2:]))
        current = smaller
    return pyramid + [current]


def reconstruct(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """Invert `laplacian_pyramid`: upsample the base and add each detail level, coarsest first."""
    image = pyramid[-1]
    for detail in reversed(pyramid[:-1]):
        image = detail + pyramid_up(image, detail.shape[-2:])
    return image


def laplacian_fusion(ir: torch.Tensor, vis: torch.Tensor, levels: int = 3, base_weight: float = 0.5) -> torch.Tensor:
    """Fuse band by band: each detail coefficient from the source whose |coefficient| is larger (the sharper
    edge wins), the base as base_weight·IR + (1 − base_weight)·VIS; then reconstruct (…×H×W, clamped to 0–255)."""
    _check_pair(ir, vis)
    _check_weight(base_weight, "base_weight")
    if min(ir.shape[-2:]) < 2 ** levels:
        raise ValueError(f"{levels} levels need images of at least {2 ** levels} px: use fewer levels")
    a, b = laplacian_pyramid(ir.double(), levels), laplacian_pyramid(vis.double(), levels)
    fused = [torch.where(da.abs() >= db.abs(), da, db) for da, db in zip(a[:-1], b[:-1])]
    image = reconstruct(fused + [base_weight * a[-1] + (1 - base_weight) * b[-1]])
    return image.clamp(0, 255).to(ir.dtype)  # details chosen from different sources can overshoot the range


def gradient_fusion(ir: torch.Tensor, vis: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """Per-pixel weights from local edge energy: w = G_σ(|∇IR|) / (G_σ(|∇IR|) + G_σ(|∇VIS|)),
    F = w·IR + (1 − w)·VIS (…×H×W). Where neither source has edges, w = ½."""
    _check_pair(ir, vis)
    energy_ir = gaussian_blur(gradient_magnitude(ir.double()), sigma)
    energy_vis = gaussian_blur(gradient_magnitude(vis.double()), sigma)
    total = energy_ir + energy_vis
    w = torch.where(total > EPS, energy_ir / total.clamp(min=EPS), 0.5)
    return (w * ir + (1 - w) * vis).to(ir.dtype)


def fuse(ir: torch.Tensor, vis: torch.Tensor, method: str, weight: float = 0.5) -> torch.Tensor:
    """One classical fusion by name (`METHODS`) of two grey images (…×H×W, 0–255, float).

    ``weight`` is the infrared share where a method has one: "weighted" (every pixel) and "laplacian" (its base
    band); "average" is "weighted" at ½, and "max" and "gradient" choose their weights from the images.
    """
    if method == "average":
        return weighted(ir, vis, 0.5)
    if method == "max":
        return maximum(ir, vis)
    if method == "weighted":
        return weighted(ir, vis, weight)
    if method == "laplacian":
        return laplacian_fusion(ir, vis, base_weight=weight)
    if method == "gradient":
        return gradient_fusion(ir, vis)
    raise ValueError(f"method must be one of {METHODS}, not {method!r}")


def colour_fusion(ir: torch.Tensor, rgb: torch.Tensor, fused_luminance) -> torch.Tensor:
    """Fuse in YCbCr: replace the visible Y by ``fused_luminance(ir, Y)``, keep Cb and Cr, back to RGB.

    ``ir`` …×1×H×W and ``rgb`` …×3×H×W on 0–255 → RGB …×3×H×W clamped to 0–255 (float). Fusing R, G and B
    separately with the grey infrared would wash the colours out; in YCbCr the colour is left alone.
    """
    ycbcr = rgb_to_ycbcr(rgb.double())
    y = fused_luminance(ir.double(), ycbcr[..., :1, :, :]).clamp(0, 255)
    return ycbcr_to_rgb(torch.cat([y, ycbcr[..., 1:, :, :]], -3)).clamp(0, 255)


def pansharpen(multispectral: torch.Tensor, panchromatic: torch.Tensor) -> torch.Tensor:
    """Pan-sharpening by component substitution (the IHS idea in YCbCr): replace the luminance of the upsampled
    multispectral image (…×3×H×W) by the panchromatic band (…×1×H×W), first matched to that luminance's mean and
    standard deviation so the colours keep their brightness → RGB …×3×H×W on 0–255 (clamped)."""
    ycbcr = rgb_to_ycbcr(multispectral.double())
    y, pan = ycbcr[..., :1, :, :], panchromatic.double()
    dims = (-3, -2, -1)
    matched = ((pan - pan.mean(dims, keepdim=True)) / pan.std(dims, keepdim=True).clamp(min=EPS)
               * y.std(dims, keepdim=True) + y.mean(dims, keepdim=True))
    return ycbcr_to_rgb(torch.cat([matched, ycbcr[..., 1:, :, :]], -3)).clamp(0, 255)


# ---------------------------------------------------------------------------------------------- metrics
def _as_image(x, name: str) -> torch.Tensor:
    """An H×W NumPy array or tensor (uint8, or float on 0–255) → float64 tensor; anything else → ValueError."""
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x.detach().cpu())
    floating = x.is_floating_point()
    if x.ndim != 2:
        raise ValueError(f"{name} must be one H×W grey image, got shape {tuple(x.shape)}: pass image[0] for a "
                         "1×H×W tensor, and the Y channel (rgb_to_ycbcr) for a colour image")
    x = x.double()
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    low, high = x.min().item(), x.max().item()
    if floating and 0 < high <= UNIT_RANGE_CEILING:  # EN, PSNR and Qabf would be silently wrong on this scale
        raise ValueError(f"{name} is a float image with values in [{low:.3g}, {high:.3g}]: an image in [0, 1] (a "
                         f"resize may overshoot 1 a little), but the metrics read the 0–255 scale: pass {name} * 255, "
                         "clamped with .clamp(0, 255) if a resize overshot (a 0–255 image this dark: pass it as uint8)")
    if low < -1e-3 or high > 255 + 1e-3:   # a tolerance for float round-off (x / 255 * 255)
        raise ValueError(f"{name} has values in [{low:.3g}, {high:.3g}], outside the 0–255 scale the metrics read: "
                         f"pass {name}.clamp(0, 255) if a resize overshot, or rescale it to 0–255")
    return x.clamp(0, 255)


def _levels(x: torch.Tensor) -> torch.Tensor:
    """Grey levels 0–255 as integers (floats are rounded): the bins of EN and MI."""
    return x.round().long()


def entropy(x: torch.Tensor) -> float:
    """EN = −Σ_l p_l log₂ p_l over the 256-bin histogram, in bits (0 for a flat image, 8 at most)."""
    p = torch.bincount(_levels(x).flatten(), minlength=256).double() / x.numel()
    p = p[p > 0]
    return float(-(p * p.log2()).sum())


def mutual_information(a: torch.Tensor, b: torch.Tensor) -> float:
    """MI(A, B) = Σ p(a, b) log₂ p(a, b) / (p(a) p(b)) from the joint 256×256 histogram, in bits; MI(A, A) = EN(A)."""
    joint = torch.bincount((_levels(a) * 256 + _levels(b)).flatten(), minlength=256 * 256).double()
    joint = (joint / a.numel()).view(256, 256)
    outer = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)
    seen = joint > 0
    return float((joint[seen] * (joint[seen] / outer[seen]).log2()).sum())


def standard_deviation(x: torch.Tensor) -> float:
    """SD = √(mean (x − μ)²): global contrast (population form, divided by H·W)."""
    return float(((x - x.mean()) ** 2).mean().sqrt())


def spatial_frequency(x: torch.Tensor) -> float:
    """SF = √(RF² + CF²), RF² = mean of squared differences between horizontal neighbours, CF² vertical ones."""
    row = (x[:, 1:] - x[:, :-1]).pow(2).mean()
    column = (x[1:, :] - x[:-1, :]).pow(2).mean()
    return float((row + column).sqrt())


def average_gradient(x: torch.Tensor) -> float:
    """AG = mean over pixels of √((Δx² + Δy²) / 2), forward differences on the (H−1)×(W−1) grid."""
    dx = x[:-1, 1:] - x[:-1, :-1]
    dy = x[1:, :-1] - x[:-1, :-1]
    return float(((dx ** 2 + dy ** 2) / 2).sqrt().mean())


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """Mean SSIM of image pairs (N×1×H×W, float) → N, differentiable (also a loss).

    SSIM = (2μ_xμ_y + C₁)(2σ_xy + C₂) / ((μ_x² + μ_y² + C₁)(σ_x² + σ_y² + C₂)), C₁ = (0.01 L)², C₂ = (0.03 L)²,
    local statistics under an 11-tap Gaussian window (σ = 1.5) on reflect-padded images, averaged over all
    H×W positions — the settings and border handling of `torchmetrics` (≥ 1.5). ``data_range`` is the span of
    the pixel scale: 255 for images on 0–255, 1.0 for images in [0, 1].
    """
    _check_ssim_pair(x, y)
    if isinstance(data_range, bool) or not isinstance(data_range, numbers.Real) or not 0 < data_range < math.inf:
        raise ValueError(f"data_range must be the span of the pixel scale, 255.0 or 1.0, not {data_range!r}")
    if data_range > 1 and 0 < max(x.max(), y.max()) <= UNIT_RANGE_CEILING:  # 255 with [0, 1] images: SSIM ≈ 1
        raise ValueError(f"the images lie in [0, 1] (up to {max(x.max(), y.max()).item():.3g}: a resize may overshoot "
                         f"1 a little) but data_range={data_range}: pass data_range=1.0")
    return _ssim(x, y, data_range)


def _check_ssim_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape != y.shape:
        raise ValueError(f"ssim takes two N×1×H×W batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}: "
                         "for one H×W image pass image[None, None]")
    if min(x.shape[-2:]) < 6 or not x.is_floating_point() or not y.is_floating_point():
        raise ValueError(f"ssim needs float images of at least 6×6 pixels, got {x.dtype} {tuple(x.shape[-2:])}")


def _ssim(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    """`ssim` of checked images whose scale is known."""
    window = gaussian_kernel(1.5, 11)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    stats = _separable(torch.cat([x, y, x * x, y * y, x * y]), window).split(len(x))
    mu_x, mu_y, xx, yy, xy = stats
    var_x = (xx - mu_x ** 2).clamp(min=0)
    var_y = (yy - mu_y ** 2).clamp(min=0)
    cov = xy - mu_x * mu_y
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return index.flatten(1).mean(1)


# Xydeas–Petrović (2000) constants: sigmoids that map edge-strength and orientation agreement to [0, 1]
QABF_STRENGTH = (0.9994, -15.0, 0.5)        # Γ_g, κ_g, σ_g
QABF_ORIENTATION = (0.9879, -22.0, 0.8)     # Γ_α, κ_α, σ_α


def _edges(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel edge strength g and orientation α = atan(gy / gx) (π/2 where gx = 0)."""
    gx, gy = sobel(x)
    angle = torch.where(gx == 0, torch.full_like(gx, math.pi / 2), torch.atan(gy / torch.where(gx == 0, 1.0, gx)))
    return torch.sqrt(gx ** 2 + gy ** 2), angle


def _edge_preservation(g_source, a_source, g_fused, a_fused) -> torch.Tensor:
    """Q^{SF}: how much of a source's edge strength and orientation survives in the fused image, per pixel."""
    strength = torch.where((g_source == 0) | (g_fused == 0), 0.0,
                           torch.minimum(g_source, g_fused) / torch.maximum(g_source, g_fused).clamp(min=EPS))
    orientation = 1 - (a_source - a_fused).abs() / (math.pi / 2)
    (t_g, k_g, s_g), (t_a, k_a, s_a) = QABF_STRENGTH, QABF_ORIENTATION
    return t_g / (1 + torch.exp(k_g * (strength - s_g))) * t_a / (1 + torch.exp(k_a * (orientation - s_a)))


def qabf(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float:
    """Q^{AB/F} (Xydeas & Petrović, 2000): edge information transferred from A and B into F, weighted by each
    source's edge strength: Σ(Q^{AF} g_A + Q^{BF} g_B) / Σ(g_A + g_B), in [0, 1) (≈ 0.975 for a perfect transfer,
    0 when neither source has an edge)."""
    g_f, a_f = _edges(fused)
    g_a, a_a = _edges(a)
    g_b, a_b = _edges(b)
    total = (g_a + g_b).sum()
    if total == 0:
        return 0.0
    transferred = _edge_preservation(g_a, a_a, g_f, a_f) * g_a + _edge_preservation(g_b, a_b, g_f, a_f) * g_b
    return float(transferred.sum() / total)


def fusion_metrics(fused, ir, vis) -> dict[str, float]:
    """Every fusion metric of one fused image against its two sources (H×W each, NumPy or torch, uint8 or float
    on 0–255) → dict with `METRICS`:

    EN, SD, SF, AG of the fused image alone; MI and SSIM summed over the two sources; MSE the mean of the two
    MSEs, PSNR = 10 log₁₀(255² / MSE) (inf when both MSEs are 0), NRMSE = √MSE / 255 (so PSNR = −20 log₁₀ NRMSE);
    Qabf as Xydeas–Petrović. Formulas in each function's docstring.
    """
    f, a, b = _as_image(fused, "fused"), _as_image(ir, "ir"), _as_image(vis, "vis")
    if not f.shape == a.shape == b.shape:
        raise ValueError(f"fused, ir and vis must have one shape, got {tuple(f.shape)}, {tuple(a.shape)}, "
                         f"{tuple(b.shape)}: register and resize the sources first")
    mse = float(((f - a) ** 2).mean() + ((f - b) ** 2).mean()) / 2
    fused_twice, sources = torch.stack([f, f])[:, None], torch.stack([a, b])[:, None]
    _check_ssim_pair(fused_twice, sources)
    pairs = _ssim(fused_twice, sources, 255.0)   # the scale is known: _as_image checked it
    return {"EN": entropy(f), "SD": standard_deviation(f), "SF": spatial_frequency(f), "AG": average_gradient(f),
            "MI": mutual_information(f, a) + mutual_information(f, b), "SSIM": float(pairs.sum()),
            "PSNR": 10 * math.log10(255 ** 2 / mse) if mse > 0 else math.inf, "Qabf": qabf(f, a, b),
            "MSE": mse, "NRMSE": math.sqrt(mse) / 255}


# --------------------------------------------------------------------------------------------- registration
def edge_map(image: torch.Tensor, sigma: float = 1.5) -> np.ndarray:
    """The representation registration compares: |∇(G_σ * image)|, float32 H×W. Infrared and visible disagree on
    *intensities* (a bag is bright in one, dark in the other) but agree on *where* the outlines are."""
    x = image.squeeze().double()
    return gradient_magnitude(gaussian_blur(x, sigma)).float().numpy()


def register_ecc(moving: torch.Tensor, fixed: torch.Tensor, representation: str = "edges", levels: int = 2,
                 iterations: int = 200) -> tuple[torch.Tensor, bool]:
    """Estimate the affine M with moving(M·p) ≈ fixed(p) by OpenCV's ECC (enhanced correlation coefficient)
    → (M float32 2×3, converged). ``warp_affine(moving, M, inverse=True)`` then aligns ``moving`` to ``fixed``.

    ``representation``: "edges" compares `edge_map`s (two sensors share outlines, not intensities), "intensity"
    the raw images (ECC is invariant to a positive gain and an offset only). Coarse to fine: ECC is a local
    optimiser, so it first runs on ``levels`` times halved images (shifts shrink with them), each result
    seeding the next finer level. When ECC fails at a level, the estimate so far is kept and ``converged`` is False.
    """
    if representation == "edges":
        maps = [edge_map(fixed), edge_map(moving)]
    elif representation == "intensity":
        maps = [x.squeeze().float().numpy() for x in (fixed, moving)]
    else:
        raise ValueError(f"representation must be 'edges' or 'intensity', not {representation!r}")
    pyramids = [[torch.from_numpy(m)] for m in maps]
    for _ in range(levels):
        for pyramid in pyramids:
            pyramid.append(pyramid_down(pyramid[-1]))
    warp, converged = np.eye(2, 3, dtype=np.float32), True
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-6)
    for level in range(levels, -1, -1):
        scaled = warp.copy()
        scaled[:, 2] /= 2 ** level                                  # a shift of s px is s / 2^level px there
        try:
            _, scaled = cv2.findTransformECC(pyramids[0][level].numpy(), pyramids[1][level].numpy(), scaled,
                                             cv2.MOTION_AFFINE, criteria, None, 5)
        except cv2.error:  # the correlation cannot improve (no shared structure): keep the estimate so far
            converged = False
            continue
        warp = scaled.copy()
        warp[:, 2] *= 2 ** level
    return torch.from_numpy(warp), converged


def corner_error(estimated: torch.Tensor, true: torch.Tensor, size: int) -> float:
    """Mean distance in px between where two 2×3 affines send the image's four corners."""
    corners = torch.tensor([[0.0, 0.0, 1.0], [size - 1, 0.0, 1.0], [0.0, size - 1, 1.0], [size - 1, size - 1, 1.0]])
    return float((corners @ estimated.double().T.float() - corners @ true.float().T).norm(dim=1).mean())


# ---------------------------------------------------------------------------------------------- explorer
def render_fusion(infrared: torch.Tensor, visible: torch.Tensor, scene: int = 0, method: str = "laplacian",
                  weight: float = 0.5, learned: dict | None = None, conditions=None,
                  weighted: tuple[str, ...] = WEIGHTED_METHODS):
    """The fusion explorer's figure for one scene: infrared, visible, the fused colour image, |F − IR|, |F − VIS|
    (with their scales), and the row of fusion metrics.

    ``infrared`` N×1×H×W and ``visible`` N×3×H×W (uint8 or float on 0–255); ``method`` one of `METHODS` or a key
    of ``learned``, a dict of name → ``fn(ir, y, weight)`` on …×1×H×W floats on 0–255 returning the fused Y.
    ``conditions`` (optional, N names such as "low_light") puts the scene's condition in the title; ``weighted``
    names the methods that use ``weight`` (the title shows it only for them).
    """
    import matplotlib.pyplot as plt

    from .plotting import colorbar

    learned = learned or {}
    if not 0 <= scene < len(infrared):
        raise ValueError(f"scene must be between 0 and {len(infrared) - 1}, not {scene}")
    if method not in METHODS and method not in learned:
        raise ValueError(f"method must be one of {METHODS + tuple(learned)}, not {method!r}")
    if conditions is not None and len(conditions) != len(infrared):
        raise ValueError(f"conditions must name one condition per scene ({len(infrared)}), got {len(conditions)}")
    _check_weight(weight)
    ir = infrared[scene].double()
    rgb = visible[scene].double()
    if method in learned:
        rule = lambda a, y: learned[method](a, y, weight)  # noqa: E731
    else:
        rule = lambda a, y: fuse(a, y, method, weight)  # noqa: E731
    fused_rgb = colour_fusion(ir, rgb, rule)
    fused_y, vis_y = rgb_to_ycbcr(fused_rgb)[0], rgb_to_ycbcr(rgb)[0]
    metrics = fusion_metrics(fused_y.clamp(0, 255), ir[0], vis_y)

    fig = plt.figure(figsize=(10, 3.9), layout="constrained")
    images, table_area = fig.subfigures(2, 1, height_ratios=[1, 0.22])
    axes = images.subplots(1, 5)
    panels = [(ir[0], "infrared", "inferno"), (rgb, "visible", None), (fused_rgb, f"fused: {method}", None),
              ((fused_y - ir[0]).abs(), "|F − IR|", "magma"), ((fused_y - vis_y).abs(), "|F − VIS|", "magma")]
    for ax, (image, title, cmap) in zip(axes, panels):
        if image.ndim == 3:
            ax.imshow(image.permute(1, 2, 0).numpy() / 255)
        else:  # differences on half the range, one scale for every method so that they can be compared
            drawn = ax.imshow(image.numpy(), cmap=cmap, vmin=0, vmax=255 if cmap == "inferno" else 128)
            if cmap == "inferno":
                colorbar(drawn, ax, "IR level (0–255)")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    colorbar(drawn, list(axes[3:]), "|difference| (grey levels)")
    table = table_area.subplots()
    table.axis("off")
    shown = ("EN", "SD", "SF", "AG", "MI", "SSIM", "PSNR", "Qabf")
    summed = {"MI": "MI (sum)", "SSIM": "SSIM (sum)"}  # over the two sources, F–A + F–B: SSIM up to 2
    cells = table.table(cellText=[[f"{metrics[k]:.3f}" for k in shown]], colLabels=[summed.get(k, k) for k in shown],
                        loc="center", cellLoc="center")
    cells.auto_set_font_size(False)  # matplotlib would shrink every cell to fit the longest label
    cells.set_fontsize(9)
    cells.scale(1, 1.3)
    condition = f" ({conditions[scene].replace('_', ' ')})" if conditions is not None else ""
    fig.suptitle(f"scene {scene}{condition}: {method}" + (f", infrared weight {weight:.2f}" if method in weighted
                                                          else " (no weight: the slider does not apply)"),
                 fontsize=10)
    return fig
