"""Chapter 9's BLIP networks (utils/models/blip.py): shapes, CLIP's text tower stays frozen, the matching head ignores
padding and sees where an image feature is, the captioner is causal, its loss skips padding, greedy decoding stops
at the end token, bad input."""

import pytest
import torch
import torch.nn.functional as F

from utils.models.blip import Captioner, GroundedText, MatchingHead
from utils.models.clip import TextEncoder

VOCABULARY, CHANNELS, GRID, BEGIN, END = 30, 8, (3, 3), 1, 2


def text_tower():
    return TextEncoder(VOCABULARY, width=16, layers=1, heads=2, max_length=10)


def tokens(*rows):
    out = torch.zeros(len(rows), 8, dtype=torch.int64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row)
    return out


def maps(count, seed=0):
    return torch.randn(count, CHANNELS, 3, 3, generator=torch.Generator().manual_seed(seed))


def test_matching_head_gives_two_logits_and_ignores_padding():
    torch.manual_seed(0)
    head = MatchingHead(text_tower(), CHANNELS, GRID, heads=2).eval()
    text, image = tokens([BEGIN, 5, 6, END], [BEGIN, 7, END]), maps(2)
    logits = head(text, image)
    assert logits.shape == (2, 2)
    longer = torch.cat([text, torch.zeros(2, 2, dtype=torch.int64)], 1)
    torch.testing.assert_close(head(longer, image), logits, atol=1e-5, rtol=1e-5)
    probability = head.match_probability(text, image)
    torch.testing.assert_close(probability, logits.softmax(1)[:, 1])


def test_cross_attention_sees_where_a_feature_is():
    torch.manual_seed(0)
    head = MatchingHead(text_tower(), CHANNELS, GRID, heads=2).eval()
    image = maps(1)
    mirrored = image.flip(-1)              # the same features, in other cells
    text = tokens([BEGIN, 5, 6, END])
    assert not torch.allclose(head(text, image), head(text, mirrored)), \
        "with a position per cell, moving features changes the answer"
    head.text.image_position.data.zero_()
    torch.testing.assert_close(head(text, image), head(text, mirrored), atol=1e-5, rtol=1e-5,
                               msg="without positions cross-attention is blind to where a feature is")


def test_captioner_is_causal_and_its_loss_skips_padding():
    torch.manual_seed(0)
    captioner = Captioner(text_tower(), CHANNELS, GRID, heads=2).eval()
    assert not any(p.requires_grad for p in captioner.text.text_encoder.parameters()), "CLIP's text tower is frozen"
    assert captioner.head.out_features == VOCABULARY
    image = maps(1)
    first, second = tokens([BEGIN, 5, 6, 7]), tokens([BEGIN, 5, 9, 3])
    torch.testing.assert_close(captioner(first, image)[:, :2], captioner(second, image)[:, :2], atol=1e-5, rtol=1e-5,
                               msg="a position's prediction must not depend on later tokens")
    text = tokens([BEGIN, 5, 6, END])
    logits = captioner(text[:, :-1], image)
    expected = F.cross_entropy(logits[0, :3], text[0, 1:4])          # the three real next tokens, no padding
    torch.testing.assert_close(captioner.loss(text, image, label_smoothing=0.0), expected, atol=1e-5, rtol=1e-5)


def test_greedy_decoding_appends_the_argmax_and_pads_after_the_end(monkeypatch):
    torch.manual_seed(0)
    captioner = Captioner(text_tower(), CHANNELS, GRID, heads=2).eval()
    written = captioner.greedy(maps(2), BEGIN, END, max_length=6)
    assert written.shape == (2, 6) and (written[:, 0] == BEGIN).all()
    for step in range(1, 6):                     # the real network: every token is the argmax given the prefix
        row = written[0]
        if END in row[:step].tolist():
            break
        assert captioner(written[:1, :step], maps(2)[:1])[0, -1].argmax() == row[step]

    def scripted(text, image_maps):              # word 5 twice, then the end token, then anything
        logits = torch.zeros(len(text), text.shape[1], VOCABULARY)
        logits[..., 5] = 1.0
        if text.shape[1] >= 3:
            logits[:, -1, END] = 2.0
        return logits

    monkeypatch.setattr(captioner, "forward", scripted)
    assert captioner.greedy(maps(1), BEGIN, END, max_length=6).tolist() == [[BEGIN, 5, 5, END, 0, 0]]
    with pytest.raises(ValueError, match="max_length"):
        captioner.greedy(maps(1), BEGIN, END, max_length=40)


def test_bad_input_is_refused_with_what_to_do():
    text = GroundedText(text_tower(), CHANNELS, GRID, causal=False, heads=2)
    with pytest.raises(ValueError, match="N×C×3×3"):
        text(tokens([BEGIN, END]), torch.randn(1, CHANNELS, 4, 4))
    with pytest.raises(ValueError, match="one row per image"):
        text(tokens([BEGIN, END]), maps(2))
