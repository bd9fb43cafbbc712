"""The emphasis density function of a weighting function (Eq. 8: unit area over [0, 1]), its
emphasis mode (Definition 1) and the emphasis variance of a batch (Definition 2), on host NumPy:
for teaching, tests and figures, not for training."""

import math
from typing import Any

import numpy as np

from .. import backend
from .functions import as_p, log_weight_at, resolve


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
    lw = log_weight_at(e, p, params)
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


def area(name: str, method: str = "auto", **params: Any) -> float:
    """``int_0^1 w(p) dp``, the normalising constant of Eq. 8 (see :func:`log_area`); ``inf``
    where it exceeds the float range (Eq. 12 with ``beta`` in the hundreds): use :func:`log_area`."""
    la = log_area(name, method, **params)
    return math.exp(la) if la < 709 else math.inf


def density(name: str, p: Any, **params: Any) -> Any:
    """The emphasis density function of Eq. 8: ``h(p) = w(p) / int_0^1 w``, unit area over [0, 1]."""
    e, full = resolve(name, **params)
    p = as_p(p)
    xp = backend.get_array_module(p)
    return xp.exp(log_weight_at(e, p, full) - log_area(name, **params))


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


def emphasis_mode(name: str, grid: int = 4097, **params: Any) -> float:
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
        return float(log_weight_at(e, np.asarray(x, dtype=np.float64), params))

    lw = log_weight_at(e, p, params)
    k = int(np.argmax(lw))
    a, b = p[max(k - 1, 0)], p[min(k + 1, grid - 1)]
    # The search cannot land exactly on an end of its bracket, so the ends compete with it; among
    # equal maxima the smallest p wins.
    candidates = [_golden_max(f, a, b), a, b, p[k]]
    best = max(f(c) for c in candidates)
    return float(min(c for c in candidates if f(c) == best))


def emphasis_mode_closed_form(name, **params):
    """``psi`` in closed form: Eq. 6 (0, 1/2, 1/3, q/(q+1)), Eq. 12 (``lam/(lam+1)`` for
    ``beta > 0``), for ND, ED and BD the values their shapes give, and the zoo's (all but
    focal's). Raises ValueError where
    the mode is not unique or has no closed form (e.g. DM with ``beta <= 0`` and ``lam > 0``)."""
    e, params = resolve(name, **params)
    psi = e.mode(**params) if e.mode else None
    if psi is None:
        raise ValueError(f"weighting function {name!r} with {params} has no unique emphasis mode "
                         "in closed form (several maxima, a flat w, or a transcendental equation "
                         "such as focal's); see emphasis_mode()")
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
