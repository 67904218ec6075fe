"""utils.models.tnt: Transformer in Transformer (Chapter 3b)."""

import pytest
import torch
import torch.nn.functional as F

from utils.measuring import count_parameters
from utils.models.tnt import TNT, TNTBlock

TNT_S = dict(image_size=224, patch_size=16, word_size=4, in_channels=3, num_classes=1000, outer_dim=384,
             inner_dim=24, depth=12, outer_heads=6, inner_heads=4)
pytestmark = pytest.mark.usefixtures("one_thread")


def tnt_parameters(image_size, patch_size, word_size, in_channels, num_classes, outer_dim, inner_dim, depth,
                   mlp_ratio=4.0, **_):
    """The paper's TNT, counted by hand: embeddings, depth × (inner block, projection, outer block), norm, head."""
    patches, words = (image_size // patch_size) ** 2, (patch_size // word_size) ** 2

    def block(dim):   # pre-norm block: 2 LayerNorms, attention (4d² + 4d), MLP d → r·d → d
        hidden = int(dim * mlp_ratio)
        return 2 * 2 * dim + 4 * dim * dim + 4 * dim + 2 * dim * hidden + hidden + dim

    embeddings = (in_channels * word_size ** 2 * inner_dim + inner_dim + words * inner_dim
                  + outer_dim + (1 + patches) * outer_dim)
    per_block = block(inner_dim) + words * inner_dim * outer_dim + outer_dim + block(outer_dim)
    return embeddings + depth * per_block + 2 * outer_dim + outer_dim * num_classes + num_classes


def test_shapes_and_gradients():
    model = TNT(image_size=16, patch_size=8, word_size=2, in_channels=3, num_classes=5, outer_dim=32,
                inner_dim=8, depth=2)
    x = torch.randn(2, 3, 16, 16)
    words, patches = model.encode(x)
    assert words.shape == (2 * 4, 16, 8) and patches.shape == (2, 1 + 4, 32)
    logits = model(x)
    assert logits.shape == (2, 5)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("options", [dict(), dict(image_size=16, patch_size=8, word_size=4, in_channels=3,
                                                  outer_dim=48, inner_dim=12, depth=3, mlp_ratio=2.0)])
def test_parameter_count_matches_the_formula(options):
    settings = {**dict(image_size=28, patch_size=4, word_size=2, in_channels=1, num_classes=10, outer_dim=64,
                       inner_dim=16, depth=2), **options}
    assert count_parameters(TNT(**settings)) == tnt_parameters(**settings)


def test_tnt_small_has_the_papers_size():
    with torch.device("meta"):
        model = TNT(**TNT_S)
    count = count_parameters(model)
    assert count == tnt_parameters(**TNT_S) == 23_617_696
    # the paper's 23.8 M also counts its code's LayerNorm before each projection and its first patch projection
    assert 23.5e6 < count < 23.8e6


def test_words_are_a_linear_map_of_each_sub_patch_in_patch_order():
    model = TNT(image_size=8, patch_size=4, word_size=2, in_channels=2, outer_dim=16, inner_dim=6, depth=1)
    x = torch.randn(1, 2, 8, 8)
    weight, bias = model.word_embed.weight.flatten(1), model.word_embed.bias
    words = model.words(x)                                                         # (4 patches, 4 words, 6)
    for patch, (row, col) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        # patch (row, col) holds the 4×4 pixels at (4·row, 4·col); its words are their 2×2 sub-patches, row-major
        pixels = x[:, :, 4 * row: 4 * row + 4, 4 * col: 4 * col + 4]
        sub_patches = F.unfold(pixels, 2, stride=2)[0].T                           # (4 words, 2·2·2)
        torch.testing.assert_close(words[patch], sub_patches @ weight.T + bias + model.word_position[0])


def test_inner_attention_stays_inside_its_patch_and_outer_mixes_patches():
    model = TNT(image_size=8, patch_size=4, word_size=2, outer_dim=16, inner_dim=8, depth=1).eval()
    x = torch.randn(1, 1, 8, 8)
    changed = x.clone()
    changed[..., :4, :4] += 1.0                                                    # patch 0 only
    with torch.no_grad():
        inner = [model.blocks[0].inner(model.words(image))[0] for image in (x, changed)]
        patches = [model.encode(image)[1] for image in (x, changed)]
    assert not torch.allclose(inner[0][0], inner[1][0])
    torch.testing.assert_close(inner[0][1:], inner[1][1:])                         # other patches' words untouched
    moved = (patches[0] - patches[1]).abs().amax(-1)[0]
    assert (moved > 1e-6).all(), f"after the outer block every token should feel patch 0, moved {moved}"


def test_block_adds_the_projected_words_to_the_patches_only():
    block = TNTBlock(outer_dim=12, inner_dim=4, words=3, outer_heads=2, inner_heads=2).eval()
    words, patches = torch.randn(2 * 5, 3, 4), torch.randn(2, 1 + 5, 12)
    with torch.no_grad():
        new_words, new_patches = block(words, patches)
        expected_words = block.inner(words)[0]
        detail = block.project(expected_words.reshape(2, 5, 12))
        expected = block.outer(torch.cat([patches[:, :1], patches[:, 1:] + detail], dim=1))[0]
    torch.testing.assert_close(new_words, expected_words)
    torch.testing.assert_close(new_patches, expected)
    with pytest.raises(ValueError, match="words"):
        block(torch.randn(9, 3, 4), patches)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="whole words"):
        TNT(image_size=28, patch_size=4, word_size=3)
    with pytest.raises(ValueError, match="resize"):
        TNT()(torch.randn(1, 1, 32, 32))
