"""SAM's text prompt (Kirillov et al., 2023, §7.5 "text-to-mask"), in miniature, for Chapter 10.

SAM was never trained on text. For each training mask the paper took the **CLIP image embedding** of the mask's
crop and gave it to the prompt encoder as one more prompt token; at test time it gave the **CLIP text embedding**
of a phrase instead — the two live in one space, because CLIP was trained to make them agree. Here:

* `object_crops` — each object's crop, cut from its scene and scaled to look like the single-item scenes Chapter 9's
  CLIP was trained on (48 pixels, the item about 20 across, the other items' pixels blanked out);
* `EmbeddingPrompt` — a copy of a trained SAM plus one small learned layer (CLIP's vector → a prompt token) beside
  its prompt encoder; only that layer and the mask decoder train (the image and prompt encoders are frozen), and
  CLIP itself stays outside, frozen;
* `embedding_prompt_loss` — a `utils.training.fit` loss: SAM's loss on the item, prompted by the crop's CLIP image
  embedding, alone or with one click inside the item (so the decoder also learns to combine the two);
* `embedding_prompt_ious` — the item IoU of the mask the IoU head picks, for any mix of embedding token and clicks;
* `item_features` — SAM's image embedding averaged over an object: what a linear probe can read of its class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from .models.sam import _check_prompts
from .sam import best_mask, mask_iou, sample_point, sam_loss, tight_boxes
from .training import autocast


def object_crops(images: torch.Tensor, masks: torch.Tensor, size: int = 48, item_side: int = 20) -> torch.Tensor:
    """Each object's crop as a CLIP input: ``images`` uint8 T×1×S×S (the object's scene), ``masks`` bool T×S×S
    (its visible pixels) → uint8 T×1×size×size. The square around the item's tight box is scaled so that the box's
    longer side spans ``item_side`` pixels, centred; pixels outside the item are set to 0, so neither a neighbour
    nor the item underneath leaks into the embedding."""
    if images.ndim != 4 or images.shape[1] != 1 or images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 T×1×S×S scenes, got {images.dtype} {tuple(images.shape)}")
    if masks.shape != (len(images), *images.shape[-2:]) or masks.dtype != torch.bool:
        raise ValueError(f"masks must be bool T×S×S, one per image, got {masks.dtype} {tuple(masks.shape)}")
    if not masks.flatten(1).any(1).all():
        raise ValueError("every mask needs at least one pixel: an empty object has no crop")
    if not 0 < item_side <= size:
        raise ValueError(f"item_side must lie in 1…size ({size}), not {item_side}")
    boxes = tight_boxes(masks)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).max(1).values * size / item_side / 2
    rois = torch.cat([torch.arange(len(images), dtype=torch.float32)[:, None], centres - half[:, None],
                      centres + half[:, None]], 1)
    kept = images.float() * masks[:, None]
    crops = roi_align(kept, rois, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return crops.round().clamp(0, 255).to(torch.uint8)


class EmbeddingPrompt(nn.Module):
    """A trained SAM (``sam``, kept inside) that also takes a CLIP embedding (``clip_dim``) as a prompt: a small MLP
    beside the prompt encoder turns the unit vector into one prompt token. The image encoder and the point prompt
    encoder are frozen; the projection and the mask decoder train."""

    def __init__(self, sam: nn.Module, clip_dim: int):
        super().__init__()
        dim = sam.prompt_encoder.type_embeddings.embedding_dim
        self.sam = sam
        self.projection = nn.Sequential(nn.Linear(clip_dim, dim), nn.GELU(), nn.Linear(dim, dim))
        nn.init.zeros_(self.projection[2].weight)          # the new token starts as zeros: the trained decoder is not
        nn.init.zeros_(self.projection[2].bias)            # thrown off by a random one while it learns to read it
        sam.image_encoder.requires_grad_(False)
        sam.prompt_encoder.requires_grad_(False)

    def tokens(self, vectors: torch.Tensor | None, count: int) -> torch.Tensor:
        """CLIP vectors N×D → N×1×dim prompt tokens; ``None`` gives SAM's own "no point" token (a blank prompt)."""
        encoder = self.sam.prompt_encoder
        if vectors is None:
            return encoder.padding_embedding[None, None].expand(count, 1, -1)
        if vectors.ndim != 2 or len(vectors) != count or vectors.shape[1] != self.projection[0].in_features:
            raise ValueError(f"need {count} CLIP vectors of {self.projection[0].in_features} numbers (N×D), got "
                             f"{tuple(vectors.shape)}")
        return self.projection(F.normalize(vectors.float(), dim=1))[:, None]

    def predict(self, embedding: torch.Tensor, vectors: torch.Tensor | None, points: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, mask_logits: torch.Tensor | None = None):
        """SAM's ``predict`` with one more prompt token, first: the CLIP ``vectors`` (N×D, or None: a blank token),
        then optional points N×P×2 with labels N×P as SAM reads them → (mask logits N×M×S×S, predicted IoU N×M)."""
        tokens = self.tokens(vectors, len(embedding))
        if points is not None:
            _check_prompts(embedding, points, labels, self.sam.image_size, tokens.shape[-1])
            tokens = torch.cat([tokens, self.sam.prompt_encoder.sparse(points, labels).to(tokens.dtype)], 1)
        dense = self.sam.prompt_encoder.dense(mask_logits, len(embedding))
        return self.sam.mask_decoder(embedding + dense, self.sam.prompt_encoder.image_positions(), tokens)


