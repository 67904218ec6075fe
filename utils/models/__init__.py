"""The course's networks, one readable file each; the helpers that teach their parts live beside the topic
(`utils.swin_parts`, `utils.yolo_parts`, ...), and training them is `utils.training`.

- Chapter 1b, the CNNs in historical order: `lenet`, `alexnet`, `vgg`, `nin`, `inception`, `resnet`, `densenet`,
  and `efficientnet` (compound scaling); `ARCHITECTURES` below names them in that order.
- Chapter 3a–3b, attention: `transformer` (attention from scratch, the encoder–decoder, the decoder-only stack),
  `vit` (ViT, SETR), `tnt` (Transformer in Transformer), `swin`, `mae` (masked autoencoder).
- Chapter 4, detection: `yolo` (a YOLOv1-style grid detector, an anchor-free YOLOX/YOLOv8-style one).
- Chapter 5, segmentation: `unet` (U-Net, U-Net++, U²-Net's RSU), `deeplab` (v3 / v3+).
- Chapter 6, generative models: `autoencoders` (plain, sparse, variational), `gan` (MLP GAN, DCGAN, conditional,
  InfoGAN).
- Chapter 7, `fusion` (DenseFuse-style autoencoder, end-to-end fusion); Chapter 8, `pose` (staged heatmaps + PAFs);
  Chapter 9, `clip` (CLIP, SimCLR, BYOL, LSeg) and `blip` (matching head, captioner); Chapter 10, `sam`.
"""

from .alexnet import AlexNetSmall
from .densenet import DenseNetSmall
from .inception import GoogLeNetSmall, Inception
from .lenet import LeNet5
from .nin import NiN
from .resnet import BasicBlock, Bottleneck, PlainBlock, ResNet
from .vgg import VGG

# name -> constructor taking (num_classes, in_channels); the comparison table of Chapter 1 uses this order.
ARCHITECTURES = {
    "LeNet-5": LeNet5,
    "AlexNet-style": AlexNetSmall,
    "VGG": VGG,
    "NiN": NiN,
    "Inception": GoogLeNetSmall,
    "ResNet": ResNet,
    "DenseNet": DenseNetSmall,
}
