"""tinydm: a from-scratch reverse-mode autodiff engine for the paper "Derivative Manipulation for
General Example Weighting". Every gradient is written by hand; DM is one more backward rule.

The package map and what may import what: docs/architecture.md.
"""

from . import backend
from .tensor import Function, Tensor, detect_anomaly, is_grad_enabled, no_grad
from . import functional, operators  # operators: Python's operators on Tensor
from . import edf, losses
from .backend import get_device, manual_seed, set_device
from .gradcheck import GradcheckError, gradcheck
from . import checkpoint, nn, optim

__version__ = "0.1.0"
