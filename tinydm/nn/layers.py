"""Layers: Modules that hold parameters (or none) and call one functional op each.

Layouts and names are PyTorch's: ``Linear.weight`` is (out, in), ``Conv2d.weight`` is
(Cout, Cin, kh, kw), ``BatchNorm2d`` has ``weight``/``bias`` (gamma/beta) and the buffers
``running_mean``/``running_var``. New parameters are created on the current device
(:func:`tinydm.get_device`) in float32.

Initialisation (see :mod:`tinydm.nn.init`): ``Linear`` defaults to PyTorch's own default;
``Conv2d`` defaults to He et al.'s MSRA/Kaiming normal with fan-out (PyTorch's Conv2d default is
the uniform one; the ResNets of the paper use MSRA) and zero bias. Both take ``init=`` to pick
another scheme, e.g. ``"caffe_xavier"`` for the paper's IMDB network.
"""

from .. import backend
from .. import functional as F
from ..tensor import Tensor
from .init import init_layer_
from .module import Module, Parameter


def _zeros(*shape):
    """float32 zeros on the current device."""
    return backend.module_for(backend.get_device()).zeros(shape, dtype="float32")


def _parameter(*shape):
    """A Parameter of zeros, for an initialiser to fill."""
    return Parameter(_zeros(*shape))


class Linear(Module):
    """``y = x W^T + b``, ``W`` of shape (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 init: str = "pytorch") -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _parameter(out_features, in_features)
        self.bias = _parameter(out_features) if bias else None
        init_layer_(self.weight, self.bias, init)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution over NCHW input, weight (out_channels, in_channels, k, k)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 bias: bool = True, init: str = "kaiming") -> None:
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kh, kw), stride, padding
        self.weight = _parameter(out_channels, in_channels, kh, kw)
        self.bias = _parameter(out_channels) if bias else None
        init_layer_(self.weight, self.bias, init)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")


class BatchNorm2d(Module):
    """Batch normalisation over the channels of NCHW input (Ioffe and Szegedy).

    Training: normalise with the batch's mean and (biased) variance, then update the running
    statistics in place: ``running = (1 - momentum) * running + momentum * batch_stat`` (PyTorch's
    convention, with the unbiased batch variance for ``running_var``; see ``F.batch_norm``).
    Evaluation: normalise with the running statistics. ``weight`` (gamma) starts at one and
    ``bias`` (beta) at zero; the running mean/var start at zero/one.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(_zeros(num_features) + 1)
        self.bias = _parameter(num_features)
        self.register_buffer("running_mean", Tensor(_zeros(num_features)))
        self.register_buffer("running_var", Tensor(_zeros(num_features) + 1))

    def forward(self, x: Tensor, relu: bool = False) -> Tensor:
        """``relu=True``: ``relu`` of the result, as one op (``F.batch_norm_relu``)."""
        return F.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                            training=self.training, momentum=self.momentum, eps=self.eps,
                            relu=relu)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class Dropout(Module):
    """Inverted dropout with probability ``p`` while training; the identity in evaluation."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, training=self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Flatten(Module):
    """Merge the axes from ``start_dim`` on: (N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim)


class _Pool2d(Module):
    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class MaxPool2d(_Pool2d):
    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride)


class AvgPool2d(_Pool2d):
    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride)


class GlobalAvgPool2d(Module):
    """The mean over each channel's H x W map: (N, C, H, W) -> (N, C) (PyTorch:
    ``AdaptiveAvgPool2d(1)`` followed by ``Flatten``)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.global_avg_pool2d(x)


class Sequential(Module):
    """Modules applied one after the other; registered as "0", "1", ... as in PyTorch."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, index):
        modules = list(self._modules.values())
        return Sequential(*modules[index]) if isinstance(index, slice) else modules[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x: Tensor) -> Tensor:
        for module in self._modules.values():
            x = module(x)
        return x
