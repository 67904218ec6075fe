"""Chapter 10: prompt sampling, Fourier features, the small SAM's shapes, SAM's loss, the data engine, the chapter's
figures, the widget."""

import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from utils import sam  # noqa: E402
from utils.models.sam import SAM, fourier_features  # noqa: E402


def blob_masks(n=8, size=32, seed=0):
    """Random rectangles, one per row, never empty."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for m in masks:
        x1, y1 = torch.randint(0, size - 6, (2,), generator=g).tolist()
        w, h = torch.randint(2, 6, (2,), generator=g).tolist()
        m[y1:y1 + h, x1:x1 + w] = True
    return masks


def test_sample_point_stays_inside_the_mask():
    masks = blob_masks(64)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        points = sam.sample_point(masks, g)
        x, y = points[:, 0].long(), points[:, 1].long()
        assert masks[torch.arange(len(masks)), y, x].all()


def test_sample_point_is_uniform_and_checks_its_input():
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 1, 1] = mask[0, 2, 3] = True
    g = torch.Generator().manual_seed(0)
    hits = torch.stack([sam.sample_point(mask.expand(2000, -1, -1), g)]).reshape(-1, 2)
    share = (hits[:, 0] == 1).float().mean().item()
    assert abs(share - 0.5) < 0.05
    with pytest.raises(ValueError, match="at least one pixel"):
        sam.sample_point(torch.zeros(2, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        sam.sample_point(torch.ones(4, 4))


def test_next_click_lands_in_the_error_region_with_the_right_label():
    target = blob_masks(64, seed=2)
    predicted = blob_masks(64, seed=3)
    g = torch.Generator().manual_seed(0)
    points, labels = sam.next_click(predicted, target, g)
    rows, x, y = torch.arange(64), points[:, 0].long(), points[:, 1].long()
    assert (predicted[rows, y, x] != target[rows, y, x]).all(), "the click is on an error pixel"
    assert torch.equal(labels, target[rows, y, x].long()), "missed pixel → foreground, false positive → background"
    assert set(labels.tolist()) == {0, 1}
    perfect_points, perfect_labels = sam.next_click(target, target, g)
    assert (perfect_labels == 1).all() and target[rows, perfect_points[:, 1].long(), perfect_points[:, 0].long()].all()


def test_boxes():
    masks = blob_masks(16)
    from torchvision.ops import masks_to_boxes

    expected = masks_to_boxes(masks)
    expected[:, 2:] += 1
    torch.testing.assert_close(sam.tight_boxes(masks), expected)
    g = torch.Generator().manual_seed(0)
    boxes = sam.noisy_box(masks, g, noise=0.1)
    assert (boxes[:, 2:] > boxes[:, :2]).all() and (boxes >= 0).all() and (boxes <= 32).all()
    assert (boxes - expected).abs().max() < 4 and not torch.equal(boxes, expected)
    corners, labels = sam.box_prompt(expected)
    assert corners.shape == (16, 2, 2) and labels.tolist() == [[2, 3]] * 16
    points, labels = sam.first_prompt(masks, g, box_fraction=0.5)
    assert points.shape == (16, 2, 2) and ((labels[:, 1] == -1) | (labels[:, 1] == 3)).all()


def test_fourier_features():
    coords = torch.tensor([[0.25, 0.5], [0.0, 0.0]])
    frequencies = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]])
    features = fourier_features(coords, frequencies)
    angles = 2 * math.pi * torch.tensor([[0.25, 0.5, 1.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(features, torch.cat([angles.sin(), angles.cos()], -1))
    assert features.shape == (2, 6)
    torch.testing.assert_close(features.pow(2).sum(-1), torch.full((2,), 3.0))   # sin² + cos² per frequency
    with pytest.raises(ValueError):
        fourier_features(torch.zeros(3, 3), frequencies)
    # float64 stays float64 (Chapter 10's exercise compares against it exactly); half precision is computed in float32
    precise = fourier_features(coords.double(), frequencies)
    assert precise.dtype == torch.float64 and fourier_features(coords.bfloat16(), frequencies).dtype == torch.float32
    exact = 2 * math.pi * torch.tensor([[0.25, 0.5, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(precise, torch.cat([exact.sin(), exact.cos()], -1), rtol=1e-12, atol=1e-12)


def test_model_shapes_and_embedding_reuse():
    model = SAM(dim=32, width=16, image_size=32).eval()
    images = torch.rand(3, 1, 32, 32)
    points = torch.tensor([[[5.0, 6.0], [0.0, 0.0]]]).expand(3, -1, -1)
    labels = torch.tensor([[1, -1]]).expand(3, -1)
    embedding = model.embed(images)
    assert embedding.shape == (3, 32, 8, 8)
    masks, iou = model.predict(embedding, points, labels)
    assert masks.shape == (3, 3, 32, 32) and iou.shape == (3, 3)
    masks_again, _ = model.predict(embedding, points, labels, mask_logits=masks[:, :1])
    assert masks_again.shape == masks.shape
    torch.testing.assert_close(model(images, points, labels)[0], masks)
    # the same prompt on a cached embedding gives what the full model gives; padding points change nothing
    more = torch.cat([labels, torch.full((3, 1), -1)], 1)
    torch.testing.assert_close(model.predict(embedding, torch.cat([points, torch.rand(3, 1, 2) * 30], 1), more)[0],
                               model.predict(embedding, torch.cat([points, torch.rand(3, 1, 2) * 30], 1), more)[0])
    with pytest.raises(ValueError):
        model.predict(embedding, points[..., :1], labels)


def test_min_loss_picks_the_best_mask():
    target = blob_masks(4, seed=5)
    good = torch.where(target, 8.0, -8.0)
    bad = torch.where(target, -8.0, 8.0)
    logits = torch.stack([bad, good, torch.zeros_like(good)], 1)
    losses = sam.mask_losses(logits, target)
    assert (losses.argmin(1) == 1).all()
    actual = sam.mask_iou(logits > 0, target[:, None])
    loss = sam.sam_loss(logits, actual, target)
    torch.testing.assert_close(loss, losses[:, 1].mean())
    # putting the good mask in another slot gives the same loss: only the best counts
    torch.testing.assert_close(sam.sam_loss(logits[:, [1, 0, 2]], actual[:, [1, 0, 2]], target), loss)
    assert sam.sam_loss(logits, torch.zeros(4, 3), target) > loss    # a wrong IoU prediction costs MSE


def test_mask_iou_and_stability():
    a = torch.zeros(1, 4, 4, dtype=torch.bool)
    a[0, :2] = True
    b = torch.zeros(1, 4, 4, dtype=torch.bool)
    b[0, 1:3] = True
    assert sam.mask_iou(a, b).item() == pytest.approx(1 / 3)
    assert sam.mask_iou(torch.zeros(1, 2, 2, dtype=torch.bool), torch.zeros(1, 2, 2, dtype=torch.bool)).item() == 1
    crisp = torch.where(a, 10.0, -10.0)
    soft = torch.where(a, 0.5, -0.5)
    assert sam.stability(crisp).item() == 1 and sam.stability(soft).item() == 0


def test_stack_map_and_levels():
    instance = torch.zeros(10, 10, dtype=torch.uint8)
    instance[1:4, 1:4] = 1
    instance[1:4, 4:6] = 2          # touches item 1
    instance[7:9, 7:9] = 3          # alone
    stacks = sam.stack_map(instance)
    assert stacks[2, 2] == stacks[2, 5] != stacks[8, 8] and stacks[0, 0] == 0
    scenes = sam.PromptScenes(torch.zeros(1, 1, 10, 10, dtype=torch.uint8), instance[None], stacks[None],
                              torch.tensor([[0, 1, int(stacks[2, 2])], [0, 3, int(stacks[8, 8])]]))
    packed = scenes.levels()
    item, stack, everything = (sam.unpack_levels(packed, level) for level in range(3))
    assert torch.equal(item[0], instance == 1) and torch.equal(stack[0], (instance == 1) | (instance == 2))
    assert torch.equal(everything[1], instance > 0) and torch.equal(stack[1], instance == 3)
    assert torch.equal(sam.unpack_levels(packed, torch.tensor([1, 0])), torch.stack([stack[0], item[1]]))


def test_interactive_loss_trains():
    torch.manual_seed(0)
    model = SAM(dim=32, width=16, image_size=32)
    images = torch.rand(4, 1, 32, 32)
    target = blob_masks(4)
    g = torch.Generator().manual_seed(0)
    loss = sam.interactive_loss(model, images, target, g, rounds=3)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(p.grad is not None for p in model.mask_decoder.parameters() if p.requires_grad)


def test_click_ious_and_proposals_run():
    model = SAM(dim=32, width=16, image_size=32)
    images = (torch.rand(3, 1, 32, 32) * 255).to(torch.uint8)
    result = sam.click_ious(model, images, blob_masks(3), clicks=3)
    assert result["chosen"].shape == (3, 3) and (result["oracle"] >= result["chosen"]).all()
    assert result["first_masks"].shape == (3, 3, 32, 32)
    proposals = sam.propose_masks(model, images, grid=2, min_iou=0.0, min_stability=0.0, min_area=0)
    assert len(proposals) == 3 and all(p["kept"].sum() == len(p["masks"]) for p in proposals)
    with pytest.raises(ValueError):
        sam.click_ious(model, images, blob_masks(3), first="scribble")


def test_render_masks_and_event_pixel():
    image = (torch.rand(32, 32) * 255).to(torch.uint8)
    fig = sam.render_masks(image, torch.tensor([[3.0, 4.0]]), torch.tensor([1]), blob_masks(3), torch.tensor([0.2, 0.9, 0.5]))
    assert len(fig.axes) == 4 and "★" in fig.axes[2].get_title() and "0.90" in fig.axes[2].get_title()
    empty = sam.render_masks(image, torch.zeros(0, 2), torch.zeros(0), None, None)
    assert "no prompt" in empty.axes[1].get_title()
    with pytest.raises(ValueError):
        sam.render_masks(image[None], torch.zeros(0, 2), torch.zeros(0), None, None)
    assert sam.event_pixel({"relativeX": 100, "relativeY": 30, "boundingRectWidth": 256, "boundingRectHeight": 256},
                           64) == (25, 7)
    with pytest.raises(ValueError):
        sam.event_pixel({"relativeX": 1}, 64)
    assert sam.prompt_png(image, torch.tensor([[3.0, 4.0]]), torch.tensor([0]))[:4] == b"\x89PNG"


def test_render_levels_and_prompt_samplers():
    images = (torch.rand(2, 1, 32, 32) * 255).to(torch.uint8)
    objects = torch.tensor([[0, 1, 1], [1, 1, 1], [1, 2, 1]])
    masks = blob_masks(3)
    targets = {"item": masks, "stack": masks | masks.roll(1, 0), "all": masks.any(0, keepdim=True).expand(3, -1, -1)}
    fig = sam.render_levels(images, objects, targets, [0, 2])
    assert len(fig.axes) == 8 and fig.axes[4].get_title() == "scene 1"
    with pytest.raises(ValueError, match="shown must name"):
        sam.render_levels(images, objects, targets, [3])
    box = sam.noisy_box(masks[:1], torch.Generator().manual_seed(0))[0]
    fig = sam.render_prompt_samplers(images[0, 0], masks[0], torch.tensor([3.0, 4.0]), box, masks[1], torch.tensor(
        [5.0, 6.0]), torch.tensor(0))
    assert len(fig.axes) == 3 and len(fig.axes[1].patches) == 1, "the box prompt is drawn as a rectangle"
    with pytest.raises(ValueError, match="one x1, y1, x2, y2 box"):
        sam.render_prompt_samplers(images[0, 0], masks[0], torch.zeros(2), box[:2], masks[1], torch.zeros(2), 1)
    plt.close("all")


def test_render_caching_cost_and_click_curves():
    fig = sam.render_caching_cost(5e6, 1e6, prompts=10)
    cached, recomputed = (line.get_ydata() for line in fig.axes[0].lines)
    assert cached[-1] == 15 and recomputed[-1] == 60, "MFLOPs of 10 prompts: 5 + 10·1 vs 10·(5 + 1)"
    with pytest.raises(ValueError, match="must be > 0"):
        sam.render_caching_cost(0, 1e6)
    fig = sam.render_click_curves({"point": [0.2, 0.3, 0.4], "box": [0.5]}, "clicks")
    assert [len(line.get_xdata()) for line in fig.axes[0].lines] == [3, 1]
    with pytest.raises(ValueError, match="non-empty"):
        sam.render_click_curves({"point": []}, "clicks")
    plt.close("all")


def test_render_ablation_iou_head_and_pseudo_labels():
    scores = {1: torch.rand(5, 3), 3: torch.rand(5, 3)}
    fig = sam.render_ablation(scores, torch.rand(32, 32), torch.rand(3, 32, 32), torch.tensor([0.1, 0.5, 0.9]),
                              torch.tensor([3.0, 4.0]))
    assert "IoU pred 0.90" in fig.axes[4].get_title() and len(fig.axes) == 6, "bars, 4 masks, one colour bar"
    with pytest.raises(ValueError, match="level_scores"):
        sam.render_ablation({3: scores[3]}, torch.rand(32, 32), torch.rand(3, 32, 32), torch.rand(3), (3, 4))
    fig = sam.render_iou_head(torch.rand(6, 3), torch.rand(6, 3), {"random": 0.2, "head": 0.4}, 0.8)
    assert fig.axes[0].get_title() == "IoU head: r = 0.80" and len(fig.axes[1].patches) == 2
    with pytest.raises(ValueError, match="T×M"):
        sam.render_iou_head(torch.rand(6, 3), torch.rand(5, 3), {"head": 0.4}, 0.8)
    images = (torch.rand(2, 1, 32, 32) * 255).to(torch.uint8)
    fig = sam.render_pseudo_labels(images, [(1, blob_masks(1)[0])])
    assert fig.axes[0].get_title() == "unlabelled scene 1"
    with pytest.raises(ValueError, match="examples"):
        sam.render_pseudo_labels(images, [(2, blob_masks(1)[0])])
    plt.close("all")


def test_click_segmenter_clicks_and_undo():
    pytest.importorskip("ipyevents")
    model = SAM(dim=32, width=16, image_size=32)
    images = (torch.rand(2, 1, 32, 32) * 255).to(torch.uint8)
    widget = sam.ClickSegmenter(model, images)
    first = widget.explorer.image.value
    widget._clicked({"relativeX": 40, "relativeY": 40, "boundingRectWidth": 128, "boundingRectHeight": 128})
    assert widget.clicks[0] == [(10, 10, 1)] and widget.explorer.image.value != first
    widget._clicked({"relativeX": 8, "relativeY": 8, "boundingRectWidth": 128, "boundingRectHeight": 128,
                     "shiftKey": True})
    assert widget.clicks[0][-1] == (2, 2, 0) and widget.explorer.values()["shown"] == 2
    widget.remove_last()
    assert widget.explorer.values()["shown"] == 1
    widget.add_click(5, 5, 1)                     # replaces the undone click
    assert widget.clicks[0] == [(10, 10, 1), (5, 5, 1)]
    assert len(widget.embeddings) == 1, "one embedding per image, however many clicks"
    widget.explorer.set(scene=1)
    assert widget.explorer.values()["shown"] == 0


def test_click_segmenter_drag_draws_a_box_prompt_and_undo_removes_it_whole():
    pytest.importorskip("ipyevents")
    model = SAM(dim=32, width=16, image_size=32)
    images = (torch.rand(1, 1, 32, 32) * 255).to(torch.uint8)
    widget = sam.ClickSegmenter(model, images)
    rect = {"boundingRectWidth": 128, "boundingRectHeight": 128}
    widget._mouse({"type": "mousedown", "relativeX": 40, "relativeY": 40, **rect})
    widget._mouse({"type": "mouseup", "relativeX": 41, "relativeY": 40, **rect})     # in place: a click
    assert widget.clicks[0] == [(10, 10, 1)]
    shown_click = widget.explorer.image.value
    widget._mouse({"type": "mousedown", "relativeX": 100, "relativeY": 90, **rect})
    widget._mouse({"type": "mouseup", "relativeX": 20, "relativeY": 30, **rect})     # dragged: a box
    assert widget.clicks[0] == [(10, 10, 1), (5, 7, 2), (25, 22, 3)]
    assert widget.explorer.image.value != shown_click
    widget.remove_last()
    assert widget.explorer.values()["shown"] == 1 and widget.explorer.image.value == shown_click
