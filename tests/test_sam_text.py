"""Chapter 10, section 10: SAM prompted with a CLIP embedding (utils.sam_text), and Chapter 9's CLIP it reuses."""

import ast
from pathlib import Path

import pytest
import torch

from utils import sam_text
from utils.models.sam import SAM

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"
CLIP_DIM = 12


def small_sam():
    torch.manual_seed(0)
    return SAM(dim=32, width=8, image_size=32)


def square_masks(n=4, size=32):
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for i, m in enumerate(masks):
        m[4 + i:14 + 2 * i, 6:12 + i] = True
    return masks


def test_object_crops_centre_the_item_at_the_asked_size_and_blank_the_rest():
    masks = square_masks()
    images = torch.full((4, 1, 32, 32), 200, dtype=torch.uint8)
    crops = sam_text.object_crops(images, masks, size=48, item_side=20)
    assert crops.shape == (4, 1, 48, 48) and crops.dtype == torch.uint8
    lit = crops[:, 0] > 100
    rows, columns = lit.any(2), lit.any(1)
    for i in range(4):
        height, width = rows[i].sum().item(), columns[i].sum().item()
        assert abs(max(height, width) - 20) <= 2, f"the item's longer side should span about 20 pixels: {height, width}"
        centre = (columns[i].nonzero().float().mean().item(), rows[i].nonzero().float().mean().item())
        assert abs(centre[0] - 23.5) <= 1.5 and abs(centre[1] - 23.5) <= 1.5, f"item not centred: {centre}"
    assert (crops[:, 0][~lit] < 100).all() and crops[0, 0, 0, 0] == 0, "pixels outside the item are blanked"


def test_object_crops_refuse_bad_input():
    masks = square_masks()
    images = torch.zeros(4, 1, 32, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match="uint8"):
        sam_text.object_crops(images.float(), masks)
    with pytest.raises(ValueError, match="bool"):
        sam_text.object_crops(images, masks.float())
    empty = masks.clone()
    empty[1] = False
    with pytest.raises(ValueError, match="at least one pixel"):
        sam_text.object_crops(images, empty)


def test_embedding_prompt_shapes_and_the_token_reaches_the_masks():
    prompted = sam_text.EmbeddingPrompt(small_sam(), CLIP_DIM).eval()
    embedding = prompted.sam.embed(torch.rand(3, 1, 32, 32))
    vectors = torch.randn(3, CLIP_DIM)
    assert (prompted.tokens(vectors, 3) == 0).all(), "an untrained projection gives a zero token (the decoder undisturbed)"
    torch.nn.init.normal_(prompted.projection[2].weight)           # as if trained
    assert prompted.tokens(vectors, 3).shape == (3, 1, 32) and prompted.tokens(None, 3).shape == (3, 1, 32)
    with torch.no_grad():
        masks, iou = prompted.predict(embedding, vectors)
        other, _ = prompted.predict(embedding, torch.randn(3, CLIP_DIM))
        blank, _ = prompted.predict(embedding, None)
        clicked, clicked_iou = prompted.predict(embedding, vectors, torch.tensor([[[5.0, 6.0]]] * 3),
                                                torch.ones(3, 1, dtype=torch.long))
        scaled, _ = prompted.predict(embedding, 5 * vectors)
    assert masks.shape == (3, 3, 32, 32) and iou.shape == (3, 3) and clicked.shape == masks.shape
    assert clicked_iou.shape == (3, 3) and blank.shape == masks.shape
    assert not torch.allclose(masks, other), "another CLIP vector should give other masks"
    assert not torch.allclose(masks, clicked), "a click beside the vector should change the masks"
    torch.testing.assert_close(scaled, masks)                  # CLIP's vectors are directions: the length is ignored
    with pytest.raises(ValueError, match="CLIP vectors"):
        prompted.predict(embedding, torch.randn(3, CLIP_DIM + 1))
    with pytest.raises(ValueError, match="labels"):
        prompted.predict(embedding, vectors, torch.zeros(3, 1, 2), torch.full((3, 1), 7))


