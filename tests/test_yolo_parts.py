"""The YOLO parts of Chapter 4's section 12 (utils/yolo_parts.py), checked against their definitions."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utils.models.yolo import Bottleneck
from utils.yolo_parts import (ELAN, EELAN, SPP, SPPF, CSPBlock, Darknet19, Focus, RepConv, RepVGGBlock, SimSPPF,
                              YOLOv3Head, decode_yolov3, focus_as_conv, focus_slices, simota_assign, simota_cost)


def _randomise_batchnorms(module):
    generator = torch.Generator().manual_seed(0)
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            c = bn.num_features
            bn.running_mean.copy_(torch.randn(c, generator=generator))
            bn.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
            bn.weight.data.copy_(torch.randn(c, generator=generator))
            bn.bias.data.copy_(torch.randn(c, generator=generator))


def test_yolov3_head_has_255_channels_for_coco_and_decodes_at_the_cell_centre():
    head = YOLOv3Head((32, 64, 128), num_classes=80)
    maps = head([torch.zeros(2, 32, 52, 52), torch.zeros(2, 64, 26, 26), torch.zeros(2, 128, 13, 13)])
    assert [m.shape for m in maps] == [(2, 3, s, s, 85) for s in (52, 26, 13)]
    assert all(layer.out_channels == 255 for layer in head.outputs)
    anchors = torch.tensor([[10.0, 13.0], [16.0, 30.0], [33.0, 23.0]])
    boxes, objectness, classes = decode_yolov3(torch.zeros(1, 3, 13, 13, 85), anchors, stride=32)
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    torch.testing.assert_close(centre[0, 0, 2, 5], torch.tensor([5.5 * 32, 2.5 * 32]))
    torch.testing.assert_close(boxes[0, 1, 0, 0, 2:] - boxes[0, 1, 0, 0, :2], anchors[1])
    assert torch.all(objectness == 0.5) and torch.all(classes == 0.5), "independent sigmoids, not a softmax"
    with pytest.raises(ValueError, match="one per scale"):
        head([torch.zeros(1, 32, 8, 8)])


def test_sppf_equals_spp_with_the_same_weights():
    torch.manual_seed(0)
    spp, sppf = SPP(16, 24).eval(), SPPF(16, 24).eval()
    sppf.reduce.load_state_dict(spp.reduce.state_dict())
    sppf.fuse.load_state_dict(spp.fuse.state_dict())
    x = torch.randn(2, 16, 13, 13)
    torch.testing.assert_close(sppf(x), spp(x), rtol=0, atol=0)


def test_focus_is_space_to_depth_then_a_convolution_and_a_6x6_convolution():
    torch.manual_seed(0)
    focus = Focus(3, 8)
    x = torch.randn(2, 3, 16, 16)
    # pixel_unshuffle orders channels (c, i, j); Focus orders them (offset, c) with offsets (0,0), (1,0), (0,1), (1,1)
    unshuffled = F.pixel_unshuffle(x, 2).view(2, 3, 2, 2, 8, 8)
    reordered = torch.cat([unshuffled[:, :, i, j] for i, j in ((0, 0), (1, 0), (0, 1), (1, 1))], 1)
    torch.testing.assert_close(focus_slices(x), reordered)
    torch.testing.assert_close(focus_as_conv(focus)(x), focus(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="even H and W"):
        focus(torch.zeros(1, 3, 15, 16))


def test_repvgg_reparameterisation_is_exact_in_eval_mode():
    torch.manual_seed(0)
    block = RepVGGBlock(8)
    _randomise_batchnorms(block)
    with pytest.raises(RuntimeError, match="eval"):
        block.reparameterize()
    block.eval()
    x = torch.randn(2, 8, 9, 9)
    before = block(x)
    fused = block.reparameterize()
    assert fused.kernel_size == (3, 3) and fused.bias is not None
    torch.testing.assert_close(block(x), before, rtol=1e-4, atol=1e-5)


def _simota_loop(cost, ious, candidate_k):
    """Independent reference: YOLOX's dynamic_k_matching written with loops."""
    matching = torch.zeros_like(cost, dtype=torch.bool)
    for g in range(cost.shape[0]):
        k = max(1, int(sum(sorted(ious[g].tolist(), reverse=True)[:candidate_k])))
        for a in sorted(range(cost.shape[1]), key=lambda a: cost[g, a].item())[:k]:
            matching[g, a] = True
    for a in range(cost.shape[1]):
        owners = [g for g in range(cost.shape[0]) if matching[g, a]]
        if len(owners) > 1:
            best = min(owners, key=lambda g: cost[g, a].item())
            for g in owners:
                matching[g, a] = g == best
    return matching


