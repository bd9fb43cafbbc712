"""The fully connected layer."""

from ..backend import get_array_module
from ..tensor import Function, Tensor


class Linear(Function):
    """``y = x W^T + b`` with ``W`` of shape (out, in), as PyTorch lays it out.

    ``y_nk = sum_j x_nj W_kj + b_k``, hence ``gx = gy W``, ``gW = gy^T x`` and
    ``gb = sum_n gy_n``. Leading axes of ``x`` beyond one are folded into the batch.
    """

    def forward(self, x, w, b=None):
        if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[1]:
            raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape "
                             f"{w.shape} (expected input (..., {w.shape[-1] if w.ndim else '?'}))")
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"linear: bias has shape {b.shape}, expected ({w.shape[0]},)")
        self.save_for_backward(x, w)
        self.has_bias = b is not None
        y = get_array_module(x, w).matmul(x, w.T)  # xp.matmul rather than @: a profiler sees it
        return y + b if b is not None else y

    def backward(self, gy):
        x, w = self.saved
        xp = get_array_module(gy)
        gx = xp.matmul(gy, w)
        x2, gy2 = x.reshape(-1, x.shape[-1]), gy.reshape(-1, gy.shape[-1])
        gw = xp.matmul(gy2.T, x2)
        return (gx, gw, gy2.sum(axis=0)) if self.has_bias else (gx, gw)


def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    return Linear()(x, w) if b is None else Linear()(x, w, b)
