"""Image–text data for Chapter 9 (09_contrastive_multimodal): the course's fashion scenes with generated captions, a
word-level vocabulary, and the prompts for zero-shot classification, word order, counting and LSeg labels.

Scenes are Chapter 4's `utils.scenes.fashion_scenes` (Fashion-MNIST items pasted on noisy canvases, exact masks),
small: 1 to 3 items on a 48-pixel canvas. Every scene gets ``captions_per_scene`` captions, drawn
deterministically from ``seed``:

- a name for every item, drawn from its class's synonyms (`SYNONYMS`: the first is the class name LSeg trains on,
  the others appear only in captions);
- one item: one of `TRAIN_TEMPLATES` ("a photo of a {}", …); `HELD_OUT_TEMPLATES` are never used in training and
  serve the zero-shot prompts;
- two items: their left-to-right order in words ("a bag left of a sneaker", "a sneaker right of a bag"), or
  unordered ("a bag and a sneaker", with either first), sometimes with the count ("two items: …");
- three items: the names left to right, with or without the count ("three items: a bag , a coat and a dress").

Captions are lower-case words and the tokens ``,`` and ``:``; `tokenize` maps them to ids of `VOCABULARY`
(0 = padding, then beginning- and end-of-text), one row per caption, padded to ``MAX_LENGTH``.

The chapter's figures and its explorers' are the `render_*` functions at the end.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from .scenes import fashion_scenes

SYNONYMS = (("t-shirt", "tee", "top"), ("trousers", "pants", "jeans"), ("pullover", "sweater", "jumper"),
            ("dress", "gown", "frock"), ("coat", "jacket", "parka"), ("sandal", "slipper", "flip-flop"),
            ("shirt", "blouse", "button-down"), ("sneaker", "trainer", "running-shoe"), ("bag", "purse", "handbag"),
            ("ankle-boot", "boot", "bootie"))
CLASS_NAMES = tuple(names[0] for names in SYNONYMS)                  # what LSeg trains on
CLASS_IDS = {name: i for i, names in enumerate(SYNONYMS) for name in names}   # any synonym → its class id
TRAIN_TEMPLATES = ("a photo of a {}", "a {}", "one item: a {}", "a {} on a noisy background", "there is a {} here",
                   "a picture with one {}", "a small {}", "a {} in the picture")
HELD_OUT_TEMPLATES = ("a noisy photo of one {}", "here is a {}", "a picture of a {}", "one {} here",
                      "a photo with a small {}")
COUNT_WORDS = ("one", "two", "three")
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
MAX_LENGTH = 16
SCENE_ARGS = dict(size=48, min_scale=16, max_scale=24, max_objects=3, max_overlap=0.1)
_WORD = re.compile(r"[a-z][a-z\-]*|[,:]")


def words(text: str) -> list[str]:
    """A caption's tokens: lower-case words (hyphens kept) and the punctuation tokens ``,`` and ``:``."""
    if not isinstance(text, str):
        raise ValueError(f"a caption must be a string, not {type(text).__name__}")
    return _WORD.findall(text.lower())


def _vocabulary() -> tuple[str, ...]:
    texts = list(TRAIN_TEMPLATES) + list(HELD_OUT_TEMPLATES) + [
        "two items: left of right of and an", "three items: a, a and a", "background"]
    found = {w for text in texts for w in words(text.replace("{}", ""))}
    found |= {w for names in SYNONYMS for w in names} | set(COUNT_WORDS) | {"item", "items"}
    return SPECIALS + tuple(sorted(found))


VOCABULARY = _vocabulary()
INDEX = {word: i for i, word in enumerate(VOCABULARY)}
PAD, BOS, EOS, UNK = range(4)


