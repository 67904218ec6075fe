"""Chapter 8: heatmaps, PAFs and their line integral by hand, peak NMS against a brute-force scan, Hungarian matching
against every permutation and greedy's counter-example, people assembled from true maps, OKS and keypoint AP
against pycocotools' COCOeval, the stick-figure scenes, the staged network, the explorer's figure, bad input."""

import itertools
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from utils import pose
from utils.pose_scenes import MIN_INSIDE, draw_people, pose_scenes, random_pose
from utils.models.pose import PoseNet, predict_maps, staged_loss

J, L = len(pose.KEYPOINTS), len(pose.LIMBS)


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """Scenes are cached under a temporary data folder, never in the repository's data/."""
    monkeypatch.setattr("utils.scenes.data_dir", lambda: tmp_path)


@pytest.fixture
def scenes():
    return pose_scenes("test", 24, size=48, min_scale=16, max_scale=32, max_people=4)


# ------------------------------------------------------------------------------------------------- targets
def test_gaussian_heatmap_is_the_formula_at_integer_pixels():
    heat = pose.gaussian_heatmap(7, 9, (3.0, 2.5), sigma=1.5)
    assert heat.shape == (7, 9)
    for y, x in itertools.product(range(7), range(9)):
        expected = math.exp(-((x - 3.0) ** 2 + (y - 2.5) ** 2) / (2 * 1.5 ** 2))
        assert heat[y, x].item() == pytest.approx(expected, rel=1e-6)
    assert pose.gaussian_heatmap(5, 5, (2, 3), 1.0)[3, 2] == 1.0          # row y = 3, column x = 2
    with pytest.raises(ValueError, match="sigma"):
        pose.gaussian_heatmap(5, 5, (2, 2), 0)
    with pytest.raises(ValueError, match="height"):
        pose.gaussian_heatmap(0, 5, (2, 2), 1)
    with pytest.raises(ValueError, match="center_xy"):
        pose.gaussian_heatmap(5, 5, (1, 2, 3), 1)


def test_limb_paf_unit_vectors_inside_the_limb_zero_outside():
    field = pose.limb_paf(9, 12, (2.0, 4.0), (8.0, 4.0), limb_width=1.0)       # horizontal limb, row 4
    assert field.shape == (2, 9, 12)
    inside = field.norm(dim=0) > 0
    assert inside.sum() == 3 * 7                                         # rows 3–5, columns 2–8
    assert inside[3:6, 2:9].all()
    torch.testing.assert_close(field[:, inside], torch.tensor([[1.0], [0.0]]).expand(2, 21))
    diagonal = pose.limb_paf(20, 20, (2.0, 3.0), (14.0, 12.0), limb_width=1.5)
    norms = diagonal.norm(dim=0)
    assert torch.allclose(norms[norms > 0], torch.ones(1)) and (norms > 0).sum() > 20
    torch.testing.assert_close(diagonal[:, 7, 8], torch.tensor([0.8, 0.6]))     # (12, 9) / 15
    assert pose.limb_paf(8, 8, (3, 3), (3, 3), 1.0).abs().sum() == 0          # no direction, no field
    with pytest.raises(ValueError, match="limb_width"):
        pose.limb_paf(8, 8, (1, 1), (5, 5), 0)


def test_pose_targets_are_the_single_instance_maps():
    person = torch.zeros(1, 1, J, 3)
    person[0, 0, :, :2] = torch.rand(J, 2, generator=torch.Generator().manual_seed(1)) * 30 + 1
    person[0, 0, :, 2] = 2
    person[0, 0, 3, 2] = 0                                              # one unlabelled keypoint
    heat, pafs = pose.pose_targets(person, size=32, stride=1, sigma=2.0, limb_width=1.5)
    assert heat.shape == (1, J, 32, 32) and pafs.shape == (1, 2 * L, 32, 32)
    for j in range(J):
        expected = torch.zeros(32, 32) if j == 3 else pose.gaussian_heatmap(32, 32, person[0, 0, j, :2], 2.0)
        torch.testing.assert_close(heat[0, j], expected)
    for k, (a, b) in enumerate(pose.LIMBS):
        expected = pose.limb_paf(32, 32, person[0, 0, a, :2], person[0, 0, b, :2], 1.5)
        if 3 in (a, b):
            expected = torch.zeros_like(expected)
        torch.testing.assert_close(pafs[0, 2 * k:2 * k + 2], expected)


