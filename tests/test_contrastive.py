"""Chapter 9: the four losses against loops over pairs and torch's triplet losses, semi-hard and batch-hard mining
against loops over triplets, alignment/uniformity, the EMA, the crop against torchvision's resized_crop, the
probes, the 2-D projection, the chapter's figures, the networks' shapes and contracts, bad input."""

import math

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from utils import contrastive
from utils.models.clip import BYOL, CLIP, LSeg, ImageEncoder, SimCLR, TextEncoder


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------- losses
def test_contrastive_loss_is_the_margin_formula_pair_by_pair():
    x1, x2 = randn(10, 4), randn(10, 4, seed=1)
    same = torch.arange(10) % 3 == 0
    expected = []
    for i in range(10):
        d = math.dist(x1[i].tolist(), x2[i].tolist())
        expected.append(0.5 * d ** 2 if same[i] else 0.5 * max(0.0, 2.0 - d) ** 2)
    assert contrastive.contrastive_loss(x1, x2, same, margin=2.0).item() == pytest.approx(sum(expected) / 10, rel=1e-5)
    far = x1 + 100
    assert contrastive.contrastive_loss(x1, far, torch.zeros(10, dtype=torch.bool), 2.0) == 0, "far negatives: free"
    with pytest.raises(ValueError, match="same"):
        contrastive.contrastive_loss(x1, x2, same[:5])
    with pytest.raises(ValueError, match="margin"):
        contrastive.contrastive_loss(x1, x2, same, margin=-1)


def test_triplet_loss_equals_torch_on_squared_distances():
    a, p, n = randn(16, 8), randn(16, 8, seed=1), randn(16, 8, seed=2)
    reference = torch.nn.TripletMarginWithDistanceLoss(distance_function=lambda x, y: (x - y).pow(2).sum(1),
                                                       margin=0.3)
    torch.testing.assert_close(contrastive.triplet_loss(a, p, n, 0.3), reference(a, p, n))
    assert contrastive.triplet_loss(a, a, a + 10, 0.3) == 0, "a negative far beyond the margin costs nothing"
    with pytest.raises(ValueError, match="anchor and negative"):
        contrastive.triplet_loss(a, p, n[:3])


