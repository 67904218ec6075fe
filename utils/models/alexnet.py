"""AlexNet-style network (Krizhevsky et al., 2012), scaled to 28×28 inputs.

Introduced in Chapter 1 (01b). What AlexNet brought: depth and width trained on a GPU, ReLU instead of
saturating activations, overlapping max pooling, dropout in the large fully connected layers.
"""

from torch import nn


class AlexNetSmall(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 48):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),                                     # 14×14
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),                                     # 7×7
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(4 * w, 2 * w, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),                                     # 4×4
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.5), nn.Linear(2 * w * 16, 512), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(512, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