@pytest.mark.parametrize("seed", range(5))
def test_simota_matches_a_loop_and_gives_each_anchor_at_most_one_object(seed):
    generator = torch.Generator().manual_seed(seed)
    ious = torch.rand(4, 30, generator=generator) ** 3
    cost = torch.rand(4, 30, generator=generator) + 3 * (1 - ious)
    matching = simota_assign(cost, ious, candidate_k=10)
    assert torch.equal(matching, _simota_loop(cost, ious, 10))
    assert matching.sum(0).max() <= 1, "an anchor belongs to one object at most"


def test_simota_gives_a_well_covered_object_more_anchors_and_checks_shapes():
    ious = torch.zeros(2, 20)
    ious[0, :10] = 0.9                          # big object: top-10 IoUs sum to 9 → k = 9
    ious[1, 10:12] = 0.3                        # small object: sum 0.6 → k = max(1, 0) = 1
    cost = 1 - ious
    matching = simota_assign(cost, ious)
    assert matching.sum(1).tolist() == [9, 1]
    with pytest.raises(ValueError, match="G×A"):
        simota_assign(cost, ious[:, :5])


def test_simota_cost_prefers_the_right_class_and_the_overlapping_box_inside_the_candidates():
    gt_boxes, gt_labels = torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([2])
    pred_boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0],
                               [0.0, 0.0, 10.0, 10.0]])
    pred_scores = torch.full((4, 3), 0.1)
    pred_scores[0, 2] = pred_scores[2, 2] = pred_scores[3, 2] = 0.9
    candidate = torch.tensor([[True, True, True, False]])
    cost, ious = simota_cost(pred_boxes, pred_scores, gt_boxes, gt_labels, candidate)
    assert cost.shape == ious.shape == (1, 4)
    assert cost[0, 0] < cost[0, 1], "the right class costs less"
    assert cost[0, 0] < cost[0, 2], "the better-overlapping box costs less"
    assert cost[0, 3] > 1e4, "outside the candidate region costs 1e5 more"
    torch.testing.assert_close(ious[0], torch.tensor([1.0, 1.0, 25 / 175, 1.0]))


def test_mosaic_tiles_four_scenes_and_keeps_boxes_inside_the_window():
    from utils.yolo_parts import mosaic

    images = torch.zeros(4, 1, 32, 32, dtype=torch.uint8)
    boxes, labels = [], []
    for i in range(4):
        images[i, :, 8:24, 8:24] = 50 * (i + 1)                  # one 16×16 square per scene, its own brightness
        boxes.append(torch.tensor([[8.0, 8.0, 24.0, 24.0]]))
        labels.append(torch.tensor([i]))
    generator = torch.Generator().manual_seed(0)
    out, out_boxes, out_labels = mosaic(images, boxes, labels, 6, generator)
    assert out.shape == (6, 1, 32, 32) and out.dtype == torch.uint8
    for image, b, l in zip(out, out_boxes, out_labels):
        assert len(b) == len(l) and len(b) >= 1, "a window at offset S/4…3S/4 shows at least one square"
        assert torch.all(b[:, :2] >= 0) and torch.all(b[:, 2:] <= 32) and torch.all(b[:, 2:] - b[:, :2] >= 3)
        for box, label in zip(b, l):                                # each kept box still frames its own square
            x1, y1, x2, y2 = box.round().long().tolist()
            assert torch.all(image[0, y1:y2, x1:x2] == 50 * (label + 1))
    with pytest.raises(ValueError, match="square"):
        mosaic(images[:, :, :, :30], boxes, labels, 1, generator)


def test_csp_block_runs_its_bottlenecks_at_half_width():
    block = CSPBlock(32, 64, depth=2)
    assert block(torch.zeros(1, 32, 8, 8)).shape == (1, 64, 8, 8)
    assert all(b.block[0][0].in_channels == 32 for b in block.blocks), "bottlenecks at c_out / 2"


def test_cross_minibatch_statistics_equal_batchnorm_over_the_whole_batch():
    from utils.yolo_parts import cross_minibatch_statistics

    x = torch.randn(16, 3, 5, 5, dtype=torch.float64) * 2 + 1
    mean, var = cross_minibatch_statistics(list(x.split(4)))
    torch.testing.assert_close(mean, x.mean((0, 2, 3)))
    torch.testing.assert_close(var, x.var((0, 2, 3), unbiased=False))
    with pytest.raises(ValueError, match="same C"):
        cross_minibatch_statistics([x[:2], x[:2, :2]])


