"""Chapter 1c's exercises (01c_why_training_works) done wrong, the way learners do: each entry of `CATALOGUE` is
(exercise, mistaken function, the registered mistake its message must name)."""

import numpy as np


def softmax_overflowing(logits, axis=-1):
    return np.exp(logits) / np.sum(np.exp(logits), axis=axis, keepdims=True)


def softmax_global_max(logits, axis=-1):
    e = np.exp(logits - np.max(logits))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_last_axis(logits, axis=-1):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def cross_entropy_overflowing(logits, labels):
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return -np.mean(np.log(probabilities[np.arange(len(labels)), labels]))


def _log_softmax(logits):
    shifted = logits - logits.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


def cross_entropy_summed(logits, labels):
    return -_log_softmax(logits)[np.arange(len(labels)), labels].sum()


def cross_entropy_every_label(logits, labels):
    return -_log_softmax(logits)[:, labels].mean()


def layer_norm_last_axis(x, gamma, beta, eps=1e-5):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def layer_norm_unbiased(x, gamma, beta, eps=1e-5):
    axes = tuple(range(1, x.ndim))
    mean, var = x.mean(axes, keepdims=True), x.var(axes, ddof=1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


CATALOGUE = [
    ("softmax", softmax_overflowing, "no max-subtraction"),
    ("softmax", softmax_global_max, "global maximum"),
    ("softmax", softmax_last_axis, "axis ignored"),
    ("cross_entropy", cross_entropy_overflowing, "no log-sum-exp"),
    ("cross_entropy", cross_entropy_summed, "sum instead of mean"),
    ("cross_entropy", cross_entropy_every_label, "every row at every label"),
    ("layer_norm", layer_norm_last_axis, "last axis only"),
    ("layer_norm", layer_norm_unbiased, "unbiased variance"),
]
