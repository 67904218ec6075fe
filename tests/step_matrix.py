"""One real training step of every course model family that has convolutions, on augmented and on channels_last
batches: run by tests/test_step_matrix.py in a subprocess per (oneDNN ISA, threads) configuration, so that a native
crash in a kernel is a failing test that names the configuration and the model, never the end of the suite.

    python tests/step_matrix.py THREADS STEPS

prints ``start <family> <layout>`` before each step and ``ok <family> <layout> <loss>`` after it.
"""

import sys

import torch
import torch.nn.functional as F

from utils import runtime
from utils.data import random_shift_flip
from utils.models import ARCHITECTURES, ResNet
from utils.models.deeplab import DeepLabV3Plus
from utils.models.efficientnet import ScalableCNN
from utils.models.fusion import DenseFuse, FusionNet
from utils.models.gan import DCGANDiscriminator, DCGANGenerator
from utils.models.pose import PoseNet
from utils.models.sam import ImageEncoder
from utils.models.unet import UNet
from utils.models.yolo import AnchorFreeDetector, GridDetector

# family -> (model, input channels, side): the narrowest settings the chapters and tests use, where few channels
# meet strided 1×1 convolutions.
FAMILIES = {
    "ResNet (width 4)": (lambda: ResNet(width=4), 1, 28),
    **{name: (build, 1, 28) for name, build in ARCHITECTURES.items()},
    "EfficientNet-style": (lambda: ScalableCNN(depth=2, width=8), 1, 28),
    "U-Net": (lambda: UNet(num_classes=4, width=4), 1, 32),
    "DeepLabV3+": (lambda: DeepLabV3Plus(num_classes=4, width=4), 1, 32),
    "YOLOv1 grid detector": (lambda: GridDetector(image_size=64, grid=8, width=8), 1, 64),
    "anchor-free detector": (lambda: AnchorFreeDetector(width=4), 1, 64),
    "DCGAN discriminator": (lambda: DCGANDiscriminator(width=4), 1, 28),
    "SAM image encoder": (lambda: ImageEncoder(dim=16, width=4), 1, 64),
    "CPM pose network": (lambda: PoseNet(width=4, stages=2), 1, 64),
    "DenseFuse": (lambda: DenseFuse(width=4), 1, 32),
    "fusion network": (lambda: FusionNet(width=4), 2, 32),
}


def tensors(output):
    """Every tensor in a model's output (a tensor, or lists and tuples of them)."""
    return [output] if torch.is_tensor(output) else [t for part in output for t in tensors(part)]


def step(model, x, opt):
    loss = sum(t.float().square().mean() for t in tensors(model(x)))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def batches(channels: int, side: int, generator):
    images = torch.rand(16, channels, side, side, generator=generator)
    yield "augmented", None, random_shift_flip(images, generator)
    yield "channels_last", runtime.channels_last, images.contiguous(memory_format=torch.channels_last)


def dcgan_generator_step(generator):
    """DCGAN's generator trains through its discriminator: one G step, both networks in channels_last."""
    g = runtime.channels_last(DCGANGenerator(latent_dim=8, width=4))
    d = runtime.channels_last(DCGANDiscriminator(width=4))
    opt = torch.optim.AdamW(g.parameters())
    fake = g(torch.randn(16, 8, generator=generator))
    loss = F.softplus(-d(fake)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def main(threads: int, steps: int) -> None:
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    print(f"oneDNN ISA {runtime.onednn_isa()}, workaround {'on' if runtime.onednn_nhwc_bug() else 'off'}, "
          f"{threads} thread(s)", flush=True)
    for family, (build, channels, side) in FAMILIES.items():
        for layout, convert, x in batches(channels, side, generator):
            model = build()
            model = convert(model) if convert else model
            opt = torch.optim.AdamW(model.parameters())
            print(f"start {family} {layout}", flush=True)
            losses = [step(model, x, opt) for _ in range(steps)]
            print(f"ok {family} {layout} {losses[-1]:.4f}", flush=True)
    print("start DCGAN generator channels_last", flush=True)
    print(f"ok DCGAN generator channels_last {dcgan_generator_step(generator):.4f}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
