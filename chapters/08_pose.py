# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 8 — Multi-person pose estimation: heatmaps, part affinity fields, Hungarian matching
#
# **Deep Vision Lab · Chapter 8.** A pose estimator finds the **keypoints** of every person — head, neck,
# shoulders, elbows, wrists, hips, knees, ankles — and says which keypoints belong to whom. Two strategies exist:
#
# | strategy | how | examples | cost |
# |---|---|---|---|
# | **top-down** | detect people first (Chapter 4), then find one person's keypoints in each box | Mask R-CNN keypoints, SimpleBaseline, HRNet, ViTPose | detector + one pass *per person* |
# | **bottom-up** | find all keypoints of all people in one pass, then group them into people | OpenPose, Associative Embedding, HigherHRNet | one pass + a cheap grouping, whatever the crowd |
#
# We build **OpenPose** (Cao et al., 2017) — the bottom-up classic — from its parts, and a top-down baseline beside it:
#
# 1. **data** — synthetic stick-figure scenes with exact keypoints, overlaps, truncation and visibility flags;
# 2. **keypoint heatmaps** — one Gaussian per keypoint, and why heatmaps beat regressing coordinates;
# 3. **part affinity fields (PAFs)** — a 2-D vector field per limb that says *which way the limb runs, here*;
# 4. **the line integral** — scoring a candidate limb by how well the field runs along it;
# 5. **peaks, matching, assembly** — heatmap NMS, bipartite matching per limb (Hungarian vs greedy), people;
# 6. **OKS and keypoint AP** — COCO's metric by hand, equal to pycocotools;
# 7. **a staged network with intermediate supervision** (CPM/OpenPose), trained here, and where it fails;
# 8. **top-down vs bottom-up** — accuracy and cost as the number of people grows;
# 9. an **explorer** and the interview questions.
#
# Open `utils/pose_scenes.py` (the scenes), `utils/pose.py` (targets, decoding, metrics) and `utils/models/pose.py`
# (the network) beside this notebook.

# %%
import inspect
import itertools
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from utils import exercises, pose, start_chapter
from utils.data import DeviceLoader
from utils.models.pose import PoseNet, predict_maps, staged_loss
from utils.measuring import count_flops, count_parameters
from utils.models.yolo import AnchorFreeDetector, anchor_free_loss, detect_all, pad_targets, scene_input
from utils.plotting import show
from utils.pose_scenes import draw_people, pose_scenes, random_pose
from utils.results import report
from utils.runtime import pick, profile
from utils.training import fit
from utils.widgets import Explorer, dropdown, slider

device = start_chapter("08_pose")

SIZE = 64                                                 # canvas side in pixels
SCENE_ARGS = dict(size=SIZE, min_scale=20, max_scale=44, max_people=6, max_overlap=0.5)
TRAIN_SCENES = pick(smoke=512, cpu=3000, gpu=20_000)
TEST_SCENES = pick(smoke=64, cpu=300, gpu=1000)
STRIDE, SIGMA, LIMB_WIDTH = 2, 2.0, 1.5                   # output stride; Gaussian σ and PAF half-width in pixels
WIDTH = pick(smoke=16, cpu=16, gpu=48)                   # channels of the pose network
STAGES = pick(smoke=2, cpu=3, gpu=4)
EPOCHS = pick(smoke=5, cpu=8, gpu=40)
BATCH = pick(smoke=32, cpu=32, gpu=64)
PEAK_THRESHOLD = 0.1                                      # OpenPose's default
POSITIVE_WEIGHT = 5.0                                     # loss weight of on-keypoint / on-limb pixels
J, L = len(pose.KEYPOINTS), len(pose.LIMBS)

# %% [markdown]
# ## 1. The data: stick figures with exact keypoints
# No pose data set can be downloaded here, so we draw our own. A person is a 14-keypoint stick figure — the tree of
# 13 limbs below, rooted at the neck — with a random lean, random arm and leg angles and a height of 20 to 44
# pixels. A figure faces us, so its **left** side is on the image's **right**; left limbs are drawn brighter than
# right ones (a real network tells them apart by the face and the body's asymmetry). One to six people per scene,
# placed so that their boxes overlap by IoU ≤ 0.5 — arms cross, bodies overlap — and at least 7 keypoints stay on
# the canvas: people at the border are **truncated**. Every keypoint has COCO's **visibility flag**:
# v = 2 visible, v = 1 on the canvas but hidden under a person drawn later, v = 0 outside the canvas (not labelled).

# %%
train_scenes = pose_scenes("train", TRAIN_SCENES, **SCENE_ARGS)
test_scenes = pose_scenes("test", TEST_SCENES, **SCENE_ARGS)
assert train_scenes.images.shape == (TRAIN_SCENES, 1, SIZE, SIZE) and train_scenes.images.dtype == torch.uint8, \
    f"scenes should be uint8 N×1×{SIZE}×{SIZE}, got {train_scenes.images.dtype} {tuple(train_scenes.images.shape)}"
people_per_scene = torch.tensor([len(k) for k in test_scenes.keypoints])
all_keypoints = torch.cat(train_scenes.keypoints)
flags = torch.bincount(all_keypoints[:, :, 2].long().flatten(), minlength=3) / all_keypoints[:, :, 0].numel()
assert all_keypoints.shape[1:] == (J, 3), \
    f"keypoints should be (people, {J}, 3): x, y, visibility; got {tuple(all_keypoints.shape)}"
assert (people_per_scene >= 1).all() and people_per_scene.max() <= SCENE_ARGS["max_people"], \
    f"scenes should hold 1 to {SCENE_ARGS['max_people']} people, not {people_per_scene.min()}–{people_per_scene.max()}"
assert flags[0] > 0.02 and flags[1] > 0.01 and flags[2] > 0.5, "truncated, hidden and visible keypoints all occur"
print(f"{len(train_scenes)} training / {len(test_scenes)} test scenes, {len(all_keypoints)} training people; "
      f"keypoints: {flags[2]:.0%} visible, {flags[1]:.0%} hidden, {flags[0]:.0%} truncated")
print("limbs:", ", ".join(pose.LIMB_NAMES))


# %%
def draw_truth(ax, index, scenes=test_scenes, title=None):
    """A scene with its true skeletons: visible keypoints filled, hidden ones hollow."""
    ax.imshow(scenes.images[index, 0], cmap="gray", vmin=0, vmax=255)
    for person in scenes.keypoints[index]:
        pose.draw_skeletons(ax, person[None], color="yellow", linewidth=1)
        hidden = person[person[:, 2] == 1]
        ax.scatter(hidden[:, 0], hidden[:, 1], s=22, facecolors="none", edgecolors="red", linewidths=1)
    ax.set(xlim=(-0.5, SIZE - 0.5), ylim=(SIZE - 0.5, -0.5), title=title or f"scene {index}", xticks=[], yticks=[])


fig, axes = plt.subplots(2, 6, figsize=(13, 4.8), layout="constrained")
for i, (top, bottom) in enumerate(zip(axes[0], axes[1])):
    top.imshow(test_scenes.images[i, 0], cmap="gray", vmin=0, vmax=255)
    top.set(title=f"scene {i}: {len(test_scenes.keypoints[i])} people", xticks=[], yticks=[])
    draw_truth(bottom, i, title="true keypoints")
fig.suptitle("Stick-figure scenes (top) and their true skeletons (bottom; hidden keypoints ringed in red)")
show(fig)

