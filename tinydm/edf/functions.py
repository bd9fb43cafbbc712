"""The weighting functions themselves, as ``log w`` of ``log p`` and ``log(1 - p)`` (any device),
their closed-form modes and areas, and the registry that names them (:data:`EDFS`)."""

import math
import numbers
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import backend

LOG2, LOG4 = math.log(2.0), math.log(4.0)
REQUIRED = None  # marks a parameter without a default
GCE_Q = 0.7  # GCE's q in all of the paper's experiments (Section 4), the one default of it


# ----------------------------------------------------------------------------------------------
# The weighting functions, as log w(p). Arguments: log_p = log p, log_1mp = log(1 - p), arrays of
# any device (the loss nodes compute both stably from the logits).
# ----------------------------------------------------------------------------------------------
def _times(c, log_x):
    """``c * log_x`` with ``0 * log 0 = 0``, i.e. ``x**0 = 1`` even at ``x = 0`` (``lam = 0``)."""
    if c == 0:
        return backend.get_array_module(log_x).zeros_like(log_x)
    return c * log_x


def _log_cce(log_p, log_1mp):
    return LOG2 + log_1mp                              # w = 2 (1 - p)


def _log_mae(log_p, log_1mp):
    return LOG2 + log_p + log_1mp                      # w = 2 p (1 - p)


def _log_mse(log_p, log_1mp):
    return LOG4 + log_p + 2 * log_1mp                  # w = 4 p (1 - p)^2


def _log_gce(log_p, log_1mp, q):
    return LOG2 + q * log_p + log_1mp                  # w = 2 p^q (1 - p)


def _log_nd(log_p, log_1mp, psi, beta):
    p = backend.get_array_module(log_p).exp(log_p)
    return -beta * p * (p - 2 * psi)                   # w = exp(-beta p (p - 2 psi))


def _log_ed(log_p, log_1mp, beta):
    return beta * backend.get_array_module(log_1mp).exp(log_1mp)   # w = exp(beta (1 - p))


def _log_bd(log_p, log_1mp, alpha, eta):
    return _times(alpha - 1, log_p) + _times(eta - 1, log_1mp)   # w = p^(alpha-1) (1-p)^(eta-1)


def _log_dm(log_p, log_1mp, lam, beta):
    """Eq. 12, ``w = exp(beta * p**lam * (1 - p))``: the DM weight used by ``losses.dm``."""
    xp = backend.get_array_module(log_p)
    return beta * xp.exp(_times(lam, log_p)) * xp.exp(log_1mp)


# The zoo: losses of p_i alone from the literature (tinydm/losses/zoo.py). Any such loss L(p_i) has
# dL/dz_i = L'(p_i) dp_i/dz_i = -L'(p_i) p_i d_i (Eq. 16), the CCE direction, so its weight is
# w(p) = -L'(p) p * 2(1 - p) (the L1 norm of d_i is 2(1 - p), Eq. 5-6).
def _log_focal(log_p, log_1mp, gamma):
    """Focal loss (Lin et al. 2017), ``L = -(1-p)^gamma log p``:
    ``-L' p = (1-p)^(gamma-1) ((1-p) - gamma p log p)``, so
    ``w = 2 (1-p)^(gamma+1) (1 + gamma p r)`` with ``r = -log p / (1-p)`` (>= 1).

    ``r`` is taken from ``log p`` where ``p < 1/2`` and as ``-log1p(-(1-p)) / (1-p)`` above, where
    ``log p`` has rounded to 0 long before ``1 - p`` underflows; ``p r -> 0`` as ``p -> 0`` and
    ``r -> 1`` as ``p -> 1``. So ``log w`` stays finite wherever ``log p`` and ``log(1-p)`` are.
    """
    xp = backend.get_array_module(log_p)
    p, q = xp.exp(log_p), xp.exp(log_1mp)
    near_1 = p >= 0.5
    q_safe = xp.where(near_1 & (q > 0), q, 0.5)     # the branch not taken gets a harmless 1/2
    r_near_1 = xp.where(q > 0, -xp.log1p(-q_safe) / q_safe, 1.0)
    p_r_far = xp.where(p > 0, -p * log_p, 0) * xp.exp(-xp.maximum(log_1mp, -LOG2))
    p_r = xp.where(near_1, p * r_near_1, p_r_far)
    return LOG2 + (gamma + 1) * log_1mp + xp.log1p(gamma * p_r)