def test_info_nce_is_a_2n_way_classification_of_each_views_pair():
    z1, z2 = randn(5, 6), randn(5, 6, seed=1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    total = 0.0
    for i in range(10):
        logits = [(z[i] @ z[k]).item() / 0.2 for k in range(10) if k != i]
        positive = (z[i] @ z[(i + 5) % 10]).item() / 0.2
        total += -positive + math.log(sum(math.exp(v) for v in logits))
    assert contrastive.info_nce(z1, z2, 0.2).item() == pytest.approx(total / 10, rel=1e-5)
    orthogonal = torch.eye(4)
    assert contrastive.info_nce(orthogonal, orthogonal, 0.01) < 1e-6, "identical pairs, orthogonal negatives: ≈ 0"
    with pytest.raises(ValueError, match="temperature"):
        contrastive.info_nce(z1, z2, 0)


def test_clip_loss_is_the_mean_of_both_cross_entropies_and_symmetric():
    images, texts = randn(6, 5), randn(6, 5, seed=1)
    i, t = F.normalize(images, dim=1), F.normalize(texts, dim=1)
    rows = sum(-math.log(math.exp(i[k] @ t[k] / 0.1) / sum(math.exp(i[k] @ t[j] / 0.1) for j in range(6)))
               for k in range(6))
    columns = sum(-math.log(math.exp(i[k] @ t[k] / 0.1) / sum(math.exp(i[j] @ t[k] / 0.1) for j in range(6)))
                  for k in range(6))
    assert contrastive.clip_loss(images, texts, 0.1).item() == pytest.approx((rows + columns) / 12, rel=1e-5)
    torch.testing.assert_close(contrastive.clip_loss(images, texts, 0.1), contrastive.clip_loss(texts, images, 0.1))
    learnt = torch.tensor(0.1, requires_grad=True)
    contrastive.clip_loss(images, texts, learnt).backward()
    assert learnt.grad is not None, "a learnt temperature gets a gradient"
    with pytest.raises(ValueError, match="same shape"):
        contrastive.clip_loss(images, texts[:, :3])


# ------------------------------------------------------------------------------------------------- mining
def test_hard_negatives_follow_the_softmax_of_similarity_over_allowed_columns():
    similarity = torch.tensor([[0.9, 0.5, 0.1, 0.8], [0.2, 0.9, 0.7, 0.0]])
    allowed = torch.tensor([[False, True, True, True], [True, False, True, False]])
    draws = torch.stack([contrastive.sample_hard_negatives(similarity, allowed, torch.Generator().manual_seed(s))
                         for s in range(4000)])
    assert allowed[torch.arange(2), draws].all(), "a true pair is never drawn as a negative"
    for row in range(2):
        expected = similarity[row].masked_fill(~allowed[row], float("-inf")).softmax(0)   # by hand, row by row
        observed = torch.bincount(draws[:, row], minlength=4) / len(draws)
        torch.testing.assert_close(observed, expected, atol=0.03, rtol=0)
    uniform = contrastive.sample_hard_negatives(torch.zeros(1, 3), torch.tensor([[True, True, False]]),
                                                torch.Generator().manual_seed(0))
    assert uniform.item() in (0, 1)
    with pytest.raises(ValueError, match="at least one allowed"):
        contrastive.sample_hard_negatives(similarity, torch.zeros_like(allowed), torch.Generator())
    with pytest.raises(ValueError, match="bool"):
        contrastive.sample_hard_negatives(similarity, allowed.int(), torch.Generator())


def test_squared_distances_match_cdist():
    x = randn(9, 4)
    torch.testing.assert_close(contrastive.squared_distances(x), torch.cdist(x, x).pow(2), atol=1e-5, rtol=1e-5)
    assert (contrastive.squared_distances(x).diagonal() == 0).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_semi_hard_mining_and_loss_equal_loops_over_triplets(seed):
    x = randn(14, 3, seed=seed)
    labels = torch.randint(0, 4, (14,), generator=torch.Generator().manual_seed(seed))
    d = contrastive.squared_distances(x)
    mined = contrastive.mine_semi_hard(d, labels, 0.8)
    losses = []
    for a in range(14):
        for p in range(14):
            negatives = [n for n in range(14) if labels[n] != labels[a]]
            if a == p or labels[a] != labels[p] or not negatives:
                assert mined[a, p] == -1
                continue
            semi = [n for n in negatives if d[a, p] < d[a, n] < d[a, p] + 0.8]
            expected = min(semi, key=lambda n: d[a, n]) if semi else max(negatives, key=lambda n: d[a, n])
            assert mined[a, p] == expected
            losses.append(max(0.0, (d[a, p] - d[a, expected] + 0.8).item()))
    assert contrastive.semi_hard_triplet_loss(x, labels, 0.8).item() == pytest.approx(sum(losses) / len(losses),
                                                                                       rel=1e-5, abs=1e-6)


def test_batch_hard_takes_farthest_positive_and_nearest_negative():
    x = randn(10, 3)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 3, 3])
    d = torch.cdist(x, x).pow(2)
    terms = [max(d[a, p] for p in range(10) if p != a and labels[p] == labels[a]) -
             min(d[a, n] for n in range(10) if labels[n] != labels[a]) + 0.5 for a in range(10)]
    expected = torch.stack(terms).clamp_min(0).mean()
    torch.testing.assert_close(contrastive.batch_hard_triplet_loss(x, labels, 0.5), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="positive and a negative"):
        contrastive.batch_hard_triplet_loss(x[:3], torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="labels"):
        contrastive.batch_hard_triplet_loss(x, labels.float())


