"""Elementwise arithmetic and matmul (reductions: reduction.py; shape ops: shape.py).

Notation: ``x`` an input, ``y`` the output, ``gy = dL/dy`` the upstream gradient, ``gx = dL/dx``.
Every backward rule below is the chain rule ``gx = J^T gy`` written out for that op.

Broadcasting: when ``y = f(a, b)`` broadcast ``a`` from a smaller shape, each element of ``a``
was used by several elements of ``y``, so its gradient is the *sum* of theirs. One helper,
:func:`unbroadcast`, does that sum for every broadcasting op.
"""


from ..backend import add as pooled_add
from ..backend import get_array_module
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
        shape = _broadcast_shapes("add", a, b)
        self.shapes = a.shape, b.shape
        return pooled_add(a, b, shape)

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