def _log_poly1(log_p, log_1mp, epsilon):
    """Poly-1 (Leng et al. 2022), ``L = -log p + epsilon (1 - p)``: ``-L' p = 1 + epsilon p``, so
    ``w = 2 (1-p) (1 + epsilon p)``. For ``epsilon < 0`` the factor is written
    ``(1 + epsilon) + (-epsilon)(1 - p)``, a sum of two terms >= 0 added in log space, exact as
    ``p -> 1``."""
    xp = backend.get_array_module(log_p)
    if epsilon >= 0:
        factor = xp.log1p(epsilon * xp.exp(log_p))
    elif epsilon == -1:
        factor = log_1mp                                # 1 - p: w = 2 (1-p)^2
    else:
        factor = xp.logaddexp(math.log1p(epsilon), math.log(-epsilon) + log_1mp)
    return LOG2 + log_1mp + factor


def _log_taylor(log_p, log_1mp, t):
    """Taylor cross entropy of order t (Feng et al. 2020), ``L = sum_{k=1}^t (1-p)^k / k``, the
    first t terms of ``-log p = -log(1 - (1-p))``: ``-L' p = p sum_{k<t} (1-p)^k = 1 - (1-p)^t``,
    so ``w = 2 (1-p) (1 - (1-p)^t)`` (t = 1: MAE; t -> inf: CCE), computed as
    ``2 (1-p) p sum_{k<t} (1-p)^k``: no ``1 - (1-p)^t`` to cancel, a sum >= 1 to log."""
    xp = backend.get_array_module(log_p)
    q = xp.exp(log_1mp)
    return LOG2 + log_1mp + log_p + xp.log(sum(q ** k for k in range(int(t))))


def _log_rce(log_p, log_1mp, A):
    """Reverse CE, the RCE half of symmetric CE (Wang et al. 2019): with ``log 0`` clipped to
    ``A``, ``RCE = -sum_j p_j log e_ij = -A (1 - p)``: ``-L' p = -A p``, ``w = -2A p (1-p)``,
    MAE scaled by ``-A``."""
    return math.log(-2 * A) + log_p + log_1mp


def _log_phuber(log_p, log_1mp, tau):
    """Partially Huberised CE (Menon et al. 2020): ``L = -tau p + log tau + 1`` for
    ``p <= 1/tau``, ``-log p`` above (the tangent of ``-log p`` at ``1/tau``, so L' is continuous):
    ``-L' p = tau p`` below, ``1`` above; ``w = 2 (1-p) min(tau p, 1)``."""
    xp = backend.get_array_module(log_p)
    return LOG2 + log_1mp + xp.minimum(math.log(tau) + log_p, 0)


# ----------------------------------------------------------------------------------------------
# Closed forms: the emphasis mode (Definition 1) and the area of Eq. 8, where there is one.
# Each returns None where it has no closed form (the numerical routines below then apply).
# ----------------------------------------------------------------------------------------------
def _mode_dm(lam, beta):
    # d/dp [p^lam (1 - p)] = p^(lam-1) (lam (1 - p) - p) = 0  =>  p = lam / (lam + 1), a maximum of
    # w only when beta > 0. With beta < 0 the weight is largest where p^lam (1-p) is smallest:
    # p = 1 (and also p = 0 when lam > 0: two modes).
    if beta > 0:
        return lam / (lam + 1)
    if beta < 0 and lam == 0:
        return 1.0
    return None


def _mode_nd(psi, beta):
    # -beta p (p - 2 psi) = -beta (p - psi)^2 + beta psi^2: a Gaussian bump at psi when beta > 0.
    if beta > 0:
        return min(max(psi, 0.0), 1.0)
    if beta < 0 and psi != 0.5:
        return 1.0 if psi < 0.5 else 0.0  # the end of [0, 1] farther from psi
    return None


def _mode_ed(beta):
    return 0.0 if beta > 0 else 1.0 if beta < 0 else None


def _mode_bd(alpha, eta):
    # d/dp log w = (alpha - 1)/p - (eta - 1)/(1 - p) = 0  =>  p = (alpha - 1)/(alpha + eta - 2).
    if alpha < 1 and eta < 1 or alpha == eta == 1:
        return None  # two infinite ends, or a flat line
    if alpha < 1 or eta < 1:
        return 0.0 if alpha < 1 else 1.0  # an infinite end
    return (alpha - 1) / (alpha + eta - 2)


def _log_area_ed(beta):
    # int_0^1 exp(beta (1 - p)) dp = (e^beta - 1) / beta, written without overflow for large |beta|.
    if beta == 0:
        return 0.0
    if beta > 0:
        return beta + math.log(-math.expm1(-beta)) - math.log(beta)
    return math.log(-math.expm1(beta)) - math.log(-beta)


def _log_area_bd(alpha, eta):
    # int_0^1 p^(alpha-1) (1-p)^(eta-1) dp = B(alpha, eta) = G(alpha) G(eta) / G(alpha + eta).
    return math.lgamma(alpha) + math.lgamma(eta) - math.lgamma(alpha + eta)


