"""BLIP's image-grounded text networks in miniature, for Chapter 9 (09_contrastive_multimodal): a matching head (ITM)
and a captioner (LM), both reading the image through cross-attention.

BLIP (Li et al., 2022) uses one text Transformer three ways: unimodal (ITC — CLIP's contrastive loss,
`utils.models.clip.CLIP` here), **image-grounded encoder** (self-attention, then cross-attention to the image tokens,
then the feed-forward block; the first token's state → a 2-way "match / no match" head) and **image-grounded
decoder** (the same with causal self-attention, predicting the next word). As in ALBEF, BLIP's predecessor, our
grounded layers sit *on top of* the unimodal text encoder: CLIP's trained text tower, frozen, gives every token's
state, and only the fusion layers learn — a pre-trained text model to start from, as BLIP starts from BERT.

- `GroundedText` — CLIP's frozen text tower's token states, then ``layers`` pre-norm Transformer *decoder* layers
  (self-attention, cross-attention to the image, feed-forward: `torch.nn.TransformerDecoderLayer`), bidirectional
  or causal; the image arrives as a feature map (N×C×h×w, CLIP's frozen image encoder's last map), flattened to
  h·w tokens, projected to the text width and given a position per cell (learnt, started from 2-D sinusoids) —
  without it cross-attention is blind to *where* a feature is, and "left of" could not be learnt;
- `MatchingHead` — BLIP's ITM: `GroundedText` (bidirectional) → the first token (<bos>, BLIP's [ENC]) → 2 logits;
- `Captioner` — BLIP's LM decoder: `GroundedText` (causal; CLIP's text tower is causal too) → next-token logits;
  ``loss`` is teacher-forced cross-entropy with label smoothing 0.1 as in BLIP; ``greedy`` writes a caption one
  argmax token at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .clip import TextEncoder
from .vit import sincos_position_embedding


class GroundedText(nn.Module):
    """tokens (N×L int64, 0 = padding) and image maps (N×image_channels×h×w) → N×L×width states: CLIP's frozen
    text tower, then Transformer layers whose every step cross-attends to the image."""

    def __init__(self, text_encoder: TextEncoder, image_channels: int, image_grid: tuple[int, int], *, causal: bool,
                 layers: int = 2, heads: int = 4):
        super().__init__()
        self.causal, self.image_grid = causal, tuple(image_grid)
        self.text_encoder = text_encoder.requires_grad_(False)      # CLIP's, shared and frozen from here on
        width = text_encoder.norm.normalized_shape[0]
        self.image_projection = nn.Linear(image_channels, width)
        self.image_position = nn.Parameter(sincos_position_embedding(self.image_grid, width))
        layer = nn.TransformerDecoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.transformer = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(width)

    def image_tokens(self, image_maps: torch.Tensor) -> torch.Tensor:
        """N×C×h×w → N×(h·w)×width: one token per map cell, with its position."""
        if image_maps.ndim != 4 or tuple(image_maps.shape[2:]) != self.image_grid:
            raise ValueError(f"image_maps must be N×C×{self.image_grid[0]}×{self.image_grid[1]}, "
                             f"got {tuple(image_maps.shape)}")
        return self.image_projection(image_maps.flatten(2).transpose(1, 2)) + self.image_position

    def forward(self, tokens: torch.Tensor, image_maps: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2 or len(tokens) != len(image_maps):
            raise ValueError(f"tokens must be N×L, one row per image map; got {tuple(tokens.shape)} tokens for "
                             f"{len(image_maps)} maps")
        with torch.no_grad():                     # frozen: no gradient, no activations kept
            text = self.text_encoder.token_states(tokens)
        length = tokens.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=tokens.device) if self.causal else None
        # padding is masked only in the bidirectional encoder: with a causal mask a real token never sees padding
        padding = None if self.causal else tokens == 0
        states = self.transformer(text, self.image_tokens(image_maps), tgt_mask=mask, tgt_is_causal=self.causal,
                                  tgt_key_padding_mask=padding)
        return self.norm(states)


class MatchingHead(nn.Module):
    """BLIP's image–text matching: ``forward(tokens, image_maps)`` → N×2 logits (1 = "the caption matches")."""

    def __init__(self, text_encoder: TextEncoder, image_channels: int, image_grid: tuple[int, int], **sizes):
        super().__init__()
        self.text = GroundedText(text_encoder, image_channels, image_grid, causal=False, **sizes)
        self.head = nn.Linear(self.text.norm.normalized_shape[0], 2)

    def forward(self, tokens: torch.Tensor, image_maps: torch.Tensor) -> torch.Tensor:
        return self.head(self.text(tokens, image_maps)[:, 0])

    @torch.no_grad()
    def match_probability(self, tokens: torch.Tensor, image_maps: torch.Tensor) -> torch.Tensor:
        """N probabilities that caption i describes image i (float32, on the model's device)."""
        return self(tokens, image_maps).float().softmax(1)[:, 1]


class Captioner(nn.Module):
    """BLIP's image-grounded decoder: ``forward(tokens, image_maps)`` → N×L×vocabulary next-token logits."""

    def __init__(self, text_encoder: TextEncoder, image_channels: int, image_grid: tuple[int, int], **sizes):
        super().__init__()
        self.text = GroundedText(text_encoder, image_channels, image_grid, causal=True, **sizes)
        self.head = nn.Linear(self.text.norm.normalized_shape[0], text_encoder.token_embedding.num_embeddings)

    def forward(self, tokens: torch.Tensor, image_maps: torch.Tensor) -> torch.Tensor:
        return self.head(self.text(tokens, image_maps))

    def loss(self, tokens: torch.Tensor, image_maps: torch.Tensor, label_smoothing: float = 0.1) -> torch.Tensor:
        """Teacher forcing: predict token t+1 from tokens ≤ t and the image; padding positions are ignored."""
        logits = self(tokens[:, :-1], image_maps)
        return F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten(), ignore_index=0,
                               label_smoothing=label_smoothing)

    @torch.no_grad()
    def greedy(self, image_maps: torch.Tensor, begin: int, end: int, max_length: int | None = None) -> torch.Tensor:
        """Captions of N images as N×max_length token ids: <begin>, then the most likely token each step, padding
        (0) after <end>. The whole prefix is re-run each step: at ≤ 16 tokens that is simpler than a key–value
        cache and cheap."""
        longest = self.text.text_encoder.max_length
        max_length = max_length or longest
        if not 2 <= max_length <= longest:
            raise ValueError(f"max_length must be from 2 to {longest}, not {max_length}")
        tokens = torch.full((len(image_maps), 1), begin, dtype=torch.int64, device=image_maps.device)
        finished = torch.zeros(len(image_maps), dtype=torch.bool, device=image_maps.device)
        for _ in range(max_length - 1):
            following = self(tokens, image_maps)[:, -1].argmax(1).masked_fill(finished, 0)
            tokens = torch.cat([tokens, following[:, None]], 1)
            finished |= following == end
        return tokens
