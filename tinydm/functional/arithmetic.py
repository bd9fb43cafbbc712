"""Elementwise arithmetic, matmul, reductions and shape ops.

Notation: ``x`` an input, ``y`` the output, ``gy = dL/dy`` the upstream gradient, ``gx = dL/dx``.
Every backward rule below is the chain rule ``gx = J^T gy`` written out for that op.

Broadcasting: when ``y = f(a, b)`` broadcast ``a`` from a smaller shape, each element of ``a``
was used by several elements of ``y``, so its gradient is the *sum* of theirs. One helper,
:func:`unbroadcast`, does that sum for every broadcasting op.
"""

import builtins  # sum, max and pow below are ops; the builtins are spelled out

from ..backend import get_array_module, scatter_add
from ..tensor import Function, Tensor, as_tensor


def unbroadcast(g, shape):
    """Sum ``g`` down to ``shape``: over the leading axes broadcasting added, and over the axes
    where ``shape`` has 1 but ``g`` has more."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


def _broadcast_shapes(op, a, b):
    """Fail early, naming the op, instead of NumPy's anonymous broadcasting error."""
    xp = get_array_module(a, b)
    try:
        return xp.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None


def _binary(x, other):
    """Both operands as Tensors; a Python number takes the dtype and device of the tensor."""
    x = as_tensor(x, like=other if isinstance(other, Tensor) else None)
    return x, as_tensor(other, like=x)


class Add(Function):
    """``y = a + b``;  ``ga = gy``, ``gb = gy`` (then unbroadcast)."""

    def forward(self, a, b):
        _broadcast_shapes("add", a, b)
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        return unbroadcast(gy, self.shapes[0]), unbroadcast(gy, self.shapes[1])


class Sub(Function):
    """``y = a - b``;  ``ga = gy``, ``gb = -gy``."""

    def forward(self, a, b):
        _broadcast_shapes("sub", a, b)
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return unbroadcast(gy, self.shapes[0]), unbroadcast(-gy, self.shapes[1])


class Mul(Function):
    """``y = a * b``;  ``ga = gy * b``, ``gb = gy * a``."""

    def forward(self, a, b):
        _broadcast_shapes("mul", a, b)
        self.save_for_backward(a, b)
        return a * b

    def backward(self, gy):
        a, b = self.saved
        return unbroadcast(gy * b, a.shape), unbroadcast(gy * a, b.shape)


class Div(Function):
    """``y = a / b``;  ``ga = gy / b``, ``gb = -gy * a / b**2 = -gy * y / b``."""

    def forward(self, a, b):
        _broadcast_shapes("div", a, b)
        y = a / b
        self.save_for_backward(b, y)
        self.a_shape = a.shape
        return y

    def backward(self, gy):
        b, y = self.saved
        ga = gy / b
        return unbroadcast(ga, self.a_shape), unbroadcast(-ga * y, b.shape)


class Neg(Function):
    """``y = -x``;  ``gx = -gy``."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """``y = x ** c`` for a constant ``c``;  ``gx = gy * c * x ** (c - 1)``."""

    def __init__(self, c):
        self.c = c

    def forward(self, x):
        self.save_for_backward(x)
        return x ** self.c

    def backward(self, gy):
        (x,) = self.saved
        return gy * self.c * x ** (self.c - 1)


class Exp(Function):
    """``y = exp(x)``;  ``gx = gy * y`` (keeps the output, not the input)."""

    def forward(self, x):
        y = get_array_module(x).exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        return gy * self.saved[0]


class Log(Function):
    """``y = log(x)``;  ``gx = gy / x``."""

    def forward(self, x):
        self.save_for_backward(x)
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.saved[0]


class MatMul(Function):
    """``Y = A @ B`` (batched over leading axes, as NumPy's matmul).

    ``Y_ik = sum_j A_ij B_jk``, so ``dL/dA_ij = sum_k gY_ik B_jk``, i.e. ``gA = gY @ B^T``, and
    likewise ``gB = A^T @ gY``. A 1-D operand is treated as a row (left) or column (right)
    vector, as in NumPy, and the axis it gained is removed again.
    """

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: operands must have at least 1 dimension, got shapes "
                             f"{a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(
                f"matmul: inner dimensions differ: {a.shape} @ {b.shape} "
                f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})")
        self.save_for_backward(a, b)
        return a @ b

    def backward(self, gy):
        a, b = self.saved
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        gy2 = gy
        if b.ndim == 1:
            gy2 = gy2[..., None]
        if a.ndim == 1:
            gy2 = gy2[..., None, :]
        ga = unbroadcast(gy2 @ b2.swapaxes(-1, -2), a2.shape).reshape(a.shape)
        gb = unbroadcast(a2.swapaxes(-1, -2) @ gy2, b2.shape).reshape(b.shape)
        return ga, gb


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


class Sum(Function):
    """``y = sum over axes of x``;  every ``x`` in a sum gets the same ``gy``: ``gx = broadcast(gy)``."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = _normalize_axis(self.axis, x.ndim, "sum")
        self.shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        xp = get_array_module(gy)
        return xp.broadcast_to(_expand_reduced(gy, self.shape, self.axes), self.shape)


class Mean(Function):
    """``y = (1/n) sum over axes of x``;  ``gx = broadcast(gy) / n``."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = _normalize_axis(self.axis, x.ndim, "mean")
        self.shape = x.shape
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        xp = get_array_module(gy)
        n = 1
        for a in self.axes:
            n *= self.shape[a]
        return xp.broadcast_to(_expand_reduced(gy, self.shape, self.axes) / n, self.shape)


class Max(Function):
    """``y = max over axes of x``.

    ``y`` equals one (or, with ties, several) of the ``x``; the gradient goes to those maxima,
    shared equally among ties: ``gx = gy * [x == y] / (number of ties)``.
    """

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = _normalize_axis(self.axis, x.ndim, "max")
        y = x.max(axis=self.axes, keepdims=True)
        mask = x == y
        self.save_for_backward(mask / mask.sum(axis=self.axes, keepdims=True).astype(x.dtype))
        return y if self.keepdims else y.reshape(tuple(
            n for i, n in enumerate(x.shape) if i not in self.axes))

    def backward(self, gy):
        (share,) = self.saved
        return _expand_reduced(gy, share.shape, self.axes) * share


class Reshape(Function):
    """``y = x.reshape(shape)``: elements keep their order, so ``gx = gy.reshape(x.shape)``."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) "
                             f"into {self.shape}") from None

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Transpose(Function):
    """``y = x.transpose(axes)``; ``gx`` is ``gy`` transposed by the inverse permutation."""

    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        axes = tuple(reversed(range(x.ndim))) if self.axes is None else tuple(self.axes)
        if sorted(a % builtins.max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} "
                             f"axes of {x.shape}")
        self.inverse = tuple(sorted(range(x.ndim), key=lambda i: axes[i] % x.ndim))
        return x.transpose(axes)

    def backward(self, gy):
        return gy.transpose(self.inverse)


