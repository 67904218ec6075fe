"""Chapter 9, section 5 (utils/transfer.py): parameter groups get their rates, frozen parameters receive no update,
BatchNorm in eval mode keeps its running statistics (and drifts in train mode), the power-law fit, one scaling run
through `fit` into a temporary folder, the two figures, bad input."""

import copy
import math

import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

from utils import data, training, transfer
from utils.data import DeviceLoader
from utils.models.clip import Classifier, ImageEncoder


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return Classifier(ImageEncoder(width=2), classes=3)


def tiny_task(count=24, seed=0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 3
    images = torch.randn(count, 1, 12, 12, generator=generator) + labels.view(-1, 1, 1, 1).float()
    return images, labels


def test_parameter_groups_give_the_head_and_the_backbone_their_rates():
    model = tiny_model()
    groups = transfer.parameter_groups(model, model.encoder, 1e-2, 1e-4)
    optimizer = torch.optim.AdamW(groups)
    rates = {g["name"]: (g["lr"], sum(p.numel() for p in g["params"])) for g in optimizer.param_groups}
    assert rates == {"head": (1e-2, 8 * 3 + 3), "backbone": (1e-4, sum(p.numel() for p in model.encoder.parameters()))}
    transfer.freeze(model.encoder)
    assert [g["name"] for g in transfer.parameter_groups(model, model.encoder, 1e-2, 1e-4)] == ["head"]
    with pytest.raises(ValueError, match="backbone_lr"):
        transfer.parameter_groups(model, model.encoder, 1e-2, 0)
    with pytest.raises(ValueError, match="submodule"):
        transfer.parameter_groups(model, tiny_model().encoder, 1e-2, 1e-3)
    with pytest.raises(ValueError, match="outside the backbone"):
        transfer.parameter_groups(model.encoder, model.encoder, 1e-2, 1e-3)


def test_each_group_moves_at_its_own_rate():
    """One SGD step: each parameter moves by its group's rate times its gradient."""
    model = tiny_model()
    before = copy.deepcopy(model)
    optimizer = torch.optim.SGD(transfer.parameter_groups(model, model.encoder, 0.5, 0.01))
    images, labels = tiny_task()
    nn.functional.cross_entropy(model(images), labels).backward()
    optimizer.step()
    for (name, after), old in zip(model.named_parameters(), before.parameters()):
        rate = 0.01 if name.startswith("encoder.") else 0.5
        torch.testing.assert_close(after, old - rate * after.grad, msg=name)


def test_a_frozen_backbone_receives_no_update_and_the_head_does(one_thread):
    model = tiny_model()
    before = copy.deepcopy(model)
    images, labels = tiny_task()
    losses = transfer.fine_tune(model, model.encoder, images, labels, steps=5, batch_size=8, head_lr=1e-2,
                                backbone_lr=None, batchnorm_eval=True, generator=torch.Generator().manual_seed(0))
    assert len(losses) == 5 and all(math.isfinite(v) for v in losses)
    assert not model.training, "fine_tune leaves the model in eval mode"
    assert all(p.grad is None and not p.requires_grad for p in model.encoder.parameters())
    for key, tensor in before.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], tensor), key
    assert not torch.equal(model.head.weight, before.head.weight), "the head should train"


def test_batchnorm_eval_keeps_the_running_statistics_and_train_mode_moves_them(one_thread):
    images, labels = tiny_task()
    runs = {}
    for batchnorm_eval in (True, False):
        model, reference = tiny_model(), tiny_model()
        transfer.fine_tune(model, model.encoder, images + 3, labels, steps=4, batch_size=4, head_lr=1e-2,
                           backbone_lr=1e-3, batchnorm_eval=batchnorm_eval,
                           generator=torch.Generator().manual_seed(0))
        runs[batchnorm_eval] = transfer.batchnorm_drift(model.encoder, reference.encoder)
        moved = [not torch.equal(a, b) for a, b in zip(model.encoder.parameters(), reference.encoder.parameters())]
        assert all(moved), "the backbone's weights train in both modes"
    assert runs[True] == 0, "eval mode: the running statistics stay exactly"
    assert runs[False] > 0.1, f"train mode on shifted images: the statistics should move, drift {runs[False]:.3f}"
    assert transfer.keep_batchnorm_statistics(tiny_model()) == 5
    with pytest.raises(ValueError, match="no BatchNorm"):
        transfer.batchnorm_drift(nn.Linear(2, 2), nn.Linear(2, 2))


