"""Nothing silently wrong, round two (issue 33): public functions given a value that used to give a wrong answer
without a word. Each test is one probe: the answer is now right, or the refusal is raised at the top of the
function and says what was given and what to pass.
"""

import numpy as np
import pytest
import torch

from utils import attention, contrastive, detection, exercises, fusion, pose, segmentation


# --------------------------------------------------------------------------------------------- segmentation
def _labels(num_classes=21, seed=0):
    """A prediction that is right on about 70% of pixels, and its target, as int64 labels."""
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_classes, (4, 64, 64), generator=generator)
    wrong = torch.randint(0, num_classes, target.shape, generator=generator)
    return torch.where(torch.rand(target.shape, generator=generator) < 0.7, target, wrong), target


@pytest.mark.parametrize("dtypes", [(torch.uint8, torch.int64), (torch.int64, torch.uint8),
                                    (torch.uint8, torch.uint8), (torch.int32, torch.int16)])
def test_segmentation_metrics_count_uint8_masks_in_int64(dtypes):
    pred, target = _labels()
    expected = segmentation.segmentation_metrics(pred, target, 21)
    got = segmentation.segmentation_metrics(pred.to(dtypes[0]), target.to(dtypes[1]), 21)
    assert got["miou"] == pytest.approx(expected["miou"]) and got["miou"] > 0.5
    assert torch.equal(segmentation.confusion_matrix(pred.to(dtypes[0]), target.to(dtypes[1]), 21),
                       segmentation.confusion_matrix(pred, target, 21))
    assert segmentation.confusion_matrix(pred.to(torch.uint8), target.to(torch.uint8), 21).dtype == torch.int64


def test_segmentation_metrics_refuse_a_bad_class_count_or_matrix():
    pred, target = _labels(5)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=f"num_classes must be a positive integer.*not {bad!r}"):
            segmentation.confusion_matrix(pred, target, bad)
    with pytest.raises(ValueError, match="square .* got \\(3, 4\\)"):
        segmentation.metrics_from_confusion(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="negative counts"):
        segmentation.metrics_from_confusion(-torch.eye(3))


# ------------------------------------------------------------------------------------------------ attention
def test_attention_rollout_refuses_logits_and_keeps_probabilities():
    logits = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(0)) * 3
    maps = [logits.softmax(-1), (logits * 0.5).softmax(-1)]
    rollout = attention.attention_rollout(maps)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 5))   # still a distribution per token
    for bad, name in (([logits, maps[1]], r"attentions\[0\]"), ([maps[0], maps[1] * 2], r"attentions\[1\]"),
                      ([maps[0], maps[1].masked_fill(maps[1] > 0.5, float("nan"))], r"attentions\[1\]")):
        with pytest.raises(ValueError, match=name + r" must hold attention probabilities.*softmax\(-1\)"):
            attention.attention_rollout(bad)
    assert attention.attention_rollout([m.bfloat16() for m in maps]).dtype == torch.bfloat16  # rounding passes


# ---------------------------------------------------------------------------------------------- contrastive
@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), -0.1, 0.0, torch.tensor(float("nan")),
                                         torch.tensor([0.1, 0.2]), "0.1", True])
def test_losses_with_a_temperature_refuse_one_that_is_not_finite_and_positive(temperature):
    z1, z2 = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(0))
    for loss in (contrastive.info_nce, contrastive.clip_loss):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            loss(z1, z2, temperature)
    with pytest.raises(ValueError, match="t must be a finite number > 0 such as 2.0"):
        contrastive.uniformity(z1, temperature)


def test_losses_with_a_temperature_keep_their_values_for_valid_ones():
    z1, z2 = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(0))
    learnt = torch.tensor(0.07, requires_grad=True)
    assert torch.isfinite(contrastive.info_nce(z1, z2, np.float32(0.1)))
    contrastive.clip_loss(z1, z2, learnt).backward()
    assert learnt.grad is not None and torch.isfinite(learnt.grad)
    with pytest.raises(ValueError, match="margin must be a finite number ≥ 0"):
        contrastive.triplet_loss(z1, z2, z2.flip(0), float("nan"))
