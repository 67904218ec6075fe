"""Infrared–visible image fusion: classical fusion, the fusion metrics, registration, and their figures.

Introduced in Chapter 7 (07_fusion). The paired scenes it fuses are rendered by `utils.fusion_scenes`; the image
operations it builds on (filters, YCbCr, pyramids, warps, SSIM) are in `utils.image_ops`; the learned fusion
networks and their losses in `utils.models.fusion`.

- **classical fusion** of two grey images: `fuse(ir, vis, method, weight)` with a method of `METHODS` (average,
  max, weighted, Laplacian pyramid, gradient-weighted); `colour_fusion` fuses the visible luminance and keeps the
  colour (YCbCr); `pansharpen` is component substitution for remote sensing;
- **metrics without a reference**: `fusion_metrics(fused, ir, vis)` → every metric of `METRICS` (EN, SD, SF, AG,
  MI, SSIM, PSNR, Q^AB/F, MSE, NRMSE), each also a function of its own;
- **registration**: `register_ecc` estimates the affine between two cameras (ECC on edge maps, coarse to fine),
  `corner_error` scores an estimate;
- **figures**: `render_classical_fusion` (every method on a few scenes) and `render_fusion` (the explorer's).

Every image function takes float tensors on the 0–255 scale with shape ``…×H×W`` unless a name says otherwise;
``fusion_metrics`` also takes NumPy arrays and uint8.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from .image_ops import (UNIT_RANGE_CEILING, gaussian_blur, gradient_magnitude, laplacian_pyramid, pyramid_down,
                        reconstruct, rgb_to_ycbcr, sobel, ssim, ycbcr_to_rgb)

METHODS = ("average", "max", "weighted", "laplacian", "gradient")
WEIGHTED_METHODS = ("weighted", "laplacian")  # the methods of METHODS that use an infrared weight
METRICS = ("EN", "SD", "SF", "AG", "MI", "SSIM", "PSNR", "Qabf", "MSE", "NRMSE")
EPS = 1e-12


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


def laplacian_fusion(ir: torch.Tensor, vis: torch.Tensor, levels: int = 3, base_weight: float = 0.5) -> torch.Tensor:
    """Fuse band by band: each detail coefficient from the source whose |coefficient| is larger (the sharper
    edge wins), the base as base_weight·IR + (1 − base_weight)·VIS; then reconstruct (…×H×W, clamped to 0–255)."""
    _check_pair(ir, vis)
    _check_weight(base_weight, "base_weight")
    if min(ir.shape[-2:]) <= 2 ** levels:  # the last halving needs 3 px or more (its reflected border is 2 px)
        raise ValueError(f"{levels} levels need images larger than {2 ** levels} px: use fewer levels")
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
    pairs = ssim(fused_twice, sources, 255.0, scale_checked=True)   # _as_image checked each image's scale
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


# ------------------------------------------------------------------------------------------------ figures
def render_classical_fusion(infrared: torch.Tensor, visible: torch.Tensor, conditions):
    """Every classical method on a few scenes, one row each: the visible image, the infrared one, then the colour
    fusion (`colour_fusion`) of each method of `METHODS` → matplotlib Figure.

    ``infrared`` N×1×H×W and ``visible`` N×3×H×W (uint8 or float on 0–255), ``conditions`` N names (such as
    "low_light") that title each row.
    """
    import matplotlib.pyplot as plt

    from .plotting import colorbar

    if infrared.ndim != 4 or infrared.shape[1] != 1 or visible.ndim != 4 or visible.shape[1] != 3:
        raise ValueError(f"infrared must be N×1×H×W and visible N×3×H×W, got {tuple(infrared.shape)} and "
                         f"{tuple(visible.shape)}: index the scenes with a list (scenes.infrared[[i, j]])")
    if infrared.shape[0] != visible.shape[0] or infrared.shape[2:] != visible.shape[2:] or len(infrared) == 0:
        raise ValueError(f"give the same scenes (at least one) in both: {tuple(infrared.shape)} vs "
                         f"{tuple(visible.shape)}")
    if len(conditions) != len(infrared):
        raise ValueError(f"conditions must name one condition per scene ({len(infrared)}), got {len(conditions)}")
    fig, axes = plt.subplots(len(infrared), 2 + len(METHODS), figsize=(15.5, 2.3 * len(infrared)),
                             layout="constrained", squeeze=False)
    for row, (ir, rgb, condition) in enumerate(zip(infrared.double(), visible.double(), conditions)):
        panels = [(rgb, "visible"), (ir, "infrared")]
        panels += [(colour_fusion(ir, rgb, lambda a, y, m=m: fuse(a, y, m)), m) for m in METHODS]
        for ax, (image, title) in zip(axes[row], panels):
            if image.shape[0] == 3:
                ax.imshow(image.permute(1, 2, 0).numpy() / 255)
            else:
                drawn = ax.imshow(image[0].numpy(), cmap="inferno", vmin=0, vmax=255)
            ax.set_title(f"{condition}: {title}" if ax is axes[row, 0] else title, fontsize=8)
            ax.axis("off")
    colorbar(drawn, axes, "infrared level (0–255)")
    fig.suptitle("Classical fusion of the luminance, colour restored from the visible Cb and Cr")
    return fig


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
