"""`utils.training` never keeps a wrong run as finished, never loses a finished one, and refuses bad data clearly.

Tiny models on tiny random tensors, so each test takes well under a second or two; checkpoints go to tmp_path.
"""

import functools

import pytest
import torch
from torch import nn

from utils import data, training


@pytest.fixture(autouse=True)
def checkpoints(monkeypatch, tmp_path):
    """Checkpoints under a temporary data folder; no retraining forced unless a test asks for it."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(training, "data_dir", lambda: tmp_path)
    monkeypatch.delenv("COURSE_RETRAIN", raising=False)
    return tmp_path / "checkpoints"


def tiny_model(batch_norm=False):
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 4, 3, padding=1)] + ([nn.BatchNorm2d(4)] if batch_norm else [])
    return nn.Sequential(*layers, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


def batches(n=4, size=16, nan_in=None):
    """``n`` batches of ``size`` random 1×8×8 images with labels 0–9; batch ``nan_in`` (from 1) holds a NaN."""
    generator = torch.Generator().manual_seed(0)
    out = []
    for number in range(1, n + 1):
        x = torch.randn(size, 1, 8, 8, generator=generator)
        if number == nan_in:
            x[3, 0, 2, 2] = float("nan")
        out.append((x, torch.randint(0, 10, (size,), generator=generator)))
    return out


def fit(model=None, loader=None, **kwargs):
    kwargs = {"epochs": 2, "lr": 1e-2, "plot": False, **kwargs}
    return training.fit(model or tiny_model(), loader or batches(), **kwargs)


def saved(folder):
    return sorted(p.name.split("-")[0] + p.name[p.name.index("."):] for p in folder.rglob("*.pt"))


# ----------------------------------------------------------------------------- diverged runs are never finished
def test_adamw_at_a_huge_lr_stops_with_the_learning_rate_named(checkpoints):
    with pytest.raises(training.TrainingDiverged, match="epoch 1 of 2: the mean training loss rose") as error:
        fit(lr=1e3, name="adamw")
    message = str(error.value)
    assert "lr=1000.0 is likely too high: try lr=100" in message and "nothing was kept" in message
    assert not saved(checkpoints)     # no finished checkpoint to reuse on the next run
    assert error.value.history.rows == []


def test_sgd_at_a_huge_lr_stops_too(checkpoints):
    with pytest.raises(training.TrainingDiverged, match="epoch 1 of 2: the mean training loss rose.*try lr=100"):
        fit(lr=1e3, optimizer="sgd", name="sgd")
    assert not saved(checkpoints)


def test_a_nan_loss_says_the_inputs_are_finite_and_the_nan_model_is_refused_next_time(checkpoints):
    model = tiny_model()
    with pytest.raises(training.TrainingDiverged, match="the mean training loss is nan") as error:
        fit(model, lr=1e8, optimizer="sgd", name="sgd")
    assert "every batch of train_loader is finite" in str(error.value) and "try lr=1e+07" in str(error.value)
    assert not saved(checkpoints)
    with pytest.raises(ValueError, match="weights hold NaN or inf before training.*build the model again"):
        fit(model, lr=1e-3)


def test_nan_inputs_are_named_by_batch_and_not_blamed_on_the_learning_rate(checkpoints, capsys):
    with pytest.raises(training.TrainingDiverged, match="batch 3 of train_loader holds NaN or inf") as error:
        fit(loader=batches(nan_in=3), name="nan")
    assert "a lower lr will not help" in str(error.value)
    assert "kept epoch" not in capsys.readouterr().out and not saved(checkpoints)


def test_weights_turning_nan_under_a_finite_loss_stop_training(checkpoints):
    steps = []

    def poisoning(model, batch):
        steps.append(1)
        loss = training.classification_loss(model, batch)
        if len(steps) == 4:        # the epoch's last step: its loss is finite, the update it makes is not
            model[-1].bias.register_hook(lambda grad: grad * float("nan"))
        return loss

    with pytest.raises(training.TrainingDiverged, match="epoch 1 of 2: the weights hold NaN or inf"):
        fit(loss_fn=poisoning, optimizer="sgd", name="poisoned")
    assert not saved(checkpoints)


def blowing_up(switch):
    """A loss that is fine for ``switch["after"]`` steps, then 10⁶ times too big (forever if "after" is unset)."""
    def loss(model, batch):
        switch["steps"] = switch.get("steps", 0) + 1
        scale = 1e6 if switch.get("after") and switch["steps"] > switch["after"] else 1.0
        return scale * training.classification_loss(model, batch)
    return loss


def test_a_later_divergence_keeps_the_last_good_epoch_only_as_incomplete(checkpoints, capsys):
    switch = {"after": 4}     # four batches an epoch: epoch 2 blows up
    model = tiny_model()
    with pytest.raises(training.TrainingDiverged, match="epoch 2 of 3") as error:
        fit(model, epochs=3, loss_fn=blowing_up(switch), name="late")
    assert "diverged in epoch 2 of 3; kept epoch 1" in capsys.readouterr().out
    assert "best earlier epoch, kept only as incomplete" in str(error.value)
    assert len(error.value.history.rows) == 1
    assert saved(checkpoints) == ["late.incomplete.pt"]
    assert all(torch.isfinite(p).all() for p in model.parameters()) and not model.training
    switch.clear()
    switch["after"] = 4
    with pytest.raises(training.TrainingDiverged):     # never reused as finished: it trains (and diverges) again
        fit(epochs=3, loss_fn=blowing_up(switch), name="late")
    assert "holds a diverged run (1 of 3 epochs); training again" in capsys.readouterr().out


def test_an_ordinary_run_is_not_mistaken_for_divergence(checkpoints):
    history = fit(epochs=3, name="fine")
    assert len(history.rows) == 3 and saved(checkpoints) == ["fine.pt"]


# ----------------------------------------------------------------------------- the key covers every setting
class Scaled(nn.Module):
    def __init__(self, options):
        super().__init__()
        self.options = options
        self.linear = nn.Linear(4, 4)


def test_a_dict_setting_of_a_module_is_in_the_key():
    def key(options):
        return training.checkpoint_path("m", Scaled(options), {})

    assert key({"scale": 1.0, "mode": "a"}) == key({"mode": "a", "scale": 1.0})     # order does not matter
    assert key({"scale": 1.0, "mode": "a"}) != key({"scale": 2.0, "mode": "a"})
    assert key({"scale": 1.0, "nested": {"k": [1, 2]}}) != key({"scale": 1.0, "nested": {"k": [1, 3]}})
    assert key({"scale": None}) != key({"scale": 1.0})


def loss_once(model, batch):
    return training.classification_loss(model, batch)


def loss_edited(model, batch):
    return 2 * training.classification_loss(model, batch)


def test_an_edited_loss_body_under_the_same_name_retrains(checkpoints):
    loss_edited.__name__ = loss_edited.__qualname__ = loss_once.__name__
    assert not fit(loss_fn=loss_once, name="edit").from_checkpoint
    assert fit(loss_fn=loss_once, name="edit").from_checkpoint
    assert not fit(loss_fn=loss_edited, name="edit").from_checkpoint


def test_code_key_covers_partials_closures_objects_and_functions_without_source():
    key = training._code_key
    smoothing = functools.partial(training.classification_loss, label_smoothing=0.1)
    assert key(smoothing) == key(functools.partial(training.classification_loss, label_smoothing=0.1))
    assert key(smoothing) != key(functools.partial(training.classification_loss, label_smoothing=0.2))

    def with_temperature(temperature):
        def loss(model, batch):
            return training.classification_loss(model, batch) / temperature
        return loss

    assert key(with_temperature(0.1)) != key(with_temperature(0.2))
    counter = {"calls": 0}
    counting = blowing_up(counter)
    before = key(counting)
    counter["calls"] = 5                       # state in a closure is not a setting
    assert key(counting) == before

    def made(body):
        scope = {}
        exec(f"def loss(model, batch):\n    return {body}\n", scope)  # no source file to read
        return scope["loss"]

    assert key(made("1.0 * model(batch[0]).sum()")) == key(made("1.0 * model(batch[0]).sum()"))
    assert key(made("1.0 * model(batch[0]).sum()")) != key(made("2.0 * model(batch[0]).sum()"))


# ----------------------------------------------------------------------------- a retrain never destroys a finished run
@pytest.mark.parametrize("stop", ["interrupt", "diverge"])
def test_a_stopped_retrain_leaves_the_finished_checkpoint_in_place(checkpoints, monkeypatch, capsys, stop):
    switch = {}

    def loss(model, batch):
        switch["steps"] = switch.get("steps", 0) + 1
        if switch.get("on") and switch["steps"] > 5:
            if stop == "interrupt":
                raise KeyboardInterrupt
            return 1e6 * training.classification_loss(model, batch)
        return training.classification_loss(model, batch)

    finished = fit(epochs=3, loss_fn=loss, name="kept")
    path, = checkpoints.rglob("kept-*.pt")
    before = path.read_bytes()
    monkeypatch.setenv("COURSE_RETRAIN", "1")                  # what make verify sets
    switch.update(on=True, steps=0)
    with pytest.raises(KeyboardInterrupt if stop == "interrupt" else training.TrainingDiverged):
        fit(epochs=3, loss_fn=loss, name="kept")
    assert path.read_bytes() == before                        # the finished model is untouched
    assert saved(checkpoints) == ["kept.incomplete.pt", "kept.pt"]
    monkeypatch.delenv("COURSE_RETRAIN")
    capsys.readouterr()
    reused = fit(epochs=3, loss_fn=loss, name="kept")
    assert reused.from_checkpoint and reused.rows == finished.rows
    assert "reused" in capsys.readouterr().out


def test_a_finished_run_replaces_the_incomplete_one(checkpoints, ctrl_c_on_call):
    interrupting = ctrl_c_on_call(training.classification_loss, on_call=6)
    with pytest.raises(KeyboardInterrupt):
        fit(epochs=2, loss_fn=interrupting, name="again")
    assert saved(checkpoints) == ["again.incomplete.pt"]
    fit(epochs=2, loss_fn=interrupting, name="again")
    assert saved(checkpoints) == ["again.pt"]


# ----------------------------------------------------------------------------- bad data refused with the fix
def test_predict_refuses_uint8_images_with_the_fix():
    images = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    with pytest.raises(TypeError, match=r"uint8 images.*utils.data.standardize\(images\)"):
        training.predict(tiny_model(), images)
    assert training.predict(tiny_model(), images.float() / 255).shape == (3, 10)


def test_fit_refuses_batches_without_a_channel_axis():
    loader = [(x[:, 0], y) for x, y in batches()]            # B×8×8
    with pytest.raises(ValueError, match=r"no channel axis.*B×1×H×W.*images.unsqueeze\(1\)"):
        fit(loader=loader)


@pytest.mark.parametrize("labels, error, fix", [
    (lambda y: y.float(), TypeError, r"float32.*int64 class indices: pass labels.long\(\)"),
    (lambda y: y.int(), TypeError, r"int32.*labels.long\(\)"),
    (lambda y: y[:, None], ValueError, r"shape \(16, 1\).*shape \(16,\).*labels.squeeze\(1\)"),
    (lambda y: y + 1, ValueError, r"labels run from 1 to 10, but the model has 10 outputs.*\[0, 9\]"),
    (lambda y: y - 1, ValueError, r"labels run from -1 to 8"),
])
def test_fit_refuses_labels_the_default_loss_cannot_use(labels, error, fix):
    loader = [(x, labels(y)) for x, y in batches()]
    model = tiny_model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(error, match=fix):
        fit(model, loader=loader)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())     # refused before any step


def test_evaluate_refuses_float_labels():
    with pytest.raises(TypeError, match="evaluate: the labels are torch.float32"):
        training.evaluate(tiny_model(), [(x, y.float()) for x, y in batches()])


def test_batchnorm_and_a_last_batch_of_one_suggests_drop_last():
    from utils.data import DeviceLoader

    images, labels = torch.randint(0, 256, (33, 1, 8, 8), dtype=torch.uint8), torch.randint(0, 10, (33,))
    with pytest.raises(ValueError, match="last batch holds a single image.*drop_last=True"):
        fit(tiny_model(batch_norm=True), DeviceLoader(images, labels, 16))
    with pytest.raises(ValueError, match="drop_last=True"):
        fit(tiny_model(batch_norm=True), batches() + [(torch.randn(1, 1, 8, 8), torch.tensor([3]))])
    assert len(fit(tiny_model(batch_norm=True), DeviceLoader(images, labels, 16, drop_last=True)).rows) == 2


def test_fit_refuses_a_loss_returned_as_a_number_or_without_gradient():
    with pytest.raises(TypeError, match=r"returned a float.*not loss.item\(\)"):
        fit(loss_fn=lambda model, batch: training.classification_loss(model, batch).item())
    with pytest.raises(ValueError, match="without a gradient"):
        fit(loss_fn=lambda model, batch: training.classification_loss(model, batch).detach())
    with pytest.raises(ValueError, match=r"shape \(16,\).*\.mean\(\)"):
        fit(loss_fn=lambda model, batch: nn.functional.cross_entropy(model(batch[0]), batch[1], reduction="none"))
    with pytest.raises(TypeError, match="loss_fn must be a function"):
        fit(loss_fn="cross_entropy")


def test_a_checkpoint_of_another_model_renamed_to_this_key_is_named_in_one_line_and_retrained(checkpoints, capsys):
    fit(epochs=1, name="mine")
    path = next(checkpoints.rglob("mine-*.pt"))
    other = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 10))
    foreign = training.fit(other, batches(), epochs=1, lr=1e-2, plot=False, name="theirs")
    assert not foreign.from_checkpoint
    path.write_bytes(next(checkpoints.rglob("theirs-*.pt")).read_bytes())   # renamed by hand
    capsys.readouterr()
    again = fit(epochs=1, name="mine")
    out = capsys.readouterr().out
    assert not again.from_checkpoint and "size mismatch" not in out
    assert "holds another model's weights (0.bias has shape (8,) in the file, (4,) in this model)" in out


def test_a_reused_checkpoint_leaves_the_loader_and_random_state_as_training_would():
    """Chapter 9 trains several models on one loader: when the first is reused, the next must see the same batches
    (and draw the same random numbers) as when it was trained, or the chapter's figures depend on what was cached."""
    def after_fit():
        torch.manual_seed(1)
        x = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        loader = data.DeviceLoader(x, torch.arange(64) % 10, batch_size=16, shuffle=True, augment=True, seed=3)
        model = nn.Sequential(tiny_model(), nn.Dropout(0.5))
        history = training.fit(model, loader, epochs=2, lr=1e-2, plot=False, name="first")
        next_batch, = [b for b, _ in zip(loader, range(1))]
        return history.from_checkpoint, next_batch[0], torch.rand(3)

    trained, trained_batch, trained_draw = after_fit()
    reused, reused_batch, reused_draw = after_fit()
    assert not trained and reused
    torch.testing.assert_close(reused_batch, trained_batch, msg="the next epoch's batch should not depend on reuse")
    torch.testing.assert_close(reused_draw, trained_draw, msg="the random state should not depend on reuse")
