"""Convolution on NCHW images: conv2d (pooling, which shares its window helpers, is in
pooling.py).

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

Speed on a CPU (docs/benchmarks.md has the measurements). A convolution is a GEMM on the
*columns* of the image, a copy kh*kw times its size (9x for 3x3). For a whole CIFAR batch that
copy is 75 MB per ResNet layer: written to main memory, read back by the GEMM, and both cost
more than the arithmetic. So conv2d makes the columns a few images at a time, about
``backend.CHUNK_BYTES`` (1 MiB) of them, which stay in the core's cache from the copy to the
GEMM: the same products, about twice as fast; the chunks run side by side on the CPU threads
(:func:`tinydm.backend.map_batch_chunks`). On the GPU the whole batch is one chunk. Outputs
are plain contiguous NCHW.
"""

from typing import Any

from ..backend import as_strided, empty, get_array_module, map_batch_chunks, zeros
from ..tensor import Function, Tensor


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


class _Columns:
    """The column matrices of ``x``, a chunk of images at a time, in buffers reused from chunk to
    chunk: ``columns(chunk, *buffers)`` has shape (n, K, Ho*width), K = C*kh*kw, for the n
    images of the slice ``chunk``,

        cols[m, (c, i, j), (a, b)] = xpad[chunk.start + m, c, a*sh + i, b*sw + j],

    ``xpad`` being ``x`` with ``padding`` zeros around each image: one strided copy of the im2col
    view. Rows are ordered (c, i, j) like the columns of a flattened kernel, so
    ``W.reshape(Cout, K) @ cols`` is the convolution. ``buffers(size)`` makes one thread's
    buffers (see :func:`tinydm.backend.map_batch_chunks`); the views are made there once, as
    making a strided view costs more Python time than copying one image's columns.

    **The padded grid** (``grid=True``, for a stride-1 convolution with padding). Normally
    ``width = Wo``: one column per output pixel, and each row of ``cols`` is copied in runs of
    Wo values (8 to 32 in a CIFAR ResNet), which makes the copy slow. With stride 1, lay the
    outputs on the grid of the padded image instead, ``width = Wp = W + 2*pw`` columns per output
    row (the last ``Wp - Wo`` of them unused): output (a, b) is cell ``q = a*Wp + b``, and it reads
    ``xpad`` at ``(a + i)*Wp + (b + j) = q + i*Wp + j`` of the flattened padded image. So row
    (c, i, j) of ``cols`` is the *contiguous* run ``xpad_flat[c, i*Wp + j :][: Ho*Wp]``: one long
    copy per row. The unused cells give outputs that :meth:`crop` drops (the GEMM does
    ``Wp / Wo`` times the work: 6% more at 32x32, 25% at 8x8; the copies it saves cost more). The
    runs of the last channel read ``kw - 1`` values past its end, so the buffer has that slack.
    """

    def __init__(self, x, kernel, stride, padding, out_size, grid=False):
        self.x, self.kernel, self.stride, self.padding = x, kernel, stride, padding
        self.out_size, self.padded = out_size, padding != (0, 0)
        self.grid = grid and self.padded and stride == (1, 1)
        self.width = x.shape[3] + 2 * padding[1] if self.grid else out_size[1]
        self.cells = out_size[0] * self.width
        self.rows = x.shape[1] * kernel[0] * kernel[1]
        self.item_bytes = self.rows * self.cells * x.itemsize
        self.windows: Any = None if self.padded else _windows(x, kernel, stride, out_size)

    def buffers(self, size):
        xp, (_, c, h, w), (ph, pw) = get_array_module(self.x), self.x.shape, self.padding
        (kh, kw), dtype = self.kernel, self.x.dtype
        cols = empty(xp, (size, c, kh, kw) + ((self.cells,) if self.grid else self.out_size),
                     dtype)
        if not self.padded:
            return cols, None, None
        # padded images: the borders stay zero, only the inside is ever written
        image = (h + 2 * ph) * (w + 2 * pw)
        flat = zeros(xp, (size * c * image + (kw - 1 if self.grid else 0),), dtype)
        xpad = flat[:size * c * image].reshape(size, c, h + 2 * ph, w + 2 * pw)
        if not self.grid:
            return cols, xpad, _windows(xpad, self.kernel, self.stride, self.out_size)
        item = flat.itemsize  # runs[m, c, i, j, q] = xpad_flat[m, c, i*Wp + j + q]
        runs = as_strided(flat, (size, c, kh, kw, self.cells),
                          (c * image * item, image * item, self.width * item, item, item))
        return cols, xpad, runs

    def __call__(self, chunk, cols, xpad, xpad_windows):
        (ph, pw), (h, w), m = self.padding, self.x.shape[2:], chunk.stop - chunk.start
        if self.padded:
            xpad[:m, :, ph:ph + h, pw:pw + w] = self.x[chunk]
            cols[:m] = xpad_windows[:m]
        else:
            cols[:m] = self.windows[chunk]
        return cols[:m].reshape(m, self.rows, -1)

    def crop(self, out):
        """The outputs (n, C, Ho, Wo), a view of GEMM results ``out`` (n, C, Ho*width)."""
        return out.reshape(out.shape[:2] + (self.out_size[0], self.width))[..., :self.out_size[1]]


