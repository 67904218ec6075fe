"""utils.vit_attention: mean attention distance, attention rollout and the explorers' render functions."""

import math

import matplotlib
import numpy as np
import pytest
import torch

from utils.vit_attention import (attention_distance_figure, attention_map_figure, attention_rollout,
                                 mean_attention_distance, patch_centres)


def test_patch_centres_row_major_pixels():
    centres = patch_centres((2, 3), patch_size=4)
    assert centres.shape == (6, 2)
    torch.testing.assert_close(centres[0], torch.tensor([2.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(centres[5], torch.tensor([6.0, 10.0], dtype=torch.float64))


def test_one_hot_attention_to_a_known_patch():
    # 2×2 grid of 10-pixel patches, no prefix: every query looks only at patch 0 (centre (5, 5)).
    attn = torch.zeros(1, 4, 4)
    attn[0, :, 0] = 1
    expected = (0 + 10 + 10 + 10 * math.sqrt(2)) / 4
    torch.testing.assert_close(mean_attention_distance(attn, 2, 10, num_prefix_tokens=0),
                               torch.tensor([expected]))


def test_self_attention_is_distance_zero_and_heads_are_kept_apart():
    attn = torch.stack([torch.eye(9), torch.full((9, 9), 1 / 9)])[None]          # (1, 2 heads, 9, 9)
    distance = mean_attention_distance(attn, (3, 3), 1, num_prefix_tokens=0)
    assert distance.shape == (1, 2)
    assert distance[0, 0] == 0
    centres = patch_centres(3, 1)
    uniform = torch.cdist(centres, centres).mean().float()
    torch.testing.assert_close(distance[0, 1], uniform)


def test_prefix_token_is_dropped_without_renormalising():
    # Half of every row on the class token, half on patch 1 of a 1×2 grid (patch size 2 → centres 2 px apart).
    attn = torch.zeros(3, 3)
    attn[:, 0] = 0.5
    attn[:, 2] = 0.5
    distance = mean_attention_distance(attn[None], (1, 2), 2, num_prefix_tokens=1)
    torch.testing.assert_close(distance, torch.tensor([0.5]))     # queries: patch 0 → 0.5·2, patch 1 → 0


def test_mean_attention_distance_rejects_wrong_token_count():
    with pytest.raises(ValueError, match="prefix"):
        mean_attention_distance(torch.rand(2, 4, 49, 49), 7, 4, num_prefix_tokens=1)


def _random_attention(batch, heads, n, generator):
    return torch.randn(batch, heads, n, n, generator=generator).softmax(-1)


def test_rollout_matches_direct_computation():
    generator = torch.Generator().manual_seed(0)
    layers = [_random_attention(2, 3, 5, generator) for _ in range(4)]
    rollout = attention_rollout(layers)
    assert rollout.shape == (2, 5, 5)
    for b in range(2):
        joint = np.eye(5)
        for layer in layers:
            a = layer[b].double().numpy().mean(0) * 0.5 + 0.5 * np.eye(5)
            a = a / a.sum(1, keepdims=True)
            joint = a @ joint
        np.testing.assert_allclose(rollout[b].numpy(), joint, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 5))


def test_rollout_of_identity_attention_is_identity_and_input_is_checked():
    torch.testing.assert_close(attention_rollout([torch.eye(4).expand(1, 2, 4, 4)] * 3), torch.eye(4)[None])
    with pytest.raises(ValueError):
        attention_rollout([])
    with pytest.raises(ValueError):
        attention_rollout([torch.rand(1, 2, 4, 4), torch.rand(1, 2, 5, 5)])


def _maps():
    generator = torch.Generator().manual_seed(1)
    return [_random_attention(1, 2, 17, generator)[0] for _ in range(3)]     # 4×4 grid of 7-px patches + cls


def test_attention_map_figure_changes_with_its_controls():
    from utils.plotting import figure_png

    image = torch.rand(28, 28)
    pictures = {figure_png(attention_map_figure(image, _maps(), 7, layer=layer, head=0, query=q, rollout=r))
                for layer, q, r in [(0, 0, False), (2, 0, False), (0, 5, False), (2, 5, True)]}
    assert len(pictures) == 4
    fig = attention_map_figure(image, _maps(), 7, 1, 1, 3)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert fig.axes[-1].get_ylabel() == "attention weight"              # the colourbar says what colour measures


@pytest.mark.parametrize("bad", [dict(layer=3), dict(head=2), dict(query=17)])
def test_attention_map_figure_rejects_out_of_range(bad):
    values = dict(layer=0, head=0, query=0) | bad
    with pytest.raises(ValueError, match="out of range"):
        attention_map_figure(torch.rand(28, 28), _maps(), 7, **values)


def test_attention_distance_figure():
    fig = attention_distance_figure({"a": torch.rand(3, 4) * 20, "b": torch.rand(3, 4)}, image_size=28)
    assert len(fig.axes) == 2
    assert "image side (28 px)" in [t.get_text() for t in fig.axes[1].get_legend().texts]  # the dotted line named
    with pytest.raises(ValueError):
        attention_distance_figure({})
    with pytest.raises(ValueError):
        attention_distance_figure({"a": torch.rand(4)})
