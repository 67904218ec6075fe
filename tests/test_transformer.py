"""Tests for utils/models/transformer.py and utils/seq2seq.py (Chapter 3a)."""

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utils.measuring import count_parameters
from utils.models.transformer import (DecoderBlock, DecoderOnlyTransformer, EncoderBlock, FeedForward,
                                      MultiHeadAttention, Seq2SeqTransformer, causal_mask, padding_mask,
                                      scaled_dot_product_attention, sinusoidal_positional_encoding)
from utils.seq2seq import (BOS, EOS, PAD, VOCAB_SIZE, LSTMSeq2Seq, accuracy_by_length, attention_explorer,
                           decode_digits, encode_digits, evaluate_seq2seq, exact_match, greedy_decode, lstm_cell,
                           make_loader, mask_figure, plot_attention, reversal_dataset, teacher_forcing_loss,
                           token_labels, tokens_per_second)


pytestmark = pytest.mark.usefixtures("one_thread")


def small_transformer(**kwargs):
    return Seq2SeqTransformer(VOCAB_SIZE, VOCAB_SIZE, dim=16, num_heads=2, depth=1, max_len=8, **kwargs)


def copy_into_reference(mha: MultiHeadAttention) -> nn.MultiheadAttention:
    reference = nn.MultiheadAttention(mha.dim, mha.num_heads, batch_first=True)
    with torch.no_grad():
        reference.in_proj_weight.copy_(mha.qkv.weight)
        reference.in_proj_bias.copy_(mha.qkv.bias)
        reference.out_proj.weight.copy_(mha.proj.weight)
        reference.out_proj.bias.copy_(mha.proj.bias)
    return reference


@pytest.mark.parametrize("mask_kind", [None, "bool", "float"])
def test_scaled_dot_product_attention_matches_torch(mask_kind):
    q, k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 5)
    mask = None
    if mask_kind:
        allowed = torch.rand(4, 6) > 0.4
        allowed[:, 0] = True
        mask = allowed if mask_kind == "bool" else torch.zeros(4, 6).masked_fill(~allowed, float("-inf"))
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert out.shape == (2, 3, 4, 5) and weights.shape == (2, 3, 4, 6)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 4))


def test_scaled_dot_product_attention_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="q"):
        scaled_dot_product_attention(torch.randn(2, 4, 8), torch.randn(2, 4, 7), torch.randn(2, 4, 8))


def test_multi_head_attention_matches_nn_multihead_attention():
    mha = MultiHeadAttention(16, 4)
    reference = copy_into_reference(mha)
    x, other = torch.randn(2, 5, 16), torch.randn(2, 3, 16)
    keep = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    ours, weights = mha(x, mask=keep[:, None, None], need_weights=True)
    theirs, their_weights = reference(x, x, x, key_padding_mask=~keep, average_attn_weights=False)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(weights, their_weights)
    torch.testing.assert_close(mha(other, x, x)[0], reference(other, x, x)[0])   # cross-attention


def test_multi_head_attention_paths_agree_and_validate():
    mha = MultiHeadAttention(16, 4)
    x = torch.randn(2, 5, 16)
    explicit, weights = mha(x, mask=causal_mask(5), need_weights=True)
    fused, none = mha(x, mask=causal_mask(5))
    torch.testing.assert_close(explicit, fused)
    assert weights.shape == (2, 4, 5, 5) and none is None
    assert (weights[..., 0, 1:] == 0).all()
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="batch, tokens"):
        mha(torch.randn(5, 16))


def test_split_and_merge_heads_are_inverse():
    mha = MultiHeadAttention(12, 3)
    x = torch.randn(2, 7, 12)
    assert mha.split_heads(x).shape == (2, 3, 7, 4)
    torch.testing.assert_close(mha.merge_heads(mha.split_heads(x)), x)
    q, k, v = mha.project(x, None, None)
    assert q.shape == k.shape == v.shape == (2, 3, 7, 4)


def test_sinusoidal_positional_encoding():
    pe = sinusoidal_positional_encoding(10, 8)
    assert pe.shape == (10, 8)
    torch.testing.assert_close(pe[:, 0], torch.sin(torch.arange(10.0)))
    torch.testing.assert_close(pe[:, 3], torch.cos(torch.arange(10.0) / 10000 ** (2 / 8)))
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positional_encoding(4, 5)


def test_masks():
    tokens = torch.tensor([[3, 4, PAD], [5, PAD, PAD]])
    assert padding_mask(tokens).shape == (2, 1, 1, 3)
    assert padding_mask(tokens)[:, 0, 0].tolist() == [[True, True, False], [True, False, False]]
    assert torch.equal(causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))


