"""Chapter 4: boxes, IoU family, NMS, anchors, letterbox and mAP against torchvision/torchmetrics; the detectors."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torchvision.ops as ops
from matplotlib.colors import to_rgb
from torchmetrics.detection import MeanAveragePrecision

from utils import detection as det
from utils.models import yolo


def random_boxes(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(n, 2, generator=g) * 100
    return torch.cat([corner, corner + 1 + torch.rand(n, 2, generator=g) * 50], 1)


def random_detections(images=15, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for i in range(images):
        n, m = int(torch.randint(0, 5, (1,), generator=g)), int(torch.randint(0, 6, (1,), generator=g))
        truth = random_boxes(n, seed * 1000 + i)
        noisy = truth + torch.randn(n, 4, generator=g) * 3
        noisy = torch.cat([noisy[:, :2].minimum(noisy[:, 2:]), noisy[:, 2:].maximum(noisy[:, :2])], 1)
        labels = torch.randint(0, classes, (n,), generator=g)
        preds.append({"boxes": torch.cat([noisy, random_boxes(m, seed * 1000 + 500 + i)]),
                      "scores": torch.rand(n + m, generator=g),
                      "labels": torch.cat([labels, torch.randint(0, classes + 1, (m,), generator=g)])})
        targets.append({"boxes": truth, "labels": labels})
    return preds, targets


# ------------------------------------------------------------------------------------------------ boxes
@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_box_convert_matches_torchvision_and_round_trips(fmt):
    boxes = random_boxes(10)
    torch.testing.assert_close(det.box_convert(boxes, "xyxy", fmt), ops.box_convert(boxes, "xyxy", fmt))
    torch.testing.assert_close(det.box_convert(det.box_convert(boxes, "xyxy", fmt), fmt, "xyxy"), boxes)
    with pytest.raises(ValueError, match="box format"):
        det.box_convert(boxes, "xyxy", "yolo")


def test_box_area():
    assert det.box_area(torch.tensor([[0.0, 0.0, 2.0, 3.0]])).tolist() == [6.0]


@pytest.mark.parametrize("kind, reference", [("iou", ops.box_iou), ("giou", ops.generalized_box_iou),
                                             ("diou", ops.distance_box_iou), ("ciou", ops.complete_box_iou)])
def test_box_iou_matches_torchvision(kind, reference):
    a, b = random_boxes(12, 1), random_boxes(7, 2)
    assert det.box_iou(a, b, kind).shape == (12, 7)
    torch.testing.assert_close(det.box_iou(a, b, kind), reference(a, b))
    torch.testing.assert_close(det.paired_box_iou(a[:7], b, kind), reference(a[:7], b).diagonal())


def test_box_iou_bad_and_degenerate_input():
    a = random_boxes(3)
    assert det.box_iou(a, torch.zeros(0, 4)).shape == (3, 0)
    point = torch.tensor([[5.0, 5.0, 5.0, 5.0]])
    for kind in det.IOU_KINDS:
        values = det.box_iou(point, torch.cat([point, a]), kind)
        assert torch.isfinite(values).all()
    assert det.box_iou(point, point).item() == 0.0
    with pytest.raises(ValueError, match="x2 < x1"):
        det.box_iou(torch.tensor([[10.0, 0.0, 5.0, 5.0]]), a)
    with pytest.raises(ValueError, match="N×4"):
        det.box_iou(torch.zeros(4), a)
    with pytest.raises(ValueError, match="kind"):
        det.box_iou(a, a, "eiou")
    with pytest.raises(ValueError, match="equal shapes"):
        det.paired_box_iou(a, a[:2])


def test_iou_losses_match_torchvision():
    a, b = random_boxes(9, 3), random_boxes(9, 4)
    torch.testing.assert_close(det.iou_loss(a, b, "ciou"), ops.complete_box_iou_loss(a, b, reduction="mean"))
    torch.testing.assert_close(det.iou_loss(a, b, "giou"), ops.generalized_box_iou_loss(a, b, reduction="mean"))
    torch.testing.assert_close(det.iou_loss(a, b, "diou"), ops.distance_box_iou_loss(a, b, reduction="mean"))
    assert det.iou_loss(torch.zeros(0, 4), torch.zeros(0, 4)).item() == 0.0


# -------------------------------------------------------------------------------------------------- NMS
@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.8])
def test_nms_and_batched_nms_match_torchvision(threshold):
    boxes, scores = random_boxes(150, 5), torch.rand(150, generator=torch.Generator().manual_seed(6))
    labels = torch.randint(0, 4, (150,), generator=torch.Generator().manual_seed(7))
    assert torch.equal(det.nms(boxes, scores, threshold), ops.nms(boxes, scores, threshold))
    assert torch.equal(det.batched_nms(boxes, scores, labels, threshold),
                       ops.batched_nms(boxes, scores, labels, threshold))


def test_nms_edge_cases_and_diou_nms():
    assert det.nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0
    assert det.batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0), 0.5).numel() == 0
    with pytest.raises(ValueError, match="scores"):
        det.nms(random_boxes(3), torch.rand(2), 0.5)
    pair, scores = torch.tensor([[10.0, 10.0, 50.0, 50.0], [22.0, 22.0, 62.0, 62.0]]), torch.tensor([0.9, 0.8])
    assert det.nms(pair, scores, 0.3).tolist() == [0]
    assert det.nms(pair, scores, 0.3, kind="diou").tolist() == [0, 1]


def test_postprocess_filters_suppresses_and_caps():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]])
    scores, labels = torch.tensor([0.9, 0.8, 0.7, 0.1]), torch.tensor([0, 0, 1, 1])
    out = det.postprocess(boxes, scores, labels, confidence=0.25, iou_threshold=0.5)
    assert out["scores"].tolist() == pytest.approx([0.9, 0.7]) and out["labels"].tolist() == [0, 1]
    assert len(det.postprocess(boxes, scores, labels, 0.0, 0.5, max_detections=1)["boxes"]) == 1


# -------------------------------------------------------------------------------------- anchors, letterbox
def test_wh_iou_and_kmeans_anchors():
    torch.testing.assert_close(det.wh_iou(torch.tensor([[2.0, 2.0]]), torch.tensor([[2.0, 2.0], [4.0, 1.0]])),
                               torch.tensor([[1.0, 1 / 3]]))
    g = torch.Generator().manual_seed(0)
    wh = torch.cat([torch.tensor([10.0, 10.0]) + torch.rand(50, 2, generator=g),
                    torch.tensor([40.0, 20.0]) + torch.rand(50, 2, generator=g)])
    anchors, mean_iou = det.kmeans_anchors(wh, 2)
    assert anchors.shape == (2, 2) and mean_iou > 0.9
    assert torch.allclose(anchors, torch.tensor([[10.5, 10.5], [40.5, 20.5]]), atol=0.5)
    with pytest.raises(ValueError, match="k must"):
        det.kmeans_anchors(wh, 0)
    with pytest.raises(ValueError, match="N×2"):
        det.kmeans_anchors(torch.zeros(5, 3), 2)


def test_letterbox_round_trip():
    image = torch.randint(0, 255, (1, 32, 64), dtype=torch.uint8)
    boxed, scale, pad = det.letterbox(image, 128)
    assert boxed.shape == (1, 128, 128) and boxed.dtype == torch.uint8 and scale == 2.0 and pad == (0, 32)
    assert (boxed[:, :32] == 114).all() and (boxed[:, -32:] == 114).all()
    boxes = torch.tensor([[4.0, 2.0, 20.0, 30.0]])
    moved = det.letterbox_boxes(boxes, scale, pad)
    assert moved.tolist() == [[8.0, 36.0, 40.0, 92.0]]
    torch.testing.assert_close(det.unletterbox_boxes(moved, scale, pad), boxes)
    batch = torch.stack([image, image.flip(-1)])
    batched, batch_scale, batch_pad = det.letterbox(batch, 128)
    assert torch.equal(batched[0], det.letterbox(image, 128)[0]) and batch_pad == det.letterbox(image, 128)[2]
    with pytest.raises(ValueError, match="C×H×W"):
        det.letterbox(image[None, None], 128)


# ------------------------------------------------------------------------------------------------- mAP
def test_match_detections_counts_duplicates_as_false_positives():
    truth = torch.tensor([[0.0, 0, 10, 10]])
    preds = torch.tensor([[0.0, 0, 10, 10], [0.5, 0, 10, 10], [50, 50, 60, 60]])
    hits = det.match_detections(preds, torch.tensor([0.9, 0.8, 0.7]), truth, 0.5)
    assert hits.tolist() == [True, False, False]
    assert det.match_detections(preds, torch.rand(3), torch.zeros(0, 4), 0.5).tolist() == [False] * 3


def test_precision_recall_and_average_precision_by_hand():
    truth = {"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]), "labels": torch.zeros(3, dtype=torch.long)}
    pred = {"boxes": torch.tensor([[0.0, 0, 10, 10], [60, 60, 70, 70], [20, 20, 30, 30]]),
            "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": torch.zeros(3, dtype=torch.long)}
    precision, recall, scores = det.precision_recall([pred], [truth], 0)
    np.testing.assert_allclose(precision, [1.0, 0.5, 2 / 3])
    np.testing.assert_allclose(recall, [1 / 3, 1 / 3, 2 / 3])
    assert det.average_precision_voc(precision, recall) == pytest.approx(1 / 3 + 2 / 9)
    assert det.average_precision_coco(precision, recall) == pytest.approx((34 + 33 * 2 / 3) / 101)
    assert det.precision_recall([pred], [truth], 5) is None
    pooled = det.precision_recall([pred], [truth], None)
    np.testing.assert_allclose(pooled[0], precision)
    assert det.average_precision_coco(np.zeros(0), np.zeros(0)) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_average_precision_matches_torchmetrics(seed):
    preds, targets = random_detections(seed=seed)
    ours = det.mean_average_precision(preds, targets)
    metric = MeanAveragePrecision(class_metrics=True)
    metric.update(preds, targets)
    theirs = metric.compute()
    for key in ("map", "map_50", "map_75"):
        assert ours[key] == pytest.approx(theirs[key].item(), abs=1e-6)
    torch.testing.assert_close(ours["map_per_class"].float(), theirs["map_per_class"].float(), atol=1e-6, rtol=0)
    assert 0 <= ours["voc_map_50"] <= 1


def test_mean_average_precision_bad_input_is_defined():
    empty_pred = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    empty_truth = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    truth = {"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([2])}
    hit = {"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([2])}
    absent = {"boxes": torch.tensor([[0.0, 0, 10, 10], [30.0, 30, 40, 40]]), "scores": torch.tensor([0.9, 0.95]),
              "labels": torch.tensor([2, 7])}
    assert det.mean_average_precision([empty_pred], [truth])["map"] == 0.0          # no predictions: AP 0
    assert det.mean_average_precision([hit], [empty_truth])["map"] == -1.0          # no targets: undefined
    assert det.mean_average_precision([], [])["map"] == -1.0
    result = det.mean_average_precision([absent], [truth])                          # class 7 has no targets
    assert result["map"] == 1.0 and result["map_per_class"].tolist() == [1.0, -1.0]
    assert result["classes"].tolist() == [2, 7]
    assert det.mean_average_precision([hit, empty_pred], [truth, empty_truth])["map_50"] == 1.0
    with pytest.raises(ValueError, match="same images"):
        det.mean_average_precision([hit], [])
    with pytest.raises(ValueError, match="lacks"):
        det.mean_average_precision([{"boxes": torch.zeros(0, 4)}], [truth])


def test_operating_point_and_render_detections():
    truth = {"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([0, 1])}
    pred = {"boxes": torch.tensor([[0.0, 0, 10, 10], [40, 40, 50, 50]]), "scores": torch.tensor([0.9, 0.8]),
            "labels": torch.tensor([0, 1])}
    assert det.operating_point([pred], [truth]) == (0.5, 0.5, 1, 1, 1)
    images = torch.zeros(1, 1, 64, 64, dtype=torch.uint8)
    fig = det.render_detections(images, [pred], [truth], scene=0, confidence=0.5, nms_iou=0.5)
    assert len(fig.axes) == 2
    scene_ax = fig.axes[0]
    assert [p.get_edgecolor()[:3] for p in scene_ax.patches] == [
        to_rgb(color) for color in ("limegreen", "red", "orange")]   # a true positive, a false positive, a miss
    assert sorted(t.get_text() for t in scene_ax.texts) == ["0 0.90", "1 0.80", "missed 1"]
    plt.close(fig)
    fig = det.render_detections(images, [pred], [truth], scene=0, confidence=0.5, nms_iou=0.5, label=1)
    plt.close(fig)
    with pytest.raises(ValueError, match="scene"):
        det.render_detections(images, [pred], [truth], scene=3)
    with pytest.raises(ValueError, match="confidence must be a fraction in \\[0, 1\\].*pass 0.3"):
        det.render_detections(images, [pred], [truth], confidence=30)


def test_draw_boxes_keeps_every_label_inside_the_picture():
    fig, ax = plt.subplots()
    ax.imshow(np.zeros((64, 64), dtype=np.uint8), cmap="gray")
    boxes = torch.tensor([[2.0, 1, 20, 20],      # at the top: no room above, so its label goes under it
                          [50, 30, 63, 40],      # far right: the label ends at the box's right edge
                          [10, 30, 30, 40]])     # room above: the label sits there
    det.draw_boxes(ax, boxes, ["top", "right", "middle"], "yellow")
    assert len(ax.patches) == 3 and [t.get_text() for t in ax.texts] == ["top", "right", "middle"]
    top, right, middle = ax.texts
    assert top.get_position() == (2.0, 21.0) and top.get_va() == "top"
    assert right.get_position() == (63.0, 29.0) and right.get_ha() == "right"
    assert middle.get_position() == (10.0, 29.0) and middle.get_va() == "bottom"
    for text in ax.texts:
        x, y = text.get_position()
        assert 0 <= x <= 64 and 0 <= y <= 64, f"{text.get_text()!r} at {(x, y)} is outside the picture"
    det.draw_boxes(ax, torch.tensor([[10.0, 50, 30, 62]]), ["low 0.90"], "cyan", below=True, dashed=True)
    assert ax.texts[-1].get_position() == (10.0, 49.0), "no room under a box at the bottom: its label goes above"
    assert ax.patches[-1].get_linestyle() == "--"
    with pytest.raises(ValueError, match="N×4"):
        det.draw_boxes(ax, torch.zeros(4), ["a"], "yellow")
    with pytest.raises(ValueError, match="one text per box"):
        det.draw_boxes(ax, boxes, ["only one"], "yellow")
    plt.close(fig)
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="imshow"):
        det.draw_boxes(ax, boxes, ["a", "b", "c"], "yellow")
    plt.close(fig)


def test_draw_scene_and_render_scenes():
    image = torch.zeros(1, 64, 64, dtype=torch.uint8)
    target = {"boxes": torch.tensor([[10.0, 10, 30, 30]]), "labels": torch.tensor([3]),
              "semantic": torch.zeros(64, 64, dtype=torch.long)}
    found = {"boxes": torch.tensor([[11.0, 10, 30, 31]]), "labels": torch.tensor([3]), "scores": torch.tensor([0.87])}
    fig, ax = plt.subplots()
    det.draw_scene(ax, image, target["boxes"], target["labels"], class_names=["a", "b", "c", "dress"])
    det.draw_scene(ax, image, found["boxes"], found["labels"], color="cyan", scores=found["scores"])
    assert [t.get_text() for t in ax.texts] == ["dress", "Dress 0.87"]
    with pytest.raises(ValueError, match="one label"):
        det.draw_scene(ax, image, target["boxes"], torch.tensor([3, 4]))
    plt.close(fig)
    fig = det.render_scenes([image, image], [target, target], semantic=True, detections=[found, found], title="t")
    assert len(fig.axes) == 4 and len(fig.axes[0].patches) == 2 and len(fig.axes[2].images) == 1
    plt.close(fig)
    with pytest.raises(ValueError, match="one target per image"):
        det.render_scenes([image], [target, target])
    with pytest.raises(ValueError, match="semantic"):
        det.render_scenes([image], [{"boxes": target["boxes"], "labels": target["labels"]}], semantic=True)


# ------------------------------------------------------------------------------------------- detectors
def batch(size=64, n=4):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (n, 1, size, size), dtype=torch.uint8, generator=g)
    boxes = [torch.tensor([[4.0, 6.0, 30.0, 40.0], [33.0, 20.0, 60.0, 50.0]])[: 1 + i % 2] for i in range(n)]
    labels = [torch.tensor([3, 7])[: 1 + i % 2] for i in range(n)]
    return images, yolo.pad_targets(boxes, labels, 4), boxes, labels


def test_pad_unpad_targets_and_flip():
    images, targets, boxes, labels = batch()
    assert targets.shape == (4, 4, 5) and (targets[0, 1:, 0] == -1).all()
    back = yolo.unpad_targets(targets)
    assert all(torch.equal(b["boxes"], x) and torch.equal(b["labels"], y) for b, x, y in zip(back, boxes, labels))
    with pytest.raises(ValueError, match="max_objects"):
        yolo.pad_targets(boxes, labels, 1)
    flipped_images, flipped = yolo.random_flip(images.float(), targets, torch.Generator().manual_seed(1))
    for i in range(4):
        mirrored = not torch.equal(flipped_images[i], images[i].float())
        assert torch.equal(flipped_images[i], images[i].float().flip(-1) if mirrored else images[i].float())
        expected = torch.stack([64 - targets[i, :, 3], targets[i, :, 2], 64 - targets[i, :, 1]], -1) if mirrored else None
        if mirrored:
            valid = targets[i, :, 0] >= 0
            torch.testing.assert_close(flipped[i, valid][:, [1, 2, 3]], expected[valid])
        assert torch.equal(flipped[i, :, 0], targets[i, :, 0])


def test_grid_detector_shapes_loss_and_detect():
    images, targets, _, _ = batch()
    model = yolo.GridDetector(image_size=64, grid=4, boxes_per_cell=2, num_classes=10, width=8)
    out = model(yolo.scene_input(images))
    assert out.shape == (4, 4, 4, 20)
    loss = yolo.yolo_v1_loss(model, (yolo.scene_input(images), targets))
    loss.backward()
    assert torch.isfinite(loss)
    found = model.detect(images, confidence=0.0, iou_threshold=0.5)
    assert len(found) == 4 and set(found[0]) == {"boxes", "scores", "labels"}
    with pytest.raises(ValueError, match="multiple"):
        yolo.GridDetector(image_size=60, grid=7)


def test_anchor_free_detector_learns_a_few_steps():
    images, targets, _, _ = batch()
    model = yolo.AnchorFreeDetector(num_classes=10, width=8)
    points, strides = model.points(64, "cpu")
    assert points.shape == (64 + 16, 2) and strides.unique().tolist() == [8.0, 16.0]
    out = model(yolo.scene_input(images))
    assert out.shape == (4, 80, 15)
    boxes, objectness, probs = model.decode(out, 64)
    assert boxes.shape == (4, 80, 4) and (boxes[..., 2:] >= boxes[..., :2]).all()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        loss = yolo.anchor_free_loss(model, (yolo.scene_input(images), targets))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert len(yolo.detect_all(model, images, 0.0, 0.5, batch_size=3)) == 4


def test_centre_assignment_picks_points_inside_near_the_centre():
    model = yolo.AnchorFreeDetector(width=8)
    points, strides = model.points(64, "cpu")
    targets = torch.tensor([[[1.0, 0.0, 0.0, 30.0, 30.0], [-1.0, 0, 0, 0, 0]]])
    assigned = centre_assigned = yolo.centre_assignment(points, strides, targets)[0]
    positive = points[centre_assigned == 0]
    assert len(positive) > 0 and (positive < 30).all() and (assigned[assigned != 0] == -1).all()


def _siou_one_pair(a, b):
    """SIoU for one pair, straight from the paper's formulas with the math module (an independent reference)."""
    import math
    iou = det.box_iou(torch.tensor([a]), torch.tensor([b]))[0, 0].item()
    cax, cay, cbx, cby = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2, (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    sigma = math.hypot(cbx - cax, cby - cay)
    angle = 1 - 2 * math.sin(math.asin(abs(cby - cay) / sigma) - math.pi / 4) ** 2
    cw, ch = max(a[2], b[2]) - min(a[0], b[0]), max(a[3], b[3]) - min(a[1], b[1])
    gamma = 2 - angle
    distance = (1 - math.exp(-gamma * ((cbx - cax) / cw) ** 2)) + (1 - math.exp(-gamma * ((cby - cay) / ch) ** 2))
    wa, ha, wb, hb = a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1]
    shape = (1 - math.exp(-abs(wa - wb) / max(wa, wb))) ** 4 + (1 - math.exp(-abs(ha - hb) / max(ha, hb))) ** 4
    return iou - (distance + shape) / 2


def test_siou_follows_the_paper_and_is_one_for_identical_boxes():
    pairs = [([10.0, 30.0, 50.0, 60.0], [35.0, 10.0, 70.0, 45.0]), ([0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 20.0]),
             ([5.0, 5.0, 25.0, 15.0], [8.0, 20.0, 18.0, 40.0])]
    for a, b in pairs:
        got = det.box_iou(torch.tensor([a]), torch.tensor([b]), "siou")[0, 0].item()
        assert abs(got - _siou_one_pair(a, b)) < 1e-5, (a, b, got)
    box = torch.tensor([[3.0, 4.0, 20.0, 9.0]])
    assert abs(det.box_iou(box, box, "siou").item() - 1) < 1e-6
    assert det.iou_loss(box, box, "siou").abs().item() < 1e-6