def test_pose_targets_max_heatmaps_and_average_crossing_fields():
    people = torch.zeros(1, 2, J, 3)
    people[0, :, :, 2] = 2
    people[0, 0, 1, :2], people[0, 0, 0, :2] = torch.tensor([2.0, 10.0]), torch.tensor([18.0, 10.0])   # →
    people[0, 1, 1, :2], people[0, 1, 0, :2] = torch.tensor([10.0, 2.0]), torch.tensor([10.0, 18.0])   # ↓
    people[0, :, 2:, 2] = 0
    heat, pafs = pose.pose_targets(people, size=21, stride=1)
    assert heat[0, 1, 10, 2] == 1 and heat[0, 1, 2, 10] == 1              # both necks keep their peak
    torch.testing.assert_close(pafs[0, :2, 10, 10], torch.tensor([0.5, 0.5]))   # the crossing: the average
    torch.testing.assert_close(pafs[0, :2, 10, 4], torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="stride"):
        pose.pose_targets(people, size=21, stride=2)


# ------------------------------------------------------------------------------------------------ decoding
def test_paf_score_is_the_sampled_line_integral():
    field = pose.limb_paf(20, 20, (3.0, 5.0), (15.0, 5.0), 1.0)
    assert pose.paf_score(field, (3.0, 5.0), (15.0, 5.0)).item() == pytest.approx(1.0)
    assert pose.paf_score(field, (15.0, 5.0), (3.0, 5.0)).item() == pytest.approx(-1.0)
    assert pose.paf_score(field, (9.0, 0.0), (9.0, 12.0)).item() == pytest.approx(0.0)      # across the limb
    assert pose.paf_score(field, (3.0, 15.0), (15.0, 15.0)).item() == 0                      # empty space
    # half of the 10 samples (x = 3…9) on the limb: the other half, past its end, sees no field
    half = pose.paf_score(field, (3.0, 5.0), (16.5, 5.0), samples=10).item()
    manual = sum(1.0 for t in np.linspace(0, 1, 10) if round(3 + 13.5 * t) <= 15) / 10
    assert half == pytest.approx(manual)
    scores = pose.paf_score(field, torch.tensor([[3.0, 5.0], [15.0, 5.0]])[:, None], torch.tensor([[15.0, 5.0]]))
    assert scores.shape == (2, 1) and scores[1, 0] == 0                                       # zero length: 0
    with pytest.raises(ValueError, match="2×H×W"):
        pose.paf_score(torch.zeros(3, 5, 5), (0, 0), (1, 1))
    with pytest.raises(ValueError, match="samples"):
        pose.paf_score(field, (0, 0), (1, 1), samples=1)


def test_find_peaks_equals_a_brute_force_scan():
    generator = torch.Generator().manual_seed(3)
    maps = torch.rand(3, 12, 15, generator=generator)
    peaks = pose.find_peaks(maps, threshold=0.5)
    for channel, found in zip(maps, peaks):
        expected = set()
        for y, x in itertools.product(range(12), range(15)):
            window = channel[max(0, y - 1):y + 2, max(0, x - 1):x + 2]
            if channel[y, x] > 0.5 and channel[y, x] == window.max():
                expected.add((x, y))
        assert {(int(x), int(y)) for x, y, _ in found.tolist()} == expected
        assert (found[:, 2].diff() <= 0).all()                                   # best first
    two = pose.gaussian_heatmap(20, 20, (4, 5), 2.0).maximum(0.7 * pose.gaussian_heatmap(20, 20, (14, 12), 2.0))
    found = pose.find_peaks(two[None], 0.1)[0]
    assert found[:, :2].tolist() == [[4.0, 5.0], [14.0, 12.0]] and found[1, 2] == pytest.approx(0.7)
    with pytest.raises(ValueError, match="J×H×W"):
        pose.find_peaks(torch.zeros(5, 5))


