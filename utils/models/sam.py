"""A small Segment Anything Model (Kirillov et al., 2023): image encoder, prompt encoder, two-way mask decoder.

Introduced in Chapter 10 (10_promptable_segmentation). The three parts, as in SAM:

* `ImageEncoder` — the heavy part, run **once per image**: a convolutional stack to stride 4 and a 1×1 "neck"
  to ``dim`` channels (SAM: an MAE-pretrained ViT-H to a 64×64×256 embedding). Its embedding is cached and reused
  for every prompt on that image.
* `PromptEncoder` — sparse prompts (points with a foreground/background label, box corners) become ``dim``-vectors:
  random Fourier features of the coordinates plus a learned embedding per prompt type; a dense prompt (the
  previous mask's logits) goes through strided convolutions and is *added* to the image embedding.
* `MaskDecoder` — output tokens (one IoU token, three mask tokens) joined to the prompt tokens run through a
  **two-way Transformer**: the tokens attend to the image, then the image attends back to the tokens. Each mask
  token, through a small MLP (a hypernetwork), becomes the weights of a dot product with the upscaled image
  embedding: three mask logits per prompt, and the IoU token predicts each mask's IoU.

Shapes: images ``N×1×S×S`` floats in [0, 1]; embedding ``N×dim×S/4×S/4``; points ``N×P×2`` pixel coordinates
(x, y), labels ``N×P`` (1 foreground, 0 background, 2 box top-left, 3 box bottom-right, −1 padding); masks
``N×3×S×S`` logits; predicted IoU ``N×3``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_points_inside

LABELS = {"background": 0, "foreground": 1, "box top-left": 2, "box bottom-right": 3}


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an ``N×C×H×W`` map (SAM's neck and mask convolutions use it)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(channels)), nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]


def conv(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3×3 conv → BatchNorm → GELU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, dilation, dilation, bias=False), nn.BatchNorm2d(c_out),
                         nn.GELU())


class ImageEncoder(nn.Module):
    """``N×1×S×S`` → ``N×dim×S/4×S/4``: two stride-2 stages, dilated convolutions for a wide view, a 1×1 neck."""

    def __init__(self, dim: int = 64, width: int = 32, depth: int = 3):
        super().__init__()
        layers = [conv(1, width // 2, stride=2), conv(width // 2, width // 2), conv(width // 2, width, stride=2)]
        layers += [conv(width, width, dilation=2 ** (i % 3)) for i in range(depth)]   # dilations 1, 2, 4, 1, …
        self.body = nn.Sequential(*layers)
        self.neck = nn.Sequential(nn.Conv2d(width, dim, 1, bias=False), LayerNorm2d(dim))

    def forward(self, images):
        return self.neck(self.body(images))


def fourier_features(coords: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
    """Random Fourier features (Tancik et al., 2020): ``concat(sin 2π·coords·B, cos 2π·coords·B)``.

    ``coords`` ``…×2`` in [0, 1]; ``frequencies`` B ``2×F`` → ``…×2F`` (float32, or float64 if either is). Nearby
    coordinates get similar vectors, and the frequencies in B set how fine a difference the decoder can see.
    """
    if coords.shape[-1] != 2 or frequencies.ndim != 2 or frequencies.shape[0] != 2:
        raise ValueError(f"coords must be …×2 and frequencies 2×F, got {tuple(coords.shape)} and "
                         f"{tuple(frequencies.shape)}")
    # float32 at least (in bf16 an angle near 40 rad is off by ±0.1); float64 stays float64, for exact comparisons
    dtype = torch.promote_types(torch.promote_types(coords.dtype, frequencies.dtype), torch.float32)
    with torch.autocast(coords.device.type, enabled=False):
        projected = 2 * math.pi * coords.to(dtype) @ frequencies.to(dtype)
        return torch.cat([projected.sin(), projected.cos()], -1)


class PromptEncoder(nn.Module):
    """Sparse prompts → ``N×P×dim`` tokens; a dense mask prompt → ``N×dim×h×w``; the image's positional encoding."""

    def __init__(self, dim: int = 64, image_size: int = 64, scale: float = 2.0):
        super().__init__()
        self.image_size, self.grid = image_size, image_size // 4
        self.register_buffer("frequencies", scale * torch.randn(2, dim // 2, generator=torch.Generator().manual_seed(0)))
        self.type_embeddings = nn.Embedding(len(LABELS), dim)      # background, foreground, two box corners
        self.padding_embedding = nn.Parameter(torch.zeros(dim))  # "no point here" (its Fourier part is zeroed)
        self.mask_downscaling = nn.Sequential(nn.Conv2d(1, 4, 2, 2), LayerNorm2d(4), nn.GELU(),
                                              nn.Conv2d(4, 16, 2, 2), LayerNorm2d(16), nn.GELU(),
                                              nn.Conv2d(16, dim, 1))
        self.no_mask_embedding = nn.Parameter(torch.zeros(dim))

    def sparse(self, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``N×P×2`` pixel coordinates and ``N×P`` labels → ``N×P×dim``; a pixel's centre is (x + 0.5) / S."""
        features = fourier_features((points + 0.5) / self.image_size, self.frequencies)
        padding = (labels < 0)[..., None]
        types = self.type_embeddings(labels.clamp(min=0))
        return torch.where(padding, self.padding_embedding.to(features.dtype), features + types)

    def dense(self, mask_logits: torch.Tensor | None, count: int) -> torch.Tensor:
        """The previous mask's ``N×1×S×S`` logits → ``N×dim×S/4×S/4`` (a learned "no mask" vector without one)."""
        if mask_logits is None:
            return self.no_mask_embedding[None, :, None, None].expand(count, -1, self.grid, self.grid)
        return self.mask_downscaling(mask_logits)

    def image_positions(self) -> torch.Tensor:
        """Fourier features of every embedding cell's centre: ``dim×h×w``, same frequencies as the points."""
        centres = (torch.arange(self.grid, device=self.frequencies.device) + 0.5) / self.grid
        ys, xs = torch.meshgrid(centres, centres, indexing="ij")
        return fourier_features(torch.stack([xs, ys], -1), self.frequencies).permute(2, 0, 1)


class Attention(nn.Module):
    """Multi-head attention whose queries, keys and values are projected to ``dim // downsample`` (SAM's
    cross-attention halves the width to save compute); scaled dot-product attention in one call."""

    def __init__(self, dim: int, heads: int, downsample: int = 1):
        super().__init__()
        inner = dim // downsample
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(dim, inner), nn.Linear(dim, inner), nn.Linear(dim, inner)
        self.out = nn.Linear(inner, dim)

    def forward(self, q, k, v):
        def split(x):
            return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)          # N×heads×tokens×(inner/heads)

        attended = F.scaled_dot_product_attention(split(self.q(q)), split(self.k(k)), split(self.v(v)))
        return self.out(attended.transpose(1, 2).flatten(2))


class TwoWayBlock(nn.Module):
    """Tokens: self-attention → cross-attention to the image → MLP; then the image: cross-attention to the tokens.

    Positional encodings are added to queries and keys at every attention (never to the values), as in SAM."""

    def __init__(self, dim: int, heads: int, mlp: int, skip_first_positions: bool = False):
        super().__init__()
        self.self_attention = Attention(dim, heads)
        self.token_to_image = Attention(dim, heads, downsample=2)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.ReLU(), nn.Linear(mlp, dim))
        self.image_to_token = Attention(dim, heads, downsample=2)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(4))
        self.skip_first_positions = skip_first_positions

    def forward(self, tokens, image, token_pos, image_pos):
        if self.skip_first_positions:       # first block: the tokens *are* the prompts, positions included
            tokens = self.norms[0](self.self_attention(tokens, tokens, tokens))
        else:
            q = tokens + token_pos
            tokens = self.norms[0](tokens + self.self_attention(q, q, tokens))
        tokens = self.norms[1](tokens + self.token_to_image(tokens + token_pos, image + image_pos, image))
        tokens = self.norms[2](tokens + self.mlp(tokens))
        image = self.norms[3](image + self.image_to_token(image + image_pos, tokens + token_pos, tokens))
        return tokens, image