def _log_area_nd(psi, beta):
    # int_0^1 exp(-beta (p - psi)^2 + beta psi^2) dp
    #   = e^(beta psi^2) sqrt(pi / beta) / 2 * (erf(sqrt(beta) (1 - psi)) + erf(sqrt(beta) psi)).
    # Used for beta > 0 and psi in [0, 1], where both erf terms are >= 0 (no cancellation).
    if beta == 0:
        return 0.0
    if beta < 0 or not 0 <= psi <= 1:
        return None
    r = math.sqrt(beta)
    return beta * psi ** 2 + 0.5 * math.log(math.pi / beta) - LOG2 + math.log(
        math.erf(r * (1 - psi)) + math.erf(r * psi))


def _log_area_dm(lam, beta):
    # Eq. 12's design reasons (1) and (2): lam = 0 is the exponential variant, lam = 1 the normal
    # variant with psi = 1/2 (exp(beta p (1 - p)) = exp(-beta p (p - 1))).
    if lam == 0:
        return _log_area_ed(beta)
    if lam == 1:
        return _log_area_nd(0.5, beta)
    return None


def _mode_poly1(epsilon):
    # d/dp [(1-p)(1 + epsilon p)] = (epsilon - 1) - 2 epsilon p: an interior maximum at
    # (epsilon - 1) / (2 epsilon) when epsilon > 1; otherwise w decreases from p = 0.
    return (epsilon - 1) / (2 * epsilon) if epsilon > 1 else 0.0


def _mode_taylor(t):
    # With r = 1 - p: d/dr [r (1 - r^t)] = 1 - (t + 1) r^t = 0  =>  r = (t + 1)^(-1/t).
    return 1 - (t + 1) ** (-1 / t)


def _mode_phuber(tau):
    # 2 tau p (1 - p) rises to p = min(1/2, 1/tau), then 2(1 - p) (above 1/tau) falls; at
    # tau <= 2 the peak 1/2 of the first piece lies below the kink.
    return min(0.5, 1 / tau)


def _log_area_phuber(tau):
    # int_0^(1/tau) 2 tau p (1-p) dp + int_(1/tau)^1 2 (1-p) dp = 1 - 1/tau + 1/(3 tau^2).
    return math.log(1 - 1 / tau + 1 / (3 * tau ** 2))


# ----------------------------------------------------------------------------------------------
# The registry
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EDF:
    """One weighting function: its log form, parameters and closed forms (None where none)."""
    name: str
    formula: str                       # w(p) in matplotlib mathtext, for legends
    log_weight: Callable               # (log_p, log_1mp, **params) -> log w
    params: dict                       # parameter -> default (REQUIRED: no default)
    mode: Callable | None = None    # (**params) -> psi or None
    log_area: Callable | None = None  # (**params) -> log int_0^1 w dp, or None


def _positive(name):
    def check(v):
        if not v > 0:
            raise ValueError(f"{name} must be > 0, got {v}")
    return check


def _check_q(q):
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1] (Eq. 4), got {q}")


def _check_lam(lam):
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0 (Eq. 12), got {lam}")


def _check_order(t):
    if not (t >= 1 and t == int(t)):
        raise ValueError(f"t (the Taylor order) must be an integer >= 1, got {t}")


def _at_least(name, low):
    def check(v):
        if not v >= low:
            raise ValueError(f"{name} must be >= {low}, got {v}")
    return check


def _check_log_zero(A):
    if not A < 0:
        raise ValueError(f"A (log 0 clipped, as in SCE) must be < 0, got {A}")


_CHECKS = {"q": _check_q, "lam": _check_lam, "alpha": _positive("alpha"), "eta": _positive("eta"),
           "gamma": _at_least("gamma", 0), "epsilon": _at_least("epsilon", -1), "t": _check_order,
           "A": _check_log_zero, "tau": _at_least("tau", 1)}