def test_blocks_keep_shapes():
    x, memory = torch.randn(2, 4, 16), torch.randn(2, 6, 16)
    assert FeedForward(16, 32)(x).shape == x.shape
    out, weights = EncoderBlock(16, 2, 32)(x, need_weights=True)
    assert out.shape == x.shape and weights.shape == (2, 2, 4, 4)
    out, (self_w, cross_w) = DecoderBlock(16, 2, 32)(x, memory, causal_mask(4), need_weights=True)
    assert out.shape == x.shape and self_w.shape == (2, 2, 4, 4) and cross_w.shape == (2, 2, 4, 6)


@pytest.mark.parametrize("positions", Seq2SeqTransformer.POSITIONS)
def test_seq2seq_transformer_shapes(positions):
    model = small_transformer(positions=positions)
    src, tgt = reversal_dataset(3, 1, 5)
    assert model(src, tgt[:, :-1]).shape == (3, 6, VOCAB_SIZE)


def test_seq2seq_transformer_validates():
    with pytest.raises(ValueError, match="positions"):
        small_transformer(positions="learned")
    with pytest.raises(ValueError, match="max_len"):
        small_transformer()(torch.full((1, 9), 3), torch.full((1, 2), BOS))


def test_encode_decode_digits_round_trip():
    tokens = encode_digits(["4071", "9"])
    assert tokens.tolist() == [[7, 3, 10, 4], [12, PAD, PAD, PAD]]
    assert decode_digits(tokens) == ["4071", "9"]
    assert decode_digits(torch.tensor([[BOS, 4, 5, EOS, 6]])) == ["12"]
    assert token_labels([BOS, 3, EOS, PAD]) == ["<s>", "0", "</s>", "·"]
    with pytest.raises(ValueError, match="digits"):
        encode_digits(["12a"])
    with pytest.raises(ValueError, match="length"):
        encode_digits(["1234"], length=2)


def test_reversal_dataset():
    src, tgt = reversal_dataset(50, 2, 6, seed=3)
    assert src.shape == (50, 6) and tgt.shape == (50, 8)
    assert (tgt[:, 0] == BOS).all() and ((tgt == EOS).sum(1) == 1).all()
    assert [s[::-1] for s in decode_digits(src)] == decode_digits(tgt)
    assert all(2 <= len(s) <= 6 for s in decode_digits(src))
    assert torch.equal(reversal_dataset(50, 2, 6, seed=3)[0], src)
    with pytest.raises(ValueError, match="min_len"):
        reversal_dataset(5, 0, 3)


def test_exact_match():
    tgt = torch.tensor([[BOS, 4, 5, EOS, PAD], [BOS, 6, EOS, PAD, PAD]])
    predicted = torch.tensor([[BOS, 4, 5, EOS, 9, 9], [BOS, 6, 7, EOS, PAD, PAD]])
    assert exact_match(predicted, tgt).tolist() == [True, False]
    assert exact_match(torch.tensor([[BOS, 4, 5]]), tgt[:1]).tolist() == [False]   # never ended


def test_loss_decode_and_evaluate_run_for_both_models():
    src, tgt = reversal_dataset(16, 1, 4)
    for model in (small_transformer(), LSTMSeq2Seq(dim=16, num_layers=1)):
        loss = teacher_forcing_loss(model, (src, tgt))
        assert loss.ndim == 0 and loss.item() > 0
        loss.backward()
        output = greedy_decode(model, src, 5)
        assert output.shape[0] == 16 and (output[:, 0] == BOS).all() and output.shape[1] <= 6
        scores = evaluate_seq2seq(model, make_loader(src, tgt, 8))
        assert set(scores) == {"loss", "acc", "token_acc"} and 0 <= scores["acc"] <= 1
        by_length = accuracy_by_length(model, src, tgt)
        assert set(by_length) <= {1, 2, 3, 4}


def test_a_few_steps_of_training_lower_the_loss():
    src, tgt = reversal_dataset(64, 1, 3)
    model = small_transformer()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = teacher_forcing_loss(model, (src, tgt)).item()
    for _ in range(10):
        optimizer.zero_grad()
        teacher_forcing_loss(model, (src, tgt)).backward()
        optimizer.step()
    assert teacher_forcing_loss(model, (src, tgt)).item() < 0.8 * first


def test_make_loader_yields_token_batches():
    src, tgt = reversal_dataset(10, 1, 3)
    batches = list(make_loader(src, tgt, 4))
    assert len(batches) == 3 and torch.equal(batches[0][0], src[:4]) and batches[0][0].dtype == torch.long