def test_hungarian_matching_is_optimal_and_greedy_is_not_always():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        scores = torch.rand(4, 4, generator=generator)
        chosen = pose.match_limbs(scores, "hungarian", min_score=0.0)
        best = max(sum(scores[i, p[i]].item() for i in range(4)) for p in itertools.permutations(range(4)))
        assert chosen[:, 2].sum().item() == pytest.approx(best)
        greedy = pose.match_limbs(scores, "greedy", min_score=0.0)
        assert greedy[:, 2].sum().item() <= best + 1e-9
        for matching in (chosen, greedy):                                       # one-to-one
            assert len(set(matching[:, 0].tolist())) == len(matching) == len(set(matching[:, 1].tolist()))
    trap = torch.tensor([[0.9, 0.8], [0.7, 0.0]])
    assert pose.match_limbs(trap, "greedy")[:, :2].tolist() == [[0, 0]]
    assert sorted(pose.match_limbs(trap, "hungarian")[:, :2].tolist()) == [[0, 1], [1, 0]]
    assert len(pose.match_limbs(torch.full((3, 2), 0.04), "hungarian", min_score=0.05)) == 0
    assert pose.match_limbs(torch.zeros(0, 3)).shape == (0, 3)
    with pytest.raises(ValueError, match="method"):
        pose.match_limbs(trap, "auction")
    with pytest.raises(ValueError, match="min_score"):
        pose.match_limbs(trap, min_score=-1)


def test_true_maps_decode_into_the_true_people(scenes):
    keypoints = scenes.padded()
    heat, pafs = pose.pose_targets(keypoints, 48, stride=2)
    predictions = [pose.decode_people(h, p, 48, threshold=0.3) for h, p in zip(heat, pafs)]
    assert pose.keypoint_ap(predictions, scenes.ground_truth())["ap"] > 0.8
    lone = next(i for i, k in enumerate(scenes.keypoints) if len(k) == 1 and (k[:, :, 2] > 0).all())
    person = predictions[lone]["keypoints"]
    assert len(person) == 1
    assert (person[0, :, :2] - scenes.keypoints[lone][0, :, :2]).abs().max() <= 1.0   # stride-2 maps, 1-px grid


def test_assemble_people_grows_merges_and_filters():
    peaks = [torch.tensor([[float(j), 0.0, 0.9], [float(j), 30.0, 0.9]]) for j in range(J)]
    both = torch.tensor([[0.0, 0.0, 0.8], [1.0, 1.0, 0.8]], dtype=torch.float64)
    keypoints, scores = pose.assemble_people(peaks, [both] * L)
    assert keypoints.shape == (2, J, 3) and (keypoints[:, :, 2] > 0).all()
    assert set(keypoints[:, 0, 1].tolist()) == {0.0, 30.0}                      # two people, kept apart
    assert scores[0] == pytest.approx((0.9 * J + 0.8 * L) / (J + L))
    none = [torch.zeros(0, 3, dtype=torch.float64)] * L
    assert pose.assemble_people(peaks, none)[0].shape == (0, J, 3)
    short = [both[:1]] + [torch.zeros(0, 3, dtype=torch.float64)] * (L - 1)     # one limb: 2 parts < min_parts
    assert len(pose.assemble_people(peaks, short)[0]) == 0
    with pytest.raises(ValueError, match="peak tensors"):
        pose.assemble_people(peaks[:3], [both] * L)


