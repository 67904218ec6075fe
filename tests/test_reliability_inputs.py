"""Nothing silently wrong, round two (issue 33): public functions given a value that used to give a wrong answer
without a word. Each test is one probe: the answer is now right, or the refusal is raised at the top of the
function and says what was given and what to pass.
"""

import numpy as np
import pytest
import torch

from utils import contrastive, detection, exercises, fusion, image_ops, pose, segmentation, vit_attention


# --------------------------------------------------------------------------------------------- segmentation
def _labels(num_classes=21, seed=0):
    """A prediction that is right on about 70% of pixels, and its target, as int64 labels."""
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_classes, (4, 64, 64), generator=generator)
    wrong = torch.randint(0, num_classes, target.shape, generator=generator)
    return torch.where(torch.rand(target.shape, generator=generator) < 0.7, target, wrong), target


@pytest.mark.parametrize("dtypes", [(torch.uint8, torch.int64), (torch.int64, torch.uint8),
                                    (torch.uint8, torch.uint8), (torch.int32, torch.int16)])
def test_segmentation_metrics_count_uint8_masks_in_int64(dtypes):
    pred, target = _labels()
    expected = segmentation.segmentation_metrics(pred, target, 21)
    got = segmentation.segmentation_metrics(pred.to(dtypes[0]), target.to(dtypes[1]), 21)
    assert got["miou"] == pytest.approx(expected["miou"]) and got["miou"] > 0.5
    assert torch.equal(segmentation.confusion_matrix(pred.to(dtypes[0]), target.to(dtypes[1]), 21),
                       segmentation.confusion_matrix(pred, target, 21))
    assert segmentation.confusion_matrix(pred.to(torch.uint8), target.to(torch.uint8), 21).dtype == torch.int64


def test_segmentation_metrics_refuse_a_bad_class_count_or_matrix():
    pred, target = _labels(5)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=f"num_classes must be a positive integer.*not {bad!r}"):
            segmentation.confusion_matrix(pred, target, bad)
    with pytest.raises(ValueError, match="square .* got \\(3, 4\\)"):
        segmentation.metrics_from_confusion(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="negative counts"):
        segmentation.metrics_from_confusion(-torch.eye(3))


# ------------------------------------------------------------------------------------------------ attention
def test_attention_rollout_refuses_logits_and_keeps_probabilities():
    logits = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(0)) * 3
    maps = [logits.softmax(-1), (logits * 0.5).softmax(-1)]
    rollout = vit_attention.attention_rollout(maps)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 5))   # still a distribution per token
    for bad, name in (([logits, maps[1]], r"attentions\[0\]"), ([maps[0], maps[1] * 2], r"attentions\[1\]"),
                      ([maps[0], maps[1].masked_fill(maps[1] > 0.5, float("nan"))], r"attentions\[1\]")):
        with pytest.raises(ValueError, match=name + r" must hold attention probabilities.*softmax\(-1\)"):
            vit_attention.attention_rollout(bad)
    assert vit_attention.attention_rollout([m.bfloat16() for m in maps]).dtype == torch.bfloat16  # rounding passes


# ---------------------------------------------------------------------------------------------- contrastive
@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), -0.1, 0.0, torch.tensor(float("nan")),
                                         torch.tensor([0.1, 0.2]), "0.1", True])
def test_losses_with_a_temperature_refuse_one_that_is_not_finite_and_positive(temperature):
    z1, z2 = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(0))
    for loss in (contrastive.info_nce, contrastive.clip_loss):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            loss(z1, z2, temperature)
    with pytest.raises(ValueError, match="t must be a finite number > 0 such as 2.0"):
        contrastive.uniformity(z1, temperature)


def test_losses_with_a_temperature_keep_their_values_for_valid_ones():
    z1, z2 = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(0))
    learnt = torch.tensor(0.07, requires_grad=True)
    assert torch.isfinite(contrastive.info_nce(z1, z2, np.float32(0.1)))
    contrastive.clip_loss(z1, z2, learnt).backward()
    assert learnt.grad is not None and torch.isfinite(learnt.grad)
    with pytest.raises(ValueError, match="margin must be a finite number ≥ 0"):
        contrastive.triplet_loss(z1, z2, z2.flip(0), float("nan"))


# ------------------------------------------------------------------------------------------------ detection
DUPLICATES = torch.tensor([[10.0, 10, 30, 30], [10, 10, 30, 30], [50, 50, 60, 60]]), torch.tensor([0.9, 0.8, 0.7])


