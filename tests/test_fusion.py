"""Chapter 7: fusion metrics with known answers and against torchmetrics, YCbCr and pyramids against OpenCV,
the paired-scene renderer, classical fusion, registration, the fusion models and losses, bad input."""

import math

import cv2
import numpy as np
import pytest
import torch
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from utils import fusion as fu, image_ops as ops
from utils.fusion_scenes import (CLASS_WARMTH, TEMPERATURE_JITTER, _generate, calibration_target, fusion_scenes,
                                 random_affine, render_scene_pairs)
from utils.models import fusion as models
from utils.models.yolo import AnchorFreeDetector


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """Scenes are cached under a temporary data folder, never in the repository's data/."""
    monkeypatch.setattr("utils.scenes.data_dir", lambda: tmp_path)


def random_image(seed=0, size=48):
    return torch.rand(size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 255


# ------------------------------------------------------------------------------------------------ metrics
def test_entropy_known_answers():
    assert fu.entropy(torch.full((16, 16), 9.0)) == 0
    assert fu.entropy(torch.arange(256.0).view(16, 16)) == 8.0
    assert fu.entropy(torch.tensor([[0.0, 0.0, 255.0, 255.0]])) == 1.0
    assert fu.entropy(torch.tensor([[10.2, 9.8]])) == 0        # floats are binned by rounding


def test_mutual_information_known_answers():
    x = random_image(1).round()
    assert fu.mutual_information(x, x) == pytest.approx(fu.entropy(x), abs=1e-9)
    assert fu.mutual_information(x, torch.full_like(x, 3.0)) == pytest.approx(0, abs=1e-12)
    halves = torch.cat([torch.zeros(8, 16), torch.full((8, 16), 100.0)])
    assert fu.mutual_information(halves, 255 - halves) == pytest.approx(1.0)   # inverted: still 1 bit shared


def test_mutual_information_equals_numpys_joint_histogram():
    a = random_image(4)[:, :40]
    b = (0.7 * a + 0.3 * random_image(5)[:, :40]).clamp(0, 255)        # related, not whole grey levels
    joint, _, _ = np.histogram2d(a.round().numpy().ravel(), b.round().numpy().ravel(), bins=np.arange(257) - 0.5)
    p = joint / joint.sum()
    independent = p.sum(1, keepdims=True) * p.sum(0, keepdims=True)
    seen = p > 0
    assert fu.mutual_information(a, b) == pytest.approx(float((p[seen] * np.log2(p[seen] / independent[seen])).sum()))


def test_sd_sf_ag_known_answers():
    halves = torch.cat([torch.zeros(4, 4), torch.full((4, 4), 10.0)]).double()
    assert fu.standard_deviation(halves) == pytest.approx(5.0)
    # one vertical step of 10 in 7 row pairs, no horizontal change
    assert fu.spatial_frequency(halves) == pytest.approx(math.sqrt(100 / 7))
    ramp = torch.arange(8.0).repeat(8, 1).double() * 2                      # Δx = 2, Δy = 0
    assert fu.average_gradient(ramp) == pytest.approx(math.sqrt(4 / 2))


def test_ssim_equals_torchmetrics():
    a, b = random_image(2), ops.gaussian_blur(random_image(2), 1.0) + 5 * torch.randn(48, 48, dtype=torch.float64)
    b = b.clamp(0, 255)
    ours = ops.ssim(a[None, None], b[None, None]).item()
    theirs = StructuralSimilarityIndexMeasure(gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=255.0)
    assert ours == pytest.approx(theirs(a[None, None].float(), b[None, None].float()).item(), abs=1e-5)
    assert ops.ssim(a[None, None], a[None, None]).item() == pytest.approx(1.0)


def test_ssim_trusts_a_checked_scale():
    dark = torch.tensor([[0.0, 1.0], [2.0, 1.0]]).repeat(4, 4)[None, None]     # 0–255 levels that look like [0, 1]
    with pytest.raises(ValueError, match="data_range=1.0"):
        ops.ssim(dark, dark)
    assert ops.ssim(dark, dark, scale_checked=True).item() == pytest.approx(1.0)


def test_fusion_metrics_against_torchmetrics_and_known_answers():
    ir, vis = random_image(3), ops.gaussian_blur(random_image(4), 2.0)
    fused = (ir + vis) / 2
    m = fu.fusion_metrics(fused, ir, vis)
    assert set(fu.METRICS) <= set(m)
    ssim = StructuralSimilarityIndexMeasure(data_range=255.0)
    expected = sum(ssim(fused[None, None].float(), s[None, None].float()).item() for s in (ir, vis))
    assert m["SSIM"] == pytest.approx(expected, abs=1e-4)
    psnr = PeakSignalNoiseRatio(data_range=255.0)(torch.stack([fused, fused]).float(), torch.stack([ir, vis]).float())
    assert m["PSNR"] == pytest.approx(psnr.item(), abs=1e-3)
    assert m["MSE"] == pytest.approx(float(((fused - ir) ** 2).mean() + ((fused - vis) ** 2).mean()) / 2)
    assert m["PSNR"] == pytest.approx(-20 * math.log10(m["NRMSE"]))
    assert m["MI"] == pytest.approx(fu.mutual_information(fused, ir) + fu.mutual_information(fused, vis))
    same = fu.fusion_metrics(ir, ir, ir)
    assert same["SSIM"] == 2.0 and same["PSNR"] == math.inf and same["MI"] == pytest.approx(2 * fu.entropy(ir))


def test_fusion_metrics_accepts_numpy_uint8_and_tensors_alike():
    ir, vis = random_image(5).round(), random_image(6).round()
    fused = ((ir + vis) / 2).round()
    as_numpy = fu.fusion_metrics(*(x.numpy().astype(np.uint8) for x in (fused, ir, vis)))
    as_tensor = fu.fusion_metrics(fused.float(), ir.float(), vis.float())
    assert as_numpy == pytest.approx(as_tensor, rel=1e-6)


def test_qabf_known_answers():
    a = random_image(7)
    flat = torch.full_like(a, 50.0)
    (t_g, k_g, s_g), (t_a, k_a, s_a) = fu.QABF_STRENGTH, fu.QABF_ORIENTATION
    ceiling = t_g / (1 + math.exp(k_g * (1 - s_g))) * t_a / (1 + math.exp(k_a * (1 - s_a)))
    assert fu.qabf(a, a, flat) == pytest.approx(ceiling, abs=1e-9)          # F = A, B has no edges
    assert fu.qabf(flat, a, random_image(8)) < 1e-3                        # nothing transferred
    assert fu.qabf(flat, flat, flat) == 0                                   # no edges anywhere
    assert fu.qabf((a + random_image(8)) / 2, a, random_image(8)) < ceiling


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(3, 8, 8), "one H×W grey image"),
    (torch.full((8, 8), 300.0), "0–255 scale"),
    (torch.full((8, 8), float("nan")), "NaN"),
])
def test_fusion_metrics_rejects_bad_images(bad, message):
    with pytest.raises(ValueError, match=message):
        fu.fusion_metrics(bad, torch.zeros(8, 8), torch.zeros(8, 8))


