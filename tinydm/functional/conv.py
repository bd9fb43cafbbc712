"""Convolution and pooling on NCHW images: conv2d, max_pool2d, avg_pool2d, global_avg_pool2d.

Notation: ``x`` an input of shape (N, C, H, W), ``y`` the output, ``gy = dL/dy``, ``gx = dL/dx``;
a window is the kh x kw patch of (padded) ``x`` that one output pixel reads.

Two helpers do all the pixel bookkeeping, and neither loops over pixels or over the batch:

* :func:`_windows` (im2col) is a strided *view* of shape (N, C, kh, kw, Ho, Wo):
  ``windows[n, c, i, j, a, b] = x[n, c, a*sh + i, b*sw + j]``. Kernel offset (i, j) of every
  window at once, no copy until a GEMM needs one.
* :func:`_col2im` is its adjoint: it adds a gradient given per window element back onto the
  pixels those elements were read from. One window element (i, j) of all windows together is a
  strided slice of the image, ``x[..., i::sh, j::sw]``, so the adjoint is kh*kw slice-adds
  (9 for a 3x3 kernel), each over the whole batch. Where windows overlap, a pixel receives the
  sum of the gradients of every window that read it, as the chain rule asks.

Memory layout: conv2d works channel-major inside, on (C, N, H, W) memory, because its GEMM's
output (Cout, N*Ho*Wo) is then already the result: it is returned as the (N, Cout, Ho, Wo)
*view* ``.transpose(1, 0, 2, 3)``, without a copy. Shapes are always NCHW, only the strides
differ (as PyTorch's memory formats). Elementwise ops keep that layout, the next conv reads it
as fast as a contiguous array, and batch_norm faster (each channel is one contiguous block).
"""

from ..backend import as_strided, get_array_module
from ..tensor import Function


