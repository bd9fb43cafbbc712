"""Weight initialisations. Each fills a tensor in place (PyTorch's trailing-underscore names) and
returns it, drawing from the default generator of the tensor's device
(:func:`tinydm.backend.default_rng`, seeded by :func:`tinydm.manual_seed`).

Numbers are drawn in float64 and then cast, so a float32 and a float64 model built after the same
seed start from the same weights (up to rounding).

Fans, for a weight of shape (out, in) or (out, in, kh, kw): ``fan_in = in * kh * kw`` (what one
output unit sums over), ``fan_out = out * kh * kw``. Caffe's fillers use the same definition.
"""

import math

from .. import backend


def fans(shape):
    """``(fan_in, fan_out)`` of a linear (out, in) or convolution (out, in, kh, kw) weight."""
    if len(shape) < 2:
        raise ValueError(f"init: fans need a weight of at least 2 dimensions, got shape {tuple(shape)}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fill(tensor, values):
    tensor.data = values.astype(tensor.dtype)
    return tensor


def _generator(tensor):
    return backend.default_rng(tensor.device)


def uniform_(tensor, low, high):
    """``U(low, high)``."""
    return _fill(tensor, _generator(tensor).uniform(low, high, tensor.shape))


def normal_(tensor, std, mean=0.0):
    """``N(mean, std**2)``."""
    return _fill(tensor, _generator(tensor).standard_normal(tensor.shape) * std + mean)


def zeros_(tensor):
    tensor.data = backend.get_array_module(tensor.data).zeros_like(tensor.data)
    return tensor


def ones_(tensor):
    tensor.data = backend.get_array_module(tensor.data).ones_like(tensor.data)
    return tensor


def kaiming_normal_(tensor, mode="fan_out"):
    """He et al.'s "MSRA" initialisation for ReLU networks: ``N(0, 2 / fan)``.

    ``mode="fan_out"`` (the default here, as in torchvision's ResNets and fb.resnet.torch, which
    He et al.'s CIFAR ResNets follow) keeps the variance of the gradients constant in the
    backward pass; ``"fan_in"`` (Caffe's MSRAFiller default) keeps that of the activations in the
    forward pass. For a 3x3 conv both are 9 * channels whenever in = out channels.
    """
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming_normal_: mode must be 'fan_in' or 'fan_out', not {mode!r}")
    fan_in, fan_out = fans(tensor.shape)
    return normal_(tensor, math.sqrt(2.0 / (fan_in if mode == "fan_in" else fan_out)))


def xavier_uniform_(tensor):
    """Glorot and Bengio's uniform initialisation: ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``
    (PyTorch's ``xavier_uniform_``)."""
    fan_in, fan_out = fans(tensor.shape)
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def caffe_xavier_(tensor):
    """Caffe's "xavier" filler: ``U(-a, a)``, ``a = sqrt(3 / fan_in)`` (variance ``1 / fan_in``).

    Not Glorot's formula: Caffe's default ``variance_norm: FAN_IN`` uses the fan-in only. This is
    the initialisation of the paper's IMDB network.
    """
    fan_in, _ = fans(tensor.shape)
    bound = math.sqrt(3.0 / fan_in)
    return uniform_(tensor, -bound, bound)


def pytorch_default_(weight, bias=None):
    """``torch.nn.Linear`` / ``Conv2d``'s default: weight and bias from ``U(-a, a)`` with
    ``a = 1 / sqrt(fan_in)`` (what ``kaiming_uniform_(a=sqrt(5))`` comes to)."""
    fan_in, _ = fans(weight.shape)
    bound = 1.0 / math.sqrt(fan_in)
    uniform_(weight, -bound, bound)
    if bias is not None:
        uniform_(bias, -bound, bound)
    return weight


def _with_zero_bias(weight_init, **kwargs):
    def scheme(weight, bias=None):
        weight_init(weight, **kwargs)
        if bias is not None:
            zeros_(bias)
    return scheme


# Named initialisations of a layer's (weight, bias), for ``Linear(..., init=name)`` and configs.
# Every scheme but PyTorch's default sets the bias to zero.
SCHEMES = {
    "pytorch": pytorch_default_,
    "kaiming": _with_zero_bias(kaiming_normal_, mode="fan_out"),
    "kaiming_fan_in": _with_zero_bias(kaiming_normal_, mode="fan_in"),
    "xavier": _with_zero_bias(xavier_uniform_),
    "caffe_xavier": _with_zero_bias(caffe_xavier_),
}


def init_layer_(weight, bias, scheme):
    """Initialise a layer's weight and bias (may be None) with a named scheme of :data:`SCHEMES`."""
    if scheme not in SCHEMES:
        raise ValueError(f"init: unknown scheme {scheme!r}; choose one of {sorted(SCHEMES)}")
    SCHEMES[scheme](weight, bias)
