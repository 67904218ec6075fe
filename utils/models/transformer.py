"""Attention from scratch and the encoder–decoder Transformer (Vaswani et al., 2017).

Introduced in Chapter 3 (03a); Chapter 3b builds ViT and Swin on `MultiHeadAttention`.

Blocks, smallest first:

- `scaled_dot_product_attention` — softmax(Q Kᵀ / √d_k + mask) V, written out (the teaching path);
- `MultiHeadAttention` — project to Q, K, V, split into heads, attend, concatenate, project back;
  the training path calls ``F.scaled_dot_product_attention`` (a fused flash kernel on GPU);
- `sinusoidal_positional_encoding`, `padding_mask`, `causal_mask`;
- `FeedForward`, `EncoderBlock`, `DecoderBlock` (pre-norm: LayerNorm inside each residual branch);
- `Seq2SeqTransformer` — embeddings + positions, an encoder stack, a decoder stack, an output projection;
- `DecoderOnlyTransformer` — GPT's layout: the encoder's blocks under a causal mask, no cross-attention
  (without the mask, the same stack is a BERT-style encoder).

Masks follow one convention everywhere: a boolean mask is True where attention *is allowed*; a float
mask is added to the logits (0 = allowed, -inf = blocked), as in ``F.scaled_dot_product_attention``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def scaled_dot_product_attention(q, k, v, mask=None):
    """q (..., Nq, d), k (..., Nk, d), v (..., Nk, dv); mask: bool (True = may attend) or float (added to the
    logits), broadcastable to (..., Nq, Nk). Returns (out (..., Nq, dv), weights (..., Nq, Nk))."""
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"need q (..., Nq, d), k (..., Nk, d), v (..., Nk, dv); got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}")
    # Dividing by √d keeps the logits' variance near 1 whatever the head width, so softmax does not saturate.
    logits = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])             # (..., Nq, Nk)
    if mask is not None:
        if mask.dtype == torch.bool:
            logits = logits.masked_fill(~mask, float("-inf"))
        else:
            logits = logits + mask
    weights = logits.softmax(dim=-1)                                      # each row sums to 1
    return weights @ v, weights                                           # (..., Nq, dv)


class MultiHeadAttention(nn.Module):
    """``num_heads`` attentions of width ``dim // num_heads`` side by side, mixed by an output projection.

    The input projection is one fused ``(3·dim) × dim`` matrix (Q, K, V stacked, the layout of
    ``nn.MultiheadAttention.in_proj_weight``); self-attention applies it in one matmul, cross-attention
    applies the Q rows to ``query`` and the K, V rows to ``key`` / ``value``.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}: each head gets dim/heads")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)

    def project(self, query, key, value):
        """Q, K, V, each (B, heads, N, dim/heads)."""
        if key is None and value is None:
            q, k, v = self.qkv(query).chunk(3, dim=-1)
        else:
            key = query if key is None else key
            value = key if value is None else value
            weights = self.qkv.weight.chunk(3)
            biases = self.qkv.bias.chunk(3) if self.qkv.bias is not None else (None, None, None)
            q, k, v = (F.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))
        return tuple(self.split_heads(t) for t in (q, k, v))

    def split_heads(self, x):
        """(B, N, dim) → (B, heads, N, dim/heads)."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def merge_heads(self, x):
        """(B, heads, N, dim/heads) → (B, N, dim): the heads' outputs concatenated."""
        batch, _, length, _ = x.shape
        return x.transpose(1, 2).reshape(batch, length, self.dim)

    def forward(self, query, key=None, value=None, mask=None, need_weights: bool = False):
        """query (B, Nq, dim); key/value default to query (self-attention); mask as above, broadcastable to
        (B, heads, Nq, Nk). need_weights=True takes the explicit path and returns (out, weights (B, heads, Nq, Nk));
        otherwise F.scaled_dot_product_attention (flash attention on GPU) and (out, None)."""
        if query.dim() != 3 or query.shape[-1] != self.dim:
            raise ValueError(f"query must be (batch, tokens, {self.dim}); got {tuple(query.shape)}")
        q, k, v = self.project(query, key, value)
        dropout = self.dropout if self.training else 0.0
        if need_weights:
            out, weights = scaled_dot_product_attention(q, k, v, mask)
            if dropout:
                out = F.dropout(weights, dropout) @ v
        else:
            out, weights = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout), None
        return self.proj(self.merge_heads(out)), weights


