"""A sequence-to-sequence task generated in code, its batches, greedy decoding, and the LSTM baseline.

Introduced in Chapter 3 (03a). The task: read a string of digits, write it reversed ("4071" → "1704").
Reversal needs every output position to look at one specific input position — far away at the ends of
the string — which is exactly what attention makes cheap and what a fixed-size RNN state makes hard.

Token ids: 0 = padding, 1 = begin, 2 = end, 3–12 = the digits 0–9. A batch is ``(src, tgt)``:
``src`` (B, Ns) the digits right-padded; ``tgt`` (B, Nt) = begin, reversed digits, end, padding.
A model exposes ``encode(src) -> (memory, extras)`` and ``decode(memory, src, tgt_in) -> (logits, extras)``;
`Seq2SeqTransformer` and `LSTMSeq2Seq` both do, so one loss, one decoder and one metric serve both.
"""

from __future__ import annotations

import time
from functools import partial

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from .data import DeviceLoader
from .runtime import model_device
from .training import autocast
from .widgets import Explorer, dropdown, slider

PAD, BOS, EOS, DIGIT_OFFSET = 0, 1, 2, 3
VOCAB_SIZE = DIGIT_OFFSET + 10
SPECIALS = {PAD: "·", BOS: "<s>", EOS: "</s>"}


def encode_digits(strings: list[str], length: int | None = None) -> torch.Tensor:
    """Digit strings → (B, length) token ids, right-padded with PAD (length: the longest by default)."""
    for s in strings:
        if not s.isdigit() or not s.isascii():
            raise ValueError(f"only non-empty strings of the digits 0-9 can be encoded, got {s!r}")
    length = length or max(map(len, strings))
    if any(len(s) > length for s in strings):
        raise ValueError(f"a string is longer than length={length}; pass a larger length")
    tokens = torch.full((len(strings), length), PAD, dtype=torch.long)
    for row, s in enumerate(strings):
        tokens[row, : len(s)] = torch.tensor([DIGIT_OFFSET + int(ch) for ch in s])
    return tokens


def decode_digits(tokens: torch.Tensor) -> list[str]:
    """(B, N) token ids → digit strings, reading up to the first EOS and skipping BOS and PAD."""
    strings = []
    for row in tokens.tolist():
        row = row[: row.index(EOS)] if EOS in row else row
        strings.append("".join(str(t - DIGIT_OFFSET) for t in row if t >= DIGIT_OFFSET))
    return strings


def token_labels(tokens) -> list[str]:
    """Printable label per token id (digits as themselves, specials as ·, <s>, </s>)."""
    return [SPECIALS.get(t, str(t - DIGIT_OFFSET)) for t in torch.as_tensor(tokens).tolist()]


