"""Loss nodes on logits: CCE, MAE, MSE, GCE (Eq. 1-4), their DN variants, and DM (Eq. 7, 12).

Every loss here takes logits ``z`` of shape (N, C) and integer labels ``y`` of shape (N,), returns
a scalar Tensor, and its backward writes ``dL/dz`` itself (derivations: docs/derivations.md).

One fact organises them all (Eq. 5): with ``p = softmax(z_i)``, ``p_i = p[y_i]`` and ``e_i`` the
one-hot vector of ``y_i``, the gradient of each of these losses w.r.t. ``z_i`` points along the
CCE direction ``d_i = p - e_i``, whose L1 norm is ``2(1 - p_i)``; the losses differ only in its
length. So every node computes, once, the unit direction

    u_i = d_i / ||d_i||_1 :   u_ij = p_ij / (2 (1 - p_i))  (j != y_i),   u_iy_i = -1/2,

and each example's weight ``w_i`` (a weighting function of ``p_i``, tinydm/edf.py); its backward
returns ``gy * a_i * u_i``, where ``a_i = ||dL/dz_i||_1`` is set by the REFERENCE.md rules:

==============================  ====================================================  ==============
loss                            a_i = L1 norm of example i's gradient                  value shown
==============================  ====================================================  ==============
CCE, MAE, MSE, GCE (Eq. 1-4)    w_i / N, with w_i the loss's Eq. 6 weight (batch mean)  mean_i L_i
CCE-DN, ..., GCE-DN             w_i / sum_j w_j  (DN: the batch's total is one unit)    mean_i L_i
DM, manipulate (Eq. 7)          (w_i / sum_j w_j) * 2(1-p_i) / (2(1-p_i) + 1e-6)        sum_i w_i/W (-log p_i)
==============================  ====================================================  ==============

* Plain losses: ``a_i u_i`` is exactly the per-example gradient of Eq. 1-4 divided by N, so their
  backward is the gradient of their value (checked by gradcheck).
* DN divides each example's gradient ``g_i`` by ``sum_j ||g_j||_1``; as ``||g_j||_1 = w_j``
  (Eq. 6) that is ``(w_i / sum_j w_j) u_i``. Equivalently it is ``N / sum_j w_j`` times the plain
  loss's gradient, with that factor held constant: the value shown is the plain loss's.
* DM is the released layer's rule, ``(w_i / sum_j w_j) d_i / (2(1 - p_i) + 1e-6)``, whose L1 norm
  is the ``a_i`` above (~ ``w_i / sum_j w_j`` until ``1 - p_i`` falls below ~1e-6). It has no
  elementary loss (Section 3.2.2); its value is only for display: the ``w``-weighted CCE, as the
  released layer shows. DN of an Eq. 6 weight and DM of the same weight share everything but
  that ``1e-6`` (``manipulate(z, y, lambda p: 2 * (1 - p))`` is CCE-DN up to it).
* ``w_i`` and the normaliser are constants in backward: no gradient flows through the weights.

Numerics. ``log p_i`` and ``log(1 - p_i)`` come from log-sum-exps of the logits (``1 - p_i`` as
the softmax mass of the other classes, never as ``1 - p_i``, which rounds to 0), ``u_i`` is a
softmax over the other classes, and the batch shares ``w_i / sum_j w_j`` are a softmax of
``log w_i`` over the batch. So nothing overflows or divides 0 by 0: logits of +-1e4 in float32,
``p_i -> 1``, ``beta < 0`` or large, ``lam = 0``, a batch of one are all finite.

Per-example details, without a second forward pass: ``details(loss)`` returns ``p_i``, the
weights ``w_i`` and the shares ``w_i / sum_j w_j`` of the batch that made ``loss``.
"""

from . import edf as _edf
from .backend import device_of, get_array_module, is_array
from .tensor import Function, Tensor

DM_EPS = 1e-6  # the released layer's guard in d_i / (2(1 - p_i) + DM_EPS)


