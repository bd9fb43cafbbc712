"""Reductions: sum, mean and max over axes. Notation as in arithmetic.py.

A reduction's backward puts the reduced axes back (:func:`_expand_reduced`) and broadcasts
``gy`` over them: every input of a sum gets its ``gy``, of a mean ``gy / n``, of a max only the
maximal ones.
"""

import builtins  # sum and max below are ops; the builtins are spelled out

from ..backend import get_array_module
from ..tensor import Function


def _normalize_axis(axis, ndim, op):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
    return tuple(sorted(a % builtins.max(ndim, 1) for a in axes))


def _expand_reduced(g, shape, axes):
    """Put back the reduced axes of ``g`` (as size 1) so it broadcasts against ``shape``."""
    return g.reshape(tuple(1 if i in axes else n for i, n in enumerate(shape)))


class _Reduction(Function):
    """What the reductions share: ``axis`` and ``keepdims``, and in forward the reduced axes
    (checked against the input, named by ``op``) and the input's shape."""

    op = ""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def _reduce_over(self, x):
        self.axes = _normalize_axis(self.axis, x.ndim, self.op)
        self.shape = x.shape


class Sum(_Reduction):
    """``y = sum over axes of x``;  every ``x`` in a sum gets the same ``gy``: ``gx = broadcast(gy)``."""

    op = "sum"

    def forward(self, x):
        self._reduce_over(x)
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        xp = get_array_module(gy)
        return xp.broadcast_to(_expand_reduced(gy, self.shape, self.axes), self.shape)


class Mean(Sum):
    """``y = (1/n) sum over axes of x``;  ``gx = broadcast(gy) / n``: the sum's rule, scaled."""

    op = "mean"

    def forward(self, x):
        self._reduce_over(x)
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        n = 1
        for a in self.axes:
            n *= self.shape[a]
        return super().backward(gy / n)


class Max(_Reduction):
    """``y = max over axes of x``.

    ``y`` equals one (or, with ties, several) of the ``x``; the gradient goes to those maxima,
    shared equally among ties: ``gx = gy * [x == y] / (number of ties)``.
    """

    op = "max"

    def forward(self, x):
        self._reduce_over(x)
        y = x.max(axis=self.axes, keepdims=True)
        mask = x == y
        self.save_for_backward(mask / mask.sum(axis=self.axes, keepdims=True).astype(x.dtype))
        return y if self.keepdims else y.reshape(tuple(
            n for i, n in enumerate(x.shape) if i not in self.axes))

    def backward(self, gy):
        (share,) = self.saved
        return _expand_reduced(gy, share.shape, self.axes) * share


# --- the public lowercase functions ---------------------------------------------------------------
def sum(x, axis=None, keepdims=False):
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False):
    return Mean(axis, keepdims)(x)


def max(x, axis=None, keepdims=False):
    return Max(axis, keepdims)(x)
