"""Derivative manipulation (DM), Eq. 7: the example weighting the paper is about.

Derivation. For CCE, ``L_i = -log p_i`` with ``p = softmax(z_i)`` and ``p_i = p[y_i]``, the
gradient w.r.t. the logits is the *CCE direction* (Eq. 25)

    dL_CCE/dz_i = d_i = p - e_i,        ||d_i||_1 = (1 - p_i) + sum_{j != y_i} p_ij = 2(1 - p_i).

Every loss of Eq. 1-4 moves ``z_i`` along ``d_i``; only the length differs (Eq. 5, 6). DM
keeps the direction and chooses the length: given a weighting function ``w_i = w(p_i)``,

    grad z_i = w_i / (2(1 - p_i)) * d_i                                               (Eq. 7)

so ``||grad z_i||_1 = w_i``: the example's weight *is* its gradient's L1 norm. With Eq. 12,
``w_i = exp(beta p_i^lam (1 - p_i))`` (tinydm/edf/functions.py), whose mode is
``lam / (lam + 1)`` for ``beta > 0``.

As released (docs/released-code.md), two details turn Eq. 7 into code:

* the batch's weights are normalised to one unit, ``s_i = w_i / sum_j w_j`` (mini-batch DN,
  not the integral of Eq. 8);
* ``2(1 - p_i)`` gets a guard ``eps = 1e-6`` (:data:`DM_EPS`), so a fitted example
  (``p_i -> 1``) gets a vanishing gradient instead of 0/0.

Hence, with ``u_i = d_i / (2(1 - p_i))`` the unit-L1 direction every loss node computes
(tinydm/losses/node.py),

    g_i = s_i * d_i / (2(1 - p_i) + eps)  =  s_i * 2(1 - p_i) / (2(1 - p_i) + eps) * u_i,

which :meth:`Manipulate.scale` returns as ``a_i`` (``backward`` multiplies ``a_i u_i`` by the
upstream gradient). ``w`` and ``sum_j w_j`` are constants in backward. DM has no elementary
loss (Section 3.2.2): the value shown is the ``s``-weighted CCE, ``sum_i s_i (-log p_i)``.
"""

from .. import edf as _edf
from ..backend import get_array_module, is_array
from .node import SoftmaxLoss

DM_EPS = 1e-6  # the released layer's guard in d_i / (2(1 - p_i) + DM_EPS)


class Manipulate(SoftmaxLoss):
    """Derivative manipulation (Eq. 7) with any weighting function: ``weight_fn(p_i) -> w_i``.

    backward: :meth:`scale`, the rule of the module docstring, for the weights of
    ``weight_fn``. ``w`` and the normaliser are constants.
    ``weight_fn`` receives ``p_i`` as an (N,) array of the logits' device and dtype and returns
    ``w_i >= 0`` as an (N,) array (or a number); if every ``w_i`` is 0 the gradient is 0.
    Displayed value: ``sum_i (w_i / sum_j w_j) (-log p_i)``.
    """

    name = "manipulate"

    def __init__(self, weight_fn):
        if not callable(weight_fn):
            raise TypeError(f"manipulate: weight_fn must be a function p_i -> w_i, got {weight_fn!r}")
        self.weight_fn = weight_fn

    def emphasis(self, st):
        xp = get_array_module(st.p)
        w = self.weight_fn(st.p)
        w = w.astype(st.p.dtype) if is_array(w) else xp.full(st.p.shape, w, dtype=st.p.dtype)
        if w.shape != st.p.shape:
            raise ValueError(f"{self.name}: weight_fn must return one weight per example, shape "
                             f"{st.p.shape}, got shape {w.shape}")
        total = w.sum()
        return w, w / xp.where(total > 0, total, 1)

    def values(self, st):
        return -st.log_p

    def scale(self, st, w, shares, values):
        """Eq. 7 as released: ``a_i = s_i * 2(1 - p_i) / (2(1 - p_i) + eps)``, so that
        ``a_i u_i = s_i d_i / (2(1 - p_i) + eps)``; shown: ``sum_i s_i (-log p_i)``."""
        two_s = 2 * st.one_minus_p                       # ||d_i||_1 = 2(1 - p_i)
        return shares * (two_s / (two_s + DM_EPS)), (shares * values).sum()


class DM(Manipulate):
    """DM (Eq. 7) with the weight of Eq. 12, ``w_i = exp(beta p_i^lam (1 - p_i))``, its shares
    ``w_i / sum_j w_j`` computed in log space (a softmax of ``beta p_i^lam (1 - p_i)`` over the
    batch), so no ``beta`` can overflow. ``beta = 0``: uniform emphasis (every ``w_i = 1``).

    Two remedies for emphasis collapse (docs/emphasis-collapse.md), both off by default so the
    paper's settings stay as released:

    * ``ess_floor`` (a fraction in [0, 1], 0 = off): temper the weights, ``w_i -> w_i^t``, with the largest
      ``t`` in {0, 1/32, ..., 1} whose effective sample size ``(sum w^t)^2 / (N sum w^(2t))``
      is at least ``ess_floor * N`` (``t = 0`` is uniform emphasis, ESS = N, so one always
      exists). The search runs on the device for all 33 values at once: no host round trip.
    * ``per_class=True``: renormalise within each (given) class, ``s_i = (w_i / sum_{j: y_j = y_i}
      w_j) * n_{y_i} / N``, so every class keeps the share of the emphasis it has in the batch
      and the weights can only re-rank examples *within* a class.

    ``weights`` (see :func:`details`) stay the untempered Eq. 12 values; the shares carry the
    remedies.
    """

    name = "dm"
    TEMPERATURES = 33  # t in {0, 1/32, ..., 1}

    def __init__(self, lam, beta, ess_floor=0.0, per_class=False):
        self.edf, self.edf_params = _edf.resolve("dm", lam=lam, beta=beta)
        self.lam, self.beta = self.edf_params["lam"], self.edf_params["beta"]
        if not 0 <= ess_floor <= 1:
            raise ValueError(f"dm: ess_floor must be a fraction in [0, 1] (0: off), got {ess_floor!r}")
        self.ess_floor, self.per_class = ess_floor, bool(per_class)

    def emphasis(self, st):
        xp = get_array_module(st.log_p)
        log_w = self.edf.log_weight(st.log_p, st.log_1mp, **self.edf_params)
        scaled = log_w - log_w.max()
        if self.ess_floor > 0:
            t = xp.linspace(0.0, 1.0, self.TEMPERATURES, dtype=log_w.dtype)[:, None]
            e = xp.exp(t * scaled)                          # (T, N): w^t up to a constant
            ess = e.sum(axis=1) ** 2 / (st.n * (e * e).sum(axis=1))
            best = (xp.arange(self.TEMPERATURES) * (ess >= self.ess_floor * (1 - 1e-6))).max()
            scaled = scaled * t[best, 0]
        e = xp.exp(scaled)
        if self.per_class:
            class_total = xp.bincount(st.y, weights=e, minlength=st.c)[st.y]
            counts = xp.bincount(st.y, minlength=st.c)[st.y].astype(e.dtype)
            # a class whose weights all underflow keeps its share, split evenly
            within = xp.where(class_total > 0, e / xp.where(class_total > 0, class_total, 1), 1 / counts)
            shares = within * counts / st.n
        else:
            shares = e / e.sum()
        return xp.exp(log_w), shares.astype(log_w.dtype)