@pytest.mark.parametrize("threshold, hint", [(50, "looks like a percentage: pass 0.5"), (-0.5, "not -0.5"),
                                             (float("nan"), "not nan"), ("0.5", "not '0.5'")])
def test_nms_refuses_thresholds_outside_zero_one(threshold, hint):
    boxes, scores = DUPLICATES
    labels = torch.zeros(3, dtype=torch.long)
    for call in (lambda: detection.nms(boxes, scores, threshold),
                 lambda: detection.batched_nms(boxes, scores, labels, threshold),
                 lambda: detection.postprocess(boxes, scores, labels, 0.25, threshold),
                 lambda: detection.match_detections(boxes, scores, boxes, threshold)):
        with pytest.raises(ValueError, match=f"iou_threshold must be a fraction in \\[0, 1\\].*{hint}"):
            call()
    assert detection.nms(boxes, scores, 0.5).tolist() == [0, 2]   # the duplicate goes, the disjoint box stays
    assert detection.nms(boxes, scores, 0.0).tolist() == [0, 2] and detection.nms(boxes, scores, 1).tolist() == [0, 1, 2]


def test_postprocess_refuses_a_confidence_in_percent():
    boxes, scores = DUPLICATES
    with pytest.raises(ValueError, match="confidence must be a fraction.*25 looks like a percentage: pass 0.25"):
        detection.postprocess(boxes, scores, torch.zeros(3, dtype=torch.long), confidence=25)
    assert len(detection.postprocess(boxes, scores, torch.zeros(3, dtype=torch.long), 0.25)["boxes"]) == 2


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_boxes_with_a_nan_or_infinite_coordinate_are_refused(bad):
    boxes, scores = DUPLICATES
    broken = boxes.clone()
    broken[1, 2] = bad
    with pytest.raises(ValueError, match=r"boxes holds a box with a NaN or infinite coordinate \(row 1: "):
        detection.nms(broken, scores, 0.5)
    with pytest.raises(ValueError, match=r"boxes2 holds a box with a NaN .*row 1"):
        detection.paired_box_iou(boxes, broken)
    with pytest.raises(ValueError, match=r"preds\[0\]\['boxes'\] holds a box with a NaN"):
        detection.mean_average_precision([{"boxes": broken, "scores": scores, "labels": torch.zeros(3)}],
                                         [{"boxes": boxes, "labels": torch.zeros(3)}])


def test_paired_box_iou_refuses_xywh_boxes_and_names_the_conversion():
    xyxy = torch.tensor([[5.0, 5, 25, 45], [30, 40, 50, 60]])
    xywh = detection.box_convert(xyxy, "xyxy", "xywh")            # (30, 40, 20, 20): x2 = 20 < x1 = 30
    assert detection.paired_box_iou(xyxy, xyxy).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match=r"boxes1 holds a box with x2 < x1 or y2 < y1 \(row 1: \[30.0, 40.0, 20.0, "
                                         r"20.0\]\).*xywh.*box_convert\(boxes, 'xywh', 'xyxy'\).*torchvision"):
        detection.paired_box_iou(xywh, xywh)
    with pytest.raises(ValueError, match=r"target holds a box with x2 < x1.*row 1"):
        detection.iou_loss(xyxy, xywh)
    batch = torch.stack([xyxy, xyxy])                              # …×4 batches keep working
    assert detection.paired_box_iou(batch, batch).shape == (2, 2)


# ----------------------------------------------------------------------------------------------------- pose
def _people(seed=0):
    """Two true people (keypoints inside a 64×64 canvas, all labelled) and a prediction near each."""
    generator = torch.Generator().manual_seed(seed)
    joints = len(pose.KEYPOINTS)
    truth = torch.cat([torch.rand(2, joints, 2, generator=generator) * 20 + torch.tensor([[[5.0, 5.0]], [[35.0, 30.0]]]),
                       torch.full((2, joints, 1), 2.0)], -1)
    predicted = truth.clone()
    predicted[..., :2] += torch.randn(2, joints, 2, generator=generator)
    boxes = torch.cat([truth[..., :2].amin(1) - 1, truth[..., :2].amax(1) + 1], 1)   # xyxy around each person
    return predicted, truth, boxes