def _has_array_index(key):
    keys = key if isinstance(key, tuple) else (key,)
    return any(not isinstance(k, (int, slice, type(None), type(Ellipsis))) for k in keys)


class GetItem(Function):
    """``y = x[key]``.  ``gx`` is zero except where ``x`` was read; an element read several times
    (repeated integer indices) gets the sum of its gradients, hence ``scatter_add``."""

    def __init__(self, key):
        self.key = key

    def forward(self, x):
        self.shape, self.dtype = x.shape, x.dtype
        return x[self.key]

    def backward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.shape, dtype=gy.dtype)
        if _has_array_index(self.key):
            scatter_add(gx, self.key, gy)
        else:  # basic indexing reads each element at most once
            gx[self.key] = gy
        return gx


class Concatenate(Function):
    """``y = concatenate(xs, axis)``; ``gx_k`` is the slice of ``gy`` that ``x_k`` filled."""

    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        xp = get_array_module(*xs)
        ref = xs[0].shape
        for x in xs[1:]:
            if x.ndim != len(ref) or any(
                    n != m for i, (n, m) in enumerate(zip(x.shape, ref)) if i != self.axis % len(ref)):
                raise ValueError(f"concatenate: shapes {[t.shape for t in xs]} differ outside "
                                 f"axis {self.axis}")
        self.sizes = [x.shape[self.axis] for x in xs]
        return xp.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        xp = get_array_module(gy)
        bounds = [builtins.sum(self.sizes[:k + 1]) for k in range(len(self.sizes) - 1)]
        return tuple(xp.split(gy, bounds, axis=self.axis))


# --- the public lowercase functions ---------------------------------------------------------------
def add(a, b):
    return Add()(*_binary(a, b))


def sub(a, b):
    return Sub()(*_binary(a, b))


def mul(a, b):
    return Mul()(*_binary(a, b))


def div(a, b):
    return Div()(*_binary(a, b))


def neg(x):
    return Neg()(x)


def pow(x, c):
    """``x ** c`` for a constant number ``c``."""
    if isinstance(c, Tensor):
        raise TypeError("pow: the exponent must be a number, not a Tensor")
    return Pow(c)(x)


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def matmul(a, b):
    return MatMul()(*_binary(a, b))


def sum(x, axis=None, keepdims=False):
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False):
    return Mean(axis, keepdims)(x)


def max(x, axis=None, keepdims=False):
    return Max(axis, keepdims)(x)


def reshape(x, *shape):
    dims = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Reshape(tuple(dims))(x)


def transpose(x, *axes):
    order = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
    return Transpose(tuple(order) if order else None)(x)


def flatten(x, start_dim=1):
    """Merge the axes from ``start_dim`` on (default: keep the batch axis), as torch.flatten."""
    return Reshape(tuple(x.shape[:start_dim]) + (-1,))(x)


def getitem(x, key):
    if isinstance(key, Tensor):
        key = key.data
    elif isinstance(key, tuple):
        key = tuple(k.data if isinstance(k, Tensor) else k for k in key)
    return GetItem(key)(x)


def concatenate(tensors, axis=0):
    return Concatenate(axis)(*tensors)
