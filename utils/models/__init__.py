"""The course's CNNs, one readable file each (Chapter 1, 01b), in historical order."""

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