def test_fine_tune_refuses_bad_settings():
    model, (images, labels) = tiny_model(), tiny_task()
    options = dict(head_lr=1e-2, backbone_lr=None, batchnorm_eval=True, generator=torch.Generator())
    with pytest.raises(ValueError, match="batch_size"):
        transfer.fine_tune(model, model.encoder, images, labels, steps=2, batch_size=100, **options)
    with pytest.raises(ValueError, match="steps"):
        transfer.fine_tune(model, model.encoder, images, labels, steps=0, batch_size=4, **options)


def test_power_law_recovers_the_exponent():
    x = [10, 100, 1000, 10_000]
    slope, scale = transfer.power_law(x, [3 * v ** -0.25 for v in x])
    assert slope == pytest.approx(-0.25) and scale == pytest.approx(3)
    with pytest.raises(ValueError, match="positive"):
        transfer.power_law([1, 2], [1, 0])


def test_scaling_run_trains_through_fit_and_measures(monkeypatch, tmp_path, one_thread):
    monkeypatch.setattr(data, "data_dir", lambda: tmp_path)
    monkeypatch.setattr(training, "data_dir", lambda: tmp_path)
    images = torch.randint(0, 255, (64, 1, 28, 28), dtype=torch.uint8)
    labels = torch.arange(64) % 10
    loader = DeviceLoader(images, labels, batch_size=16, shuffle=True, drop_last=True)
    test = DeviceLoader(images, labels, batch_size=32)
    torch.manual_seed(0)
    model = Classifier(ImageEncoder(width=2))
    run = transfer.scaling_run(model, loader, test, data.standardize(images[:1]), epochs=1, lr=1e-3, name="scale",
                               config={"items": 64})
    assert run["parameters"] == 270 * 4 + 75 * 2 + 10
    assert run["training flops"] == 3 * run["flops"] * 64 and run["flops"] > 0
    assert 0 <= run["accuracy"] <= 1 and run["loss"] > 0
    assert len(list((tmp_path / "checkpoints").rglob("scale-*.pt"))) == 1, "the run is checkpointed by fit"
    with pytest.raises(ValueError, match="one image"):
        transfer.scaling_run(model, loader, test, images[:2].float(), epochs=1, lr=1e-3, name="scale", config={})


def test_the_figures_label_every_point():
    curves = {"A": {"probe": [0.5, 0.6], "scratch": [0.3, 0.5]}, "B": {"probe": [0.4, 0.7], "scratch": [0.3, 0.5]}}
    fig = transfer.render_label_curves(curves, (50, 200), title="t")
    assert len(fig.axes) == 2 and len(fig.axes[0].texts) == 4 and fig.axes[0].get_xscale() == "log"
    plt.close(fig)
    with pytest.raises(ValueError, match="sizes"):
        transfer.render_label_curves({"A": {"probe": [0.5]}}, (50, 200))
    runs = {f"width {w}": {"parameters": 270 * w * w, "training flops": 1e6 * w * w, "loss": 1 / w, "accuracy": 0.5}
            for w in (2, 4, 8)}
    data_runs = {n: {"loss": 10 / n, "accuracy": 0.5} for n in (100, 400)}
    fig = transfer.render_scaling(runs, data_runs)
    assert [ax.get_xscale() for ax in fig.axes] == ["log"] * 3
    assert "slope -0.500" in fig.axes[0].get_legend().get_texts()[1].get_text()
    assert "slope -1.000" in fig.axes[2].get_legend().get_texts()[1].get_text()
    plt.close(fig)
