"""utils.diagnostics (Chapter 1c): networks, gradient and activation instruments, optimiser trajectories."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utils import diagnostics as dx


def test_initialize_sets_the_textbook_variances():
    torch.manual_seed(0)
    layer = nn.Linear(400, 600)
    dx.initialize(layer, "xavier")
    assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / 1000), rel=0.03)
    assert torch.equal(layer.bias, torch.zeros(600))
    dx.initialize(layer, "kaiming", scale=2.0)
    assert layer.weight.std().item() == pytest.approx(2 * math.sqrt(2 / 400), rel=0.03)
    before = layer.weight.clone()
    dx.initialize(layer, "default")
    assert torch.equal(layer.weight, before)
    with pytest.raises(ValueError, match="xavier"):
        dx.initialize(layer, "orthogonal")


def test_plain_mlp_structure_and_errors():
    net = dx.plain_mlp(3, 32, "gelu", "xavier")
    assert [type(m) for m in net] == [nn.Flatten, nn.Linear, nn.GELU, nn.Linear, nn.GELU, nn.Linear, nn.GELU,
                                      nn.Linear]
    assert net(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    with pytest.raises(ValueError, match="activation"):
        dx.plain_mlp(3, 32, "swish")
    with pytest.raises(ValueError, match="depth"):
        dx.plain_mlp(0, 32)


@pytest.mark.parametrize("head", ["gap", "flatten"])
def test_small_cnn_shapes_and_parameters(head):
    model = dx.SmallCNN(width=4, convs=2, batch_norm=True, head=head)
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 6
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))   # BN makes biases redundant
    head_inputs = 16 * (1 if head == "gap" else 49)
    assert model.head[-1].in_features == head_inputs
    with pytest.raises(ValueError, match="head"):
        dx.SmallCNN(head="attention")


def test_weight_layers_in_order():
    net = dx.plain_mlp(2, 8)
    names = [name for name, _ in dx.weight_layers(net)]
    assert names == ["1", "3", "5"]


def test_layer_gradient_norms_match_autograd_and_leave_grad_alone():
    torch.manual_seed(0)
    net = dx.plain_mlp(3, 16, "tanh", "xavier")
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    norms = dx.layer_gradient_norms(net, x, y)
    assert norms["weight"].shape == (4,) and norms["signal"].shape == (3,)
    assert all(p.grad is None for p in net.parameters())
    F.cross_entropy(net(x), y).backward()
    expected = torch.stack([w.grad.norm() for _, w in dx.weight_layers(net)])
    torch.testing.assert_close(norms["weight"], expected)
    assert not net[2]._forward_hooks                       # hooks removed


def test_vanishing_and_exploding_signal():
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    vanishing = dx.layer_gradient_norms(dx.plain_mlp(12, 64, "sigmoid", "xavier"), x, y)["signal"]
    exploding = dx.layer_gradient_norms(dx.plain_mlp(12, 64, "relu", "kaiming", scale=2.0), x, y)["signal"]
    assert vanishing[0] / vanishing[-1] < 1e-4
    assert exploding[0] / exploding[-1] > 10


def test_activation_statistics_counts_dead_and_flat_units():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2), nn.Tanh())
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        net[0].bias.copy_(torch.tensor([0.0, 0.0, -1.0]))     # unit 3 is negative for every input: dead
        net[2].weight.fill_(100.0)                              # tanh far into saturation
    x = torch.rand(16, 2) + 0.5
    relu, tanh = dx.activation_statistics(net, x)
    assert relu["dead"] == pytest.approx(1 / 3)
    assert relu["flat"] == pytest.approx(1 / 3)
    assert tanh["flat"] == 1.0 and tanh["dead"] == 0.0
    assert not net[1]._forward_hooks


def test_smoothed_loss_is_a_running_mean():
    trace = dx.Trace(loss=[4.0, 2.0, 0.0, 2.0])
    np.testing.assert_allclose(trace.smoothed_loss(2), [4.0, 3.0, 1.0, 1.0])


def _tiny_loader():
    torch.manual_seed(0)
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    return [(x[:16], y[:16]), (x[16:], y[16:])]


def test_train_steps_records_every_step_and_cycles_the_loader():
    net = dx.plain_mlp(2, 16)
    trace = dx.train_steps(net, _tiny_loader(), torch.optim.SGD(net.parameters(), lr=0.1), steps=5)
    assert len(trace.loss) == 5 and trace.grad_norms.shape == (5, 3) and not trace.diverged
    assert trace.layer_names == ["1", "3", "5"]
    assert trace.loss[-1] < trace.loss[0]
    with pytest.raises(ValueError, match="steps"):
        dx.train_steps(net, _tiny_loader(), torch.optim.SGD(net.parameters(), lr=0.1), steps=0)


def test_train_steps_stops_when_the_loss_blows_up():
    net = dx.plain_mlp(2, 16)
    trace = dx.train_steps(net, _tiny_loader(), torch.optim.SGD(net.parameters(), lr=1e6), steps=50)
    assert trace.diverged and len(trace.loss) < 50 and all(math.isfinite(v) for v in trace.loss)


def test_shift_images_moves_content_and_fills_with_zero():
    images = torch.arange(1, 17, dtype=torch.uint8).view(1, 1, 4, 4)
    right = dx.shift_images(images, 1)
    assert torch.equal(right[..., :, 1:], images[..., :, :-1]) and (right[..., :, 0] == 0).all()
    down_left = dx.shift_images(images, -2, 1)
    assert torch.equal(down_left[..., 1:, :2], images[..., :-1, 2:]) and (down_left[..., 0, :] == 0).all()
    assert torch.equal(dx.shift_images(images, 0), images)
    with pytest.raises(ValueError, match="out of the frame"):
        dx.shift_images(images, 4)


def test_accuracy_under_shift_of_a_position_reader():
    class BrightestColumn(nn.Module):             # predicts the column of the brightest pixel: not shift-invariant
        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return F.one_hot(x.amax(dim=(1, 2)).argmax(1), 28).float()

    images = torch.zeros(5, 1, 28, 28, dtype=torch.uint8)
    labels = torch.tensor([3, 7, 10, 15, 20])
    images[torch.arange(5), 0, 14, labels] = 255
    accuracy = dx.accuracy_under_shift(BrightestColumn(), images, labels, [0, 1], prepare=lambda x: x.float())
    np.testing.assert_allclose(accuracy, [1.0, 0.0])


def test_penalized_loss_adds_the_penalty():
    net = nn.Sequential(nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.0, 3.0]]))
        net[0].bias.zero_()
    batch = (torch.zeros(1, 2), torch.tensor([0]))
    base = math.log(2)                                        # zero input → equal logits
    assert dx.penalized_loss("l1", 0.1)(net, batch).item() == pytest.approx(base + 0.1 * 6)
    assert dx.penalized_loss("l2", 0.1)(net, batch).item() == pytest.approx(base + 0.1 * 14)
    assert dx.penalized_loss("l1", 0.1).__name__ == "l1_penalty_0.1"
    with pytest.raises(ValueError, match="kind"):
        dx.penalized_loss("l0", 0.1)


def test_sparsity():
    net = nn.Sequential(nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.0, 1e-4], [0.5, -0.2]]))
    assert dx.sparsity(net, 1e-3) == 0.5


@pytest.mark.parametrize("name", dx.OPTIMIZERS)
def test_hand_written_updates_match_torch(name):
    lr = {"SGD": 0.3, "SGD+momentum": 0.05, "AdaGrad": 0.5, "RMSprop": 0.05, "Adam": 0.1}[name]
    np.testing.assert_allclose(dx.hand_trajectory(name, lr, 30), dx.optimizer_trajectory(name, lr, 30), atol=1e-8)


def test_make_optimizer_settings_and_errors():
    p = [nn.Parameter(torch.zeros(2))]
    assert isinstance(dx.make_optimizer("Adam", p, 1e-3), torch.optim.Adam)
    assert dx.make_optimizer("SGD+momentum", p, 0.1).defaults["momentum"] == 0.9
    assert dx.make_optimizer("RMSprop", p, 0.1).defaults["alpha"] == 0.9
    with pytest.raises(ValueError, match="Adam"):
        dx.make_optimizer("Lion", p, 0.1)


def test_valley_and_its_gradient():
    point = torch.tensor([1.5, -0.5], dtype=torch.float64, requires_grad=True)
    dx.valley(point).backward()
    np.testing.assert_allclose(dx.valley_gradient(point.detach().numpy()), point.grad.numpy())
    assert dx.valley(np.zeros(2)) == 0


def test_optimizer_trajectory_shape_and_progress():
    path = dx.optimizer_trajectory("SGD+momentum", 0.1, 40)
    assert path.shape == (41, 2)
    np.testing.assert_allclose(path[0], dx.START)
    assert dx.valley(path[-1]) < 0.01 * dx.valley(path[0])


def test_figures_render_and_reject_bad_values():
    fig = dx.gradient_norm_figure("relu", "kaiming", depth=4, width=32, batch=16)
    assert len(fig.axes) == 3
    plt.close(fig)
    with pytest.raises(ValueError, match="depth"):
        dx.gradient_norm_figure(depth=0)
    fig = dx.trajectory_figure(-1.0, 10)
    assert len(fig.axes[0].lines) == len(dx.OPTIMIZERS) + 1
    plt.close(fig)
    with pytest.raises(ValueError, match="lr_exponent"):
        dx.trajectory_figure(2.0, 10)
    with pytest.raises(ValueError, match="steps"):
        dx.trajectory_figure(-1.0, 0)


def test_render_batch_size_grid_and_learning_rates():
    loss = np.array([[0.5, np.nan], [0.7, 0.6]])
    fig = dx.render_batch_size_grid(loss, np.ones((2, 2)), (16, 1024), (0.1, 1.0), 2, "cpu")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["0.50", "diverged", "0.70", "0.60"] and fig.axes[1].get_title() == "speed on cpu"
    plt.close(fig)
    with pytest.raises(ValueError, match="batch sizes × learning rates"):
        dx.render_batch_size_grid(loss[:1], np.ones((2, 2)), (16, 1024), (0.1, 1.0), 2, "cpu")
    fig = dx.render_learning_rates({"constant": [0.1] * 5, "cosine": [0.1, 0.08, 0.05, 0.02, 0.0]}, "two schedules")
    assert len(fig.axes[0].lines) == 2 and fig.axes[0].get_title() == "two schedules"
    plt.close(fig)
    with pytest.raises(ValueError, match="one learning rate per step"):
        dx.render_learning_rates({"constant": []}, "none")