def test_fusion_metrics_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        fu.fusion_metrics(torch.zeros(8, 8), torch.zeros(8, 9), torch.zeros(8, 8))


# -------------------------------------------------------------------------------------------- colour, edges
def test_ycbcr_matches_opencv_and_inverts():
    rgb = torch.randint(0, 256, (3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    ours = ops.rgb_to_ycbcr(rgb.double()).round().clamp(0, 255)
    theirs = torch.from_numpy(cv2.cvtColor(rgb.permute(1, 2, 0).numpy(), cv2.COLOR_RGB2YCrCb)).double()
    assert (ours[[0, 2, 1]].permute(1, 2, 0) - theirs).abs().max() <= 1
    torch.testing.assert_close(ops.ycbcr_to_rgb(ops.rgb_to_ycbcr(rgb.double())), rgb.double())
    grey = torch.full((3, 1, 1), 200.0, dtype=torch.float64)
    expected = torch.tensor([200.0, 128.0, 128.0], dtype=torch.float64)
    torch.testing.assert_close(ops.rgb_to_ycbcr(grey).flatten(), expected)
    assert ops.luminance(rgb[None]).shape == (1, 1, 16, 16) and ops.luminance(rgb[None]).dtype == torch.uint8
    with pytest.raises(ValueError, match="3×H×W"):
        ops.rgb_to_ycbcr(torch.zeros(1, 4, 4))


def test_sobel_and_laplacian_on_a_ramp():
    ramp = torch.arange(10.0).repeat(10, 1).double() * 2
    gx, gy = ops.sobel(ramp)
    assert (gx[:, 1:-1] == 16).all() and (gy == 0).all()
    assert (ops.laplacian(ramp)[:, 1:-1] == 0).all()
    assert (ops.gradient_magnitude(torch.full((6, 6), 4.0)) == 0).all()    # flat, also at the border


def test_pyramid_matches_opencv_and_reconstructs():
    x = random_image(9, 64)
    torch.testing.assert_close(ops.pyramid_down(x), torch.from_numpy(cv2.pyrDown(x.numpy())))
    small = ops.pyramid_down(x)
    torch.testing.assert_close(ops.pyramid_up(small, (64, 64)), torch.from_numpy(cv2.pyrUp(small.numpy())))
    pyramid = ops.laplacian_pyramid(x, 3)
    assert [p.shape[-1] for p in pyramid] == [64, 32, 16, 8]
    torch.testing.assert_close(ops.reconstruct(pyramid), x)


# -------------------------------------------------------------------------------------------- classical
def test_classical_fusion_properties():
    ir, vis = random_image(10), random_image(11)
    torch.testing.assert_close(fu.fuse(ir, vis, "average"), (ir + vis) / 2)
    assert torch.equal(fu.fuse(ir, vis, "weighted", 1.0), ir) and torch.equal(fu.fuse(ir, vis, "weighted", 0.0), vis)
    assert torch.equal(fu.fuse(ir, vis, "max"), torch.maximum(ir, vis))
    for method in fu.METHODS:
        out = fu.fuse(ir, vis, method)
        assert out.shape == ir.shape and 0 <= out.min() and out.max() <= 255
        torch.testing.assert_close(fu.fuse(ir, ir, method), ir)
    gradient = fu.fuse(ir, vis, "gradient")
    assert (gradient >= torch.minimum(ir, vis) - 1e-9).all() and (gradient <= torch.maximum(ir, vis) + 1e-9).all()
    # a sharp edge in one source, nothing in the other: the pyramid keeps more of the step than averaging
    edge = torch.cat([torch.zeros(32, 16), torch.full((32, 16), 200.0)], 1).double()
    flat = torch.full_like(edge, 100.0)
    step = lambda image: (image[:, 17] - image[:, 14]).mean()            # noqa: E731 — across the edge
    assert step(fu.fuse(edge, flat, "laplacian")) > 1.5 * step(fu.fuse(edge, flat, "average"))


def test_laplacian_fusion_equals_the_rule_on_opencvs_pyramid():
    """Each detail from the source with the larger |coefficient|, the bases blended, on cv2.pyrDown/pyrUp's pyramid
    (even sizes, where cv2.pyrUp doubles exactly)."""
    ir, vis = random_image(14, 48)[:, :32].numpy(), random_image(15, 48)[:, :32].numpy()
    details, base_ir, base_vis = [], ir, vis
    for _ in range(3):
        down_ir, down_vis = cv2.pyrDown(base_ir), cv2.pyrDown(base_vis)
        detail_ir, detail_vis = base_ir - cv2.pyrUp(down_ir), base_vis - cv2.pyrUp(down_vis)
        details.append(np.where(np.abs(detail_ir) >= np.abs(detail_vis), detail_ir, detail_vis))
        base_ir, base_vis = down_ir, down_vis
    fused = 0.3 * base_ir + 0.7 * base_vis
    for detail in reversed(details):
        fused = detail + cv2.pyrUp(fused)
    torch.testing.assert_close(fu.laplacian_fusion(torch.from_numpy(ir), torch.from_numpy(vis), 3, 0.3),
                               torch.from_numpy(np.clip(fused, 0, 255)))


def test_colour_fusion_keeps_the_chroma():
    rgb = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 200 + 20
    ir = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 255
    out = fu.colour_fusion(ir, rgb, lambda a, y: fu.fuse(a, y, "average"))
    assert out.shape == (3, 16, 16)
    unclamped = (out > 0) & (out < 255)
    chroma = ops.rgb_to_ycbcr(out)[1:]
    torch.testing.assert_close(chroma[:, unclamped.all(0)], ops.rgb_to_ycbcr(rgb)[1:][:, unclamped.all(0)])
    torch.testing.assert_close(fu.colour_fusion(ir, rgb, lambda a, y: y), rgb)    # keeping Y changes nothing


def test_pansharpen_with_the_own_luminance_is_the_identity():
    rgb = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 200 + 20
    torch.testing.assert_close(fu.pansharpen(rgb, ops.rgb_to_ycbcr(rgb)[:, :1]), rgb)


@pytest.mark.parametrize("call, message", [
    (lambda a, b: fu.fuse(a, b, "weighted", 1.5), "must lie in \\[0, 1\\]"),
    (lambda a, b: fu.fuse(a, b, "median"), "method must be one of"),
    (lambda a, b: fu.fuse(a, b[:8], "average"), "same shape"),
    (lambda a, b: fu.laplacian_fusion(a[:4, :4], b[:4, :4], levels=3), "fewer levels"),
    (lambda a, b: fu.laplacian_fusion(a[:8, :9], b[:8, :9], levels=3), "larger than 8 px"),   # 2 px left to halve
])
def test_classical_fusion_rejects_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call(random_image(12, 16), random_image(13, 16))


# ---------------------------------------------------------------------------------------------- scenes
def test_scene_shapes_targets_and_determinism(tmp_path):
    scenes = fusion_scenes("test", 6, size=64)
    assert len(scenes) == 6
    assert scenes.visible.shape == (6, 3, 64, 64) and scenes.visible.dtype == torch.uint8
    assert scenes.infrared.shape == scenes.infrared_misaligned.shape == (6, 1, 64, 64)
    assert scenes.warps.shape == (6, 2, 3) and scenes.conditions.shape == (6,) and scenes.glare.dtype == torch.bool
    assert scenes.luminance().shape == (6, 1, 64, 64)
    assert all(len(t) == len(l) == len(b) for t, l, b in zip(scenes.temperatures, scenes.labels, scenes.boxes))
    assert set(scenes.conditions.tolist()) <= {0, 1, 2}
    assert len(list((tmp_path / "fusion").glob("*.pt"))) == 1
    again = fusion_scenes("test", 6, size=64)                     # from the cache
    assert torch.equal(again.visible, scenes.visible) and torch.equal(again.infrared, scenes.infrared)
    fresh = _generate("test", 6, 64, 0, 12, 32, 4, 0.3)            # regenerated from scratch: identical
    assert torch.equal(fresh["visible"], scenes.visible) and torch.equal(fresh["infrared_misaligned"],
                                                                         scenes.infrared_misaligned)
    other = fusion_scenes("test", 6, size=64, seed=1)
    assert not torch.equal(other.infrared, scenes.infrared)


def test_scenes_follow_their_physics():
    scenes = fusion_scenes("train", 40, size=64)
    from utils.scenes import fashion_scenes
    grey = fashion_scenes("train", 40, size=64, min_scale=12, max_scale=32)
    for instance, labels, temperatures, ir in zip(grey.instances, grey.labels, scenes.temperatures, scenes.infrared):
        background = ir[0][instance == 0].float().mean()
        for k, label in enumerate(labels):
            if CLASS_WARMTH[label] > 50:                   # worn clothes are clearly warmer than the background
                assert ir[0][instance == k + 1].float().mean() > background + 20
        ambient = temperatures - CLASS_WARMTH[labels]                     # one ambient per scene, ± jitter
        assert ambient.max() - ambient.min() <= 2 * TEMPERATURE_JITTER
    y = scenes.luminance().float().mean((1, 2, 3))
    assert y[scenes.conditions == 1].mean() < 0.3 * y[scenes.conditions == 0].mean()    # low light is dark


def test_scenes_reject_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        fusion_scenes("val", 4)


def test_render_scene_pairs_draws_each_condition_and_refuses_bad_input():
    import matplotlib.pyplot as plt

    scenes = fusion_scenes("test", 12, size=64)
    fig = render_scene_pairs(scenes, per_condition=2)
    drawn = [ax for ax in fig.axes if ax.images]
    shown = sum(min(2, int((scenes.conditions == k).sum())) for k in range(3))
    assert len(drawn) == 2 * shown and any(ax.get_ylabel() == "infrared level (0–255)" for ax in fig.axes)
    plt.close(fig)
    with pytest.raises(ValueError, match="per_condition"):
        render_scene_pairs(scenes, per_condition=0)
    with pytest.raises(ValueError, match="FusionScenes"):
        render_scene_pairs(scenes.visible)


# -------------------------------------------------------------------------------------------- registration
def test_warp_affine_round_trip():
    image = ops.gaussian_blur(random_image(14, 64), 2.0)
    matrix = random_affine(64, torch.Generator().manual_seed(0))
    back = ops.warp_affine(ops.warp_affine(image, matrix), matrix, inverse=True)
    assert (back - image)[12:-12, 12:-12].abs().mean() < 2


def test_registration_recovers_a_known_affine():
    image, _ = calibration_target(64, seed=3)                           # one camera, moved: same intensities
    true = torch.tensor([[1.01, -0.04, 2.5], [0.035, 0.99, -3.0]])
    estimated, converged = fu.register_ecc(ops.warp_affine(image, true), image, representation="intensity")
    assert converged and fu.corner_error(estimated, true, 64) < 0.2
    estimated, converged = fu.register_ecc(ops.warp_affine(image, true), image)
    assert converged and fu.corner_error(estimated, true, 64) < 0.3


def test_calibration_target_registers_every_rig_to_a_pixel():
    visible, infrared = calibration_target(64)
    generator = torch.Generator().manual_seed(5)
    for _ in range(5):
        true = random_affine(64, generator)
        estimated, _ = fu.register_ecc(ops.warp_affine(infrared, true), visible)
        assert fu.corner_error(estimated, true, 64) < 1
    assert fu.corner_error(torch.eye(2, 3), true, 64) > 2                    # it was misaligned to begin with


def test_register_rejects_unknown_representation():
    with pytest.raises(ValueError, match="representation"):
        fu.register_ecc(torch.zeros(8, 8), torch.zeros(8, 8), representation="phase")


# ----------------------------------------------------------------------------------------------- figures
def test_render_classical_fusion_draws_every_method_and_refuses_bad_input():
    import matplotlib.pyplot as plt

    ir = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8)
    rgb = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    fig = fu.render_classical_fusion(ir, rgb, ["clear", "haze"])
    assert len([ax for ax in fig.axes if ax.images]) == 2 * (2 + len(fu.METHODS))
    assert {ax.get_title() for ax in fig.axes} >= {"clear: visible", "haze: visible", *fu.METHODS}
    plt.close(fig)
    with pytest.raises(ValueError, match="N×1×H×W"):
        fu.render_classical_fusion(rgb, ir, ["clear", "haze"])
    with pytest.raises(ValueError, match="same scenes"):
        fu.render_classical_fusion(ir[:1], rgb, ["clear"])
    with pytest.raises(ValueError, match="one condition per scene"):
        fu.render_classical_fusion(ir, rgb, ["clear"])


def test_render_fusion_figure_and_errors():
    import matplotlib.pyplot as plt

    ir = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8)
    rgb = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    fig = fu.render_fusion(ir, rgb, scene=1, method="laplacian", weight=0.3,
                           learned={"copy IR": lambda a, y, w: a}, conditions=["clear", "low_light"])
    assert len([ax for ax in fig.axes if ax.images]) == 5 and len(fig.axes) == 8       # 5 panels, 2 scales, metrics
    assert {ax.get_ylabel() for ax in fig.axes} >= {"IR level (0–255)", "|difference| (grey levels)"}
    assert fig.get_suptitle() == "scene 1 (low light): laplacian, infrared weight 0.30"
    plt.close(fig)
    fig = fu.render_fusion(ir, rgb, scene=0, method="copy IR", learned={"copy IR": lambda a, y, w: a})
    assert "does not apply" in fig.get_suptitle()                       # a method that ignores the weight says so
    plt.close(fig)
    with pytest.raises(ValueError, match="one condition per scene"):
        fu.render_fusion(ir, rgb, conditions=["clear"])
    with pytest.raises(ValueError, match="scene must be between 0 and 1"):
        fu.render_fusion(ir, rgb, scene=2)
    with pytest.raises(ValueError, match="method must be one of"):
        fu.render_fusion(ir, rgb, method="magic")
    with pytest.raises(ValueError, match="infrared share"):
        fu.render_fusion(ir, rgb, weight=-0.1)


