"""Exercise: 2-D convolution by im2col, and its backward rule.

Write ``Conv2d.backward`` below, then grade it:

    python -m tinydm.exercises check conv2d conv2d.py
"""

from tinydm.backend import get_array_module
from tinydm.tensor import Function


def im2col(xpad, kh, kw, stride):
    """The windows of ``xpad`` (N, C, Hp, Wp) as columns: (N, C*kh*kw, Ho*Wo), rows ordered
    (c, i, j), one column per output pixel (a, b): ``cols[n, (c, i, j), (a, b)] =
    xpad[n, c, a*stride + i, b*stride + j]``."""
    xp = get_array_module(xpad)
    n, c, hp, wp = xpad.shape
    ho, wo = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    cols = xp.empty((n, c, kh, kw, ho, wo), dtype=xpad.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xpad[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]
    return cols.reshape(n, c * kh * kw, ho * wo), (ho, wo)


class Conv2d(Function):
    """2-D convolution (cross-correlation, as in PyTorch), by im2col and a matrix product.

    ``y[n, o, a, b] = b_o + sum_{c,i,j} W[o, c, i, j] * xpad[n, c, a*s + i, b*s + j]``, where
    ``xpad`` is ``x`` with ``padding`` zeros around each image and ``s`` the stride.

    Flatten the kernel to a matrix ``W`` of shape (Cout, K), K = Cin*kh*kw, and image n's windows
    to ``cols_n`` of shape (K, Ho*Wo) (:func:`im2col`). Then the layer is one matrix product per
    image,

        Y_n = W cols_n + b 1^T                      (Cout, Ho*Wo): y[n] flattened

    and the backward rules are those of a matmul plus the adjoint of im2col:

        gW    = sum_n gY_n cols_n^T                 (Cout, K), reshaped to (Cout, Cin, kh, kw)
        gb    = sum_n gY_n 1 = sum of gy over N, Ho, Wo
        gx_n  = col2im(W^T gY_n)                    each entry of W^T gY_n added back to the
                                                    pixel it was read from, padding cut off
    """

    def __init__(self, stride=1, padding=0):
        self.stride, self.padding = stride, padding

    def forward(self, x, w, b=None):
        xp = get_array_module(x)
        p = self.padding
        xpad = xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        cols, (ho, wo) = im2col(xpad, w.shape[2], w.shape[3], self.stride)
        y = xp.matmul(w.reshape(w.shape[0], -1), cols).reshape(x.shape[0], w.shape[0], ho, wo)
        if b is not None:
            y = y + b[:, None, None]
        self.has_bias = b is not None
        self.save_for_backward(x, w, cols)
        return y

    def backward(self, gy):
        """``(gx, gw, gb)`` (``(gx, gw)`` without a bias) from the upstream gradient ``gy``
        (N, Cout, Ho, Wo)."""
        x, w, cols = self.saved
        raise NotImplementedError("write Conv2d.backward (see the class docstring)")
