"""The exercises of Chapter 1c (01c_why_training_works): their references, cases and known mistakes."""

import numpy as np
import torch
import torch.nn.functional as F

from .base import Exercise, Mistake, normalised, random_arrays


def _softmax_cases():
    return [(random_arrays((4, 10))[0],), (random_arrays((3, 5))[0] * 1000,), (random_arrays((2, 3, 4))[0], 1),
            (np.array([[1000.0, 999.0, 998.0], [-1000.0, -1001.0, -1000.0]]),),   # rows far apart, a tie
            (random_arrays((1, 7), seed=1)[0],)]


def _naive_softmax(logits, axis=-1):
    with np.errstate(over="ignore", invalid="ignore"):
        return np.exp(logits) / np.exp(logits).sum(axis, keepdims=True)


def _global_max_softmax(logits, axis=-1):
    with np.errstate(invalid="ignore"):
        shifted = np.exp(logits - logits.max())
        return shifted / shifted.sum(axis, keepdims=True)


SOFTMAX_MISTAKES = (
    Mistake("no max-subtraction", _naive_softmax,
            "the maximum is not subtracted: np.exp overflows for large logits (inf / inf = nan)"),
    Mistake("global maximum", _global_max_softmax,
            "the maximum of the whole array is subtracted: take it along the axis (keepdims=True), or rows far below "
            "it underflow to 0 / 0"),
    Mistake("axis ignored", lambda logits, axis=-1: torch.from_numpy(logits).softmax(-1).numpy(),
            "the axis argument is ignored: max and sum along `axis`, not always the last one"),
)


def _torch_cross_entropy(logits, labels):
    return F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()


def _cross_entropy_cases():
    return [(random_arrays((6, 10))[0], np.array([0, 3, 9, 1, 1, 5])),
            (random_arrays((2, 4))[0] * 500, np.array([2, 0])),
            (random_arrays((1, 5), seed=1)[0], np.array([4]))]


def _log_softmax(logits):
    return torch.from_numpy(logits).log_softmax(1).numpy()


def _cross_entropy_without_log_sum_exp(logits, labels):
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return -np.log(_naive_softmax(logits, 1)[np.arange(len(labels)), labels]).mean()


CROSS_ENTROPY_MISTAKES = (
    Mistake("no log-sum-exp", _cross_entropy_without_log_sum_exp,
            "the log-softmax is not computed with log-sum-exp: np.exp overflows for large logits (subtract each "
            "row's maximum first)"),
    Mistake("sum instead of mean", lambda logits, labels: -_log_softmax(logits)[np.arange(len(labels)), labels].sum(),
            "the losses are summed: the cross-entropy is their mean over the batch"),
    Mistake("every row at every label", lambda logits, labels: -_log_softmax(logits)[:, labels].mean(),
            "log_probs[:, labels] picks every row at every label: use log_probs[np.arange(N), labels]"),
)


def _torch_layer_norm(x, gamma, beta, eps=1e-5):
    return F.layer_norm(torch.from_numpy(x), x.shape[1:], torch.from_numpy(gamma), torch.from_numpy(beta), eps).numpy()


def _layer_norm_cases():
    (x,) = random_arrays((4, 3, 5, 5))
    return [(x * 3 + 2, *random_arrays((3, 5, 5), (3, 5, 5), seed=1)),
            (*random_arrays((2, 6), (6,), (6,), seed=2), 1e-3),
            (*random_arrays((1, 2, 4), (2, 4), (2, 4), seed=3),)]


def _sample_axes(x):
    return tuple(range(1, x.ndim))


LAYER_NORM_MISTAKES = (
    Mistake("last axis only", lambda x, gamma, beta, eps=1e-5: normalised(x, gamma, beta, eps, -1),
            "the statistics are over the last axis only: LayerNorm uses every axis but the batch, "
            "tuple(range(1, x.ndim))"),
    Mistake("unbiased variance", lambda x, gamma, beta, eps=1e-5: normalised(x, gamma, beta, eps, _sample_axes(x), 1),
            "the variance is unbiased (ddof=1): LayerNorm uses the biased one, x.var()"),
    Mistake("batch axis", lambda x, gamma, beta, eps=1e-5: normalised(x, gamma, beta, eps, 0),
            "the statistics are over the batch axis (that is batch norm): one mean and variance per sample"),
)


EXERCISES = [
    Exercise("softmax", "01c_why_training_works", "easy",
             lambda logits, axis=-1: torch.from_numpy(logits).softmax(axis).numpy(), _softmax_cases,
             SOFTMAX_MISTAKES, forbidden=("softmax", "log_softmax", "Softmax")),
    Exercise("cross_entropy", "01c_why_training_works", "easy", _torch_cross_entropy, _cross_entropy_cases,
             CROSS_ENTROPY_MISTAKES,
             forbidden=("cross_entropy", "CrossEntropyLoss", "nll_loss", "log_softmax", "softmax", "logsumexp",
                        "log_loss")),
    Exercise("layer_norm", "01c_why_training_works", "easy", _torch_layer_norm, _layer_norm_cases,
             LAYER_NORM_MISTAKES, forbidden=("layer_norm", "LayerNorm")),
]