def test_detr_matching_by_the_hungarian_algorithm_is_optimal():
    import itertools

    from scipy.optimize import linear_sum_assignment

    from utils.yolo_parts import detr_matching_cost

    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(6, 2, generator=generator) * 0.5
    pred_boxes = torch.cat([corners, corners + 0.2 + torch.rand(6, 2, generator=generator) * 0.3], 1)
    gt_boxes = pred_boxes[[4, 1, 2]] + 0.01
    cost = detr_matching_cost(torch.rand(6, 5, generator=generator).softmax(-1), pred_boxes,
                              torch.tensor([0, 3, 1]), gt_boxes)
    rows, cols = linear_sum_assignment(cost.numpy())
    best = min(sum(cost[q, g].item() for g, q in enumerate(queries))
               for queries in itertools.permutations(range(6), 3))
    assert abs(cost[rows, cols].sum().item() - best) < 1e-5
    assert sorted(zip(cols.tolist(), rows.tolist())) == [(0, 4), (1, 1), (2, 2)], "each object finds its own query"


def _conv_params(c_in, c_out, kernel):
    """Conv (no bias) + BatchNorm (weight, bias): the parameters of one `conv` unit."""
    return c_in * c_out * kernel * kernel + 2 * c_out


def test_simsppf_is_sppf_with_relu_and_takes_its_weights():
    torch.manual_seed(0)
    sppf, sim = SPPF(16, 24).eval(), SimSPPF(16, 24).eval()
    with torch.no_grad():
        for unit in (sppf.reduce, sppf.fuse):
            unit[0].weight.abs_()                           # every pre-activation takes the input's sign
    sim.load_state_dict(sppf.state_dict())                  # strict: same keys and shapes
    activations = [type(m) for m in sim.modules() if isinstance(m, (nn.ReLU, nn.SiLU))]
    assert activations == [nn.ReLU, nn.ReLU], "both Conv-BN units end in ReLU, none in SiLU"
    assert sim(torch.zeros(2, 16, 13, 13)).shape == (2, 24, 13, 13)
    positive = torch.rand(2, 16, 13, 13) + 10
    torch.testing.assert_close(sim(positive), sppf(positive), rtol=0, atol=1e-5)
    negative = -torch.rand(2, 16, 13, 13)
    assert torch.all(sim(negative) == 0) and sppf(negative).min() < -0.1, "ReLU cuts what SiLU lets through"


@pytest.mark.parametrize("depth", [1, 3])
def test_csp1_has_residual_bottlenecks_and_csp2_the_same_convolutions_without(depth):
    torch.manual_seed(0)
    csp1, csp2 = CSPBlock(32, 64, depth).eval(), CSPBlock(32, 64, depth, shortcut=False).eval()
    hidden = 32
    expected = 2 * _conv_params(32, hidden, 1) + 2 * depth * _conv_params(hidden, hidden, 3) + _conv_params(64, 64, 1)
    assert sum(p.numel() for p in csp1.parameters()) == sum(p.numel() for p in csp2.parameters()) == expected
    for block in (csp1, csp2):
        assert block(torch.zeros(2, 32, 8, 8)).shape == (2, 64, 8, 8)
        assert sum(isinstance(m, nn.Conv2d) for m in block.blocks.modules()) == 2 * depth
    assert sum(isinstance(m, Bottleneck) for m in csp1.blocks) == depth and not any(
        isinstance(m, Bottleneck) for m in csp2.blocks)
    # Zero each pair's last BatchNorm: its convolutions output 0, so only a shortcut can carry the input on.
    with torch.no_grad():
        for pair in (*csp1.blocks, *csp2.blocks):
            last_bn = [m for m in pair.modules() if isinstance(m, nn.BatchNorm2d)][-1]
            last_bn.weight.zero_()
            last_bn.bias.zero_()
    x = torch.randn(2, hidden, 8, 8)
    assert torch.equal(csp1.blocks(x), x), "CSP1_X: x + 0 through every residual bottleneck"
    assert not csp2.blocks(x).any(), "CSP2_X: no shortcut, the zeroed convolution's 0 is all that is left"
    with pytest.raises(ValueError, match="at least 2"):
        CSPBlock(8, 1)