# ----------------------------------------------------------------------------------------------
# What every loss needs from the logits
# ----------------------------------------------------------------------------------------------
class SoftmaxStats:
    """The softmax quantities of a batch, computed once, stably.

    ``log_p`` = log p_i, ``log_1mp`` = log(1 - p_i) (both (N,)), ``p`` = p_i, ``one_minus_p``,
    and ``u`` (N, C), the unit-L1 CCE direction ``(p - e_i) / (2(1 - p_i))``.
    """

    def __init__(self, z, y):
        xp = get_array_module(z)
        n, c = z.shape
        is_label = xp.arange(c)[None, :] == y[:, None]
        # log p_i = z_iy - logsumexp(z_i), the log-sum-exp shifted by the row max
        m = z.max(axis=1, keepdims=True)
        lse = m[:, 0] + xp.log(xp.exp(z - m).sum(axis=1))
        self.log_p = z[xp.arange(n), y] - lse
        # 1 - p_i is the mass of the other classes: the same log-sum-exp without the label
        others = xp.where(is_label, -xp.inf, z)
        m2 = others.max(axis=1, keepdims=True)
        e2 = xp.exp(others - m2)
        s2 = e2.sum(axis=1)
        self.log_1mp = m2[:, 0] + xp.log(s2) - lse
        # u_ij = p_ij / (2 (1 - p_i)) = (softmax over the other classes)_j / 2;  u_iy = -1/2
        self.u = xp.where(is_label, -0.5, e2 / (2 * s2[:, None]))
        self.p, self.one_minus_p = xp.exp(self.log_p), xp.exp(self.log_1mp)
        self.n, self.c, self.y = n, c, y


def _check_inputs(name, z, y):
    """Clear errors, naming the loss, for logits/labels of the wrong shape, dtype, device or range."""
    if z.ndim != 2:
        raise ValueError(f"{name}: logits must have shape (N, C), got shape {z.shape}")
    n, c = z.shape
    if z.dtype.kind != "f":
        raise TypeError(f"{name}: logits must be floating point, got dtype {z.dtype}")
    if n == 0 or c < 2:
        raise ValueError(f"{name}: logits of shape {z.shape}: need N >= 1 examples and C >= 2 classes")
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name}: labels must be integer class indices, got dtype {y.dtype} "
                        f"(shape {y.shape})")
    if y.shape != (n,):
        raise ValueError(f"{name}: labels must have shape (N,) = ({n},) to match logits {z.shape}, "
                         f"got shape {y.shape}")
    if device_of(y) != device_of(z):
        raise ValueError(f"{name}: labels are on device {device_of(y)!r}, logits on "
                         f"{device_of(z)!r}; create both on one device")
    lo, hi = int(y.min()), int(y.max())  # one small device-to-host copy per batch
    if lo < 0 or hi >= c:
        raise ValueError(f"{name}: labels must be in [0, {c - 1}] for logits {z.shape}, "
                         f"got values in [{lo}, {hi}]")


def _edf_weights(e, params, st):
    """``w_i`` and ``w_i / sum_j w_j`` for a weighting function of tinydm/edf.py, the shares
    computed from ``log w`` as a softmax over the batch (no overflow, no 0/0)."""
    xp = get_array_module(st.log_p)
    log_w = e.log_weight(st.log_p, st.log_1mp, **params)
    shifted = xp.exp(log_w - log_w.max())
    return xp.exp(log_w), shifted / shifted.sum()


