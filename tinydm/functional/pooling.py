"""Pooling on NCHW images: max_pool2d, avg_pool2d, global_avg_pool2d.

A pool reads the same windows as a convolution, so it uses conv.py's helpers: :func:`_windows`
(im2col, a strided view) forward and :func:`_col2im` (its adjoint) backward. Notation as there.
"""

from ..backend import get_array_module
from ..tensor import Function, Tensor
from .conv import _check_4d, _col2im, _output_size, _pair, _windows


class _Pool2d(Function):
    """What the pools share: ``kernel`` and ``stride`` (default: the kernel) and the checks."""

    op = "pool2d"

    def __init__(self, kernel, stride=None):
        self.kernel = _pair(kernel, self.op, "kernel", 1)
        self.stride = self.kernel if stride is None else _pair(stride, self.op, "stride", 1)

    def _output_size(self, x):
        _check_4d(self.op, x)
        self.x_shape = x.shape
        return _output_size(self.op, x.shape, self.kernel, self.stride, (0, 0))


class MaxPool2d(_Pool2d):
    """``y[n, c, a, b] = max over its window of x``.

    Only the maximal element of a window affects ``y``, with slope 1, so the gradient of each
    window goes to its argmax: ``gx = col2im(gy at the argmax of each window, 0 elsewhere)``.
    Ties: the *first* maximum in row-major window order gets the whole gradient (PyTorch does
    the same). Backward keeps only the argmax indices (output-sized).
    """

    op = "max_pool2d"

    def forward(self, x):
        out_size = self._output_size(x)
        n, c = x.shape[:2]
        # (N, C, kh*kw, Ho, Wo): a copy, since merging (kh, kw) cannot be a view of windows.
        windows = _windows(x, self.kernel, self.stride, out_size).reshape((n, c, -1) + out_size)
        argmax = windows.argmax(axis=2)
        self.save_for_backward(argmax)
        return windows.max(axis=2)

    def backward(self, gy):
        (argmax,) = self.saved
        xp = get_array_module(gy)
        kh, kw = self.kernel
        n, c = gy.shape[:2]
        is_max = argmax[:, :, None] == xp.arange(kh * kw).reshape(kh * kw, 1, 1)
        gwindows = (is_max * gy[:, :, None]).reshape((n, c, kh, kw) + gy.shape[2:])
        return _col2im(xp.zeros(self.x_shape, dtype=gy.dtype), gwindows, self.stride)


class AvgPool2d(_Pool2d):
    """``y[n, c, a, b] = (1 / (kh*kw)) * sum over its window of x``.

    Every element of a window has slope 1/(kh*kw): ``gx = col2im(gy / (kh*kw) on every window
    element)``. Backward keeps nothing but shapes.
    """

    op = "avg_pool2d"

    def forward(self, x):
        out_size = self._output_size(x)
        return _windows(x, self.kernel, self.stride, out_size).mean(axis=(2, 3))

    def backward(self, gy):
        xp = get_array_module(gy)
        kh, kw = self.kernel
        share = gy[:, :, None, None] / (kh * kw)
        gwindows = xp.broadcast_to(share, gy.shape[:2] + (kh, kw) + gy.shape[2:])
        return _col2im(xp.zeros(self.x_shape, dtype=gy.dtype), gwindows, self.stride)


class GlobalAvgPool2d(Function):
    """``y[n, c] = (1 / (H*W)) * sum_{h,w} x[n, c, h, w]``;  ``gx[n, c, h, w] = gy[n, c] / (H*W)``."""

    def forward(self, x):
        _check_4d("global_avg_pool2d", x)
        self.x_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, gy):
        xp = get_array_module(gy)
        h, w = self.x_shape[2:]
        return xp.broadcast_to(gy[:, :, None, None] / (h * w), self.x_shape)


# --- the public lowercase functions ---------------------------------------------------------------
def max_pool2d(x: Tensor, kernel: int | tuple[int, int],
               stride: int | tuple[int, int] | None = None) -> Tensor:
    """Max over kernel windows; ``stride`` defaults to ``kernel`` (non-overlapping windows)."""
    return MaxPool2d(kernel, stride)(x)


def avg_pool2d(x: Tensor, kernel: int | tuple[int, int],
               stride: int | tuple[int, int] | None = None) -> Tensor:
    """Mean over kernel windows; ``stride`` defaults to ``kernel`` (non-overlapping windows)."""
    return AvgPool2d(kernel, stride)(x)


def global_avg_pool2d(x: Tensor) -> Tensor:
    """Mean over each channel's whole image: (N, C, H, W) -> (N, C)."""
    return GlobalAvgPool2d()(x)
