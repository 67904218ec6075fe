"""utils.swin_parts (windows, shifted-window mask, relative position bias, patch merging) and the ViT/Swin models."""

import itertools

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
import torchvision

from utils.measuring import count_flops, count_parameters
from utils.models.mae import MaskedAutoencoder, linear_probe, patchify, random_masking, unpatchify
from utils.models.swin import SwinBlock, SwinSegmenter, SwinTransformer, WindowAttention
from utils.models.vit import (SETR, ConvStem, PatchEmbed, PoolFormerBlock, ViT, drop_path,
                              interpolate_position_embedding, sincos_position_embedding)
from utils.swin_parts import (AxialAttention, PatchMerging, RelativePositionBias, attention_multiply_adds, axial_multiply_adds,
                              relative_position_index, render_attention_cost, render_shifted_windows,
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


def test_render_shifted_windows_and_attention_cost():
    mask, grid = shifted_window_mask(4, 4, 2, 1), torch.zeros(4, 4, dtype=torch.long)
    fig = render_shifted_windows(grid, grid, grid, mask, 2, 1)
    assert len(fig.axes) == 3 + 4 and "4 windows of 2×2" in fig.axes[0].get_title()  # three maps, four masks
    with pytest.raises(ValueError, match="S×S"):
        render_shifted_windows(grid, grid[:2], grid, mask, 2, 1)
    with pytest.raises(ValueError, match="M²"):
        render_shifted_windows(grid, grid, grid, mask, 3, 1)
    fig = render_attention_cost([16, 64], {"global": [1e-3, 4e-3], "windows": [1e-3, 2e-3]}, 8, 2, "measured")
    assert [ax.get_title() for ax in fig.axes] == ["multiply-adds (formula)", "measured"]
    with pytest.raises(ValueError, match="one time per token count"):
        render_attention_cost([16, 64], {"global": [1e-3]}, 8, 2, "measured")
    plt.close("all")


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


def test_drop_path_matches_torchvision_and_keeps_the_expectation():
    x = torch.randn(256, 3, 4)
    for p in (0.0, 0.2, 0.7, 1.0):
        torch.manual_seed(3)
        ours = drop_path(x, p, training=True)
        torch.manual_seed(3)
        assert torch.equal(ours, torchvision.ops.stochastic_depth(x, p, "row", True))
    assert torch.equal(drop_path(x, 0.5, training=False), x)
    dropped = (drop_path(x, 0.5, True).flatten(1) == 0).all(1)
    assert 0.3 < dropped.float().mean() < 0.7                        # whole samples
    many = drop_path(x[:2].repeat(50_000, 1, 1), 0.4, True).view(50_000, 2, 3, 4).mean(0)
    torch.testing.assert_close(many, x[:2], atol=0.05 * x[:2].abs().max().item(), rtol=0)
    with pytest.raises(ValueError, match="drop probability"):
        drop_path(x, 1.5, True)


def test_poolformer_block_and_conv_stem_vit():
    block = PoolFormerBlock(8).eval()
    x = torch.randn(2, 16, 8)
    grid = block.norm1(x).transpose(1, 2).reshape(2, 8, 4, 4)
    mean = F.avg_pool2d(grid, 3, 1, 1, count_include_pad=False) - grid
    torch.testing.assert_close(block.mix(block.norm1(x)), mean.flatten(2).transpose(1, 2))
    assert block(x)[0].shape == x.shape and block(x)[1] is None
    with pytest.raises(ValueError, match="square"):
        block(torch.randn(1, 15, 8))
    pool_vit = ViT(dim=16, depth=2, num_heads=2, pool="mean", position="none", mixer="pool")
    attention_vit = ViT(dim=16, depth=2, num_heads=2, pool="mean", position="none")
    assert count_parameters(attention_vit) - count_parameters(pool_vit) == 2 * (4 * 16 * 16 + 4 * 16)
    assert pool_vit(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    with pytest.raises(ValueError, match="class token"):
        ViT(mixer="pool")
    hybrid = ViT(dim=16, depth=1, num_heads=2, stem="conv")
    assert isinstance(hybrid.patch_embed, ConvStem) and hybrid.patch_embed(torch.randn(2, 1, 28, 28)).shape == (2, 49, 16)
    assert hybrid(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="power of 2"):
        ConvStem(patch_size=3)
    with pytest.raises(ValueError, match="stem"):
        ViT(stem="resnet")


def test_axial_attention_shapes_cost_and_reach():
    axial = AxialAttention(8, 2).eval()
    x = torch.randn(2, 3, 5, 8)
    out = axial(x)
    assert out.shape == x.shape
    rows, _ = axial.row_attn(x.reshape(6, 5, 8))                     # by hand: rows, then columns
    columns = rows.view(2, 3, 5, 8).transpose(1, 2).reshape(10, 3, 8)
    torch.testing.assert_close(out, axial.col_attn(columns)[0].view(2, 5, 3, 8).transpose(1, 2))
    torch.testing.assert_close(axial(x, need_weights=True), out, rtol=1e-4, atol=1e-5)
    assert count_flops(axial, x[:1], need_weights=True) // 2 == axial_multiply_adds(3, 5, 8) == 8 * 15 * 64 + 2 * 15 * 8 * 8
    probe = torch.randn(1, 3, 5, 8, requires_grad=True)
    axial(probe)[0, 2, 4].sum().backward()
    assert (probe.grad.abs().sum(-1) > 0).all()
    with pytest.raises(ValueError, match="channels-last"):
        axial(torch.randn(2, 8, 3, 5))
    with pytest.raises(ValueError, match="positive"):
        axial_multiply_adds(0, 3, 8)


def test_setr_and_swin_segmenter_score_every_pixel():
    setr = SETR(5, image_size=16, patch_size=4, dim=16, depth=1, num_heads=2).eval()
    x = torch.randn(2, 1, 16, 16)
    logits = setr(x)
    assert logits.shape == (2, 5, 16, 16)
    grid = setr.encoder.encode(x).transpose(1, 2).reshape(2, 16, 4, 4)   # tokens folded back, row-major
    torch.testing.assert_close(logits, F.interpolate(setr.head(grid), size=(16, 16), mode="bilinear"))
    swin = SwinSegmenter(5, image_size=16, patch_size=2, dim=8, window_size=4, num_heads=(2, 2)).eval()
    assert swin(x).shape == (2, 5, 16, 16)
    assert [level.shape[1:3] for level in swin.backbone.features(x)] == [(8, 8), (4, 4)]
    assert len(swin.lateral) == 2 and swin.lateral[1].in_channels == 16


def test_mae_masking_patchify_loss_and_probe():
    images = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(unpatchify(patchify(images, 4), 4, (7, 7)), images)
    assert torch.equal(patchify(images, 4)[0, 1], images[0, 0, :4, 4:8].flatten())   # second patch: top row, cols 4-7
    tokens = torch.arange(20.0).view(2, 10, 1)
    visible, mask, restore = random_masking(tokens, 0.7, torch.Generator().manual_seed(0))
    assert visible.shape == (2, 3, 1) and mask.sum(1).tolist() == [7.0, 7.0]
    for b in range(2):   # the visible tokens are exactly the unmasked ones
        assert sorted(visible[b, :, 0].tolist()) == tokens[b, mask[b] == 0, 0].tolist()
    placed = torch.cat([visible, torch.full((2, 7, 1), -1.0)], 1).gather(1, restore[:, :, None])
    assert torch.equal(placed[mask == 0], tokens[mask == 0]) and (placed[mask == 1] == -1).all()   # order restored
    with pytest.raises(ValueError, match="mask_ratio"):
        random_masking(tokens, 1.0)
    mae = MaskedAutoencoder(dim=16, depth=1, num_heads=2, decoder_dim=8)
    loss, predicted, mask = mae(images, torch.Generator().manual_seed(1))
    assert predicted.shape == (3, 49, 16) and mask.sum(1).tolist() == [37.0] * 3
    per_patch = (predicted - patchify(images, 4)).square().mean(-1)
    torch.testing.assert_close(loss, (per_patch * mask).sum() / mask.sum())   # hidden patches only
    assert mae.features(images).shape == (3, 16)
    features, labels = torch.randn(200, 4), torch.randint(0, 3, (200,))
    separable = features + 5 * F.one_hot(labels, 4).float()
    assert linear_probe(separable, labels, separable, labels) == 1.0


def test_swin_patch_partition_and_linear_embedding_is_its_stride_4_convolution():
    swin = SwinTransformer(image_size=16, patch_size=4, in_channels=3, dim=12, depths=(2,), num_heads=(3,))
    conv, image = swin.patch_embed.proj, torch.randn(2, 3, 16, 16)
    partition = F.unfold(image, 4, stride=4).transpose(1, 2)                   # (2, 16 patches, 4·4·3 = 48)
    linear = torch.nn.Linear(48, 12)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.reshape(12, 48))                         # (C, 3, 4, 4) → (C, 48)
        linear.bias.copy_(conv.bias)
    assert partition.shape == (2, 16, 48)
    torch.testing.assert_close(swin.patch_embed(image), linear(partition))
    # the paper concatenates each patch's pixels as RGB triples: the same map with the weights' columns permuted
    rgb_triples = image.view(2, 3, 4, 4, 4, 4).permute(0, 2, 4, 3, 5, 1).reshape(2, 16, 48)
    torch.testing.assert_close(linear(partition), rgb_triples @ conv.weight.permute(0, 2, 3, 1).reshape(12, 48).T
                               + conv.bias)


def test_vit_forward_is_the_papers_equations_1_to_4():
    vit = ViT(dim=16, depth=2, num_heads=2).eval()
    images = torch.randn(2, 1, 28, 28)
    E = vit.patch_embed.proj
    with torch.no_grad():
        x_p = F.unfold(images, 4, stride=4).transpose(1, 2)                         # (2, 49, 16)
        E_pos = torch.cat([vit.cls_position[0], vit.position_table])                # (50, 16)
        z = torch.cat([vit.cls_token.expand(2, -1, -1), x_p @ E.weight.flatten(1).T + E.bias], dim=1) + E_pos
        for block in vit.blocks:
            z = block.attn(block.norm1(z))[0] + z
            z = block.mlp(block.norm2(z)) + z
        y = vit.norm(z[:, 0])                                                       # LN of the class token only
        torch.testing.assert_close(vit(images), vit.head(y))
