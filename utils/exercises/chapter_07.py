"""The exercises of Chapter 7 (07_fusion): their references, cases and known mistakes."""

import torch
import torch.nn.functional as F

from .. import fusion, image_ops
from .base import Exercise, Mistake


def _images(*shapes, seed):
    """Uniform grey images on 0–255 that are not whole numbers (so binning by rounding matters), float64."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(*shape, generator=generator, dtype=torch.float64) * 255 for shape in shapes]


# ------------------------------------------------------------------------------------- spatial frequency
def _spatial_frequency_cases():
    step = torch.cat([torch.zeros(3, 7), torch.full((3, 7), 200.0)]).double()        # one vertical step
    ramp = (torch.arange(6.0) * 10).repeat(4, 1).double()                               # 0 → 50 along a row
    return [tuple(_images((5, 8), seed=0)), tuple(_images((9, 4), seed=1)), (step,), (ramp,),
            tuple(_images((2, 2), seed=2))]


def _squared_differences(image):
    return (image[:, 1:] - image[:, :-1]).pow(2), (image[1:, :] - image[:-1, :]).pow(2)


def _spatial_frequency_over_all_pixels(image):
    horizontal, vertical = _squared_differences(image)
    return float(((horizontal.sum() + vertical.sum()) / image.numel()).sqrt())


def _spatial_frequency_sum_of_roots(image):
    horizontal, vertical = _squared_differences(image)
    return float(horizontal.mean().sqrt() + vertical.mean().sqrt())


def _spatial_frequency_wrapped(image):
    horizontal = (image - image.roll(1, 1)).pow(2).mean()
    vertical = (image - image.roll(1, 0)).pow(2).mean()
    return float((horizontal + vertical).sqrt())


def _spatial_frequency_squared(image):
    horizontal, vertical = _squared_differences(image)
    return float(horizontal.mean() + vertical.mean())


SPATIAL_FREQUENCY_MISTAKES = (
    Mistake("divided by H·W", _spatial_frequency_over_all_pixels,
            "the squared differences are averaged over all H·W pixels: average each direction over its own pairs, "
            "H·(W−1) horizontal and (H−1)·W vertical (.mean() of each difference image)"),
    Mistake("RF + CF", _spatial_frequency_sum_of_roots,
            "RF + CF is returned: SF is one square root of the sum, √(RF² + CF²)"),
    Mistake("wrap-around differences", _spatial_frequency_wrapped,
            "the differences wrap around (roll): the last column is compared with the first; slice instead, "
            "image[:, 1:] − image[:, :-1]"),
    Mistake("no square root", _spatial_frequency_squared,
            "RF² + CF² is returned: take its square root"),
)


# ------------------------------------------------------------------------------------ mutual information
def _mutual_information_cases():
    a, noise, small_a, small_b = _images((12, 10), (12, 10), (3, 5), (3, 5), seed=3)
    small_a[0, :3] = torch.tensor([0.4, 254.6, 127.5], dtype=torch.float64)       # the extreme levels, a half
    halves = torch.cat([torch.zeros(4, 8), torch.full((4, 8), 100.0)]).double()
    return [(a, 0.6 * a + 0.4 * noise), (a.clone(), a.clone()),            # MI(A, A) = EN(A)
            (a.clone(), torch.full_like(a, 3.7)),                           # a flat image tells nothing: 0
            (small_a, small_b), (halves, 255 - halves)]                     # inverted, still 1 bit shared


def _joint_histogram(a, b, levels_of=torch.round):
    levels_a, levels_b = levels_of(a).long().flatten(), levels_of(b).long().flatten()
    joint = torch.bincount(levels_a * 256 + levels_b, minlength=256 * 256).double().view(256, 256)
    return joint / levels_a.numel()


def _information(joint, log=torch.log2, skip_empty=True):
    independent = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)
    seen = joint > 0 if skip_empty else torch.ones_like(joint, dtype=torch.bool)
    return float((joint[seen] * log(joint[seen] / independent[seen])).sum())


def _mutual_information_in_nats(a, b):
    return _information(_joint_histogram(a, b), log=torch.log)


def _mutual_information_truncated(a, b):
    return _information(_joint_histogram(a, b, levels_of=torch.floor))


def _mutual_information_with_empty_bins(a, b):
    return _information(_joint_histogram(a, b), skip_empty=False)


def _mutual_information_on_each_images_range(a, b):
    """256 equal bins between each image's own minimum and maximum (np.histogram2d's default range)."""
    def bins(x):
        low, high = x.min(), x.max()
        if low == high:
            return torch.zeros_like(x)
        return ((x - low) / (high - low) * 256).floor().clamp(max=255)
    return _information(_joint_histogram(bins(a), bins(b), levels_of=lambda x: x))


MUTUAL_INFORMATION_MISTAKES = (
    Mistake("natural log", _mutual_information_in_nats,
            "the logarithm is natural (nats): MI of fusion papers is in bits, use .log2()"),
    Mistake("levels truncated", _mutual_information_truncated,
            "the grey levels are truncated (.long() or .int() alone floors 254.6 to 254): round them first, "
            ".round().long()"),
    Mistake("0·log 0 not skipped", _mutual_information_with_empty_bins,
            "the empty bins give 0·log 0 = nan: sum only over the bins with p(a, b) > 0"),
    Mistake("bins over each image's range", _mutual_information_on_each_images_range,
            "the 256 bins span each image's own minimum to maximum (np.histogram2d's or torch.histc's default): "
            "bin by grey level, 0–255, rounded"),
)


# ---------------------------------------------------------------------------------- Laplacian-pyramid fusion
def _laplacian_fusion_cases():
    ir, vis = _images((13, 17), (13, 17), seed=4)
    batch_ir, batch_vis = _images((2, 16, 16), (2, 16, 16), seed=5)
    one_ir, one_vis = _images((1, 9, 12), (1, 9, 12), seed=6)
    whole = _images((12, 12), seed=7)[0].round()
    # the visible is the inverted infrared: every detail coefficient has the same magnitude in both (a tie)
    return [(ir, vis, 2, 0.5), (batch_ir, batch_vis, 3, 0.3), (one_ir, one_vis, 3, 0.8),
            (whole, 255 - whole, 2, 0.5)]


def _larger_magnitude(ir_part, vis_part):
    return torch.where(ir_part.abs() >= vis_part.abs(), ir_part, vis_part)


def _pyramids_fused(ir, vis, levels, base_weight, detail_rule=None, base_rule=None, clamp=True, down=None, up=None):
    """Laplacian fusion with any of its parts replaced: the rule for the details and the base, the clamp, the
    pyramid's two steps."""
    down, up = down or image_ops.pyramid_down, up or image_ops.pyramid_up
    detail_rule = detail_rule or _larger_magnitude
    base_rule = base_rule or (lambda b_ir, b_vis: base_weight * b_ir + (1 - base_weight) * b_vis)
    details, ir_level, vis_level = [], ir, vis
    for _ in range(levels):
        ir_smaller, vis_smaller = down(ir_level), down(vis_level)
        details.append(detail_rule(ir_level - up(ir_smaller, ir_level.shape[-2:]),
                                   vis_level - up(vis_smaller, vis_level.shape[-2:])))
        ir_level, vis_level = ir_smaller, vis_smaller
    image = base_rule(ir_level, vis_level)
    for detail in reversed(details):
        image = detail + up(image, detail.shape[-2:])
    return image.clamp(0, 255) if clamp else image