def tokenize(texts, max_length: int = MAX_LENGTH) -> torch.Tensor:
    """Captions → int64 N×max_length: <bos>, word ids (<unk> for words outside `VOCABULARY`), <eos>, padding 0."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError("tokenize needs at least one caption")
    tokens = torch.zeros(len(texts), max_length, dtype=torch.int64)
    for row, text in enumerate(texts):
        ids = [BOS] + [INDEX.get(w, UNK) for w in words(text)] + [EOS]
        if len(ids) > max_length:
            raise ValueError(f"caption {text!r} has {len(ids) - 2} tokens; at most {max_length - 2} fit: shorten it")
        tokens[row, :len(ids)] = torch.tensor(ids)
    return tokens


def joined(tokens: list[str]) -> str:
    """Tokens back into a caption: spaces between words, none before ``,`` and ``:``."""
    return " ".join(tokens).replace(" ,", ",").replace(" :", ":")


def decode(tokens: torch.Tensor) -> list[str]:
    """int64 N×L token ids → captions (stopping at <eos>; specials dropped)."""
    if not torch.is_tensor(tokens) or tokens.ndim != 2:
        raise ValueError("tokens must be an N×L tensor of ids")
    captions = []
    for row in tokens.tolist():
        kept = []
        for i in row:
            if i == EOS:
                break
            if i > UNK:
                kept.append(VOCABULARY[i])
        captions.append(joined(kept))
    return captions


def articles(text: str) -> str:
    """"a" → "an" before a vowel ("an ankle-boot")."""
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def caption(labels: list[int], generator: torch.Generator, ordered: bool = False) -> str:
    """One random caption of a scene whose items, left to right, have classes ``labels`` (1 to 3 of them);
    ``ordered`` keeps to the phrasings that state the left-to-right order of two items."""
    if not 1 <= len(labels) <= 3 or any(not 0 <= c < len(SYNONYMS) for c in labels):
        raise ValueError(f"labels must be 1 to 3 class ids in 0–9, left to right, not {labels}")

    def draw(n: int) -> int:
        return int(torch.randint(n, (1,), generator=generator))

    names = [SYNONYMS[c][draw(len(SYNONYMS[c]))] for c in labels]
    if len(names) == 1:
        return articles(TRAIN_TEMPLATES[draw(len(TRAIN_TEMPLATES))].format(names[0]))
    if len(names) == 2:
        left, right = names
        options = (f"a {left} left of a {right}", f"a {right} right of a {left}", f"a {left} and a {right}",
                   f"a {right} and a {left}", f"two items: a {left} and a {right}",
                   f"two items: a {left} left of a {right}")
        if ordered:
            options = tuple(option for option in options if " of " in option)
        return articles(options[draw(len(options))])
    listed = f"a {names[0]}, a {names[1]} and a {names[2]}"
    return articles(listed if draw(2) else f"three items: {listed}")


def swapped_caption(labels: list[int], generator: torch.Generator) -> str | None:
    """A caption that names the scene's items in the reverse left-to-right order, in a phrasing that states the order
    ("a sneaker left of a bag" for a bag left of a sneaker): false of the scene, with exactly its words — the hard
    negative a contrastive batch almost never holds. None when reversing changes nothing (one item, or a
    symmetric row such as bag, coat, bag)."""
    if list(labels) == list(labels)[::-1]:
        return None
    return caption(list(labels)[::-1], generator, ordered=True)


def caption_items(text: str) -> tuple[list[int], bool]:
    """What a caption claims: the class ids it names, left to right where it says so, and whether it states an order
    of two or more items ("left of", "right of", a listing of three); names are any synonym in `SYNONYMS`."""
    tokens = words(text)
    named = [CLASS_IDS[w] for w in tokens if w in CLASS_IDS]
    if len(named) == 2 and "right" in tokens:        # "a X right of a Y": Y is on the left
        return named[::-1], True
    return named, len(named) == 3 or (len(named) == 2 and "left" in tokens)


def caption_is_true(text: str, labels: list[int]) -> bool:
    """Whether a caption is true of a scene whose items, left to right, are ``labels``: it names exactly those items
    (any synonyms, any order of mention) and, where it states an order, the right one."""
    named, ordered = caption_items(text)
    return sorted(named) == sorted(labels) and (not ordered or named == list(labels))


def swapped_tokens(scenes: "CaptionedScenes", seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """For every scene, the tokens of its `swapped_caption` (N×MAX_LENGTH; a row of padding where there is none)
    and whether it has one (N bool)."""
    generator = torch.Generator().manual_seed(seed)
    texts = [swapped_caption(labels, generator) for labels in scenes.labels]
    tokens = torch.zeros(len(texts), MAX_LENGTH, dtype=torch.int64)
    has_swap = torch.tensor([text is not None for text in texts])
    if has_swap.any():
        tokens[has_swap] = tokenize([text for text in texts if text is not None])
    return tokens, has_swap


def left_to_right(boxes: torch.Tensor, labels: torch.Tensor) -> list[int]:
    """The class ids of a scene's items sorted by the centre x of their boxes (K×4 xyxy)."""
    order = ((boxes[:, 0] + boxes[:, 2]) / 2).argsort()
    return labels[order].tolist()