def test_gradients_reach_only_the_projection_and_the_decoder():
    prompted = sam_text.EmbeddingPrompt(small_sam(), CLIP_DIM)
    images = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        embeddings = prompted.sam.embed(images)
    vectors = torch.randn(4, CLIP_DIM, requires_grad=True)
    loss_fn = sam_text.embedding_prompt_loss(embeddings, torch.arange(4), square_masks(), click_fraction=0.5)
    loss = loss_fn(prompted, (vectors, torch.arange(4)))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for name, parameter in prompted.named_parameters():
        trains = name.startswith(("projection.", "sam.mask_decoder."))
        assert parameter.requires_grad == trains, name
        assert (parameter.grad is not None) == trains, f"{name}: gradient {'missing' if trains else 'should be none'}"
    assert prompted.projection[2].weight.grad.abs().sum() > 0, "the loss should reach the projection"
    assert vectors.grad is not None, "the loss depends on the CLIP vector (CLIP itself stays outside, frozen)"


def test_embedding_prompt_ious_scores_every_object():
    prompted = sam_text.EmbeddingPrompt(small_sam(), CLIP_DIM)
    with torch.no_grad():
        embeddings = prompted.sam.embed(torch.rand(5, 1, 32, 32))
    targets = torch.cat([square_masks(), square_masks(1)])
    for vectors, clicks in ((torch.randn(5, CLIP_DIM), 0), (torch.randn(5, CLIP_DIM), 1), (None, 0)):
        result = sam_text.embedding_prompt_ious(prompted, embeddings, vectors, targets, clicks=clicks, batch_size=2)
        assert result["chosen"].shape == result["oracle"].shape == (5,)
        assert ((0 <= result["chosen"]) & (result["chosen"] <= result["oracle"] + 1e-6) & (result["oracle"] <= 1)).all()
    with pytest.raises(ValueError, match="clicks"):
        sam_text.embedding_prompt_ious(prompted, embeddings, None, targets, clicks=2)


def assignments(path: Path) -> dict:
    """The source of the value assigned to each top-level name of a chapter (tuple assignments unpacked)."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
                found.update({t.id: ast.unparse(v) for t, v in zip(target.elts, value.elts) if isinstance(t, ast.Name)})
            elif isinstance(target, ast.Name):
                found[target.id] = ast.unparse(value)
    return found


def test_chapter_10_trains_chapter_9s_clip_with_its_code_and_settings():
    """`fit` keys a checkpoint by the loss's source and the settings: Chapter 10 reuses Chapter 9's CLIP only if both
    chapters write them alike."""
    chapter9, chapter10 = (next(CHAPTERS.glob(f"{prefix}_*.py")) for prefix in ("09", "10"))
    functions = []
    for path in (chapter9, chapter10):
        source = path.read_text()
        node = next(n for n in ast.parse(source).body
                    if isinstance(n, ast.FunctionDef) and n.name == "clip_training_loss")
        functions.append("\n".join(source.splitlines()[node.lineno - 1:node.end_lineno]))
    assert functions[0] == functions[1], "clip_training_loss must read exactly as in Chapter 9"
    nine, ten = assignments(chapter9), assignments(chapter10)
    for name9, name10 in (("SCENES", "CLIP_SCENES"), ("WIDTH", "CLIP_WIDTH"), ("EMBED", "CLIP_EMBED"),
                          ("BATCH", "CLIP_BATCH"), ("CLIP_EPOCHS", "CLIP_EPOCHS"), ("CLIP_LR", "CLIP_LR")):
        assert nine[name9] == ten[name10], f"Chapter 9's {name9} = {nine[name9]}, Chapter 10's {name10} = {ten[name10]}"


def test_item_features_average_the_embedding_over_the_object():
    embeddings = torch.randn(2, 5, 8, 8)
    masks = torch.zeros(2, 32, 32, dtype=torch.bool)
    masks[0] = True
    masks[1, 8:16, 4:8] = True                                          # exactly cells (2, 1) and (3, 1)
    features = sam_text.item_features(embeddings, masks)
    assert features.shape == (2, 5)
    torch.testing.assert_close(features[0], embeddings[0].mean((1, 2)))
    torch.testing.assert_close(features[1], embeddings[1, :, 2:4, 1].mean(1))
    with pytest.raises(ValueError, match="multiple"):
        sam_text.item_features(embeddings, torch.ones(2, 30, 30, dtype=torch.bool))