def _base_weight_on_the_visible(ir, vis, levels, base_weight):
    return _pyramids_fused(ir, vis, levels, base_weight,
                           base_rule=lambda b_ir, b_vis: base_weight * b_vis + (1 - base_weight) * b_ir)


def _blur(x, kernel, padding):
    """``x`` (…×H×W) filtered by the 1-D ``kernel`` along rows and columns, its borders padded by F.pad's mode
    ``padding`` ("reflect" is OpenCV's BORDER_REFLECT_101, "constant" pads zeros)."""
    flat = F.pad(x.reshape(-1, 1, *x.shape[-2:]), (2, 2, 2, 2), mode=padding)
    flat = F.conv2d(F.conv2d(flat, kernel.to(x).view(1, 1, 1, 5)), kernel.to(x).view(1, 1, 5, 1))
    return flat.reshape(x.shape)


def _spread(x, size):
    """Zeros of ``size`` with ``x`` at the even rows and columns."""
    spread = x.new_zeros(*x.shape[:-2], *size)
    spread[..., ::2, ::2] = x
    return spread


def _zero_padded_down(x):
    return _blur(x, image_ops.BINOMIAL, "constant")[..., ::2, ::2]


def _zero_padded_up(x, size):
    return _blur(_spread(x, size), 2 * image_ops.BINOMIAL, "constant")