def test_oks_refuses_areas_that_are_not_positive():
    predicted, truth, boxes = _people()
    areas = (boxes[:, 2:] - boxes[:, :2]).prod(1)
    assert (pose.oks(predicted, truth, areas) <= 1).all()
    for bad in (-areas, torch.tensor([400.0, 0.0]), torch.tensor([float("nan"), 400.0])):
        with pytest.raises(ValueError, match=r"areas must be finite and > 0, got areas\[\d\] = .*area in pixels²"):
            pose.oks(predicted, truth, bad)
    with pytest.raises(ValueError, match="tensor of one area per true person, got list"):
        pose.oks(predicted, truth, [400.0, 400.0])


def test_keypoint_ap_reads_coco_xywh_boxes_only_when_told():
    predicted, truth, boxes = _people()
    truths = [{"keypoints": truth, "boxes": boxes}]
    predictions = [{"keypoints": predicted, "scores": torch.tensor([0.9, 0.8])}]
    expected = pose.keypoint_ap(predictions, truths)
    coco = [{"keypoints": truth, "boxes": detection.box_convert(boxes, "xyxy", "xywh")}]
    assert pose.keypoint_ap(predictions, coco, box_format="xywh") == expected
    assert pose.coco_keypoint_ap(predictions, coco, box_format="xywh")["ap"] == pytest.approx(expected["ap"])
    with pytest.raises(ValueError, match=r"truths\[0\]\['boxes'\]\[1\] = .* read as xyxy has no positive width and "
                                         r"height: COCO's boxes are xywh, pass box_format='xywh'"):
        pose.keypoint_ap(predictions, coco)
    with pytest.raises(ValueError, match="box_format must be 'xyxy'"):
        pose.keypoint_ap(predictions, truths, box_format="cxcywh")


@pytest.mark.parametrize("p1, p2, bad", [((10.0, 5.0), (200.0, 5.0), "p2"), ((-3.0, 5.0), (10.0, 5.0), "p1"),
                                         ((10.0, float("nan")), (12.0, 5.0), "p1")])
def test_paf_score_refuses_limb_ends_off_the_map(p1, p2, bad):
    paf = pose.limb_paf(40, 50, (10.0, 5.0), (45.0, 5.0), limb_width=2.0)   # a field along the top rows
    with pytest.raises(ValueError, match=f"{bad} holds the point .* off the map of 40×50 pixels: pass pixel "
                                         r"coordinates with 0 ≤ x ≤ 49 and 0 ≤ y ≤ 39"):
        pose.paf_score(paf, torch.tensor(p1), torch.tensor(p2))
    assert pose.paf_score(paf, torch.tensor([10.0, 5.0]), torch.tensor([49.5, 5.0])).item() > 0.8   # to the edge