def _correlate(x, w, stride, padding):
    """``y[n, o, a, b] = sum_{c,i,j} w[o, c, i, j] * xpad[n, c, a*sh + i, b*sw + j]``: per chunk
    of images the GEMM ``W cols``, written into its part of ``y`` (N, Cout, Ho, Wo): straight
    there, or on the padded grid first (see :class:`_Columns`)."""
    xp = get_array_module(x, w)
    cout, kernel = w.shape[0], w.shape[2:]
    out_size = _output_size("conv2d", x.shape, kernel, stride, padding)
    wmat = w.reshape(cout, -1)
    dtype = xp.result_type(x.dtype, w.dtype)
    y = empty(xp, (x.shape[0], cout) + out_size, dtype)
    columns = _Columns(x, kernel, stride, padding, out_size, grid=True)

    def buffers(size):  # the columns', and the GEMM's results on the grid
        out = empty(xp, (size, cout, columns.cells), dtype) if columns.grid else None
        return columns.buffers(size) + (out,)

    def gemm(chunk, cols, xpad, windows, out):
        cols = columns(chunk, cols, xpad, windows)
        if out is None:
            xp.matmul(wmat, cols, out=y[chunk].reshape(cols.shape[0], cout, -1))
            return
        out = out[:cols.shape[0]]
        xp.matmul(wmat, cols, out=out)
        y[chunk] = columns.crop(out)
    map_batch_chunks(gemm, x, columns.item_bytes, buffers)
    return y


