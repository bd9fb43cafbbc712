"""The loss zoo: losses from the literature that are functions of ``p_i`` alone.

Any loss ``L(p_i)`` moves the logits along the CCE direction: by the softmax Jacobian (Eq. 16),
``dL/dz_i = L'(p_i) p_i (e_i - p) = -L'(p_i) p_i d_i``, so its weight (the L1 norm, Eq. 5-6) is

    w(p) = -L'(p) p * 2 (1 - p),

and its backward is the shared ``a_i u_i`` with ``a_i = w_i / N`` (tinydm/losses/node.py), like
Eq. 1-4. Each class below states ``L``, ``-L' p`` and ``w``; the weights themselves are written
once, as ``log w``, in tinydm/edf/functions.py (``edf.weight("focal", p, gamma=2)``), so the same
scheme is also DM with that EDF: ``losses.manipulate(z, y, lambda p: edf.weight("focal", p))``
is the DN variant (``Focal(dn=True)``) up to Eq. 7's guard ``1e-6``.

Label smoothing is not in the zoo: its loss depends on every class's probability, and its
gradient leaves the CCE direction (docs/derivations.md, section 5).
"""

import math

from .. import edf as _edf
from ..backend import get_array_module
from .eq6 import Eq6Loss


class Focal(Eq6Loss):
    """Focal loss (Lin et al. 2017): ``L_i = -(1 - p_i)^gamma log p_i``.

    ``L' = gamma (1-p)^(gamma-1) log p - (1-p)^gamma / p``, so
    ``-L' p = (1-p)^(gamma-1) ((1-p) - gamma p log p)`` and
    ``w = 2 (1-p)^gamma ((1-p) - gamma p log p)``; ``gamma = 0`` is CCE. The emphasis mode is
    near 0 (0.058 for ``gamma = 2``) with no closed form: ``edf.emphasis_mode("focal")``.
    """

    name = "focal"

    def __init__(self, gamma=_edf.EDFS["focal"].params["gamma"], dn=False):
        super().__init__(dn=dn, gamma=gamma)
        self.gamma = self.edf_params["gamma"]

    def values(self, st):
        xp = get_array_module(st.log_p)
        modulator = xp.exp(self.gamma * st.log_1mp) if self.gamma else 1.0   # (1-p)^0 = 1 at p = 1
        return -modulator * st.log_p


class Poly1(Eq6Loss):
    """Poly-1 (Leng et al. 2022): ``L_i = -log p_i + epsilon (1 - p_i)``, CCE plus the first
    polynomial term. ``-L' p = 1 + epsilon p``, ``w = 2 (1-p) (1 + epsilon p)``;
    ``psi = (epsilon - 1) / (2 epsilon)`` for ``epsilon > 1``, else 0."""

    name = "poly1"

    def __init__(self, epsilon=_edf.EDFS["poly1"].params["epsilon"], dn=False):
        super().__init__(dn=dn, epsilon=epsilon)
        self.epsilon = self.edf_params["epsilon"]

    def values(self, st):
        return -st.log_p + self.epsilon * st.one_minus_p


class Taylor(Eq6Loss):
    """Taylor cross entropy of order ``t`` (Feng et al. 2020): ``L_i = sum_{k=1}^t (1-p_i)^k / k``.

    ``-L' p = p sum_{k=0}^{t-1} (1-p)^k = 1 - (1-p)^t``, ``w = 2 (1-p) (1 - (1-p)^t)``;
    ``psi = 1 - (t + 1)^(-1/t)`` (t = 1: MAE, psi = 1/2; t -> inf: CCE, psi -> 0).
    """

    name = "taylor"

    def __init__(self, t=_edf.EDFS["taylor"].params["t"], dn=False):
        super().__init__(dn=dn, t=t)
        self.t = int(self.edf_params["t"])

    def values(self, st):
        return sum(st.one_minus_p ** k / k for k in range(1, self.t + 1))


class RCE(Eq6Loss):
    """Reverse cross entropy, the RCE half of symmetric CE (Wang et al. 2019):
    ``L_i = -sum_j p_ij log e_ij`` with ``log 0`` clipped to ``A`` (SCE's -4), i.e.
    ``L_i = -A (1 - p_i)``. ``-L' p = -A p``, ``w = -2A p (1-p)``, ``psi = 1/2``."""

    name = "rce"

    def __init__(self, A=_edf.EDFS["rce"].params["A"], dn=False):
        super().__init__(dn=dn, A=A)
        self.A = self.edf_params["A"]

    def values(self, st):
        return -self.A * st.one_minus_p


class PHuber(Eq6Loss):
    """Partially Huberised CE (Menon et al. 2020): ``-log p_i`` above ``p_i = 1/tau`` and its
    tangent there, ``-tau p_i + log tau + 1``, below (a gradient-clipped CCE).

    ``-L' p = min(tau p, 1)``, ``w = 2 (1-p) min(tau p, 1)``; ``psi = min(1/2, 1/tau)``.
    """

    name = "phuber"

    def __init__(self, tau=_edf.EDFS["phuber"].params["tau"], dn=False):
        super().__init__(dn=dn, tau=tau)
        self.tau = self.edf_params["tau"]

    def values(self, st):
        log_tau = math.log(self.tau)
        return get_array_module(st.log_p).where(st.log_p <= -log_tau,
                                                1 + log_tau - self.tau * st.p, -st.log_p)