# --------------------------------------------------------------------------------------------------- fusion
def _grey(seed=0, size=32):
    """A smooth grey image on 0–255 (float64) with every level from dark to bright."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 1, 6, 6, generator=generator, dtype=torch.float64)
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    return (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255


def test_fusion_metrics_refuse_a_unit_range_image_that_a_bicubic_resize_pushed_past_one():
    ir, vis = _grey(0), _grey(1)
    fused = torch.where(ir > 128, 255.0, vis / 2)          # hard edges: bicubic overshoots them
    overshot = torch.nn.functional.interpolate((fused / 255)[None, None], scale_factor=2, mode="bicubic",
                                               align_corners=False)[0, 0].clamp(min=0)     # in [0, ≈1.1]
    assert 1 < overshot.max() < image_ops.UNIT_RANGE_CEILING
    big = [torch.nn.functional.interpolate(x[None, None], scale_factor=2, mode="bilinear")[0, 0] for x in (ir, vis)]
    with pytest.raises(ValueError, match=r"fused is a float image with values in \[0, 1.\d*\].*pass fused \* 255, "
                                         r"clamped with .clamp\(0, 255\)"):
        fusion.fusion_metrics(overshot, *big)
    right = fusion.fusion_metrics((overshot * 255).clamp(0, 255), *big)
    assert right["EN"] > 6     # read as 0–255 the [0, 1] image had EN below 1 bit
    with pytest.raises(ValueError, match=r"data_range=255.0: pass data_range=1.0"):
        image_ops.ssim(overshot[None, None], overshot[None, None])


def test_fusion_metrics_refuse_values_that_fit_neither_scale_and_keep_valid_ones():
    ir, vis = _grey(0), _grey(1)
    fused = (ir + vis) / 2
    before = fusion.fusion_metrics(fused, ir, vis)
    assert fusion.fusion_metrics(fused.round().to(torch.uint8), ir, vis)["EN"] == pytest.approx(before["EN"])
    with pytest.raises(ValueError, match=r"fused has values in \[-5, 260\], outside the 0–255 scale.*fused.clamp\(0, 255\)"):
        fusion.fusion_metrics(ir * 265 / 255 - 5, ir, vis)
    dark = torch.tensor([[0, 1], [2, 1]], dtype=torch.uint8).repeat(8, 8)    # a black uint8 image is never refused
    assert fusion.fusion_metrics(dark, dark, dark)["PSNR"] == float("inf")
    for bad in (0, -1.0, float("nan"), "255"):
        with pytest.raises(ValueError, match="data_range must be the span of the pixel scale"):
            image_ops.ssim(fused[None, None], fused[None, None], bad)


# ------------------------------------------------------------------------------------------------------ SAM
@pytest.fixture(scope="module")
def small_sam():
    from utils.models.sam import SAM

    torch.manual_seed(0)
    model = SAM(dim=32, width=16, image_size=64).eval()
    with torch.no_grad():
        return model, model.embed(torch.rand(2, 1, 64, 64))


def _predict(small_sam, points, labels):
    model, embedding = small_sam
    with torch.no_grad():
        return model.predict(embedding[:1], torch.tensor([points], dtype=torch.float32), torch.tensor([labels]))


def test_sam_refuses_a_click_off_the_image(small_sam):
    with pytest.raises(ValueError, match=r"points holds the point \(x=500, y=-300\) .*off the image of 64×64 pixels: "
                                         r"pass pixel coordinates with 0 ≤ x ≤ 63"):
        _predict(small_sam, [[500.0, -300.0]], [1])
    masks, iou = _predict(small_sam, [[63.0, 0.0], [900.0, 900.0]], [1, -1])   # padding points are not read
    assert masks.shape == (1, 3, 64, 64) and torch.isfinite(iou).all()


def test_sam_refuses_box_corners_in_swapped_order_or_unpaired(small_sam):
    with pytest.raises(ValueError, match=r"prompt 0's box corners are swapped: top-left \(label 2\) at \[40.0, 30.0\] "
                                         r"lies right of or below bottom-right \(label 3\) at \[10.0, 20.0\]"):
        _predict(small_sam, [[40.0, 30.0], [10.0, 20.0]], [2, 3])
    with pytest.raises(ValueError, match="1 point\\(s\\) labelled 2 and 0 labelled 3: a box is two corners"):
        _predict(small_sam, [[10.0, 20.0], [5.0, 5.0]], [2, 1])
    assert _predict(small_sam, [[10.0, 20.0], [40.0, 30.0]], [2, 3])[0].shape == (1, 3, 64, 64)


@pytest.mark.parametrize("label", [5, -2])
def test_sam_refuses_a_label_outside_the_prompt_encoders_set(small_sam, label):
    with pytest.raises(ValueError, match=f"labels must be 0 \\(background\\), 1 \\(foreground\\), 2 \\(box top-left\\), "
                                         f"3 \\(box bottom-right\\) or −1 \\(padding\\), got {label}"):
        _predict(small_sam, [[10.0, 20.0]], [label])
    with pytest.raises(ValueError, match="labels must be integers"):
        _predict(small_sam, [[10.0, 20.0]], [1.0])


def test_sam_refuses_uint8_images_with_the_conversion(small_sam):
    model, _ = small_sam
    images = torch.randint(0, 256, (2, 1, 64, 64), dtype=torch.uint8)
    points, labels = torch.tensor([[[10.0, 20.0]]] * 2), torch.ones(2, 1, dtype=torch.long)
    with pytest.raises(ValueError, match=r"images are torch.uint8, but the encoder reads floats in \[0, 1\]: pass "
                                         r"images.float\(\) / 255 \(utils.sam.scene_input\(images\)\)"):
        model(images, points, labels)
    with pytest.raises(ValueError, match="images must be N×1×64×64"):
        model.embed(torch.rand(2, 3, 64, 64))
    from utils.sam import scene_input

    with torch.no_grad():
        assert model(scene_input(images), points, labels)[0].shape == (2, 3, 64, 64)


def test_sam_checks_prompts_everywhere_but_inside_a_training_step_on_a_device(small_sam):
    """On the CPU, or without gradients, every prompt is checked; a training step on a GPU is not made to wait for
    the device (its prompts are drawn valid). A meta tensor stands in for the GPU: it has no values to check."""
    from utils.models.sam import _check_prompts

    model, embedding = small_sam
    with pytest.raises(ValueError, match="off the image"):
        model.predict(embedding[:1], torch.tensor([[[500.0, 1.0]]]), torch.tensor([[1]]))   # gradients on, CPU
    on_device = [torch.zeros(1, 32, 16, 16), torch.full((1, 1, 2), 500.0), torch.full((1, 1), 5)]
    _check_prompts(*(t.to("meta") for t in on_device), 64, 32)                                 # skipped
    with pytest.raises(ValueError, match="labels must be 0"):
        _check_prompts(*on_device, 64, 32)


# ---------------------------------------------------------------------------------------------- receptive field
def test_receptive_field_checks_the_channels_against_the_first_convolution(capsys):
    from torch import nn

    from utils.receptive_field import receptive_field

    model = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 12 * 12, 10))
    assert receptive_field(model, (1, 28, 28))[-1].name == "output"
    with pytest.raises(ValueError, match=r"input_shape \(3, 28, 28\) has 3 channel\(s\), but the model's first "
                                         r"convolution '2' takes 1: pass input_shape=\(1, 28, 28\)"):
        receptive_field(model, (3, 28, 28))
    with pytest.raises(ValueError, match=r"does not run on one input of shape \(1, 32, 32\) \(mat1 and mat2"):
        receptive_field(model, (1, 32, 32))
    assert "Traceback" not in capsys.readouterr().err     # one sentence, not ShapeProp's trace


# ------------------------------------------------------------------------------------------------ exercises
def _softmax(logits, axis=-1):
    shifted = np.exp(logits - logits.max(axis, keepdims=True))
    return shifted / shifted.sum(axis, keepdims=True)


@pytest.mark.parametrize("returned, said", [
    (lambda z, axis=-1: None, r"your function returned None: did you forget `return`\?"),
    (lambda z, axis=-1: "softmax", r"your function returned a string \('softmax'\); expected one array of shape "
                                   r"\(4, 10\)"),
    (lambda z, axis=-1: [[1.0, 2.0], [3.0]],
     r"your function returned a ragged list \(items of different shapes or kinds\)"),
    (lambda z, axis=-1: list(_softmax(z, axis)),
     r"your function returned a list of 4 items; expected one array of shape \(4, 10\)"),
    (lambda z, axis=-1: (_softmax(z, axis), axis), r"your function returned a tuple of 2 values; expected one array"),
    (lambda z, axis=-1: {"p": _softmax(z, axis)}, r"your function returned a dict; expected one array"),
])
def test_exercise_check_names_what_a_function_returned_instead_of_numbers(returned, said):
    with pytest.raises(AssertionError, match=r"softmax: case 1 of 5 \(z=array 4×10; .*\): " + said):
        exercises.verify("softmax", returned)


def test_exercise_check_names_what_a_function_returned_instead_of_several_values(capsys):
    reference = exercises.BY_NAME["lstm_cell"].reference
    with pytest.raises(AssertionError, match=r"your function returned one array; expected 2 values \(return them as a tuple\)"):
        exercises.verify("lstm_cell", lambda *args: reference(*args)[0])
    with pytest.raises(AssertionError, match=r"value 2 of what your function returned is None; expected numbers"):
        exercises.verify("lstm_cell", lambda *args: (reference(*args)[0], None))
    with pytest.raises(AssertionError, match=r"your function returned None: did you forget `return`\?"):
        exercises.verify("lstm_cell", lambda *args: None)
    exercises.check("lstm_cell", lambda *args: list(reference(*args)))   # a list of the two values is fine
    exercises.check("softmax", _softmax)
    assert capsys.readouterr().out.count("✓") == 2


def test_sam_proposals_refuse_thresholds_outside_zero_one(small_sam):
    from utils import sam

    model, _ = small_sam
    images = torch.randint(0, 256, (1, 1, 64, 64), dtype=torch.uint8)
    for name in ("min_iou", "min_stability", "duplicate_iou"):
        with pytest.raises(ValueError, match=f"{name} must be a fraction in \\[0, 1\\].*pass 0.7"):
            sam.propose_masks(model, images, grid=2, **{name: 70})
    with pytest.raises(ValueError, match="grid must be a positive integer"):
        sam.propose_masks(model, images, grid=0)