# ----------------------------------------------------------------------------------------------
# The loss node
# ----------------------------------------------------------------------------------------------
class SoftmaxLoss(Function):
    """A loss on logits whose backward scales the unit CCE direction per example.

    Subclasses say two things: ``emphasis(st)`` -> (``w_i``, ``w_i / sum_j w_j``) and
    ``values(st)`` -> each example's displayed loss; ``reduction`` ("mean", "dn" or "dm") picks
    the row of the table in the module docstring. forward keeps ``p_i``, ``weights`` and
    ``normalised_weights`` (device arrays) on the node and on the output (see :func:`details`).
    """

    name = "loss"
    reduction = "mean"

    def __call__(self, logits, labels):
        loss = super().__call__(logits, labels)
        loss._loss_details = {"p_i": Tensor(self.p_i), "weights": Tensor(self.weights),
                              "normalised_weights": Tensor(self.normalised_weights)}
        return loss

    def forward(self, z, y):
        _check_inputs(self.name, z, y)
        st = SoftmaxStats(z, y)
        w, shares = self.emphasis(st)
        values = self.values(st)
        if self.reduction == "mean":    # Eq. 1-4 averaged: ||g_i||_1 = w_i / N
            a, value = w / st.n, values.mean()
        elif self.reduction == "dn":    # DN: ||g_i||_1 = w_i / sum_j w_j
            a, value = shares, values.mean()
        else:                           # DM (Eq. 7 as released): (w_i/W) d_i / (2(1-p_i) + eps)
            two_s = 2 * st.one_minus_p
            a, value = shares * (two_s / (two_s + DM_EPS)), (shares * values).sum()
        self.save_for_backward(a[:, None] * st.u)
        self.p_i, self.weights, self.normalised_weights = st.p, w, shares
        return value

    def backward(self, gy):
        (g,) = self.saved
        return g * gy, None  # gy: the upstream (scalar) gradient, e.g. 2 for `2 * loss`

    def emphasis(self, st):
        raise NotImplementedError

    def values(self, st):
        raise NotImplementedError


class _Eq6Loss(SoftmaxLoss):
    """A loss of Eq. 1-4: its weight is its Eq. 6 L1 norm (``edf`` name = the loss name), plain
    (batch mean) or, with ``dn=True``, derivative-normalised over the batch."""

    def __init__(self, dn=False, **params):
        self.edf, self.edf_params = _edf.resolve(self.name, **params)
        self.reduction = "dn" if dn else "mean"
        if dn:
            self.name = f"{self.name}-dn"

    def emphasis(self, st):
        return _edf_weights(self.edf, self.edf_params, st)


class CCE(_Eq6Loss):
    """Eq. 1: ``L_i = -log p_i``;  ``dL_i/dz_i = p - e_i = d_i``, ``||d_i||_1 = 2(1 - p_i)``.

    Softmax Jacobian (Eq. 16): ``dp_i/dz_ij = p_i (1[j = y_i] - p_ij)``; chain rule with
    ``dL/dp_i = -1/p_i`` (Eq. 18): ``dL/dz_ij = p_ij - 1[j = y_i]`` (Eq. 25). The value is the
    log-softmax ``logsumexp(z_i) - z_iy`` (finite for any finite logits).
    """

    name = "cce"

    def values(self, st):
        return -st.log_p


class MAE(_Eq6Loss):
    """Eq. 2: ``L_i = 1 - p_i``;  ``dL_i/dz_i = p_i d_i`` (Eq. 28), ``||.||_1 = 2 p_i (1 - p_i)``."""

    name = "mae"

    def values(self, st):
        return st.one_minus_p


class MSE(_Eq6Loss):
    """Eq. 3: ``L_i = (1 - p_i)^2``;  ``dL/dp_i = -2(1 - p_i)``, so
    ``dL_i/dz_i = 2 p_i (1 - p_i) d_i``, ``||.||_1 = 4 p_i (1 - p_i)^2``."""

    name = "mse"

    def values(self, st):
        return st.one_minus_p ** 2


class GCE(_Eq6Loss):
    """Eq. 4: ``L_i = (1 - p_i^q) / q``;  ``dL/dp_i = -p_i^(q-1)`` (Eq. 22), so
    ``dL_i/dz_i = p_i^q d_i`` (Eq. 31), ``||.||_1 = 2 p_i^q (1 - p_i)``. The value is computed as
    ``-expm1(q log p_i) / q`` (exact near ``p_i = 1``, finite for ``p_i -> 0``)."""

    name = "gce"

    def __init__(self, q=0.7, dn=False):
        super().__init__(dn=dn, q=q)
        self.q = self.edf_params["q"]

    def values(self, st):
        return -get_array_module(st.log_p).expm1(self.q * st.log_p) / self.q


