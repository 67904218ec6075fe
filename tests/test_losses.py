"""utils/losses.py (Chapter 1c) against torch, torchvision and torchmetrics."""

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import binary_f1_score, binary_jaccard_index
from torchvision.ops import sigmoid_focal_loss

from utils import losses
from utils.segmentation import binary_focal_loss


@pytest.fixture
def pair():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(4, 50, generator=generator) * 3, (torch.rand(4, 50, generator=generator) > 0.7).float()


def test_regression_losses_equal_torch(pair):
    prediction, target = pair
    torch.testing.assert_close(losses.mse_loss(prediction, target), F.mse_loss(prediction, target))
    torch.testing.assert_close(losses.l1_loss(prediction, target), F.l1_loss(prediction, target))
    for beta in (0.5, 1.0, 2.0):
        torch.testing.assert_close(losses.smooth_l1_loss(prediction, target, beta),
                                   F.smooth_l1_loss(prediction, target, beta=beta))


def test_classification_losses_equal_torch_and_torchvision(pair):
    logits, target = pair
    torch.testing.assert_close(losses.binary_cross_entropy(logits, target),
                               F.binary_cross_entropy_with_logits(logits, target))
    torch.testing.assert_close(losses.binary_cross_entropy(logits * 100, target),
                               F.binary_cross_entropy_with_logits(logits * 100, target))   # stable on huge logits
    for alpha, gamma in ((0.25, 2.0), (-1, 0.0), (0.5, 1.0)):   # the focal loss 01c shows is Chapter 5's
        torch.testing.assert_close(binary_focal_loss(logits, target, gamma=gamma, alpha=alpha),
                                   sigmoid_focal_loss(logits, target, alpha, gamma, reduction="mean"))


def test_overlap_losses_on_binary_masks_equal_one_minus_f1_and_jaccard(pair):
    logits, target = pair
    predicted = (logits > 0).float()
    torch.testing.assert_close(losses.binary_dice_loss(predicted, target),
                               1 - binary_f1_score(predicted.flatten(), target.flatten().long()), atol=1e-5, rtol=0)
    torch.testing.assert_close(losses.soft_iou_loss(predicted, target),
                               1 - binary_jaccard_index(predicted.flatten(), target.flatten().long()), atol=1e-5, rtol=0)


def test_entropy_cross_entropy_and_kl_are_tied_and_equal_torch():
    generator = torch.Generator().manual_seed(1)
    p = torch.randn(5, 7, generator=generator, dtype=torch.float64).softmax(-1)
    q = torch.randn(5, 7, generator=generator, dtype=torch.float64).softmax(-1)
    torch.testing.assert_close(losses.entropy(p), torch.distributions.Categorical(probs=p).entropy())
    torch.testing.assert_close(losses.kl_divergence(p, q), F.kl_div(q.log(), p, reduction="none").sum(-1))
    torch.testing.assert_close(losses.cross_entropy_between(p, q), losses.entropy(p) + losses.kl_divergence(p, q))
    one_hot = F.one_hot(torch.tensor([2, 0, 6, 1, 3]), 7).double()
    torch.testing.assert_close(losses.cross_entropy_between(one_hot, q),
                               F.nll_loss(q.log(), one_hot.argmax(-1), reduction="none"))
    assert torch.all(losses.kl_divergence(p, p).abs() < 1e-12)


def test_bad_inputs_are_refused_with_a_message():
    with pytest.raises(ValueError, match="same shape"):
        losses.mse_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="sum to 1"):
        losses.entropy(torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match="beta"):
        losses.smooth_l1_loss(torch.zeros(2), torch.zeros(2), beta=0)