# ---------------------------------------------------------------------------------------------- evaluation
def test_oks_formula():
    truth = torch.zeros(1, J, 3)
    truth[0, :, :2] = torch.arange(2 * J, dtype=torch.float32).view(J, 2)
    truth[0, :, 2] = 2
    truth[0, 0, 2] = 0                                                      # unlabelled: not counted
    area = torch.tensor([400.0])
    assert pose.oks(truth, truth, area).item() == pytest.approx(1.0)
    moved = truth.clone()
    moved[0, 1:, 0] += 3.0
    moved[0, 0, 0] += 100.0
    expected = np.mean([math.exp(-9 / (2 * 400 * (2 * s) ** 2)) for s in pose.SIGMAS[1:]])
    assert pose.oks(moved, truth, area).item() == pytest.approx(expected)
    assert pose.oks(moved[:, :, :2], truth, area).shape == (1, 1)
    with pytest.raises(ValueError, match="one area per"):
        pose.oks(moved, truth, torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError):
        pose.oks(moved.numpy(), truth, area)


def perturbed_predictions(scenes, seed):
    """Noisy, partly missing, duplicated and invented people with random scores: every branch of the matching."""
    generator = torch.Generator().manual_seed(seed)
    predictions = []
    for truth in scenes.keypoints:
        people = truth.clone()
        people[:, :, :2] += torch.randn(people.shape[:2] + (2,), generator=generator) * (1 + 3 * seed % 4)
        keep = torch.rand(len(people), generator=generator) > 0.2
        people = people[keep]
        extra = torch.rand(2, J, 3, generator=generator) * 48
        duplicate = people[:1] + 1.0
        people = torch.cat([people, duplicate, extra[:int(torch.randint(0, 3, (1,), generator=generator))]])
        scores = torch.rand(len(people), generator=generator)
        scores[:1] = scores[-1:] if len(scores) > 1 else scores[:1]              # a tie in the ranking
        predictions.append({"keypoints": people, "scores": scores})
    return predictions


@pytest.mark.parametrize("seed", range(4))
def test_keypoint_ap_equals_pycocotools(scenes, seed):
    predictions = perturbed_predictions(scenes, seed)
    truths = scenes.ground_truth()
    ours, theirs = pose.keypoint_ap(predictions, truths), pose.coco_keypoint_ap(predictions, truths)
    for key in ("ap", "ap50", "ap75"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-9)
    assert 0 < ours["ap"] < 1


def test_keypoint_ap_edge_cases(scenes):
    truths = scenes.ground_truth()
    perfect = [{"keypoints": t["keypoints"], "scores": torch.ones(len(t["keypoints"]))} for t in truths]
    assert pose.keypoint_ap(perfect, truths)["ap"] == pytest.approx(1.0)
    empty = [{"keypoints": torch.zeros(0, J, 3), "scores": torch.zeros(0)} for _ in truths]
    assert pose.keypoint_ap(empty, truths)["ap"] == 0 == pose.coco_keypoint_ap(empty, truths)["ap"]
    nobody = [{"keypoints": torch.zeros(0, J, 3), "boxes": torch.zeros(0, 4)} for _ in truths]
    assert pose.keypoint_ap(perfect, nobody)["ap"] == -1
    with pytest.raises(ValueError, match="one prediction dict per image"):
        pose.keypoint_ap(perfect[:2], truths)
    with pytest.raises(ValueError, match="'keypoints'"):
        pose.keypoint_ap([{"scores": torch.ones(1)}] * len(truths), truths)


