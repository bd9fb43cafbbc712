"""Exercise: categorical cross entropy on logits (Eq. 1) and its backward rule (Eq. 25).

Write ``CCE.backward`` below, then grade it:

    python -m tinydm.exercises check cce cce.py
"""

from tinydm.backend import get_array_module
from tinydm.tensor import Function


class CCE(Function):
    """Eq. 1, batch mean: ``L = (1/N) sum_i -log p_i``, ``p = softmax(z_i)``, ``p_i = p[y_i]``.

    Softmax Jacobian (Eq. 16): ``dp_i/dz_ij = p_i (1[j = y_i] - p_ij)``; chain rule with
    ``dL_i/dp_i = -1/p_i`` (Eq. 18): ``dL_i/dz_ij = p_ij - 1[j = y_i]`` (Eq. 25), the CCE
    direction ``d_i = p - e_i``. The mean divides each example's gradient by N. Labels ``y``
    are integers and get no gradient (return None for them).
    """

    def forward(self, z, y):
        xp = get_array_module(z)
        n = z.shape[0]
        m = z.max(axis=1, keepdims=True)
        lse = m[:, 0] + xp.log(xp.exp(z - m).sum(axis=1))   # log sum_j exp(z_ij), stably
        p = xp.exp(z - lse[:, None])
        self.save_for_backward(p, y)
        return (lse - z[xp.arange(n), y]).mean()            # -log p_i = lse - z_iy

    def backward(self, gy):
        """``(gz, None)`` from the upstream (scalar) gradient ``gy``."""
        p, y = self.saved
        raise NotImplementedError("write CCE.backward (see the class docstring)")
