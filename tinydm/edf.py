"""Emphasis density functions (EDFs): the example weighting schemes of the paper.

An example whose model gives its (possibly noisy) label the probability ``p_i`` receives a
gradient whose L1 norm is ``w_i = w(p_i)``: its *weight*, how much it moves the model (Section 3).
Every common loss has such a weighting function (Eq. 6); DM lets you choose one (Eq. 7): the
normal, exponential and beta-distribution variants (Eq. 9-11) and the paper's own Eq. 12.
Normalised to unit area over ``[0, 1]`` (Eq. 8) a weighting function becomes an *emphasis density
function*; its maximiser is the *emphasis mode* ``psi`` (Definition 1), and the variance of a
batch's weights is its *emphasis variance* (Definition 2).

==========  ==============================  ===========  =======================  ============
name        w(p)                            equation     parameters               psi
==========  ==============================  ===========  =======================  ============
``cce``     2 (1 - p)                       Eq. 1, 6     -                        0
``mae``     2 p (1 - p)                     Eq. 2, 6     -                        1/2
``mse``     4 p (1 - p)^2                   Eq. 3, 6     -                        1/3
``gce``     2 p^q (1 - p)                   Eq. 4, 6     q = 0.7                  q / (q + 1)
``nd``      exp(-beta p (p - 2 psi))        Eq. 9        psi, beta                psi (beta > 0)
``ed``      exp(beta (1 - p))               Eq. 10       beta                     0 (beta > 0)
``bd``      p^(alpha-1) (1 - p)^(eta-1)     Eq. 11       alpha, eta               (alpha-1)/(alpha+eta-2)
``dm``      exp(beta p^lam (1 - p))         Eq. 12       lam, beta                lam/(lam+1) (beta > 0)
==========  ==============================  ===========  =======================  ============

Each weighting function is written **once**, as ``log w`` in terms of ``log p`` and
``log(1 - p)`` (:func:`log_weight`), with array-module-generic code (NumPy, CuPy, the stand-in):

* the loss nodes (``tinydm/losses.py``) use these very functions and normalise a batch's weights
  in log space, so Eq. 12's ``exp(beta ...)`` cannot overflow for large ``beta`` and Eq. 6's
  products cannot underflow to 0/0 as ``p_i -> 1``;
* products of powers (Eq. 6, 11) become sums, and the exponential-family EDFs (Eq. 9, 10, 12)
  lose their ``exp``.

The rest of this file (the area of Eq. 8, the emphasis mode, the emphasis variance) works on host
NumPy: it is for teaching, tests and figures, not for training.
"""

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from . import backend

LOG2, LOG4 = math.log(2.0), math.log(4.0)
REQUIRED = None  # marks a parameter without a default


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
    mode: Optional[Callable] = None    # (**params) -> psi or None
    log_area: Optional[Callable] = None  # (**params) -> log int_0^1 w dp, or None


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


_CHECKS = {"q": _check_q, "lam": _check_lam, "alpha": _positive("alpha"), "eta": _positive("eta")}

EDFS = {e.name: e for e in (
    EDF("cce", r"$2(1-p_i)$", _log_cce, {}, lambda: 0.0, lambda: 0.0),
    EDF("mae", r"$2p_i(1-p_i)$", _log_mae, {}, lambda: 0.5, lambda: math.log(1 / 3)),
    EDF("mse", r"$4p_i(1-p_i)^2$", _log_mse, {}, lambda: 1 / 3, lambda: math.log(1 / 3)),
    EDF("gce", r"$2p_i^q(1-p_i)$", _log_gce, {"q": 0.7}, lambda q: q / (q + 1),
        lambda q: math.log(2 / ((q + 1) * (q + 2)))),
    EDF("nd", r"$e^{-\beta p_i(p_i-2\psi)}$", _log_nd,
        {"psi": REQUIRED, "beta": REQUIRED}, _mode_nd, _log_area_nd),
    EDF("ed", r"$e^{\beta(1-p_i)}$", _log_ed, {"beta": REQUIRED}, _mode_ed, _log_area_ed),
    EDF("bd", r"$p_i^{\alpha-1}(1-p_i)^{\eta-1}$", _log_bd,
        {"alpha": REQUIRED, "eta": REQUIRED}, _mode_bd, _log_area_bd),
    EDF("dm", r"$e^{\beta p_i^\lambda(1-p_i)}$", _log_dm,
        {"lam": REQUIRED, "beta": REQUIRED}, _mode_dm, _log_area_dm),
)}
NAMES = tuple(EDFS)


