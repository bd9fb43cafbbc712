"""tinydm: a from-scratch reverse-mode autodiff engine for the paper "Derivative Manipulation for
General Example Weighting". Every gradient is written by hand; DM is one more backward rule."""

from .tensor import Function, Tensor, is_grad_enabled, no_grad  # first: the ops build on it
from . import backend, functional  # noqa: E402
from . import edf, losses  # noqa: E402
from .backend import get_device, set_device  # noqa: E402
from .gradcheck import GradcheckError, gradcheck  # noqa: E402
from .backend import manual_seed  # noqa: E402
from . import checkpoint, nn, optim  # noqa: E402

__version__ = "0.1.0"
