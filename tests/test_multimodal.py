"""Chapter 9's image–text data: tokenising and decoding, captions (order, synonyms, counts, held-out templates never
used), captioned scenes from the cached Fashion scenes, prompts, the chapter's and its explorers' figures,
bad input."""

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from utils import multimodal


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """Scenes are cached under a temporary data folder, never in the repository's data/."""
    monkeypatch.setattr("utils.scenes.data_dir", lambda: tmp_path)


def test_tokenize_and_decode_round_trip():
    text = "three items: a bag, a coat and an ankle-boot"
    tokens = multimodal.tokenize([text, "a bag"])
    assert tokens.shape == (2, multimodal.MAX_LENGTH) and tokens.dtype == torch.int64
    assert tokens[0, 0] == multimodal.BOS and multimodal.EOS in tokens[0].tolist()
    assert (tokens[1, 4:] == multimodal.PAD).all()
    assert multimodal.decode(tokens) == [text, "a bag"]
    assert multimodal.tokenize("a zebra")[0, 2] == multimodal.UNK, "unknown words become <unk>"
    with pytest.raises(ValueError, match="shorten"):
        multimodal.tokenize(" ".join(["bag"] * 20))
    with pytest.raises(ValueError, match="at least one"):
        multimodal.tokenize([])


def test_captions_name_items_by_synonyms_in_their_order_and_never_use_held_out_templates():
    generator = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(400):
        text = multimodal.caption([8, 7], generator)            # a bag (left) and a sneaker (right)
        seen.add(text)
        found = [w for w in multimodal.words(text) if w in multimodal.CLASS_IDS]
        assert sorted(multimodal.CLASS_IDS[w] for w in found) == [7, 8]
        if " left of " in text:
            assert multimodal.CLASS_IDS[found[0]] == 8, f"'{text}': the bag is on the left"
        if " right of " in text:
            assert multimodal.CLASS_IDS[found[0]] == 7, f"'{text}': the sneaker is on the right"
    assert len(seen) > 30, "varied captions: synonyms × phrasings"
    singles = {multimodal.caption([3], generator) for _ in range(300)}
    held_out = {t.format(name) for t in multimodal.HELD_OUT_TEMPLATES for name in multimodal.SYNONYMS[3]}
    assert not singles & {multimodal.articles(t) for t in held_out}
    assert multimodal.caption([0, 1, 2], torch.Generator().manual_seed(1)).count(" a") >= 2
    with pytest.raises(ValueError, match="1 to 3"):
        multimodal.caption([], generator)


def test_left_to_right_sorts_by_box_centre():
    boxes = torch.tensor([[30.0, 0, 40, 10], [0.0, 0, 10, 10], [12.0, 5, 20, 9]])
    assert multimodal.left_to_right(boxes, torch.tensor([5, 6, 7])) == [6, 7, 5]


def test_captioned_scenes_are_deterministic_and_consistent():
    scenes = multimodal.captioned_scenes("test", 30)
    again = multimodal.captioned_scenes("test", 30)
    assert scenes.captions == again.captions
    assert scenes.images.shape[1:] == (1, 48, 48) and scenes.semantic.shape[1:] == (48, 48)
    assert scenes.tokens.shape == (len(scenes), 4, multimodal.MAX_LENGTH)
    for labels, semantic, counts in zip(scenes.labels, scenes.semantic, scenes.counts):
        assert len(labels) == counts and set(semantic.unique().tolist()) - {0} <= {1 + c for c in labels}
    with pytest.raises(ValueError, match="captions_per_scene"):
        multimodal.captioned_scenes("test", 5, captions_per_scene=0)


def test_class_prompts_use_the_asked_synonym():
    prompts = multimodal.class_prompts(("a photo of a {}",), synonym=1)
    assert prompts == [[multimodal.articles(f"a photo of a {names[1]}") for names in multimodal.SYNONYMS]]
    with pytest.raises(ValueError, match="synonym"):
        multimodal.class_prompts(synonym=3)


def fake_text_encoder(texts):
    """A bag of words: the normalised sum of one fixed random vector per word."""
    table = torch.randn(len(multimodal.VOCABULARY), 8, generator=torch.Generator().manual_seed(0))
    return F.normalize(torch.stack([table[multimodal.tokenize(t)[0]].sum(0) for t in texts]), dim=1)


def test_render_caption_search_shows_the_best_scenes_and_rejects_bad_input():
    images = torch.randint(0, 255, (20, 1, 48, 48), dtype=torch.uint8)
    embeddings = F.normalize(torch.randn(20, 8), dim=1)
    classes = F.normalize(torch.randn(10, 8), dim=1)
    fig = multimodal.render_caption_search("a bag left of a zebra", fake_text_encoder, embeddings, images, 3, classes,
                                           0.07)
    assert len(fig.axes) == 14 and "zebra" in fig._suptitle.get_text()
    plt.close(fig)
    with pytest.raises(ValueError, match="type a caption"):
        multimodal.render_caption_search("  ", fake_text_encoder, embeddings, images, 0, classes, 0.07)
    with pytest.raises(ValueError, match="scene must be"):
        multimodal.render_caption_search("a bag", fake_text_encoder, embeddings, images, 20, classes, 0.07)