# ------------------------------------------------------------------------------------- measures and EMA
def test_alignment_uniformity_and_std_of_a_collapsed_embedding():
    point = torch.ones(20, 8)
    assert contrastive.alignment(point, point) == 0
    assert contrastive.uniformity(point).item() == pytest.approx(0.0, abs=1e-6), "collapse: log 1 = 0"
    assert contrastive.embedding_std(point) == pytest.approx(0.0, abs=1e-7)
    spread = randn(2000, 8)
    assert contrastive.uniformity(spread) < -1.5
    # uniform on the 8-d sphere: each coordinate has variance 1/8
    assert contrastive.embedding_std(spread) == pytest.approx(1 / math.sqrt(8), rel=0.05)
    z = randn(6, 3)
    expected = math.log(sum(math.exp(-2 * math.dist(a, b) ** 2) for i, a in enumerate(F.normalize(z, dim=1).tolist())
                            for j, b in enumerate(F.normalize(z, dim=1).tolist()) if i < j) / 15)
    assert contrastive.uniformity(z).item() == pytest.approx(expected, rel=1e-5)


def test_ema_update_interpolates_parameters_and_buffers():
    online, target = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    online.weight.data.fill_(2.0)
    online.running_mean.fill_(4.0)
    online.num_batches_tracked.fill_(7)
    contrastive.ema_update(target, online, 0.75)
    torch.testing.assert_close(target.weight, torch.full((3,), 1.25))            # 0.75·1 + 0.25·2
    torch.testing.assert_close(target.running_mean, torch.full((3,), 1.0))       # 0.75·0 + 0.25·4
    assert target.num_batches_tracked == 7
    with pytest.raises(ValueError, match="decay"):
        contrastive.ema_update(target, online, 1.5)


# ------------------------------------------------------------------------------------------ augmentation
def test_resized_crops_match_torchvision_inside_the_box():
    image = randn(1, 1, 28, 28)
    box = torch.tensor([[6.0, 4.0, 20.0, 18.0]])                   # x1, y1, x2, y2: a 14×14 square
    ours = contrastive.resized_crops(image, box)
    theirs = TF.resized_crop(image, top=4, left=6, height=14, width=14, size=[28, 28], antialias=False)
    # the same bilinear sampling at bin centres; only the outermost ring differs (torchvision clamps at the crop's
    # edge, roi_align reads the pixels beyond it)
    torch.testing.assert_close(ours[..., 1:-1, 1:-1], theirs[..., 1:-1, 1:-1], atol=1e-5, rtol=1e-5)
    whole = contrastive.resized_crops(image, torch.tensor([[0.0, 0.0, 28.0, 28.0]]))
    torch.testing.assert_close(whole, image, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="boxes"):
        contrastive.resized_crops(image, box.repeat(2, 1))


def test_augment_is_per_image_seeded_and_checks_its_input():
    x = randn(16, 1, 28, 28)
    views = [contrastive.augment(x, torch.Generator().manual_seed(5)) for _ in range(2)]
    torch.testing.assert_close(views[0], views[1])
    other = contrastive.augment(x, torch.Generator().manual_seed(6))
    assert not torch.allclose(views[0], other)
    boxes = contrastive.random_crop_boxes(1000, 28, (0.25, 1.0), torch.Generator().manual_seed(0))
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / 28 ** 2
    assert areas.min() >= 0.25 - 1e-5 and areas.max() <= 1 + 1e-5 and boxes.min() >= 0 and boxes.max() <= 28 + 1e-4
    assert len(set(boxes[:, 0].tolist())) > 900, "every image gets its own crop"
    torch.testing.assert_close(contrastive.augment(x, torch.Generator(), use=()), x)
    with pytest.raises(ValueError, match="unknown augmentations"):
        contrastive.augment(x, torch.Generator(), use=("rotate",))
    with pytest.raises(ValueError, match="float"):
        contrastive.augment(x.to(torch.uint8), torch.Generator())