def reversal_dataset(num: int, min_len: int, max_len: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``num`` random digit strings of length ``min_len..max_len`` and their reversals.

    Returns src (num, max_len) and tgt (num, max_len + 2) = BOS, reversed digits, EOS, padding.
    """
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (num,), generator=generator)
    digits = torch.randint(0, 10, (num, max_len), generator=generator) + DIGIT_OFFSET
    positions = torch.arange(max_len)
    src = torch.where(positions < lengths[:, None], digits, PAD)
    # Reversal of the first L tokens: output position j reads input position L - 1 - j.
    source_index = (lengths[:, None] - 1 - positions).clamp(min=0)
    reversed_digits = torch.where(positions < lengths[:, None], src.gather(1, source_index), PAD)
    tgt = torch.full((num, max_len + 2), PAD, dtype=torch.long)
    tgt[:, 0] = BOS
    tgt[:, 1:-1] = reversed_digits
    tgt[torch.arange(num), lengths + 1] = EOS
    return src, tgt


def _as_is(tokens: torch.Tensor) -> torch.Tensor:
    return tokens


def make_loader(src, tgt, batch_size: int = 128, *, shuffle: bool = False, seed: int = 0, device=None):
    """A seeded `DeviceLoader` of ``(src, tgt)`` batches, token ids left as they are."""
    return DeviceLoader(src, tgt, batch_size, shuffle=shuffle, seed=seed, device=device, prepare=_as_is)


def teacher_forcing_loss(model, batch):
    """Cross-entropy of predicting tgt[1:] from src and the *true* prefix tgt[:-1]; padding ignored."""
    src, tgt = batch
    memory, _ = model.encode(src)
    logits, _ = model.decode(memory, src, tgt[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1).float(), tgt[:, 1:].flatten(), ignore_index=PAD)


@torch.no_grad()
def greedy_decode(model, src: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
    """Write the output one token at a time, feeding back the arg-max; returns (B, 1 + n) starting with BOS.

    Stops early once every row has produced EOS. The encoder runs once; the decoder reruns on the growing
    prefix (a KV cache would avoid that; at these lengths it does not matter).
    """
    model.eval()
    src = src.to(model_device(model))
    memory, _ = model.encode(src)
    output = torch.full((len(src), 1), BOS, dtype=torch.long, device=src.device)
    finished = torch.zeros(len(src), dtype=torch.bool, device=src.device)
    for _ in range(max_new_tokens):
        logits, _ = model.decode(memory, src, output)
        next_token = logits[:, -1].argmax(-1).masked_fill(finished, PAD)
        output = torch.cat([output, next_token[:, None]], dim=1)
        finished |= next_token == EOS
        if finished.all():
            break
    return output


def exact_match(predicted: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Per row, True when the decoded string equals the target's (everything up to EOS, EOS included)."""
    def upto_eos(tokens):
        is_eos = tokens == EOS
        seen_eos = (is_eos.cumsum(1) - is_eos.long()) > 0  # positions after the first EOS
        return tokens.masked_fill(seen_eos, PAD), is_eos.any(1)

    width = max(predicted.shape[1], tgt.shape[1])
    predicted, tgt = (F.pad(t, (0, width - t.shape[1]), value=PAD) for t in (predicted, tgt))
    (predicted, ended), (tgt, _) = upto_eos(predicted), upto_eos(tgt)
    return (predicted == tgt).all(1) & ended


@torch.no_grad()
def evaluate_seq2seq(model, loader) -> dict:
    """For `utils.training.fit`: teacher-forced loss and token accuracy, greedy exact-match accuracy (``acc``)."""
    model.eval()
    loss_sum, tokens_right, tokens, matches, rows = 0.0, 0, 0, 0, 0
    for src, tgt in loader:
        memory, _ = model.encode(src)
        logits, _ = model.decode(memory, src, tgt[:, :-1])
        target, real = tgt[:, 1:], tgt[:, 1:] != PAD
        loss_sum += F.cross_entropy(logits[real].float(), target[real], reduction="sum").item()
        tokens_right += (logits.argmax(-1) == target)[real].sum().item()
        tokens += real.sum().item()
        matches += exact_match(greedy_decode(model, src, tgt.shape[1] - 1), tgt).sum().item()
        rows += len(src)
    return {"loss": loss_sum / tokens, "acc": matches / rows, "token_acc": tokens_right / tokens}


@torch.no_grad()
def accuracy_by_length(model, src: torch.Tensor, tgt: torch.Tensor) -> dict[int, float]:
    """Greedy exact-match accuracy for each source length present in ``src``."""
    correct = exact_match(greedy_decode(model, src, tgt.shape[1] - 1).cpu(), tgt.cpu())
    lengths = (src != PAD).sum(1).cpu()
    return {int(n): correct[lengths == n].float().mean().item() for n in lengths.unique()}


def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    """One LSTM step, written out. x (B, I), h and c (B, H); weights in ``nn.LSTMCell``'s layout
    (4H × I and 4H × H, gates stacked input, forget, cell, output). Returns the new (h, c)."""
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh             # (B, 4H)
    input_gate, forget_gate, candidate, output_gate = gates.chunk(4, dim=1)
    # c is the conveyor belt: forget part of it, write a gated candidate; h is what the cell shows.
    c = forget_gate.sigmoid() * c + input_gate.sigmoid() * candidate.tanh()
    h = output_gate.sigmoid() * c.tanh()
    return h, c


class LSTMSeq2Seq(nn.Module):
    """Sutskever-style encoder–decoder without attention: the whole input must fit in the final (h, c)."""

    def __init__(self, vocab: int = VOCAB_SIZE, dim: int = 128, num_layers: int = 2, dropout: float = 0.0):
        super().__init__()
        self.src_embed, self.tgt_embed = nn.Embedding(vocab, dim), nn.Embedding(vocab, dim)
        self.encoder = nn.LSTM(dim, dim, num_layers, batch_first=True, dropout=dropout)
        self.decoder = nn.LSTM(dim, dim, num_layers, batch_first=True, dropout=dropout)
        self.head = nn.Linear(dim, vocab)

    def encode(self, src):
        """src (B, Ns) → the final (h, c), each (layers, B, dim), read after each row's last real token."""
        lengths = (src != PAD).sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.src_embed(src), lengths, batch_first=True,
                                                   enforce_sorted=False)
        _, state = self.encoder(packed)
        return state, None

    def decode(self, state, src, tgt_in):
        """Logits (B, Nt, vocab), the decoder started from the encoder's state."""
        out, _ = self.decoder(self.tgt_embed(tgt_in), state)
        return self.head(out), None

    def forward(self, src, tgt_in):
        return self.decode(self.encode(src)[0], src, tgt_in)[0]


