"""Device bugs caught without a GPU: every utility that takes a model or tensors creates its own tensors where they are.

A learner with a GPU was the first to meet ``Expected all tensors to be on the same device`` (Chapter 1d's
receptive-field probe was made on the CPU for a CUDA model). These tests run the utilities with the model and
its inputs on a *pretend* CUDA device: PyTorch's `FakeTensorMode` gives tensors that carry a device and a shape
but no data, so any mixing of devices raises exactly the error a real GPU gives, on a CPU-only machine. A fake
tensor has no values, so a utility may stop early at a data-dependent step (``.item()``, ``.numpy()``); that is
fine here: only a device mismatch fails a test.

Covered public functions (model on the pretend GPU, inputs on the CPU as a learner passes them):
``receptive_field``, ``map_layers``, ``effective_receptive_field``, ``feature_maps``, ``evaluate``, ``predict``,
``collect_gates``, ``layer_gradient_norms``, ``activation_statistics``, ``accuracy_under_shift``,
``class_agreement``, ``checkerboard_amplitude``, ``greedy_decode``, ``accuracy_by_length``,
``Generator.sample_inputs``, and with images on the pretend GPU the fusion functions (``gaussian_blur``,
``sobel``, ``laplacian``, ``gradient_magnitude``, ``rgb_to_ycbcr``, ``ycbcr_to_rgb``, ``luminance``,
``laplacian_fusion``, ``gradient_fusion``, ``colour_fusion``, ``pansharpen``, ``ssim``), ``mean_attention_distance``,
``attention_rollout``, ``dice_loss``, ``focal_loss`` and ``confusion_matrix``. Random draws made on the device (``DeviceLoader``'s shuffle, ``random_shift_flip``,
``random_flip``, the GAN's batch sampler) need a real CUDA generator: on the CPU the tests check that a generator
on the wrong device is refused by name; on a GPU, `test_a_training_step_never_waits_for_the_host` runs a
`DeviceLoader`-fed training loop under ``torch.cuda.set_sync_debug_mode("error")``.
"""

import re

import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from utils import (data, diagnostics, fid, fusion, image_ops, look_inside, receptive_field as rf, seq2seq, training,
                   vit_attention)
from utils.attention_modules import SE, attention_resnet, collect_gates
from utils.models import ResNet
from utils.models.gan import DCGANGenerator
from utils.models.transformer import Seq2SeqTransformer
from utils.models.yolo import random_flip
from utils.segmentation import confusion_matrix, dice_loss, focal_loss

MISMATCH = re.compile(r"same device|expected device|different devices|two different devices|"
                      r"device type for generator|Device Propagation|generator is on", re.IGNORECASE)
GPU = "cuda"


def small_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def runs_on_pretend_gpu(call, *models: nn.Module, must_finish: bool = False) -> None:
    """``call(*models)`` with ``models`` (built outside, as a learner does) moved to a pretend GPU under
    FakeTensorMode; fail on a device mismatch, or on any error if ``must_finish``."""
    with FakeTensorMode(allow_non_fake_inputs=True):
        try:
            call(*(model.to(GPU) for model in models))
        except Exception as error:  # noqa: BLE001 — a fake tensor has no data: only device errors count
            assert not MISMATCH.search(str(error)), f"device mismatch: {type(error).__name__}: {error}"
            assert not must_finish, f"should run to the end on a GPU, stopped with {type(error).__name__}: {error}"


def test_the_check_catches_the_bug_class():
    """The check itself: a probe made on the CPU for a model on the GPU is caught."""
    with pytest.raises(AssertionError, match="device mismatch"):
        runs_on_pretend_gpu(lambda model: model(torch.zeros(1, 1, 28, 28)), small_cnn())  # the 01d bug


def test_receptive_field_probes_on_the_model_device():
    runs_on_pretend_gpu(rf.receptive_field, small_cnn(), must_finish=True)
    runs_on_pretend_gpu(look_inside.map_layers, small_cnn(), must_finish=True)
    runs_on_pretend_gpu(rf.effective_receptive_field, small_cnn()[:4])
    runs_on_pretend_gpu(lambda model: rf.effective_receptive_field(model, inputs=torch.rand(2, 1, 28, 28)),
                        small_cnn()[:4])