class CaptionedScenes:
    """``images`` uint8 N×1×S×S, ``semantic`` int64 N×S×S (0 background, 1 + class), ``labels`` (left to right)
    lists, ``captions`` N lists of strings and ``tokens`` int64 N×captions_per_scene×MAX_LENGTH."""

    def __init__(self, images, semantic, labels, captions):
        self.images, self.semantic, self.labels, self.captions = images, semantic, labels, captions
        self.tokens = torch.stack([tokenize(c) for c in captions])
        self.counts = torch.tensor([len(l) for l in labels])

    def __len__(self) -> int:
        return len(self.images)


def captioned_scenes(split: str, count: int, captions_per_scene: int = 4, seed: int = 0) -> CaptionedScenes:
    """``count`` scenes of ``split`` with ``captions_per_scene`` captions each (scenes cached by `fashion_scenes`;
    captions drawn from a generator seeded by ``seed`` and ``split``)."""
    if not isinstance(captions_per_scene, int) or captions_per_scene < 1:
        raise ValueError(f"captions_per_scene must be a positive integer, not {captions_per_scene!r}")
    scenes = fashion_scenes(split, count, seed=seed, **SCENE_ARGS)
    images, semantic = scenes.tensors()
    keep = [i for i, l in enumerate(scenes.labels) if len(l) > 0]     # a scene whose only item was too dark
    generator = torch.Generator().manual_seed(seed * 2 + (split == "test") + 17)
    ordered = [left_to_right(scenes.boxes[i], scenes.labels[i]) for i in keep]
    captions = [[caption(l, generator) for _ in range(captions_per_scene)] for l in ordered]
    return CaptionedScenes(images[keep], semantic[keep], ordered, captions)


def class_prompts(templates=HELD_OUT_TEMPLATES, synonym: int = 0) -> list[list[str]]:
    """For every template, the 10 class prompts (the class's ``synonym``-th name): templates × classes strings."""
    if not 0 <= synonym < 3:
        raise ValueError("synonym must be 0 (the class name), 1 or 2")
    return [[articles(t.format(names[synonym])) for names in SYNONYMS] for t in templates]


def caption_box(value: str, description: str = "caption"):
    """A text box for an explorer (the figure redraws when Enter is pressed or the box loses focus)."""
    import ipywidgets as widgets

    return widgets.Text(value=value, description=description, continuous_update=False,
                        style={"description_width": "initial"}, layout=widgets.Layout(width="420px"))