# %% [markdown]
# ## 2. Keypoint heatmaps
# A network could regress the coordinates (x, y) of each keypoint directly (DeepPose, 2014). Modern pose estimators
# predict a **heatmap** per keypoint type instead: the target is a Gaussian bump at every true keypoint,
#
# H(x, y) = exp(−((x − cx)² + (y − cy)²) / 2σ²),
#
# with pixel (x, y) at integer coordinates, and the prediction is read back by finding the peaks. Three reasons:
# a heatmap is **fully convolutional** (it keeps the spatial layout the convolutions compute; a regression head must
# turn "where" into a number through a dense layer), it expresses **uncertainty** (a spread bump), and it has **any
# number of peaks** — one per person. Regression has one answer per output: asked for "the neck" in a two-person
# image, the answer minimising the squared error over the two possible targets is their *average*, a point between
# the people where no neck is.

# %%
heat = pose.gaussian_heatmap(SIZE, SIZE, (20.0, 30.5), sigma=SIGMA)
assert heat[30, 20] == heat.max(), "the peak is at the pixel nearest the centre"
assert math.isclose(heat[30, 23].item(), math.exp(-(3 ** 2 + 0.5 ** 2) / (2 * SIGMA ** 2)), rel_tol=1e-6), \
    "the heatmap value 3 px right and 0.5 px below the centre should be exp(−(3² + 0.5²)/2σ²)"

two = next(i for i, k in enumerate(train_scenes.keypoints) if len(k) == 2 and (k[:, 1, 2] > 0).all())
necks = train_scenes.keypoints[two][:, 1, :2]
regressed = necks.mean(0)                        # what an L2 coordinate regressor converges to for "the neck"
targets_heat, targets_paf = pose.pose_targets(train_scenes.padded()[two:two + 1], SIZE, stride=1, sigma=SIGMA,
                                              limb_width=LIMB_WIDTH)
peaks = pose.find_peaks(targets_heat[0, 1:2], threshold=0.5)[0]
assert len(peaks) == 2 and torch.cdist(peaks[:, :2], necks).min(1).values.max() <= 0.71, "one peak per neck"
gap = (necks - regressed).norm(dim=1).min().item()
assert gap > 3, "the regressed 'neck' is far from both necks"
print(f"heatmap peaks at {peaks[:, :2].tolist()} (true necks {necks.round().tolist()}); "
      f"the regression answer {regressed.round().tolist()} is {gap:.1f} px from the nearest neck")

# %%
# the argmax of a heatmap is a whole pixel: sub-pixel accuracy needs a refinement, e.g. the soft-argmax
argmax_xy = pose.heatmap_argmax(heat[None, None])[0, 0, :2]             # (x, y) of the maximum
grid_y, grid_x = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32), torch.arange(SIZE, dtype=torch.float32),
                                indexing="ij")
soft_argmax = torch.stack([(heat * grid_x).sum(), (heat * grid_y).sum()]) / heat.sum()   # the heatmap's mean
assert argmax_xy[0] == 20 and abs(argmax_xy[1].item() - 30.5) == 0.5, \
    f"the argmax should be a whole pixel, 0.5 px from the centre's y = 30.5; found {argmax_xy.tolist()}"
assert (soft_argmax - torch.tensor([20.0, 30.5])).abs().max() < 1e-3, \
    f"the soft-argmax should find the centre (20, 30.5) to 1e-3 px, found {soft_argmax.tolist()}"

# %%
fig, (ax_gauss, ax_scene, ax_heat) = plt.subplots(1, 3, figsize=(13, 3.9))
shown = ax_gauss.imshow(heat[20:41, 10:31], cmap="magma", extent=(9.5, 30.5, 40.5, 19.5))
fig.colorbar(shown, ax=ax_gauss, fraction=0.046, pad=0.04, label="H(x, y)")
ax_gauss.set(title=f"one Gaussian, σ = {SIGMA} px, centre (20, 30.5)", xlabel="x (pixels)", ylabel="y (pixels)")
draw_truth(ax_scene, two, train_scenes, title="two people: where is 'the neck'?")
ax_scene.plot(*regressed.tolist(), "c*", markersize=14, label="L2 regression: the average")
ax_scene.legend(fontsize=7, loc="lower left")
shown = ax_heat.imshow(targets_heat[0, 1], cmap="magma", vmin=0, vmax=1)
fig.colorbar(shown, ax=ax_heat, fraction=0.046, pad=0.04, label="target heatmap")
ax_heat.scatter(peaks[:, 0], peaks[:, 1], marker="o", s=60, facecolors="none", edgecolors="cyan", label="peaks")
ax_heat.legend(fontsize=7, loc="lower left")
ax_heat.set(title="neck heatmap: one peak per person", xlabel="x (pixels)", ylabel="y (pixels)")
fig.tight_layout()
show(fig)


# %% [markdown]
# **Exercise.** In the exercise version of this notebook (`make exercises`) the cell below keeps only the signature
# and hints of `gaussian_heatmap`, one keypoint's target: write it, and the self-check compares it with
# `pose.gaussian_heatmap`.

# %% tags=["exercise"]
def gaussian_heatmap(height, width, center_xy, sigma):
    """A keypoint's target heatmap in PyTorch: height×width values exp(−((x − cx)² + (y − cy)²) / 2σ²), the pixel
    (x, y) at integer coordinates, center_xy = (cx, cy).

    Hints: torch.arange(width) and torch.arange(height) are the pixels' x and y; broadcast them as a row xs[None, :]
    and a column ys[:, None].
    """
    xs, ys = torch.arange(width, dtype=torch.float32), torch.arange(height, dtype=torch.float32)
    cx, cy = center_xy
    return torch.exp(-((xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2) / (2 * sigma ** 2))


# %% tags=["self-check"]
gaussian_heatmap = exercises.check("gaussian_heatmap", gaussian_heatmap)

# %% [markdown]
# For several people the target keeps the **maximum** of their Gaussians (not the sum: two close necks would merge
# into one brighter, shifted bump). The network predicts the maps at stride 2 — 32×32 for our 64-px canvas — and we
# upsample them back to the image before looking for peaks, as OpenPose does.
#
# ## 3. Part affinity fields
# Peaks give *candidates*: five necks and five left elbows in a crowd. Which neck goes with which elbow? Distance is
# a poor guide when people overlap. OpenPose's answer is a second set of maps: for each limb c (neck → left
# shoulder, left shoulder → left elbow, …) a **part affinity field** L_c, a 2-D vector at every pixel:
#
# L_c(p) = v = (p₂ − p₁) / ‖p₂ − p₁‖ if p lies on the limb — 0 ≤ v·(p − p₁) ≤ ‖p₂ − p₁‖ along it and
# |v⊥·(p − p₁)| ≤ width across it — and 0 elsewhere.
#
# So the field says, at every pixel on a limb, *which way the limb runs*. Where the limbs of several people overlap,
# the target is the **average** of their vectors. 13 limbs × 2 components = 26 PAF channels, next to 14 heatmaps.

# %%
field = pose.limb_paf(SIZE, SIZE, (10.0, 20.0), (30.0, 35.0), limb_width=LIMB_WIDTH)
on_limb = field.norm(dim=0) > 0
assert torch.allclose(field[:, on_limb].norm(dim=0), torch.ones(1)), "unit vectors on the limb"
torch.testing.assert_close(field[:, 20, 10], torch.tensor([0.8, 0.6]))          # (20, 15) / 25
assert field[:, 0, 0].abs().sum() == 0 and field[:, 20, 40].abs().sum() == 0, "zero off the limb"

limb = pose.LIMBS.index((6, 7))                            # left elbow → left wrist
paf = targets_paf[0, 2 * limb:2 * limb + 2]
assert paf.norm(dim=0).max() <= 1 + 1e-6, \
    f"a PAF holds unit vectors or zeros, but a vector has length {paf.norm(dim=0).max():.4f}"

# %%
fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2))
for ax, (name, shown_field) in zip(axes, (("one limb, (10, 20) → (30, 35)", field),
                                          (f"{pose.LIMB_NAMES[limb]} of scene {two}", paf))):
    magnitude = shown_field.norm(dim=0)
    shown = ax.imshow(magnitude, cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="|L(p)|")
    ys, xs = (magnitude > 0).nonzero(as_tuple=True)
    ax.quiver(xs[::2], ys[::2], shown_field[0, ys, xs][::2], shown_field[1, ys, xs][::2], color="white",
              angles="xy", scale_units="xy", scale=0.5, width=0.004)
    ax.set(title=f"PAF: {name}", xlabel="x (pixels)", ylabel="y (pixels)")