# -------------------------------------------------------------------------------------------------- scenes
def test_scenes_are_deterministic_cached_and_labelled(scenes, tmp_path):
    again = pose_scenes("test", 24, size=48, min_scale=16, max_scale=32, max_people=4)
    assert torch.equal(scenes.images, again.images)
    assert all(torch.equal(a, b) for a, b in zip(scenes.keypoints, again.keypoints))
    assert list((tmp_path / "pose").glob("*.pt"))
    train = pose_scenes("train", 24, size=48, min_scale=16, max_scale=32, max_people=4)
    assert not torch.equal(train.images, scenes.images)
    assert scenes.images.shape == (24, 1, 48, 48) and scenes.images.dtype == torch.uint8
    padded = scenes.padded()
    assert padded.shape == (24, 4, J, 3)
    for image, keypoints, boxes in zip(scenes.images, scenes.keypoints, scenes.boxes):
        assert 1 <= len(keypoints) <= 4 and boxes.shape == (len(keypoints), 4)
        inside = ((keypoints[:, :, :2] > -0.5) & (keypoints[:, :, :2] < 47.5)).all(-1)
        assert torch.equal(keypoints[:, :, 2] > 0, inside)                     # v = 0 exactly when truncated
        assert (inside.sum(1) >= MIN_INSIDE).all()
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 48).all() and (boxes[:, 2:] > boxes[:, :2]).all()
    visibility = torch.cat(scenes.keypoints)[:, :, 2]
    assert (visibility == 2).any() and (visibility == 1).any() and (visibility == 0).any()
    with pytest.raises(ValueError, match="split"):
        pose_scenes("val", 4)
    with pytest.raises(ValueError, match="min_scale"):
        pose_scenes("test", 4, size=32, max_scale=40)


def test_draw_people_flags_hidden_keypoints():
    generator = torch.Generator().manual_seed(0)
    figure = random_pose(30, generator) + torch.tensor([20.0, 12.0])
    image, keypoints, boxes = draw_people([figure, figure + 0.3], [30, 30], 48, generator)
    assert image.shape == (48, 48) and image.dtype == torch.uint8
    assert (keypoints[0, :, 2] == 1).sum() > J // 2            # the second figure covers most of the first
    assert (keypoints[1, :, 2] == 2).all()
    assert image[figure[1, 1].round().long(), figure[1, 0].round().long()] > 100    # the neck is drawn
    with pytest.raises(ValueError, match="one height per pose"):
        draw_people([figure], [30, 30], 48, generator)


# ------------------------------------------------------------------------------------------------- network
def test_posenet_stages_shapes_and_intermediate_supervision():
    model = PoseNet(width=8, stages=3)
    x = torch.rand(2, 1, 32, 32)
    outputs = model(x)
    assert len(outputs) == 3 and all(o.shape == (2, J + 2 * L, 16, 16) for o in outputs)
    heat, pafs = pose.pose_targets(torch.zeros(2, 1, J, 3), 32, stride=2)
    staged_loss(outputs, heat, pafs).backward()
    for t in range(3):                                           # every stage receives its own gradient
        assert model.heat_branches[t][-1].weight.grad.abs().sum() > 0
        assert model.paf_branches[t][-1].weight.grad.abs().sum() > 0
    single = PoseNet(limbs=0, width=8, stages=2, stride=1)
    assert single(torch.rand(1, 1, 16, 16))[-1].shape == (1, J, 16, 16) and single.paf_branches is None
    assert predict_maps(model, torch.zeros(3, 1, 32, 32, dtype=torch.uint8)).shape == (3, J + 2 * L, 16, 16)
    with pytest.raises(ValueError, match="multiples of the stride"):
        model(torch.rand(1, 1, 31, 31))
    with pytest.raises(ValueError, match="targets"):
        staged_loss(outputs, heat[:, :3], pafs)


def test_render_limb_matching_figure(scenes):
    keypoints = scenes.padded()[:1]
    heat, pafs = pose.pose_targets(keypoints, 48, stride=2)
    fig = pose.render_limb_matching(scenes.images[0], heat[0], pafs[0], limb=5, threshold=0.3)
    assert len(fig.axes) == 5                                    # three panels and two colourbars
    assert all(ax.get_xlabel() for ax in fig.axes[:3])
    plt.close(fig)
    with pytest.raises(ValueError, match="limb must be between"):
        pose.render_limb_matching(scenes.images[0], heat[0], pafs[0], limb=L)
    with pytest.raises(ValueError, match="threshold"):
        pose.render_limb_matching(scenes.images[0], heat[0], pafs[0], threshold=1.5)