def test_lstm_cell_matches_torch():
    cell = nn.LSTMCell(3, 4)
    x, h, c = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)
    torch.testing.assert_close(lstm_cell(x, h, c, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh),
                               cell(x, (h, c)))


def test_lstm_encoder_ignores_padding():
    model = LSTMSeq2Seq(dim=8, num_layers=1)
    short, padded = torch.tensor([[4, 5]]), torch.tensor([[4, 5, PAD, PAD]])
    torch.testing.assert_close(model.encode(short)[0][0], model.encode(padded)[0][0])


def test_tokens_per_second_is_positive_for_both_paths():
    src, tgt = reversal_dataset(8, 1, 4)
    model = small_transformer()
    assert tokens_per_second(model, src, tgt, need_weights=True, steps=1) > 0
    assert tokens_per_second(model, src, tgt, need_weights=False, steps=1) > 0


def test_figures_and_explorer():
    src, _ = reversal_dataset(4, 2, 5)
    fig = mask_figure(src, 5, example=1)
    assert len(fig.axes) == 3
    plt.close(fig)
    with pytest.raises(ValueError, match="example"):
        mask_figure(src, 5, example=4)
    model = small_transformer()
    fig = plot_attention(model, src, example=1, kind="encoder self-attention", layer=0)
    assert len(fig.axes) == 3                                  # two heads and their colour bar
    assert fig.axes[0].get_ylabel() == "query (input token)" and fig.axes[-1].get_ylabel() == "attention weight"
    plt.close(fig)
    with pytest.raises(ValueError, match="example"):
        plot_attention(model, src, example=9)
    with pytest.raises(ValueError, match="kind"):
        plot_attention(model, src, kind="sideways")
    with pytest.raises(ValueError, match="layer"):
        plot_attention(model, src, layer=3)
    explorer = attention_explorer(model, src)
    first = explorer.image.value
    explorer.set(example=2)
    assert explorer.image.value != first, "the first control must change the figure"
    assert list(explorer.controls) == ["example", "kind", "layer"]


def test_hidden_zero_builds_attention_only_blocks():
    model = small_transformer(hidden=0)
    assert all(block.ffn is None for block in [*model.encoder, *model.decoder])
    src, tgt = reversal_dataset(3, 1, 5)
    assert model(src, tgt[:, :-1]).shape == (3, 6, VOCAB_SIZE)
    block, x = EncoderBlock(16, 2, 0).eval(), torch.randn(2, 4, 16)
    attended, _ = block.attn(block.norm1(x))
    torch.testing.assert_close(block(x)[0], x + attended)          # nothing after the attention's residual
    with pytest.raises(ValueError, match="hidden"):
        EncoderBlock(16, 2, -1)


def test_decoder_only_transformer_shapes_parameters_and_stack():
    vocab, dim, depth = 13, 16, 3
    model = DecoderOnlyTransformer(vocab, dim=dim, num_heads=2, depth=depth, max_len=8).eval()
    tokens = torch.randint(0, vocab, (2, 6))
    assert model(tokens).shape == (2, 6, vocab)
    block = 4 * dim * dim + 4 * dim + 8 * dim * dim + 5 * dim + 2 * 2 * dim      # attention, FFN, two LayerNorms
    assert count_parameters(model) == vocab * dim + depth * block + 2 * dim + dim * vocab + vocab
    assert all(type(b) is EncoderBlock for b in model.blocks)                     # no cross-attention anywhere
    with torch.no_grad():                                                         # the stack, written out
        x = model.embed(tokens) * dim ** 0.5 + sinusoidal_positional_encoding(6, dim)
        for b in model.blocks:
            x = b(x, causal_mask(6))[0]
        torch.testing.assert_close(model(tokens), model.head(model.norm(x)))


def test_decoder_only_transformer_is_causal_and_unmasked_is_not():
    model = DecoderOnlyTransformer(13, dim=16, num_heads=2, depth=2, max_len=8).eval()
    tokens = torch.randint(3, 13, (1, 7))
    changed = tokens.clone()
    changed[0, 4:] = (tokens[0, 4:] - 2) % 10 + 3                                   # other tokens at positions 4–6
    with torch.no_grad():
        causal = model(tokens), model(changed)
        both_ways = model(tokens, causal=False), model(changed, causal=False)
    torch.testing.assert_close(causal[0][:, :4], causal[1][:, :4])               # an upper-triangular mask fails here
    assert not torch.allclose(causal[0][:, 4:], causal[1][:, 4:], atol=1e-4)
    assert not torch.allclose(both_ways[0][:, :4], both_ways[1][:, :4], atol=1e-4)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 9, dtype=torch.long))