def tokens_per_second(model, src, tgt, need_weights: bool, steps: int = 5) -> float:
    """Training throughput (forward + backward) of a `Seq2SeqTransformer` on one batch, in tokens/s.

    ``need_weights=True`` runs every attention through the explicit teaching path, False through
    ``F.scaled_dot_product_attention``; one warm-up step is not timed. On CUDA both run under bf16 autocast,
    as in `utils.training.fit`.
    """
    model.train()
    tokens = src.numel() + tgt[:, :-1].numel()
    sync = torch.cuda.synchronize if src.is_cuda else (lambda: None)
    elapsed = 0.0
    for step in range(steps + 1):
        sync()
        start = time.perf_counter()
        with autocast(src.device):
            memory, _ = model.encode(src, need_weights=need_weights)
            logits, _ = model.decode(memory, src, tgt[:, :-1], need_weights=need_weights)
        F.cross_entropy(logits.flatten(0, 1).float(), tgt[:, 1:].flatten(), ignore_index=PAD).backward()
        sync()
        elapsed += (time.perf_counter() - start) if step else 0.0
    model.zero_grad(set_to_none=True)
    model.eval()
    return tokens * steps / elapsed


def mask_figure(src: torch.Tensor, tgt_len: int, example: int = 0):
    """Padding mask of a batch, a causal mask, and both combined for ``src[example]``, as images (white = allowed)."""
    if not 0 <= example < len(src):
        raise ValueError(f"example={example} is out of range: choose from 0 to {len(src) - 1}")
    padding = (src != PAD).cpu()
    length = padding.shape[1]
    combined = padding[example, None, :].expand(length, -1) & torch.ones(length, length, dtype=torch.bool).tril()
    panels = [
        (padding, "padding mask (batch × keys)\nwhite = real token", "key position", "sentence"),
        (torch.ones(tgt_len, tgt_len, dtype=torch.bool).tril(),
         "causal mask (queries × keys)\nquery i sees keys ≤ i", "key position", "query position"),
        (combined, f"padding AND causal\n(sentence {example})", "key position", "query position"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, (mask, title, xlabel, ylabel) in zip(axes, panels):
        ax.imshow(mask.numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xticks=range(mask.shape[1]), yticks=range(mask.shape[0]))
        ax.title.set_fontsize(9)
    fig.tight_layout()
    return fig


ATTENTION_KINDS = ("decoder cross-attention", "decoder self-attention", "encoder self-attention")


def plot_attention(model, src: torch.Tensor, example: int = 0, kind: str = ATTENTION_KINDS[0], layer: int = 0):
    """One heat map per head of a trained `Seq2SeqTransformer`'s attention on ``src[example]``,
    decoding greedily; rows are queries, columns keys."""
    if not 0 <= example < len(src):
        raise ValueError(f"example={example} is out of range: choose from 0 to {len(src) - 1}")
    if kind not in ATTENTION_KINDS:
        raise ValueError(f"kind must be one of {ATTENTION_KINDS}, not {kind!r}")
    if not 0 <= layer < len(model.encoder):
        raise ValueError(f"layer={layer} is out of range: the model has {len(model.encoder)} layers")
    source = src[example: example + 1]
    source = source[:, : max(int((source != PAD).sum()), 1)]
    output = greedy_decode(model, source, model.max_len - 1)
    with torch.no_grad():
        memory, encoder_weights = model.encode(source, need_weights=True)
        _, decoder_weights = model.decode(memory, source, output[:, :-1], need_weights=True)
    src_labels, out_labels = token_labels(source[0]), token_labels(output[0])
    if kind == "encoder self-attention":
        weights, rows, cols = encoder_weights[layer], src_labels, src_labels
    elif kind == "decoder self-attention":
        weights, rows, cols = decoder_weights[layer][0], out_labels[:-1], out_labels[:-1]
    else:
        weights, rows, cols = decoder_weights[layer][1], out_labels[:-1], src_labels
    heads = weights.shape[1]
    fig, axes = plt.subplots(1, heads, figsize=(2.6 * heads + 1.2, 3.2), squeeze=False, layout="constrained")
    for head, ax in enumerate(axes[0]):
        drawn = ax.imshow(weights[0, head].float().cpu().numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(cols)), cols, fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_title(f"head {head}", fontsize=9)
        ax.set_xlabel("key (" + ("input" if kind.startswith("encoder") or "cross" in kind else "output") + " token)",
                      fontsize=8)
    axes[0, 0].set_ylabel("query (" + ("input" if kind.startswith("encoder") else "output") + " token)", fontsize=8)
    fig.colorbar(drawn, ax=axes[0], shrink=0.8).set_label("attention weight", fontsize=8)
    answer = "".join(out_labels[1:-1]) if out_labels[-1] == "</s>" else "".join(out_labels[1:])
    fig.suptitle(f"{kind}, layer {layer}: input {''.join(src_labels)} → output {answer}", fontsize=10)
    return fig


def attention_explorer(model, src: torch.Tensor) -> Explorer:
    """Example, attention kind and layer → every head's attention map (see `plot_attention`)."""
    return Explorer(partial(plot_attention, model, src),
                    {"example": slider("example", 0, len(src) - 1),
                     "kind": dropdown("attention", ATTENTION_KINDS),
                     "layer": slider("layer", 0, len(model.encoder) - 1, value=len(model.encoder) - 1)},
                    title="What each head of the trained Transformer looks at")