def _pair(value, op, name, minimum):
    """``value`` as a pair (vertical, horizontal) of ints >= ``minimum``."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= minimum for v in pair):
        raise ValueError(f"{op}: {name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return pair


def _check_4d(op, x):
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape {x.shape}")


def _output_size(op, x_shape, kernel, stride, padding):
    """(Ho, Wo) = (H + 2*ph - kh) // sh + 1, ...; fails when the kernel does not fit."""
    size = [(n + 2 * p - k) // s + 1 for n, k, s, p in zip(x_shape[2:], kernel, stride, padding)]
    if min(size) < 1:
        padded = tuple(n + 2 * p for n, p in zip(x_shape[2:], padding))
        raise ValueError(f"{op}: kernel {tuple(kernel)} is larger than the padded input {padded} "
                         f"(input shape {x_shape}, padding {tuple(padding)})")
    return tuple(size)


def _windows(x, kernel, stride, out_size):
    """im2col as a view: ``windows[n, c, i, j, a, b] = x[n, c, a*sh + i, b*sw + j]``.

    Built from ``x``'s own strides, so it works on any memory layout, views included.
    """
    sn, sc, sh, sw = x.strides
    return as_strided(x, x.shape[:2] + tuple(kernel) + tuple(out_size),
                      (sn, sc, sh, sw, sh * stride[0], sw * stride[1]))


def _col2im(gx, gwindows, stride):
    """Adjoint of :func:`_windows`: ``gx[n, c, a*sh + i, b*sw + j] += gwindows[n, c, i, j, a, b]``,
    in place on ``gx``, one strided slice-add per kernel offset (i, j)."""
    kh, kw, ho, wo = gwindows.shape[2:]
    sh, sw = stride
    for i in range(kh):
        for j in range(kw):
            gx[:, :, i:i + sh * ho:sh, j:j + sw * wo:sw] += gwindows[:, :, i, j]
    return gx


def _channel_major_zeros(xp, shape, dtype):
    """Zeros of NCHW ``shape`` laid out as (C, N, H, W) in memory (see the module docstring)."""
    n, c, h, w = shape
    return xp.zeros((c, n, h, w), dtype=dtype).transpose(1, 0, 2, 3)


def _padded_shape(shape, padding):
    n, c, h, w = shape
    return n, c, h + 2 * padding[0], w + 2 * padding[1]


class Conv2d(Function):
    """2-D convolution (cross-correlation, as in PyTorch), by im2col and one GEMM.

    ``y[n, o, a, b] = b_o + sum_{c,i,j} W[o, c, i, j] * xpad[n, c, a*sh + i, b*sw + j]``, where
    ``xpad`` is ``x`` with ``padding`` zeros around each image.

    Flatten the kernel to a matrix ``W`` of shape (Cout, K), K = Cin*kh*kw, and the windows to
    ``cols = cols(x)`` of shape (K, N*Ho*Wo): one column per output pixel (n, a, b), rows ordered
    (c, i, j) like ``W``'s columns. Then the layer is one matrix product

        Y = W cols + b 1^T                        (Cout, N*Ho*Wo)

    and the backward rules are those of a matmul plus the adjoint of im2col:

        gW    = gY cols^T                         (Cout, K), reshaped to (Cout, Cin, kh, kw)
        gb    = gY 1   = sum of gy over N, Ho, Wo
        gcols = W^T gY                            (K, N*Ho*Wo)
        gx    = col2im(gcols)                     each entry added back to the pixel it was
                                                  read from, then the padding cut off

    ``Y``'s rows are output channels and its columns (n, a, b), so ``Y`` is the output in
    (Cout, N, Ho, Wo) memory order and is returned as a transposed view; likewise ``gY`` is a
    free reshape of a channel-major ``gy``, and ``gx`` a view of the channel-major padded buffer.

    Memory: ``cols`` is kh*kw times the size of ``x`` (9x for 3x3). Backward keeps ``x`` and
    rebuilds ``cols`` (one strided copy) instead of keeping ``cols``. Measured on a ResNet-20
    layer, x (128, 16, 32, 32) float32 with a 3x3 kernel: the rebuild costs about a fifth of
    the layer's forward+backward time (~25 ms of ~105 ms on 2 cores), and saves 9x the memory
    per conv (x 8 MiB instead of cols 72 MiB), which decides whether deep ResNets fit.
    """

    def __init__(self, stride=1, padding=0):
        self.stride = _pair(stride, "conv2d", "stride", 1)
        self.padding = _pair(padding, "conv2d", "padding", 0)

    def forward(self, x, w, b=None):
        self._check(x, w, b)
        self.kernel = w.shape[2:]
        self.out_size = _output_size("conv2d", x.shape, self.kernel, self.stride, self.padding)
        self.has_bias = b is not None
        self.save_for_backward(x, w)
        y = w.reshape(w.shape[0], -1) @ self._cols(x)
        if b is not None:
            y += b[:, None]
        return y.reshape((w.shape[0], x.shape[0]) + self.out_size).transpose(1, 0, 2, 3)

    def backward(self, gy):
        x, w = self.saved
        cout, cin, kh, kw = w.shape
        gy = gy.transpose(1, 0, 2, 3).reshape(cout, -1)  # gY; a copy only if gy is not channel-major
        # gW^T = cols gY^T: the same product, in the orientation OpenBLAS runs fastest here (the
        # other one, gY cols^T, was 1.6x slower, and 100x when other processes share the cores)
        gw = (self._cols(x) @ gy.T).T.reshape(w.shape)
        gcols = w.reshape(cout, -1).T @ gy
        gcols = gcols.reshape((cin, kh, kw, x.shape[0]) + self.out_size).transpose(3, 0, 1, 2, 4, 5)
        gxpad = _channel_major_zeros(get_array_module(gy), _padded_shape(x.shape, self.padding),
                                     gcols.dtype)
        (ph, pw), (h, wd) = self.padding, x.shape[2:]
        gx = _col2im(gxpad, gcols, self.stride)[:, :, ph:ph + h, pw:pw + wd]
        return (gx, gw, gy.sum(axis=1)) if self.has_bias else (gx, gw)

    def _cols(self, x):
        """The (K, N*Ho*Wo) matrix of windows of the padded ``x``: one strided copy."""
        (ph, pw), (h, w) = self.padding, x.shape[2:]
        if ph or pw:
            xpad = _channel_major_zeros(get_array_module(x), _padded_shape(x.shape, self.padding),
                                        x.dtype)
            xpad[:, :, ph:ph + h, pw:pw + w] = x
            x = xpad
        windows = _windows(x, self.kernel, self.stride, self.out_size)
        k = x.shape[1] * self.kernel[0] * self.kernel[1]
        # (C, kh, kw, N, Ho, Wo): rows (c, i, j) match W's columns, columns (n, a, b) match Y's
        return windows.transpose(1, 2, 3, 0, 4, 5).reshape(k, -1)

    @staticmethod
    def _check(x, w, b):
        _check_4d("conv2d", x)
        if w.ndim != 4:
            raise ValueError(f"conv2d: weight must be 4-D (Cout, Cin, kh, kw), got shape {w.shape}")
        if x.shape[1] != w.shape[1]:
            raise ValueError(f"conv2d: input has {x.shape[1]} channels but the weight expects "
                             f"{w.shape[1]}: input shape {x.shape}, weight shape {w.shape}")
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"conv2d: bias must have shape ({w.shape[0]},) for weight shape "
                             f"{w.shape}, got {b.shape}")