def _describe(e):
    if not e.params:
        return f"{e.name!r} takes no parameters"
    return f"{e.name!r} takes " + ", ".join(
        f"{k}" + (" (required)" if v is REQUIRED else f" (default {v})") for k, v in e.params.items())


def resolve(name, **params):
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


def _as_p(p):
    """``p`` as a float array of its own device (host NumPy for lists and numbers)."""
    if backend.is_array(p):
        return p if p.dtype.kind == "f" else p.astype("float64")
    return np.asarray(p, dtype=np.float64)


def _log_weight_at(e, p, params):
    xp = backend.get_array_module(p)
    with np.errstate(divide="ignore", invalid="ignore"):  # log 0 = -inf is meant (w(0) = 0)
        return e.log_weight(xp.log(p), xp.log1p(-p), **params)


def weight(name, p, **params):
    """The weighting function ``w(p)`` of Eq. 6 or 9-12, elementwise (any array, list or number).

    >>> weight("dm", [0.0, 1/3, 1.0], lam=0.5, beta=8)   # Eq. 12: psi = 1/3
    """
    e, params = resolve(name, **params)
    p = _as_p(p)
    return backend.get_array_module(p).exp(_log_weight_at(e, p, params))


def _simpson_log_area(e, params, n=2 ** 12 + 1):
    """``log int_0^1 w dp`` by composite Simpson's rule on ``n`` (odd) equally spaced points.

    Two details make it accurate to ~1e-10 with a few thousand points:
    * the substitution ``p = (1 - cos(pi t)) / 2``, ``dp = (pi/2) sin(pi t) dt``, crowds the points
      near ``p = 0`` and ``p = 1``, where ``p**a`` (``0 < a < 1``: GCE, DM with ``lam < 1``) is not
      smooth: near ``t = 0``, ``p**a ~ t**(2a)`` and the integrand ``~ t**(2a + 1)``;
    * it integrates ``exp(log w - m)`` with ``m = max log w``, so no ``exp`` overflows (Eq. 12 with a
      large ``beta``).
    """
    t = np.linspace(0.0, 1.0, n)
    p = (1 - np.cos(np.pi * t)) / 2
    lw = _log_weight_at(e, p, params)
    if not np.isfinite(lw).all() and np.isposinf(lw).any():
        raise ValueError(f"{e.name}: w is infinite at an end of [0, 1] for {params}; "
                         "integrate it in closed form (method='closed')")
    with np.errstate(divide="ignore"):
        lw = lw + np.log(np.pi / 2 * np.sin(np.pi * t))
    m = lw.max()
    f = np.exp(lw - m)
    simpson = (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum()) / (3 * (n - 1))
    return float(m + np.log(simpson))


def log_area(name, method="auto", **params):
    """``log`` of the normalising constant of Eq. 8, ``int_0^1 w(p) dp``.

    ``method``: ``"closed"`` (the closed form; ValueError where there is none), ``"numeric"``
    (Simpson's rule after a cosine substitution, see :func:`_simpson_log_area`), or ``"auto"`` (closed form
    where there is one). Closed forms: CCE 1; MAE, MSE 1/3; GCE 2/((q+1)(q+2)); ED
    ``(e^beta - 1)/beta``; BD the beta function ``B(alpha, eta)``; ND (``beta > 0``,
    ``0 <= psi <= 1``) with ``erf``; DM for ``lam = 0`` (= ED) and ``lam = 1`` (= ND, psi = 1/2).
    """
    if method not in ("auto", "closed", "numeric"):
        raise ValueError(f"log_area: method must be 'auto', 'closed' or 'numeric', not {method!r}")
    e, params = resolve(name, **params)
    closed = e.log_area(**params) if method != "numeric" and e.log_area else None
    if closed is not None:
        return closed
    if method == "closed":
        raise ValueError(f"weighting function {name!r} has no closed-form area for {params}")
    return _simpson_log_area(e, params)