EDFS = {e.name: e for e in (
    EDF("cce", r"$2(1-p_i)$", _log_cce, {}, lambda: 0.0, lambda: 0.0),
    EDF("mae", r"$2p_i(1-p_i)$", _log_mae, {}, lambda: 0.5, lambda: math.log(1 / 3)),
    EDF("mse", r"$4p_i(1-p_i)^2$", _log_mse, {}, lambda: 1 / 3, lambda: math.log(1 / 3)),
    EDF("gce", r"$2p_i^q(1-p_i)$", _log_gce, {"q": GCE_Q}, lambda q: q / (q + 1),
        lambda q: math.log(2 / ((q + 1) * (q + 2)))),
    EDF("nd", r"$e^{-\beta p_i(p_i-2\psi)}$", _log_nd,
        {"psi": REQUIRED, "beta": REQUIRED}, _mode_nd, _log_area_nd),
    EDF("ed", r"$e^{\beta(1-p_i)}$", _log_ed, {"beta": REQUIRED}, _mode_ed, _log_area_ed),
    EDF("bd", r"$p_i^{\alpha-1}(1-p_i)^{\eta-1}$", _log_bd,
        {"alpha": REQUIRED, "eta": REQUIRED}, _mode_bd, _log_area_bd),
    EDF("dm", r"$e^{\beta p_i^\lambda(1-p_i)}$", _log_dm,
        {"lam": REQUIRED, "beta": REQUIRED}, _mode_dm, _log_area_dm),
    # the zoo (tinydm/losses/zoo.py); focal's mode solves gamma log p ((gamma+1) p - 1) =
    # (2 gamma + 1)(1 - p), which has no closed form, and its area needs the digamma function
    EDF("focal", r"$2(1-p_i)^\gamma(1-p_i-\gamma p_i\log p_i)$", _log_focal, {"gamma": 2.0},
        lambda gamma: 0.0 if gamma == 0 else None),
    EDF("poly1", r"$2(1-p_i)(1+\epsilon p_i)$", _log_poly1, {"epsilon": 1.0}, _mode_poly1,
        lambda epsilon: math.log(1 + epsilon / 3)),
    EDF("taylor", r"$2(1-p_i)(1-(1-p_i)^t)$", _log_taylor, {"t": 2.0}, _mode_taylor,
        lambda t: math.log(t / (t + 2))),
    EDF("rce", r"$-2Ap_i(1-p_i)$", _log_rce, {"A": -4.0}, lambda A: 0.5,
        lambda A: math.log(-A / 3)),
    EDF("phuber", r"$2(1-p_i)\min(\tau p_i, 1)$", _log_phuber, {"tau": 10.0}, _mode_phuber,
        _log_area_phuber),
)}
NAMES = tuple(EDFS)


def _describe(e):
    if not e.params:
        return f"{e.name!r} takes no parameters"
    return f"{e.name!r} takes " + ", ".join(
        f"{k}" + (" (required)" if v is REQUIRED else f" (default {v})") for k, v in e.params.items())


def resolve(name: str, **params: Any) -> tuple[EDF, dict[str, Any]]:
    """The :class:`EDF` called ``name`` and its full, checked parameters (defaults filled in).

    Raises ValueError for an unknown name (listing the valid ones), an unknown or missing
    parameter (listing the valid ones), or a value out of range.
    """
    e = EDFS.get(name)
    if e is None:
        raise ValueError(f"unknown weighting function {name!r}; choose one of {', '.join(NAMES)}")
    unknown = sorted(set(params) - set(e.params))
    if unknown:
        raise ValueError(f"weighting function {name!r}: unknown parameter(s) {', '.join(unknown)}; "
                         f"{_describe(e)}")
    full = {**e.params, **params}
    missing = [k for k, v in full.items() if v is REQUIRED]
    if missing:
        raise ValueError(f"weighting function {name!r}: missing parameter(s) {', '.join(missing)}; "
                         f"{_describe(e)}")
    for k, v in full.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"weighting function {name!r}: {k} must be a finite number, got {v!r}")
        if k in _CHECKS:
            try:
                _CHECKS[k](v)
            except ValueError as err:
                raise ValueError(f"weighting function {name!r}: {err}") from None
        full[k] = float(v)
    return e, full


# ----------------------------------------------------------------------------------------------
# Public functions
# ----------------------------------------------------------------------------------------------
def log_weight(name, log_p, log_1mp, **params):
    """``log w(p)`` from ``log p`` and ``log(1 - p)`` (arrays of any device): the form the loss
    nodes use. ``log_weight("dm", lp, l1mp, lam=0.5, beta=8)`` is Eq. 12."""
    e, params = resolve(name, **params)
    return e.log_weight(log_p, log_1mp, **params)


def as_p(p):
    """``p`` as a float array of its own device (host NumPy for lists and numbers)."""
    if backend.is_array(p):
        return p if p.dtype.kind == "f" else p.astype("float64")
    return np.asarray(p, dtype=np.float64)


def log_weight_at(e, p, params):
    xp = backend.get_array_module(p)
    with np.errstate(divide="ignore", invalid="ignore"):  # log 0 = -inf is meant (w(0) = 0)
        return e.log_weight(xp.log(p), xp.log1p(-p), **params)


def weight(name: str, p: Any, **params: Any) -> Any:
    """The weighting function ``w(p)`` of Eq. 6 or 9-12, elementwise (any array, list or number).

    >>> weight("dm", [0.0, 1/3, 1.0], lam=0.5, beta=8)   # Eq. 12: psi = 1/3
    """
    e, params = resolve(name, **params)
    p = as_p(p)
    return backend.get_array_module(p).exp(log_weight_at(e, p, params))
