"""Tests for utils.fid (Chapter 6): the Fréchet distance, the judge's feature module, diversity scores."""

import numpy as np
import pytest
import torch

from utils.fid import (FashionClassifier, FeatureExtractor, checkerboard_amplitude, class_agreement,
                       code_purity, frechet_distance, mean_pairwise_distance, to_generator_range)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    features = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    # For diagonal covariances the distance is Σ (μa−μb)² + Σ (σa − σb)² (σ: standard deviations).
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, (100_000, 3))
    b = rng.normal(1.0, 2.0, (100_000, 3))
    expected = 3 * 1.0 ** 2 + 3 * (2.0 - 1.0) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_frechet_distance_agrees_with_torchmetrics_fid_on_a_custom_feature_module():
    from torchmetrics.image.fid import FrechetInceptionDistance

    torch.manual_seed(0)
    extractor = FeatureExtractor(FashionClassifier(width=4, feature_dim=16))
    a, b = torch.rand(64, 1, 28, 28) * 2 - 1, torch.rand(64, 1, 28, 28) * 1.5 - 1
    metric = FrechetInceptionDistance(feature=extractor, normalize=True)
    metric.update(a, real=True)
    metric.update(b, real=False)
    ours = frechet_distance(extractor.extract(a), extractor.extract(b))
    assert ours == pytest.approx(metric.compute().item(), rel=1e-3, abs=1e-4)


@pytest.mark.parametrize("a, b", [(np.zeros((1, 3)), np.zeros((5, 3))), (np.zeros((5, 3)), np.zeros((5, 4))),
                                  (np.zeros(5), np.zeros((5, 1))), (np.full((4, 2), np.nan), np.zeros((4, 2)))])
def test_frechet_distance_rejects_bad_input(a, b):
    with pytest.raises(ValueError):
        frechet_distance(a, b)


def test_feature_extractor_shapes_and_eval_mode():
    classifier = FashionClassifier(width=4, feature_dim=16)
    extractor = FeatureExtractor(classifier)
    extractor.train()
    assert not classifier.training and extractor.num_features == 16
    assert extractor.extract(torch.zeros(7, 1, 28, 28), batch_size=3).shape == (7, 16)
    assert classifier(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError):
        extractor(torch.zeros(2, 3, 28, 28))


def test_to_generator_range():
    images = torch.tensor([0, 255], dtype=torch.uint8)
    torch.testing.assert_close(to_generator_range(images), torch.tensor([-1.0, 1.0]))


def test_class_agreement_counts_matching_predictions():
    classifier = FashionClassifier(width=4, feature_dim=16).eval()
    images = torch.randn(10, 1, 28, 28)
    predicted = classifier(images).argmax(1)
    assert class_agreement(classifier, images, predicted) == 1.0
    assert class_agreement(classifier, images, (predicted + 1) % 10) == 0.0
    with pytest.raises(ValueError):
        class_agreement(classifier, images, predicted[:3])


def test_mean_pairwise_distance():
    assert mean_pairwise_distance(torch.zeros(5, 1, 2, 2)) == 0.0
    assert mean_pairwise_distance(torch.tensor([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        mean_pairwise_distance(torch.zeros(1, 4))


def test_code_purity():
    assert code_purity(torch.tensor([3, 3, 5, 5]), torch.tensor([0, 0, 1, 1])) == 1.0
    assert code_purity(torch.tensor([3, 5, 3, 5]), torch.tensor([0, 0, 1, 1])) == 0.5
    with pytest.raises(ValueError):
        code_purity(torch.tensor([1]), torch.tensor([1, 2]))


def test_checkerboard_amplitude():
    signs = (-1.0) ** (torch.arange(4)[:, None] + torch.arange(4)[None, :])
    assert checkerboard_amplitude(signs.view(1, 1, 4, 4)) == pytest.approx(1.0)
    assert checkerboard_amplitude(torch.ones(2, 1, 4, 4)) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        checkerboard_amplitude(torch.ones(4, 4))
