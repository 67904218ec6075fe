"""Architecture diagrams drawn from the models (utils.diagrams)."""

import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

from utils.diagrams import architecture_figure, trace_blocks
from utils.models import ResNet
from utils.models.unet import UNet


def small_cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU()), nn.Flatten(),
                         nn.Dropout(), nn.Linear(8 * 7 * 7, 10))


def test_trace_lists_blocks_in_order_with_shapes():
    blocks = trace_blocks(small_cnn(), torch.zeros(2, 1, 28, 28))
    assert [b.kind for b in blocks] == ["Conv2d 3×3", "MaxPool2d", "Conv2d 3×3 /2", "Flatten", "Linear"]
    assert [b.shape for b in blocks] == [(4, 28, 28), (4, 14, 14), (8, 7, 7), (392,), (10,)]  # no BN, ReLU, dropout
    assert [b.name for b in blocks] == ["0", "3", "4.0", "5", "7"]                           # nested Sequential opened
    assert blocks[0].params == 4 * 9 + 4


def test_trace_records_each_call_and_keeps_blocks_whole():
    unet = UNet(3, width=4, depth=2)
    blocks = trace_blocks(unet, torch.zeros(1, 1, 16, 16))
    assert [b.name for b in blocks].count("pool") == 2                 # one module, called twice: two boxes
    assert blocks[-1].shape == (3, 16, 16) and blocks[0].kind == "DoubleConv"
    resnet = trace_blocks(ResNet(width=8, blocks=(1, 1, 1)), torch.zeros(1, 1, 28, 28))
    assert [b.kind for b in resnet].count("BasicBlock") == 3             # a residual block is one box
    with pytest.raises(ValueError, match="example input"):
        trace_blocks(unet)


def test_swin_blocks_show_their_windows():
    from utils.models.swin import SwinTransformer

    blocks = trace_blocks(SwinTransformer(dim=16, num_heads=(2, 4)), torch.zeros(1, 1, 28, 28))
    assert [b.kind for b in blocks][1:3] == ["SwinBlock (window 7, shift 0)", "SwinBlock (window 7, shift 3)"]
    assert blocks[1].shape == (196, 16) and blocks[3].kind == "PatchMerging"


def test_figure_draws_every_block_with_its_shape():
    model = small_cnn()
    fig = architecture_figure({"tiny": (model, (torch.zeros(1, 1, 28, 28),))}, "t")
    texts = [t.get_text() for t in fig.axes[0].texts]
    for block in trace_blocks(model, torch.zeros(1, 1, 28, 28)):
        assert any(t.startswith(block.kind) for t in texts), block.kind
        assert "×".join(map(str, block.shape)) in texts
    assert f"{sum(p.numel() for p in model.parameters()):,} parameters" in fig.axes[0].get_title()
    plt.close(fig)
    fig = architecture_figure({"tiny": (model, (torch.zeros(1, 1, 28, 28),))}, names=True)
    assert any(t.get_text().startswith("4.0: Conv2d 3×3 /2") for t in fig.axes[0].texts)
    plt.close(fig)
    with pytest.raises(ValueError, match="at least one model"):
        architecture_figure({})
