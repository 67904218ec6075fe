# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 3a — Attention from scratch and the encoder–decoder Transformer
#
# A convolution mixes a pixel with its fixed neighbours; an RNN squeezes a whole sentence through one hidden
# state. **Attention** lets every position *choose*, from the input itself, which other positions to read:
# each token emits a query ("what I am looking for"), every token a key ("what I contain") and a value ("what
# I hand over"); a token's output is the average of the values, weighted by how well its query matches each
# key. Stack that with feed-forward layers, residuals and LayerNorm, add positions, and you have the
# Transformer (Vaswani et al., 2017) — the block that Chapter 3b turns into ViT and Swin.
#
# The plan: write scaled dot-product and multi-head attention by hand and check them against PyTorch; see why
# we divide by √d_k; draw the padding and causal masks; build sinusoidal positions; train an encoder–decoder
# Transformer to **reverse digit strings** and an LSTM encoder–decoder on the same task; look at the learned
# attention; time the teaching path against the fused kernel; weigh the feed-forward block and the embedding table.
# Then, where this chapter's time budget has room, the image-side experiments Chapter 3b refers to: PoolFormer and a
# hybrid CNN stem against the ViT, SETR against Swin for segmentation, and MAE pre-training. Code:
# `utils/models/transformer.py` (the blocks), `utils/seq2seq.py` (the task, decoding, the LSTM), `utils/models/vit.py`,
# `utils/models/swin.py` and `utils/models/mae.py` (the image models) — open them beside this notebook.

# %%
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from utils import data, exercises, segmentation as seg, seq2seq, start_chapter
from utils.models import transformer as transformer_blocks
from utils.models.transformer import (DecoderBlock, DecoderOnlyTransformer, EncoderBlock, MultiHeadAttention,
                                      Seq2SeqTransformer, causal_mask, padding_mask, sinusoidal_positional_encoding)
from utils.models.mae import MaskedAutoencoder, linear_probe, patchify, random_masking, unpatchify
from utils.models.swin import SwinSegmenter
from utils.models.vit import SETR, ViT
from utils.diagrams import architecture_figure
from utils.measuring import count_flops, count_parameters
from utils.plotting import comparison_chart, labelled_grid, show
from utils.results import report
from utils.runtime import pick, profile
from utils.scenes import fashion_scenes
from utils.seq2seq import (DIGIT_OFFSET, PAD, VOCAB_SIZE, LSTMSeq2Seq, accuracy_by_length, attention_explorer,
                           decode_digits, encode_digits, evaluate_seq2seq, greedy_decode, make_loader, mask_figure,
                           reversal_dataset, teacher_forcing_loss, token_labels, tokens_per_second)
from utils.training import evaluate, fit

device = start_chapter("03a_attention_and_transformer")
if device.type == "cpu":
    torch.set_num_threads(1)  # these models are tiny: one thread beats the cost of synchronising several

# %% [markdown]
# ## Settings for this profile
# `smoke` proves the notebook runs (short strings, a few epochs), `cpu` reaches a real result in minutes,
# `gpu` is the full run with the target (≥ 99 % of strings reversed exactly).

# %%
MIN_LEN = 2                                       # length 1 is its own reversal
MAX_LEN = pick(smoke=5, cpu=10, gpu=16)            # strings of MIN_LEN..MAX_LEN digits
TRAIN_SIZE = pick(smoke=1_536, cpu=12_000, gpu=100_000)
VAL_SIZE = pick(smoke=200, cpu=1_000, gpu=2_000)
EPOCHS = pick(smoke=4, cpu=6, gpu=15)
BATCH = pick(smoke=64, cpu=128, gpu=512)
LR = pick(smoke=5e-3, cpu=3e-3, gpu=2e-3)
DIM, HEADS, DEPTH = pick(smoke=(32, 4, 2), cpu=(64, 4, 2), gpu=(128, 8, 3))
# Greedy exact-match accuracy the Transformer must reach (cpu measured 1.000); gpu bar held at the cpu-measured level
# until measured on a GPU.
EXACT_BAR = pick(smoke=0.5, cpu=0.95, gpu=0.95)
NO_POSITION_BAR = 0.5                             # without positions it must stay below half the bar

# %% [markdown]
# ## 1. Scaled dot-product attention, by hand
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}} + M\right) V$$
# `Q` is (…, N_q, d_k), `K` is (…, N_k, d_k), `V` is (…, N_k, d_v). `QKᵀ` holds one score per (query, key)
# pair; the softmax turns each row into weights that sum to 1; the output row is the weighted mean of the value
# rows. The mask `M` is 0 where a key may be read and −∞ where not (we also accept booleans, True = allowed).
# Our explicit version must agree with PyTorch's fused `F.scaled_dot_product_attention`.

# %%
q, k, v = torch.randn(2, 5, 8), torch.randn(2, 7, 8), torch.randn(2, 7, 3)
allowed = torch.rand(2, 5, 7) > 0.3
allowed[..., 0] = True                                   # every query keeps at least one key
out, weights = transformer_blocks.scaled_dot_product_attention(q, k, v, allowed)
print("q", tuple(q.shape), "k", tuple(k.shape), "v", tuple(v.shape), "→ out", tuple(out.shape),
      "weights", tuple(weights.shape))
assert out.shape == (2, 5, 3) and weights.shape == (2, 5, 7), (
    f"attention should give 2×5×3 outputs and 2×5×7 weights, got {tuple(out.shape)} and {tuple(weights.shape)}")
torch.testing.assert_close(weights.sum(-1), torch.ones(2, 5))
assert (weights[~allowed] == 0).all(), "a masked key must get exactly zero weight"
torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=allowed))
additive = torch.zeros(2, 5, 7).masked_fill(~allowed, float("-inf"))
torch.testing.assert_close(transformer_blocks.scaled_dot_product_attention(q, k, v, additive)[0], out)
torch.testing.assert_close(transformer_blocks.scaled_dot_product_attention(q, k, v)[0],
                           F.scaled_dot_product_attention(q, k, v))
print("explicit attention == F.scaled_dot_product_attention (boolean mask, additive mask, no mask)")


# %% [markdown]
# **Exercise.** In the exercise version of this notebook (`make exercises`) the cell below keeps only the signature
# and hints of `scaled_dot_product_attention`: write it, and the self-check compares it with
# `F.scaled_dot_product_attention`, with and without a causal mask.

# %% tags=["exercise"]
def scaled_dot_product_attention(q, k, v, mask=None):
    """softmax(Q Kᵀ / √d_k) V in PyTorch: q, k, v …×L×d; mask L×L bool or None, True where attention is
    allowed.

    Hints: scores = q @ k.transpose(-2, -1) / sqrt(d_k); scores.masked_fill(~mask, float("-inf")) blocks the
    masked keys before the softmax over the last axis.
    """
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


# %% tags=["self-check"]
scaled_dot_product_attention = exercises.check("scaled_dot_product_attention", scaled_dot_product_attention)


# %% [markdown]
# ## 2. Why divide by √d_k — the softmax-saturation experiment
# If the entries of q and k are independent with mean 0 and variance 1, the dot product q·k is a sum of d_k
# such products: its variance is **d_k**. With d_k = 512 the logits are spread over ±50, the softmax puts
# almost all its weight on one key (a hard arg-max), and its gradient — `diag(p) − ppᵀ` — is almost zero, so
# the queries and keys stop learning. Dividing by √d_k brings the variance back to 1 whatever the head width.

# %%
def saturation(dim: int, scaled: bool, queries: int = 256, keys: int = 16):
    """Std of the logits, mean largest softmax weight, mean gradient norm of softmax w.r.t. the logits."""
    q, k = torch.randn(queries, dim), torch.randn(keys, dim)
    logits = (q @ k.T / (math.sqrt(dim) if scaled else 1.0)).requires_grad_()
    p = logits.softmax(-1)
    jacobian = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]      # ∂p/∂logits, (queries, keys, keys)
    return logits.std().item(), p.max(-1).values.mean().item(), jacobian.norm(dim=(1, 2)).mean().item()


head_dims = [4, 16, 64, 256, 1024]
results = {scaled: [saturation(d, scaled) for d in head_dims] for scaled in (False, True)}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
for scaled, rows in results.items():
    label = "QKᵀ/√d_k" if scaled else "QKᵀ (unscaled)"
    for ax, values, title in zip(axes, zip(*rows), ["std of the logits", "mean largest softmax weight",
                                                   "softmax gradient norm"]):
        ax.plot(head_dims, values, marker="o", label=label)
        ax.set(xscale="log", xlabel="d_k", title=title)
axes[0].set_yscale("log")
axes[0].legend()
fig.suptitle("Without the √d_k the softmax saturates and its gradient vanishes")
fig.tight_layout()
show(fig)
for d, (unscaled, scaled) in zip(head_dims, zip(results[False], results[True])):
    print(f"d_k={d:5d}  unscaled: std {unscaled[0]:6.1f} max-weight {unscaled[1]:.2f} grad {unscaled[2]:.3f}"
          f"   scaled: std {scaled[0]:.2f} max-weight {scaled[1]:.2f} grad {scaled[2]:.3f}")
assert all(0.8 < row[0] < 1.2 for row in results[True]), "scaled logits keep unit variance"
assert results[False][-1][1] > 0.9 and results[True][-1][1] < 0.5, "unscaled softmax is a near one-hot"
assert results[False][-1][2] < 0.2 * results[True][-1][2], "and its gradient has (almost) vanished"

# %% [markdown]
# ## 3. Multi-head attention, every shape printed
# One attention computes one weighted average per query — one "way of looking". **Multi-head** attention
# runs `h` smaller attentions in parallel, each with its own learned projections into a `dim/h`-wide
# subspace, so one head can track the previous token while another matches content, at the cost of a single
# full-width head. The steps, as in `MultiHeadAttention.forward`:
#
# 1. project: `Q = x W_q`, `K = x W_k`, `V = x W_v` (one fused (3·dim)×dim matrix) — (B, N, dim) each;
# 2. split heads: (B, N, dim) → (B, N, h, dim/h) → (B, h, N, dim/h);
# 3. attend per head: weights (B, h, N_q, N_k), output (B, h, N_q, dim/h);
# 4. concatenate heads: → (B, N_q, dim); 5. output projection `W_o`: → (B, N_q, dim).

