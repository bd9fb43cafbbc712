"""Activations: relu (and add_relu, the join of a residual block), softmax, log_softmax, dropout.

Softmax and log-softmax subtract the row maximum before exponentiating: the result is unchanged
(softmax is shift-invariant) and no exp can overflow, so logits like [-1000, 1] are safe.
"""

from typing import Any

from ..backend import add as pooled_add
from ..backend import default_rng, empty, empty_like, get_array_module, in_runs, map_batch_parts
from ..tensor import Function, Tensor
from .arithmetic import _broadcast_shapes, unbroadcast


def _masked(gy, mask):
    """``gy * mask`` into a new array, on parts of the batch side by side: relu's backward."""
    xp = get_array_module(gy)
    g = empty_like(gy)
    map_batch_parts(lambda part: xp.multiply(gy[part], mask[part], out=g[part]), gy)
    return g


class ReLU(Function):
    """``y = max(x, 0)``;  ``gx = gy * [x > 0]`` (keeps only the boolean mask, and makes none
    when no backward will run: under ``no_grad``).

    Both run on parts of the batch side by side, one per CPU thread (``map_batch_parts``)."""

    def forward(self, x):
        xp = get_array_module(x)
        keep = any(self.needs_input_grad)
        mask, y = empty(xp, x.shape, bool) if keep else None, empty_like(x)

        def relu(part):  # max(x, 0) rather than x * mask: no bool -> float cast
            if mask is not None:
                xp.greater(x[part], 0, out=mask[part])
            xp.maximum(x[part], 0, out=y[part])
        map_batch_parts(relu, x)
        if keep:
            self.save_for_backward(mask)
        return y

    def backward(self, gy):
        return _masked(gy, self.saved[0])


class AddReLU(Function):
    """``y = max(a + b, 0)``, the join of a residual block, as one op: the same numbers as
    ``relu(a + b)`` without the sum's own array.

    ``ga = unbroadcast(gy * [a + b > 0])`` and the same for ``gb``; like :class:`ReLU` it keeps
    only the boolean mask (reading a quarter of the bytes that ``y`` would in backward). The
    forward runs in cache-sized runs of images, so ``a`` and ``b`` are read from memory once and
    the sum, mask and maximum are made in cache, on parts of the batch, one per CPU thread."""

    def forward(self, a, b):
        shape = _broadcast_shapes("add_relu", a, b)
        self.shapes = a.shape, b.shape
        xp = get_array_module(a, b)
        keep = any(self.needs_input_grad)
        mask = empty(xp, shape, bool) if keep else None
        if shape != a.shape or shape != b.shape or not shape:  # broadcast, or 0-d: whole arrays
            y = pooled_add(a, b, shape)
            if mask is not None:
                xp.greater(y, 0, out=mask)
            xp.maximum(y, 0, out=y)
        else:
            y = empty(xp, shape, xp.result_type(a, b))

            def join(a, b, out, mask=None):
                xp.add(a, b, out=out)
                if mask is not None:
                    xp.greater(out, 0, out=mask)
                xp.maximum(out, 0, out=out)
            arrays = (a, b, y) if mask is None else (a, b, y, mask)
            map_batch_parts(lambda part: in_runs(join, *(t[part] for t in arrays)), y)
        if keep:
            self.save_for_backward(mask)
        return y

    def backward(self, gy):
        g = _masked(gy, self.saved[0])
        return unbroadcast(g, self.shapes[0]), unbroadcast(g, self.shapes[1])


def _stable_exp(x, axis):
    """``exp(x - max(x))`` along ``axis``, and that shifted input."""
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return xp.exp(shifted), shifted


class Softmax(Function):
    """``y_j = exp(x_j) / sum_m exp(x_m)`` along ``axis``.

    Jacobian: ``dy_j/dx_k = y_j (delta_jk - y_k)``, so
    ``gx_k = sum_j gy_j y_j (delta_jk - y_k) = y_k (gy_k - sum_j gy_j y_j)``.
    Backward needs only the output ``y``.
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        e, _ = _stable_exp(x, self.axis)
        y = e / e.sum(axis=self.axis, keepdims=True)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return y * (gy - (gy * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """``y_j = x_j - log sum_m exp(x_m)`` along ``axis``.

    ``dy_j/dx_k = delta_jk - softmax_k``, so ``gx_k = gy_k - softmax_k sum_j gy_j``, with
    ``softmax = exp(y)``. Backward needs only the output ``y``.
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        e, shifted = _stable_exp(x, self.axis)
        y = shifted - xp.log(e.sum(axis=self.axis, keepdims=True))
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        xp = get_array_module(y)
        return gy - xp.exp(y) * gy.sum(axis=self.axis, keepdims=True)


class Dropout(Function):
    """Inverted dropout: ``y = x * m / (1 - p)`` with ``m_k ~ Bernoulli(1 - p)``;
    ``gx = gy * m / (1 - p)``. Keeps the scaled mask only."""

    def __init__(self, p, generator=None):
        if not 0 <= p < 1:
            raise ValueError(f"dropout: p must be in [0, 1), got {p}")
        self.p, self.generator = p, generator

    def forward(self, x):
        gen = self.generator or default_rng()
        # draws in the input's precision: float32 draws are half the random bits and memory
        dtype = x.dtype if x.dtype.name in ("float32", "float64") else "float64"
        keep = gen.random(x.shape, dtype=dtype) >= self.p
        scale = keep.astype(x.dtype) * (1.0 / (1.0 - self.p))
        self.save_for_backward(scale)
        return x * scale

    def backward(self, gy):
        return gy * self.saved[0]


def relu(x: Tensor) -> Tensor:
    return ReLU()(x)


def add_relu(a: Tensor, b: Tensor) -> Tensor:
    """``relu(a + b)`` as one op (:class:`AddReLU`): the same values and gradients, fewer arrays
    and passes over memory. ResNet blocks end with it."""
    return AddReLU()(a, b)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return Softmax(axis)(x)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return LogSoftmax(axis)(x)


def dropout(x: Tensor, p: float = 0.5, training: bool = True,
            generator: Any = None) -> Tensor:
    """Zero each element with probability ``p`` while training; identity in evaluation."""
    if not training or p == 0:
        return x
    return Dropout(p, generator)(x)