# ------------------------------------------------------------------------------------------------ probes
def test_knn_accuracy_equals_a_loop_and_linear_probe_separates_separable_data():
    train, test = randn(60, 5), randn(20, 5, seed=1)
    train_labels = torch.randint(0, 3, (60,), generator=torch.Generator().manual_seed(2))
    test_labels = torch.randint(0, 3, (20,), generator=torch.Generator().manual_seed(3))
    similarity = F.normalize(test, dim=1) @ F.normalize(train, dim=1).T
    correct = 0
    for i in range(20):
        votes = torch.bincount(train_labels[similarity[i].topk(7).indices], minlength=3)
        correct += int(votes.argmax() == test_labels[i])
    assert contrastive.knn_accuracy(train, train_labels, test, test_labels, k=7) == correct / 20
    centres = torch.eye(4) * 5
    labels = torch.arange(200) % 4
    points = centres[labels] + randn(200, 4) * 0.5
    assert contrastive.linear_probe(points[:150], labels[:150], points[150:], labels[150:]) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        contrastive.knn_accuracy(train, train_labels, test, test_labels, k=0)
    with pytest.raises(ValueError, match="width"):
        contrastive.linear_probe(train, train_labels, test[:, :3], test_labels)


def test_pca_2d_gives_the_top_principal_components():
    z = randn(300, 5) * torch.tensor([5.0, 3.0, 1.0, 0.5, 0.1])
    projected = contrastive.pca_2d(z)
    eigenvalues = torch.linalg.eigvalsh(torch.cov(z.T)).flip(0)
    torch.testing.assert_close(projected.var(0), eigenvalues[:2], rtol=1e-4, atol=1e-4)
    assert abs(torch.corrcoef(projected.T)[0, 1]) < 1e-4, "the two components are uncorrelated"


def test_render_neighbours_draws_and_rejects_bad_choices():
    z = F.normalize(randn(30, 8), dim=1)
    images = torch.randint(0, 255, (30, 1, 28, 28), dtype=torch.uint8)
    labels = torch.arange(30) % 10
    fig = contrastive.render_neighbours(z, contrastive.pca_2d(z), images, labels, index=3, neighbours=5)
    assert len(fig.axes) >= 7                                        # map, colourbar, query, 5 neighbours
    plt.close(fig)
    with pytest.raises(ValueError, match="image must be"):
        contrastive.render_neighbours(z, contrastive.pca_2d(z), images, labels, index=30)
    with pytest.raises(ValueError, match="neighbours"):
        contrastive.render_neighbours(z, contrastive.pca_2d(z), images, labels, index=0, neighbours=11)


def test_render_views_draws_a_row_per_image_and_a_column_per_view():
    images = randn(3, 1, 12, 12)
    fig = contrastive.render_views(images, [images + 1, images - 1])
    assert len(fig.axes) == 9 and fig.axes[1].get_title() == "view 1"
    plt.close(fig)
    with pytest.raises(ValueError, match="views must be"):
        contrastive.render_views(images, [images[:2]])
    with pytest.raises(ValueError, match="images must be"):
        contrastive.render_views(images[0], [images[0]])


def test_render_temperature_sweep_marks_every_temperature():
    sweep = {t: {"alignment": 1 / t, "uniformity": -t, "k-NN accuracy": 0.5} for t in (0.1, 0.5, 1.0)}
    fig = contrastive.render_temperature_sweep(sweep, "smoke")
    assert [a.get_text() for a in fig.axes[0].texts] == ["τ=0.1", "τ=0.5", "τ=1.0"]
    assert "smoke profile" in fig.axes[1].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="temperatures > 0"):
        contrastive.render_temperature_sweep({0.0: sweep[0.1]})
    with pytest.raises(ValueError, match="temperatures > 0"):
        contrastive.render_temperature_sweep({0.1: {"alignment": 1.0}})


