"""Finite-difference checks of hand-written backward rules.

For ``y = f(x)`` and a *random* upstream gradient ``v`` (the cotangent), backward computes
``g = J^T v``. Central differences estimate the same quantity without any backward rule:

* full mode, for small inputs: for every element ``x_k``,
  ``g_k ~ <v, f(x + eps e_k) - f(x - eps e_k)> / (2 eps)``;
* directional mode (a dot-product check), for large inputs: for a random direction ``u``,
  ``<g, u> ~ <v, f(x + eps u) - f(x - eps u)> / (2 eps)``, two forward passes in all.

A random ``v`` matters: with ``v = 1`` (checking ``f(x).sum()``) softmax's true gradient is zero,
and a wrong rule could pass. Everything runs in float64.
"""

from . import backend
from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """A backward rule disagrees with finite differences."""


def _vdot(a, b):
    return float((a * b).sum())


def numerical_gradient(fn, t, v, eps=1e-6):
    """The full-mode estimate of ``J^T v`` for the Tensor ``t``: for every element ``x_k``,
    ``<v, f(x + eps e_k) - f(x - eps e_k)> / (2 eps)``, where ``fn()`` returns ``f`` (reading
    ``t``) and ``v`` is the upstream gradient. ``t.data`` is restored afterwards."""
    xp = backend.get_array_module(t.data)
    original = t.data
    t.data = xp.ascontiguousarray(original)  # perturbed in place through a flat view
    numeric = xp.zeros_like(t.data)
    flat, nflat = t.data.reshape(-1), numeric.reshape(-1)

    def probe():
        with no_grad():
            return _vdot(fn().data, v)

    try:
        for k in range(t.size):
            orig = float(flat[k])
            flat[k] = orig + eps
            up = probe()
            flat[k] = orig - eps
            down = probe()
            flat[k] = orig
            nflat[k] = (up - down) / (2 * eps)
    finally:
        t.data = original
    return numeric


def gradcheck(fn, *inputs, mode="auto", eps=1e-6, atol=1e-6, rtol=1e-4, seed=0, max_full=256):
    """Check ``fn``'s backward on every input that requires grad; raise GradcheckError if wrong.

    ``fn(*inputs)`` must return a Tensor. Inputs must be float64 (integer inputs such as labels
    are passed through). ``mode`` is "full", "directional" or "auto" (full up to ``max_full``
    elements per input). Returns True when the check passes, so ``assert gradcheck(...)`` reads well.
    """
    if mode not in ("auto", "full", "directional"):
        raise ValueError(f"gradcheck: mode must be 'auto', 'full' or 'directional', not {mode!r}")
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for t in checked:
        if t.dtype.kind != "f" or t.dtype.itemsize != 8:
            raise TypeError(f"gradcheck: inputs must be float64 for finite differences, got {t.dtype}")
    xp = backend.get_array_module(checked[0].data)
    gen = backend.rng(seed, backend.device_of(checked[0].data))

    for t in checked:
        t.grad = None
    out = fn(*inputs)
    v = gen.standard_normal(out.shape)
    out.backward(v)

    def probe():
        with no_grad():
            return _vdot(fn(*inputs).data, v)

    for index, t in enumerate(checked):
        analytic = t.grad.data if t.grad is not None else xp.zeros_like(t.data)
        full = mode == "full" or (mode == "auto" and t.size <= max_full)
        if full:
            numeric = numerical_gradient(lambda: fn(*inputs), t, v, eps)
            err = abs(analytic - numeric) - (atol + rtol * abs(numeric))
            worst = int(err.reshape(-1).argmax())
            if float(err.reshape(-1)[worst]) > 0:
                where = tuple(int(i) for i in xp.unravel_index(worst, t.shape)) if t.ndim else ()
                raise GradcheckError(
                    f"gradcheck: input {index} (shape {t.shape}): backward disagrees with finite "
                    f"differences; worst element {where}: analytic {float(analytic.reshape(-1)[worst]):.8g}"
                    f", numeric {float(numeric.reshape(-1)[worst]):.8g}")
        else:
            u = gen.standard_normal(t.shape)
            original = t.data.copy()
            t.data = original + eps * u
            up = probe()
            t.data = original - eps * u
            down = probe()
            t.data = original
            numeric = (up - down) / (2 * eps)
            predicted = _vdot(analytic, u)
            if abs(predicted - numeric) > atol + rtol * abs(numeric):
                raise GradcheckError(
                    f"gradcheck: input {index} (shape {t.shape}): directional derivative from "
                    f"backward {predicted:.10g} != finite differences {numeric:.10g}")
    return True
