"""ResNet (utils/models/resnet.py, Chapter 1b): the block's order of operations and the zero-initialised residual."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utils.measuring import count_parameters
from utils.models import BasicBlock, Bottleneck, PlainBlock, ResNet


def _seeded(block, **kwargs) -> ResNet:
    torch.manual_seed(0)
    return ResNet(width=8, blocks=(1, 1, 1), block=block, **kwargs)


def _last_bn(block: nn.Module) -> nn.BatchNorm2d:
    return block.bn3 if isinstance(block, Bottleneck) else block.bn2


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck])
def test_the_default_is_unchanged_and_zero_init_touches_only_the_last_gamma_of_each_branch(block):
    default, explicit = _seeded(block), _seeded(block, zero_init_residual=False)
    zeroed = _seeded(block, zero_init_residual=True)
    blocks = [m for m in zeroed.modules() if isinstance(m, block)]
    zeroed_names = {name for name, m in zeroed.named_modules() if m in [_last_bn(b) for b in blocks]}
    assert len(blocks) == 3 and count_parameters(zeroed) == count_parameters(default)
    for (name, a), b, c in zip(default.state_dict().items(), explicit.state_dict().values(),
                               zeroed.state_dict().values()):
        assert torch.equal(a, b), name
        if name.rsplit(".", 1)[0] in zeroed_names and name.endswith("weight"):
            assert torch.equal(c, torch.zeros_like(a)), f"{name}: γ of the branch's last BN should be 0"
        else:  # the same random draws as the default: only the chosen γ change
            assert torch.equal(a, c), name


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck])
def test_a_zero_initialised_block_outputs_relu_of_its_shortcut(block):
    torch.manual_seed(0)
    model = ResNet(width=8, blocks=(2, 1, 1), block=block, zero_init_residual=True)
    x = torch.randn(4, 8 * block.expansion, 14, 14)
    for b in model.modules():
        if isinstance(b, block):
            b.train()
            inputs = torch.randn(4, b.conv1.in_channels, 14, 14)
            assert torch.equal(b(inputs), F.relu(b.shortcut(inputs)))
    identity_block = model.stages[0][1]                     # keeps the shape: identity shortcut
    assert isinstance(identity_block.shortcut, nn.Identity)
    assert torch.equal(identity_block(x.relu()), x.relu()), "on a ReLU's output a zeroed block is the identity"


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck])
def test_the_zeroed_gamma_still_learns(block):
    """A zero γ must sit on the branch's *last* BN: zeroing an earlier BN also gives the identity at initialisation,
    but then the last BN normalises a constant and its γ never receives a gradient."""
    model = _seeded(block, zero_init_residual=True)
    F.cross_entropy(model(torch.randn(8, 1, 28, 28)), torch.arange(8)).backward()
    for b in model.modules():
        if isinstance(b, block):
            assert _last_bn(b).weight.grad.abs().sum() > 0, "the zeroed γ should get a gradient, so the block can learn"
            assert torch.equal(b.bn1.weight.detach(), torch.ones_like(b.bn1.weight)), "only the last BN is zeroed"


def test_the_block_is_conv_bn_relu_with_the_relu_after_the_addition():
    torch.manual_seed(0)
    block, calls = BasicBlock(8, 8).train(), []
    for name in ("conv1", "bn1", "relu", "conv2", "bn2"):
        getattr(block, name).register_forward_hook(lambda *_, name=name: calls.append(name))
    x = torch.randn(4, 8, 10, 10)
    residual = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
    calls.clear()
    out = block(x)
    assert calls == ["conv1", "bn1", "relu", "conv2", "bn2", "relu"]
    assert torch.equal(out, F.relu(residual + x)) and out.min() >= 0 and (residual + x).min() < 0


def test_zero_init_refuses_plain_blocks():
    with pytest.raises(ValueError, match="shortcut"):
        ResNet(block=PlainBlock, zero_init_residual=True)