class Manipulate(SoftmaxLoss):
    """Derivative manipulation (Eq. 7) with any weighting function: ``weight_fn(p_i) -> w_i``.

    backward: ``dL/dz_i = (w_i / sum_j w_j) * d_i / (2(1 - p_i) + 1e-6)`` (REFERENCE.md): CCE's
    direction, rescaled so that its L1 norm is the example's share of the batch's unit of
    emphasis (Eq. 7 followed by mini-batch DN). ``w`` and the normaliser are constants.
    ``weight_fn`` receives ``p_i`` as an (N,) array of the logits' device and dtype and returns
    ``w_i >= 0`` as an (N,) array (or a number); if every ``w_i`` is 0 the gradient is 0.
    Displayed value: ``sum_i (w_i / sum_j w_j) (-log p_i)``.
    """

    name = "manipulate"
    reduction = "dm"

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


# ----------------------------------------------------------------------------------------------
# The public lowercase functions
# ----------------------------------------------------------------------------------------------
def cce(logits, labels):
    """Categorical cross entropy (Eq. 1), batch mean."""
    return CCE()(logits, labels)


def mae(logits, labels):
    """Mean absolute error on p_i (Eq. 2), batch mean."""
    return MAE()(logits, labels)


def mse(logits, labels):
    """Mean square error on p_i (Eq. 3), batch mean."""
    return MSE()(logits, labels)


def gce(logits, labels, q=0.7):
    """Generalised cross entropy (Eq. 4), batch mean."""
    return GCE(q)(logits, labels)


def cce_dn(logits, labels):
    """CCE with derivative normalisation: ``g_i / sum_j ||g_j||_1``."""
    return CCE(dn=True)(logits, labels)


def mae_dn(logits, labels):
    """MAE with derivative normalisation."""
    return MAE(dn=True)(logits, labels)


def mse_dn(logits, labels):
    """MSE with derivative normalisation."""
    return MSE(dn=True)(logits, labels)


def gce_dn(logits, labels, q=0.7):
    """GCE with derivative normalisation."""
    return GCE(q, dn=True)(logits, labels)


def dm(logits, labels, lam, beta):
    """Derivative manipulation with the EDF of Eq. 12 (emphasis mode ``lam/(lam+1)`` for beta > 0)."""
    return DM(lam, beta)(logits, labels)


def manipulate(logits, labels, weight_fn):
    """Derivative manipulation with any weighting function, e.g. hard examples first:
    ``manipulate(z, y, lambda p: (1 - p) ** 2)``."""
    return Manipulate(weight_fn)(logits, labels)


def details(loss):
    """Per-example facts of the batch that produced ``loss``, from its forward pass.

    Returns a dict of (N,) Tensors on the loss's device (no gradient):

    * ``"p_i"``: the probability of each example's given label;
    * ``"weights"``: ``w_i``, the Eq. 6 L1 norm of a plain or DN loss, the Eq. 12 weight of DM,
      ``weight_fn(p_i)`` of manipulate (Eq. 12 may overflow to inf for a huge beta in float32;
      the shares below never do);
    * ``"normalised_weights"``: ``w_i / sum_j w_j``, each example's share of the batch's emphasis
      (for DN and DM, the L1 norm of its gradient).

    Works under ``no_grad`` and after ``backward()``.
    """
    found = getattr(loss, "_loss_details", None)
    if found is None:
        raise ValueError("details: this tensor was not returned by a tinydm loss "
                         "(losses.cce, ..., losses.dm, losses.manipulate, or losses.get(...))")
    return dict(found)