def area(name, method="auto", **params):
    """``int_0^1 w(p) dp``, the normalising constant of Eq. 8 (see :func:`log_area`); ``inf``
    where it exceeds the float range (Eq. 12 with ``beta`` in the hundreds): use :func:`log_area`."""
    la = log_area(name, method, **params)
    return math.exp(la) if la < 709 else math.inf


def density(name, p, **params):
    """The emphasis density function of Eq. 8: ``h(p) = w(p) / int_0^1 w``, unit area over [0, 1]."""
    e, full = resolve(name, **params)
    p = _as_p(p)
    xp = backend.get_array_module(p)
    return xp.exp(_log_weight_at(e, p, full) - log_area(name, **params))


def _golden_max(f, a, b, tol=1e-10):
    """The maximiser of ``f`` on ``[a, b]`` by golden-section search (``f`` unimodal there)."""
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (a + b) / 2


def emphasis_mode(name, grid=4097, **params):
    """The emphasis mode ``psi = argmax_p w(p)`` over [0, 1] (Definition 1), found numerically.

    ``w`` is evaluated (as ``log w``) on ``grid`` equally spaced points; the best one's
    neighbourhood is then searched by golden section. The result is accurate to ~1e-8, the limit
    for any search that compares values of ``w`` (near its maximum ``w`` is flat to second order,
    so points 1e-8 apart differ by ~1e-16, the float64 resolution). Where ``w`` has several maxima
    (DM with ``beta < 0`` and ``lam > 0``: ``p = 0`` and ``p = 1``; a flat ``w`` when
    ``beta = 0``) the smallest is returned.
    """
    e, params = resolve(name, **params)
    p = np.linspace(0.0, 1.0, grid)

    def f(x):
        return float(_log_weight_at(e, np.asarray(x, dtype=np.float64), params))

    lw = _log_weight_at(e, p, params)
    k = int(np.argmax(lw))
    a, b = p[max(k - 1, 0)], p[min(k + 1, grid - 1)]
    # The search cannot land exactly on an end of its bracket, so the ends compete with it; among
    # equal maxima the smallest p wins.
    candidates = [_golden_max(f, a, b), a, b, p[k]]
    best = max(f(c) for c in candidates)
    return float(min(c for c in candidates if f(c) == best))


def emphasis_mode_closed_form(name, **params):
    """``psi`` in closed form: Eq. 6 (0, 1/2, 1/3, q/(q+1)), Eq. 12 (``lam/(lam+1)`` for
    ``beta > 0``), and for ND, ED and BD the values their shapes give. Raises ValueError where
    the mode is not unique or has no closed form (e.g. DM with ``beta <= 0`` and ``lam > 0``)."""
    e, params = resolve(name, **params)
    psi = e.mode(**params) if e.mode else None
    if psi is None:
        raise ValueError(f"weighting function {name!r} with {params} has no unique emphasis mode "
                         "in closed form (several maxima or a flat w); see emphasis_mode()")
    return psi


def emphasis_variance(weights):
    """Definition 2: ``sigma = E[(w_i - E[w_i])^2]`` over the examples of a batch (population
    variance). ``weights``: a Tensor, an array of any device, or a list. Pass the raw ``w_i``
    (``losses.details(loss)["weights"]``) or their normalised shares, as the question needs; the
    two differ by the factor ``(sum_j w_j)**2``."""
    data = getattr(weights, "data", weights)
    w = backend.to_numpy(data) if backend.is_array(data) else np.asarray(data)
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    if w.size == 0:
        raise ValueError("emphasis_variance: no weights given (an empty batch)")
    return float(np.mean((w - w.mean()) ** 2))