def test_render_verification_roc_draws_each_curve_and_the_operating_point():
    curve = {"fpr": torch.tensor([0.0, 0.5, 1.0]), "tpr": torch.tensor([0.0, 0.8, 1.0]), "auc": 0.7}
    fig = contrastive.render_verification_roc({"a": curve, "b": curve}, 0.4, 0.8, 0.5)
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert labels[:2] == ["a: AUC 0.700", "b: AUC 0.700"] and labels[2].startswith("threshold 0.400")
    plt.close(fig)
    with pytest.raises(ValueError, match="rates must map"):
        contrastive.render_verification_roc({"a": {"fpr": curve["fpr"]}}, 0.4, 0.8, 0.5)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        contrastive.render_verification_roc({"a": curve}, 0.4, 1.5, 0.5)


# ---------------------------------------------------------------------------------------------- networks
def test_encoders_heads_and_clip_shapes():
    encoder = ImageEncoder(8)
    assert encoder(torch.zeros(2, 1, 28, 28)).shape == (2, 32)
    mid, deep = ImageEncoder(8, stem_stride=2).feature_maps(torch.zeros(2, 1, 48, 48))
    assert mid.shape == (2, 16, 12, 12) and deep.shape == (2, 32, 6, 6)
    assert SimCLR(ImageEncoder(8), projection=16)(torch.zeros(3, 1, 28, 28)).shape == (3, 16)
    clip = CLIP(ImageEncoder(8, stem_stride=2), TextEncoder(30, width=16, layers=1, heads=2, max_length=8), 12)
    images, texts = clip(torch.randn(2, 1, 48, 48), torch.tensor([[1, 5, 2, 0], [1, 6, 7, 2]]))
    assert images.shape == texts.shape == (2, 12)
    torch.testing.assert_close(images.norm(dim=1), torch.ones(2))
    assert clip.temperature.item() == pytest.approx(0.07, rel=1e-5)
    with pytest.raises(ValueError, match="stem_stride"):
        ImageEncoder(8, stem_stride=3)


def test_text_encoder_reads_the_end_token_and_ignores_padding():
    torch.manual_seed(0)
    text = TextEncoder(30, width=16, layers=2, heads=2, max_length=10).eval()
    short = text(torch.tensor([[1, 5, 6, 2]]))
    padded = text(torch.tensor([[1, 5, 6, 2, 0, 0, 0]]))
    torch.testing.assert_close(short, padded, atol=1e-5, rtol=1e-5)
    other = text(torch.tensor([[1, 6, 5, 2]]))
    assert not torch.allclose(short, other), "positions matter: the same words in another order differ"
    with pytest.raises(ValueError, match="max_length|L ≤"):
        text(torch.ones(1, 11, dtype=torch.int64))


def test_byol_target_has_no_gradient_and_follows_the_online_network():
    torch.manual_seed(0)
    byol = BYOL(ImageEncoder(4), projection=8, decay=0.5)
    assert not any(p.requires_grad for p in byol.target_encoder.parameters())
    x = torch.randn(4, 1, 28, 28)
    byol.loss(x, x.flip(-1)).backward()
    assert all(p.grad is None for p in byol.target_projector.parameters()), "stop-gradient on the target"
    with torch.no_grad():
        for p in byol.encoder.parameters():
            p.add_(1.0)
    before = next(byol.target_encoder.parameters()).clone()
    byol.update_target()
    online = next(byol.encoder.parameters())
    torch.testing.assert_close(next(byol.target_encoder.parameters()), (before + online) / 2)
    collapsing = BYOL(ImageEncoder(4), projection=8, predictor=False, ema=False)
    assert isinstance(collapsing.predictor, torch.nn.Identity)


def test_lseg_scores_every_pixel_against_every_label():
    lseg = LSeg(ImageEncoder(8, stem_stride=2), embed_dim=12, temperature=0.1)
    logits = lseg(torch.randn(2, 1, 48, 48), torch.randn(5, 12))
    assert logits.shape == (2, 5, 48, 48)
    assert logits.abs().max() <= 1 / 0.1 + 1e-4, "cosine similarity / temperature"
    with pytest.raises(ValueError, match="K×D"):
        lseg(torch.randn(1, 1, 48, 48), torch.randn(12))