def embedding_prompt_loss(scene_embeddings: torch.Tensor, scene_of: torch.Tensor, targets: torch.Tensor,
                          click_fraction: float = 0.5, seed: int = 0):
    """A `utils.training.fit` loss on ``(CLIP vectors N×D, object rows N)`` batches: SAM's loss (`sam_loss`) on each
    object's ``targets`` row (bool T×S×S), its scene's cached SAM embedding ``scene_embeddings[scene_of[row]]``,
    prompted by the vector alone or — for a ``click_fraction`` of the rows — with one click inside the target."""
    if not 0 <= click_fraction <= 1:
        raise ValueError(f"click_fraction must lie in [0, 1], not {click_fraction}")
    state = {}

    def loss_fn(model, batch):
        vectors, rows = batch
        if "generator" not in state or state["generator"].device != rows.device:
            state["generator"] = torch.Generator(device=rows.device).manual_seed(seed)
        target = targets[rows]
        embedding = scene_embeddings[scene_of[rows]]
        points = sample_point(target, state["generator"])[:, None]
        clicked = torch.rand(len(rows), generator=state["generator"], device=rows.device) < click_fraction
        labels = torch.where(clicked, 1, -1)[:, None]            # −1: SAM's padding, "no point here"
        logits, predicted_iou = model.predict(embedding, vectors, points, labels)
        return sam_loss(logits, predicted_iou, target)

    loss_fn.__name__ = f"embedding_prompt_click{click_fraction:g}"
    return loss_fn


