"""Neural-network building blocks with PyTorch's names: Module, Parameter, layers, the paper's
models (CIFAR ResNets, MLP) and initialisations (``tinydm.nn.init``)."""

from . import init
from .layers import (AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool2d, Linear,
                     MaxPool2d, ReLU, Sequential)
from .models import MLP, BasicBlock, ResNetCIFAR, resnet_cifar
from .module import Module, Parameter