class MaskDecoder(nn.Module):
    """Prompt tokens + image embedding → ``masks`` logits ``N×M×S×S`` and predicted IoU ``N×M`` (M mask tokens)."""

    def __init__(self, dim: int = 64, heads: int = 4, depth: int = 2, mlp: int = 128, num_masks: int = 3):
        super().__init__()
        self.num_masks = num_masks
        self.iou_token = nn.Parameter(torch.randn(1, dim) * 0.02)
        self.mask_tokens = nn.Parameter(torch.randn(num_masks, dim) * 0.02)
        self.blocks = nn.ModuleList(TwoWayBlock(dim, heads, mlp, skip_first_positions=i == 0) for i in range(depth))
        self.final_attention = Attention(dim, heads, downsample=2)
        self.final_norm = nn.LayerNorm(dim)
        self.upscale = nn.Sequential(nn.ConvTranspose2d(dim, dim // 4, 2, 2), LayerNorm2d(dim // 4), nn.GELU(),
                                     nn.ConvTranspose2d(dim // 4, dim // 8, 2, 2), nn.GELU())
        self.hypernetworks = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim // 8))
            for _ in range(num_masks))
        self.iou_head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(),
                                      nn.Linear(dim, num_masks))

    def forward(self, image, image_pos, prompt_tokens):
        n, dim, h, w = image.shape
        output_tokens = torch.cat([self.iou_token, self.mask_tokens])[None].expand(n, -1, -1)
        tokens = torch.cat([output_tokens.to(prompt_tokens.dtype), prompt_tokens], 1)      # N×(1+M+P)×dim
        token_pos = tokens
        flat, flat_pos = image.flatten(2).transpose(1, 2), image_pos.flatten(1).T[None].expand(n, -1, -1)
        for block in self.blocks:
            tokens, flat = block(tokens, flat, token_pos, flat_pos)
        tokens = self.final_norm(tokens + self.final_attention(tokens + token_pos, flat + flat_pos, flat))
        upscaled = self.upscale(flat.transpose(1, 2).reshape(n, dim, h, w))                  # N×dim/8×4h×4w
        weights = torch.stack([net(tokens[:, 1 + i]) for i, net in enumerate(self.hypernetworks)], 1)
        masks = (weights @ upscaled.flatten(2)).unflatten(-1, upscaled.shape[-2:])          # N×M×4h×4w
        return masks, self.iou_head(tokens[:, 0])


def _check_prompts(embedding, points, labels, size: int, dim: int) -> None:
    """Refuse prompts the model would read wrongly without a word (a click off the image is encoded as a position it
    never saw; swapped box corners as a box turned inside out) or that fail deep inside (label 5: "index out of
    range in self"). The value checks are skipped inside a GPU training step, where they would make the step wait
    for the device: the prompts drawn there (`first_prompt`, `next_click`) are valid by construction."""
    if not all(torch.is_tensor(t) for t in (embedding, points, labels)) or points.ndim != 3 or \
            points.shape[-1] != 2 or labels.shape != points.shape[:2] or len(points) != len(embedding):
        shapes = [tuple(t.shape) if torch.is_tensor(t) else type(t).__name__ for t in (points, labels, embedding)]
        raise ValueError(f"need points N×P×2 and labels N×P for N embeddings, got {shapes[0]}, {shapes[1]} and "
                         f"embeddings {shapes[2]}")
    if embedding.shape[1:] != (dim, size // 4, size // 4):
        raise ValueError(f"embedding must be N×{dim}×{size // 4}×{size // 4} (what embed gives for "
                         f"{size}×{size} images), got {tuple(embedding.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integers (torch.long), got {labels.dtype}")
    if torch.is_grad_enabled() and points.device.type != "cpu":
        return
    allowed = ", ".join(f"{value} ({name})" for name, value in LABELS.items()) + " or −1 (padding)"
    unknown = (labels < -1) | (labels > max(LABELS.values()))
    if unknown.any():
        raise ValueError(f"labels must be {allowed}, got {labels[unknown][0].item()}")
    check_points_inside(points[labels >= 0], size, size, "points")
    top_left, bottom_right = labels == LABELS["box top-left"], labels == LABELS["box bottom-right"]
    unpaired = (top_left.sum(1) != bottom_right.sum(1)) | (top_left.sum(1) > 1)
    if unpaired.any():
        n = int(unpaired.nonzero()[0, 0])
        raise ValueError(f"prompt {n} has {int(top_left[n].sum())} point(s) labelled 2 and "
                         f"{int(bottom_right[n].sum())} labelled 3: a box is two corners, one labelled 2 (top-left) "
                         "and one labelled 3 (bottom-right), at most one box per prompt (box_prompt(boxes) makes them)")
    first = (points * top_left[..., None]).sum(1)
    second = (points * bottom_right[..., None]).sum(1)
    swapped = top_left.any(1) & (first > second).any(1)
    if swapped.any():
        n = int(swapped.nonzero()[0, 0])
        raise ValueError(f"prompt {n}'s box corners are swapped: top-left (label 2) at {first[n].tolist()} lies right "
                         f"of or below bottom-right (label 3) at {second[n].tolist()}; label the corner with the "
                         "smaller x and y 2 (box_prompt(boxes) makes them from xyxy boxes)")


class SAM(nn.Module):
    """``embed(images)`` once per image, then ``predict(embedding, points, labels, mask_logits)`` per prompt;
    ``forward`` does both."""

    def __init__(self, dim: int = 64, width: int = 32, depth: int = 3, image_size: int = 64, heads: int = 4,
                 decoder_depth: int = 2, num_masks: int = 3):
        super().__init__()
        if image_size % 4 or dim % 16:
            raise ValueError(f"image_size must be a multiple of 4 and dim of 16, got {image_size} and {dim}")
        self.image_size = image_size
        self.image_encoder = ImageEncoder(dim, width, depth)
        self.prompt_encoder = PromptEncoder(dim, image_size)
        self.mask_decoder = MaskDecoder(dim, heads, decoder_depth, 2 * dim, num_masks)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """``N×1×S×S`` float images in [0, 1] → the embedding ``N×dim×S/4×S/4``."""
        size = self.image_size
        if not torch.is_tensor(images) or images.ndim != 4 or images.shape[1:] != (1, size, size):
            shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
            raise ValueError(f"images must be N×1×{size}×{size} (grey, the size this SAM was built for), got {shape}")
        if not images.is_floating_point():
            raise ValueError(f"images are {images.dtype}, but the encoder reads floats in [0, 1]: pass "
                             "images.float() / 255 (utils.sam.scene_input(images)) for uint8 scenes")
        return self.image_encoder(images)

    def predict(self, embedding, points, labels, mask_logits=None):
        """A cached embedding (``N×dim×S/4×S/4``) and a prompt per image — points ``N×P×2`` (x, y) pixel coordinates
        on the image, labels ``N×P`` from `LABELS` or −1 (padding), at most one box (labels 2 and 3) per prompt —
        and optionally the previous mask's logits ``N×1×S×S`` → (mask logits ``N×M×S×S``, predicted IoU ``N×M``)."""
        _check_prompts(embedding, points, labels, self.image_size, self.prompt_encoder.type_embeddings.embedding_dim)
        sparse = self.prompt_encoder.sparse(points, labels)
        dense = self.prompt_encoder.dense(mask_logits, len(embedding))
        return self.mask_decoder(embedding + dense, self.prompt_encoder.image_positions(), sparse)

    def forward(self, images, points, labels, mask_logits=None):
        return self.predict(self.embed(images), points, labels, mask_logits)
