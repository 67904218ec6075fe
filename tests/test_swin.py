"""utils.swin (windows, shifted-window mask, relative position bias, patch merging) and the ViT/Swin models."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from utils.models.swin import SwinBlock, SwinTransformer, WindowAttention
from utils.models.vit import (PatchEmbed, ViT, interpolate_position_embedding, sincos_position_embedding)
from utils.swin import (PatchMerging, RelativePositionBias, attention_multiply_adds, relative_position_index,
                        shifted_window_mask, window_partition, window_reverse)


def test_window_partition_and_reverse():
    x = torch.arange(2 * 4 * 6 * 3, dtype=torch.float32).view(2, 4, 6, 3)
    windows = window_partition(x, 2)
    assert windows.shape == (2 * 6, 4, 3)
    torch.testing.assert_close(windows[4].view(2, 2, 3), x[0, 2:4, 2:4])       # image 0, row 1, column 1
    torch.testing.assert_close(window_reverse(windows, 2, 4, 6), x)
    with pytest.raises(ValueError, match="window"):
        window_partition(x, 4)


def paper_mask(height, width, window, shift):
    """Token pairs of one shifted window may attend iff neither or both were carried across each border."""
    masks = []
    for wr, wc in itertools.product(range(height // window), range(width // window)):
        cells = [(wr * window + r, wc * window + c) for r in range(window) for c in range(window)]
        wrapped = [(r >= height - shift, c >= width - shift) for r, c in cells]   # in the rolled map
        masks.append([[wrapped[i] == wrapped[j] for j in range(len(cells))] for i in range(len(cells))])
    return torch.tensor(masks)


@pytest.mark.parametrize("height, width, window, shift", [(4, 4, 2, 1), (14, 14, 7, 3), (6, 9, 3, 1)])
def test_shifted_window_mask_matches_the_papers_regions(height, width, window, shift):
    mask = shifted_window_mask(height, width, window, shift)
    assert mask.shape == ((height // window) * (width // window), window ** 2, window ** 2)
    assert mask.dtype == torch.bool
    assert torch.equal(mask, paper_mask(height, width, window, shift))


def test_shifted_window_mask_small_grid_by_hand():
    mask = shifted_window_mask(4, 4, 2, 1)
    assert mask[0].all()                                          # interior window: one region
    assert torch.equal(mask[3], torch.eye(4, dtype=torch.bool))    # corner window: four 1-token regions
    assert torch.equal(mask[1].int(), torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1]] * 2))


def test_no_shift_means_no_mask_and_bad_arguments_are_refused():
    assert shifted_window_mask(8, 8, 4, 0).all()
    with pytest.raises(ValueError, match="shift_size"):
        shifted_window_mask(8, 8, 4, 4)
    with pytest.raises(ValueError, match="windows"):
        shifted_window_mask(8, 6, 4, 2)


def test_relative_position_index_depends_only_on_the_offset():
    m = 3
    index = relative_position_index(m)
    coords = [(r, c) for r in range(m) for c in range(m)]
    offsets = {}
    for i, j in itertools.product(range(m * m), repeat=2):
        offset = (coords[i][0] - coords[j][0], coords[i][1] - coords[j][1])
        assert offsets.setdefault(offset, index[i, j].item()) == index[i, j].item()
    assert len(offsets) == len(set(offsets.values())) == (2 * m - 1) ** 2


def test_relative_position_bias_looks_up_its_table():
    bias = RelativePositionBias(3, num_heads=2)
    out = bias()
    assert out.shape == (2, 9, 9)
    torch.testing.assert_close(out[:, 4, 4], bias.table[12])      # zero offset sits in the table's centre


def test_patch_merging_concatenates_2x2_then_projects():
    merge = PatchMerging(4)
    x = torch.randn(2, 6, 6, 4)
    out = merge(x)
    assert out.shape == (2, 3, 3, 8)
    cat = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
    torch.testing.assert_close(out, F.linear(F.layer_norm(cat, (16,), merge.norm.weight, merge.norm.bias),
                                             merge.reduction.weight))
    with pytest.raises(ValueError, match="even"):
        merge(torch.randn(1, 5, 6, 4))


def test_attention_multiply_adds():
    assert attention_multiply_adds(196, 32) == 4 * 196 * 32 ** 2 + 2 * 196 ** 2 * 32
    assert attention_multiply_adds(196, 32, 7) == 4 * 196 * 32 ** 2 + 2 * 196 * 49 * 32


def test_window_attention_mask_blocks_attention():
    attention = WindowAttention(8, 2, 2)
    mask = shifted_window_mask(4, 4, 2, 1)
    _, weights = attention(torch.randn(3 * 4, 4, 8), mask, need_weights=True)
    assert weights.shape == (12, 2, 4, 4)
    blocked = ~mask.repeat(3, 1, 1)[:, None].expand_as(weights)
    assert (weights[blocked] == 0).all()


def test_swin_block_and_model_shapes_and_gradients():
    block = SwinBlock(8, 2, (4, 4), window_size=2, shift_size=1)
    assert block(torch.randn(2, 16, 8))[0].shape == (2, 16, 8)
    with pytest.raises(ValueError, match="tokens"):
        block(torch.randn(2, 15, 8))
    model = SwinTransformer(dim=8, num_heads=(1, 2))
    x = torch.randn(2, 1, 28, 28)
    assert [f.shape for f in model.features(x)] == [(2, 14, 14, 8), (2, 7, 7, 16)]
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_patch_embed_is_a_linear_map_of_each_patch():
    embed = PatchEmbed(4, 1, 6)
    x = torch.randn(2, 1, 8, 8)
    patches = F.unfold(x, 4, stride=4).transpose(1, 2)
    torch.testing.assert_close(embed(x), patches @ embed.proj.weight.flatten(1).T + embed.proj.bias)
    with pytest.raises(ValueError, match="patches"):
        embed(torch.randn(1, 1, 9, 8))


def test_sincos_and_interpolated_position_embeddings():
    table = sincos_position_embedding((3, 5), 8)
    assert table.shape == (15, 8)
    torch.testing.assert_close(table[0], torch.tensor([0, 0, 1, 1, 0, 0, 1, 1.0]))
    learned = torch.randn(16, 6)
    torch.testing.assert_close(interpolate_position_embedding(learned, 4, 4), learned)
    assert interpolate_position_embedding(learned, 4, (8, 6)).shape == (48, 6)
    with pytest.raises(ValueError):
        interpolate_position_embedding(learned, 5, 6)
    with pytest.raises(ValueError):
        sincos_position_embedding(4, 6)


@pytest.mark.parametrize("pool, position", [("cls", "learned"), ("mean", "learned2d"), ("cls", "sincos"),
                                            ("mean", "none")])
def test_vit_variants_run_at_two_sizes_and_return_attention(pool, position):
    model = ViT(dim=16, depth=2, num_heads=2, pool=pool, position=position).eval()
    x = torch.randn(3, 1, 28, 28)
    logits, attentions = model(x, return_attention=True)
    tokens = 49 + (pool == "cls")
    assert logits.shape == (3, 10) and [a.shape for a in attentions] == [(3, 2, tokens, tokens)] * 2
    torch.testing.assert_close(logits, model(x), rtol=1e-4, atol=1e-5)   # explicit path == fused SDPA
    assert model(torch.randn(1, 1, 56, 56)).shape == (1, 10)


def test_vit_rejects_unknown_options():
    with pytest.raises(ValueError, match="pool"):
        ViT(pool="max")
    with pytest.raises(ValueError, match="position"):
        ViT(position="3d")