def render_caption_search(text: str, encode_texts, image_embeddings: torch.Tensor, images: torch.Tensor,
                          scene: int, class_embeddings: torch.Tensor, temperature: float, shown: int = 12):
    """The caption explorer's figure: the ``shown`` scenes (``images`` uint8 N×1×S×S, normalised N×D
    ``image_embeddings``) most similar to ``text`` (embedded by ``encode_texts(list) → K×D``), and the zero-shot
    class probabilities of scene ``scene`` under ``class_embeddings`` (10×D) at ``temperature``."""
    import matplotlib.pyplot as plt

    if not isinstance(text, str) or not words(text):
        raise ValueError("type a caption of at least one word, e.g. 'a bag left of a sneaker'")
    if len(words(text)) > MAX_LENGTH - 2:
        raise ValueError(f"at most {MAX_LENGTH - 2} words fit: shorten the caption")
    if not isinstance(scene, int) or not 0 <= scene < len(images):
        raise ValueError(f"scene must be from 0 to {len(images) - 1}, not {scene!r}")
    unknown = [w for w in words(text) if w not in INDEX]
    similarity = image_embeddings @ encode_texts([text])[0]
    best = similarity.topk(shown).indices
    probabilities = (image_embeddings[scene] @ class_embeddings.T / temperature).softmax(0)
    fig = plt.figure(figsize=(12, 4.6), layout="constrained")
    grid = fig.add_gridspec(2, shown // 2 + 3)
    for k, i in enumerate(best.tolist()):
        ax = fig.add_subplot(grid[k // (shown // 2), k % (shown // 2)])
        ax.imshow(images[i, 0].numpy(), cmap="gray", vmin=0, vmax=255)
        ax.set(xticks=[], yticks=[])
        ax.set_title(f"#{k + 1} scene {i}\ncos {similarity[i]:.3f}", fontsize=7)
    ax_scene = fig.add_subplot(grid[0, shown // 2:])
    ax_scene.imshow(images[scene, 0], cmap="gray", vmin=0, vmax=255)
    ax_scene.set(xticks=[], yticks=[], title=f"scene {scene}: cos with the caption {similarity[scene]:.3f}")
    ax_bar = fig.add_subplot(grid[1, shown // 2:])
    ax_bar.barh(CLASS_NAMES, probabilities, color=["tab:red" if i == probabilities.argmax() else "tab:blue"
                                                   for i in range(10)])
    ax_bar.invert_yaxis()
    ax_bar.tick_params(labelsize=7)
    ax_bar.set(xlabel="zero-shot probability", xlim=(0, 1))
    note = f" (unknown words → <unk>: {', '.join(unknown)})" if unknown else ""
    fig.suptitle(f"'{text}': the {shown} most similar test scenes{note}", fontsize=10)
    return fig


def render_lseg(label: str, image: torch.Tensor, semantic: torch.Tensor, score):
    """The LSeg explorer's figure for one scene (``image`` uint8 1×S×S, true ``semantic`` S×S) and a typed
    ``label``: ``score(images, labels) → N×(1 + len(labels))×S×S`` logits for "background" and the labels. The
    label competes with background and the ten class names (a synonym replaces its own class's name)."""
    import matplotlib.pyplot as plt

    if not isinstance(label, str) or not words(label):
        raise ValueError("type a label, e.g. 'trainer' or 'bag'")
    if len(words(label)) > MAX_LENGTH - 3:
        raise ValueError("the label is too long: use a few words")
    text = " ".join(words(label))
    own = CLASS_IDS.get(text)
    names = [text if own == c else n for c, n in enumerate(CLASS_NAMES)]
    if text not in names:
        names.append(text)
    logits = score(image[None], tuple(names))[0]                   # (1 + K)×S×S
    position = 1 + names.index(text)
    similarity = logits[position]                                   # cos/τ of every pixel with the label
    wins = logits.argmax(0) == position
    fig, (ax_image, ax_map, ax_mask) = plt.subplots(1, 3, figsize=(11, 3.8), layout="constrained")
    ax_image.imshow(image[0], cmap="gray", vmin=0, vmax=255)
    ax_image.set(xticks=[], yticks=[], title="scene")
    drawn = ax_map.imshow(similarity, cmap="magma")
    fig.colorbar(drawn, ax=ax_map, label="pixel · label similarity / τ")
    ax_map.set(xticks=[], yticks=[], title=f"similarity to '{text}'")
    ax_mask.imshow(image[0], cmap="gray", vmin=0, vmax=255)
    ax_mask.imshow(np.ma.masked_where(~wins.numpy(), wins.numpy()), cmap="autumn", alpha=0.6)
    if own is not None:
        truth = (semantic == 1 + own).numpy()
        if truth.any():
            ax_mask.contour(truth, levels=[0.5], colors="cyan", linewidths=1)
        iou = (wins.numpy() & truth).sum() / max((wins.numpy() | truth).sum(), 1)
        detail = f"IoU with the true {CLASS_NAMES[own]} mask (cyan) {iou:.2f}"
    else:
        detail = "not a word the captions used as a name"
    ax_mask.set(xticks=[], yticks=[], title=f"pixels won by '{text}' ({wins.float().mean():.0%})\n{detail}")
    ax_mask.title.set_fontsize(8)
    return fig


def _swap_first_names(text: str) -> str | None:
    """The caption with its first two item names exchanged ("a bag left of a coat" → "a coat left of a bag")."""
    tokens = words(text)
    where = [i for i, w in enumerate(tokens) if w in CLASS_IDS][:2]
    if len(where) < 2:
        return None
    tokens[where[0]], tokens[where[1]] = tokens[where[1]], tokens[where[0]]
    return articles(re.sub(r"\ban\b", "a", joined(tokens)))


def render_blip(text: str, image: torch.Tensor, labels: list[int], generated: str, match, similarity):
    """The BLIP explorer's figure for one scene (``image`` uint8 1×S×S, items ``labels`` left to right): the typed
    caption ``text``, the same with its first two item names swapped, and the captioner's ``generated`` caption,
    each scored by image–text matching (``match(texts) → probabilities``) and by CLIP's cosine
    (``similarity(texts) → cosines``), and marked true or false of the scene."""
    import matplotlib.pyplot as plt

    if not isinstance(text, str) or not words(text):
        raise ValueError("type a caption of at least one word, e.g. 'a bag left of a sneaker'")
    if len(words(text)) > MAX_LENGTH - 2:
        raise ValueError(f"at most {MAX_LENGTH - 2} words fit: shorten the caption")
    typed = joined(words(text))
    candidates = {"typed": typed, "names swapped": _swap_first_names(typed), "BLIP's caption": generated}
    candidates = {role: t for role, t in candidates.items() if t is not None}
    texts = list(candidates.values())
    probabilities, cosines = np.asarray(match(texts), float), np.asarray(similarity(texts), float)
    true = [caption_is_true(t, labels) for t in texts]
    rows = [f"{role}: '{t}'\n({'true' if ok else 'false'} of this scene)"
            for (role, t), ok in zip(candidates.items(), true)]
    fig = plt.figure(figsize=(11, 3.4), layout="constrained")
    grid = fig.add_gridspec(1, 3, width_ratios=(1, 1.6, 1.6))
    ax_image = fig.add_subplot(grid[0])
    ax_image.imshow(image[0], cmap="gray", vmin=0, vmax=255)
    ax_image.set(xticks=[], yticks=[], title="scene")
    ax_match, ax_cos = fig.add_subplot(grid[1]), fig.add_subplot(grid[2])
    colours = ["tab:green" if ok else "tab:red" for ok in true]
    for ax, values, label, limits in ((ax_match, probabilities, "ITM: probability of a match", (0, 1)),
                                      (ax_cos, cosines, "CLIP: cosine similarity", (-1, 1))):
        ax.barh(range(len(texts)), values, color=colours)
        ax.set_yticks(range(len(texts)), rows if ax is ax_match else [""] * len(texts), fontsize=8)
        ax.invert_yaxis()
        ax.set(xlabel=label, xlim=limits)
        for y, value in enumerate(values):
            ax.text(value, y, f" {value:.2f}", va="center", fontsize=8)
    fig.suptitle("Three captions of one scene: green bars are true of it, red ones false", fontsize=9)
    return fig


def render_captioned_scenes(images: torch.Tensor, titles: list[str], title: str, colours: list | None = None):
    """Scenes in a row, each under its caption text: ``images`` uint8 N×1×S×S, ``titles`` N strings (line breaks
    allowed), ``colours`` N matplotlib colours for the captions (default black)."""
    import matplotlib.pyplot as plt

    if not torch.is_tensor(images) or images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty N×1×S×S tensor, got {getattr(images, 'shape', type(images))}")
    if len(titles) != len(images) or (colours is not None and len(colours) != len(images)):
        raise ValueError(f"give one title (and one colour, if any) per image: {len(images)} images, "
                         f"{len(titles)} titles, {None if colours is None else len(colours)} colours")
    fig, axes = plt.subplots(1, len(images), figsize=(13, 3.2), layout="constrained", squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(images[i, 0], cmap="gray", vmin=0, vmax=255)
        ax.set(xticks=[], yticks=[])
        ax.set_title(titles[i], fontsize=7, color="black" if colours is None else colours[i])
    fig.suptitle(title, fontsize=10)
    return fig


def render_similarity_matrix(matrix: torch.Tensor, captions: list[str], image_names: list[str]):
    """CLIP's image × caption cosine similarities as a heat map with every value written in its cell: ``matrix``
    K×C, ``image_names`` K row labels, ``captions`` C column labels."""
    import matplotlib.pyplot as plt

    if not torch.is_tensor(matrix) or matrix.ndim != 2 or matrix.shape != (len(image_names), len(captions)):
        raise ValueError(f"matrix must be images × captions = {len(image_names)}×{len(captions)}, got "
                         f"{tuple(getattr(matrix, 'shape', ()))}")
    fig, ax = plt.subplots(figsize=(9.5, 5.2), layout="constrained")
    picture = ax.imshow(matrix, cmap="viridis")
    fig.colorbar(picture, ax=ax, label="cosine similarity")
    ax.set_xticks(range(len(captions)), captions, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(image_names)), image_names)
    for i in range(len(image_names)):
        for j in range(len(captions)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] < matrix.max() * 0.7 else "black")
    ax.set(title="Image × caption similarities (test scenes)", xlabel="caption", ylabel="image")
    return fig
