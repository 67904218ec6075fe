import pytest
import torch
from torch import nn

from utils import data, training


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))      # checkpoints go to a temporary data/
    monkeypatch.setattr(data, "DEBIAN_DIR", data.DEBIAN_DIR)
    images, labels = data.fashion_mnist("test")
    monkeypatch.setattr(data, "data_dir", lambda: tmp_path)
    monkeypatch.setattr(training, "data_dir", lambda: tmp_path)
    return images[:512], labels[:512]


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(), nn.Linear(392, 10))


def run(tiny, **kwargs):
    x, y = tiny
    model = small_model()
    history = training.fit(model, data.DeviceLoader(x, y, 64, shuffle=True, seed=1), epochs=2, lr=3e-3,
                           val_loader=data.DeviceLoader(x, y, 256), plot=False, **kwargs)
    return model, history


def test_fit_learns_and_is_deterministic(tiny):
    model, first = run(tiny)
    _, second = run(tiny)
    assert first["val_acc"] == second["val_acc"] and first["train_loss"] == second["train_loss"]
    assert first.best("val_acc") > 0.5
    assert first.images_seen == 2 * 512 and first.images_per_second > 0
    assert not model.training


def test_checkpoint_is_reused_and_config_change_retrains(tiny):
    _, trained = run(tiny, name="tiny", config={"size": 512})
    model, reused = run(tiny, name="tiny", config={"size": 512})
    assert reused.from_checkpoint and reused.rows == trained.rows
    _, retrained = run(tiny, name="tiny", config={"size": 513})
    assert not retrained.from_checkpoint


def test_keyboard_interrupt_keeps_best_saves_incomplete_and_reraises(tiny, capsys, ctrl_c_on_call):
    x, y = tiny
    interrupting_eval = ctrl_c_on_call(training.evaluate, on_call=2)
    model = small_model()
    with pytest.raises(KeyboardInterrupt):   # one Ctrl-C stops the whole cell, not just this model
        training.fit(model, data.DeviceLoader(x, y, 64), epochs=3, lr=1e-3, name="stopped",
                     val_loader=data.DeviceLoader(x, y, 256), evaluate_fn=interrupting_eval, plot=False)
    assert "interrupted after 1 of 3 epochs; kept epoch 1" in capsys.readouterr().out
    kept = training.evaluate(model, data.DeviceLoader(x, y, 256))["acc"]
    assert not model.training
    # the incomplete checkpoint holds the kept weights but is never reused as a finished run
    interrupting_eval.counter["ctrl_c_on"] = 0  # no more interruptions
    history = training.fit(small_model(), data.DeviceLoader(x, y, 64), epochs=3, lr=1e-3, name="stopped",
                           val_loader=data.DeviceLoader(x, y, 256), evaluate_fn=interrupting_eval, plot=False)
    assert "holds an interrupted run (1 of 3 epochs)" in capsys.readouterr().out
    assert not history.from_checkpoint and len(history.rows) == 3 and 0 < kept <= 1


def test_keyboard_interrupt_in_first_epoch_keeps_nothing(tiny, capsys):
    x, y = tiny

    def interrupting_loss(model, batch):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        training.fit(small_model(), data.DeviceLoader(x, y, 64), epochs=2, lr=1e-3, loss_fn=interrupting_loss,
                     name="never", plot=False)
    assert "nothing was kept" in capsys.readouterr().out
    assert not list(tiny_checkpoints())


def tiny_checkpoints():
    return (training.data_dir() / "checkpoints").rglob("*.pt")


def test_unknown_optimizer(tiny):
    with pytest.raises(ValueError, match="adamw"):
        run(tiny, optimizer="lion")


def test_assert_loss_went_down_names_both_values():
    training.History(rows=[{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": 1.0}]).assert_loss_went_down()
    with pytest.raises(AssertionError, match="the detector should lower train_loss: 2 epoch.*first 1.0000, last 1.5000"):
        training.History(rows=[{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 1.5}]).assert_loss_went_down("the detector")
    with pytest.raises(AssertionError, match="1 epoch"):
        training.History(rows=[{"epoch": 1, "train_loss": 1.0}]).assert_loss_went_down()
    training.History(rows=[{"epoch": 1, "train_loss": 1.0}], from_checkpoint=True).assert_loss_went_down()
