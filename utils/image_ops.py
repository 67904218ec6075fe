"""Generic image operations used by several chapters: filters, colour, pyramids, warps and SSIM.

Each is first taught in Chapter 7 (07_fusion), in the section named below. They live apart from `utils.fusion`
so that a module needing a blur, a warp or SSIM — the scene renderer `utils.fusion_scenes`, the fusion losses of
`utils.models.fusion` — does not import the fusion methods:

- **filters** (section 3, edges): `gaussian_blur`, `sobel`, `gradient_magnitude`, `laplacian`;
- **colour** (section 2): `rgb_to_ycbcr`, `ycbcr_to_rgb` (BT.601 full range, as JPEG), `luminance`;
- **pyramids** (section 5, and the coarse-to-fine registration of section 9): `pyramid_down`, `pyramid_up`
  (= OpenCV's ``pyrDown``/``pyrUp``), `laplacian_pyramid` and its exact inverse `reconstruct`;
- **warps** (section 9): `warp_affine` (OpenCV's convention: out(M·p) = image(p));
- **SSIM** (section 4, a metric, and sections 6–7, a loss): `ssim`, equal to `torchmetrics`'.

Images are float tensors shaped ``…×H×W`` on the 0–255 scale unless a docstring says otherwise.
"""

from __future__ import annotations

import math
import numbers

import cv2
import numpy as np
import torch
import torch.nn.functional as F

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


# ------------------------------------------------------------------------------------------------ pyramids
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


# --------------------------------------------------------------------------------------------------- warps
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


# ---------------------------------------------------------------------------------------------------- SSIM
def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0, *, scale_checked: bool = False) -> torch.Tensor:
    """Mean SSIM of image pairs (N×1×H×W, float) → N, differentiable (also a loss).

    SSIM = (2μ_xμ_y + C₁)(2σ_xy + C₂) / ((μ_x² + μ_y² + C₁)(σ_x² + σ_y² + C₂)), C₁ = (0.01 L)², C₂ = (0.03 L)²,
    local statistics under an 11-tap Gaussian window (σ = 1.5) on reflect-padded images, averaged over all
    H×W positions — the settings and border handling of `torchmetrics` (≥ 1.5). ``data_range`` is the span of
    the pixel scale: 255 for images on 0–255, 1.0 for images in [0, 1]. Images in [0, 1] with ``data_range`` 255
    are refused, unless ``scale_checked`` says the caller has checked the scale itself (`utils.fusion.fusion_metrics`
    does: a dark 0–255 uint8 image can look like one in [0, 1]).
    """
    if x.ndim != 4 or x.shape != y.shape:
        raise ValueError(f"ssim takes two N×1×H×W batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}: "
                         "for one H×W image pass image[None, None]")
    if min(x.shape[-2:]) < 6 or not x.is_floating_point() or not y.is_floating_point():
        raise ValueError(f"ssim needs float images of at least 6×6 pixels, got {x.dtype} {tuple(x.shape[-2:])}")
    if isinstance(data_range, bool) or not isinstance(data_range, numbers.Real) or not 0 < data_range < math.inf:
        raise ValueError(f"data_range must be the span of the pixel scale, 255.0 or 1.0, not {data_range!r}")
    if not scale_checked and data_range > 1 and 0 < max(x.max(), y.max()) <= UNIT_RANGE_CEILING:  # SSIM ≈ 1
        raise ValueError(f"the images lie in [0, 1] (up to {max(x.max(), y.max()).item():.3g}: a resize may overshoot "
                         f"1 a little) but data_range={data_range}: pass data_range=1.0")
    window = gaussian_kernel(1.5, 11)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    stats = _separable(torch.cat([x, y, x * x, y * y, x * y]), window).split(len(x))
    mu_x, mu_y, xx, yy, xy = stats
    var_x = (xx - mu_x ** 2).clamp(min=0)
    var_y = (yy - mu_y ** 2).clamp(min=0)
    cov = xy - mu_x * mu_y
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return index.flatten(1).mean(1)