def sinusoidal_positional_encoding(num_positions: int, dim: int) -> torch.Tensor:
    """(num_positions, dim): even dims sin(pos / 10000^(i/dim)), odd dims cos of the same angle (i even).

    Each pair of dims is a clock at its own frequency, from one turn per 2π positions down to one per
    10000·2π; the encoding of pos + k is a fixed rotation of that of pos, so relative offsets are linear.
    """
    if dim % 2:
        raise ValueError(f"dim={dim} must be even: dims come in (sin, cos) pairs")
    position = torch.arange(num_positions, dtype=torch.float32)[:, None]           # (N, 1)
    frequency = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))     # (dim/2,)
    encoding = torch.empty(num_positions, dim)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency)
    return encoding


def padding_mask(tokens: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """tokens (B, N) → bool (B, 1, 1, N): True at real tokens, so no query attends to padding."""
    return (tokens != pad_id)[:, None, None, :]


def causal_mask(length: int, device=None) -> torch.Tensor:
    """bool (length, length), lower-triangular: position i may attend to positions ≤ i only."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


class FeedForward(nn.Module):
    """Position-wise MLP: dim → hidden → dim, applied to every token independently."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def _feed_forward(dim: int, hidden: int, dropout: float):
    """LayerNorm + FeedForward, or (None, None) for hidden=0: an attention-only block (Chapter 3a's ablation)."""
    if hidden < 0:
        raise ValueError(f"hidden={hidden}: give the feed-forward width (4·dim in the paper), or 0 for none")
    return (nn.LayerNorm(dim), FeedForward(dim, hidden, dropout)) if hidden else (None, None)


class EncoderBlock(nn.Module):
    """x + SelfAttention(LN(x)), then x + FeedForward(LN(x)) (left out when hidden=0)."""

    def __init__(self, dim: int, num_heads: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), MultiHeadAttention(dim, num_heads, dropout)
        self.norm2, self.ffn = _feed_forward(dim, hidden, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask=None, need_weights: bool = False):
        attended, weights = self.attn(self.norm1(x), mask=mask, need_weights=need_weights)
        x = x + self.drop(attended)
        return (x if self.ffn is None else x + self.ffn(self.norm2(x))), weights


class DecoderBlock(nn.Module):
    """Masked self-attention over the output so far, cross-attention to the encoder's memory, feed-forward
    (left out when hidden=0)."""

    def __init__(self, dim: int, num_heads: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.self_attn = nn.LayerNorm(dim), MultiHeadAttention(dim, num_heads, dropout)
        self.norm2, self.cross_attn = nn.LayerNorm(dim), MultiHeadAttention(dim, num_heads, dropout)
        self.norm3, self.ffn = _feed_forward(dim, hidden, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, memory, self_mask=None, memory_mask=None, need_weights: bool = False):
        attended, self_weights = self.self_attn(self.norm1(x), mask=self_mask, need_weights=need_weights)
        x = x + self.drop(attended)
        # Queries come from the output being written, keys and values from the encoded input.
        attended, cross_weights = self.cross_attn(self.norm2(x), memory, memory, mask=memory_mask,
                                                  need_weights=need_weights)
        x = x + self.drop(attended)
        return (x if self.ffn is None else x + self.ffn(self.norm3(x))), (self_weights, cross_weights)


class Seq2SeqTransformer(nn.Module):
    """Encoder–decoder Transformer over token ids; ``forward(src, tgt_in)`` → logits (B, Nt, tgt_vocab).

    ``positions``: "add" (token embedding + sinusoid, the paper), "concat" (embedding of dim − dim/2
    concatenated with a dim/2 sinusoid: same width, fewer dims for content), or "none" (no order at all).
    ``hidden``: the feed-forward width (default 4·dim); 0 builds attention-only blocks.
    """

    POSITIONS = ("add", "concat", "none")

    def __init__(self, src_vocab: int, tgt_vocab: int, dim: int = 64, num_heads: int = 4, depth: int = 2,
                 hidden: int | None = None, max_len: int = 64, dropout: float = 0.0, positions: str = "add",
                 pad_id: int = 0):
        super().__init__()
        if positions not in self.POSITIONS:
            raise ValueError(f"positions must be one of {self.POSITIONS}, not {positions!r}")
        self.dim, self.positions, self.pad_id, self.max_len = dim, positions, pad_id, max_len
        position_dim = dim // 2 if positions == "concat" else dim
        token_dim = dim - position_dim if positions == "concat" else dim
        self.src_embed = nn.Embedding(src_vocab, token_dim)
        self.tgt_embed = nn.Embedding(tgt_vocab, token_dim)
        self.register_buffer("position_table", sinusoidal_positional_encoding(max_len, position_dim),
                             persistent=False)
        hidden = 4 * dim if hidden is None else hidden
        self.encoder = nn.ModuleList(EncoderBlock(dim, num_heads, hidden, dropout) for _ in range(depth))
        self.decoder = nn.ModuleList(DecoderBlock(dim, num_heads, hidden, dropout) for _ in range(depth))
        self.encoder_norm, self.decoder_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.head = nn.Linear(dim, tgt_vocab)
        for table in (self.src_embed, self.tgt_embed):  # × √dim in `embed` brings them back to unit scale
            nn.init.normal_(table.weight, std=token_dim ** -0.5)

    def embed(self, tokens, table: nn.Embedding):
        """Token ids (B, N) → (B, N, dim) with positions added, concatenated, or left out."""
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"sequence of {tokens.shape[1]} tokens exceeds max_len={self.max_len}; "
                             f"build the model with a larger max_len")
        x = table(tokens) * math.sqrt(table.embedding_dim)  # unit scale, like the sinusoids beside it
        position = self.position_table[: tokens.shape[1]].to(x.dtype)
        if self.positions == "add":
            return x + position
        if self.positions == "concat":
            return torch.cat([x, position.expand(len(x), -1, -1)], dim=-1)
        return x

    def encode(self, src, need_weights: bool = False):
        """src (B, Ns) → (memory (B, Ns, dim), [per-layer self-attention weights or None])."""
        x, mask, weights = self.embed(src, self.src_embed), padding_mask(src, self.pad_id), []
        for block in self.encoder:
            x, w = block(x, mask, need_weights)
            weights.append(w)
        return self.encoder_norm(x), weights

    def decode(self, memory, src, tgt_in, need_weights: bool = False):
        """Logits (B, Nt, tgt_vocab) for each next token, plus per-layer (self, cross) weights."""
        # Causal: no peeking at later outputs. Padding in tgt_in needs no mask: its positions come after
        # the real tokens, and the loss ignores them.
        self_mask = causal_mask(tgt_in.shape[1], tgt_in.device)
        memory_mask = padding_mask(src, self.pad_id)
        x, weights = self.embed(tgt_in, self.tgt_embed), []
        for block in self.decoder:
            x, w = block(x, memory, self_mask, memory_mask, need_weights)
            weights.append(w)
        return self.head(self.decoder_norm(x)), weights

    def forward(self, src, tgt_in):
        memory, _ = self.encode(src)
        return self.decode(memory, src, tgt_in)[0]


class DecoderOnlyTransformer(nn.Module):
    """A GPT-style language model: token ids (B, N) → next-token logits (B, N, vocab).

    No encoder and so no memory to read: its blocks are `EncoderBlock` (self-attention + feed-forward), run under
    the causal mask, with embeddings + sinusoids in and a LayerNorm + linear head out. ``forward(tokens,
    causal=False)`` drops the mask and the same stack reads in both directions, as BERT's encoder does: the mask
    is the whole difference between the two. (GPT learns its positions and ties the head to the embedding table;
    both are kept as in `Seq2SeqTransformer` here.)
    """

    def __init__(self, vocab: int, dim: int = 64, num_heads: int = 4, depth: int = 2, hidden: int | None = None,
                 max_len: int = 64, dropout: float = 0.0):
        super().__init__()
        self.max_len = max_len
        self.embed = nn.Embedding(vocab, dim)
        nn.init.normal_(self.embed.weight, std=dim ** -0.5)  # × √dim in forward brings it back to unit scale
        self.register_buffer("position_table", sinusoidal_positional_encoding(max_len, dim), persistent=False)
        hidden = 4 * dim if hidden is None else hidden
        self.blocks = nn.ModuleList(EncoderBlock(dim, num_heads, hidden, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, tokens, causal: bool = True):
        """tokens (B, N) → logits (B, N, vocab); with ``causal`` position i reads positions ≤ i only."""
        if tokens.dim() != 2 or tokens.shape[1] > self.max_len:
            raise ValueError(f"need token ids (batch, length ≤ max_len={self.max_len}), got {tuple(tokens.shape)}; "
                             f"build the model with a larger max_len for longer sequences")
        x = self.embed(tokens) * math.sqrt(self.embed.embedding_dim)
        x = x + self.position_table[: tokens.shape[1]].to(x.dtype)
        mask = causal_mask(tokens.shape[1], tokens.device) if causal else None
        for block in self.blocks:
            x, _ = block(x, mask)
        return self.head(self.norm(x))