def item_features(embeddings: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """What SAM's image embedding says about each object: ``embeddings`` T×dim×h×w averaged over the object's
    ``masks`` (bool T×S×S, S a multiple of h; each cell weighted by the share of its pixels in the mask) → T×dim."""
    if embeddings.ndim != 4 or masks.ndim != 3 or len(masks) != len(embeddings) or \
            masks.shape[-1] % embeddings.shape[-1]:
        raise ValueError(f"need embeddings T×dim×h×w and masks T×S×S (S a multiple of w), got "
                         f"{tuple(embeddings.shape)} and {tuple(masks.shape)}")
    weights = F.avg_pool2d(masks[:, None].float(), masks.shape[-1] // embeddings.shape[-1]).to(embeddings.device)
    return (embeddings.float() * weights).sum((2, 3)) / weights.sum((2, 3)).clamp(min=1e-6)


@torch.no_grad()
def embedding_prompt_ious(model: EmbeddingPrompt, embeddings: torch.Tensor, vectors: torch.Tensor | None,
                          targets: torch.Tensor, clicks: int = 0, seed: int = 0, batch_size: int = 256) -> dict:
    """Item IoU of the prompted masks: cached SAM ``embeddings`` T×dim×h×w, CLIP ``vectors`` T×D (None: a blank
    token), bool ``targets`` T×S×S, and ``clicks`` foreground clicks drawn inside each target (0 or 1). Returns
    float CPU tensors ``chosen`` (the IoU of the mask with the highest predicted IoU) and ``oracle`` (of the best
    mask), T each, and ``masks``, the chosen masks (bool T×S×S)."""
    if clicks not in (0, 1) or len(embeddings) != len(targets) or \
            (vectors is not None and len(vectors) != len(targets)):
        raise ValueError(f"need clicks 0 or 1 and one embedding, vector and target per object (got {clicks}, "
                         f"{len(embeddings)}, {None if vectors is None else len(vectors)}, {len(targets)})")
    model.eval()
    dev = next(model.parameters()).device
    generator = torch.Generator(device=dev).manual_seed(seed)
    chosen, oracle, shown = [], [], []
    for start in range(0, len(targets), batch_size):
        rows = slice(start, start + batch_size)
        target, embedding = targets[rows].to(dev), embeddings[rows].to(dev)
        batch_vectors = None if vectors is None else vectors[rows].to(dev)
        points = sample_point(target, generator)[:, None] if clicks else None
        labels = torch.ones(len(target), 1, dtype=torch.long, device=dev) if clicks else None
        with autocast(dev):
            logits, predicted_iou = model.predict(embedding, batch_vectors, points, labels)
        logits, predicted_iou = logits.float(), predicted_iou.float()
        ious = mask_iou(logits > 0, target[:, None])
        masks = best_mask(logits, predicted_iou)[:, 0] > 0
        chosen.append(mask_iou(masks, target).cpu())
        oracle.append(ious.max(1).values.cpu())
        shown.append(masks.cpu())
    return {"chosen": torch.cat(chosen), "oracle": torch.cat(oracle), "masks": torch.cat(shown)}


def render_text_prompts(images: torch.Tensor, texts: list[str], truths: torch.Tensor, columns: dict,
                        clicks: torch.Tensor | None = None):
    """One row per object: its scene titled with the text prompt, then each of ``columns`` ({title: bool K×S×S
    masks}, with its IoU against the truth in the title), then the truth. ``images`` uint8 K×S×S, ``truths`` bool
    K×S×S; ``clicks`` K×2 (x, y) are drawn on the columns whose title mentions a click."""
    import matplotlib.pyplot as plt

    from .sam import MASK_COLOURS, draw_prompts, tint

    if not len(images) or len(texts) != len(images) or truths.shape != images.shape or not columns or \
            any(m.shape != images.shape for m in columns.values()):
        raise ValueError(f"need K scenes, K texts, K truths and K masks per column, all {tuple(images.shape[1:])}; "
                         f"got {len(images)} scenes, {len(texts)} texts, truths {tuple(truths.shape)}")
    fig, axes = plt.subplots(len(images), len(columns) + 2, figsize=(2.1 * (len(columns) + 2), 2.3 * len(images)),
                             layout="constrained", squeeze=False)
    for row, image, text, truth, k in zip(axes, images, texts, truths, range(len(images))):
        row[0].imshow(image, cmap="gray", vmin=0, vmax=255)
        row[0].set_title(f"prompt: “{text}”", fontsize=9)
        for ax, (title, masks), colour in zip(row[1:], columns.items(), MASK_COLOURS):
            ax.imshow(tint(image, masks[k], colour))
            if clicks is not None and "click" in title:
                draw_prompts(ax, clicks[k], torch.tensor([1]))
            ax.set_title(f"{title}: IoU {mask_iou(masks[k], truth).item():.2f}", fontsize=8)
        row[-1].imshow(tint(image, truth, MASK_COLOURS[2]))
        row[-1].set_title("truth: the item", fontsize=9)
    for ax in axes.flat:
        ax.set(xticks=[], yticks=[])
    fig.suptitle("Text prompts through CLIP: the scene, the masks shown, the truth")
    return fig


def render_crops(crops: torch.Tensor, truths: list[str], guesses: list[str]):
    """What CLIP's image tower sees: uint8 K×1×S×S crops, each titled with its class phrase and CLIP's zero-shot
    guess (the most similar class phrase)."""
    import matplotlib.pyplot as plt

    if crops.ndim != 4 or crops.shape[1] != 1 or not len(crops) or not len(truths) == len(guesses) == len(crops):
        raise ValueError(f"need K×1×S×S crops and K class phrases and guesses, got {tuple(crops.shape)}, "
                         f"{len(truths)} and {len(guesses)}")
    fig, axes = plt.subplots(1, len(crops), figsize=(1.7 * len(crops), 2.2), layout="constrained", squeeze=False)
    for ax, crop, truth, guess in zip(axes[0], crops, truths, guesses):
        ax.imshow(crop[0], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{truth}\nCLIP: {guess}" + (" ✓" if guess == truth else " ✗"), fontsize=8)
        ax.set(xticks=[], yticks=[])
    fig.suptitle("Object crops as CLIP sees them (48 px, item about 20 px, the rest blanked)")
    return fig
