"""Plain PyTorch models of the benchmark: an MLP, a LeNet-5-class CNN and a small ResNet.

They are ordinary ``nn.Module`` networks built from ``nn.Linear``,
``nn.Conv2d``, ``nn.ReLU``, ``nn.MaxPool2d``, ``nn.Flatten`` and (ResNet only)
``nn.BatchNorm2d`` modules, in data-flow order, so that
:func:`golden.layers.convert` can swap their layers for the quantized ones.
"""

from torch import nn

__all__ = ["MLP", "LeNet5", "ResNet", "MODELS", "build_model"]


class MLP(nn.Sequential):
    """Multi-layer perceptron: Flatten, then ``depth`` x (Linear, ReLU), then Linear.

    Parameters
    ----------
    input_shape : tuple of int
        (C, H, W) of one input image.
    num_classes : int
    hidden : int
        Width of the hidden layers.
    depth : int
        Number of hidden layers.
    """

    def __init__(self, *, input_shape, num_classes, hidden=256, depth=2):
        if depth < 1 or hidden < 1:
            raise ValueError("MLP needs depth >= 1 and hidden >= 1")
        n_in = 1
        for s in input_shape:
            n_in *= s
        layers = [nn.Flatten()]
        for _ in range(depth):
            layers += [nn.Linear(n_in, hidden), nn.ReLU()]
            n_in = hidden
        layers.append(nn.Linear(n_in, num_classes))
        super().__init__(*layers)


class LeNet5(nn.Sequential):
    """LeNet-5-class CNN: two 5x5 'same' convolutions (6, 16 channels) with ReLU and 2x2
    max pooling, then three fully connected layers (120, 84, classes).

    Parameters
    ----------
    input_shape : tuple of int
        (C, H, W); H and W must be multiples of 4.
    num_classes : int
    """

    def __init__(self, *, input_shape, num_classes):
        c, h, w = input_shape
        if h % 4 or w % 4:
            raise ValueError(f"LeNet5 needs H and W multiples of 4, got {h}x{w}")
        super().__init__(
            nn.Conv2d(c, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * (h // 4) * (w // 4), 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN plus (projected) shortcut, then ReLU."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu2 = nn.ReLU()

    def forward(self, x):
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu2(y + self.shortcut(x))


class ResNet(nn.Module):
    """Small CIFAR-style ResNet: a 3x3 stem and one basic block per stage (widths 16, 32, 64),
    global average pooling and a linear classifier (8 weight layers with the shortcut projections).

    Parameters
    ----------
    input_shape : tuple of int
        (C, H, W).
    num_classes : int
    widths : tuple of int
        Channels of the three stages.
    """

    def __init__(self, *, input_shape, num_classes, widths=(16, 32, 64)):
        super().__init__()
        c = input_shape[0]
        self.stem = nn.Conv2d(c, widths[0], 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(widths[0])
        self.stem_relu = nn.ReLU()
        blocks, c_in = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(c_in, w, 1 if i == 0 else 2))
            c_in = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        x = self.stem_relu(self.stem_bn(self.stem(x)))
        return self.fc(self.flatten(self.pool(self.blocks(x))))


#: Model name -> constructor(input_shape=, num_classes=).
MODELS = {"mlp": MLP, "lenet5": LeNet5, "resnet": ResNet}


def build_model(name, *, input_shape, num_classes):
    """Build a model by name; unknown names raise ValueError listing the valid ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    return MODELS[name](input_shape=tuple(input_shape), num_classes=num_classes)