@pytest.mark.parametrize("name", ["feature_maps", "evaluate", "predict", "collect_gates", "layer_gradient_norms",
                                  "activation_statistics", "accuracy_under_shift", "class_agreement"])
def test_model_utilities_move_cpu_inputs_to_the_model(name):
    images, labels = torch.rand(4, 1, 28, 28), torch.arange(4)
    calls = {
        "feature_maps": lambda model: look_inside.feature_maps(model, images[0], ["0", "3"]),
        "evaluate": lambda model: training.evaluate(model, [(images, labels)]),
        "predict": lambda model: training.predict(model, images),
        "collect_gates": lambda model: collect_gates(model, images, SE),
        "layer_gradient_norms": lambda model: diagnostics.layer_gradient_norms(model, images, labels),
        "activation_statistics": lambda model: diagnostics.activation_statistics(model, images),
        "accuracy_under_shift": lambda model: diagnostics.accuracy_under_shift(model, images, labels, [0, 2]),
        "class_agreement": lambda model: fid.class_agreement(model, images, labels),
    }
    runs_on_pretend_gpu(calls[name], attention_resnet("SE", width=8) if name == "collect_gates" else small_cnn())


def test_sequence_utilities_follow_the_model():
    src, tgt = seq2seq.reversal_dataset(4, 2, 5)
    model = Seq2SeqTransformer(seq2seq.VOCAB_SIZE, seq2seq.VOCAB_SIZE, dim=16, num_heads=2, depth=1)
    runs_on_pretend_gpu(lambda m: seq2seq.greedy_decode(m, src, 4), model)
    runs_on_pretend_gpu(lambda m: seq2seq.accuracy_by_length(m, src, tgt), model)


def test_tensor_utilities_work_where_the_tensors_are():
    runs_on_pretend_gpu(lambda: fid.checkerboard_amplitude(torch.rand(2, 1, 8, 8, device=GPU)))
    runs_on_pretend_gpu(lambda generator: generator.sample_inputs(4), DCGANGenerator(8, 8), must_finish=True)


@pytest.mark.parametrize("name", ["gaussian_blur", "sobel", "laplacian", "gradient_magnitude", "rgb_to_ycbcr",
                                  "ycbcr_to_rgb", "luminance", "laplacian_fusion", "gradient_fusion", "colour_fusion",
                                  "pansharpen", "ssim", "mean_attention_distance", "attention_rollout", "dice_loss",
                                  "focal_loss", "confusion_matrix"])
def test_image_functions_compute_where_the_images_are(name):
    grey = lambda: torch.rand(1, 1, 16, 16, device=GPU) * 255  # noqa: E731
    rgb = lambda: torch.rand(1, 3, 16, 16, device=GPU) * 255  # noqa: E731
    attn = lambda: torch.softmax(torch.rand(1, 2, 5, 5, device=GPU), -1)  # noqa: E731
    logits = lambda: torch.rand(2, 3, 8, 8, device=GPU)  # noqa: E731
    labels = lambda: torch.randint(0, 3, (2, 8, 8), device=GPU)  # noqa: E731
    calls = {
        "gaussian_blur": lambda: image_ops.gaussian_blur(grey(), 1.0),
        "sobel": lambda: image_ops.sobel(grey()),
        "laplacian": lambda: image_ops.laplacian(grey()),
        "gradient_magnitude": lambda: image_ops.gradient_magnitude(grey()),
        "rgb_to_ycbcr": lambda: image_ops.rgb_to_ycbcr(rgb()),
        "ycbcr_to_rgb": lambda: image_ops.ycbcr_to_rgb(rgb()),
        "luminance": lambda: image_ops.luminance(rgb()),
        "laplacian_fusion": lambda: fusion.laplacian_fusion(grey(), grey()),
        "gradient_fusion": lambda: fusion.gradient_fusion(grey(), grey()),
        "colour_fusion": lambda: fusion.colour_fusion(grey(), rgb(), fusion.maximum),
        "pansharpen": lambda: fusion.pansharpen(rgb(), grey()),
        "ssim": lambda: image_ops.ssim(grey(), grey()),
        "mean_attention_distance": lambda: vit_attention.mean_attention_distance(attn(), 2, 4.0),
        "attention_rollout": lambda: vit_attention.attention_rollout([attn(), attn()]),
        "dice_loss": lambda: dice_loss(logits(), labels()),
        "focal_loss": lambda: focal_loss(logits(), labels()),
        "confusion_matrix": lambda: confusion_matrix(labels(), labels(), 3),
    }
    runs_on_pretend_gpu(calls[name])


