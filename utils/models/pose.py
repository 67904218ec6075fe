"""A staged pose network in the style of Convolutional Pose Machines (Wei et al., 2016) and OpenPose (Cao et al.,
2017), small enough to train on a CPU.

Introduced in Chapter 8 (08_pose). A backbone turns the image into features F at stride ``stride``; stage 1
predicts keypoint heatmaps S¹ (J channels) and part affinity fields L¹ (2 channels per limb) from F alone; every
later stage t sees F concatenated with the previous stage's maps and refines them (Sᵗ, Lᵗ) — its larger effective
receptive field lets it use *context*: where the other joints and limbs were predicted. Every stage is supervised
(`staged_loss`): intermediate supervision, which keeps gradients alive in a deep stack and makes each stage a
usable predictor. As in OpenPose (2017) each stage has two branches, one for heatmaps and one for PAFs.

With ``limbs=0`` the same network predicts heatmaps only: a single-person CPM, the second half of a top-down
pipeline (Chapter 8 runs it on person crops found by Chapter 4's detector).
"""

from __future__ import annotations

import torch
from torch import nn

from ..training import autocast


def conv(c_in: int, c_out: int, dilation: int = 1, stride: int = 1) -> nn.Sequential:
    """3×3 conv → BatchNorm → ReLU (``dilation`` widens the view at the same cost)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, dilation, dilation, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


def branch(c_in: int, width: int, c_out: int) -> nn.Sequential:
    """One stage's branch: three 3×3 convs (dilations 1, 2, 4: a 15-cell view) and a 1×1 to ``c_out`` maps."""
    return nn.Sequential(conv(c_in, width), conv(width, width, 2), conv(width, width, 4), nn.Conv2d(width, c_out, 1))


class PoseNet(nn.Module):
    """``forward(x)`` → a list of ``stages`` tensors ``N×(J + 2L)×H/stride×W/stride``: heatmaps then PAFs, one
    tensor per stage; the last is the prediction. ``x``: ``N×in_channels×H×W`` floats (images / 255)."""

    def __init__(self, keypoints: int = 14, limbs: int = 13, width: int = 32, stages: int = 3, stride: int = 2,
                 in_channels: int = 1):
        super().__init__()
        if stages < 1 or stride not in (1, 2, 4):
            raise ValueError(f"need stages ≥ 1 and stride 1, 2 or 4, got stages={stages}, stride={stride}")
        self.keypoints, self.limbs, self.stride = keypoints, limbs, stride
        layers, channels = [conv(in_channels, width // 2)], width // 2
        for _ in range({1: 0, 2: 1, 4: 2}[stride]):
            layers.append(conv(channels, width, stride=2))
            channels = width
        self.backbone = nn.Sequential(*layers, conv(channels, width), conv(width, width, 2))
        maps = keypoints + 2 * limbs
        self.heat_branches = nn.ModuleList(branch(width + (maps if t else 0), width, keypoints) for t in range(stages))
        self.paf_branches = nn.ModuleList(branch(width + (maps if t else 0), width, 2 * limbs) for t in range(stages)
                                          ) if limbs else None

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[-1] % self.stride or x.shape[-2] % self.stride:
            raise ValueError(f"input must be N×C×H×W with H and W multiples of the stride {self.stride}, "
                             f"got {tuple(x.shape)}")
        features = self.backbone(x)
        outputs, previous = [], features
        for t, heat in enumerate(self.heat_branches):
            maps = [heat(previous)] + ([self.paf_branches[t](previous)] if self.paf_branches is not None else [])
            outputs.append(torch.cat(maps, 1))
            previous = torch.cat([features, outputs[-1]], 1)
        return outputs


def staged_loss(outputs: list[torch.Tensor], heatmaps: torch.Tensor, pafs: torch.Tensor | None = None,
                positive_weight: float = 1.0) -> torch.Tensor:
    """Intermediate supervision: the sum over stages of the squared error of each stage's maps against the same
    targets (OpenPose's L2 loss), averaged over pixels. ``positive_weight`` > 1 weighs the pixels where a target is
    non-zero (on a keypoint's bump or a limb) that many times more: they are a few percent of the pixels, and
    without it a short training run learns to predict all-zero maps first."""
    target = heatmaps if pafs is None else torch.cat([heatmaps, pafs], 1)
    if positive_weight < 1:
        raise ValueError(f"positive_weight must be ≥ 1, not {positive_weight}")
    weights = 1 + (positive_weight - 1) * (target.abs() > 0.01).float()
    total = 0.0
    for out in outputs:
        if out.shape != target.shape:
            raise ValueError(f"a stage predicts {tuple(out.shape)} but the targets are {tuple(target.shape)}")
        total = total + ((out.float() - target) ** 2 * weights).mean()
    return total


@torch.no_grad()
def predict_maps(model: PoseNet, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The last stage's maps for uint8 images ``N×C×H×W``, in eval mode, float32 on the CPU."""
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise TypeError(f"predict_maps takes uint8 images N×C×H×W (it divides by 255), got {images.dtype} "
                        f"{tuple(images.shape)}")
    model.eval()
    dev = next(model.parameters()).device
    chunks = []
    for chunk in images.split(batch_size):
        with autocast(dev):
            chunks.append(model(chunk.to(dev).float() / 255)[-1].float().cpu())
    return torch.cat(chunks)

