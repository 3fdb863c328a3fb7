from torch import nn


class VGGBN(nn.Module):
    """A small VGG with batch norm: three conv blocks, global average pool, linear head."""

    def __init__(self, num_classes: int, width: int = 32):
        super().__init__()
        blocks, cin = [], 3
        for cout in (width, 2 * width, 4 * width):
            conv = nn.Conv2d(cin, cout, 3, padding=1)
            blocks.append(
                nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))
            )
            cin = cout
        self.features = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def vgg_bn(num_classes: int, width: int = 32) -> nn.Module:
    return VGGBN(num_classes, width)
