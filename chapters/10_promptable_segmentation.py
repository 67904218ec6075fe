# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 10 — Promptable segmentation: a small Segment Anything Model
#
# **Deep Vision Lab · Chapter 10.** Chapter 5's networks label every pixel with one of a fixed list of classes.
# **SAM** (Segment Anything, Kirillov et al., 2023) answers a different question: *"which pixels belong to the thing
# I am pointing at?"* The prompt — a click (foreground or background), a box, a rough mask — says *what*; the model
# says *which pixels*, for any kind of object, without a class list. It has three parts:
#
# | part | what it does | runs |
# |---|---|---|
# | **image encoder** | the heavy network (SAM: a ViT-H, ~3 T multiply-adds = ~6 TFLOPs per image) → an image embedding | **once per image** |
# | **prompt encoder** | points and box corners → vectors (random Fourier features + a learned type embedding); a mask prompt → convolutions | per prompt |
# | **mask decoder** | a two-way Transformer: prompt and output tokens attend to the image, the image attends back → **three masks** + their predicted IoUs | per prompt, milliseconds |
#
# We build a small SAM from these parts and train it the way SAM was trained — with **simulated interaction**: a
# first click or a noisy box, then corrective clicks drawn from the model's own mistakes. Then we measure what the
# paper claims: masks improve click by click; **three masks** are needed because one click is ambiguous (an item
# on top of another: the item, or the pile?); the **IoU head** knows which of its masks is good; a **data engine**
# turns the model's confident masks on unlabelled images into training data; a **text prompt**, as the paper
# tried it through CLIP, is measured against a click; and SAM is made **fast** by caching the embedding, quantising
# the decoder to int8, and distilling a smaller encoder (MobileSAM). Last, a widget: click on an image and watch the
# model segment it.
#
# Open `utils/models/sam.py` (the model), `utils/sam.py` (scenes, prompts, loss, evaluation, data engine, widget)
# and `utils/sam_text.py` (the text prompt) beside this notebook.

# %%
import copy
import inspect
import time
import warnings

import matplotlib.pyplot as plt
import torch
from torch import nn

from utils import contrastive, exercises, multimodal, sam, sam_text, start_chapter
from utils.checkpoints import checksum
from utils.data import DeviceLoader, standardize
from utils.measuring import count_flops, count_parameters, model_bytes, timed
from utils.models import clip as clip_models
from utils.models.clip import CLIP
from utils.models.sam import SAM, ImageEncoder, fourier_features
from utils.plotting import colorbar, comparison_chart, show
from utils.results import report
from utils.runtime import pick, profile
from utils.training import autocast, fit

device = start_chapter("10_promptable_segmentation")

SIZE = 64                                              # canvas side in pixels; the embedding is SIZE/4 = 16×16
TRAIN_SCENES = pick(smoke=300, cpu=1500, gpu=8000)     # labelled scenes
UNLABELLED_SCENES = pick(smoke=48, cpu=400, gpu=2000)  # the data engine's unlabelled scenes
TEST_SCENES = pick(smoke=60, cpu=200, gpu=500)
DIM, WIDTH = 48, 24                                    # embedding channels; encoder width
EPOCHS = pick(smoke=2, cpu=5, gpu=20)
ROUNDS = 3                                             # prompts per training example: first + 2 corrective clicks
BATCH = pick(smoke=32, cpu=32, gpu=128)
LR = 3e-3
CLICKS = 5

# %% [markdown]
# ## 1. Scenes with real ambiguity
# The course's Fashion scenes (Chapter 4, `utils.scenes`) with one change: items may overlap more (box IoU up to
# 0.5), so they lie **on top of one another**. A click on a shirt lying on a bag has three right answers, nested
# like SAM's *subpart, part, whole*:
#
# * **item** — the visible pixels of the clicked item (Chapter 5's instance masks);
# * **stack** — every item it touches, and the items those touch: the pile;
# * **all** — every item in the scene.
#
# For an item alone in a scene the three coincide; on a pile they differ, and nothing in the click says which is
# meant. That is SAM's ambiguity, built into the data. Each object stores its three targets as three bits of one
# byte per pixel (`sam.unpack_levels`).

# %%
train = sam.prompt_scenes("train", TRAIN_SCENES, SIZE)
test = sam.prompt_scenes("test", TEST_SCENES, SIZE)
train_levels, test_levels = train.levels(), test.levels()
test_targets = {name: sam.unpack_levels(test_levels, level) for level, name in enumerate(sam.LEVELS)}
differs = {"item ≠ stack": (test_targets["item"] != test_targets["stack"]).flatten(1).any(1),
           "stack ≠ all": (test_targets["stack"] != test_targets["all"]).flatten(1).any(1)}
assert (test_targets["item"] <= test_targets["stack"]).all() and (test_targets["stack"] <= test_targets["all"]).all(), \
    "the levels must nest: item ⊆ stack ⊆ all"
assert differs["item ≠ stack"].float().mean() > 0.2, \
    f"too few stacked items to study ambiguity: {differs['item ≠ stack'].float().mean():.0%} of objects"
print(f"{len(train.objects)} training objects in {TRAIN_SCENES} scenes, {len(test.objects)} test objects; "
      + ", ".join(f"{name}: {d.float().mean():.0%} of test objects" for name, d in differs.items()))

# %%
ambiguous = (differs["item ≠ stack"] & differs["stack ≠ all"]).nonzero()[:, 0]
shown_objects = ambiguous[:4].tolist()
show(sam.render_levels(test.images, test.objects, test_targets, shown_objects))

# %% [markdown]
# ## 2. Prompts, as SAM simulated them
# SAM was trained on a simulated user. The **first prompt** is a point drawn uniformly inside the target, or the
# target's box with each side moved by noise of 10% of the box's side (a sloppy drag). Every **further click** is
# drawn uniformly from the **error region** of the model's last prediction: a missed pixel gives a *foreground*
# click, a false-positive pixel a *background* click. We check the three samplers on real masks: every point lies
# inside its mask, every corrective click on an error pixel with the matching label.

# %%
generator = torch.Generator().manual_seed(0)
items = test_targets["item"]
points = sam.sample_point(items, generator)
rows = torch.arange(len(items))
assert items[rows, points[:, 1].long(), points[:, 0].long()].all(), "a first click must lie inside its object"
wrong = torch.roll(items, 1, dims=-1) | torch.roll(items, 3, dims=-2)       # a shifted, swollen 'prediction'
clicks, labels = sam.next_click(wrong, items, generator)
on_error = wrong[rows, clicks[:, 1].long(), clicks[:, 0].long()] != items[rows, clicks[:, 1].long(), clicks[:, 0].long()]
assert on_error.all(), "a corrective click must lie in the error region"
assert torch.equal(labels, items[rows, clicks[:, 1].long(), clicks[:, 0].long()].long()), \
    "a click on a missed pixel is foreground (1), on a false positive background (0)"
boxes = sam.noisy_box(items, generator)
print(f"{len(items)} first clicks inside their objects; corrective clicks: {labels.float().mean():.0%} foreground "
      f"(missed pixels), {1 - labels.float().mean():.0%} background (false positives)")

# %%
index = shown_objects[0]
show(sam.render_prompt_samplers(test.images[int(test.objects[index, 0]), 0], items[index], points[index], boxes[index],
                                wrong[index] ^ items[index], clicks[index], labels[index]))

# %% [markdown]
# **Exercise (medium).** A box prompt reaches the prompt encoder as two points: its top-left corner (label 2) and its
# bottom-right corner (label 3), the pixels in the box's first and last column and row. In the exercise version of
# this notebook (`make exercises`) the cell below keeps only the signature and hints of `box_prompt_corners`, the
# tight box of each mask as those two points, without a loop: write it, and the self-check compares it with
# `torchvision.ops.masks_to_boxes` (whose x2, y2 are the last pixel's too).

# %% tags=["exercise"]
def box_prompt_corners(masks):
    """The box prompt around each mask as the two points the prompt encoder gets: masks bool N×H×W (none empty) →
    N×2×2 float, per mask its top-left corner (x1, y1) and its bottom-right corner (x2, y2) — the first and the
    last column and row that hold a pixel of the mask, both inside it.

    Hints: masks.any(1) says which columns hold a pixel (N×W), masks.any(2) which rows (N×H); argmax of the flags
    as floats finds the first True, and on the flipped flags the last (W − 1 − that); a point is (x, y), x the
    column.
    """
    columns, rows = masks.any(1).float(), masks.any(2).float()
    last_column = masks.shape[2] - 1 - columns.flip(1).argmax(1)
    last_row = masks.shape[1] - 1 - rows.flip(1).argmax(1)
    return torch.stack([columns.argmax(1), rows.argmax(1), last_column, last_row], 1).view(-1, 2, 2).float()


# %% tags=["self-check"]
box_prompt_corners = exercises.check("box_prompt_corners", box_prompt_corners)