def test_render_lseg_lets_a_synonym_replace_its_class():
    seen = {}

    def score(images, labels):
        seen["labels"] = labels
        logits = torch.zeros(len(images), 1 + len(labels), 48, 48)
        logits[:, 1 + labels.index("trainer"), 10:20, 10:20] = 5.0
        return logits

    image = torch.zeros(1, 48, 48, dtype=torch.uint8)
    semantic = torch.zeros(48, 48, dtype=torch.int64)
    semantic[10:20, 10:20] = 1 + 7                                     # a sneaker
    fig = multimodal.render_lseg("Trainer", image, semantic, score)
    assert seen["labels"][7] == "trainer" and "sneaker" not in seen["labels"] and len(seen["labels"]) == 10
    assert "IoU with the true sneaker mask (cyan) 1.00" in fig.axes[2].get_title()
    plt.close(fig)
    fig = multimodal.render_lseg("zebra", image, semantic, score=lambda i, l: torch.zeros(1, 1 + len(l), 48, 48))
    plt.close(fig)
    with pytest.raises(ValueError, match="type a label"):
        multimodal.render_lseg("", image, semantic, score)


def test_render_captioned_scenes_titles_and_colours_each_scene():
    images = torch.randint(0, 255, (3, 1, 48, 48), dtype=torch.uint8)
    fig = multimodal.render_captioned_scenes(images, ["a bag", "a coat", "a dress"], "three scenes",
                                             ["tab:green", "tab:red", "tab:green"])
    assert [ax.get_title() for ax in fig.axes] == ["a bag", "a coat", "a dress"]
    assert fig.axes[1].title.get_color() == "tab:red" and fig._suptitle.get_text() == "three scenes"
    plt.close(fig)
    with pytest.raises(ValueError, match="one title"):
        multimodal.render_captioned_scenes(images, ["a bag"], "too few titles")


def test_render_similarity_matrix_writes_every_value():
    matrix = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    fig = multimodal.render_similarity_matrix(matrix, ["a bag", "a coat"], ["image 0", "image 1"])
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.90", "0.10", "0.20", "0.80"]
    plt.close(fig)
    with pytest.raises(ValueError, match="images × captions"):
        multimodal.render_similarity_matrix(matrix, ["a bag"], ["image 0", "image 1"])


def test_swapped_captions_state_the_reverse_order_with_the_same_items():
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        swapped = multimodal.swapped_caption([8, 7], generator)       # a bag left of a sneaker
        named, ordered = multimodal.caption_items(swapped)
        assert ordered and named == [7, 8], f"'{swapped}' must put the sneaker on the left"
        assert not multimodal.caption_is_true(swapped, [8, 7])
    three = multimodal.swapped_caption([0, 4, 8], generator)
    assert multimodal.caption_items(three) == ([8, 4, 0], True)
    assert multimodal.swapped_caption([3], generator) is None and multimodal.swapped_caption([8, 4, 8], generator) is None
    ordered_only = {multimodal.caption([8, 7], generator, ordered=True) for _ in range(200)}
    assert all(" of " in text for text in ordered_only)


def test_caption_items_and_truth_read_order_only_where_stated():
    assert multimodal.caption_items("a purse right of a trainer") == ([7, 8], True)
    assert multimodal.caption_items("two items: a tee and a jeans") == ([0, 1], False)
    assert multimodal.caption_items("a photo of a parka") == ([4], False)
    assert multimodal.caption_is_true("a handbag and a trainer", [7, 8]), "no order stated: either order is true"
    assert multimodal.caption_is_true("a trainer left of a handbag", [7, 8])
    assert not multimodal.caption_is_true("a handbag left of a trainer", [7, 8])
    assert not multimodal.caption_is_true("a handbag", [7, 8]), "an item missing"
    assert not multimodal.caption_is_true("three items: a bag, a bag and a coat", [8, 4])


def test_swapped_tokens_mark_the_scenes_that_have_a_swap():
    scenes = multimodal.captioned_scenes("test", 40)
    tokens, has_swap = multimodal.swapped_tokens(scenes)
    assert tokens.shape == (len(scenes), multimodal.MAX_LENGTH) and has_swap.dtype == torch.bool
    for row, labels, swap in zip(multimodal.decode(tokens), scenes.labels, has_swap.tolist()):
        assert swap == (labels != labels[::-1])
        if swap:
            assert multimodal.caption_items(row) == (labels[::-1], True), row
        else:
            assert row == ""


def test_render_blip_scores_typed_swapped_and_generated_captions():
    seen = []

    def match(texts):
        seen.extend(texts)
        return [0.9, 0.1, 0.8][:len(texts)]

    image = torch.zeros(1, 48, 48, dtype=torch.uint8)
    fig = multimodal.render_blip("A bag left of an ankle-boot", image, [8, 9], "a purse left of a boot", match,
                                 similarity=lambda texts: torch.zeros(len(texts)))
    assert seen == ["a bag left of an ankle-boot", "an ankle-boot left of a bag", "a purse left of a boot"]
    labels = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert "(true of this scene)" in labels[0] and "(false of this scene)" in labels[1]
    plt.close(fig)
    fig = multimodal.render_blip("a bag", image, [8], "a bag", lambda t: [0.5] * len(t), lambda t: [0.0] * len(t))
    assert len(fig.axes[1].patches) == 2, "one name: no swapped caption"
    plt.close(fig)
    with pytest.raises(ValueError, match="type a caption"):
        multimodal.render_blip("  ", image, [8], "a bag", match, match)