def test_render_crowd_comparison_figure():
    row = {"bottom-up AP": 0.4, "top-down AP": 0.3, "bottom-up MFLOPs": 50.0, "top-down MFLOPs": 20.0,
           "bottom-up ms": 3.0, "top-down ms": 5.0}
    fig = pose.render_crowd_comparison({"1–2": row, "5–6": dict(row, **{"top-down MFLOPs": 60.0})}, "cpu", "smoke")
    assert len(fig.axes) == 3 and [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1–2 people", "5–6 people"]
    assert len(fig.axes[1].patches) == 4                         # a pair of bars per group
    plt.close(fig)
    with pytest.raises(ValueError, match="non-empty"):
        pose.render_crowd_comparison({}, "cpu", "smoke")
    with pytest.raises(ValueError, match="lacks"):
        pose.render_crowd_comparison({"1–2": {"bottom-up AP": 0.4}}, "cpu", "smoke")


# ------------------------------------------------------------------------------------------------ top-down
def test_crops_and_their_coordinates_round_trip(scenes):
    image = scenes.images[:1].float()
    whole = torch.tensor([[0.0, 0.0, 48.0, 48.0]])
    torch.testing.assert_close(pose.crop_people(image, [whole], 48)[0], image[0])     # the identity crop
    points = torch.rand(1, J, 2) * 47
    torch.testing.assert_close(pose.to_crop(points, whole, 48), points)
    squares = pose.square_boxes(scenes.boxes[0])
    assert torch.allclose(squares[:, 2] - squares[:, 0], squares[:, 3] - squares[:, 1])
    torch.testing.assert_close(pose.from_crop(pose.to_crop(points.expand(len(squares), -1, -1), squares, 16),
                                              squares, 16), points.expand(len(squares), -1, -1))
    # a bright pixel lands where to_crop says: a 2× zoom of a 24-px square
    dot = torch.zeros(1, 1, 48, 48)
    dot[0, 0, 20, 13] = 1.0
    square = torch.tensor([[4.0, 8.0, 28.0, 32.0]])
    crops = pose.crop_people(dot, [square], 48)
    x, y = pose.to_crop(torch.tensor([[[13.0, 20.0]]]), square, 48)[0, 0].tolist()
    assert crops[0, 0, round(y), round(x)] == crops.max() > 0
    found = pose.heatmap_argmax(crops[:, :1])
    assert abs(found[0, 0, 0] - x) <= 0.5 and abs(found[0, 0, 1] - y) <= 0.5
    with pytest.raises(ValueError, match="K×4"):
        pose.square_boxes(torch.zeros(4))
    with pytest.raises(ValueError, match="one K×4 tensor of squares per image"):
        pose.crop_people(image, [], 16)


def test_part_recall_counts_parts_within_the_radius(scenes):
    truths = scenes.ground_truth()
    exact = [[t["keypoints"][:, j] for j in range(J)] for t in truths]
    assert pose.part_recall(exact, truths) == 1.0
    shifted = [[k[:, :2] + torch.tensor([2.5, 2.5]) for k in per_type] for per_type in exact]   # 3.5 px away
    # 3.5 px from its own part: only another person's part of the same type can still be within 3 px
    assert pose.part_recall(shifted, truths, radius=3.0) < 0.05 and pose.part_recall(shifted, truths, 4.0) == 1.0
    nothing = [[torch.zeros(0, 2)] * J for _ in truths]
    assert pose.part_recall(nothing, truths) == 0.0
    with pytest.raises(ValueError, match="tensors of candidates"):
        pose.part_recall(exact[:1], truths)


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="starts"):
        pose.limb_scores(torch.zeros(2, 8, 8), torch.zeros(3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="one square"):
        pose.to_crop(torch.zeros(2, J, 2), torch.zeros(3, 4), 16)
    with pytest.raises(ValueError, match="14×2"):
        draw_people([torch.zeros(3, 2)], [20], 32, torch.Generator())
    with pytest.raises(TypeError, match="uint8"):
        predict_maps(PoseNet(width=8, stages=1), torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="height"):
        random_pose(0, torch.Generator())
