"""Chapter 5: segmentation metrics and losses against torchmetrics/torchvision, the mask loader, the models."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex
from torchvision.ops import sigmoid_focal_loss
from torchvision.transforms import v2

from utils import segmentation as seg
from utils.models.deeplab import ASPP, DeepLabV3Plus, SeparableConv
from utils.models.unet import RSU, UNet, UNetPlusPlus


def random_maps(num_classes=5, shape=(3, 16, 16), seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_classes, shape, generator=g)
    pred = torch.where(torch.rand(shape, generator=g) < 0.7, target, torch.randint(0, num_classes, shape, generator=g))
    return pred, target


def test_confusion_matrix_counts_pixels():
    pred, target = torch.tensor([[0, 1, 1, 2]]), torch.tensor([[0, 1, 0, 2]])
    expected = torch.tensor([[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    assert torch.equal(seg.confusion_matrix(pred, target, 3), expected)
    logits = F.one_hot(pred, 3).permute(0, 2, 1).float()  # N×C×W: arg-max over dim 1 gives pred back
    assert torch.equal(seg.confusion_matrix(logits, target, 3), expected)


def test_metrics_match_torchmetrics():
    pred, target = random_maps()
    m = seg.segmentation_metrics(pred, target, 5)
    torch.testing.assert_close(m["iou"].float(), MulticlassJaccardIndex(5, average="none")(pred, target))
    assert m["miou"] == pytest.approx(MulticlassJaccardIndex(5)(pred, target).item(), abs=1e-6)
    torch.testing.assert_close(m["class_accuracy"].float(), MulticlassAccuracy(5, average="none")(pred, target))
    assert m["mean_pixel_accuracy"] == pytest.approx(MulticlassAccuracy(5)(pred, target).item(), abs=1e-6)
    assert m["pixel_accuracy"] == pytest.approx(MulticlassAccuracy(5, average="micro")(pred, target).item())


def test_absent_classes_are_nan_and_left_out_of_the_means():
    pred, target = torch.tensor([[0, 1, 1, 3]]), torch.tensor([[0, 1, 0, 0]])
    m = seg.metrics_from_confusion(seg.confusion_matrix(pred, target, 4))
    assert math.isnan(m["iou"][2]) and math.isnan(m["class_accuracy"][2])   # in neither map
    assert m["iou"][3] == 0 and m["class_accuracy"][3] == 0                 # predicted only: wrong, not undefined
    assert m["miou"] == pytest.approx((1 / 3 + 1 / 2 + 0) / 3)
    assert m["miou"] == pytest.approx(MulticlassJaccardIndex(4)(pred, target).item())
    assert m["mean_pixel_accuracy"] == pytest.approx(MulticlassAccuracy(4)(pred, target).item())


def test_empty_input_and_bad_labels():
    m = seg.segmentation_metrics(torch.zeros(0, 4, 4, dtype=torch.long), torch.zeros(0, 4, 4, dtype=torch.long), 3)
    assert math.isnan(m["pixel_accuracy"]) and math.isnan(m["miou"])
    with pytest.raises(ValueError, match="outside"):
        seg.segmentation_metrics(torch.tensor([[5]]), torch.tensor([[0]]), 3)
    with pytest.raises(ValueError, match="do not match"):
        seg.segmentation_metrics(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="integer"):
        seg.segmentation_metrics(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), 3)


def test_focal_loss_binary_matches_torchvision_and_gamma0_is_cross_entropy():
    logits, target = torch.randn(2, 8, 8), (torch.rand(2, 8, 8) > 0.7).float()
    for gamma, alpha in ((2.0, 0.25), (0.0, -1.0), (1.5, 0.6)):
        for reduction in ("mean", "sum", "none"):
            torch.testing.assert_close(seg.binary_focal_loss(logits, target, gamma, alpha, reduction),
                                       sigmoid_focal_loss(logits, target, alpha, gamma, reduction))
    logits, labels = torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 8, 8))
    torch.testing.assert_close(seg.focal_loss(logits, labels, gamma=0), F.cross_entropy(logits, labels))
    assert seg.focal_loss(logits, labels, gamma=2) < F.cross_entropy(logits, labels)
    assert seg.focal_loss(logits, labels, reduction="none").shape == labels.shape
    with pytest.raises(ValueError, match="reduction"):
        seg.focal_loss(logits, labels, reduction="max")


def test_dice_loss_is_one_minus_dice_and_near_zero_when_perfect():
    labels = torch.randint(0, 3, (2, 8, 8))
    perfect = 50 * F.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    assert seg.dice_loss(perfect, labels).item() < 1e-4
    logits = torch.randn(2, 3, 8, 8)
    p = F.softmax(logits, 1)[:, 1:]
    y = F.one_hot(labels, 3).permute(0, 3, 1, 2)[:, 1:].float()
    dice = (2 * (p * y).sum((0, 2, 3)) / (p.sum((0, 2, 3)) + y.sum((0, 2, 3)))).mean()
    torch.testing.assert_close(seg.dice_loss(logits, labels, smooth=0.0), 1 - dice)


def test_segmentation_loss_averages_deep_supervision_heads():
    x, masks = torch.randn(2, 1, 16, 16), torch.randint(0, 3, (2, 16, 16))
    model = UNetPlusPlus(3, width=4, depth=2).train()
    loss = seg.segmentation_loss("cross_entropy")(model, (x, masks))
    loss.backward()
    assert all(p.grad is not None for p in model.heads.parameters())
    with pytest.raises(ValueError, match="unknown loss"):
        seg.segmentation_loss("hinge")


def test_deep_supervision_loss_is_the_mean_of_the_heads_losses():
    x, masks = torch.randn(2, 1, 16, 16), torch.randint(0, 3, (2, 16, 16))
    model = UNetPlusPlus(3, width=4, depth=3).train()   # training mode: one logit map per head, batch statistics
    per_head = [F.cross_entropy(out, masks) + seg.dice_loss(out, masks) for out in model(x)]
    assert len(per_head) == 3
    torch.testing.assert_close(seg.segmentation_loss("cross_entropy+dice")(model, (x, masks)),
                               sum(per_head) / len(per_head))


def test_evaluate_segmentation_reports_metrics():
    model = UNet(3, width=4, depth=2)
    loader = seg.MaskLoader(torch.randint(0, 255, (6, 1, 16, 16), dtype=torch.uint8),
                            torch.randint(0, 3, (6, 16, 16)), 4)
    scores = seg.evaluate_segmentation(model, loader, 3)
    assert set(scores) == {"loss", "pa", "mpa", "miou"} and 0 <= scores["miou"] <= 1


def test_mask_loader_moves_images_and_masks_together():
    images = torch.zeros(4, 1, 16, 16, dtype=torch.uint8)
    images[:, :, 2:6, 3:9] = 255
    masks = (images[:, 0] > 0).long()
    loader = seg.MaskLoader(images, masks, 4, shuffle=True, groups=2,
                            transform=v2.Compose([v2.RandomHorizontalFlip(1.0), v2.RandomAffine(0, (0.2, 0.2))]))
    x, m = next(iter(loader))
    assert type(x) is torch.Tensor and type(m) is torch.Tensor and m.dtype == torch.int64
    assert torch.equal(x > 0, m.bool()[:, None])  # bright pixels are exactly the masked ones
    with pytest.raises(ValueError, match="masks N×H×W"):
        seg.MaskLoader(images, masks[:, None], 4)


def test_overlay_and_overlay_figure():
    image, labels = np.zeros((8, 8)), np.zeros((8, 8), int)
    labels[2:4, 2:4] = 2
    rgb = seg.overlay(image, labels, 3, opacity=1.0)
    assert rgb.shape == (8, 8, 3) and np.allclose(rgb[2, 2], seg.palette(3)[2]) and np.allclose(rgb[0, 0], 0)
    assert np.allclose(seg.overlay(image, labels, 3, 1.0, only_class=1), 0)
    with pytest.raises(ValueError, match="opacity"):
        seg.overlay(image, labels, 3, opacity=2)
    fig = seg.overlay_figure(image, labels, np.roll(labels, 1, 0), ["a", "b"], right="errors", only_class=2)
    assert len(fig.axes) == 3 and "px wrong" in fig.axes[2].get_title()
    legend = lambda ax: [t.get_text() for t in ax.get_legend().texts]  # noqa: E731
    assert legend(fig.axes[1]) == ["b"]                               # classes present, background left out
    assert legend(fig.axes[2]) == ["right (object pixel)", "wrong"]    # the error map's colours, not classes
    plt.close(fig)
    fig = seg.overlay_figure(image, labels, np.where(labels == 2, 1, 0), ["a", "b"])
    assert [t.get_text() for t in fig.legends[0].texts] == ["a", "b"]  # truth and prediction classes
    plt.close(fig)
    with pytest.raises(ValueError, match="only_class"):
        seg.overlay_figure(image, labels, labels, ["a", "b"], only_class=3)
    with pytest.raises(ValueError, match="right"):
        seg.overlay_figure(image, labels, labels, ["a", "b"], right="both")


def test_render_ambiguous_prompt():
    image, answers = np.zeros((8, 8)), np.zeros((3, 8, 8))
    answers[0, 2:4, 2:4] = answers[1, 2:6, 2:4] = answers[2, 2:6, 2:6] = 1
    fig = seg.render_ambiguous_prompt(image, (2, 2), answers.mean(0), answers, ("item", "pile", "everything"))
    assert len(fig.axes) == 6 and "pile" in fig.axes[3].get_title()  # click, average, three answers, colour bar
    plt.close(fig)
    with pytest.raises(ValueError, match="K×H×W"):
        seg.render_ambiguous_prompt(image, (2, 2), answers.mean(0), answers[0], ("item",))
    with pytest.raises(ValueError, match="one name per answer"):
        seg.render_ambiguous_prompt(image, (2, 2), answers.mean(0), answers, ("item", "pile"))


def test_unet_shapes_and_bad_size():
    model = UNet(4, width=4, depth=3)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 4, 32, 32)
    with pytest.raises(ValueError, match="divisible"):
        model(torch.randn(1, 1, 20, 20))


def test_unet_plus_plus_deep_supervision_and_pruning():
    model = UNetPlusPlus(4, width=4, depth=3).train()
    outputs = model(torch.randn(2, 1, 16, 16))
    assert len(outputs) == 3 and all(o.shape == (2, 4, 16, 16) for o in outputs)
    model.eval()
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 4, 16, 16)
    model.prune_to = 1
    x = torch.randn(1, 1, 16, 16)
    torch.testing.assert_close(model(x), model.heads[0](model.nodes["0_1"](torch.cat(
        [model.nodes["0_0"](x), model.upsample(model.nodes["1_0"](model.pool(model.nodes["0_0"](x))))], 1))))
    with pytest.raises(ValueError, match="prune_to"):
        UNetPlusPlus(4, depth=3, prune_to=4)


def test_deeplab_shapes_separable_weights_and_aspp_branches():
    for decoder in (True, False):
        assert DeepLabV3Plus(5, width=4, decoder=decoder)(torch.randn(2, 1, 32, 32)).shape == (2, 5, 32, 32)
    with pytest.raises(ValueError, match="output stride"):
        DeepLabV3Plus(5, width=4)(torch.randn(1, 1, 36, 36))
    separable = SeparableConv(16, 32)
    convs = [m for m in separable.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.weight.numel() for c in convs] == [16 * 9, 16 * 32]
    aspp = ASPP(8, 6, rates=(2, 3)).eval()
    assert len(aspp.branches) == 4 and aspp(torch.randn(1, 8, 8, 8)).shape == (1, 6, 8, 8)


def test_rsu_keeps_the_size_is_residual_and_widens_the_receptive_field():
    rsu = RSU(4, in_channels=3, mid_channels=4, out_channels=6).eval()
    x = torch.randn(2, 3, 32, 32)
    assert rsu(x).shape == (2, 6, 32, 32)
    assert [m.dilation for m in rsu.bottom.modules() if isinstance(m, torch.nn.Conv2d)] == [(2, 2)]
    with torch.no_grad():                       # silence the inner U: only the residual F remains
        rsu.decoder[-1][1].weight.zero_()
        rsu.decoder[-1][1].bias.zero_()
    torch.testing.assert_close(rsu(x), rsu.conv_in(x))
    receptive = {}
    for height in (2, 4):
        probe = RSU(height, 1, 2, 2).eval()
        image = torch.randn(2, 1, 128, 128, requires_grad=True)
        probe(image)[:, :, 64, 64].sum().backward()
        rows = (image.grad.abs().sum((0, 1)) > 0).any(1).nonzero().flatten()
        receptive[height] = int(rows.max() - rows.min() + 1)
    assert receptive[2] == 11 and receptive[4] > 2 * 19   # RSU-2: 3×3, 3×3, dilated 5×5, 3×3 → 1 + 2 + 2 + 4 + 2
    with pytest.raises(ValueError, match="divisible"):
        RSU(4, 1, 2, 2)(torch.randn(1, 1, 30, 30))
    with pytest.raises(ValueError, match="at least 2"):
        RSU(1, 1, 2, 2)