class MaxPool2d(Function):
    """``y[n, c, a, b] = max over its window of x``.

    Only the maximal element of a window affects ``y``, with slope 1, so the gradient of each
    window goes to its argmax: ``gx = col2im(gy at the argmax of each window, 0 elsewhere)``.
    Ties: the *first* maximum in row-major window order gets the whole gradient (PyTorch does
    the same). Backward keeps only the argmax indices (output-sized).
    """

    def __init__(self, kernel, stride=None):
        self.kernel = _pair(kernel, "max_pool2d", "kernel", 1)
        self.stride = self.kernel if stride is None else _pair(stride, "max_pool2d", "stride", 1)

    def forward(self, x):
        _check_4d("max_pool2d", x)
        self.x_shape = x.shape
        out_size = _output_size("max_pool2d", x.shape, self.kernel, self.stride, (0, 0))
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


class AvgPool2d(Function):
    """``y[n, c, a, b] = (1 / (kh*kw)) * sum over its window of x``.

    Every element of a window has slope 1/(kh*kw): ``gx = col2im(gy / (kh*kw) on every window
    element)``. Backward keeps nothing but shapes.
    """

    def __init__(self, kernel, stride=None):
        self.kernel = _pair(kernel, "avg_pool2d", "kernel", 1)
        self.stride = self.kernel if stride is None else _pair(stride, "avg_pool2d", "stride", 1)

    def forward(self, x):
        _check_4d("avg_pool2d", x)
        self.x_shape = x.shape
        out_size = _output_size("avg_pool2d", x.shape, self.kernel, self.stride, (0, 0))
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
def conv2d(x, w, b=None, stride=1, padding=0):
    """2-D convolution of ``x`` (N, Cin, H, W) with ``w`` (Cout, Cin, kh, kw), plus bias ``b``
    (Cout,); ``stride`` and ``padding`` are ints or (vertical, horizontal) pairs. Output
    (N, Cout, Ho, Wo), laid out channel-major in memory (see the module docstring)."""
    conv = Conv2d(stride, padding)
    return conv(x, w) if b is None else conv(x, w, b)


def max_pool2d(x, kernel, stride=None):
    """Max over kernel windows; ``stride`` defaults to ``kernel`` (non-overlapping windows)."""
    return MaxPool2d(kernel, stride)(x)


def avg_pool2d(x, kernel, stride=None):
    """Mean over kernel windows; ``stride`` defaults to ``kernel`` (non-overlapping windows)."""
    return AvgPool2d(kernel, stride)(x)


def global_avg_pool2d(x):
    """Mean over each channel's whole image: (N, C, H, W) -> (N, C)."""
    return GlobalAvgPool2d()(x)