def test_elan_concatenates_every_stage_in_yolov7_order_and_fuses():
    torch.manual_seed(0)
    elan = ELAN(16, 32, stages=2, convs_per_stage=2).eval()
    hidden = 8
    expected = (2 * _conv_params(16, hidden, 1) + 4 * _conv_params(hidden, hidden, 3)
                + _conv_params(4 * hidden, 32, 1))
    assert sum(p.numel() for p in elan.parameters()) == expected, "all 4 kept maps enter the 1×1 fuse"
    x = torch.randn(2, 16, 10, 10)
    a, b = elan.a(x), elan.b(x)
    c = elan.stages[0](b)
    d = elan.stages[1](c)
    torch.testing.assert_close(elan(x), elan.fuse(torch.cat([d, c, b, a], 1)))     # YOLOv7's Concat [-1, -3, -5, -6]
    assert ELAN(16, 32, hidden=4, stages=3)(x).shape == (2, 32, 10, 10)
    with pytest.raises(ValueError, match="hidden"):
        ELAN(16, 2)                                   # c_out // 4 = 0 channels per kept map


def test_eelan_adds_its_groups_and_with_one_group_is_an_elan():
    torch.manual_seed(0)
    e_elan = EELAN(16, 32, groups=3).eval()
    x = torch.randn(2, 16, 10, 10)
    torch.testing.assert_close(e_elan(x), sum(branch(x) for branch in e_elan.branches))
    assert sum(p.numel() for p in e_elan.parameters()) == 3 * sum(p.numel() for p in ELAN(16, 32).parameters())
    single = EELAN(16, 32, groups=1).eval()
    torch.testing.assert_close(single(x), single.branches[0](x))


@pytest.mark.parametrize("identity", [True, False])
def test_repconv_folds_into_one_3x3_convolution_with_silu(identity):
    torch.manual_seed(0)
    block = RepConv(8, identity=identity)
    _randomise_batchnorms(block)
    assert isinstance(block.act, nn.SiLU)
    assert (block.identity is not None) == identity, "RepConvN has no identity branch"
    block.eval()
    x = torch.randn(2, 8, 9, 9)
    before = block(x)
    assert before.min() < 0, "SiLU, not ReLU: some outputs are negative"
    fused = block.reparameterize()
    assert fused.kernel_size == (3, 3)
    torch.testing.assert_close(block(x), before, rtol=0, atol=1e-5)
    # the fused kernel holds the identity only when there is one: its centre differs from the two-branch fold
    two_branch = RepConv(8, identity=False)
    two_branch.load_state_dict({k: v for k, v in block.state_dict().items() if not k.startswith(("identity", "fused"))},
                               strict=False)
    centre_gap = (two_branch.eval().reparameterize().weight - fused.weight).abs()[..., 1, 1].max()
    assert (centre_gap > 1e-3) == identity


def test_darknet19_has_19_convolutions_5_pools_and_the_papers_20_8_million_parameters():
    with torch.device("meta"):                                  # shapes and counts only: nothing computed or drawn
        darknet = Darknet19()
        features = darknet.features(torch.empty(1, 3, 416, 416))
        logits = darknet(torch.empty(2, 3, 448, 448))
    convs = [m for m in darknet.modules() if isinstance(m, nn.Conv2d)]
    kernels = [c.kernel_size[0] for c in convs]
    assert len(convs) == 19 and sum(isinstance(m, nn.MaxPool2d) for m in darknet.modules()) == 5
    assert kernels == [3, 3, 3, 1, 3, 3, 1, 3, 3, 1, 3, 1, 3, 3, 1, 3, 1, 3, 1], "3×3 and 1×1 in turn, as Table 6"
    assert sum(isinstance(m, nn.BatchNorm2d) for m in darknet.modules()) == 18, "every unit but the classifier"
    assert all(m.negative_slope == 0.1 for m in darknet.modules() if isinstance(m, nn.LeakyReLU))
    # by formula: each unit's kernel (no bias) + BatchNorm's γ and β; the classifier's 1×1 with its bias
    channels, expected = 3, 0
    for conv_layer in convs[:-1]:
        expected += channels * conv_layer.out_channels * conv_layer.kernel_size[0] ** 2 + 2 * conv_layer.out_channels
        channels = conv_layer.out_channels
    expected += 1024 * 1000 + 1000
    total = sum(p.numel() for p in darknet.parameters())
    assert total == expected == 20_842_376, f"{total:,} parameters"
    assert features.shape == (1, 1024, 13, 13) and logits.shape == (2, 1000), "input / 32 (416 → 13); 448 classifies"
    with pytest.raises(ValueError, match="multiples of 32"):
        Darknet19(num_classes=10)(torch.zeros(1, 3, 100, 96))
