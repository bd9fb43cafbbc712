"""The losses of Eq. 1-4 (CCE, MAE, MSE, GCE), plain (batch mean) or derivative-normalised (DN):
their weight ``w_i`` is their own Eq. 6 L1 norm, so only the value and the reduction differ."""

from .. import edf as _edf
from ..backend import get_array_module
from .node import SoftmaxLoss, edf_weights


class Eq6Loss(SoftmaxLoss):
    """A loss of Eq. 1-4: its weight is its Eq. 6 L1 norm (``edf`` name = the loss name), plain
    (batch mean) or, with ``dn=True``, derivative-normalised over the batch."""

    def __init__(self, dn=False, **params):
        self.edf, self.edf_params = _edf.resolve(self.name, **params)
        self.dn = bool(dn)
        if dn:
            self.name = f"{self.name}-dn"

    def emphasis(self, st):
        return edf_weights(self.edf, self.edf_params, st)

    def scale(self, st, w, shares, values):
        if self.dn:   # DN: ||g_i||_1 = w_i / sum_j w_j
            return shares, values.mean()
        return w / st.n, values.mean()   # Eq. 1-4 averaged: ||g_i||_1 = w_i / N


class CCE(Eq6Loss):
    """Eq. 1: ``L_i = -log p_i``;  ``dL_i/dz_i = p - e_i = d_i``, ``||d_i||_1 = 2(1 - p_i)``.

    Softmax Jacobian (Eq. 16): ``dp_i/dz_ij = p_i (1[j = y_i] - p_ij)``; chain rule with
    ``dL/dp_i = -1/p_i`` (Eq. 18): ``dL/dz_ij = p_ij - 1[j = y_i]`` (Eq. 25). The value is the
    log-softmax ``logsumexp(z_i) - z_iy`` (finite for any finite logits).
    """

    name = "cce"

    def values(self, st):
        return -st.log_p


class MAE(Eq6Loss):
    """Eq. 2: ``L_i = 1 - p_i``;  ``dL_i/dz_i = p_i d_i`` (Eq. 28), ``||.||_1 = 2 p_i (1 - p_i)``."""

    name = "mae"

    def values(self, st):
        return st.one_minus_p


class MSE(Eq6Loss):
    """Eq. 3: ``L_i = (1 - p_i)^2``;  ``dL/dp_i = -2(1 - p_i)``, so
    ``dL_i/dz_i = 2 p_i (1 - p_i) d_i``, ``||.||_1 = 4 p_i (1 - p_i)^2``."""

    name = "mse"

    def values(self, st):
        return st.one_minus_p ** 2


class GCE(Eq6Loss):
    """Eq. 4: ``L_i = (1 - p_i^q) / q``;  ``dL/dp_i = -p_i^(q-1)`` (Eq. 22), so
    ``dL_i/dz_i = p_i^q d_i`` (Eq. 31), ``||.||_1 = 2 p_i^q (1 - p_i)``. The value is computed as
    ``-expm1(q log p_i) / q`` (exact near ``p_i = 1``, finite for ``p_i -> 0``)."""

    name = "gce"

    def __init__(self, q=_edf.GCE_Q, dn=False):
        super().__init__(dn=dn, q=q)
        self.q = self.edf_params["q"]

    def values(self, st):
        return -get_array_module(st.log_p).expm1(self.q * st.log_p) / self.q