fig.tight_layout()
show(fig)

# %% [markdown]
# ## 4. Scoring a candidate limb: the line integral
# Given a candidate pair — a peak d₁ of the limb's first keypoint and a peak d₂ of its second — OpenPose measures
# how well the field runs along the segment between them:
#
# E = ∫₀¹ L_c(p(u)) · (d₂ − d₁)/‖d₂ − d₁‖ du, p(u) = (1 − u) d₁ + u d₂,
#
# approximated by the mean over 10 evenly spaced samples (the field read at the nearest pixel). A true limb scores
# about 1; a pair joining two *different* people crosses empty space (field 0) or limbs running another way, and
# scores little; the same limb taken backwards scores −1. `pose.paf_score` computes it for one pair, or for every
# pair of candidates at once (`pose.limb_scores`, an A×B matrix).

# %%
true_maps = pose.pose_targets(test_scenes.padded(), SIZE, stride=1, sigma=SIGMA, limb_width=LIMB_WIDTH)
crowded = next(i for i, k in enumerate(test_scenes.keypoints) if len(k) >= 3 and (k[:, 6:8, 2] > 0).all())
people = test_scenes.keypoints[crowded]
paf = true_maps[1][crowded, 2 * limb:2 * limb + 2]
scores = pose.limb_scores(paf, people[:, 6], people[:, 7])          # every elbow with every wrist
print(f"scene {crowded}: line integrals, left elbows (rows) × left wrists (columns):\n{scores.numpy().round(2)}")
# about 1: only a sample at an end may read a pixel just off the limb (its nearest pixel lies beyond the keypoint)
assert (scores.diagonal() > 0.7).all(), "each elbow's own wrist scores about 1"
others = scores.clone().fill_diagonal_(-2).max(1).values
assert (scores.diagonal() > others + 0.3).all(), "other people's wrists score low"
assert pose.paf_score(paf, people[0, 7, :2], people[0, 6, :2]) < -0.7, "backwards: about −1"


# %% [markdown]
# **Exercise.** In the exercise version of this notebook the cell below keeps only the signature and hints of
# `paf_score`, the line integral for one candidate pair: write it, and the self-check compares it with
# `pose.paf_score` — along a limb, backwards, across it, from corner to corner of the map (where rounding lands one
# past the last pixel) and for a pair of no length.

# %% tags=["exercise"]
def paf_score(paf, p1, p2, samples=10):
    """OpenPose's limb score in PyTorch: the line integral of a limb's field paf (2×H×W, the x and y components)
    from p1 to p2 (each an (x, y) tensor), approximated by the mean over `samples` evenly spaced points, both ends
    included, of field · (p2 − p1)/‖p2 − p1‖, the field read at the nearest pixel. A pair of no length scores 0.

    Hints: points = p1 + torch.linspace(0, 1, samples)[:, None] · (p2 − p1); their columns x.round() and rows
    y.round(), as long and clamped inside the map, index paf[:, rows, columns] (2×samples).
    """
    vector = p2 - p1
    length = vector.norm()
    if length < 1e-6:
        return torch.tensor(0.0)
    points = p1 + torch.linspace(0, 1, samples)[:, None] * vector
    columns = points[:, 0].round().long().clamp(0, paf.shape[2] - 1)
    rows = points[:, 1].round().long().clamp(0, paf.shape[1] - 1)
    return (paf[:, rows, columns] * (vector / length)[:, None]).sum(0).mean()


# %% tags=["self-check"]
paf_score = exercises.check("paf_score", paf_score)

# %% [markdown]
# ## 5. Peaks, bipartite matching, assembly
# **Peaks** are found by heatmap NMS: a pixel is a keypoint candidate when it equals the maximum of its 3×3
# neighbourhood (one `max_pool2d` with stride 1) and exceeds a threshold.
#
# **Matching.** For each limb type the candidates form a *bipartite graph*: starts on one side, ends on the other,
# an edge weighted by the line integral for each pair. Each start has at most one end (a person has one left wrist)
# — so we want the **maximum-weight matching**. The **Hungarian algorithm** (Kuhn–Munkres) solves it exactly in
# O(n³); `scipy.optimize.linear_sum_assignment` implements it. OpenPose uses a **greedy** matcher instead: sort all
# candidate pairs by score and take each pair whose two ends are still free. Greedy can be beaten (below, a 2×2 case
# where it loses 0.6 of total score), but PAF scores are nearly 0-or-1 — a right pair scores ≈ 1, a wrong one ≈ 0 —
# and then the two agree; greedy is simpler, needs no cubic solver, and is what the paper ships.
#
# Decomposing the whole-body matching (a K-partite graph, NP-hard) into **one bipartite matching per limb** of a
# spanning tree is OpenPose's key relaxation. **Assembly** then grows people outwards from the neck: a matched limb
# joins the person that already owns one of its ends, or starts a new person.

# %%
trap = torch.tensor([[0.9, 0.8], [0.7, 0.0]])
greedy, hungarian = pose.match_limbs(trap, "greedy"), pose.match_limbs(trap, "hungarian")
brute = max(sum(trap[i, p[i]].item() for i in range(2)) for p in itertools.permutations(range(2)))
assert math.isclose(hungarian[:, 2].sum().item(), brute, rel_tol=1e-6), "Hungarian: the best total of all matchings"
assert math.isclose(greedy[:, 2].sum().item(), 0.9, rel_tol=1e-6), "greedy: stuck after its first choice"
print(f"greedy takes the 0.9 edge and is stuck (total {greedy[:, 2].sum():.1f}); Hungarian total "
      f"{hungarian[:, 2].sum():.1f}")

# %% [markdown]
# Decoding scores every start–end pair of a limb at once with `pose.limb_scores`, printed here because every decoded
# person depends on it and the chapter does not show it elsewhere: it is `pose.paf_score` (your line integral,
# written to broadcast) called on a column of starts against a row of ends.

# %%
print(inspect.getsource(pose.limb_scores))
maps_small = pose.pose_targets(test_scenes.padded(), SIZE, stride=STRIDE, sigma=SIGMA, limb_width=LIMB_WIDTH)
truths = test_scenes.ground_truth()
ceiling = {}
for method in ("hungarian", "greedy"):
    decoded = [pose.decode_people(h, p, SIZE, PEAK_THRESHOLD, method) for h, p in zip(*maps_small)]
    ceiling[method] = pose.keypoint_ap(decoded, truths)
print("decoding the *true* maps (stride 2): keypoint AP "
      + ", ".join(f"{m} {c['ap']:.3f} (AP50 {c['ap50']:.3f})" for m, c in ceiling.items()))
assert ceiling["hungarian"]["ap"] > 0.85, "the decoding pipeline recovers people from perfect maps"
assert abs(ceiling["hungarian"]["ap"] - ceiling["greedy"]["ap"]) < 0.02, "greedy ≈ Hungarian on PAF scores"