# ------------------------------------------------------------------------------------------------ models
def test_densefuse_shapes_rules_and_loss():
    model = models.DenseFuse(width=4)
    x = torch.rand(2, 1, 16, 16)
    assert model.encoder(x).shape == (2, 16, 16, 16) and model(x).shape == (2, 1, 16, 16)
    loss = models.densefuse_loss(model, (x,))
    loss.backward()
    assert loss.item() > 0 and all(p.grad is not None for p in model.parameters())
    for rule in ("addition", "l1_norm"):
        fused = model.fuse(x, x.flip(-1), rule)
        assert fused.shape == (2, 1, 16, 16) and 0 <= fused.min() and fused.max() <= 1
    a, b = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(models.addition_rule(a, b, 1.0), a)
    torch.testing.assert_close(models.l1_norm_rule(a, a), a)                 # equal activity: the mean
    torch.testing.assert_close(models.l1_norm_rule(a, torch.zeros_like(a)), a)
    with pytest.raises(ValueError, match="rule"):
        model.fuse(x, x, "maximum")


def test_fusion_net_and_losses():
    net = models.FusionNet(width=4)
    pair = torch.rand(3, 2, 16, 16)
    out = net(pair)
    assert out.shape == (3, 1, 16, 16) and 0 < out.min() and out.max() < 1
    ir, vis = pair[:, :1], pair[:, 1:]
    terms = models.fusion_loss_terms(torch.maximum(ir, vis), ir, vis)
    assert terms["intensity"] == 0                                           # the max image is the intensity target
    same = models.fusion_loss_terms(ir, ir, ir)
    assert same["gradient"] == 0 and same["ssim"].item() == pytest.approx(0, abs=1e-6)
    loss = models.FusionLoss(intensity=1.0, gradient=2.0, ssim=0.0)
    assert loss.__name__ == "fusion_loss(intensity=1, gradient=2, ssim=0)"
    value = loss(net, (pair,))
    terms = models.fusion_loss_terms(net(pair), ir, vis)
    torch.testing.assert_close(value, terms["intensity"] + 2 * terms["gradient"])
    value.backward()
    with pytest.raises(ValueError, match="not all 0"):
        models.FusionLoss(0, 0, 0)
    assert models.fusiongan_content_loss(ir, ir, ir) == 0


def test_detector_takes_two_channels_and_keeps_one_by_default():
    assert repr(AnchorFreeDetector(width=8)) == repr(AnchorFreeDetector(width=8, in_channels=1))  # Chapter 4 unchanged
    detector = AnchorFreeDetector(width=8, in_channels=2)
    assert detector(torch.rand(1, 2, 64, 64)).shape == (1, 8 * 8 + 4 * 4, 15)
