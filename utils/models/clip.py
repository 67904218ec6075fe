"""The networks of Chapter 9 (09_contrastive_multimodal): a small image encoder, a small text Transformer, projection
heads, and the models built from them — SimCLR, BYOL, a tiny CLIP and an LSeg-style dense head.

- `ImageEncoder` — five 3×3 conv blocks to stride 4 (8 with a strided stem); ``forward(x)`` is the last map's
  global average (N×C): the "backbone" every self-supervised method trains and every probe reads;
- `ProjectionHead` — Linear → BatchNorm → ReLU → Linear: SimCLR's projector g(·), BYOL's projector and predictor;
- `TextEncoder` — CLIP's text tower in miniature: token + learned position embeddings, pre-norm Transformer layers
  with a causal mask, the feature at the end-of-text token;
- `SimCLR`, `BYOL` (online + predictor, EMA target without gradients), `CLIP` (two towers, two linear projections,
  a learnt temperature), `LSeg` (a per-pixel embedding of the image encoder's map, upsampled, scored against text
  embeddings).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..contrastive import ema_update


def conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3×3 conv → BatchNorm → ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ImageEncoder(nn.Module):
    """x: N×in_channels×H×W (standardised) → N×(4·width) features (the global average of the last map).
    ``feature_maps`` returns the maps at strides 2·stem and 4·stem (``stem_stride`` 2 makes a 48-px scene as cheap
    as a 24-px one); LSeg reads both."""

    def __init__(self, width: int = 16, in_channels: int = 1, stem_stride: int = 1):
        super().__init__()
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, not {stem_stride}")
        self.out_features, self.mid_features = 4 * width, 2 * width
        self.early = nn.Sequential(conv_block(in_channels, width, stem_stride), conv_block(width, 2 * width, 2),
                                   conv_block(2 * width, 2 * width))
        self.late = nn.Sequential(conv_block(2 * width, 4 * width, 2), conv_block(4 * width, 4 * width))

    def feature_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mid = self.early(x)
        return mid, self.late(mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.late(self.early(x)).mean((2, 3))


class ProjectionHead(nn.Module):
    """in_features → hidden → out_features through BatchNorm and ReLU (SimCLR's g, BYOL's projector/predictor)."""

    def __init__(self, in_features: int, hidden: int, out_features: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_features, hidden, bias=False), nn.BatchNorm1d(hidden),
                                    nn.ReLU(inplace=True), nn.Linear(hidden, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Classifier(nn.Module):
    """The same encoder with a linear layer: the supervised baseline of the probes."""

    def __init__(self, encoder: ImageEncoder, classes: int = 10):
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(encoder.out_features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class SimCLR(nn.Module):
    """f (encoder) then g (projector); the loss reads g(f(x)), the probes read f(x)."""

    def __init__(self, encoder: ImageEncoder, projection: int = 64):
        super().__init__()
        self.encoder = encoder
        self.projector = ProjectionHead(encoder.out_features, 2 * encoder.out_features, projection)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(x))


class BYOL(nn.Module):
    """Online network (encoder, projector, predictor) and a target network (encoder, projector) that is an
    exponential moving average of the online one and gets no gradient. ``predictor=False, ema=False`` is the
    ablation that collapses: the two branches are then the same network, trained to agree with itself."""

    def __init__(self, encoder: ImageEncoder, projection: int = 64, decay: float = 0.99, predictor: bool = True,
                 ema: bool = True):
        super().__init__()
        self.decay, self.use_predictor, self.use_ema = decay, predictor, ema
        self.encoder = encoder
        self.projector = ProjectionHead(encoder.out_features, 2 * encoder.out_features, projection)
        self.predictor = ProjectionHead(projection, 2 * projection, projection) if predictor else nn.Identity()
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def update_target(self) -> None:
        """Move the target towards the online weights (called once per step)."""
        if self.use_ema:
            ema_update(self.target_encoder, self.encoder, self.decay)
            ema_update(self.target_projector, self.projector, self.decay)

    def loss(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        """BYOL's symmetric loss: 2 − 2·cos(q(online(v₁)), sg(target(v₂))), plus the same with the views swapped."""
        online = self.predictor(self.projector(self.encoder(torch.cat([view1, view2]))))
        if self.use_ema:
            with torch.no_grad():
                target = self.target_projector(self.target_encoder(torch.cat([view2, view1])))
        else:  # no target network, no stop-gradient: both sides are the online network
            target = self.projector(self.encoder(torch.cat([view2, view1])))
        return (2 - 2 * F.cosine_similarity(online.float(), target.float(), dim=1)).mean() * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(x))


