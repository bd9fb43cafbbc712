"""Exercise: derivative manipulation, Eq. 7 with the weight of Eq. 12, as released.

Write ``DM.backward`` below, then grade it:

    python -m tinydm.exercises check dm dm.py
"""

from tinydm.backend import get_array_module
from tinydm.losses import DM_EPS  # the released layer's guard in d_i / (2(1 - p_i) + DM_EPS)
from tinydm.tensor import Function


class DM(Function):
    """DM (Eq. 7): keep CCE's direction ``d_i = p - e_i`` (``||d_i||_1 = 2(1 - p_i)``) and give
    example i the weight ``w_i = exp(beta p_i^lam (1 - p_i))`` (Eq. 12):

        grad z_i = s_i * d_i / (2(1 - p_i) + eps),      s_i = w_i / sum_j w_j,

    times the upstream (scalar) gradient. The batch's weights are normalised to one unit (``s``),
    ``eps = DM_EPS`` guards a fitted example (``p_i -> 1``), and ``w`` and ``sum_j w_j`` are
    constants in backward. DM has no elementary loss (Section 3.2.2): the value returned is only
    for display, ``sum_i s_i (-log p_i)``, so backward is *not* its gradient.
    """

    def __init__(self, lam, beta):
        self.lam, self.beta = lam, beta

    def forward(self, z, y):
        xp = get_array_module(z)
        n = z.shape[0]
        m = z.max(axis=1, keepdims=True)
        lse = m[:, 0] + xp.log(xp.exp(z - m).sum(axis=1))
        p = xp.exp(z - lse[:, None])
        p_i = p[xp.arange(n), y]
        log_w = self.beta * p_i ** self.lam * (1 - p_i)       # log w_i (Eq. 12)
        e = xp.exp(log_w - log_w.max())                        # s as a softmax: no overflow
        s = e / e.sum()
        self.save_for_backward(p, y, s)
        return (s * (lse - z[xp.arange(n), y])).sum()

    def backward(self, gy):
        """``(gz, None)`` from the upstream (scalar) gradient ``gy``."""
        p, y, s = self.saved
        raise NotImplementedError("write DM.backward (see the class docstring)")