class Conv2d(Function):
    """2-D convolution (cross-correlation, as in PyTorch), by im2col and GEMMs.

    ``y[n, o, a, b] = b_o + sum_{c,i,j} W[o, c, i, j] * xpad[n, c, a*sh + i, b*sw + j]``, where
    ``xpad`` is ``x`` with ``padding`` zeros around each image.

    Flatten the kernel to a matrix ``W`` of shape (Cout, K), K = Cin*kh*kw, and image n's windows
    to ``cols_n`` of shape (K, Ho*Wo): one column per output pixel (a, b), rows ordered (c, i, j)
    like ``W``'s columns. Then the layer is one matrix product per image,

        Y_n = W cols_n + b 1^T                      (Cout, Ho*Wo): y[n] flattened

    and the backward rules are those of a matmul plus the adjoint of im2col:

        gW    = sum_n gY_n cols_n^T                 (Cout, K), reshaped to (Cout, Cin, kh, kw)
        gb    = sum_n gY_n 1 = sum of gy over N, Ho, Wo
        gx_n  = col2im(W^T gY_n)                    each entry of W^T gY_n added back to the
                                                    pixel it was read from, padding cut off

    The products run a chunk of images at a time (see the module docstring). ``cols`` is never
    kept (it is 9x the size of ``x``, which is kept): backward builds the columns it needs again,
    chunk by chunk, and for stride 1 it needs none of ``x`` (below).

    **gx of a stride-1 convolution is itself a convolution** (the "transposed convolution"), and
    computed as one, which spares the 9x ``W^T gY`` and the col2im adds. With stride 1, pixel
    (u, v) of ``xpad`` meets ``W[o, c, i, j]`` in output (u - i, v - j), so

        gxpad[n, c, u, v] = sum_{o,i,j} W[o, c, i, j] * gy[n, o, u - i, v - j]
                          = sum_{o,i,j} Wt[c, o, i, j] * gypad[n, o, u + i, v + j]

    with ``Wt[c, o, i, j] = W[o, c, kh-1-i, kw-1-j]`` (channels swapped, kernel flipped: put
    i -> kh-1-i) and ``gypad`` = ``gy`` with kh-1 zeros around it (outputs off the map have no
    gradient). Cutting the padding p off ``gxpad`` is the same as padding ``gy`` with only
    kh-1-p: ``gx = conv2d(gy, Wt, padding=(kh-1-ph, kw-1-pw))``, whose columns ``gcols_n``
    (Cout*kh*kw, H*W) give ``gx_n = Wt gcols_n``. The same columns give gW, so backward makes
    no columns of ``x`` at all: the product ``Wt gcols_n`` is linear in Wt, so the gradient of
    Wt is ``gWt = sum_n x_n gcols_n^T`` (Cin, Cout*kh*kw), and gW is gWt with the channels
    swapped back and the kernel flipped back. (Check: gWt[c, o, i, j] = sum over n, u, v of
    x[n, c, u, v] gy[n, o, u + i + p - kh + 1, ...] = gW[o, c, kh-1-i, kw-1-j], as the
    sum for gW above with a = u + p - (kh-1-i); pixels of the padding are zero and drop out.)
    Strided convolutions (and padding wider than kh-1) take the col2im route above, and so does
    gW when gx is not wanted (the first layer: its columns of x are the smaller ones).
    """

    def __init__(self, stride=1, padding=0):
        self.stride = _pair(stride, "conv2d", "stride", 1)
        self.padding = _pair(padding, "conv2d", "padding", 0)

    def forward(self, x, w, b=None):
        self._check(x, w, b)
        self.has_bias = b is not None
        self.save_for_backward(x, w)
        y = _correlate(x, w, self.stride, self.padding)
        if b is not None:
            y += b[:, None, None]
        return y

    def backward(self, gy):
        x, w = self.saved
        need_gx, need_gw = self.needs_input_grad[:2]  # e.g. no gx for the images themselves
        (kh, kw), (ph, pw) = w.shape[2:], self.padding
        if need_gx and self.stride == (1, 1) and ph < kh and pw < kw:
            gx, gw = self._transposed_grads(gy, x, w, need_gw)
        else:
            gx = self._col2im_input_grad(gy, x.shape, w) if need_gx else None
            gw = self._weight_grad(gy, x, w) if need_gw else None
        return (gx, gw, gy.sum(axis=(0, 2, 3))) if self.has_bias else (gx, gw)

    def _transposed_grads(self, gy, x, w, need_gw):
        """gx as the transposed convolution ``conv2d(gy, Wt, padding=kh-1-p)``, and gW from the
        same columns of ``gy`` (see the class docstring), one chunk of images at a time. On the
        padded grid (:class:`_Columns`) the columns have ``H*width`` cells, so gW pairs them
        with ``x`` laid on the same grid, zeros in the unused cells."""
        xp = get_array_module(gy)
        (n, cin, h, wd), (kh, kw), (ph, pw) = x.shape, w.shape[2:], self.padding
        wt = w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]  # Wt[c, o, i, j] = W[o, c, kh-1-i, kw-1-j]
        wtmat = wt.reshape(cin, -1)
        columns = _Columns(gy, (kh, kw), (1, 1), (kh - 1 - ph, kw - 1 - pw), (h, wd), grid=True)
        gx = empty(xp, (n, cin, h, wd), gy.dtype)
        grid = columns.grid

        def buffers(size):  # the columns', gx on the grid, and x on the grid (zero borders)
            if not grid:
                return columns.buffers(size) + (None, None)
            x_grid = zeros(xp, (size, cin, h, columns.width), x.dtype) if need_gw else None
            return columns.buffers(size) + (empty(xp, (size, cin, columns.cells), gy.dtype),
                                            x_grid)

        def chunk_grads(chunk, cols, xpad, windows, gx_grid, x_grid):
            cols = columns(chunk, cols, xpad, windows)  # of gy: (n, Cout*kh*kw, H*width)
            m = cols.shape[0]
            if grid:
                xp.matmul(wtmat, cols, out=gx_grid[:m])
                gx[chunk] = columns.crop(gx_grid[:m])
            else:
                xp.matmul(wtmat, cols, out=gx[chunk].reshape(m, cin, -1))
            if not need_gw:
                return None
            if grid:
                x_grid[:m, :, :, :wd] = x[chunk]
                xs = x_grid[:m].reshape(m, cin, -1)
            else:
                xs = x[chunk].reshape(m, cin, -1)  # a copy only if x is not NCHW
            # sum over the chunk's images of cols_n x_n^T = gWt^T: (Cout*kh*kw, Cin)
            return xp.matmul(cols, xs.transpose(0, 2, 1)).sum(axis=0)
        parts = map_batch_chunks(chunk_grads, gy, columns.item_bytes, buffers)
        if not need_gw:
            return gx, None
        gwt = sum(parts[1:], parts[0]).T.reshape(wt.shape)
        return gx, gwt.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1].copy()

    def _weight_grad(self, gy, x, w):
        """``gW = sum_n gY_n cols_n^T``, computed as its transpose ``sum_n cols_n gY_n^T``: the
        orientation OpenBLAS runs fastest here (the other was up to 1.6x slower)."""
        xp, kernel, out_size = get_array_module(gy), w.shape[2:], gy.shape[2:]
        gy = gy.reshape(gy.shape[0], gy.shape[1], -1)  # gY_n; a copy only if gy is not NCHW
        columns = _Columns(x, kernel, self.stride, self.padding, out_size)

        def chunk_sum(chunk, *buffers):  # sum over the chunk's images of cols_n gY_n^T: (K, Cout)
            return xp.matmul(columns(chunk, *buffers), gy[chunk].transpose(0, 2, 1)).sum(axis=0)
        parts = map_batch_chunks(chunk_sum, x, columns.item_bytes, columns.buffers)
        return sum(parts[1:], parts[0]).T.reshape(w.shape)

    def _col2im_input_grad(self, gy, x_shape, w):
        """``gx_n = col2im(W^T gY_n)``, a chunk of images at a time."""
        xp = get_array_module(gy)
        (n, cin, h, wd), (cout, ho, wo) = x_shape, gy.shape[1:]
        (kh, kw), (ph, pw) = w.shape[2:], self.padding
        wt, gy = w.reshape(cout, -1).T, gy.reshape(n, cout, -1)
        gx = empty(xp, x_shape, gy.dtype)

        def col2im(chunk, gxpad):
            gcols = xp.matmul(wt, gy[chunk])  # W^T gY_n: (n, K, Ho*Wo)
            m = gcols.shape[0]
            gxpad[:m] = 0
            _col2im(gxpad[:m], gcols.reshape((m, cin, kh, kw, ho, wo)), self.stride)
            gx[chunk] = gxpad[:m, :, ph:ph + h, pw:pw + wd]
        map_batch_chunks(col2im, gy, wt.shape[0] * ho * wo * gy.itemsize,
                         lambda size: [empty(xp, (size, cin, h + 2 * ph, wd + 2 * pw), gy.dtype)])
        return gx

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


def conv2d(x: Tensor, w: Tensor, b: Tensor | None = None, stride: int | tuple[int, int] = 1,
           padding: int | tuple[int, int] = 0) -> Tensor:
    """2-D convolution of ``x`` (N, Cin, H, W) with ``w`` (Cout, Cin, kh, kw), plus bias ``b``
    (Cout,); ``stride`` and ``padding`` are ints or (vertical, horizontal) pairs. Output
    (N, Cout, Ho, Wo)."""
    conv = Conv2d(stride, padding)
    return conv(x, w) if b is None else conv(x, w, b)
