"""Chapter 7's exercises (07_fusion) done wrong, the way learners do: each entry of `CATALOGUE` is (exercise,
mistaken function, the registered mistake its message must name)."""

import numpy as np
import torch
import torch.nn.functional as F


def spatial_frequency_over_every_pixel(image):
    height, width = image.shape
    row_frequency = ((image[:, 1:] - image[:, :-1]) ** 2).sum() / (height * width)
    column_frequency = ((image[1:, :] - image[:-1, :]) ** 2).sum() / (height * width)
    return float(torch.sqrt(row_frequency + column_frequency))


def spatial_frequency_sum_of_roots(image):
    rf = torch.sqrt(torch.mean(torch.diff(image, dim=1) ** 2))
    cf = torch.sqrt(torch.mean(torch.diff(image, dim=0) ** 2))
    return float(rf + cf)


def spatial_frequency_rolled(image):
    x = image.numpy()
    rf2 = np.mean((x - np.roll(x, 1, axis=1)) ** 2)
    cf2 = np.mean((x - np.roll(x, 1, axis=0)) ** 2)
    return float(np.sqrt(rf2 + cf2))


def _mutual_information(joint, log):
    joint = joint / joint.sum()
    p_a, p_b = joint.sum(axis=1), joint.sum(axis=0)
    total = 0.0
    for i, j in zip(*np.nonzero(joint)):
        total += joint[i, j] * log(joint[i, j] / (p_a[i] * p_b[j]))
    return total


def mutual_information_in_nats(a, b):
    joint = np.zeros((256, 256))
    np.add.at(joint, (a.round().long().numpy().ravel(), b.round().long().numpy().ravel()), 1)
    return _mutual_information(joint, np.log)


def mutual_information_truncated(a, b):
    joint = np.zeros((256, 256))
    np.add.at(joint, (a.long().numpy().ravel(), b.long().numpy().ravel()), 1)       # forgot .round()
    return _mutual_information(joint, np.log2)


def mutual_information_histogram2d(a, b):
    joint, _, _ = np.histogram2d(a.numpy().ravel(), b.numpy().ravel(), bins=256)
    return _mutual_information(joint, np.log2)


def mutual_information_every_bin(a, b):
    joint = torch.zeros(256, 256, dtype=torch.float64)
    joint.index_put_((a.round().long().flatten(), b.round().long().flatten()), torch.ones(a.numel()).double(),
                     accumulate=True)
    joint = joint / a.numel()
    return float((joint * torch.log2(joint / (joint.sum(1)[:, None] * joint.sum(0)[None]))).sum())


KERNEL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64) / 16


def _filter(x, kernel, mode="reflect"):
    images = x.reshape(-1, 1, x.shape[-2], x.shape[-1])
    if mode == "zeros":
        out = F.conv2d(F.conv2d(images, kernel.view(1, 1, 1, 5), padding=(0, 2)), kernel.view(1, 1, 5, 1),
                       padding=(2, 0))
    else:
        padded = F.pad(images, (2, 2, 2, 2), mode=mode)
        out = F.conv2d(F.conv2d(padded, kernel.view(1, 1, 1, 5)), kernel.view(1, 1, 5, 1))
    return out.reshape(x.shape)


def _down(x, mode="reflect"):
    return _filter(x, KERNEL, mode)[..., ::2, ::2]


def _up(x, size, mode="reflect", gain=2):
    bigger = torch.zeros(*x.shape[:-2], *size, dtype=x.dtype)
    bigger[..., ::2, ::2] = x
    return _filter(bigger, gain * KERNEL, mode)


def _pyramid(x, levels, down, up):
    details = []
    for _ in range(levels):
        smaller = down(x)
        details.append(x - up(smaller, x.shape[-2:]))
        x = smaller
    return details, x


def _by_magnitude(d_ir, d_vis):
    return torch.where(d_ir.abs() >= d_vis.abs(), d_ir, d_vis)


def _fuse(ir, vis, levels, base_weight, choose=_by_magnitude, down=_down, up=_up, clamp=True):
    details_ir, base_ir = _pyramid(ir, levels, down, up)
    details_vis, base_vis = _pyramid(vis, levels, down, up)
    image = base_weight * base_ir + (1 - base_weight) * base_vis
    for d_ir, d_vis in reversed(list(zip(details_ir, details_vis))):
        image = choose(d_ir, d_vis) + up(image, d_ir.shape[-2:])
    return image.clamp(0, 255) if clamp else image


def laplacian_fusion_signed_max(ir, vis, levels, base_weight):
    return _fuse(ir, vis, levels, base_weight, lambda d_ir, d_vis: torch.where(d_ir > d_vis, d_ir, d_vis))


def laplacian_fusion_averaged_details(ir, vis, levels, base_weight):
    return _fuse(ir, vis, levels, base_weight, lambda d_ir, d_vis: 0.5 * d_ir + 0.5 * d_vis)


def laplacian_fusion_unclamped(ir, vis, levels, base_weight):
    return _fuse(ir, vis, levels, base_weight, clamp=False)


def laplacian_fusion_visible_wins_ties(ir, vis, levels, base_weight):
    return _fuse(ir, vis, levels, base_weight, lambda d_ir, d_vis: torch.where(d_vis.abs() >= d_ir.abs(), d_vis, d_ir))


def laplacian_fusion_weight_on_the_visible(ir, vis, levels, base_weight):
    details_ir, base_ir = _pyramid(ir, levels, _down, _up)
    details_vis, base_vis = _pyramid(vis, levels, _down, _up)
    image = base_weight * base_vis + (1 - base_weight) * base_ir
    for d_ir, d_vis in zip(details_ir[::-1], details_vis[::-1]):
        image = torch.where(d_ir.abs() >= d_vis.abs(), d_ir, d_vis) + _up(image, d_ir.shape[-2:])
    return torch.clamp(image, 0, 255)


def laplacian_fusion_zero_padded(ir, vis, levels, base_weight):
    return _fuse(ir, vis, levels, base_weight, down=lambda x: _down(x, "zeros"),
                 up=lambda x, size: _up(x, size, "zeros"))


def laplacian_fusion_up_without_gain(ir, vis, levels, base_weight):
    return _fuse(ir, vis, levels, base_weight, up=lambda x, size: _up(x, size, gain=1))


CATALOGUE = [
    ("spatial_frequency", spatial_frequency_over_every_pixel, "divided by H·W"),
    ("spatial_frequency", spatial_frequency_sum_of_roots, "RF + CF"),
    ("spatial_frequency", spatial_frequency_rolled, "wrap-around differences"),
    ("mutual_information", mutual_information_in_nats, "natural log"),
    ("mutual_information", mutual_information_truncated, "levels truncated"),
    ("mutual_information", mutual_information_histogram2d, "bins over each image's range"),
    ("mutual_information", mutual_information_every_bin, "0·log 0 not skipped"),
    ("laplacian_fusion", laplacian_fusion_signed_max, "larger signed coefficient"),
    ("laplacian_fusion", laplacian_fusion_averaged_details, "details averaged"),
    ("laplacian_fusion", laplacian_fusion_unclamped, "not clamped"),
    ("laplacian_fusion", laplacian_fusion_weight_on_the_visible, "base weight on the visible"),
    ("laplacian_fusion", laplacian_fusion_visible_wins_ties, "ties to the visible"),
    ("laplacian_fusion", laplacian_fusion_zero_padded, "zero padding"),
    ("laplacian_fusion", laplacian_fusion_up_without_gain, "upsampling without the ×4"),
]