# %% [markdown]
# Even perfect maps do not give AP 1: that gap is the **ceiling** of the bottom-up decoder on this data — keypoints
# of two people closer than the peak NMS can separate, crossing limbs whose averaged field points between the two,
# and truncated people left with too few parts.
#
# ## 6. OKS and keypoint AP
# Detection scores a box by IoU; pose scores a skeleton by **object keypoint similarity**:
#
# OKS = Σᵢ exp(−dᵢ² / 2s²kᵢ²) δ(vᵢ > 0) / Σᵢ δ(vᵢ > 0),
#
# dᵢ the distance of predicted keypoint i from the truth, s² the person's area (in COCO the area of its
# segmentation mask, the annotation's `area`, not of its box; here its box's, as our figures have no masks),
# kᵢ = 2σᵢ a per-keypoint constant that COCO measured from how much annotators disagree (σ is 0.025 for eyes and
# 0.107 for hips). It is a Gaussian per keypoint, averaged over the labelled ones (v > 0: hidden keypoints count):
# 1 for a perfect skeleton, 0.61 when every keypoint is off by s·kᵢ. **Keypoint AP** is then detection AP with OKS
# in place of IoU: rank predicted people by score, match greedily at OKS ≥ t, average the 101-point AP over
# t = 0.50, 0.55, …, 0.95. We check ours against `pycocotools`' `COCOeval(iouType="keypoints")` on a deliberately
# messy set of predictions (noisy, missing, duplicated and invented people).

# %%
generator = torch.Generator().manual_seed(0)
messy = []
for truth in test_scenes.keypoints:
    people = truth.clone()
    people[:, :, :2] += torch.randn(people.shape[:2] + (2,), generator=generator) * 2
    people = torch.cat([people[torch.rand(len(people), generator=generator) > 0.2], torch.rand(1, J, 3) * SIZE])
    messy.append({"keypoints": people, "scores": torch.rand(len(people), generator=generator)})
ours, theirs = pose.keypoint_ap(messy, truths), pose.coco_keypoint_ap(messy, truths)
for key in ours:
    assert abs(ours[key] - theirs[key]) < 1e-9, f"{key}: ours {ours[key]} vs pycocotools {theirs[key]}"
print(f"noisy predictions: AP {ours['ap']:.4f}, AP50 {ours['ap50']:.4f}, AP75 {ours['ap75']:.4f} — "
      f"pycocotools: {theirs['ap']:.4f}, {theirs['ap50']:.4f}, {theirs['ap75']:.4f}")

# %%
truth = test_scenes.keypoints[0][:1]
errors = torch.linspace(0, 8, 81)
fig, ax = plt.subplots(figsize=(6, 3.4))
for area in (20 * 30, 40 * 60):
    for kind in (0, 8):
        moved = truth.repeat(len(errors), 1, 1)
        moved[:, :, 0] += errors[:, None]
        single = truth.clone()
        single[:, :, 2] = 0
        single[:, kind, 2] = 2                              # score one keypoint type alone
        curve = pose.oks(moved, single, torch.tensor([float(area)]))[:, 0]
        assert (curve.diff() <= 0).all() and math.isclose(curve[0].item(), 1.0), \
            "OKS must fall as the error grows and be 1 for a perfect keypoint"
        ax.plot(errors, curve, label=f"{pose.KEYPOINTS[kind]} (σ={pose.SIGMAS[kind]}), area {area} px²")
ax.axhline(0.5, color="0.6", ls=":")
ax.set(xlabel="keypoint error (pixels)", ylabel="OKS", title="OKS forgives more on big people and loose keypoints")
ax.legend(fontsize=7)
show(fig)

# %%
# OKS averages over every labelled keypoint, hidden ones (v = 1) too: only v = 0 is left out
truth_hidden = test_scenes.keypoints[0][:1].clone()
truth_hidden[0, :, 2] = 2
truth_hidden[0, 0, 2] = 1                                  # the head: labelled, but hidden
truth_unlabelled = truth_hidden.clone()
truth_unlabelled[0, 0, 2] = 0                              # the head: not labelled
missed_head = truth_hidden.clone()
missed_head[0, 0, 0] += 10                                 # every keypoint exact but the head, 10 px off
oks_area = torch.tensor([600.0])
hidden_oks, unlabelled_oks = (pose.oks(missed_head, t, oks_area)[0, 0].item() for t in (truth_hidden, truth_unlabelled))
assert math.isclose(hidden_oks, (J - 1) / J, abs_tol=1e-3) and math.isclose(unlabelled_oks, 1.0), \
    f"a missed hidden head should cost 1/{J} of OKS ({(J - 1) / J:.3f}), found {hidden_oks:.3f}; " \
    f"once unlabelled, nothing (1 expected, found {unlabelled_oks:.3f})"


# %% [markdown]
# **Exercise.** In the exercise version of this notebook the cell below keeps only the signature and hints of
# `oks`: write it, and the self-check compares it with `pose.oks` (itself equal to pycocotools above, through the AP).

# %% tags=["exercise"]
def oks(predicted, truth, areas, sigmas):
    """COCO's object keypoint similarity in PyTorch, of every predicted person with every true person → P×G.

    predicted P×J×2 (x, y); truth G×J×3 (x, y, visibility v); areas G, each true person's area s²; sigmas J, one per
    keypoint type. OKS = the mean, over the true person's labelled keypoints (v > 0), of exp(−d² / (2 s² k²)), d the
    distance of the predicted keypoint from the true one and k = 2σ; a true person with no labelled keypoint scores 0.

    Hints: predicted[:, None, :, :2] − truth[None, :, :, :2] broadcasts to P×G×J×2; weight the Gaussians by the
    labelled mask, sum over J and divide by the number labelled (clamped to at least 1).
    """
    d2 = ((predicted[:, None, :, :2] - truth[None, :, :, :2]) ** 2).sum(-1)
    similarity = torch.exp(-d2 / (2 * areas[None, :, None] * (2 * sigmas) ** 2))
    labelled = (truth[:, :, 2] > 0).to(similarity.dtype)
    return (similarity * labelled).sum(-1) / labelled.sum(-1).clamp(min=1)


# %% tags=["self-check"]
oks = exercises.check("oks", oks)

# %% [markdown]
# ## 7. A staged network with intermediate supervision (CPM / OpenPose)
# `PoseNet` (in `utils/models/pose.py`): a small convolutional **backbone** to stride 2 gives features F; **stage 1**
# predicts heatmaps S¹ and PAFs L¹ from F with two branches; **stage t** sees F concatenated with Sᵗ⁻¹ and Lᵗ⁻¹ and
# refines them. Later stages see the earlier predictions — *where the other joints and limbs probably are* — over a
# growing receptive field, so they fix the mistakes local evidence makes (a left wrist that should be a right
# wrist, given where the elbows are). Every stage gets its own loss against the same targets: **intermediate
# supervision**, which keeps gradients strong in a deep stack (the vanishing-gradient problem Convolutional Pose
# Machines, 2016, set out to fix) and makes every stage a usable predictor.
#
# The loss is OpenPose's squared error, with one change for a short CPU run: pixels where a target is non-zero (on a
# keypoint's bump or on a limb, a few percent of the map) weigh `POSITIVE_WEIGHT` = 5 times more. Without it the
# cheapest first answer is an all-zero map, and a few epochs are spent unlearning it.

