"""Exercise: the softmax's backward rule.

Write ``Softmax.backward`` below, then grade it:

    python -m tinydm.exercises check softmax softmax.py
"""

from tinydm.backend import get_array_module
from tinydm.tensor import Function


class Softmax(Function):
    """``y_j = exp(x_j) / sum_m exp(x_m)`` along ``axis``.

    Jacobian: ``dy_j/dx_k = y_j (delta_jk - y_k)``, so
    ``gx_k = sum_j gy_j y_j (delta_jk - y_k) = y_k (gy_k - sum_j gy_j y_j)``.
    Backward needs only the output ``y``.
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))   # no exp overflows
        y = e / e.sum(axis=self.axis, keepdims=True)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        """``gx``, the gradient w.r.t. ``x``, from the upstream gradient ``gy`` (same shape)."""
        (y,) = self.saved
        raise NotImplementedError("write Softmax.backward (see the class docstring)")