# ----------------------------------------------------------------------------------------------
# By name, for configs and command lines
# ----------------------------------------------------------------------------------------------
_REQUIRED = _edf.REQUIRED
_REGISTRY = {  # name -> (Function class, fixed arguments, parameters with defaults)
    "cce": (CCE, {}, {}),
    "mae": (MAE, {}, {}),
    "mse": (MSE, {}, {}),
    "gce": (GCE, {}, {"q": 0.7}),
    "cce-dn": (CCE, {"dn": True}, {}),
    "mae-dn": (MAE, {"dn": True}, {}),
    "mse-dn": (MSE, {"dn": True}, {}),
    "gce-dn": (GCE, {"dn": True}, {"q": 0.7}),
    "dm": (DM, {}, {"lam": _REQUIRED, "beta": _REQUIRED, "warmup": 0, "ess_floor": 0.0,
                    "per_class": False}),
}
NAMES = tuple(_REGISTRY)


def _signature(name):
    params = _REGISTRY[name][2]
    if not params:
        return f"{name} (no parameters)"
    return f"{name}(" + ", ".join(
        k if v is _REQUIRED else f"{k}={v}" for k, v in params.items()) + ")"


class LossFunction:
    """A loss chosen by name with its parameters bound: ``f(logits, labels) -> Tensor``."""

    def __init__(self, name, **params):
        key = name.lower().replace("_", "-") if isinstance(name, str) else name
        if key not in _REGISTRY:
            raise ValueError(f"unknown loss {name!r}; valid names and parameters: "
                             + "; ".join(_signature(n) for n in NAMES))
        cls, fixed, spec = _REGISTRY[key]
        unknown = sorted(set(params) - set(spec))
        missing = [k for k, v in spec.items() if v is _REQUIRED and k not in params]
        if unknown or missing:
            problem = (f"unknown parameter(s) {', '.join(unknown)}" if unknown
                       else f"missing parameter(s) {', '.join(missing)}")
            raise ValueError(f"loss {key!r}: {problem}; use {_signature(key)}")
        self.name = key
        self.params = {k: params.get(k, v) for k, v in spec.items()}
        self.warmup = self.params.pop("warmup", 0)
        if self.warmup < 0:
            raise ValueError(f"loss {key!r}: warmup must be >= 0 iterations, got {self.warmup}")
        self.iteration = None
        self._make = lambda **over: cls(**fixed, **{**self.params, **over})
        self._make()  # check the values now (e.g. q out of (0, 1]), not at the first batch

    def set_iteration(self, it):
        """Tell the loss which iteration comes next (train.fit does): the beta warm-up needs it."""
        self.iteration = it

    def current_params(self):
        """The parameters in force now: with ``warmup = k``, beta rises linearly from 0 to its
        value over the first k iterations, ``beta_t = beta * min(1, t / k)``."""
        if not self.warmup:
            return dict(self.params)
        if self.iteration is None:
            raise RuntimeError(f"loss {self.name!r} with warmup={self.warmup} needs the iteration: "
                               "call set_iteration(it) before each step (tinydm.train.fit does)")
        return {**self.params, "beta": self.params["beta"] * min(1.0, self.iteration / self.warmup)}

    def __call__(self, logits, labels):
        return self._make(**self.current_params())(logits, labels)

    def __repr__(self):
        spec = _REGISTRY[self.name][2]
        params = {k: v for k, v in {**self.params, "warmup": self.warmup}.items()
                  if k in spec and (spec[k] is _REQUIRED or v != spec[k])}  # defaults left out
        args = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"losses.get({self.name!r}{', ' if args else ''}{args})"


def get(name, **params):
    """The loss called ``name`` (cce, mae, mse, gce, cce-dn, mae-dn, mse-dn, gce-dn, dm; ``_`` may
    stand for ``-``) with its parameters bound, as a callable ``f(logits, labels)``.

    >>> f = get("dm", lam=0.5, beta=8);  loss = f(logits, labels)

    Unknown names or parameters, missing ones (``dm`` needs ``lam`` and ``beta``) and values out
    of range raise ValueError listing what is valid.
    """
    return LossFunction(name, **params)