# %% [markdown]
# ## 3. The model
# ### Prompt encoder: random Fourier features
# A point (x, y) must become a vector the Transformer can compare with the image embedding's positions. Feeding
# the raw two numbers to an MLP works badly: networks are biased towards smooth functions of their input, and
# "inside vs outside a thin sleeve" is not smooth in (x, y). SAM uses **random Fourier features** (Tancik et al.,
# 2020): with coordinates in [0, 1] and a fixed random matrix B (2 × F, Gaussian),
#
# γ(p) = [sin 2π p·B, cos 2π p·B] — a 2F-vector,
#
# and the dot product γ(p)·γ(q) depends only on p − q: nearby points get similar vectors, far ones nearly
# orthogonal ones, and the scale of B sets how near is "near". The same features encode every cell of the image
# embedding (its positional encoding), so a click and the cell under it match. A **learned type embedding** is
# added: foreground point, background point, box top-left corner, box bottom-right corner (a box is two points).
# A **dense prompt** — the previous mask's logits — goes through two strided convolutions and is *added* to the
# image embedding.

# %%
model = SAM(dim=DIM, width=WIDTH, image_size=SIZE).to(device)
frequencies = model.prompt_encoder.frequencies.cpu()
grid = (torch.arange(SIZE) + 0.5) / SIZE
ys, xs = torch.meshgrid(grid, grid, indexing="ij")
pixel_features = fourier_features(torch.stack([xs, ys], -1), frequencies)              # S×S×DIM
click = torch.tensor([20.5, 30.5]) / SIZE
similarity = pixel_features @ fourier_features(click, frequencies) / (DIM // 2)
assert pixel_features.shape == (SIZE, SIZE, DIM), f"one {DIM}-vector per pixel, got {tuple(pixel_features.shape)}"
torch.testing.assert_close(pixel_features.pow(2).sum(-1), torch.full((SIZE, SIZE), DIM / 2.0))   # sin² + cos² = 1
assert similarity.argmax() == 30 * SIZE + 20, "a click is most similar to its own pixel"
shifted = fourier_features(torch.tensor([0.3, 0.7]) + 0.1, frequencies) @ fourier_features(torch.tensor([0.3, 0.7]), frequencies)
moved = fourier_features(torch.tensor([0.6, 0.2]) + 0.1, frequencies) @ fourier_features(torch.tensor([0.6, 0.2]), frequencies)
torch.testing.assert_close(shifted, moved)             # the similarity depends only on the displacement

# %%
# SAM's prompts: points (foreground or background), a box as its two corners, a previous mask — and no text
prompt_inputs = list(inspect.signature(model.predict).parameters)
prompt_types = model.prompt_encoder.type_embeddings.num_embeddings
assert prompt_inputs == ["embedding", "points", "labels", "mask_logits"] and prompt_types == 4, \
    f"a prompt is labelled points and an optional mask, with 4 point types; found {prompt_inputs}, {prompt_types} types"

# %%
fig, ax = plt.subplots(figsize=(4.2, 3.4), layout="constrained")
drawn = ax.imshow(similarity, cmap="coolwarm", vmin=-1, vmax=1)
ax.plot(20, 30, "k*", markersize=12)
colorbar(drawn, ax, "γ(click)·γ(pixel) / F")
ax.set(title="Fourier features: similarity to a click", xlabel="x (pixels)", ylabel="y (pixels)")
show(fig)

# %% [markdown]
# **Exercise (easy).** In the exercise version of this notebook the cell below keeps only the signature and hints of
# `encode_points`, the Fourier part of a point prompt's token: write it, and the self-check compares it with the
# course's prompt encoder (`PromptEncoder.sparse`, its type embeddings zeroed) given the same Gaussian matrix B.

# %% tags=["exercise"]
def encode_points(points, frequencies, image_size):
    """Random Fourier features of point prompts: points N×P×2 pixel coordinates (x, y) on a square image of side
    image_size, frequencies B 2×F (Gaussian) → N×P×2F: [sin 2π p·B, cos 2π p·B] (the F sines, then the F cosines),
    where p = ((x + 0.5) / image_size, (y + 0.5) / image_size) is the pixel's centre scaled to [0, 1].

    Hints: normalise first; one matrix product p @ B gives the F projections of every point; torch.cat the sines
    and the cosines along the last dimension.
    """
    angles = 2 * torch.pi * ((points + 0.5) / image_size) @ frequencies
    return torch.cat([angles.sin(), angles.cos()], -1)


# %% tags=["self-check"]
encode_points = exercises.check("encode_points", encode_points)

# %% [markdown]
# ### Image encoder, mask decoder, and why the embedding is computed once
# The **image encoder** (`ImageEncoder`) is a convolutional stack to stride 4 with dilated convolutions and a 1×1
# neck with LayerNorm: a 64×64 image becomes a 16×16×48 embedding (SAM: a ViT-H turns 1024×1024 into 64×64×256).
# The **mask decoder** (`MaskDecoder`) puts one **IoU token** and three **mask tokens** — learned vectors, like
# ViT's class token — before the prompt tokens and runs two **two-way** blocks: the tokens attend to each other,
# then to the image (queries: tokens; keys and values: the 256 image cells), then an MLP; then the **image attends
# back to the tokens**, so the embedding itself is updated by the prompt. The image is upscaled 4× by transposed
# convolutions; each mask token, through its own MLP (a *hypernetwork*), becomes a vector whose dot product with
# every upscaled pixel is that mask's logit. The IoU token, through an MLP, predicts the three masks' IoUs.
#
# The split is the point: the encoder runs **once per image** and its embedding is cached; every click costs only
# a prompt encoding and a decoder pass. We count the arithmetic (FLOPs, from PyTorch's `FlopCounterMode`), at
# 2 FLOPs per multiply-add: a figure quoted in multiply-adds (often also called FLOPs) doubles in this count.

# %%
images = torch.zeros(2, 1, SIZE, SIZE, device=device)
prompt_points = torch.tensor([[[10.0, 12.0], [40.0, 41.0]]], device=device).expand(2, -1, -1)
prompt_labels = torch.tensor([[1, 0]], device=device).expand(2, -1)
model.eval()
with torch.no_grad():
    embedding = model.embed(images)
    masks, predicted_iou = model.predict(embedding, prompt_points, prompt_labels)
    refined, _ = model.predict(embedding, prompt_points, prompt_labels, mask_logits=masks[:, :1])
assert embedding.shape == (2, DIM, SIZE // 4, SIZE // 4), f"embedding should be 2×{DIM}×16×16, got {tuple(embedding.shape)}"
assert masks.shape == (2, 3, SIZE, SIZE) and predicted_iou.shape == (2, 3) and refined.shape == masks.shape, \
    f"three full-size masks and three IoUs per prompt expected, got {tuple(masks.shape)} and {tuple(predicted_iou.shape)}"
with torch.no_grad():
    torch.testing.assert_close(model(images, prompt_points, prompt_labels)[0], masks)   # cached = recomputed


# %%
def decoder_flops(net, points, labels):
    """FLOPs of one prompt encoding + mask decoding on a cached embedding."""
    cached = torch.zeros(1, DIM, SIZE // 4, SIZE // 4, device=device)
    return count_flops(net.predict, cached, points[:1], labels[:1])


# a 64 → 32 matrix–vector product is 64·32 multiply-adds, each counted as a multiply and an add
assert count_flops(nn.Linear(64, 32, bias=False), torch.zeros(1, 64)) == 2 * 64 * 32, "2 FLOPs per multiply-add"
encoder_flops = count_flops(model.image_encoder, torch.zeros(1, 1, SIZE, SIZE, device=device))
per_prompt_flops = decoder_flops(model, prompt_points, prompt_labels)
parameters = {name: count_parameters(part)
              for name, part in (("image encoder", model.image_encoder), ("prompt encoder", model.prompt_encoder),
                                 ("mask decoder", model.mask_decoder))}
prompts_per_image = 10
cached_cost = encoder_flops + prompts_per_image * per_prompt_flops
uncached_cost = prompts_per_image * (encoder_flops + per_prompt_flops)
assert encoder_flops > per_prompt_flops, "the encoder is the heavy part"
assert cached_cost < 0.7 * uncached_cost, "caching the embedding saves most of the work for 10 prompts"
print("parameters: " + ", ".join(f"{k} {v:,}" for k, v in parameters.items()))
print(f"image encoder {encoder_flops / 1e6:.1f} MFLOPs once per image; prompt + decoder {per_prompt_flops / 1e6:.1f} "
      f"MFLOPs per prompt. {prompts_per_image} clicks: {cached_cost / 1e6:.0f} MFLOPs with the embedding cached vs "
      f"{uncached_cost / 1e6:.0f} recomputing it ({1 - cached_cost / uncached_cost:.0%} saved; in SAM, whose encoder "
      "is ~1000× its decoder, nearly all of it)")

# %%
show(sam.render_caching_cost(encoder_flops, per_prompt_flops, prompts=20))

# %% [markdown]
# ## 4. SAM's loss: only the best mask is punished
# For an ambiguous prompt the three masks should be three *different* answers. If every mask were trained against
# the target, all three would learn the same compromise. SAM computes the mask loss of each of the three and
# back-propagates **only the minimum**: a mask slot is free to specialise (item, stack, all), and a prompt is not
# punished for the answers it did not give. The mask loss is **focal + Dice in the ratio 20:1** (focal loss — from
# Chapter 5 — for the many easy background pixels, Dice for the overlap whatever the object's size); the IoU head
# is trained with the **mean squared error** between its predictions and each mask's actual IoU.
#
# Below: a target, and three candidate masks (the target, its complement, an empty mask). The minimum picks the
# right one wherever it sits among the three, and a wrong IoU prediction costs extra.

# %%
target = test_targets["item"][:4]
good, bad = torch.where(target, 8.0, -8.0), torch.where(target, -8.0, 8.0)
candidates = torch.stack([bad, good, torch.full_like(good, -8.0)], 1)
per_mask = sam.mask_losses(candidates, target)
actual_iou = sam.mask_iou(candidates > 0, target[:, None])
loss = sam.sam_loss(candidates, actual_iou, target)
assert (per_mask.argmin(1) == 1).all(), "the right mask has the smallest focal + Dice loss"
torch.testing.assert_close(loss, per_mask[:, 1].mean())        # only the best mask counts (IoU predicted exactly)
torch.testing.assert_close(sam.sam_loss(candidates[:, [2, 0, 1]], actual_iou[:, [2, 0, 1]], target), loss)
assert sam.sam_loss(candidates, torch.zeros_like(actual_iou), target) > loss, "a wrong IoU prediction costs MSE"
print("focal + Dice per mask (first object): " + ", ".join(f"{v:.3f}" for v in per_mask[0].tolist())
      + f"; SAM's loss = the minimum = {loss:.3f}")

# %% [markdown]
# ## 5. Training with simulated interaction
# One training step: encode the batch's images **once**; draw each object's target level at random (item, stack or
# all — the ambiguity); give a first prompt (a point, or for half of the objects a noisy box); then, for
# `ROUNDS − 1` more rounds, add a corrective click from the error region of the mask with the highest predicted
# IoU and feed that mask's logits back as the dense prompt. The loss is SAM's, averaged over the rounds
# (`sam.interactive_loss`). On a GPU the steps run in bf16 autocast; the sampling is on the device, with no
# host–device sync inside a step.

# %% [markdown]
# Here is that loop; look for the one `model.embed` before the rounds, and for the best mask's logits, `detach`ed,
# becoming both the next click's error region and the next round's dense prompt (`level_loss` only draws the level).

# %%
print(inspect.getsource(sam.interactive_loss))

# %%
object_images = train.object_images()
loader = DeviceLoader(object_images, train_levels, batch_size=BATCH, shuffle=True, device=device,
                      prepare=sam.scene_input, drop_last=True)
start = time.perf_counter()
history = fit(model, loader, epochs=EPOCHS, lr=LR, loss_fn=sam.level_loss(ROUNDS, box_fraction=0.5), plot=False,
              name="10_sam", config={"scenes": TRAIN_SCENES, "size": SIZE, "rounds": ROUNDS, "levels": sam.LEVELS})
print(f"trained in {time.perf_counter() - start:.0f} s ({profile()} profile, {device.type})")
history.assert_loss_went_down("SAM")
fig = history.figure()
fig.suptitle("SAM: focal + Dice (best mask) + IoU MSE, mean over the interaction rounds")
show(fig)

# %% [markdown]
# ## 6. Click by click: mIoU after 1, 3 and 5 clicks
# The standard interactive-segmentation measurement: for every test object (item level — "segment this item"),
# click inside it, show the mask with the highest predicted IoU, click in its error region, and so on. We report
# the mean IoU after 1, 3 and 5 clicks, starting from a point and, separately, from a noisy box. Later clicks
# resolve the ambiguity: a background click on the item underneath says "not the stack".

# %%
item_images = test.object_images()
by_point = sam.click_ious(model, item_images, test_targets["item"], clicks=CLICKS, first="point")
by_box = sam.click_ious(model, item_images, test_targets["item"], clicks=3, first="box")
curve = by_point["chosen"].mean(0)
# bars = measured − margin (smoke: 0.263 / 0.209; cpu: 0.369 / 0.506); gpu unmeasured, so CPU-level bars
ONE_CLICK_BAR = pick(smoke=0.15, cpu=0.25, gpu=0.25)
FIVE_CLICK_BAR = pick(smoke=0.10, cpu=0.45, gpu=0.45)
miou = {k: report(f"item mIoU after {k} click{'s' * (k > 1)} (point first)", curve[k - 1].item(),
                  bar=ONE_CLICK_BAR if k == 1 else FIVE_CLICK_BAR if k == 5 else None) for k in (1, 3, 5)}
box_miou = report("item mIoU from a noisy box", by_box["chosen"][:, 0].mean().item())
assert miou[1] >= ONE_CLICK_BAR and miou[5] >= FIVE_CLICK_BAR, \
    f"mIoU after 1 / 5 clicks {miou[1]:.3f} / {miou[5]:.3f} below the bars {ONE_CLICK_BAR} / {FIVE_CLICK_BAR}"
# smoke trains 46 steps, too few for corrective clicks to help yet (measured 0.263 → 0.209): there the check only
# guards against collapse
CLICK_GAIN = pick(smoke=-0.15, cpu=0.05, gpu=0.05)
assert miou[5] > miou[1] + CLICK_GAIN, f"corrective clicks should help: 1 click {miou[1]:.3f}, 5 clicks {miou[5]:.3f}"

# %%
show(sam.render_click_curves({"point first: shown mask (highest predicted IoU)": curve,
                              "point first: best of 3 (oracle)": by_point["oracle"].mean(0),
                              "noisy box first": by_box["chosen"].mean(0)},
                             title=f"Interactive segmentation ({profile()} profile)"))
print(f"mIoU {miou[1]:.3f} after one click, {miou[3]:.3f} after three, {miou[5]:.3f} after five; a noisy box "
      f"alone gives {box_miou:.3f} — " + ("a box says more than one click" if box_miou > miou[1] else
                                        "one click says as much as a box here"))
oracle_one = by_point["oracle"][:, 0].mean().item()
if oracle_one > miou[1] + 0.05:
    print(f"The best of the three masks already reaches {oracle_one:.3f} at one click: the item's mask is usually among "
          "them, but the IoU head — trained on all three readings — often shows a larger one (the stack); the "
          "corrective clicks close that gap.")

# %% [markdown]
# ## 7. Why three masks: single-mask vs three-mask training on ambiguous prompts
# Train the same network twice on the same first-click prompts with random target levels: once with **one** mask
# output, once with **three** (both one round, no corrective clicks, the same steps). Then click once on every
# *stacked* test item (where item, stack and all differ) and score each model against each of the three right
# answers. A single output trained on "item or stack or all, who knows" learns their **compromise** — a blurred
# mask that matches none of them well. Three outputs, trained with the minimum loss, **cover** the answers: one
# mask per reading.

# %%
ABLATION_EPOCHS = pick(smoke=2, cpu=2, gpu=6)
ablation = {}
for outputs in (1, 3):
    torch.manual_seed(1)
    net = SAM(dim=DIM, width=WIDTH, image_size=SIZE, num_masks=outputs).to(device)
    fit(net, loader, epochs=ABLATION_EPOCHS, lr=LR, loss_fn=sam.level_loss(rounds=1, box_fraction=0.0), plot=False,
        name=f"10_sam_{outputs}_masks", config={"scenes": TRAIN_SCENES, "size": SIZE, "levels": sam.LEVELS})
    ablation[outputs] = net

# %%
stacked = differs["item ≠ stack"].nonzero()[:, 0]
first_clicks = sam.sample_point(test_targets["item"][stacked], torch.Generator().manual_seed(2))
level_scores = {}
for outputs, net in ablation.items():
    ious, _ = sam.level_ious(net, test.images[test.objects[stacked, 0]], test_levels[stacked], first_clicks)
    level_scores[outputs] = ious.max(2).values              # best mask per reading: T×3
single_miou = report("single-mask model: mIoU over the three readings of a click on a stacked item",
                     level_scores[1].mean().item())
three_miou = report("three-mask model: best-of-3 mIoU over the three readings", level_scores[3].mean().item())
covered = {k: (v > 0.5).float().mean().item() for k, v in level_scores.items()}
# measured: smoke 0.471 vs 0.283, cpu 0.700 vs 0.608; smoke's margin is 0 (one epoch had measured gaps of 0.02)
ABLATION_MARGIN = pick(smoke=0.0, cpu=0.03, gpu=0.03)
assert three_miou > single_miou + ABLATION_MARGIN, \
    f"three masks should cover the readings better than one: {three_miou:.3f} vs {single_miou:.3f}"

# %%
example = 0                                                 # the first stacked item, clicked once
scene = int(test.objects[stacked[example], 0])
with torch.no_grad():
    single_logits, _ = ablation[1](sam.scene_input(test.images[scene:scene + 1].to(device)), first_clicks[None, :1].to(device),
                                   torch.ones(1, 1, dtype=torch.long, device=device))
    three_logits, three_iou = ablation[3](sam.scene_input(test.images[scene:scene + 1].to(device)),
                                          first_clicks[None, :1].to(device), torch.ones(1, 1, dtype=torch.long, device=device))
show(sam.render_ablation(level_scores, single_logits[0, 0].float().sigmoid().cpu(),
                         three_logits[0].float().sigmoid().cpu(), three_iou[0].float().cpu(), first_clicks[example]))
print(f"On {len(stacked)} stacked items one click has three readings: the single-mask model reaches mIoU "
      f"{single_miou:.3f} over them, the three-mask model {three_miou:.3f} with its best mask; an answer with IoU > 0.5 "
      f"exists for {covered[1]:.0%} vs {covered[3]:.0%} of the (click, reading) pairs.")

# %% [markdown]
# ## 8. The IoU head: does the model know which mask is good?
# An interactive tool shows one mask, so SAM must *choose* among its three without the ground truth: the IoU head
# predicts each mask's IoU and the highest wins (SAM's automatic mask generator also filters on it, §9). Trained
# on randomly drawn readings, the head learns the *expected* IoU of a mask over what the user may have meant. We
# check on the main model, one click per test object: the correlation between predicted and actual expected IoU
# (mean over the three readings), how often its top mask is as good as the best one (within 0.05), and what
# choosing by the head is worth against choosing at random and against the oracle.

# %%
all_clicks = sam.sample_point(test_targets["item"], torch.Generator().manual_seed(3))
ious, predicted = sam.level_ious(model, item_images, test_levels, all_clicks)
expected = ious.mean(1)                                         # T×3: each mask's IoU averaged over the readings
rows = torch.arange(len(expected))
head_choice = expected[rows, predicted.argmax(1)]
random_choice = expected.mean(1)
oracle_choice = expected.max(1).values
near_best = expected >= expected.max(1, keepdim=True).values - 0.05          # masks as good as the best, ±0.05
top1 = near_best[rows, predicted.argmax(1)].float().mean().item()
chance = near_best.float().mean().item()
correlation = torch.corrcoef(torch.stack([predicted.flatten(), expected.flatten()]))[0, 1].item()
# bars = measured − margin (smoke 0.857; cpu 0.853); gpu unmeasured, so CPU-level bars
CORRELATION_BAR = pick(smoke=0.7, cpu=0.8, gpu=0.8)
report("IoU head: correlation of predicted with actual IoU", correlation, bar=CORRELATION_BAR)
report("IoU head: its top mask is within 0.05 of the best", top1)
report("expected IoU of the head's choice", head_choice.mean().item())
assert correlation >= CORRELATION_BAR, f"IoU-head correlation {correlation:.3f} below the bar {CORRELATION_BAR}"
assert head_choice.mean() > random_choice.mean() + 0.01, \
    f"choosing by the IoU head ({head_choice.mean():.3f}) should beat choosing at random ({random_choice.mean():.3f})"

# %%
choices = {"random mask": random_choice.mean().item(), "IoU head's choice": head_choice.mean().item(),
           "best mask (oracle)": oracle_choice.mean().item()}
show(sam.render_iou_head(expected, predicted, choices, correlation))
print(f"The head's top mask is within 0.05 of the best in {top1:.0%} of clicks (a random mask: {chance:.0%}); "
      f"choosing by it recovers "
      f"{(head_choice.mean() - random_choice.mean()) / max(oracle_choice.mean() - random_choice.mean(), 1e-6):.0%} "
      "of the gap between a random mask and the oracle.")

# %% [markdown]
# ## 9. A mini data engine
# SAM's 1.1 billion masks (SA-1B) were not drawn by hand. The **data engine** had three stages: *assisted-manual*
# (annotators click, SAM proposes, the model is retrained six times as data grows), *semi-automatic* (SAM fills in
# the confident objects, people label the rest) and *fully automatic*: prompt a 32×32 grid of points on each image,
# keep masks that are **confident** (predicted IoU ≥ 0.88) and **stable** (thresholding the logits at −1 and +1
# gives nearly the same mask, IoU ≥ 0.95), remove duplicates by NMS — 99.1% of SA-1B's masks came from this stage.
#
# Our miniature: the trained model looks at **unlabelled scenes** (fresh ones; their labels are used only to
# *measure* the proposals), prompts a grid of points, keeps the confident and stable masks, and we fine-tune on
# labelled data **plus** these pseudo-labels — against a control fine-tuned equally long on the labelled data
# alone. Both start from the trained model.

# %% [markdown]
# **Exercise (easy).** In the exercise version of this notebook the cell below keeps only the signature and hints of
# `stability_score`, the filter's second test: write it, and the self-check compares it with `sam.stability`, which
# `sam.propose_masks` applies below with offset 1.

# %% tags=["exercise"]
def stability_score(logits, offset):
    """SAM's stability score: mask logits …×H×W → … , the IoU of the mask thresholded at +offset (logits > offset)
    with the mask thresholded at −offset (logits > −offset); 1 where both are empty. A mask whose edges sit on steep
    logits barely changes between the two thresholds: a score near 1.

    Hints: the +offset mask lies inside the −offset one, so their IoU is (pixels > offset) / (pixels > −offset);
    count over the last two dimensions; torch.where for the masks with no pixel.
    """
    inner = (logits > offset).sum((-2, -1)).float()
    outer = (logits > -offset).sum((-2, -1)).float()
    return torch.where(outer > 0, inner / outer.clamp(min=1), torch.ones_like(outer))


# %% tags=["self-check"]
stability_score = exercises.check("stability_score", stability_score)

# %%
GRID = pick(smoke=4, cpu=5, gpu=8)
MIN_IOU = pick(smoke=0.3, cpu=0.75, gpu=0.8)        # smoke's barely trained model is never confident
MIN_STABILITY = pick(smoke=0.0, cpu=0.85, gpu=0.9)
ENGINE_SAMPLES = pick(smoke=256, cpu=1920, gpu=8192)      # fine-tuning examples, the same for both runs
unlabelled = sam.prompt_scenes("train", UNLABELLED_SCENES, SIZE, seed=1)
proposals = sam.propose_masks(model, unlabelled.images.to(device), grid=GRID, min_iou=MIN_IOU,
                              min_stability=MIN_STABILITY)
unlabelled_levels = unlabelled.levels()
quality = {"kept": [], "rejected": []}
for s, proposal in enumerate(proposals):
    packed = unlabelled_levels[unlabelled.objects[:, 0] == s]
    matched = sam.best_match_iou(proposal["all_masks"], packed)
    quality["kept"].append(matched[proposal["kept"]])
    quality["rejected"].append(matched[~proposal["kept"]])
quality = {k: torch.cat(v) for k, v in quality.items()}
pseudo_masks = torch.cat([p["masks"] for p in proposals])
pseudo_images = torch.cat([unlabelled.images[s:s + 1].expand(len(p["masks"]), -1, -1, -1)
                           for s, p in enumerate(proposals)])
kept_quality = report("data engine: IoU of kept masks with their best-matching true mask", quality["kept"].mean().item())
print(f"{sum(len(p['all_masks']) for p in proposals)} candidate masks on {UNLABELLED_SCENES} unlabelled scenes; "
      f"kept {len(pseudo_masks)} ({len(pseudo_masks) / UNLABELLED_SCENES:.1f} per scene): their IoU with a true mask "
      f"{kept_quality:.3f} vs {quality['rejected'].mean():.3f} for the rejected ones")
assert len(pseudo_masks) > 0, "the filter kept no mask: lower MIN_IOU or MIN_STABILITY"
assert quality["kept"].mean() > quality["rejected"].mean() + 0.05, \
    "confident and stable masks should be better pseudo-labels than the rejected ones"

# %%
generator = torch.Generator().manual_seed(4)
labelled_pick = torch.randint(len(object_images), (ENGINE_SAMPLES,), generator=generator)
pseudo_pick = torch.randint(len(pseudo_masks), (ENGINE_SAMPLES // 2,), generator=generator)
mixes = {
    "labelled only": (object_images[labelled_pick], train_levels[labelled_pick]),
    "labelled + engine": (torch.cat([object_images[labelled_pick[:ENGINE_SAMPLES // 2]], pseudo_images[pseudo_pick]]),
                          torch.cat([train_levels[labelled_pick[:ENGINE_SAMPLES // 2]],
                                     pseudo_masks[pseudo_pick].byte() * 0b111])),   # one reading: all three bits
}
start_weights = checksum(model.state_dict())
engine_miou = {}
for name, (mix_images, mix_levels) in mixes.items():
    tuned = copy.deepcopy(model)
    fit(tuned, DeviceLoader(mix_images, mix_levels, batch_size=BATCH, shuffle=True, device=device,
                            prepare=sam.scene_input, drop_last=True),
        epochs=1, lr=LR / 3, loss_fn=sam.level_loss(ROUNDS, box_fraction=0.5), plot=False,
        name=f"10_sam_{name.replace(' ', '_').replace('+', 'plus')}",
        config={"start": start_weights, "samples": ENGINE_SAMPLES, "grid": GRID, "min_iou": MIN_IOU,
                "min_stability": MIN_STABILITY, "unlabelled": UNLABELLED_SCENES})
    result = sam.click_ious(tuned, item_images, test_targets["item"], clicks=3, first="point")
    engine_miou[name] = result["chosen"].mean(0)
gain = report("data engine: gain in item mIoU after 1 click",
              (engine_miou["labelled + engine"][0] - engine_miou["labelled only"][0]).item())
gain3 = (engine_miou["labelled + engine"][2] - engine_miou["labelled only"][2]).item()
# bar = measured − margin 0.03 (cpu: −0.067, smoke: −0.020): at this scale the pseudo-labels do not pay (see below)
GAIN_BAR = pick(smoke=-0.05, cpu=-0.1, gpu=-0.1)
assert gain > GAIN_BAR, f"pseudo-labels cost more than the measured bar: gain {gain:.3f} (bar {GAIN_BAR})"
print(f"fine-tuned on {ENGINE_SAMPLES} examples: item mIoU after 1 / 3 clicks "
      + "; ".join(f"{k} {v[0]:.3f} / {v[2]:.3f}" for k, v in engine_miou.items())
      + f" — the engine's pseudo-labels {'gained' if gain > 0 else 'lost'} {abs(gain):.3f} at one click and "
      f"{'gained' if gain3 > 0 else 'lost'} {abs(gain3):.3f} at three ({profile()} profile)")

# %% [markdown]
# What the measurement says: the filter works — kept masks match a true object far better than the rejected ones —
# but on this scale the retraining gain is not positive (the `cpu` run measured −0.067 at one click and −0.155 at three). The kept masks
# are the ones a barely trained model is *sure* of: mostly whole stacks and all-items masks, large and crisp. Fed
# back as the only answer to a click, they teach the IoU head to prefer large masks, and the item — what §6 scores —
# is chosen less often. SAM avoided this by running the *assisted-manual* and *semi-automatic* stages first (people
# checked or added masks, so the model was already good and its confident masks covered every granularity) and by
# keeping its automatic masks only once the model was strong; then 1.1 billion masks paid off. A data engine is a
# loop that needs a good model to start it.

# %%
kept_examples = [(s, m) for s, p in enumerate(proposals[:6]) for m in p["masks"][:1]][:4]
show(sam.render_pseudo_labels(unlabelled.images, kept_examples))

# %% [markdown]
# ## 10. A text prompt, as SAM's paper tried it
# SAM's prompts are points, boxes and masks (§3 asserts them). Its paper also tried **text** (§7.5, "text-to-mask")
# without a single caption: for each training mask it took the **CLIP image embedding** of the mask's crop and gave
# it to the prompt encoder as one more prompt token; at test time it gave the **CLIP text embedding** of a phrase
# ("a wheel") instead. That can only work because CLIP (Chapter 9's "A tiny CLIP") was trained to put an image and
# its caption near one another in *one* space. The paper showed it qualitatively, called it a proof of concept, and
# showed where it failed — fixed by adding a point.
#
# We do the same with the two models this course has trained. Chapter 9's tiny CLIP, **frozen**, embeds each
# training object's crop (cut from its scene and scaled to look like the single-item scenes CLIP saw); a small
# learned layer beside the prompt encoder turns that 64-d vector into a prompt token (`sam_text.EmbeddingPrompt`);
# and a copy of the SAM trained above learns to follow it — only the new layer and the mask decoder train, briefly,
# on the cached image embeddings (the image encoder never runs again). Then, on held-out scenes, we prompt with the
# text "a sneaker" and measure it against one click, against the crop's own image embedding, and against a blank
# prompt.
#
# CLIP comes from Chapter 9's code, cell for cell, so `fit` finds the checkpoint Chapter 9 saved (this chapter
# trains it only where Chapter 9 has not run). The training cells fork the random state, so the sections after this
# one draw the numbers they drew before it existed.

# %%
# Chapter 9's CLIP settings (its SCENES, WIDTH, EMBED, BATCH, CLIP_EPOCHS, CLIP_LR): the same values and the same
# loss function give the same checkpoint key, so fit reuses Chapter 9's model (tests/test_sam_text.py checks both)
CLIP_SCENES, CLIP_WIDTH, CLIP_EMBED = pick(smoke=1000, cpu=6000, gpu=30000), pick(smoke=16, cpu=16, gpu=32), 64
CLIP_BATCH, CLIP_EPOCHS, CLIP_LR = pick(smoke=128, cpu=128, gpu=512), pick(smoke=15, cpu=12, gpu=60), \
    pick(smoke=3e-3, cpu=2e-3, gpu=2e-3)
caption_generator = torch.Generator(device=device).manual_seed(2)


def clip_training_loss(model, batch):
    images, tokens = batch                                        # tokens: B × 4 captions × L
    pick_caption = torch.randint(0, tokens.shape[1], (len(tokens),), generator=caption_generator, device=device)
    chosen = tokens[torch.arange(len(tokens), device=device), pick_caption]
    image_embeddings, text_embeddings = model(images, chosen)
    return contrastive.clip_loss(image_embeddings, text_embeddings, model.temperature)


with torch.random.fork_rng():          # Chapter 9 seeds its CLIP with 0; this chapter's own stream goes on untouched
    torch.manual_seed(0)
    clip = CLIP(clip_models.ImageEncoder(CLIP_WIDTH, stem_stride=2),
                clip_models.TextEncoder(len(multimodal.VOCABULARY), width=64, layers=2, heads=4,
                                        max_length=multimodal.MAX_LENGTH), CLIP_EMBED).to(device)
    captioned = multimodal.captioned_scenes("train", CLIP_SCENES)
    fit(clip, DeviceLoader(captioned.images, captioned.tokens, batch_size=CLIP_BATCH, shuffle=True, device=device,
                           drop_last=True),
        epochs=CLIP_EPOCHS, lr=CLIP_LR, loss_fn=clip_training_loss, plot=False, name="09_clip",
        config={"scenes": CLIP_SCENES, "vocabulary": len(multimodal.VOCABULARY)})
clip.eval().requires_grad_(False)


@torch.no_grad()
def clip_images(crops):
    """CLIP image embeddings (unit vectors) of uint8 crops, on the CPU."""
    with autocast(device):
        return torch.cat([clip.encode_image(standardize(chunk).to(device)).float().cpu() for chunk in crops.split(256)])


@torch.no_grad()
def clip_texts(texts):
    """CLIP text embeddings (unit vectors) of a list of phrases, on the CPU."""
    with autocast(device):
        return clip.encode_text(multimodal.tokenize(texts).to(device)).float().cpu()


@torch.no_grad()
def sam_embeddings(images):
    """The trained SAM's image embeddings of uint8 scenes, computed once (float32, on the device)."""
    with autocast(device):
        return torch.cat([model.embed(sam.scene_input(chunk.to(device))).float() for chunk in images.split(256)])


# %% [markdown]
# **The data.** Every object's crop — its visible pixels only, so the item underneath does not leak in — goes
# through CLIP's image tower once; every scene through SAM's image encoder once. The class names become the text
# prompts "a sneaker", "an ankle-boot", … through CLIP's text tower. On the test side we keep the objects whose class
# appears once in their scene (for the others "a sneaker" names two items), and check first that the crops land
# where CLIP can read them: a crop's most similar class phrase is its class far above chance (zero-shot, Chapter 9).

# %%
class_phrases = [multimodal.articles(f"a {name}") for name in multimodal.CLASS_NAMES]
class_texts = clip_texts(class_phrases)                                             # 10 × 64
train_items = sam.unpack_levels(train_levels, 0)                                    # level 0: the item itself
train_vectors = clip_images(sam_text.object_crops(train.object_images(), train_items))
train_scene_embeddings = sam_embeddings(train.images)
scene_and_class = test.objects[:, 0] * len(class_phrases) + test.classes
named = (torch.bincount(scene_and_class)[scene_and_class] == 1).nonzero()[:, 0]      # its class is alone in its scene
named_items, named_classes = test_targets["item"][named], test.classes[named]
named_crops = sam_text.object_crops(item_images[named], named_items)
named_image_vectors, named_text_vectors = clip_images(named_crops), class_texts[named_classes]
named_embeddings = sam_embeddings(test.images)[test.objects[named, 0]]
crop_zero_shot = ((named_image_vectors @ class_texts.T).argmax(1) == named_classes).float().mean().item()
assert named_crops.shape == (len(named), 1, 48, 48) and train_vectors.shape == (len(train.objects), CLIP_EMBED), \
    f"one 48×48 crop and one {CLIP_EMBED}-d CLIP vector per object expected"
torch.testing.assert_close(train_vectors.norm(dim=1), torch.ones(len(train_vectors)))       # CLIP's unit sphere
assert crop_zero_shot > 2 / len(class_phrases), f"CLIP should name the crops well above chance: {crop_zero_shot:.3f}"
report("CLIP zero-shot accuracy on the SAM scenes' object crops", crop_zero_shot)
print(f"{len(train.objects)} training objects embedded by CLIP; {len(named)} of {len(test.objects)} test objects "
      f"have a class alone in their scene; CLIP names {crop_zero_shot:.0%} of their crops right (chance 10%)")

# %%
show(sam_text.render_crops(named_crops[:8], [class_phrases[c] for c in named_classes[:8]],
                           [class_phrases[c] for c in (named_image_vectors[:8] @ class_texts.T).argmax(1)]))

# %% [markdown]
# **Training**, as the paper: SAM's loss (the best of three masks, §4) on the item, prompted by its crop's CLIP
# *image* embedding — alone for half of the objects, with one click inside the item for the other half, so the
# decoder also learns to combine the two (the remedy tested below). What trains: the projection and the mask
# decoder; the image encoder, the point prompt encoder and CLIP stay as they are.

# %%
TEXT_EPOCHS = pick(smoke=10, cpu=4, gpu=10)       # smoke: fewer steps leave the decoder mid-way (all masks poor)
with torch.random.fork_rng():                  # its own seed: the sections below draw what they drew before
    torch.manual_seed(5)
    prompted = sam_text.EmbeddingPrompt(copy.deepcopy(model), CLIP_EMBED).to(device)
    trainable = {".".join(name.split(".")[:2 if name.startswith("sam.") else 1])
                 for name, p in prompted.named_parameters() if p.requires_grad}
    assert trainable == {"projection", "sam.mask_decoder"}, f"only the projection and decoder should train: {trainable}"
    text_loss = sam_text.embedding_prompt_loss(train_scene_embeddings, train.objects[:, 0].to(device),
                                               train_items.to(device))
    text_history = fit(prompted, DeviceLoader(train_vectors, torch.arange(len(train_vectors)), batch_size=BATCH,
                                              shuffle=True, device=device, prepare=torch.Tensor.float, drop_last=True),
                       epochs=TEXT_EPOCHS, lr=LR, loss_fn=text_loss, plot=False, name="10_sam_text",
                       config={"sam": start_weights, "clip": checksum(clip.state_dict()), "scenes": TRAIN_SCENES,
                               "crops": "item pixels, 20 of 48"})
text_history.assert_loss_went_down("SAM with a CLIP-embedding prompt")

# %% [markdown]
# **The test.** Every named test object, prompted six ways: its class name as text; the text and one click inside
# it; one click alone, with the same decoder (its blank token); the crop's CLIP *image* embedding — what training
# used, so the most text could hope for; another object's image embedding (a wrong class, mostly); and a blank
# prompt (SAM's "no point" token): the floor, what the decoder does knowing nothing. For reference, one click on
# the SAM above, trained on all three readings (the fine-tuned decoder has seen only items). Each shows the mask its
# IoU head ranks first, as an interactive tool would.

# %%
with torch.random.fork_rng():                  # another object's vector, drawn apart from the chapter's stream
    torch.manual_seed(6)
    shuffled = named_image_vectors[torch.randperm(len(named))]
prompts = {"text 'a sneaker'": (named_text_vectors, 0), "text + 1 click": (named_text_vectors, 1),
           "1 click (blank token)": (None, 1), "CLIP image embedding": (named_image_vectors, 0),
           "another object's image embedding": (shuffled, 0), "blank prompt": (None, 0)}
prompt_results = {name: sam_text.embedding_prompt_ious(prompted, named_embeddings, vectors, named_items, clicks=clicks)
                  for name, (vectors, clicks) in prompts.items()}
prompt_results["1 click (SAM above)"] = {"chosen": by_point["chosen"][named, 0], "oracle": by_point["oracle"][named, 0]}
text_miou = {name: result["chosen"].mean().item() for name, result in prompt_results.items()}
for name in ("text 'a sneaker'", "text + 1 click", "CLIP image embedding", "blank prompt"):
    report(f"text-to-mask: item mIoU, {name}", text_miou[name])
# bars = measured − margin (smoke: text 0.265, text + click 0.448; cpu: 0.330, 0.602); gpu unmeasured, so CPU-level
TEXT_BAR, CLICK_GAIN_BAR = pick(smoke=0.15, cpu=0.2, gpu=0.2), 0.1
assert text_miou["text 'a sneaker'"] >= TEXT_BAR, f"text-prompt item mIoU below the bar {TEXT_BAR}: {text_miou}"
assert text_miou["text + 1 click"] > text_miou["text 'a sneaker'"] + CLICK_GAIN_BAR, \
    "SAM's remedy: a click added to the text should raise the item mIoU by more than the bar"

# %%
show(comparison_chart({name: {"chosen": value, "oracle": prompt_results[name]["oracle"].mean().item()}
                       for name, value in text_miou.items()},
                      {"chosen": "item mIoU, mask shown", "oracle": "item mIoU, best of 3"},
                      title=f"SAM prompted through CLIP: {len(named)} held-out objects ({profile()} profile)",
                      best={"chosen": "max"}, width=11))
shown = (torch.bincount(test.objects[:, 0])[test.objects[named, 0]] > 1).nonzero()[:4, 0]    # scenes of 2+ items
show(sam_text.render_text_prompts(test.images[test.objects[named[shown], 0], 0], [class_phrases[c] for c in
                                  named_classes[shown]], named_items[shown],
                                  {"text": prompt_results["text 'a sneaker'"]["masks"][shown],
                                   "text + 1 click": prompt_results["text + 1 click"]["masks"][shown],
                                   "image embedding": prompt_results["CLIP image embedding"]["masks"][shown]}))

# %% [markdown]
# **What stands between text and the image embedding: the modality gap.** CLIP's loss asks an image to be *nearer*
# its caption than the other captions of a batch, not *at* it: image and text embeddings end up in two separate
# regions of the sphere (Liang et al., 2022, "Mind the gap"). A projection learnt on image embeddings then meets text
# embeddings in a region it never saw. We measure the mean cosine of two crops of one class, of a
# crop with its class's phrase, and both with other classes.

# %%
same_class = named_classes[:, None] == named_classes[None]
other_objects = ~torch.eye(len(named), dtype=torch.bool)
crop_crop = named_image_vectors @ named_image_vectors.T
crop_text = named_image_vectors @ class_texts.T
its_class = torch.nn.functional.one_hot(named_classes, len(class_phrases)).bool()
cosines = {"two crops, one class": crop_crop[same_class & other_objects].mean().item(),
           "two crops, two classes": crop_crop[~same_class].mean().item(),
           "a crop and its class's text": crop_text[its_class].mean().item(),
           "a crop and another class's text": crop_text[~its_class].mean().item()}
for name, value in cosines.items():
    print(f"  mean cosine, {name:<33} {value:.3f}")
report("modality gap: cosine of a crop with its class's text", cosines["a crop and its class's text"])
report("modality gap: cosine of two crops of one class", cosines["two crops, one class"])
assert cosines["a crop and its class's text"] < cosines["two crops, one class"], \
    "a class's text should lie farther from its crops than the crops from one another (the modality gap)"
assert cosines["a crop and its class's text"] > cosines["a crop and another class's text"], \
    "CLIP should still rank a crop's own class text above the other classes'"

# %% [markdown]
# **And why, here, even the image embedding is not enough.** To pick *the sneaker* among the items of a scene, the
# decoder must find sneaker-like cells in SAM's image embedding. Our encoder was trained only to find the edges of
# any object; SAM's was a ViT-H pre-trained on ImageNet (MAE) before 1.1 billion masks. A linear probe (as in
# Chapter 9's SimCLR section) measures how much of the class each embedding carries: SAM's embedding averaged over
# the item's cells (`sam_text.item_features`) against CLIP's crop vector, trained on the training objects, tested
# on the named ones.

# %%
with torch.random.fork_rng():                  # the probe's initial weights, drawn apart from the chapter's stream
    probes = {"SAM's image embedding over the item": contrastive.linear_probe(
                  sam_text.item_features(train_scene_embeddings[train.objects[:, 0]], train_items).cpu(),
                  train.classes, sam_text.item_features(named_embeddings, named_items).cpu(), named_classes),
              "CLIP's crop embedding": contrastive.linear_probe(train_vectors, train.classes, named_image_vectors,
                                                                named_classes)}
for name, accuracy in probes.items():
    report(f"linear probe of the class: {name}", accuracy)
sam_probe, clip_probe = probes.values()
image_miou, blank_miou = text_miou["CLIP image embedding"], text_miou["blank prompt"]
text_alone = text_miou["text 'a sneaker'"]
wrong_miou = text_miou["another object's image embedding"]
reads_prompt = image_miou - max(blank_miou, wrong_miou) > 0.03
print(f"CLIP's image embedding as the prompt: item mIoU {image_miou:.3f}, against {blank_miou:.3f} for a blank prompt "
      f"and {wrong_miou:.3f} for another object's embedding; the text: {text_alone:.3f}. "
      + ("The decoder has learnt to read the prompt token. " if reads_prompt else
         "The decoder has not learnt to read the prompt token: whatever the token says, it shows much the same mask. ")
      + f"A linear probe names the class from SAM's embedding {sam_probe:.0%} of the time, from CLIP's "
      f"{clip_probe:.0%}" + (": SAM's features carry less of the class, and a brief fine-tune of the decoder does not "
                             "find it. " if sam_probe < clip_probe - 0.05 else ". ")
      + f"Adding one click: {text_miou['text + 1 click']:.3f} with the text, {text_miou['1 click (blank token)']:.3f} "
      f"without ({profile()} profile).")

# %% [markdown]
# ## 11. Making SAM fast
# Three ways, each measured here. **Arithmetic** (FLOPs) is exact and asserted; **time** depends on the machine
# and its load, so it is printed and plotted, never asserted.
#
# * **Cache the embedding** (§3): the encoder once, then milliseconds per click.
# * **Quantise the decoder to int8** (dynamic quantisation, `torch.ao.quantization.quantize_dynamic`): the weights
#   of every `nn.Linear` are stored as int8 with a scale, activations are quantised on the fly; a CPU technique
#   (on GPUs one uses bf16 — as this chapter does on CUDA — or int8 kernels of TensorRT).
# * **Distil a smaller encoder** (MobileSAM, 2023): SAM's ViT-H encoder is replaced by a tiny one trained to
#   reproduce the big encoder's *embedding* (mean squared error) — "decoupled distillation": the prompt encoder
#   and decoder are reused unchanged, so no mask labels are needed at all. EfficientSAM, EfficientViT-SAM and
#   SAM 2's Hiera encoders follow the same recipe.

# %%
STUDENT_WIDTH, STUDENT_DEPTH = 12, 2
DISTILL_EPOCHS = pick(smoke=12, cpu=15, gpu=40)
student = ImageEncoder(DIM, STUDENT_WIDTH, STUDENT_DEPTH).to(device)
teacher = model.image_encoder.eval()


def distillation_loss(net, batch):
    """MSE between the student's embedding and the (frozen) teacher's."""
    images, wanted = batch
    return torch.nn.functional.mse_loss(net(images).float(), wanted.float())


with torch.no_grad():        # the teacher's embeddings, computed once: distillation needs no labels at all
    teacher_embeddings = torch.cat([teacher(sam.scene_input(chunk.to(device))).float()
                                    for chunk in train.images.split(256)])
distill_loader = DeviceLoader(train.images, teacher_embeddings, batch_size=BATCH, shuffle=True, device=device,
                              prepare=sam.scene_input, drop_last=True)
distill_history = fit(student, distill_loader, epochs=DISTILL_EPOCHS, lr=LR, loss_fn=distillation_loss, plot=False,
                      name="10_sam_student", config={"teacher": start_weights, "scenes": TRAIN_SCENES})
distill_history.assert_loss_went_down("the student encoder (distillation)")

# %%
# int8 dynamic quantisation runs on the CPU: compare it with the same model in float32 on the CPU
cpu_model = copy.deepcopy(model).cpu().float().eval()
quantised = copy.deepcopy(cpu_model)
with warnings.catch_warnings():   # torch.ao.quantization is deprecated in favour of torchao (not needed here)
    warnings.simplefilter("ignore")
    quantised.mask_decoder = torch.ao.quantization.quantize_dynamic(quantised.mask_decoder, {nn.Linear},
                                                                   dtype=torch.qint8)

# %%
cpu_images, cpu_items = item_images.cpu(), test_targets["item"]
variants = {"SAM (float32, CPU)": (cpu_model, None), "int8 decoder (CPU)": (quantised, None),
            f"distilled encoder ({device.type})": (model, student)}
speed = {}
probe = sam.scene_input(cpu_images[:1])
probe_points, probe_labels = torch.tensor([[[30.0, 30.0]]]), torch.ones(1, 1, dtype=torch.long)
for name, (net, encoder) in variants.items():
    result = sam.click_ious(net, cpu_images, cpu_items, clicks=3, embed=encoder.eval() if encoder else None)
    dev = next(net.parameters()).device
    encode = (encoder or net.image_encoder)
    with torch.no_grad():
        cached = encode(probe.to(dev))
        encoder_ms = 1000 * min(timed(encode, probe.to(dev)) for _ in range(20))
        decoder_ms = 1000 * min(timed(net.predict, cached, probe_points.to(dev), probe_labels.to(dev)) for _ in range(20))
    speed[name] = {"mIoU, 1 click": result["chosen"][:, 0].mean().item(), "mIoU, 3 clicks": result["chosen"][:, 2].mean().item(),
                   "encoder ms / image": encoder_ms, "decoder ms / prompt": decoder_ms,
                   "encoder MFLOPs": count_flops(encode, torch.zeros(1, 1, SIZE, SIZE, device=dev)) / 1e6,
                   "decoder kB": model_bytes(net.mask_decoder) / 1e3}

# %%
base, int8, small = speed.values()
report("int8 decoder: item mIoU after 3 clicks", int8["mIoU, 3 clicks"])
report("distilled encoder: item mIoU after 3 clicks", small["mIoU, 3 clicks"])
assert abs(int8["mIoU, 3 clicks"] - base["mIoU, 3 clicks"]) < 0.03, \
    f"int8 decoder should keep mIoU within 0.03: {int8['mIoU, 3 clicks']:.3f} vs {base['mIoU, 3 clicks']:.3f}"
assert int8["decoder kB"] < 0.5 * base["decoder kB"], "int8 weights should take under half the float32 bytes"
assert small["encoder MFLOPs"] < 0.5 * base["encoder MFLOPs"], "the student encoder should cost under half the FLOPs"
assert small["mIoU, 3 clicks"] > 0.5 * base["mIoU, 3 clicks"], \
    f"the distilled encoder should keep most of the mIoU: {small['mIoU, 3 clicks']:.3f} vs {base['mIoU, 3 clicks']:.3f}"

# %%
fig = comparison_chart(speed, {"mIoU, 1 click": "item mIoU, 1 click", "mIoU, 3 clicks": "item mIoU, 3 clicks",
                               "encoder MFLOPs": "encoder MFLOPs", "encoder ms / image": "encoder ms (not asserted)",
                               "decoder ms / prompt": "decoder ms / prompt", "decoder kB": "decoder weights (kB)"},
                       title=f"Speed and accuracy side by side ({profile()} profile; times on this machine, under "
                             "whatever load it has)", best={"mIoU, 3 clicks": "max", "encoder MFLOPs": "min"},
                       width=12, per_row=3)
show(fig)
print(f"int8 decoder: weights {base['decoder kB']:.0f} → {int8['decoder kB']:.0f} kB, mIoU after 3 clicks "
      f"{base['mIoU, 3 clicks']:.3f} → {int8['mIoU, 3 clicks']:.3f}; distilled encoder: "
      f"{base['encoder MFLOPs']:.1f} → {small['encoder MFLOPs']:.1f} MFLOPs, mIoU {base['mIoU, 3 clicks']:.3f} → "
      f"{small['mIoU, 3 clicks']:.3f}. (Times: {profile()} profile on {device.type}; at this tiny size Python "
      "overhead dominates, so the int8 decoder need not be faster — on SAM's 4 M-parameter decoder it is.)")

# %% [markdown]
# ## 12. Explorer: click to segment
# Click on the scene on the left: a **foreground** click (or, with the dropdown or a shift-click, a
# **background** click) — or **drag a box** around an item. The three masks appear with their predicted IoUs; the
# one an interactive tool would show — the highest — is framed. **Undo** removes the last click (or the box);
# *clicks used* replays the history. The scene's
# embedding is computed once when you arrive on it; every click after that runs only the decoder. Try a click on
# an item lying on another: mask 1, 2 and 3 are the item, the pile and everything — then a background click on the
# item underneath.

# %%
explored = test.images[:20]
start_click = {0: [tuple(int(v) for v in sam.sample_point(test.instances[:1] > 0, torch.Generator().manual_seed(5))[0]) + (1,)]}
segmenter = sam.ClickSegmenter(model, explored, first_clicks=start_click)
show(segmenter.explorer)
before = segmenter.explorer.image.value
x, y, _ = start_click[0][0]
segmenter.add_click(min(x + 6, SIZE - 1), y, 0)
assert segmenter.explorer.image.value != before, "a click should redraw the masks"
segmenter.remove_last()
assert segmenter.explorer.image.value == before, "undo should restore the previous masks"
x1, y1, x2, y2 = sam.tight_boxes(test.instances[:1] > 0)[0].tolist()          # a box around scene 0's items
segmenter.add_box(x1, y1, x2 - 1, y2 - 1)                                       # what a drag from corner to corner sends
assert segmenter.explorer.image.value != before, "a box prompt should redraw the masks"
segmenter.remove_last()
assert segmenter.explorer.image.value == before, "undo should remove the whole box"
assert len(segmenter.embeddings) == 1, "one embedding for the scene, however many clicks"

# %% [markdown]
# ## Interview questions
#
# <details><summary>What are SAM's three parts, and what does each cost?</summary>
#
# An **image encoder** (an MAE-pretrained ViT-H, ~630 M parameters, ~3 T multiply-adds per 1024×1024 image, so
# ~6 TFLOPs at the 2 per multiply-add this chapter counts) → a 64×64×256 embedding; a **prompt encoder** — points
# and box corners as random Fourier features of their coordinates plus a learned type embedding, a mask prompt
# through strided convolutions added to the embedding; a light **mask decoder** (~4 M parameters) — a two-way
# Transformer in which prompt and output tokens attend to the image and the image attends back, then a
# hypernetwork dot product gives the masks and an MLP the IoUs. The encoder runs once per image; the decoder in
# milliseconds per prompt. (see "3. The model": parameters and FLOPs of each part)
# </details>
#
# <details><summary>Why does SAM output three masks for one prompt?</summary>
#
# Because one click is ambiguous: on a shirt it may mean the shirt, the person, or a pocket (subpart, part, whole).
# A single output trained on all readings learns their average, a blurred mask matching none. With three outputs
# and a loss taken only on the **best** of them (minimum over masks), each output specialises in one reading. With
# several prompts the ambiguity mostly vanishes, and SAM then uses a fourth, single output. (see "7. Why three
# masks": single- vs three-mask training, and §4 for the minimum loss)
# </details>
#
# <details><summary>What is the IoU head for?</summary>
#
# It predicts each mask's IoU with the object the user meant (trained with MSE against the actual IoU). It
# **ranks** the three masks so a tool can show the best one without ground truth, and it **filters** masks in the
# automatic mode of the data engine (keep predicted IoU ≥ 0.88). (see "8. The IoU head": correlation, top-1 and
# the value of choosing by it)
# </details>
#
# <details><summary>What was SAM's data engine?</summary>
#
# Three stages that built SA-1B (11 M images, 1.1 B masks): assisted-manual (annotators click with SAM in the loop;
# the model retrained six times as data grew), semi-automatic (SAM pre-fills confident masks, annotators add the
# missed objects), fully automatic (a 32×32 grid of point prompts per image; keep confident, stable masks; NMS to
# remove duplicates). Model and data improve each other. (see "9. A mini data engine": confident + stable
# proposals, their quality, and the retraining gain measured)
# </details>
#
# <details><summary>Why is the image embedding computed only once?</summary>
#
# The encoder is where almost all the computation is; the prompt changes with every click, the image does not.
# Caching the embedding makes each click cost only the prompt encoder and the decoder — real-time in a browser,
# even with the encoder run once on a server. (see "3. The model": cached vs recomputed FLOPs for 10 clicks, and
# the explorer in §12, which embeds each scene once)
# </details>
#
# <details><summary>How was SAM made faster?</summary>
#
# By shrinking the encoder, which dominates: MobileSAM distils ViT-H into a 5 M-parameter TinyViT by matching the
# embedding (decoupled distillation, the decoder reused); EfficientSAM (masked-image pretraining with SAM's
# features), EfficientViT-SAM, FastSAM (a YOLOv8-seg that segments everything, then prompts select); and by
# quantisation (int8 weights, dynamic or post-training), lower precision (fp16/bf16), and compiled runtimes
# (ONNX/TensorRT). SAM 2 uses a faster hierarchical Hiera encoder. (see "11. Making SAM fast": int8 decoder and a
# distilled encoder, accuracy and cost side by side)
# </details>
#
# <details><summary>What was new in SAM, and where is it used?</summary>
#
# New: the *promptable* task (any point, box or mask in, a valid mask out — even for an ambiguous prompt), a model
# built for it (heavy encoder once, light decoder per prompt, three masks and an IoU head), and SA-1B, 1.1 B masks
# made by the model-in-the-loop data engine — which together gave zero-shot transfer to new image domains. Uses:
# interactive annotation (click to segment, as in "12. Explorer: click to segment"), turning boxes from any detector
# into masks (Grounded-SAM: text → Grounding DINO boxes → SAM; the box prompts of "6. Click by click"), automatic
# mask proposals for a new data set (the grid prompts of "9. A mini data engine"), and as a component in video (SAM
# 2), medical and remote-sensing tools, usually after fine-tuning.
# </details>
#
# <details><summary>How can SAM take a text prompt?</summary>
#
# Through CLIP, whose image and text embeddings share one space. SAM's paper (§7.5, a proof of concept, never
# released) trained with the CLIP **image** embedding of each mask's crop as an extra prompt token, then prompted with
# the CLIP **text** embedding of a phrase; where that failed, adding a point fixed it. Two things limit it: the
# **modality gap** (a caption's embedding lies nearer its image than other captions do, but not *at* it, so the
# prompt layer meets text vectors in a region it never saw in training) and the image features themselves (to pick
# "the wheel", the decoder must find wheel-like cells). In practice text reaches SAM as boxes from an open-vocabulary
# detector (Grounded-SAM) or, in SAM 3, through a model trained on noun phrases. (see "10. A text prompt, as SAM's
# paper tried it": text vs image embedding vs one click vs a blank prompt, the cosines of the gap, and a linear probe
# of what SAM's and CLIP's embeddings know of the class)
# </details>
#
# <details><summary>SAM vs semantic segmentation (Chapter 5): what is different?</summary>
#
# A semantic segmenter (U-Net, DeepLab) labels every pixel with one of a fixed list of classes, and does not
# separate two touching items of one class. SAM has **no classes**: given a prompt it returns the mask of *an*
# object — instance-level, class-agnostic, any kind of thing — and leaves naming to another model (e.g. CLIP, or
# Grounding DINO's boxes as prompts). Semantic segmentation is trained with per-pixel cross-entropy over classes;
# SAM with focal + Dice on the best of three masks and an IoU loss, on prompts. (see "1. Scenes with real
# ambiguity" and Chapter 5's "semantic" maps)
# </details>
#
# ### Answers you may read that are wrong
#
# <details><summary>Wrong: “SAM is prompted with text: type ‘cat’ and it segments the cat.”</summary>
#
# Right: the released SAM (2023), like SAM 2, takes points, boxes and masks. Text appears in the paper only as a
# proof of concept (§7.5: trained with CLIP *image* embeddings of the masks' crops as prompts, fed CLIP *text*
# embeddings at test time), never released; text to mask in practice is Grounded-SAM — Grounding DINO's boxes as
# SAM's prompts — and SAM 3 (2025) is a new model trained for short noun phrases. Our model keeps SAM's interface:
# "SAM's prompts: points" asserts four point types (foreground, background, two box corners) and a mask input;
# "10. A text prompt, as SAM's paper tried it" adds the paper's CLIP token and measures what text alone gives.
#
# </details>
#
# <details><summary>Wrong: “SAM was trained with text prompts (image–caption pairs).”</summary>
#
# Right: not one caption. The paper's text-to-mask experiment trained with the CLIP *image* embedding of each mask's
# crop as the prompt and relied on CLIP's shared space to accept a *text* embedding at test time. "10. A text prompt,
# as SAM's paper tried it" trains exactly so — its data are crops and CLIP image vectors only — and measures the
# modality gap that makes text a weaker prompt than the image embedding it stands in for.
#
# </details>
#
# <details><summary>Wrong: “SAM tells you what it segmented: it outputs class labels.”</summary>
#
# Right: SAM is class-agnostic. For a prompt it returns three masks and their predicted IoUs, nothing else; naming
# the object is another model's job (CLIP on the crop, or a detector whose boxes become the prompts). "Image encoder,
# mask decoder, and why the embedding is computed once" asserts its outputs: three full-size masks and three IoUs
# per prompt.
#
# </details>
#
# <details><summary>Wrong: “SAM runs in real time.”</summary>
#
# Right: only its prompt side does. Given a cached image embedding, the prompt encoder and mask decoder run in
# ~50 ms in a web browser on a CPU; the ViT-H image encoder, ~3 T multiply-adds per 1024×1024 image, does not, as
# the paper's own limitations note — hence computing the embedding once per image, and MobileSAM and its kind
# replacing the encoder. "3. The model" asserts the encoder heavier than a prompt's decoding and 10 clicks on a
# cached embedding under 70% of the cost of recomputing it; "11. Making SAM fast" distils a cheaper encoder.
#
# </details>
#
# <details><summary>Wrong: “SA-1B's 1.1 billion masks were drawn by annotators.”</summary>
#
# Right: 99.1% of them came from the data engine's *fully automatic* stage: a 32×32 grid of point prompts on each
# of the 11 M images, keeping confident (predicted IoU ≥ 0.88) and stable masks, duplicates removed by NMS. People
# worked in the two stages before it — assisted-manual and semi-automatic — to make the model good enough to trust.
# "9. A mini data engine" runs the automatic stage in miniature and measures the kept masks against the rejected.
#
# </details>
