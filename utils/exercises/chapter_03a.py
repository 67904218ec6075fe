"""The exercises of Chapter 3a (03a_attention_and_transformer): their references, cases and known mistakes."""

from functools import partial

import torch
import torch.nn.functional as F

from .base import Exercise, Mistake, random_tensors


def _torch_attention(q, k, v, mask=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _attention_cases():
    q, k, v = random_tensors((2, 3, 5, 8), (2, 3, 5, 8), (2, 3, 5, 8))
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    return [(q, k, v), (q, k, v, causal), tuple(random_tensors((1, 4, 16), (1, 4, 16), (1, 4, 16), seed=1))]


def _attention(q, k, v, mask=None, scaled=True, mask_after_softmax=False, inverted_mask=False):
    scores = q @ k.transpose(-2, -1) / (q.shape[-1] ** 0.5 if scaled else 1)
    blocked = None if mask is None else (mask if inverted_mask else ~mask)
    if blocked is not None and not mask_after_softmax:
        scores = scores.masked_fill(blocked, float("-inf"))
    weights = scores.softmax(-1)
    if blocked is not None and mask_after_softmax:
        weights = weights.masked_fill(blocked, 0.0)
    return weights @ v


ATTENTION_MISTAKES = (
    Mistake("no scale", lambda q, k, v, mask=None: _attention(q, k, v, mask, scaled=False),
            "the scores are not divided by √d_k"),
    Mistake("mask after softmax", lambda q, k, v, mask=None: _attention(q, k, v, mask, mask_after_softmax=True),
            "the mask is applied after the softmax: fill the blocked scores with −inf before it, so each row still "
            "sums to 1"),
    Mistake("mask inverted", lambda q, k, v, mask=None: _attention(q, k, v, mask, inverted_mask=True),
            "the mask is inverted: True means attention is allowed, so fill where ~mask"),
)


def _torch_multi_head_attention(x, w_qkv, b_qkv, w_out, b_out, heads):
    sequence_first = x.transpose(0, 1)               # torch's functional form takes (tokens, batch, dim)
    out, _ = F.multi_head_attention_forward(sequence_first, sequence_first, sequence_first, x.shape[-1], heads,
                                            w_qkv, b_qkv, None, None, False, 0.0, w_out, b_out, need_weights=False)
    return out.transpose(0, 1)


def _multi_head_attention_cases():
    return [(*random_tensors((2, 6, 16), (48, 16), (48,), (16, 16), (16,), seed=seed), heads)
            for seed, heads in ((0, 4), (1, 1), (2, 8))]


def _multi_head(x, w_qkv, b_qkv, w_out, b_out, heads, scale_by_dim=False, plain_view=False):
    batch, tokens, dim = x.shape
    q, k, v = (x @ w_qkv.T + b_qkv).chunk(3, dim=-1)
    if plain_view:        # heads cut out of the flat (token, feature) memory: tokens and heads get mixed
        q, k, v = (t.reshape(batch, heads, tokens, dim // heads) for t in (q, k, v))
    else:
        q, k, v = (t.view(batch, tokens, heads, dim // heads).transpose(1, 2) for t in (q, k, v))
    weights = (q @ k.transpose(-2, -1) / (dim if scale_by_dim else dim // heads) ** 0.5).softmax(-1)
    merged = weights @ v
    merged = merged.reshape(batch, tokens, dim) if plain_view else merged.transpose(1, 2).reshape(batch, tokens, dim)
    return merged @ w_out.T + b_out


MULTI_HEAD_ATTENTION_MISTAKES = (
    Mistake("scaled by the model width", partial(_multi_head, scale_by_dim=True),
            "the scores are divided by √dim: each head divides by √(dim / heads), its own width"),
    Mistake("heads split by a plain reshape", partial(_multi_head, plain_view=True),
            "the heads are split with a plain reshape to B×heads×N×d: view as B×N×heads×d, then transpose(1, 2) "
            "(and back before merging)"),
)


def _torch_lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    cell = torch.nn.LSTMCell(x.shape[1], h.shape[1]).double()
    with torch.no_grad():
        for parameter, value in zip((cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh),
                                    (w_ih, w_hh, b_ih, b_hh)):
            parameter.copy_(value)
    return cell(x, (h, c))


def _lstm_cases():
    d, hidden = 5, 4
    def shapes(n):
        return (n, d), (n, hidden), (n, hidden), (4 * hidden, d), (4 * hidden, hidden), (4 * hidden,), (4 * hidden,)
    return [tuple(random_tensors(*shapes(n), seed=seed)) for seed, n in ((0, 3), (1, 3), (2, 1))]


def _lstm(x, h, c, w_ih, w_hh, b_ih, b_hh, order="ifgo", tanh_of_cell=True):
    gates = dict(zip(order, (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)))
    c_new = torch.sigmoid(gates["f"]) * c + torch.sigmoid(gates["i"]) * torch.tanh(gates["g"])
    return torch.sigmoid(gates["o"]) * (torch.tanh(c_new) if tanh_of_cell else c_new), c_new


LSTM_MISTAKES = (
    Mistake("gate order i, f, o, g", partial(_lstm, order="ifog"),
            "the gates are read in the order i, f, o, g: PyTorch stacks them i, f, g, o"),
    Mistake("forget and input gates swapped", partial(_lstm, order="figo"),
            "the forget and input gates are swapped: PyTorch stacks them i, f, g, o"),
    Mistake("no tanh of the cell", partial(_lstm, tanh_of_cell=False),
            "h_new is o · c_new: it is o · tanh(c_new)"),
)


EXERCISES = [
    Exercise("scaled_dot_product_attention", "03a_attention_and_transformer", "medium", _torch_attention,
             _attention_cases, ATTENTION_MISTAKES,
             forbidden=("scaled_dot_product_attention", "MultiheadAttention", "multi_head_attention_forward")),
    Exercise("multi_head_attention", "03a_attention_and_transformer", "hard", _torch_multi_head_attention,
             _multi_head_attention_cases, MULTI_HEAD_ATTENTION_MISTAKES,
             forbidden=("MultiheadAttention", "multi_head_attention_forward")),
    Exercise("lstm_cell", "03a_attention_and_transformer", "hard", _torch_lstm_cell, _lstm_cases, LSTM_MISTAKES,
             forbidden=("LSTMCell", "LSTM", "lstm_cell", "lstm")),
]
