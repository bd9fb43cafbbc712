"""Shape ops: reshape, transpose, flatten, indexing and concatenation. Notation as in
arithmetic.py. None of them computes anything: each backward moves ``gy`` back to where its
elements came from (an inverse reshape or transpose, a scatter-add for indexing, a split).
"""

from ..backend import get_array_module, scatter_add
from ..tensor import Function, Tensor


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
        if sorted(a % max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
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
        bounds = [sum(self.sizes[:k + 1]) for k in range(len(self.sizes) - 1)]
        return tuple(xp.split(gy, bounds, axis=self.axis))


# --- the public lowercase functions ---------------------------------------------------------------
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
