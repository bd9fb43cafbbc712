"""Losses by name, for configs and command lines: the one place that lists every loss and its
parameters with their defaults (GCE's ``q`` comes from tinydm/edf/functions.py)."""

from typing import Any

from .. import edf as _edf
from .dm import DM
from .eq6 import CCE, GCE, MAE, MSE
from .zoo import RCE, Focal, PHuber, Poly1, Taylor

REQUIRED = _edf.REQUIRED
# name -> (Function class, fixed arguments, parameters with defaults)
REGISTRY: dict[str, tuple[type, dict[str, Any], dict[str, Any]]] = {
    "cce": (CCE, {}, {}),
    "mae": (MAE, {}, {}),
    "mse": (MSE, {}, {}),
    "gce": (GCE, {}, {"q": _edf.GCE_Q}),
    "cce-dn": (CCE, {"dn": True}, {}),
    "mae-dn": (MAE, {"dn": True}, {}),
    "mse-dn": (MSE, {"dn": True}, {}),
    "gce-dn": (GCE, {"dn": True}, {"q": _edf.GCE_Q}),
    "dm": (DM, {}, {"lam": REQUIRED, "beta": REQUIRED, "ess_floor": 0.0, "per_class": False}),
    # the zoo (tinydm/losses/zoo.py): parameters and defaults as their weighting functions'
    **{cls.name: (cls, {}, dict(_edf.EDFS[cls.name].params))
       for cls in (Focal, Poly1, Taylor, RCE, PHuber)},
}
NAMES = tuple(REGISTRY)


def parameters(name: str) -> dict[str, Any]:
    """The parameters of loss ``name`` and their defaults (:data:`REQUIRED`: none)."""
    return dict(REGISTRY[_key(name)][2])


def _key(name):
    key = name.lower().replace("_", "-") if isinstance(name, str) else name
    if key not in REGISTRY:
        raise ValueError(f"unknown loss {name!r}; valid names and parameters: "
                         + "; ".join(signature(n) for n in NAMES))
    return key


def signature(name):
    """``"gce(q=0.7)"``: a loss's name with its parameters, for messages and --help."""
    params = REGISTRY[name][2]
    if not params:
        return f"{name} (no parameters)"
    return f"{name}(" + ", ".join(
        k if v is REQUIRED else f"{k}={v}" for k, v in params.items()) + ")"


def renormalises(name):
    """Whether loss ``name`` renormalises its weights within each batch (DM, Eq. 7, and the
    derivative-normalised variants): the losses whose emphasis can collapse onto the class the
    network favours (docs/emphasis-collapse.md). Unknown names give False."""
    key = name.replace("_", "-").lower()
    return key in REGISTRY and (key == "dm" or key.endswith("-dn"))


class LossFunction:
    """A loss chosen by name with its parameters bound: ``f(logits, labels) -> Tensor``."""

    def __init__(self, name, **params):
        key = _key(name)
        cls, fixed, spec = REGISTRY[key]
        unknown = sorted(set(params) - set(spec))
        missing = [k for k, v in spec.items() if v is REQUIRED and k not in params]
        if unknown or missing:
            problem = (f"unknown parameter(s) {', '.join(unknown)}" if unknown
                       else f"missing parameter(s) {', '.join(missing)}")
            raise ValueError(f"loss {key!r}: {problem}; use {signature(key)}")
        self.name = key
        self.params = {k: params.get(k, v) for k, v in spec.items()}
        self._make = lambda: cls(**fixed, **self.params)
        self._make()  # check the values now (e.g. q out of (0, 1]), not at the first batch

    def __call__(self, logits, labels):
        return self._make()(logits, labels)

    def __repr__(self):
        spec = REGISTRY[self.name][2]
        params = {k: v for k, v in self.params.items()
                  if spec[k] is REQUIRED or v != spec[k]}  # defaults left out
        args = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"losses.get({self.name!r}{', ' if args else ''}{args})"


def get(name: str, **params: Any) -> LossFunction:
    """The loss called ``name`` (cce, mae, mse, gce, cce-dn, mae-dn, mse-dn, gce-dn, dm, and the
    zoo: focal, poly1, taylor, rce, phuber; ``_`` may stand for ``-``) with its parameters bound,
    as a callable ``f(logits, labels)``.

    >>> f = get("dm", lam=0.5, beta=8);  loss = f(logits, labels)

    Unknown names or parameters, missing ones (``dm`` needs ``lam`` and ``beta``) and values out
    of range raise ValueError listing what is valid. A beta warm-up is a schedule of the
    training loop: :class:`tinydm.train.schedules.BetaWarmup`.
    """
    return LossFunction(name, **params)