# %%
B, N, dim, heads = 2, 6, 32, 4
mha = MultiHeadAttention(dim, heads)
x = torch.randn(B, N, dim)
print(f"x                       {tuple(x.shape)}")
q, k, v = mha.qkv(x).chunk(3, dim=-1)
print(f"Q, K, V after projection {tuple(q.shape)} each")
q, k, v = (t.view(B, N, heads, dim // heads).transpose(1, 2) for t in (q, k, v))
print(f"Q, K, V split into heads {tuple(q.shape)} = (B, heads, N, dim/heads)")
logits = q @ k.transpose(-2, -1) / math.sqrt(dim // heads)
print(f"QKᵀ/√d_k                 {tuple(logits.shape)} = (B, heads, N_q, N_k)")
per_head = logits.softmax(-1) @ v
print(f"softmax(·) V             {tuple(per_head.shape)}")
concatenated = per_head.transpose(1, 2).reshape(B, N, dim)
print(f"heads concatenated       {tuple(concatenated.shape)}")
by_hand = mha.proj(concatenated)
print(f"output projection        {tuple(by_hand.shape)}")

out_explicit, weights = mha(x, need_weights=True)
out_fused, no_weights = mha(x)
torch.testing.assert_close(by_hand, out_explicit)
torch.testing.assert_close(out_explicit, out_fused)
assert weights.shape == (B, heads, N, N) and no_weights is None, (
    "the explicit path should return per-head B×heads×N×N weights, the SDPA path none")
assert count_parameters(mha) == 4 * dim * dim + 4 * dim, (  # W_q, W_k, W_v, W_o + biases
    "multi-head attention should hold W_q, W_k, W_v, W_o and their biases: 4·d² + 4·d parameters")
print("by hand == MultiHeadAttention (explicit path) == MultiHeadAttention (SDPA path)")

# %% [markdown]
# The same numbers as `torch.nn.MultiheadAttention` once it holds our weights: its `in_proj_weight` is our
# fused `qkv.weight` (Q, K, V stacked) and its `out_proj` our `proj`. We check self-attention with a padding
# mask (note PyTorch's `key_padding_mask` is True where a key is *blocked*, the opposite of ours), the
# per-head weights, and cross-attention (queries from one sequence, keys and values from another).

# %%
reference = nn.MultiheadAttention(dim, heads, batch_first=True)
with torch.no_grad():
    reference.in_proj_weight.copy_(mha.qkv.weight)
    reference.in_proj_bias.copy_(mha.qkv.bias)
    reference.out_proj.weight.copy_(mha.proj.weight)
    reference.out_proj.bias.copy_(mha.proj.bias)
tokens = encode_digits(["123456", "7890"])                 # the second sentence has 2 padding positions
keep = padding_mask(tokens)                                # (B, 1, 1, N): True at real tokens
ours, our_weights = mha(x, mask=keep, need_weights=True)
theirs, their_weights = reference(x, x, x, key_padding_mask=~keep[:, 0, 0], average_attn_weights=False)
torch.testing.assert_close(ours, theirs)
torch.testing.assert_close(our_weights, their_weights)
queries = torch.randn(B, 3, dim)
torch.testing.assert_close(mha(queries, x, x, mask=keep)[0],
                           reference(queries, x, x, key_padding_mask=~keep[:, 0, 0])[0])
print("MultiHeadAttention == nn.MultiheadAttention: self-attention with padding, per-head weights, cross-attention")

# %%
# Heads split the width: h heads of dim/h channels each, and the same 4·d² + 4·d parameters for any h.
with torch.random.fork_rng(devices=[]):                          # leave the chapter's random stream alone
    split_by = {count: MultiHeadAttention(dim, count) for count in (1, 2, 4, 8)}
for head_count, split_attention in split_by.items():
    head_queries = split_attention.project(x, None, None)[0]
    assert head_queries.shape == (B, head_count, N, dim // head_count), (
        f"{head_count} heads should get {dim // head_count} of {dim} channels each, got {tuple(head_queries.shape)}")
    assert count_parameters(split_attention) == 4 * dim * dim + 4 * dim, (
        f"{head_count} heads: 4·d² + 4·d parameters expected, got {count_parameters(split_attention)}")
try:
    MultiHeadAttention(dim, 3)                                   # 3 does not divide 32
except ValueError as error:
    print(f"1, 2, 4 and 8 heads on {dim} channels: the same parameters; 3 heads → {error}")
else:
    raise AssertionError(f"MultiHeadAttention({dim}, 3) should refuse: 3 heads cannot share {dim} channels evenly")


# %% [markdown]
# **Exercise.** In the exercise version of this notebook the cell below keeps only the signature and hints of
# `multi_head_attention`, the five steps above as one function of the weights: write it, and the self-check
# compares it with torch's `F.multi_head_attention_forward`.

# %% tags=["exercise"]
def multi_head_attention(x, w_qkv, b_qkv, w_out, b_out, heads):
    """Multi-head self-attention in PyTorch, no mask: x B×N×dim → B×N×dim. w_qkv (3·dim)×dim and b_qkv 3·dim
    project x to Q, K and V (stacked in that order, as nn.MultiheadAttention's in_proj); w_out dim×dim and b_out
    dim project the concatenated heads back.

    Hints: q, k, v = (x @ w_qkvᵀ + b_qkv).chunk(3, dim=-1); split each into heads with
    .view(B, N, heads, dim // heads).transpose(1, 2); softmax(q kᵀ / √(dim/heads)) v per head; transpose back,
    reshape to B×N×dim, then x @ w_outᵀ + b_out.
    """
    batch, tokens, dim = x.shape
    q, k, v = (x @ w_qkv.T + b_qkv).chunk(3, dim=-1)
    q, k, v = (t.view(batch, tokens, heads, dim // heads).transpose(1, 2) for t in (q, k, v))
    weights = (q @ k.transpose(-2, -1) / (dim // heads) ** 0.5).softmax(-1)
    concatenated = (weights @ v).transpose(1, 2).reshape(batch, tokens, dim)
    return concatenated @ w_out.T + b_out


# %% tags=["self-check"]
multi_head_attention = exercises.check("multi_head_attention", multi_head_attention)

# %% [markdown]
# ## 4. Masks: padding vs causal
# * **Padding mask** — sentences in a batch have different lengths, so short ones are filled with a padding
#   token. No query may attend to padding: the mask is per *key*, shape (B, 1, 1, N_k), broadcast over heads
#   and queries. It is used in the encoder and in the decoder's cross-attention.
# * **Causal (sequence) mask** — in the decoder, position i predicts token i+1, so it must not see tokens
#   after i: a lower-triangular (N, N) mask, the same for every sentence. With it one forward pass trains all
#   positions at once (*teacher forcing*) without cheating.

# %%
examples = encode_digits(["31415", "27", "1618", "4"])
show(mask_figure(examples, tgt_len=6, example=2))
assert causal_mask(4).tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], (
    "the causal mask should be lower-triangular: position i sees 0..i")
assert padding_mask(examples)[:, 0, 0].sum(1).tolist() == [5, 2, 4, 1], (
    "the padding mask should keep exactly the 5, 2, 4 and 1 real tokens")

# %% [markdown]
# The causal mask really blocks the future: change the last tokens of a sequence and the decoder block's
# outputs at earlier positions do not move; without the mask they do.

# %%
block = DecoderBlock(dim, heads, 4 * dim).eval()
memory = torch.randn(1, 5, dim)
prefix = torch.randn(1, 6, dim)
changed = prefix.clone()
changed[:, 4:] = torch.randn(1, 2, dim)                         # new tokens at positions 4 and 5
with torch.no_grad():
    masked = [block(s, memory, causal_mask(6))[0] for s in (prefix, changed)]
    unmasked = [block(s, memory)[0] for s in (prefix, changed)]
torch.testing.assert_close(masked[0][:, :4], masked[1][:, :4])
assert not torch.allclose(unmasked[0][:, :4], unmasked[1][:, :4]), "without the mask the past sees the future"
print("causal mask: positions 0-3 unchanged when positions 4-5 change")

# %%
# The causal mask goes on the scores, before the softmax; zeroing the future values after it is not the same.
with torch.random.fork_rng(devices=[]):
    torch.manual_seed(0)
    step_q, step_k, step_v = torch.randn(3, 6, 8).unbind(0)
causal_out, causal_weights = transformer_blocks.scaled_dot_product_attention(step_q, step_k, step_v, causal_mask(6))
assert (causal_weights.triu(1) == 0).all(), "masked scores should give the future keys exactly zero weight"
torch.testing.assert_close(causal_weights.sum(-1), torch.ones(6))         # renormalised over the past
past_share = (step_q @ step_k.T / math.sqrt(8)).softmax(-1) * causal_mask(6)   # softmax first, then the mask
assert not torch.allclose(past_share @ step_v, causal_out, atol=1e-3), (
    "zeroing the future after the softmax should differ from masking the scores before it")
print("masked after the softmax, the weights left on the past sum to",
      [round(share, 2) for share in past_share.sum(-1).tolist()], "instead of 1")

# %% [markdown]
# ## 5. Sinusoidal positional encoding
# Attention is **permutation-equivariant**: shuffle the input tokens and the outputs shuffle the same way —
# it has no idea of order. So we add a position signal to each token embedding:
# $PE_{pos, 2i} = \sin(pos / 10000^{2i/d})$ on the **even** dimensions, $PE_{pos, 2i+1} = \cos(\cdot)$ of the
# same angle on the **odd** ones. Each (sin, cos) pair is a clock turning at its own speed, from fast (the
# first dimensions) to very slow (the last); together they give every position a unique code, bounded in
# [−1, 1], defined for any length, and $PE_{pos+k}$ is a fixed *rotation* of $PE_{pos}$ — relative offsets
# are a linear function the attention can learn.

# %%
encoder_block = EncoderBlock(dim, heads, 4 * dim).eval()
order = torch.randperm(N)
with torch.no_grad():
    torch.testing.assert_close(encoder_block(x)[0][:, order], encoder_block(x[:, order])[0])
print("no positions: permuting the input only permutes the output (attention cannot see order)")

pe = sinusoidal_positional_encoding(64, 64)
positions = torch.arange(64.0)
torch.testing.assert_close(pe[:, 0], torch.sin(positions))              # dim 0: sin, fastest clock
torch.testing.assert_close(pe[:, 1], torch.cos(positions))              # dim 1: cos of the same angle
offset, pair = 3, 5                                                     # dims 10, 11 turn at angle w per step
w = 10000 ** (-2 * pair / 64)
rotation = torch.tensor([[math.cos(offset * w), -math.sin(offset * w)], [math.sin(offset * w), math.cos(offset * w)]])
torch.testing.assert_close(pe[:-offset, 2 * pair: 2 * pair + 2] @ rotation, pe[offset:, 2 * pair: 2 * pair + 2],
                           atol=1e-5, rtol=1e-4)
fig, (ax_map, ax_curves) = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
drawn = ax_map.imshow(pe.T.numpy(), cmap="RdBu", aspect="auto", vmin=-1, vmax=1)
fig.colorbar(drawn, ax=ax_map, label="PE value")
ax_map.set(title="PE: dimension × position", xlabel="position", ylabel="dimension")
for d in (0, 1, 10, 11, 40):
    ax_curves.plot(pe[:, d].numpy(), label=f"dim {d} ({'sin' if d % 2 == 0 else 'cos'})")
ax_curves.set(title="a few dimensions: fast clocks first, slow last", xlabel="position", ylabel="PE value")
ax_curves.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
show(fig)

# %% [markdown]
# **Added or concatenated?** Concatenating keeps content and position apart but spends dimensions on
# position (or widens the model); adding costs nothing, and because token embeddings and sinusoids live in
# nearly orthogonal directions of a high-dimensional space, the projections `W_q`, `W_k` can still pull them
# apart. We compare both — and no positions at all — on the task below.
#
# ## 6. The task: reverse a digit string
# `"4071" → "1704"`. The source is the digits, right-padded; the target is `<s>`, the reversed digits, `</s>`.
# Output position j must read input position L−1−j — far away at the ends of the string, a different place
# for every length.

# %%
train_src, train_tgt = reversal_dataset(TRAIN_SIZE, MIN_LEN, MAX_LEN, seed=1)
val_src, val_tgt = reversal_dataset(VAL_SIZE, MIN_LEN, MAX_LEN, seed=2)
for s, t in zip(train_src[:3], train_tgt[:3]):
    print(" ".join(token_labels(s)), "  →  ", " ".join(token_labels(t)))
assert [d[::-1] for d in decode_digits(train_src[:100])] == decode_digits(train_tgt[:100]), (
    "every target should be its source reversed")
assert decode_digits(encode_digits(["4071", "99"])) == ["4071", "99"], "decoding should invert encoding"
train_loader = make_loader(train_src, train_tgt, BATCH, shuffle=True, device=device)
val_loader = make_loader(val_src, val_tgt, 500, device=device)
print(f"{TRAIN_SIZE} training strings, {VAL_SIZE} validation strings, lengths {MIN_LEN}..{MAX_LEN}")

# %% [markdown]
# ## 7. The Transformer, end to end
# `Seq2SeqTransformer` (read it in `utils/models/transformer.py`):
#
# 1. **embeddings** of the source and target tokens, × √dim, **+ sinusoidal positions**;
# 2. **encoder** × depth: `x + SelfAttention(LN(x))` (padding mask), then `x + FeedForward(LN(x))`;
# 3. **decoder** × depth: masked (causal) self-attention over the output written so far, then
#    **cross-attention** — queries from the decoder, keys and values from the encoder's output — then the
#    feed-forward; each with a residual and LayerNorm (*add & norm*);
# 4. **output projection** to the vocabulary; softmax + cross-entropy against the next token (*loss*).
#
# The decoder needs **two attention blocks** because it has two questions: "what have I written so far?"
# (self-attention, causal) and "which part of the input do I need now?" (cross-attention, the only path
# from the source to the output). We use the *pre-norm* arrangement (LN inside the residual branch), which
# trains stably without warm-up tricks; the 2017 paper normalised after the addition (post-norm).

# %%
def transformer(positions: str = "add") -> Seq2SeqTransformer:
    return Seq2SeqTransformer(VOCAB_SIZE, VOCAB_SIZE, dim=DIM, num_heads=HEADS, depth=DEPTH,
                              max_len=MAX_LEN + 2, positions=positions).to(device)


model = transformer()
src, tgt = train_src[:4].to(device), train_tgt[:4].to(device)
with torch.no_grad():
    embedded = model.embed(src, model.src_embed)
    memory, _ = model.encode(src)
    logits, _ = model.decode(memory, src, tgt[:, :-1])
print(f"source tokens {tuple(src.shape)} → embedded + positions {tuple(embedded.shape)} → "
      f"memory {tuple(memory.shape)}")
print(f"target input {tuple(tgt[:, :-1].shape)} → logits {tuple(logits.shape)} (batch, target length, vocabulary)")
parameters = count_parameters(model)
print(f"{parameters:,} parameters")
assert memory.shape == (4, MAX_LEN, DIM) and logits.shape == (4, MAX_LEN + 1, VOCAB_SIZE), (
    f"memory should be 4×{MAX_LEN}×{DIM} and logits 4×{MAX_LEN + 1}×{VOCAB_SIZE}, "
    f"got {tuple(memory.shape)} and {tuple(logits.shape)}")
attention_params = 4 * DIM * DIM + 4 * DIM
feed_forward_params = 2 * 4 * DIM * DIM + 4 * DIM + DIM
expected = (2 * VOCAB_SIZE * DIM + DEPTH * (attention_params + feed_forward_params + 2 * 2 * DIM)
            + DEPTH * (2 * attention_params + feed_forward_params + 3 * 2 * DIM) + 2 * 2 * DIM
            + DIM * VOCAB_SIZE + VOCAB_SIZE)
assert parameters == expected, f"the Transformer should have {expected:,} parameters by the formula, got {parameters:,}"
show(architecture_figure({"Seq2SeqTransformer": (model, (src, tgt[:, :-1]))},
                         "The Transformer, traced on one batch\n(tokens × features after each block)", names=True))

# %% [markdown]
# ### The wider family: encoder-only, decoder-only, encoder–decoder
#
# The 2017 model is one of three layouts built from the same blocks. Drop the decoder and keep the encoder with no
# mask: every token reads every other, in both directions, which suits *understanding* a whole input (BERT, ViT).
# Drop the encoder instead: with nothing to cross-attend to, a "decoder" block is just an encoder block (self-attention
# and feed-forward) run under the **causal mask**, so each position sees only the tokens before it and predicts the
# next one — the layout of GPT and today's language models, trained on plain text with no source/target split. The
# encoder–decoder keeps both, joined by cross-attention, for mapping one sequence to another.
#
# | model | layout | self-attention | in → out | trained by |
# |---|---|---|---|---|
# | Transformer (Vaswani et al., 2017) | encoder–decoder | encoder both ways; decoder causal, plus cross-attention | source sentence → target sentence | translation, teacher forcing (this chapter) |
# | BERT (Devlin et al., 2018) | encoder only | both ways | text → one vector per token | masked tokens (15 %) and next-sentence prediction |
# | GPT (Radford et al., 2018; GPT-2 2019, GPT-3 2020) | decoder only | causal | text so far → next token | next-token prediction |
# | T5 (Raffel et al., 2020) | encoder–decoder | as the 2017 Transformer | text → text, every task written as text | masked spans, written out by the decoder |
# | ViT (Dosovitskiy et al., 2021) | encoder only | both ways | patches + class token → class | supervised classification (Chapter 3b) |
# | DETR (Carion et al., 2020) | CNN backbone + encoder–decoder | both ways, in the decoder too: no causal mask, all queries decoded at once | ResNet features → 100 learned object queries → boxes and classes | set loss after Hungarian matching (Chapter 4) |
# | VisTR (Wang et al., 2021) | CNN backbone + encoder–decoder | both ways, no causal mask | a clip's frame features with 3-D positions → instance queries for every frame → each instance's masks through the clip | video instance segmentation; whole instance sequences matched |
#
# (Padding masks come on top wherever inputs of different lengths or sizes share a batch.)
#
# The cell builds a decoder-only model from this chapter's `EncoderBlock`s (`DecoderOnlyTransformer`) and checks
# the claim: change the last tokens and, under the causal mask, no earlier output moves; the same stack without the
# mask (BERT's way) moves them. What the encoder–decoder adds is counted too: one cross-attention and its
# LayerNorm per decoder block.

# %%
# A decoder-only (GPT-style) model is the encoder's stack under a causal mask
with torch.random.fork_rng(devices=[]):                          # leave the chapter's random stream alone
    torch.manual_seed(0)
    gpt = DecoderOnlyTransformer(VOCAB_SIZE, dim=32, num_heads=4, depth=2).eval()
    story = torch.randint(DIGIT_OFFSET, VOCAB_SIZE, (1, 8))
rewritten = story.clone()
rewritten[0, 5:] = (story[0, 5:] - DIGIT_OFFSET + 1) % 10 + DIGIT_OFFSET    # other digits at positions 5–7
with torch.no_grad():
    causal_logits = [gpt(s) for s in (story, rewritten)]                     # GPT: position i reads 0..i
    bidirectional_logits = [gpt(s, causal=False) for s in (story, rewritten)]  # the same weights, no mask: BERT-style
assert all(type(b) is EncoderBlock for b in gpt.blocks), "a decoder-only model's blocks are encoder blocks"
torch.testing.assert_close(causal_logits[0][:, :5], causal_logits[1][:, :5])
past_moved = (bidirectional_logits[0][:, :5] - bidirectional_logits[1][:, :5]).abs().max().item()
assert past_moved > 1e-3, f"without the mask the earlier outputs should see the change, moved {past_moved:.1e}"
with torch.device("meta"):                                       # parameter counts only: no memory, no random numbers
    cross_attention = count_parameters(DecoderBlock(32, 4, 128)) - count_parameters(EncoderBlock(32, 4, 128))
assert cross_attention == 4 * 32 * 32 + 4 * 32 + 2 * 32, (
    f"a decoder block should add one attention (4d² + 4d) and a LayerNorm (2d) to an encoder block: {cross_attention}")
print(f"causal: outputs 0–4 unchanged when tokens 5–7 change; unmasked: they move by up to {past_moved:.2f}; the "
      f"encoder–decoder's decoder block adds {cross_attention:,} parameters of cross-attention (d = 32)")

# %% [markdown]
# ## 8. Training with teacher forcing, decoding greedily
# Training feeds the decoder the *true* previous tokens (`<s>`, target…) and asks for the next token at every
# position in one pass (`teacher_forcing_loss`). At test time there is no target: `greedy_decode` writes one
# token at a time, feeding back its own arg-max until `</s>`. The metric that matters is **exact match** —
# the whole string reversed correctly, by greedy decoding.

# %%
CONFIG = dict(task="reverse", max_len=MAX_LEN, train=TRAIN_SIZE, batch=BATCH)
history = fit(model, train_loader, epochs=EPOCHS, lr=LR, val_loader=val_loader, loss_fn=teacher_forcing_loss,
              evaluate_fn=evaluate_seq2seq, name="03a-transformer", config=CONFIG)
show(history.figure(f"Transformer on string reversal: training curves ({profile()} profile)"))
decoded = greedy_decode(model, val_src[:6].to(device), MAX_LEN + 1)
for s, d in zip(decode_digits(val_src[:6]), decode_digits(decoded)):
    print(f"{s:>{MAX_LEN}} → {d:<{MAX_LEN}} {'✓' if d == s[::-1] else '✗'}")
transformer_scores = evaluate_seq2seq(model, val_loader)
print(f"Transformer: exact match {transformer_scores['acc']:.3f}, token accuracy {transformer_scores['token_acc']:.3f}")
assert transformer_scores["acc"] >= EXACT_BAR, f"exact match {transformer_scores['acc']:.3f} < bar {EXACT_BAR}"
report("Transformer exact match", transformer_scores["acc"], bar=EXACT_BAR)

# %% [markdown]
# ## 9. Look inside: what the heads attend to
# For reversal, the decoder's cross-attention should trace an **anti-diagonal**: while writing output j it
# reads input L−1−j. Move the sliders to see each head, layer and kind of attention; usually one head of the
# last layer draws a clean anti-diagonal while others look elsewhere (at neighbours, at the end marker).

# %%
longest_first = (val_src != PAD).sum(1).argsort(descending=True, stable=True)
explorer = attention_explorer(model, val_src[longest_first[:12]].to(device))
show(explorer)

sample_src, sample_tgt = val_src[:200].to(device), val_tgt[:200].to(device)
lengths = (sample_src != PAD).sum(1)
out_pos = torch.arange(sample_tgt.shape[1] - 1, device=device)
mirrored = lengths[:, None] - 1 - out_pos                              # the input each output must read
valid = mirrored >= 0


def mirrored_reading(net: Seq2SeqTransformer) -> tuple[torch.Tensor, float]:
    """Per (layer, head), the fraction of outputs whose arg-max cross-attention is the mirrored input; and, averaged
    over outputs, the largest weight that any head of any layer puts on that output's mirrored input."""
    with torch.no_grad():
        memory, _ = net.encode(sample_src)
        _, decoder_weights = net.decode(memory, sample_src, sample_tgt[:, :-1], need_weights=True)
    cross = torch.stack([weights for _, weights in decoder_weights], 1).float()  # (B, layers, heads, out, in)
    on_mirrored = cross.gather(-1, mirrored.clamp(min=0)[:, None, None, :, None].expand(*cross.shape[:4], 1))[..., 0]
    hits = ((cross.argmax(-1) == mirrored[:, None, None]) & valid[:, None, None]).sum((0, 3)) / valid.sum()
    return hits.flatten().cpu(), on_mirrored.amax((1, 2))[valid].mean().item()


hits, best_weight = mirrored_reading(model)
with torch.random.fork_rng(devices=[]):
    torch.manual_seed(0)
    _, untrained_weight = mirrored_reading(transformer())
print("fraction of outputs whose arg-max cross-attention is the mirrored input, per (layer, head):",
      [f"{h:.2f}" for h in hits.tolist()])
print(f"weight the best head puts on the mirrored input, mean over outputs: {best_weight:.2f} trained, "
      f"{untrained_weight:.2f} untrained")
# Which head reads it, and whether one head serves every output position, changes with the seed, the depth and the
# profile; that, for every output, some head puts most of its weight on the mirrored input does not.
assert best_weight > 0.5 and best_weight > untrained_weight + 0.25, (
    f"for each output some head should put most weight on the mirrored input: best-head weight {best_weight:.2f} "
    f"(bar 0.5, untrained {untrained_weight:.2f} + 0.25)")

# %% [markdown]
# ## 10. Positions added vs concatenated vs none
# Same model size, same training: sinusoids **added** to full-width embeddings, **concatenated** (half the
# width for the token, half for the position), or **no positions**. Without positions the encoder cannot know
# where a digit sits — we proved above it is permutation-equivariant — so it can only guess the order (it still
# gets strings of one repeated digit, and some lucky guesses, right). Expect *added* and *concatenated* to land
# close together — which one wins varies with the seed and the budget; the gap that matters is to *none*.

# %%
position_scores = {"add": transformer_scores["acc"]}
for positions in ("concat", "none"):
    variant = transformer(positions)
    fit(variant, train_loader, epochs=EPOCHS, lr=LR, val_loader=val_loader, loss_fn=teacher_forcing_loss,
        evaluate_fn=evaluate_seq2seq, name=f"03a-positions-{positions}", config=CONFIG, plot=False)
    position_scores[positions] = evaluate_seq2seq(variant, val_loader)["acc"]
for positions, score in position_scores.items():
    print(f"positions {positions:<7} exact match {score:.3f}")
assert position_scores["none"] < NO_POSITION_BAR * min(position_scores["add"], position_scores["concat"]), (
    f"without positions exact match should stay below half that with them, got {position_scores}")

# %% [markdown]
# ## 11. The RNN way: hidden state, LSTM gates, and an LSTM encoder–decoder
# An RNN reads one token at a time and carries everything it knows in a **hidden state** `h`, updated by
# `h_t = tanh(W x_t + U h_{t-1})`: repeated multiplication by `U` makes gradients vanish or explode over long
# spans. The **LSTM** adds a cell state `c` — a conveyor belt updated *additively* — and three gates in
# (0, 1): the **forget** gate scales the old `c`, the **input** gate scales the new candidate written into
# it, the **output** gate decides how much of `tanh(c)` to show as `h`. Our `seq2seq.lstm_cell` writes one step out;
# it must equal `nn.LSTMCell`.

# %%
cell = nn.LSTMCell(5, 7)
x_t, h, c = torch.randn(3, 5), torch.randn(3, 7), torch.randn(3, 7)
torch.testing.assert_close(seq2seq.lstm_cell(x_t, h, c, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh),
                           cell(x_t, (h, c)))
print("lstm_cell == nn.LSTMCell")


# %% [markdown]
# **Exercise.** In the exercise version of this notebook the cell below keeps only the signature and hints of
# `lstm_cell`: write the step yourself, and the self-check compares it with `nn.LSTMCell`.

# %% tags=["exercise"]
def lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One LSTM step in PyTorch with nn.LSTMCell's weight layout → (h_new, c_new). x N×D, h and c N×H, w_ih 4H×D,
    w_hh 4H×H, biases 4H; the 4H rows are the gates in the order i, f, g, o.

    Hints: gates = x w_ihᵀ + b_ih + h w_hhᵀ + b_hh, split in four with .chunk(4, dim=1); i, f, o through sigmoid,
    g through tanh; c_new = f·c + i·g, h_new = o·tanh(c_new).
    """
    i, f, g, o = (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new


# %% tags=["self-check"]
lstm_cell = exercises.check("lstm_cell", lstm_cell)

# %% [markdown]
# The Sutskever-style **LSTM encoder–decoder** (`LSTMSeq2Seq`) reads the digits, and the decoder starts from
# the encoder's final `(h, c)` — the whole input squeezed into a fixed-size vector, read strictly in order.
# Attention removes that bottleneck: every output step looks at all input positions directly, at path length
# 1, and all positions are computed in parallel instead of one after another. Same data, same epochs; the
# LSTM's accuracy falls with the length of the string (in `smoke` it barely starts, in `cpu` it trails on the
# longest strings):

# %%
lstm = LSTMSeq2Seq(VOCAB_SIZE, dim=DIM, num_layers=2).to(device)
print(f"LSTM: {count_parameters(lstm):,} parameters (Transformer: {parameters:,})")
fit(lstm, train_loader, epochs=EPOCHS, lr=LR, val_loader=val_loader, loss_fn=teacher_forcing_loss,
    evaluate_fn=evaluate_seq2seq, name="03a-lstm", config=CONFIG, plot=False)
lstm_scores = evaluate_seq2seq(lstm, val_loader)
by_length = {name: accuracy_by_length(m, val_src.to(device), val_tgt.to(device))
             for name, m in (("Transformer", model), ("LSTM encoder–decoder", lstm))}
fig, ax = plt.subplots(figsize=(6, 3.2))
for name, scores in by_length.items():
    ax.plot(list(scores), list(scores.values()), marker="o", label=name)
ax.set(xlabel="string length (digits)", ylabel="exact match", ylim=(-0.02, 1.02), xticks=list(by_length["Transformer"]),
       title=f"Reversal accuracy by length ({profile()} profile)")
ax.legend()
show(fig)
print(f"exact match: Transformer {transformer_scores['acc']:.3f}, LSTM {lstm_scores['acc']:.3f}")
longest = {name: scores[MAX_LEN] for name, scores in by_length.items()}
print(f"on {MAX_LEN}-digit strings: " + ", ".join(f"{name} {score:.3f}" for name, score in longest.items()))
report("LSTM encoder–decoder exact match", lstm_scores["acc"])
# When both models solve the task (long runs), a single string decides the order: allow one string's worth of slack.
slack = {"all": 1 / len(val_src), "longest": 1 / max(1, int(((val_src != PAD).sum(1) == MAX_LEN).sum()))}
assert transformer_scores["acc"] >= lstm_scores["acc"] - slack["all"], (
    f"attention should match or beat the fixed-size bottleneck: Transformer {transformer_scores['acc']:.3f}, "
    f"LSTM {lstm_scores['acc']:.3f}")
assert longest["Transformer"] >= longest["LSTM encoder–decoder"] - slack["longest"], (
    f"above all on the longest strings ({MAX_LEN} digits): {longest}")

# %% [markdown]
# ## 12. LayerNorm, not BatchNorm
# BatchNorm normalises each feature with statistics over the **batch** (and, for sequences, over all
# positions): a token's output then depends on the other sentences in the batch, on how much padding they
# carry, and on running averages that differ between training and inference — and sequence lengths vary.
# **LayerNorm** normalises each token over its own features: no batch statistics, identical in training and
# inference, indifferent to padding and batch size. Checked: change the *other* sentences and the padding;
# LayerNorm's output for sentence 0 does not move, BatchNorm's (in training mode) does.

# %%
tokens_a = torch.randn(4, 6, dim)
tokens_b = tokens_a.clone()
tokens_b[1:] = 5 * torch.randn(3, 6, dim)                      # other sentences differ
tokens_b[0, 4:] = 0.0                                          # and sentence 0 gets padding at the end
layer_norm, batch_norm = nn.LayerNorm(dim), nn.BatchNorm1d(dim).train()
torch.testing.assert_close(layer_norm(tokens_a)[0, :4], layer_norm(tokens_b)[0, :4])
bn_a, bn_b = (batch_norm(t.transpose(1, 2)).transpose(1, 2) for t in (tokens_a, tokens_b))
assert not torch.allclose(bn_a[0, :4], bn_b[0, :4], atol=1e-3), (
    "BatchNorm's output for a token should change with the rest of the batch")
print("LayerNorm: a token's output depends on that token only; BatchNorm: on the whole batch and its padding")

# %% [markdown]
# ## 13. Speed: the teaching path vs the fused kernel (operator fusion)
# The explicit path materialises the (B, heads, N, N) weight matrix and runs matmul, scale, mask, softmax and
# matmul as separate kernels, each reading and writing memory. `F.scaled_dot_product_attention` **fuses**
# them: on a GPU, FlashAttention computes the softmax in tiles kept in on-chip memory and never writes the
# N×N matrix, so memory grows as N instead of N² and speed is bound by arithmetic, not by memory traffic.
# Same model, same batch, forward + backward, tokens per second (`tokens_per_second`):

# %%
speed_src, speed_tgt = train_src[:BATCH].to(device), train_tgt[:BATCH].to(device)
with torch.no_grad():
    memory, _ = model.encode(speed_src)
    explicit_logits = model.decode(memory, speed_src, speed_tgt[:, :-1], need_weights=True)[0]
    fused_logits = model.decode(memory, speed_src, speed_tgt[:, :-1])[0]
torch.testing.assert_close(explicit_logits, fused_logits, atol=1e-4, rtol=1e-4)
steps = pick(smoke=2, cpu=5, gpu=20)
teaching = tokens_per_second(model, speed_src, speed_tgt, need_weights=True, steps=steps)
fused = tokens_per_second(model, speed_src, speed_tgt, need_weights=False, steps=steps)
print(f"measured on {device.type} ({profile()} profile): teaching path {teaching:,.0f} tokens/s, SDPA {fused:,.0f} "
      f"tokens/s ({fused / teaching:.2f}×) — a timing, so it varies with the machine and its load")

# %% [markdown]
# ## 14. Data, model and pipeline parallelism
# **Data parallelism**: every GPU holds a full copy of the model and processes a different slice of the batch;
# after the backward pass the gradients are averaged across GPUs (all-reduce) so every copy takes the same
# step. It scales throughput, not model size (PyTorch DDP; FSDP/ZeRO also shard the optimizer state,
# gradients and weights to save memory).
#
# **Model (tensor) parallelism**: a single layer is split across GPUs — e.g. the attention heads or the
# columns of a feed-forward matrix live on different devices, each computes its part, and the partial results
# are gathered. It fits layers too big for one GPU but needs fast interconnect, since devices talk inside
# every layer.
#
# **Pipeline parallelism**: consecutive groups of layers sit on different GPUs, like stations on an assembly
# line; the batch is cut into micro-batches so that GPU 2 works on micro-batch 1 while GPU 1 starts
# micro-batch 2. It fits deep models with little communication (only activations at stage boundaries), at
# the cost of "bubbles" of idle time at the start and end of each batch.
#
# **Operator fusion** (for fast inference): merge several small operations into one kernel so intermediate
# results stay in registers/on-chip memory instead of round-tripping through GPU memory — attention
# (FlashAttention, above), bias + activation, LayerNorm, or a convolution with the BatchNorm that follows it
# folded into its weights. `torch.compile` and TensorRT do much of this automatically.

# %% [markdown]
# ## 15. The feed-forward block: expand ×4, compress
# Attention *moves* information between tokens, but it is linear in the values: each output is a weighted mean of
# projected inputs. The **position-wise feed-forward network** (FFN) is where each token is *transformed*, alone:
# `Linear(d → 4d)`, GELU, `Linear(4d → d)` — expand into a wide space where a non-linearity can carve features, then
# compress back to the residual stream's width. The same two matrices act on every token. It holds most of a block's
# parameters and, for short sequences, most of its arithmetic. Below: the share computed from our model (parameters)
# and counted by `FlopCounterMode` (multiply-adds of one encoder block, against the formulas 4Nd² + 2N²d for attention
# and 8Nd² for the FFN); then the same Transformer trained with its FFNs removed (`hidden=0`: attention-only blocks).

# %%
ffn = model.encoder[0].ffn
assert (ffn.fc1.in_features, ffn.fc1.out_features, ffn.fc2.out_features) == (DIM, 4 * DIM, DIM), (
    f"the FFN should expand {DIM} → {4 * DIM} and compress back to {DIM}")
block_parameters = {name: count_parameters(part)
                    for name, part in (("attention", model.encoder[0].attn), ("feed-forward", ffn),
                                       ("LayerNorms", nn.ModuleList([model.encoder[0].norm1, model.encoder[0].norm2])))}
ffn_parameter_share = block_parameters["feed-forward"] / sum(block_parameters.values())
assert block_parameters["feed-forward"] == 8 * DIM * DIM + 5 * DIM, "FFN: 2·(d·4d) weights + 4d + d biases"
print(f"parameters of one encoder block: {block_parameters} → FFN {ffn_parameter_share:.0%}")
assert ffn_parameter_share > 0.6, f"the FFN should hold about two thirds of a block's parameters: {ffn_parameter_share:.2f}"


# %%
def block_multiply_adds(tokens: int) -> dict:
    """Multiply-adds of one encoder block on `tokens` tokens, counted by FlopCounterMode (explicit attention path)."""
    block, x = model.encoder[0], torch.randn(1, tokens, DIM, device=device)
    return {"attention": count_flops(lambda: block.attn(block.norm1(x), need_weights=True)) // 2,
            "feed-forward": count_flops(lambda: block.ffn(block.norm2(x))) // 2}


for tokens in (MAX_LEN, 256):
    counted = block_multiply_adds(tokens)
    expected = {"attention": 4 * tokens * DIM ** 2 + 2 * tokens ** 2 * DIM, "feed-forward": 8 * tokens * DIM ** 2}
    assert counted == expected, f"{tokens} tokens: counted {counted}, formula {expected}"
    print(f"{tokens:4d} tokens: FFN = {counted['feed-forward'] / sum(counted.values()):.0%} of the block's "
          f"multiply-adds ({counted['feed-forward']:,} of {sum(counted.values()):,})")

# %%
attention_only = Seq2SeqTransformer(VOCAB_SIZE, VOCAB_SIZE, dim=DIM, num_heads=HEADS, depth=DEPTH, hidden=0,
                                    max_len=MAX_LEN + 2).to(device)
fit(attention_only, train_loader, epochs=EPOCHS, lr=LR, val_loader=val_loader, loss_fn=teacher_forcing_loss,
    evaluate_fn=evaluate_seq2seq, name="03a-attention-only", config=CONFIG, plot=False)

# %%
ffn_ablation = {"with FFN": (parameters, transformer_scores),
                "attention only": (count_parameters(attention_only),
                                   evaluate_seq2seq(attention_only, val_loader))}
for name, (count, scores) in ffn_ablation.items():
    print(f"{name:15s} {count:7,} parameters: exact match {scores['acc']:.3f}, token accuracy "
          f"{scores['token_acc']:.3f}, validation loss {scores['loss']:.4f}")
removed = parameters - ffn_ablation["attention only"][0]
assert removed == 2 * DEPTH * (8 * DIM * DIM + 5 * DIM + 2 * DIM), (  # each block's FFN and the LayerNorm before it
    f"removing the FFNs should remove {2 * DEPTH} × (8d² + 7d) parameters, removed {removed:,}")
change = ffn_ablation["attention only"][1]["acc"] - transformer_scores["acc"]
loss_ratio = ffn_ablation["attention only"][1]["loss"] / transformer_scores["loss"]
print(f"without its FFNs the Transformer keeps {1 - removed / parameters:.0%} of its parameters; its exact match "
      f"changes by {change:+.3f} and its validation loss is {loss_ratio:.1f}× that with FFNs ({profile()} profile). "
      f"Reversal is mostly routing — attention's job — so the FFNs show in how far the same schedule gets, not in "
      f"whether the task can be solved")
# %% [markdown]
# ## 16. Word embeddings vs one-hot
# A token id could enter the network as a **one-hot** vector: V wide (the vocabulary size), all zeros but a 1. Two
# problems: it is as wide as the vocabulary (50 000 for a word-level English model), and every pair of tokens is
# equally far apart — the cosine similarity of two different one-hots is exactly 0, so "cat" is no closer to "dog"
# than to "carburettor". An **embedding** `nn.Embedding(V, d)` is a learned V×d table; looking up row i is *exactly*
# the one-hot vector times that matrix — the same linear layer, without the V-wide multiplication — and its d-wide
# rows can move closer or apart as training finds useful. (In language models, words used in similar contexts end up
# with similar rows; in our reversal task the ten digits are interchangeable symbols, so nothing pulls two of them
# together — the heat map below shows what training did.)

# %%
table = model.src_embed
ids = val_src[:4].to(device)
one_hot = F.one_hot(ids, VOCAB_SIZE).float()                               # (4, N, V)
torch.testing.assert_close(table(ids), one_hot @ table.weight)
print(f"nn.Embedding({VOCAB_SIZE}, {table.embedding_dim}) lookup == one_hot({tuple(one_hot.shape)}) @ "
      f"weight{tuple(table.weight.shape)}")
digits = torch.arange(DIGIT_OFFSET, DIGIT_OFFSET + 10, device=device)
one_hot_similarity = F.cosine_similarity(F.one_hot(digits, VOCAB_SIZE).float()[:, None],
                                         F.one_hot(digits, VOCAB_SIZE).float()[None], dim=-1)
learned = table(digits).detach()
learned_similarity = F.cosine_similarity(learned[:, None], learned[None], dim=-1)
assert torch.equal(one_hot_similarity, torch.eye(10, device=device)), "distinct one-hot vectors are orthogonal"
off_diagonal = learned_similarity[~torch.eye(10, dtype=torch.bool, device=device)]
assert off_diagonal.abs().max() > 0.01, "learned embeddings have graded similarities, one-hots do not"
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
for ax, similarity, title in ((axes[0], one_hot_similarity, f"one-hot (width {VOCAB_SIZE})"),
                              (axes[1], learned_similarity, f"learned embedding (width {DIM}), trained")):
    image = ax.imshow(similarity.cpu(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set(title=title, xlabel="digit", ylabel="digit", xticks=range(10), yticks=range(10))
fig.colorbar(image, ax=axes, label="cosine similarity")
show(fig)
closest = divmod(int(torch.where(torch.eye(10, dtype=torch.bool, device=device), -2.0, learned_similarity).argmax()), 10)
print(f"one-hot: every pair of digits at cosine 0; learned: cosines from {off_diagonal.min():.2f} to "
      f"{off_diagonal.max():.2f} (mean |cos| {off_diagonal.abs().mean():.2f}), the closest pair {closest[0]} and "
      f"{closest[1]}")

# %% [markdown]
# ## 17. Image tokens: the token mixer and the stem, trained (Chapter 3b's ViT variants)
# Chapter 3b turns images into tokens (the Vision Transformer). Two of its questions are answered here, where the
# chapter's time budget has room to train: small ViTs on Fashion-MNIST (`utils/models/vit.py`), 28×28 images in a 7×7
# grid of tokens, the same width, depth, data and schedule for every model; only one part changes at a time.
#
# * **Is attention the important part?** PoolFormer (Yu et al., 2022, the *MetaFormer* paper) keeps the block's
#   skeleton — norm, token mixer, residual, norm, MLP, residual — and replaces attention with a parameter-free 3×3
#   **average pooling** over the token grid (minus the token itself): `ViT(mixer="pool")`. It has no position
#   embedding; pooling knows the neighbours.
# * **Tokens from pixels or from a CNN?** The ViT paper's **hybrid**: a small CNN stem (two stride-2 3×3
#   convolutions with BatchNorm and ReLU, then a 1×1 projection) replaces the single 4×4 patch projection; each cell
#   of its 7×7 feature map becomes a token (`ViT(stem="conv")`). The CNN gives the first layers locality and
#   translation equivariance; the Transformer mixes globally afterwards.

# %%
IMAGE_TRAIN = pick(smoke=1_000, cpu=10_000, gpu=None)
IMAGE_TEST = pick(smoke=500, cpu=2_000, gpu=None)
IMAGE_EPOCHS = pick(smoke=2, cpu=5, gpu=20)
IMAGE_VIT = pick(smoke=dict(dim=32, depth=2, num_heads=4), cpu=dict(dim=48, depth=3, num_heads=4),
                 gpu=dict(dim=128, depth=6, num_heads=4))
IMAGE_LR, IMAGE_BATCH = 3e-3, pick(smoke=64, cpu=128, gpu=256)
fashion_train = data.subset(*data.fashion_mnist("train"), IMAGE_TRAIN)
fashion_test = data.subset(*data.fashion_mnist("test"), IMAGE_TEST)
image_loader = data.DeviceLoader(*fashion_train, IMAGE_BATCH, shuffle=True, device=device)
image_test_loader = data.DeviceLoader(*fashion_test, 500, device=device)
IMAGE_CONFIG = dict(train=IMAGE_TRAIN, **IMAGE_VIT)


def train_image_model(name: str, **options) -> ViT:
    """A seeded ViT (IMAGE_VIT, global average pooling, + ``options``) trained on Fashion-MNIST by `fit`."""
    torch.manual_seed(0)
    net = ViT(**IMAGE_VIT, pool="mean", **options).to(device)
    fit(net, image_loader, epochs=IMAGE_EPOCHS, lr=IMAGE_LR, weight_decay=0.05, name=f"03a-{name}",
        config=IMAGE_CONFIG, plot=False)
    return net


def image_model_costs(net: ViT) -> tuple[int, int]:
    """(parameters, multiply-adds per 28×28 image, counted by FlopCounterMode on the explicit attention path)."""
    return count_parameters(net), count_flops(net, torch.zeros(1, 1, 28, 28, device=device), return_attention=True) // 2


# %%
image_models = {"ViT (attention, patch stem)": train_image_model("vit"),
                "PoolFormer (pooling mixer)": train_image_model("poolformer", mixer="pool", position="none"),
                "hybrid (conv stem + attention)": train_image_model("hybrid", stem="conv")}
image_results = {name: (evaluate(net, image_test_loader)["acc"], *image_model_costs(net))
                 for name, net in image_models.items()}
print(f"{'model':32s} {'test accuracy':>13s} {'parameters':>11s} {'multiply-adds':>14s}")
for name, (accuracy, count, multiply_adds) in image_results.items():
    print(f"{name:32s} {accuracy:13.3f} {count:11,} {multiply_adds:14,}")

# %%
show(comparison_chart({name: dict(zip(("accuracy", "parameters", "multiply-adds"), result))
                       for name, result in image_results.items()},
                      {"accuracy": "test accuracy", "parameters": "parameters",
                       "multiply-adds": "multiply-adds per image"},
                      f"Same width, depth, data and schedule ({profile()} profile, {IMAGE_TRAIN or 60_000} images, "
                      f"{IMAGE_EPOCHS} epochs)", best={"accuracy": "max", "parameters": "min", "multiply-adds": "min"},
                      width=12))

# %%
vit_acc, vit_params, vit_cost = image_results["ViT (attention, patch stem)"]
pool_acc, pool_params, pool_cost = image_results["PoolFormer (pooling mixer)"]
hybrid_acc = image_results["hybrid (conv stem + attention)"][0]
attention_parameters = IMAGE_VIT["depth"] * (4 * IMAGE_VIT["dim"] ** 2 + 4 * IMAGE_VIT["dim"])
assert vit_params - pool_params == attention_parameters + 49 * IMAGE_VIT["dim"], (  # attention + position table
    f"PoolFormer should lack exactly the attention layers and the position table: {vit_params - pool_params}")
assert pool_cost < vit_cost, f"pooling should cost fewer multiply-adds than attention: {pool_cost:,} vs {vit_cost:,}"
print(f"PoolFormer: {pool_acc - vit_acc:+.3f} accuracy for {1 - pool_params / vit_params:.0%} fewer parameters "
      f"and {1 - pool_cost / vit_cost:.0%} fewer multiply-adds; hybrid stem: {hybrid_acc - vit_acc:+.3f} accuracy "
      f"({profile()} profile, {device.type})")
# %% [markdown]
# ## 18. Segmentation with Transformers: SETR's plain ViT vs Swin's pyramid
# To label every pixel, a Transformer's tokens must become a map again. **SETR** (Zheng et al., 2021) keeps a plain
# ViT: the patch tokens of the last block are folded back into their grid — one feature map at stride 4 here (16 in
# the paper) — and its *naive* head (1×1 conv, BN, ReLU, 1×1 conv) scores each cell, upsampled bilinearly to the
# image (`SETR`, `utils/models/vit.py`). **Swin** hands a decoder a *pyramid*: stride 2 with 2×2 patches, then
# stride 4 after patch merging; our decoder projects both stages to one width, upsamples and sums them
# (`SwinSegmenter`, `utils/models/swin.py`), so fine detail comes from the early stage and context from the late
# one. Both learn from Chapter 5's scenes (Fashion-MNIST items on a canvas, exact masks, background + 10 classes),
# at 32×32, with the same loss (cross-entropy + Dice, `utils.segmentation`), data and schedule; scored by mIoU over
# the 11 classes and by the *foreground IoU* (object vs background, whatever the class) on unseen test scenes.

# %%
SEG_SIZE, SEG_CLASSES = 32, 11
SEG_SCENES = pick(smoke=300, cpu=2_000, gpu=10_000)
SEG_TEST = pick(smoke=100, cpu=400, gpu=1_000)
SEG_EPOCHS = pick(smoke=2, cpu=6, gpu=20)
scene_options = dict(size=SEG_SIZE, min_scale=SEG_SIZE // 4, max_scale=SEG_SIZE // 2)
seg_train = fashion_scenes("train", SEG_SCENES, **scene_options).tensors()
seg_test = fashion_scenes("test", SEG_TEST, **scene_options).tensors()
seg_loader = seg.MaskLoader(*seg_train, pick(smoke=32, cpu=32, gpu=64), shuffle=True, device=device)
seg_test_loader = seg.MaskLoader(*seg_test, 100, device=device)
segmenters = {
    "SETR (ViT, one scale)": SETR(SEG_CLASSES, SEG_SIZE, patch_size=4, **IMAGE_VIT),
    "Swin (two-stage pyramid)": SwinSegmenter(SEG_CLASSES, SEG_SIZE, patch_size=2, dim=IMAGE_VIT["dim"] // 2,
                                              window_size=4, num_heads=(2, 4)),
}
probe_scene = data.standardize(seg_test[0][:2]).to(device)
for name, net in segmenters.items():
    assert net.to(device)(probe_scene).shape == (2, SEG_CLASSES, SEG_SIZE, SEG_SIZE), (
        f"{name} should score every pixel: (2, {SEG_CLASSES}, {SEG_SIZE}, {SEG_SIZE})")
with torch.no_grad():
    setr = segmenters["SETR (ViT, one scale)"]
    folded = setr.encoder.encode(probe_scene).transpose(1, 2).reshape(2, -1, SEG_SIZE // 4, SEG_SIZE // 4)
    pyramid = segmenters["Swin (two-stage pyramid)"].backbone.features(probe_scene)
print(f"SETR: {SEG_SIZE}×{SEG_SIZE} image → {(SEG_SIZE // 4) ** 2} tokens → map {tuple(folded.shape[1:])} → "
      f"×4 upsampled; Swin: pyramid {[tuple(level.shape[1:]) for level in pyramid]} (H, W, C)")

# %%
segmentation_scores = {}
for name, net in segmenters.items():
    torch.manual_seed(0)
    fit(net, seg_loader, epochs=SEG_EPOCHS, lr=IMAGE_LR, weight_decay=0.05,
        loss_fn=seg.segmentation_loss("cross_entropy+dice"), name=f"03a-seg-{name.split()[0].lower()}",
        config=dict(scenes=SEG_SCENES, **scene_options), plot=False)
    scores = seg.evaluate_segmentation(net, seg_test_loader, SEG_CLASSES)
    with torch.no_grad():
        predicted = torch.cat([net(x).argmax(1).cpu() for x, _ in seg_test_loader])
    foreground, truth = predicted > 0, seg_test[1] > 0
    scores["foreground IoU"] = ((foreground & truth).sum() / (foreground | truth).sum()).item()
    scores["parameters"] = count_parameters(net)
    segmentation_scores[name] = scores
    print(f"{name:26s} mIoU {scores['miou']:.3f}  foreground IoU {scores['foreground IoU']:.3f}  "
          f"pixel accuracy {scores['pa']:.3f}  ({scores['parameters']:,} parameters)")

# %%
(setr_name, setr_scores), (swin_name, swin_scores) = segmentation_scores.items()
print(f"Swin's pyramid vs SETR's single scale: mIoU {swin_scores['miou'] - setr_scores['miou']:+.3f}, foreground IoU "
      f"{swin_scores['foreground IoU'] - setr_scores['foreground IoU']:+.3f} ({profile()} profile, {SEG_SCENES} scenes, "
      f"{SEG_EPOCHS} epochs). At this size the order can change with the budget: the smoke run measured SETR ahead, "
      f"the cpu run (make verify, CPU) Swin, by 0.023 mIoU and 0.143 foreground IoU")
background_only = seg.segmentation_metrics(torch.zeros_like(seg_test[1]), seg_test[1], SEG_CLASSES)
for name, scores in segmentation_scores.items():
    assert scores["miou"] > background_only["miou"], (
        f"{name} should beat the all-background prediction: mIoU {scores['miou']:.3f} vs {background_only['miou']:.3f}")
# %% [markdown]
# ## 19. MAE: masked-patch pre-training, small
# A **masked autoencoder** (He et al., 2021) learns from images without labels: hide 75 % of the patches at random,
# run the ViT encoder on the **visible 25 % only** (a quarter of the tokens: cheap), then a light decoder receives
# every position — the encoded visible tokens plus a learned *mask token* at each hidden one, all with positions —
# and predicts the hidden patches' pixels; the loss is the squared error on the hidden patches alone. Hiding most of
# the image leaves no shortcut (copying a neighbour), so the encoder must learn what garments look like.
#
# Here: the section-17 ViT size, pre-trained on the same Fashion-MNIST images *without their labels*
# (`MaskedAutoencoder`, `utils/models/mae.py`), then judged by a **linear probe** — a softmax regression on the
# frozen encoder's averaged tokens — against the same encoder at its initial weights (no pre-training).

# %%
MAE_EPOCHS = pick(smoke=6, cpu=8, gpu=40)
MAE_LR = pick(smoke=3e-3, cpu=2e-3, gpu=2e-3)
torch.manual_seed(0)
mae = MaskedAutoencoder(**IMAGE_VIT, decoder_dim=32, decoder_depth=1, mask_ratio=0.75).to(device)
initial_encoder = ViT(**IMAGE_VIT, pool="mean", position="sincos").to(device)
initial_encoder.load_state_dict(mae.encoder.state_dict())                  # the encoder before pre-training
views = data.standardize(fashion_test[0][:6]).to(device)
with torch.no_grad():
    visible, mask, restore = random_masking(mae.encoder.tokens(views), 0.75, torch.Generator(device=device).manual_seed(0))
print(f"{tuple(views.shape)} images → {mae.grid[0] * mae.grid[1]} tokens → the encoder sees {visible.shape[1]}, "
      f"{int(mask[0].sum())} are hidden, the decoder sees all {mask.shape[1]}")
assert visible.shape[1] == 12 and mask.sum(1).eq(37).all(), "75 % of 49 patches hidden: 12 visible, 37 hidden"

# %%
fit(mae, image_loader, epochs=MAE_EPOCHS, lr=MAE_LR, weight_decay=0.05, loss_fn=lambda net, batch: net(batch[0])[0],
    name="03a-mae", config=dict(IMAGE_CONFIG, mask_ratio=0.75, decoder=32), plot=False)

# %%
test_images = data.standardize(fashion_test[0]).to(device)
with torch.no_grad():
    reconstruction_loss, predicted, mask = mae(test_images, torch.Generator(device=device).manual_seed(1))
    hidden_target = patchify(test_images, 4)[mask.bool()]
    mean_patch = patchify(data.standardize(fashion_train[0][:2000]).to(device), 4).mean((0, 1))
    mean_patch_loss = (hidden_target - mean_patch).square().mean().item()
print(f"hidden-patch error on test images: MAE {reconstruction_loss:.3f}, predicting the mean patch "
      f"{mean_patch_loss:.3f}")
assert reconstruction_loss < 0.8 * mean_patch_loss, (
    f"MAE should rebuild hidden patches well below the mean-patch baseline: {reconstruction_loss:.3f} vs "
    f"{mean_patch_loss:.3f}")

# %%
shown_mask = mask[:6, :, None]
masked_input = unpatchify(patchify(test_images[:6], 4) * (1 - shown_mask) + shown_mask * test_images.min(),
                          4, mae.grid)
pasted = unpatchify(patchify(test_images[:6], 4) * (1 - shown_mask) + predicted[:6] * shown_mask, 4, mae.grid)
show(labelled_grid(torch.cat([test_images[:6], masked_input, pasted])[:, 0],
                   ["original", "75 % hidden", "reconstruction"], [f"image {i + 1}" for i in range(6)],
                   "standardised pixel value", "MAE on unseen test images: the visible patches are pasted back, the "
                   "hidden ones predicted", cmap="gray", vmin=-1, vmax=2.5, size=1.3))

# %%
probe_images, probe_labels = data.standardize(fashion_train[0]).to(device), fashion_train[1].to(device)
test_labels = fashion_test[1].to(device)


def probe_accuracy(encoder: ViT) -> float:
    """Linear-probe test accuracy on the frozen encoder's averaged patch tokens (all patches visible)."""
    encoder.eval()
    with torch.no_grad():
        features = [torch.cat([encoder.encode(chunk).mean(1) for chunk in images.split(500)])
                    for images in (probe_images, test_images)]
    return linear_probe(features[0], probe_labels, features[1], test_labels)


mae_probe, initial_probe = probe_accuracy(mae.encoder), probe_accuracy(initial_encoder)
print(f"linear probe ({profile()} profile, {IMAGE_TRAIN or 60_000} images, {MAE_EPOCHS} epochs of pre-training): "
      f"MAE encoder {mae_probe:.3f}, the same encoder untrained {initial_probe:.3f} → {mae_probe - initial_probe:+.3f}")
# %% [markdown]
# ## Interview questions
#
# <details><summary>Walk through the Transformer end to end.</summary>
#
# Tokens → embeddings (× √d) + sinusoidal positions → encoder layers (multi-head self-attention with the
# padding mask, add & norm, position-wise feed-forward, add & norm) → memory. The decoder embeds the shifted
# target + positions, then per layer: causal self-attention, cross-attention over the memory, feed-forward,
# each with residual and LayerNorm → linear projection to the vocabulary → softmax → cross-entropy against the
# next token (teacher forcing); at inference, decode token by token (greedy or beam). (See cells "7. The
# Transformer, end to end" and "8. Training with teacher forcing".)
#
# </details>
#
# <details><summary>Why several heads? How are heads split, attended and concatenated, and what are the
# shapes of Q, K, V?</summary>
#
# One head gives one weighted average per query; h heads of width d/h give h different ways of looking (one
# positional, one content-based, …) at the same cost as one full-width head. x (B, N, d) → Q, K, V (B, N, d)
# → view (B, N, h, d/h) → transpose (B, h, N, d/h) → weights (B, h, N_q, N_k) → outputs (B, h, N_q, d/h) →
# transpose and reshape (B, N_q, d) → W_o. (See cell "3. Multi-head attention, every shape printed" and the
# explorer in "9. Look inside", where different heads attend to different things.)
#
# </details>
#
# <details><summary>Why divide by √d_k?</summary>
#
# With unit-variance entries, q·k has variance d_k; large logits saturate the softmax into a one-hot whose
# gradient vanishes. Dividing by √d_k restores unit variance for any head width. (See cell "2. Why divide by
# √d_k".)
#
# </details>
#
# <details><summary>What is the sinusoidal positional encoding (odd and even dimensions), and why add rather
# than concatenate?</summary>
#
# Attention is permutation-equivariant, so order must be injected. Even dimensions 2i hold
# sin(pos/10000^(2i/d)), odd ones cos of the same angle: clocks at geometric frequencies; bounded, unique
# per position, any length, and PE(pos+k) is a rotation of PE(pos). Adding costs no width, and embeddings and
# sinusoids are nearly orthogonal in high dimensions so the projections can separate them; concatenation
# spends dimensions (or width) on position. Without any positions the model cannot reverse a string. (See
# cells "5. Sinusoidal positional encoding" and "10. Positions added vs concatenated vs none".)
#
# </details>
#
# <details><summary>Padding mask vs sequence (causal) mask?</summary>
#
# Padding mask: per key, (B, 1, 1, N_k), hides the filler tokens of shorter sentences from every query; used in
# encoder self-attention and decoder cross-attention. Causal mask: lower-triangular (N, N), same for all
# sentences, stops decoder position i from seeing later tokens so teacher forcing trains all positions in
# one pass without cheating. (See cell "4. Masks: padding vs causal", drawn and tested.)
#
# </details>
#
# <details><summary>Why does the decoder have two attention blocks?</summary>
#
# Masked self-attention reads what has been generated so far; cross-attention (queries from the decoder,
# keys/values from the encoder's memory) is the only path by which the source reaches the output — for
# reversal it reads the mirrored input position. (See cells "7." and "9. Look inside".)
#
# </details>
#
# <details><summary>LayerNorm vs BatchNorm in Transformers?</summary>
#
# BatchNorm's statistics mix sentences, positions and padding, vary with batch size and differ between training
# and inference; LayerNorm normalises each token over its own features, so it behaves the same for any batch,
# length or padding, in training and inference. (See cell "12. LayerNorm, not BatchNorm".)
#
# </details>
#
# <details><summary>RNN hidden state and LSTM gates vs attention?</summary>
#
# An RNN carries everything in one hidden state updated step by step (vanishing/exploding gradients, strictly
# sequential). The LSTM's additive cell state with forget, input and output gates keeps gradients alive longer,
# but an encoder–decoder still squeezes the input into a fixed-size vector. Attention lets every output read
# any input directly (path length 1) and processes all positions in parallel; its cost is O(N²) in the
# sequence length. (See cell "11. The RNN way": `lstm_cell` == `nn.LSTMCell`, and the accuracy-by-length
# plot.)
#
# </details>
#
# <details><summary>Data, model and pipeline parallelism; operator fusion?</summary>
#
# Data: replicate the model, split the batch, all-reduce gradients. Model (tensor): split a layer's matrices or
# heads across devices, communicate inside each layer. Pipeline: split the layer stack into stages, feed
# micro-batches to fill the pipeline, pay bubbles. Fusion: one kernel for several ops so intermediates stay
# on-chip — FlashAttention, measured against the explicit path. (See cells "13. Speed" and "14. Data, model
# and pipeline parallelism".)
#
# </details>
#
# <details><summary>What does `F.scaled_dot_product_attention` add over the explicit formula?</summary>
#
# The same result (asserted to numerical precision) with a fused kernel: no N×N matrix in GPU memory,
# FlashAttention or memory-efficient attention where available. Keep the explicit path for teaching and for
# reading the attention weights. (See cells "1." and "13. Speed".)
#
# </details>
#
# <details><summary>What does the feed-forward block do, and why expand ×4?</summary>
#
# Attention mixes tokens with weights that sum to 1 — a weighted average of projected values; the position-wise FFN
# transforms each token alone: d → 4d, a non-linearity (ReLU in the 2017 Transformer, GELU in BERT, ViT and our
# model), 4d → d. The wide hidden layer gives the non-linearity room to carve many features before compressing back
# to the residual stream's width. It holds about two thirds of a block's parameters (8d² + 5d of 12d² + …) and,
# while N < 2d, most of its multiply-adds (8Nd² vs 4Nd² + 2N²d); both are computed from our model and counted by
# `FlopCounterMode`, and the Transformer is retrained without its FFNs to measure what they add (see "15. The
# feed-forward block").
#
# </details>
#
# <details><summary>Word embeddings vs one-hot vectors?</summary>
#
# A one-hot vector is vocabulary-wide and every two tokens are orthogonal (cosine 0): no notion of similarity. An
# embedding is a learned V×d table whose lookup equals one-hot × table (asserted), at O(d) instead of O(Vd); its rows
# are dense, low-dimensional and free to place related tokens close together (see "16. Word embeddings vs one-hot",
# with both similarity matrices drawn).
#
# </details>
#
# <details><summary>PoolFormer vs attention; a hybrid CNN + ViT — what did they do here?</summary>
#
# PoolFormer swaps the attention token mixer for 3×3 average pooling (minus the token): no attention parameters, no
# position table, fewer multiply-adds (asserted), and the accuracy gap to the attention ViT of the same size is
# printed beside the costs. The hybrid replaces the 4×4 patch projection by a small CNN stem whose 7×7 feature-map
# cells are the tokens: locality in the first layers; its accuracy against the plain ViT is printed in the same
# table (see "17. Image tokens").
#
# </details>
#
# <details><summary>How do you segment with a ViT (SETR), and why is Swin a better backbone for it?</summary>
#
# Fold the last block's patch tokens back into their grid (a map at the patch stride), score each cell with a 1×1
# head and upsample — SETR's naive head. A plain ViT has one coarse scale; Swin's stages give a pyramid (stride 2 and
# 4 here, 4–32 in the paper) that a decoder fuses, fine detail from early stages and context from late ones, at
# linear cost. Both are trained on the course's scenes and scored by mIoU and foreground IoU (see "18. Segmentation
# with Transformers").
#
# </details>
#
# <details><summary>What is MAE, and why mask 75 % of the patches?</summary>
#
# Masked-autoencoder pre-training: hide most patches, encode only the visible ones (a quarter of the tokens, so
# cheap), let a light decoder with mask tokens rebuild the hidden pixels; the loss covers hidden patches only. A high
# ratio removes the shortcut of copying neighbours, so the encoder must model the objects. Ours rebuilds unseen test
# images well below a mean-patch baseline (asserted, and drawn), and a linear probe measures what pre-training gave
# the frozen encoder against the same encoder untrained (see "19. MAE").
#
# </details>
#
# <details><summary>Encoder-only, decoder-only, encoder–decoder: where do BERT, GPT, T5, ViT, DETR, VisTR sit?</summary>
#
# An encoder-only model attends in both directions with no causal mask (BERT, ViT); a decoder-only model is the same
# stack of self-attention + feed-forward blocks under the causal mask, with no cross-attention since there is no
# encoder to read (GPT); an encoder–decoder adds cross-attention from a causal decoder to the encoder's output (the
# 2017 Transformer, T5). DETR and VisTR put a CNN backbone in front of an encoder–decoder whose decoder reads learned
# object (VisTR: per-frame instance) queries, all decoded at once without a causal mask. Checked in "A decoder-only
# (GPT-style) model is the encoder's stack under a causal mask": built from `EncoderBlock`s, changing tokens 5–7
# leaves outputs 0–4 of the causal model unchanged while the unmasked stack's move (by up to 0.19), and a decoder
# block's cross-attention adds 4,288 parameters at d = 32; the table is in section 7.
#
# </details>
#
# ### Answers you may read that are wrong
#
# <details><summary>Wrong: “The number of heads must equal the channel count.”</summary>
#
# Right: the heads divide the model width: h heads of d/h channels each (BERT-Base and ViT-Base: 12 heads of 64 in
# 768), and h only has to divide d. Asserted for 1, 2, 4 and 8 heads on 32 channels, with 3 heads refused, in "Heads
# split the width".
#
# </details>
#
# <details><summary>Wrong: “More heads means more parameters.”</summary>
#
# Right: W_q, W_k, W_v and W_o are d×d whatever the head count, so multi-head attention holds 4d² + 4d parameters
# for any h (asserted in "Heads split the width"); the multiply-adds stay the same too. More heads only narrow the
# subspace each head compares in, and the explicit path stores h·N² weights instead of N².
#
# </details>
#
# <details><summary>Wrong: “The causal mask is applied to V.”</summary>
#
# Right: it is added to the attention scores before the softmax (−∞ on the future keys), so future keys get weight
# exactly 0 and each row's weights renormalise over the past; V is untouched. Zeroing the future after the softmax
# leaves the past's weights summing to less than 1 — both asserted in "The causal mask goes on the scores".
#
# </details>
#
# <details><summary>Wrong: “Attention divides by √d_k to normalise its output.”</summary>
#
# Right: it normalises the logits. For unit-variance q and k, q·k has variance d_k; dividing by √d_k brings it back
# to 1, so the softmax does not saturate into a one-hot whose gradient vanishes (asserted in "2. Why divide by
# √d_k"). The output needs no such scaling: it is a weighted mean of value rows, with weights summing to 1 (asserted
# in "1. Scaled dot-product attention, by hand").
#
# </details>
#
# <details><summary>Wrong: “Self-attention is permutation-invariant.”</summary>
#
# Right: it is permutation-equivariant: permute the tokens and the outputs are permuted the same way, not left
# unchanged (asserted in "5. Sinusoidal positional encoding"). Only a readout that pools the tokens, such as their
# mean, is invariant. Either way attention cannot see order, hence positional encodings.
#
# </details>
#
# <details><summary>Wrong: “FlashAttention approximates attention, trading accuracy for speed.”</summary>
#
# Right: FlashAttention (Dao et al., 2022) computes exact attention: it tiles Q, K and V into on-chip memory and keeps
# a running, rescaled softmax, so it never writes the N×N matrix — it saves memory and memory traffic, not accuracy.
# The fused `F.scaled_dot_product_attention` (FlashAttention on a supported GPU) equals the explicit formula to float
# rounding, asserted in "1. Scaled dot-product attention, by hand" and "13. Speed". Approximate attention
# (Linformer, Performer, fixed sparse patterns) is another family.
#
# </details>