def test_generators_on_the_wrong_device_are_refused_by_name():
    with pytest.raises(ValueError, match="torch.Generator\\(device="):
        data.random_shift_flip(torch.rand(2, 1, 8, 8, device="meta"), torch.Generator())
    with pytest.raises(ValueError, match="torch.Generator\\(device="):
        random_flip(torch.rand(2, 1, 8, 8, device="meta"), torch.zeros(2, 3, 5, device="meta"), torch.Generator())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_training_step_never_waits_for_the_host():
    """On a real GPU: no host–device synchronisation inside `fit`'s steps (shuffle, augmentation, forward,
    backward, optimiser)."""
    images, labels = torch.randint(0, 255, (512, 1, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (512,))
    loader = data.DeviceLoader(images, labels, 128, shuffle=True, augment=True, device="cuda")
    model = ResNet(width=8).cuda()
    opt = torch.optim.AdamW(model.parameters())
    next(iter(loader))  # warm-up outside the check (lazy CUDA initialisation syncs)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for x, y in loader:
            with training.autocast(x.device):
                loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")



def _detector_and_batch(device: str):
    """A small detector and a batch of 4 images with 1–3 boxes each (−1 rows pad the targets)."""
    from utils.models.yolo import AnchorFreeDetector

    torch.manual_seed(0)
    images = torch.randn(4, 1, 64, 64, device=device)
    targets = torch.full((4, 3, 5), -1.0, device=device)
    for i, count in enumerate((1, 2, 3, 1)):
        for j in range(count):
            x, y = 4 + 14 * j, 6 + 12 * i
            targets[i, j] = torch.tensor([float(i + j), x, y, x + 20, y + 18])
    return AnchorFreeDetector(num_classes=10, width=8).to(device), (images, targets)


def test_detector_loss_weights_positives_instead_of_indexing_them():
    """The sync-free loss equals YOLOX's loss written with boolean indexing (which waits for the host on a GPU)."""
    from utils.detection import iou_loss
    from utils.models.yolo import anchor_free_loss, centre_assignment

    model, (images, targets) = _detector_and_batch("cpu")
    out = model(images).float()
    boxes, _, _ = model.decode(out, 64)
    positive = centre_assignment(*model.points(64, "cpu"), targets) >= 0
    assigned = centre_assignment(*model.points(64, "cpu"), targets).clamp(min=0)
    matched = torch.gather(targets, 1, assigned[..., None].expand(-1, -1, 5))
    count = positive.sum()
    indexed = (5 * iou_loss(boxes[positive], matched[positive][:, 1:])
               + nn.functional.binary_cross_entropy_with_logits(out[..., 4], positive.float(), reduction="sum") / count
               + nn.functional.binary_cross_entropy_with_logits(
                   out[..., 5:][positive], nn.functional.one_hot(matched[positive][:, 0].long(), 10).float(),
                   reduction="sum") / count)
    assert count > 0, "the test batch must give the detector positive points"
    assert torch.allclose(anchor_free_loss(model, (images, targets)), indexed, rtol=1e-5), \
        "the weighted loss must equal the indexed one"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_detector_training_step_never_waits_for_the_host():
    from utils.models.yolo import anchor_free_loss, random_flip

    model, batch = _detector_and_batch("cuda")
    flips = torch.Generator(device="cuda").manual_seed(0)
    opt = torch.optim.AdamW(model.parameters())
    anchor_free_loss(model, batch).backward()  # warm-up outside the check
    torch.cuda.set_sync_debug_mode("error")
    try:
        with training.autocast(torch.device("cuda")):
            loss = anchor_free_loss(model, random_flip(*batch, flips))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
