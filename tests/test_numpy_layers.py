"""The hand-written layers of utils.numpy_layers equal torch.nn.functional."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from utils import numpy_layers

rng = np.random.default_rng(0)


def close(ours, theirs):
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("stride,padding,dilation,groups", [
    (1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 1), (1, 1, 1, 2), (2, 1, 1, 4), (1, "same", 1, 1), (1, "same", 2, 1),
    (1, "valid", 1, 1), (3, (1, 2), 1, 1),
])
def test_conv2d_matches_torch(stride, padding, dilation, groups):
    x = rng.standard_normal((2, 4, 9, 11)).astype(np.float32)
    w = rng.standard_normal((8, 4 // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    ours = numpy_layers.conv2d(x, w, b, stride, padding, dilation, groups)
    close(ours, F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride, padding,
                         dilation, groups))


def test_conv2d_even_kernel_same_padding():
    x = rng.standard_normal((1, 2, 7, 7)).astype(np.float32)
    w = rng.standard_normal((3, 2, 4, 2)).astype(np.float32)
    close(numpy_layers.conv2d(x, w, padding="same"), F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding="same"))


def test_conv2d_rejects_bad_groups():
    with pytest.raises(ValueError, match="groups"):
        numpy_layers.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((4, 3, 3, 3)), groups=2)


@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 2, 1), (3, 1, 1), ((2, 3), (2, 1), (1, 1))])
def test_pooling_matches_torch(kernel, stride, padding):
    x = rng.standard_normal((2, 3, 8, 9)).astype(np.float32)
    t = torch.from_numpy(x)
    close(numpy_layers.max_pool2d(x, kernel, stride, padding), F.max_pool2d(t, kernel, stride, padding))
    close(numpy_layers.avg_pool2d(x, kernel, stride, padding), F.avg_pool2d(t, kernel, stride, padding))
    close(numpy_layers.avg_pool2d(x, kernel, stride, padding, count_include_pad=False),
          F.avg_pool2d(t, kernel, stride, padding, count_include_pad=False))


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5, 5)])
def test_batch_norm_train_and_eval_match_torch(shape):
    x = rng.standard_normal(shape).astype(np.float32) * 3 + 1
    gamma, beta = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    mean, var = np.zeros(3, np.float32), np.ones(3, np.float32)
    t_mean, t_var = torch.zeros(3), torch.ones(3)
    for training in (True, True, False):
        ours = numpy_layers.batch_norm(x, mean, var, gamma, beta, training, 0.1, 1e-5)
        theirs = F.batch_norm(torch.from_numpy(x), t_mean, t_var, torch.from_numpy(gamma), torch.from_numpy(beta),
                              training, 0.1, 1e-5)
        close(ours, theirs)
        close(mean, t_mean)
        close(var, t_var)


def test_layer_norm_matches_torch():
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    w, b = rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal((4, 5)).astype(np.float32)
    close(numpy_layers.layer_norm(x, (4, 5), w, b), F.layer_norm(torch.from_numpy(x), (4, 5), torch.from_numpy(w),
                                                              torch.from_numpy(b)))
    with pytest.raises(ValueError, match="normalized_shape"):
        numpy_layers.layer_norm(x, (3,))


def test_softmax_and_cross_entropy_match_torch():
    logits = rng.standard_normal((6, 10)).astype(np.float32) * 20
    labels = rng.integers(0, 10, 6)
    close(numpy_layers.softmax(logits), torch.softmax(torch.from_numpy(logits), -1))
    assert numpy_layers.cross_entropy(logits, labels) == pytest.approx(
        F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item(), rel=1e-5)


@pytest.mark.parametrize("size,k,s,p,d", [(28, 3, 1, 1, 1), (28, 5, 2, 2, 1), (224, 11, 4, 2, 1), (13, 3, 2, 0, 2)])
def test_conv_output_size_matches_layer(size, k, s, p, d):
    out = torch.nn.Conv2d(1, 1, k, s, p, d)(torch.zeros(1, 1, size, size))
    assert numpy_layers.conv_output_size(size, k, s, p, d) == out.shape[-1]