class TextEncoder(nn.Module):
    """tokens (N×L int64, 0 = padding, each row ending with an end-of-text token) → N×width: the feature at the last
    non-padding token after ``layers`` pre-norm Transformer layers with a causal mask (as in CLIP)."""

    def __init__(self, vocabulary: int, width: int = 64, layers: int = 2, heads: int = 4, max_length: int = 24):
        super().__init__()
        self.max_length = max_length
        self.token_embedding = nn.Embedding(vocabulary, width, padding_idx=0)
        self.position_embedding = nn.Parameter(torch.randn(max_length, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.register_buffer("causal", torch.triu(torch.full((max_length, max_length), float("-inf")), 1),
                             persistent=False)

    def token_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """N×L×width: every token's state (BLIP's matching head and captioner read them all)."""
        if tokens.ndim != 2 or tokens.shape[1] > self.max_length:
            raise ValueError(f"tokens must be N×L with L ≤ {self.max_length}, got {tuple(tokens.shape)}")
        length = tokens.shape[1]
        x = self.token_embedding(tokens) + self.position_embedding[:length]
        # causal: a token sees only its left context, so the end token is the only one that saw the whole caption
        return self.norm(self.transformer(x, mask=self.causal[:length, :length], is_causal=True))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.token_states(tokens)
        last = (tokens != 0).sum(1) - 1
        return x[torch.arange(len(tokens), device=tokens.device), last]


class CLIP(nn.Module):
    """Two towers and two linear projections into one ``embed_dim`` space; ``forward`` → (image embeddings,
    text embeddings), both L2-normalised; ``temperature`` = exp(−logit_scale), learnt, clamped as CLIP does."""

    def __init__(self, image_encoder: ImageEncoder, text_encoder: TextEncoder, embed_dim: int = 64,
                 temperature: float = 0.07):
        super().__init__()
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.image_projection = nn.Linear(image_encoder.out_features, embed_dim, bias=False)
        self.text_projection = nn.Linear(text_encoder.norm.normalized_shape[0], embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))

    @property
    def temperature(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=math.log(100)).exp().reciprocal()

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_projection(self.image_encoder(images)).float(), dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_projection(self.text_encoder(tokens)).float(), dim=-1)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_image(images), self.encode_text(tokens)


class LSeg(nn.Module):
    """LSeg (Li et al., 2022) in miniature: the image encoder's two maps (the deeper one upsampled onto the finer,
    concatenated — a one-step DPT/FPN-style fusion) → a per-pixel ``embed_dim`` embedding; ``forward(x,
    label_embeddings K×D)`` → N×K×H×W logits = cosine similarity of every pixel with every label's text embedding /
    temperature, upsampled to the image. The labels are any texts: their embeddings come from CLIP's (frozen) text
    tower."""

    def __init__(self, image_encoder: ImageEncoder, embed_dim: int = 64, temperature: float = 0.07):
        super().__init__()
        self.image_encoder, self.temperature = image_encoder, temperature
        channels = image_encoder.out_features + image_encoder.mid_features
        self.head = nn.Sequential(conv_block(channels, channels), nn.Conv2d(channels, embed_dim, 1))

    def pixel_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """N×embed_dim×H/s×W/s unit vectors at the finer map's stride s (4 for a strided stem)."""
        mid, deep = self.image_encoder.feature_maps(x)
        deep = F.interpolate(deep, size=mid.shape[-2:], mode="bilinear", align_corners=False)
        return F.normalize(self.head(torch.cat([mid, deep], 1)).float(), dim=1)

    def forward(self, x: torch.Tensor, label_embeddings: torch.Tensor) -> torch.Tensor:
        if label_embeddings.ndim != 2:
            raise ValueError("label_embeddings must be K×D: one text embedding per label")
        labels = F.normalize(label_embeddings.float(), dim=1)
        logits = torch.einsum("nchw,kc->nkhw", self.pixel_embeddings(x), labels) / self.temperature
        # upsampling K logit maps costs far less than upsampling D-dimensional embeddings (K ≪ D)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
