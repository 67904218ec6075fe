"""Chapter 3a's exercises (03a_attention_and_transformer) done wrong, the way learners do: each entry of `CATALOGUE` is
(exercise, mistaken function, the registered mistake its message must name)."""

import torch


def attention_unscaled(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def attention_masked_after_softmax(q, k, v, mask=None):
    weights = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
    return (weights if mask is None else weights * mask) @ v


def attention_mask_inverted(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def multi_head_attention_scaled_by_dim(x, w_qkv, b_qkv, w_out, b_out, heads):
    batch, tokens, dim = x.shape
    q, k, v = (x @ w_qkv.T + b_qkv).chunk(3, dim=-1)
    q, k, v = (t.view(batch, tokens, heads, -1).transpose(1, 2) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-2, -1) / dim ** 0.5, -1)
    return (weights @ v).transpose(1, 2).reshape(batch, tokens, dim) @ w_out.T + b_out


def multi_head_attention_reshaped(x, w_qkv, b_qkv, w_out, b_out, heads):
    batch, tokens, dim = x.shape
    q, k, v = (x @ w_qkv.T + b_qkv).chunk(3, dim=-1)
    q, k, v = (t.reshape(batch, heads, tokens, dim // heads) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-2, -1) / (dim // heads) ** 0.5, -1)
    return (weights @ v).reshape(batch, tokens, dim) @ w_out.T + b_out


def lstm_cell_ifog(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, o, g = (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new


def lstm_cell_without_tanh(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * c_new, c_new


CATALOGUE = [
    ("scaled_dot_product_attention", attention_unscaled, "no scale"),
    ("scaled_dot_product_attention", attention_masked_after_softmax, "mask after softmax"),
    ("scaled_dot_product_attention", attention_mask_inverted, "mask inverted"),
    ("multi_head_attention", multi_head_attention_scaled_by_dim, "scaled by the model width"),
    ("multi_head_attention", multi_head_attention_reshaped, "heads split by a plain reshape"),
    ("lstm_cell", lstm_cell_ifog, "gate order i, f, o, g"),
    ("lstm_cell", lstm_cell_without_tanh, "no tanh of the cell"),
]