def _up_without_gain(x, size):
    return _blur(_spread(x, size), image_ops.BINOMIAL, "reflect")


LAPLACIAN_FUSION_MISTAKES = (
    Mistake("larger signed coefficient", lambda *args: _pyramids_fused(*args, detail_rule=torch.maximum),
            "the larger coefficient is kept, not the larger magnitude: a dark edge is a large negative coefficient, "
            "compare .abs()"),
    Mistake("details averaged", lambda *args: _pyramids_fused(*args, detail_rule=lambda a, b: (a + b) / 2),
            "the detail coefficients are averaged, which halves every edge only one source has: keep, per "
            "coefficient, the source's with the larger |coefficient|"),
    Mistake("base chosen by magnitude", lambda *args: _pyramids_fused(*args, base_rule=_larger_magnitude),
            "the base is chosen like the details: it holds the brightness, not edges — blend it, "
            "base_weight·IR + (1 − base_weight)·VIS"),
    Mistake("base weight on the visible", _base_weight_on_the_visible,
            "base_weight multiplies the visible base: it is the infrared share, "
            "base_weight·IR + (1 − base_weight)·VIS"),
    Mistake("not clamped", lambda *args: _pyramids_fused(*args, clamp=False),
            "the result is not clamped: details chosen from different sources overshoot 0–255, .clamp(0, 255)"),
    Mistake("ties to the visible", lambda *args: _pyramids_fused(
                *args, detail_rule=lambda a, b: torch.where(a.abs() > b.abs(), a, b)),
            "where |IR detail| = |VIS detail| the visible one is kept: ties go to the infrared (>=)"),
    Mistake("zero padding", lambda *args: _pyramids_fused(*args, down=_zero_padded_down, up=_zero_padded_up),
            "the blur pads the borders with zeros, which darkens them: reflect them, F.pad(…, mode=\"reflect\") "
            "(OpenCV's BORDER_REFLECT_101)"),
    Mistake("upsampling without the ×4", lambda *args: _pyramids_fused(*args, up=_up_without_gain),
            "up() blurs the spread-out samples with the plain binomial: three in four are zeros, so blur with twice "
            "the kernel along each axis (×4 in all), as cv2.pyrUp does"),
)


EXERCISES = [
    Exercise("spatial_frequency", "07_fusion", "easy", fusion.spatial_frequency, _spatial_frequency_cases,
             SPATIAL_FREQUENCY_MISTAKES, forbidden=("spatial_frequency", "fusion_metrics")),
    Exercise("mutual_information", "07_fusion", "medium", fusion.mutual_information, _mutual_information_cases,
             MUTUAL_INFORMATION_MISTAKES,
             forbidden=("mutual_information", "mutual_info_score", "normalized_mutual_info_score",
                        "adjusted_mutual_info_score", "MutualInfoScore", "entropy", "fusion_metrics")),
    Exercise("laplacian_fusion", "07_fusion", "hard", fusion.laplacian_fusion, _laplacian_fusion_cases,
             LAPLACIAN_FUSION_MISTAKES,
             forbidden=("laplacian_fusion", "fuse", "laplacian_pyramid", "reconstruct", "pyramid_down", "pyramid_up",
                        "pyrDown", "pyrUp", "buildPyramid")),
]