# %%
model = PoseNet(keypoints=J, limbs=L, width=WIDTH, stages=STAGES, stride=STRIDE).to(device)
x = torch.zeros(2, 1, SIZE, SIZE, device=device)
outputs = model(x)
assert len(outputs) == STAGES and all(o.shape == (2, J + 2 * L, SIZE // STRIDE, SIZE // STRIDE) for o in outputs), \
    "every stage should output heatmaps and PAFs at 1/STRIDE of the image"
# later stages read the features and the previous stage's 40 maps
assert model.heat_branches[1][0][0].in_channels == WIDTH + J + 2 * L, \
    "a later stage reads the image features and the previous stage's maps"
bottom_up_flops = count_flops(model, torch.zeros(1, 1, SIZE, SIZE, device=device))
print(f"PoseNet: {STAGES} stages, {count_parameters(model):,} parameters, "
      f"{bottom_up_flops / 1e6:.0f} MFLOPs per image; output {tuple(outputs[-1].shape[1:])} = 14 heatmaps + 26 PAF "
      "channels at stride 2")


# %%
def pose_loss(model, batch):
    """The staged L2 loss against targets drawn from the batch's keypoints on the fly (on the batch's device)."""
    images, keypoints = batch
    heatmaps, pafs = pose.pose_targets(keypoints, images.shape[-1], STRIDE, SIGMA, LIMB_WIDTH)
    return staged_loss(model(images), heatmaps, pafs, POSITIVE_WEIGHT)


loader = DeviceLoader(train_scenes.images, train_scenes.padded(), batch_size=BATCH, shuffle=True, device=device,
                      prepare=scene_input, drop_last=True)
start = time.perf_counter()
history = fit(model, loader, epochs=EPOCHS, lr=4e-3, loss_fn=pose_loss, plot=False, name="08_posenet",
              config={"scenes": TRAIN_SCENES, "size": SIZE, "sigma": SIGMA, "limb_width": LIMB_WIDTH,
                      "positive_weight": POSITIVE_WEIGHT})
print(f"trained in {time.perf_counter() - start:.0f} s ({profile()} profile, {device.type})")
history.assert_loss_went_down("PoseNet")
fig = history.figure()
fig.suptitle("PoseNet: training loss (sum over stages)")
show(fig)

# %% [markdown]
# Does stacking stages help? The loss of each stage's maps on the test scenes, then the AP of the final maps (and
# of greedy matching on the same maps):

# %%
test_keypoints = test_scenes.padded().to(device)
stage_losses = torch.zeros(STAGES)
model.eval()
with torch.no_grad():
    for images, keypoints in zip(test_scenes.images.to(device).split(64), test_keypoints.split(64)):
        targets = torch.cat(pose.pose_targets(keypoints, SIZE, STRIDE, SIGMA, LIMB_WIDTH), 1)
        for t, out in enumerate(model(scene_input(images))):
            stage_losses[t] += F.mse_loss(out.float(), targets, reduction="sum").item() / targets[0].numel()
stage_losses /= len(test_scenes)
print("test loss per stage:", " → ".join(f"{v:.4f}" for v in stage_losses.tolist()),
      f"— stage {int(stage_losses.argmin()) + 1} is best, {1 - stage_losses.min() / stage_losses[0]:.0%} below stage 1")
assert stage_losses[1:].min() < stage_losses[0], "a later stage improves on the first"

# %%
maps = predict_maps(model, test_scenes.images)
predictions = {method: [pose.decode_people(m[:J], m[J:], SIZE, PEAK_THRESHOLD, method) for m in maps]
               for method in ("hungarian", "greedy")}
bottom_up = {method: pose.keypoint_ap(p, truths) for method, p in predictions.items()}
reference = pose.coco_keypoint_ap(predictions["hungarian"], truths)
assert abs(bottom_up["hungarian"]["ap"] - reference["ap"]) < 1e-9, "our AP equals pycocotools' on real predictions"
# bars = measured − margin (cpu: AP 0.375, parts 0.818; smoke: parts 0.383); gpu unmeasured, so CPU-level bars.
# Smoke trains for seconds: the parts found, not AP, are its check.
BOTTOM_UP_BAR = pick(smoke=0.0, cpu=0.30, gpu=0.30)
PARTS_BAR = pick(smoke=0.25, cpu=0.75, gpu=0.75)
report("bottom-up keypoint AP (OpenPose-style, Hungarian)", bottom_up["hungarian"]["ap"], bar=BOTTOM_UP_BAR)
report("bottom-up keypoint AP50", bottom_up["hungarian"]["ap50"])
print(f"greedy matching: AP {bottom_up['greedy']['ap']:.3f}")
assert bottom_up["hungarian"]["ap"] >= BOTTOM_UP_BAR, "keypoint AP bar for this profile"

# %% [markdown]
# How much of the gap is finding the parts, and how much is grouping them? The parts found before grouping:

# %%
def heatmap_peaks(heatmaps):
    """Keypoint candidates of one image's J×h×w heatmaps, upsampled to the image as `pose.decode_people` does."""
    upsampled = F.interpolate(heatmaps[None].float(), size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0]
    return pose.find_peaks(upsampled, PEAK_THRESHOLD)


# parts before grouping: how many true keypoints have a peak of their type within 3 px?
parts = {"network": pose.part_recall([heatmap_peaks(m[:J]) for m in maps], truths),
         "true maps": pose.part_recall([heatmap_peaks(h) for h in maps_small[0]], truths)}
report("bottom-up parts found within 3 px (heatmap peaks)", parts["network"], bar=PARTS_BAR)
assert parts["network"] >= PARTS_BAR and parts["true maps"] > 0.95, \
    f"keypoints found within 3 px: network {parts['network']:.3f} (bar {PARTS_BAR}), true maps {parts['true maps']:.3f} (should be > 0.95)"
print(f"{parts['network']:.0%} of the true keypoints have a peak of their type within 3 px "
      f"({parts['true maps']:.0%} for the true maps): the rest of the AP gap is grouping and precision")
assert abs(bottom_up["hungarian"]["ap"] - bottom_up["greedy"]["ap"]) < 0.05, "greedy ≈ Hungarian on learnt maps too"
better = "greedy" if bottom_up["greedy"]["ap"] > bottom_up["hungarian"]["ap"] else "Hungarian"
print(f"{better} matching scores the higher AP here ({profile()} profile): the largest *total* score is not the "
      "same as the most confident limbs — Hungarian may trade one strong limb for two weak ones")
assert bottom_up["hungarian"]["ap"] <= ceiling["hungarian"]["ap"] + 0.02, "no decoder beats its own ceiling"

# %% [markdown]
# ## 8. Where it fails
# Two situations are hard for bottom-up grouping; both are built below with the same drawing code as the scenes:
#
# * **crossing limbs** — two forearms crossing: at the crossing the field is the average of two directions, and
#   the line integral of a wrong pair can pass through the good part of both limbs;
# * **close people** — same-type keypoints a few pixels apart merge into one peak (the 3×3 NMS keeps one of them),
#   and one person's keypoint steals another's limb.
#
# We run the trained network on both and show its skeletons (green) over the truth (yellow), with each true
# person's best OKS in the title (which case it copes with depends on the run: the `cpu` run handled the crossing
# and split the close pair into fragments), then rank the test scenes by their worst-recognised person (the lowest
# best-OKS of a true person).

# %%
def case(neck_a, neck_b, height, arm_angle_a, arm_angle_b, seed=0):
    """Two people whose facing arms (a's left, b's right) are straight, at the given angles (radians from down)."""
    generator = torch.Generator().manual_seed(seed)
    a = random_pose(height, generator) + torch.tensor(neck_a)
    b = random_pose(height, generator) + torch.tensor(neck_b)
    for person, elbow, angle in ((a, 6, arm_angle_a), (b, 3, arm_angle_b)):    # a's left arm, b's right arm
        direction = torch.tensor([math.sin(angle), math.cos(angle)])
        person[elbow] = person[elbow - 1] + 0.17 * height * direction
        person[elbow + 1] = person[elbow] + 0.15 * height * direction
    return draw_people([a, b], [height, height], SIZE, generator, shades=[230.0, 230.0])


cases = {"crossing forearms": case((24.0, 18.0), (40.0, 18.0), 40, 2.0, -2.0),            # an X above the gap
         "close people": case((28.0, 16.0), (35.0, 18.0), 40, 0.6, -0.6, seed=3)}

# %%
fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
for (name, (image, keypoints, boxes)), ax_scene, ax_field in zip(cases.items(), axes[::2], axes[1::2]):
    case_maps = predict_maps(model, image[None, None])[0]
    found = pose.decode_people(case_maps[:J], case_maps[J:], SIZE, PEAK_THRESHOLD)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(1)
    best = pose.oks(found["keypoints"], keypoints, area).amax(0) if len(found["keypoints"]) else torch.zeros(2)
    ax_scene.imshow(image, cmap="gray", vmin=0, vmax=255)
    pose.draw_skeletons(ax_scene, keypoints, color="yellow", linewidth=1)
    pose.draw_skeletons(ax_scene, found["keypoints"], color="lime", linewidth=1.5)
    ax_scene.set(title=f"{name}: {len(found['keypoints'])} found,\nbest OKS {best.numpy().round(2)}",
                 xticks=[], yticks=[])
    forearm = pose.LIMBS.index((6, 7))
    upsampled = F.interpolate(case_maps[None, J + 2 * forearm:J + 2 * forearm + 2], size=(SIZE, SIZE),
                              mode="bilinear", align_corners=False)[0]
    shown = ax_field.imshow(upsampled.norm(dim=0), cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(shown, ax=ax_field, fraction=0.046, pad=0.04, label="|PAF|")
    ax_field.set(title="predicted left-forearm PAF", xlabel="x (pixels)", ylabel="y (pixels)")
fig.tight_layout()
show(fig)

# %%
worst_oks = []
for prediction, truth in zip(predictions["hungarian"], truths):
    area = (truth["boxes"][:, 2:] - truth["boxes"][:, :2]).prod(1)
    found = pose.oks(prediction["keypoints"], truth["keypoints"], area) if len(prediction["keypoints"]) else None
    worst_oks.append(found.amax(0).min().item() if found is not None else 0.0)
worst = np.argsort(worst_oks)[:4]
fig, axes = plt.subplots(1, 4, figsize=(13, 4.3), layout="constrained")
for ax, i in zip(axes, worst):
    draw_truth(ax, i, title=f"scene {i}\nworst person's OKS {worst_oks[i]:.2f}")
    pose.draw_skeletons(ax, predictions["hungarian"][i]["keypoints"], color="lime", linewidth=1.2)
fig.suptitle("The test scenes whose worst-recognised person is worst: truth (yellow), prediction (green)")
show(fig)

# %% [markdown]
# ## 9. Top-down vs bottom-up
# The top-down baseline: Chapter 4's anchor-free detector (`AnchorFreeDetector`, one class: *person*) finds boxes;
# each box is widened to a square with a margin, resampled to 32×32 with `torchvision.ops.roi_align`, and a
# **single-person** staged network — the same `PoseNet` with no PAF branch, i.e. a Convolutional Pose Machine —
# predicts 14 heatmaps whose maxima are the keypoints. No grouping is needed: the box already says whose keypoints
# they are. Its price: one network pass **per person**, after the detector; the bottom-up network's cost does not
# depend on the crowd at all.

# %%
CROP = 32
DETECTOR_WIDTH = pick(smoke=8, cpu=8, gpu=16)
DETECTOR_EPOCHS = pick(smoke=4, cpu=4, gpu=40)
SINGLE_EPOCHS = pick(smoke=2, cpu=3, gpu=30)
person_labels = [torch.zeros(len(b), dtype=torch.int64) for b in train_scenes.boxes]
detector = AnchorFreeDetector(num_classes=1, width=DETECTOR_WIDTH).to(device)
detector_loader = DeviceLoader(train_scenes.images, pad_targets(train_scenes.boxes, person_labels,
                                                                 SCENE_ARGS["max_people"]),
                               batch_size=BATCH, shuffle=True, device=device, prepare=scene_input, drop_last=True)
detector_history = fit(detector, detector_loader, epochs=DETECTOR_EPOCHS, lr=3e-3, loss_fn=anchor_free_loss,
                       plot=False, name="08_person_detector", config={"scenes": TRAIN_SCENES, "size": SIZE})

# %%
# training crops: every true person's square, jittered in position and size so the model meets imperfect boxes
generator = torch.Generator().manual_seed(1)
boxes = torch.cat(train_scenes.boxes)
jitter = 1 + 0.15 * (torch.rand(len(boxes), 1, generator=generator) * 2 - 1)
shift = (torch.rand(len(boxes), 2, generator=generator) * 2 - 1) * 0.1 * (boxes[:, 2:] - boxes[:, :2])
squares = pose.square_boxes(boxes + shift.repeat(1, 2), expand=1.25) * 1.0
squares = torch.cat([(squares[:, :2] + squares[:, 2:]) / 2 - (squares[:, 2:] - squares[:, :2]) * jitter / 2,
                     (squares[:, :2] + squares[:, 2:]) / 2 + (squares[:, 2:] - squares[:, :2]) * jitter / 2], 1)
crops = pose.crop_people(train_scenes.images, list(squares.split([len(b) for b in train_scenes.boxes])), CROP)
crop_keypoints = all_keypoints.clone()
crop_keypoints[:, :, :2] = pose.to_crop(all_keypoints[:, :, :2], squares, CROP)
outside = ((crop_keypoints[:, :, :2] < -0.5) | (crop_keypoints[:, :, :2] > CROP - 0.5)).any(-1)
crop_keypoints[:, :, 2] = torch.where(outside, 0.0, crop_keypoints[:, :, 2])
assert crops.shape == (len(all_keypoints), 1, CROP, CROP), \
    f"one {CROP}×{CROP} crop per person expected, got {tuple(crops.shape)}"


# %%
def single_person_loss(model, batch):
    """Staged L2 loss on one person's heatmaps in its crop (no PAFs: the crop says who)."""
    images, keypoints = batch
    # σ in crop pixels: the scenes' 2 px scaled by a typical crop (a 48-px square resampled to 32 px)
    heatmaps, _ = pose.pose_targets(keypoints[:, None], CROP, STRIDE, SIGMA * CROP / 48, LIMB_WIDTH)
    return staged_loss(model(images), heatmaps, positive_weight=POSITIVE_WEIGHT)


single = PoseNet(keypoints=J, limbs=0, width=WIDTH, stages=2, stride=STRIDE).to(device)
single_loader = DeviceLoader(crops.round().clamp(0, 255).to(torch.uint8), crop_keypoints, batch_size=BATCH * 2,
                             shuffle=True, device=device, prepare=scene_input, drop_last=True)
single_history = fit(single, single_loader, epochs=SINGLE_EPOCHS, lr=4e-3, loss_fn=single_person_loss, plot=False,
                     name="08_single_person",
                     config={"people": len(crops), "crop": CROP, "positive_weight": POSITIVE_WEIGHT})
single_history.assert_loss_went_down("the single-person network")


# %%
def top_down(images, confidence=0.2):
    """Detect people, crop each square, run the single-person network, read each heatmap's maximum."""
    detections = detect_all(detector, images, confidence=confidence, iou_threshold=0.5)
    results = []
    for image, found in zip(images, detections):
        if len(found["boxes"]) == 0:
            results.append({"keypoints": torch.zeros(0, J, 3), "scores": torch.zeros(0)})
            continue
        squares = pose.square_boxes(found["boxes"].float().cpu(), expand=1.25)
        crop_maps = predict_maps(single, pose.crop_people(image[None].float(), [squares], CROP).round().to(torch.uint8))
        upsampled = F.interpolate(crop_maps, size=(CROP, CROP), mode="bilinear", align_corners=False)
        located = pose.heatmap_argmax(upsampled)
        keypoints = torch.cat([pose.from_crop(located[..., :2], squares, CROP), located[..., 2:]], -1)
        results.append({"keypoints": keypoints, "scores": found["scores"].cpu() * located[..., 2].mean(1).clamp(0, 1)})
    return results


# %%
top_down_predictions = top_down(test_scenes.images)
top_down_ap = pose.keypoint_ap(top_down_predictions, truths)
# measured − margin (cpu: AP 0.318, parts 0.560; smoke: parts 0.107); gpu unmeasured, so CPU-level bars
TOP_DOWN_BAR = pick(smoke=0.0, cpu=0.25, gpu=0.25)
TOP_DOWN_PARTS_BAR = pick(smoke=0.05, cpu=0.48, gpu=0.48)
report("top-down keypoint AP (detector + single-person CPM)", top_down_ap["ap"], bar=TOP_DOWN_BAR)
report("top-down keypoint AP50", top_down_ap["ap50"])
top_down_parts = pose.part_recall([[p["keypoints"][:, j] for j in range(J)] for p in top_down_predictions], truths)
report("top-down parts found within 3 px", top_down_parts, bar=TOP_DOWN_PARTS_BAR)
assert top_down_ap["ap"] >= TOP_DOWN_BAR, "top-down keypoint AP bar for this profile"
assert top_down_parts >= TOP_DOWN_PARTS_BAR, "top-down parts bar for this profile"
assert abs(top_down_ap["ap"] - pose.coco_keypoint_ap(top_down_predictions, truths)["ap"]) < 1e-9, \
    "the hand-written keypoint AP must equal pycocotools' COCOeval on the top-down predictions"

# %% [markdown]
# **Accuracy and cost against the number of people.** We split the test scenes by how many people they hold and
# measure, per group: keypoint AP of both pipelines; the arithmetic each does per image (FLOPs: the bottom-up network
# once; the detector once plus the single-person network once per detected person); and the wall-clock time per
# image on this machine (shown, not asserted: it depends on the machine and its load).

# %%
detector_flops = count_flops(detector, torch.zeros(1, 1, SIZE, SIZE, device=device))
single_flops = count_flops(single, torch.zeros(1, 1, CROP, CROP, device=device))
groups = {"1–2": (1, 2), "3–4": (3, 4), "5–6": (5, 6)}
comparison = {}
for name, (low, high) in groups.items():
    members = [i for i, n in enumerate(people_per_scene.tolist()) if low <= n <= high]
    chosen = test_scenes.images[members]
    detected = [len(top_down_predictions[i]["scores"]) for i in members]
    group_truths = [truths[i] for i in members]
    bottom_seconds = time.perf_counter()
    for i in members:
        pose.decode_people(*predict_maps(model, test_scenes.images[i:i + 1])[0].split([J, 2 * L]), SIZE, PEAK_THRESHOLD)
    bottom_seconds = (time.perf_counter() - bottom_seconds) / len(members)
    top_seconds = time.perf_counter()
    for i in members:
        top_down(test_scenes.images[i:i + 1])
    top_seconds = (time.perf_counter() - top_seconds) / len(members)
    comparison[name] = {
        "scenes": len(members),
        "bottom-up AP": pose.keypoint_ap([predictions["hungarian"][i] for i in members], group_truths)["ap"],
        "top-down AP": pose.keypoint_ap([top_down_predictions[i] for i in members], group_truths)["ap"],
        "bottom-up MFLOPs": bottom_up_flops / 1e6,
        "top-down MFLOPs": (detector_flops + np.mean(detected) * single_flops) / 1e6,
        "bottom-up ms": 1000 * bottom_seconds, "top-down ms": 1000 * top_seconds,
        "people detected": float(np.mean(detected)),
    }
for name, row in comparison.items():
    print(f"{name} people ({row['scenes']} scenes): AP bottom-up {row['bottom-up AP']:.3f} / top-down "
          f"{row['top-down AP']:.3f}; MFLOPs {row['bottom-up MFLOPs']:.0f} / {row['top-down MFLOPs']:.0f} "
          f"({row['people detected']:.1f} people detected); ms per image {row['bottom-up ms']:.1f} / "
          f"{row['top-down ms']:.1f}")
few, many = comparison["1–2"], comparison["5–6"]
assert all(row["bottom-up MFLOPs"] == bottom_up_flops / 1e6 for row in comparison.values()), "one pass, any crowd"
# top-down pays one single-person pass per detected person on top of the detector
assert math.isclose(many["top-down MFLOPs"] - few["top-down MFLOPs"],
                    (many["people detected"] - few["people detected"]) * single_flops / 1e6, abs_tol=1e-6), \
    "top-down should cost one single-person pass more per extra detected person"

# %%
show(pose.render_crowd_comparison(comparison, device.type, profile()))
growth = many["top-down MFLOPs"] / few["top-down MFLOPs"]
leader = {g: "neither (within 0.005)" if abs(comparison[g]["top-down AP"] - comparison[g]["bottom-up AP"]) < 0.005
          else max(("top-down", "bottom-up"), key=lambda m: comparison[g][f"{m} AP"]) for g in groups}
print(f"From 1–2 to 5–6 people the top-down arithmetic grows {growth:.1f}× while bottom-up's stays "
      f"{bottom_up_flops / 1e6:.0f} MFLOPs; the more accurate pipeline in this run ({profile()} profile): "
      + ", ".join(f"{g} people → {m}" for g, m in leader.items()) + ".")

# %% [markdown]
# ## 10. Explorer: heatmaps, PAFs and the matching
# Pick a test scene, a limb type and the peak threshold; see the two endpoint heatmaps with their peaks, the limb's
# PAF as arrows, every candidate connection with its line-integral score and the matching chosen (Hungarian or
# greedy). Switch *maps* to "true" to see what perfect maps give. A low threshold floods the matching with
# candidates (most score ≈ 0 and are never chosen); a high one drops faint keypoints of hidden or truncated people.

# %%
explored = min(len(test_scenes), 40)


def render(scene=0, limb=pose.LIMBS.index((6, 7)), threshold=20, method="hungarian", source="network"):
    chosen_maps = maps[scene] if source == "network" else torch.cat([maps_small[0][scene], maps_small[1][scene]])
    return pose.render_limb_matching(test_scenes.images[scene], chosen_maps[:J], chosen_maps[J:], limb,
                                     threshold / 100, method)


explorer = Explorer(render, {"scene": slider("test scene", 0, explored - 1, crowded if crowded < explored else 0),
                             "limb": dropdown("limb", [(n, i) for i, n in enumerate(pose.LIMB_NAMES)],
                                              pose.LIMBS.index((6, 7))),
                             "threshold": slider("peak threshold %", 5, 95, 20),
                             "method": dropdown("matching", ["hungarian", "greedy"]),
                             "source": dropdown("maps", ["network", "true"])},
                    title="Limb matching explorer")
show(explorer)
before = explorer.image.value
explorer.set(scene=(explorer.values()["scene"] + 1) % explored)
assert explorer.image.value != before, "the first control changes the figure"

# %% [markdown]
# ## Interview questions
#
# <details><summary>Top-down vs bottom-up pose estimation: what is the difference, and when does each win?</summary>
#
# Top-down detects each person, then estimates one person's keypoints in each box (Mask R-CNN, SimpleBaseline,
# HRNet, ViTPose): every person is seen at a normalised scale, so it is usually more accurate, but its cost grows
# with the number of people and it fails with the detector (a missed or merged box loses people). Bottom-up finds
# every keypoint in one pass and groups them (OpenPose with PAFs, Associative Embedding with tags): constant network
# cost in crowds, but small people are seen at image scale and grouping can mix people up. (see "9. Top-down vs
# bottom-up": AP, FLOPs and time per image for 1–2, 3–4 and 5–6 people)
# </details>
#
# <details><summary>Why predict heatmaps instead of regressing keypoint coordinates?</summary>
#
# A heatmap keeps the output spatial — the same translation-equivariant convolutions all the way — it can hold one
# peak per person, and its spread expresses uncertainty. A regressor outputs one answer per keypoint; trained with
# L2 on ambiguous cases it converges to their average, a point between people where no keypoint is. Heatmaps cost a
# peak-finding step and are limited by their resolution (hence sub-pixel refinement, or integral regression / SimCC
# which bring regression back in a heatmap-like form). (see "2. Keypoint heatmaps": the two-neck example)
# </details>
#
# <details><summary>What is a part affinity field?</summary>
#
# For each limb type, a 2-channel map that holds, at every pixel on a limb, the unit vector pointing from the limb's
# first keypoint to its second, and zero elsewhere (the average vector where limbs of several people overlap). It
# encodes both *location* and *orientation* of limbs, so the network can say which candidate keypoints are joined.
# OpenPose predicts 2 channels per limb next to the keypoint heatmaps. (see "3. Part affinity fields")
# </details>
#
# <details><summary>How is a candidate limb scored with a PAF?</summary>
#
# By the line integral of the field along the segment between the two candidates, projected on the segment's
# direction: E = ∫ L(p(u)) · (d₂ − d₁)/‖d₂ − d₁‖ du, approximated by sampling ~10 evenly spaced points. A true limb
# scores ≈ 1, a pair across two people ≈ 0, a reversed one ≈ −1; OpenPose also requires most samples to be
# positive and penalises pairs longer than half the image. (see "4. Scoring a candidate limb": the elbow × wrist
# score matrix)
# </details>
#
# <details><summary>What does the Hungarian algorithm do in OpenPose, and why is greedy used in practice?</summary>
#
# Per limb type, the candidates form a bipartite graph (starts × ends, weighted by the PAF score), and a person has
# at most one of each limb: a maximum-weight bipartite matching, which the Hungarian (Kuhn–Munkres) algorithm solves
# exactly in O(n³) (`scipy.optimize.linear_sum_assignment`). OpenPose's released code is greedy — sort the pairs by
# score, take each one whose ends are still free — because PAF scores are nearly binary, so greedy finds the same
# matching almost always, with simpler code and no cubic solver; greedy *can* lose (the 2×2 example). The hard
# K-partite problem of the whole body is relaxed into independent bipartite matchings along a spanning tree.
# (see "5. Peaks, bipartite matching, assembly" and the AP of both matchers in "7. A staged network")
# </details>
#
# <details><summary>What is OKS, and how is keypoint AP computed?</summary>
#
# Object keypoint similarity: the mean over a person's labelled keypoints of exp(−d² / 2s²k²), with d the error, s²
# the person's area and k = 2σ a per-keypoint tolerance measured from annotator disagreement. It plays IoU's role:
# rank predicted people by score, match each to the unmatched true person of highest OKS ≥ t, and compute AP as in
# COCO detection, averaged over t = 0.50:0.05:0.95 (AP50, AP75 at one threshold). (see "6. OKS and keypoint AP":
# equal to pycocotools' COCOeval, and the OKS curves)
# </details>
#
# <details><summary>What is intermediate supervision, and why do CPM and OpenPose stack stages?</summary>
#
# Each stage refines the previous stage's maps using image features plus the predicted maps, over a larger
# receptive field, so it can use the spatial context of other parts. A loss on every stage's output keeps gradients
# from vanishing in the deep stack and makes each stage a usable predictor. (see "7. A staged network": the test
# loss of every stage)
# </details>
#
# <details><summary>Where does a bottom-up pose estimator fail?</summary>
#
# Where grouping is ambiguous: crossing limbs (the field is averaged where limbs overlap), people so close that
# same-type keypoints merge into one peak, truncated people left with too few parts, and small people (the maps are
# at a fixed stride). Top-down methods fail instead when the detector does — two overlapping people in one box, or a
# missed person. (see "8. Where it fails")
# </details>
#
# ### Answers you may read that are wrong
#
# <details><summary>Wrong: “OpenPose is a top-down pose estimator.”</summary>
#
# Right: OpenPose (Cao et al., 2017) is the bottom-up classic: one network pass predicts the heatmaps of every
# keypoint and the PAFs of every limb for the whole image, and the people are assembled from them afterwards.
# Top-down methods (Mask R-CNN keypoints, SimpleBaseline, HRNet, ViTPose) detect each person first and run once per
# box. Bottom-up's network cost does not grow with the crowd — asserted in "9. Top-down vs bottom-up".
#
# </details>
#
# <details><summary>Wrong: “The argmax of a keypoint heatmap gives the keypoint to sub-pixel accuracy.”</summary>
#
# Right: the argmax is a whole pixel of the map it is read from — up to half a map pixel off per axis, i.e. up to
# 1 image pixel at our stride 2 and 2 at SimpleBaseline's and HRNet's stride 4. Sub-pixel positions need a
# refinement: the quarter-pixel shift towards the higher neighbour (Stacked Hourglass, 2016), DARK's Taylor
# expansion (2020), or a soft-argmax (integral regression). "the argmax of a heatmap is a whole pixel" asserts the
# argmax 0.5 px from a Gaussian's centre at y = 30.5 and the soft-argmax on it to 1e-3 px.
#
# </details>
#
# <details><summary>Wrong: “OKS is averaged over the visible keypoints.”</summary>
#
# Right: over the *labelled* ones, v > 0: COCO's v = 1 (labelled but hidden) counts exactly as v = 2 does, and only
# v = 0 (not labelled) is left out, so a badly placed hidden keypoint lowers OKS. "OKS averages over every labelled
# keypoint" asserts that a hidden head 10 px off costs 1/14 of OKS (13/14 ≈ 0.929) and, once unlabelled, nothing;
# `pose.oks` is the OKS that matches pycocotools' AP in "6. OKS and keypoint AP".
#
# </details>
#
# <details><summary>Wrong: “In OKS, s² is the area of the person's bounding box.”</summary>
#
# Right: in COCO, s² is the area of the person's *segmentation mask* — the annotation's `area` field, which
# pycocotools' `computeOks` divides by — and a mask is smaller than its box; scoring against the box's area makes OKS
# more lenient, so numbers computed that way are not COCO's. Our figures have no masks, so this chapter uses the box
# and says so in "6. OKS and keypoint AP".
#
# </details>
#
# <details><summary>Wrong: “OpenPose finds the optimal limb matching with the Hungarian algorithm.”</summary>
#
# Right: the paper poses each limb's matching as a maximum-weight bipartite matching and names the Hungarian
# algorithm, but OpenPose's released code matches greedily — sort the candidate pairs by PAF score, keep each whose
# two ends are still free — which is not optimal in general. "5. Peaks, bipartite matching, assembly" asserts
# greedy's total 0.9 against Hungarian's 1.5 on a 2×2 case, and greedy's AP within 0.02 of Hungarian's on the true
# maps, whose PAF scores are nearly 0 or 1 — why greedy is good enough in practice.
#
# </details>
