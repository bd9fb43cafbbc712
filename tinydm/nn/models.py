"""The paper's networks: the CIFAR ResNets of He et al. (2016, Section 4.2) and the MLP.

CIFAR ResNet of depth ``6n + 2``: a 3x3 conv with 16 filters, then three stages of ``n`` basic
blocks with 16, 32 and 64 filters on 32x32, 16x16 and 8x8 maps (the first block of stages 2 and
3 halves the map with stride 2), global average pooling and one linear layer. A basic block is
``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` with 3x3 convs (no bias: BN follows).

The shortcut is the identity except where a block changes the shape (16 -> 32 and 32 -> 64
channels, map halved). There He et al. offer

* option A (default, the one of their CIFAR experiments and of the published parameter counts):
  the identity on every second pixel, with zero channels appended: parameter-free;
* option B: a projection, 1x1 conv with stride 2 + BN (``shortcut="B"``).

Exact parameter counts (10 classes); the published ones are 0.27M, 0.46M, 0.66M, 0.85M, 1.7M:

    depth   option A    option B
     20      269,722     272,474
     32      464,154     466,906
     44      658,586     661,338
     56      853,018     855,770   (option B rounds to 0.86M)
    110    1,727,962   1,730,714

Names follow torchvision's ResNet: ``conv1, bn1, layer1..layer3`` (each block ``conv1, bn1,
conv2, bn2`` and, option B, ``downsample.0`` / ``downsample.1``), ``fc``.
"""

from collections.abc import Sequence

from .. import functional as F
from ..backend import get_array_module
from ..tensor import Tensor
from .layers import BatchNorm2d, Conv2d, Dropout, Linear, ReLU, Sequential
from .module import Module


class BasicBlock(Module):
    """Two 3x3 conv + BN layers and a shortcut (see the module docstring)."""

    def __init__(self, in_channels, out_channels, stride=1, shortcut="A"):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"BasicBlock: shortcut must be 'A' (zero-padded identity) or 'B' "
                             f"(1x1 conv projection), not {shortcut!r}")
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(out_channels)
        self.conv2 = Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = BatchNorm2d(out_channels)
        self.stride, self.extra_channels = stride, out_channels - in_channels
        reshapes = stride != 1 or in_channels != out_channels
        if reshapes and shortcut == "B":
            self.downsample: Sequential | None = Sequential(
                Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                BatchNorm2d(out_channels))
        else:
            self.downsample = None

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x), relu=True)  # relu(bn1(...)) as one op
        out = self.bn2(self.conv2(out))
        return F.add_relu(out, self.shortcut(x))  # relu(out + shortcut) as one op

    def shortcut(self, x):
        if self.downsample is not None:
            return self.downsample(x)
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.extra_channels:
            xp = get_array_module(x.data)
            n, _, h, w = x.shape
            zeros = Tensor(xp.zeros((n, self.extra_channels, h, w), dtype=x.dtype))
            x = F.concatenate([x, zeros], axis=1)
        return x


class ResNetCIFAR(Module):
    """He et al.'s CIFAR ResNet (see the module docstring). Input (N, 3, H, W), any H, W >= 4
    (32 for CIFAR); output the (N, num_classes) logits."""

    def __init__(self, depth: int = 20, num_classes: int = 10, shortcut: str = "A",
                 in_channels: int = 3) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"resnet_cifar: depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, "
                             f"110, ...), got {depth!r}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"resnet_cifar: num_classes must be a positive int, got {num_classes!r}")
        self.depth, self.shortcut = depth, shortcut
        blocks = (depth - 2) // 6
        self.conv1 = Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = BatchNorm2d(16)
        width = 16
        for stage, (out_width, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
            layer = Sequential()
            for b in range(blocks):
                layer.append(BasicBlock(width, out_width, stride if b == 0 else 1, shortcut))
                width = out_width
            setattr(self, f"layer{stage}", layer)
        self.fc = Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn1(self.conv1(x), relu=True)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.global_avg_pool2d(x))

    def extra_repr(self):
        return f"depth={self.depth}, shortcut={self.shortcut!r}"


def resnet_cifar(depth: int = 20, num_classes: int = 10, shortcut: str = "A") -> ResNetCIFAR:
    """The CIFAR ResNet of depth ``6n + 2`` (20, 32, 44, 56, 110) for ``num_classes`` classes."""
    return ResNetCIFAR(depth, num_classes, shortcut)


ACTIVATIONS = {"relu": ReLU}


class MLP(Sequential):
    """A multi-layer perceptron ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``: Linear layers with
    ``activation`` (and dropout, if ``dropout > 0``) between them, none after the last.

    A Sequential, so its state-dict keys are PyTorch's for the same ``nn.Sequential``:
    ``0.weight, 0.bias, 2.weight, ...``. ``init`` names the Linear initialisation
    (:data:`tinydm.nn.init.SCHEMES`); the paper's IMDB network is
    ``MLP([100, 8, 2], init="caffe_xavier")``.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", init: str = "pytorch",
                 dropout: float = 0.0) -> None:
        super().__init__()
        sizes = list(sizes)
        if len(sizes) < 2 or not all(isinstance(s, int) and s > 0 for s in sizes):
            raise ValueError(f"MLP: sizes must be at least two positive ints, got {sizes!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"MLP: unknown activation {activation!r}; choose one of "
                             f"{sorted(ACTIVATIONS)}")
        for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.append(Linear(fan_in, fan_out, init=init))
            if k < len(sizes) - 2:
                self.append(ACTIVATIONS[activation]())
                if dropout > 0:
                    self.append(Dropout(dropout))
