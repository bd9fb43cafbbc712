"""The loss node every loss of tinydm shares: softmax statistics computed once and stably, input
checks, and a backward that scales the unit CCE direction ``u_i`` of each example by ``a_i``
(the table in tinydm/losses/__init__.py)."""

from ..backend import device_of, get_array_module
from ..tensor import Function, Tensor


class SoftmaxStats:
    """The softmax quantities of a batch, computed once, stably.

    ``log_p`` = log p_i, ``log_1mp`` = log(1 - p_i) (both (N,)), ``p`` = p_i, ``one_minus_p``,
    and ``u`` (N, C), the unit-L1 CCE direction ``(p - e_i) / (2(1 - p_i))``.
    """

    def __init__(self, z, y):
        xp = get_array_module(z)
        n, c = z.shape
        bad = None
        if device_of(y) != "cpu":  # the range was not checked on the host (see check_inputs)
            bad = (y < 0) | (y >= c)
            y = xp.where(bad, 0, y)  # a safe index; the example's values become NaN below
        is_label = xp.arange(c)[None, :] == y[:, None]
        # log p_i = z_iy - logsumexp(z_i), the log-sum-exp shifted by the row max
        m = z.max(axis=1, keepdims=True)
        lse = m[:, 0] + xp.log(xp.exp(z - m).sum(axis=1))
        self.log_p = z[xp.arange(n), y] - lse
        if bad is not None:
            self.log_p = xp.where(bad, xp.nan, self.log_p)
        # 1 - p_i is the mass of the other classes: the same log-sum-exp without the label
        others = xp.where(is_label, -xp.inf, z)
        m2 = others.max(axis=1, keepdims=True)
        e2 = xp.exp(others - m2)
        s2 = e2.sum(axis=1)
        self.log_1mp = m2[:, 0] + xp.log(s2) - lse
        # u_ij = p_ij / (2 (1 - p_i)) = (softmax over the other classes)_j / 2;  u_iy = -1/2
        self.u = xp.where(is_label, -0.5, e2 / (2 * s2[:, None]))
        self.p, self.one_minus_p = xp.exp(self.log_p), xp.exp(self.log_1mp)
        self.n, self.c, self.y = n, c, y


def check_inputs(name, z, y):
    """Clear errors, naming the loss, for logits/labels of the wrong shape, dtype, device or range."""
    if z.ndim != 2:
        raise ValueError(f"{name}: logits must have shape (N, C), got shape {z.shape}")
    n, c = z.shape
    if z.dtype.kind != "f":
        raise TypeError(f"{name}: logits must be floating point, got dtype {z.dtype}")
    if n == 0 or c < 2:
        raise ValueError(f"{name}: logits of shape {z.shape}: need N >= 1 examples and C >= 2 classes")
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name}: labels must be integer class indices, got dtype {y.dtype} "
                        f"(shape {y.shape})")
    if y.shape != (n,):
        raise ValueError(f"{name}: labels must have shape (N,) = ({n},) to match logits {z.shape}, "
                         f"got shape {y.shape}")
    if device_of(y) != device_of(z):
        raise ValueError(f"{name}: labels are on device {device_of(y)!r}, logits on "
                         f"{device_of(z)!r}; create both on one device")
    if device_of(y) == "cpu":
        check_label_range(name, y, c, f"logits {z.shape}")
    # On a GPU that check would copy y.min() and y.max() to the host and wait for the device,
    # every batch. There the data sets are checked once, on the host, when loaded
    # (check_label_range), and a label out of range still cannot pass silently: SoftmaxStats
    # makes its example's p_i and loss NaN, which the training loop's divergence check stops.


def check_label_range(name, y, num_classes, of=None):
    """Labels must be class indices in [0, C-1]: a clear error naming ``name`` (and ``of``, what
    they label) otherwise. For host (NumPy) labels: call it once per data set before sending
    the labels to a GPU."""
    if y.size == 0:
        return
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"{name}: labels must be in [0, {num_classes - 1}] for "
                         f"{of or f'{num_classes} classes'}, got values in [{lo}, {hi}]")


def edf_weights(e, params, st):
    """``w_i`` and ``w_i / sum_j w_j`` for a weighting function of tinydm/edf/, the shares
    computed from ``log w`` as a softmax over the batch (no overflow, no 0/0)."""
    xp = get_array_module(st.log_p)
    log_w = e.log_weight(st.log_p, st.log_1mp, **params)
    shifted = xp.exp(log_w - log_w.max())
    return xp.exp(log_w), shifted / shifted.sum()


class SoftmaxLoss(Function):
    """A loss on logits whose backward scales the unit CCE direction per example.

    Subclasses say three things: ``emphasis(st)`` -> (``w_i``, ``w_i / sum_j w_j``),
    ``values(st)`` -> each example's displayed loss, and ``scale(st, w, shares, values)`` ->
    (``a_i``, the value shown): the row of the table in tinydm/losses/__init__.py. forward keeps
    ``p_i``, ``weights`` and
    ``normalised_weights`` (device arrays) on the node and on the output (see :func:`details`).
    """

    name = "loss"

    def __call__(self, logits, labels):
        loss = super().__call__(logits, labels)
        details = {"p_i": Tensor(self.p_i), "weights": Tensor(self.weights),
                   "normalised_weights": Tensor(self.normalised_weights)}
        loss._loss_details = details  # type: ignore[attr-defined]  # read by details()
        return loss

    def forward(self, z, y):
        check_inputs(self.name, z, y)
        st = SoftmaxStats(z, y)
        w, shares = self.emphasis(st)
        a, value = self.scale(st, w, shares, self.values(st))
        self.save_for_backward(a[:, None] * st.u)
        self.p_i, self.weights, self.normalised_weights = st.p, w, shares
        return value

    def backward(self, gy):
        (g,) = self.saved
        return g * gy, None  # gy: the upstream (scalar) gradient, e.g. 2 for `2 * loss`

    def emphasis(self, st):
        raise NotImplementedError

    def values(self, st):
        raise NotImplementedError

    def scale(self, st, w, shares, values):
        raise NotImplementedError
