"""Loss nodes on logits: CCE, MAE, MSE, GCE (Eq. 1-4), their DN variants, and DM (Eq. 7, 12).

- :mod:`tinydm.losses.node`: what every loss shares (stable softmax statistics, input checks,
  the backward ``a_i u_i``);
- :mod:`tinydm.losses.eq6`: CCE, MAE, MSE, GCE, plain and DN;
- :mod:`tinydm.losses.dm`: DM, Eq. 7 next to its derivation;
- :mod:`tinydm.losses.zoo`: focal, Poly-1, Taylor CE, reverse CE, partially Huberised CE: losses
  of ``p_i`` alone from the literature, each with its weight ``w = -L'(p) p 2(1-p)``;
- :mod:`tinydm.losses.registry`: the losses by name with their parameters (``get``).

Every loss here takes logits ``z`` of shape (N, C) and integer labels ``y`` of shape (N,), returns
a scalar Tensor, and its backward writes ``dL/dz`` itself (derivations: docs/derivations.md).

One fact organises them all (Eq. 5): with ``p = softmax(z_i)``, ``p_i = p[y_i]`` and ``e_i`` the
one-hot vector of ``y_i``, the gradient of each of these losses w.r.t. ``z_i`` points along the
CCE direction ``d_i = p - e_i``, whose L1 norm is ``2(1 - p_i)``; the losses differ only in its
length. So every node computes, once, the unit direction

    u_i = d_i / ||d_i||_1 :   u_ij = p_ij / (2 (1 - p_i))  (j != y_i),   u_iy_i = -1/2,

and each example's weight ``w_i`` (a weighting function of ``p_i``, tinydm/edf/); its backward
returns ``gy * a_i * u_i``, where ``a_i = ||dL/dz_i||_1`` is set by the released code's rules
(docs/released-code.md):

==============================  ====================================================  ==============
loss                            a_i = L1 norm of example i's gradient                  value shown
==============================  ====================================================  ==============
Eq. 1-4 and the zoo (plain)     w_i / N, with w_i the loss's weight (batch mean)        mean_i L_i
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

from collections.abc import Callable
from typing import Any

from ..edf import EDFS, GCE_Q
from ..tensor import Tensor
from .dm import DM, DM_EPS, Manipulate
from .eq6 import CCE, GCE, MAE, MSE
from .zoo import RCE, Focal, PHuber, Poly1, Taylor
from .node import SoftmaxLoss, SoftmaxStats, check_label_range
from .registry import NAMES, LossFunction, get, parameters, renormalises


def cce(logits: Tensor, labels: Any) -> Tensor:
    """Categorical cross entropy (Eq. 1), batch mean."""
    return CCE()(logits, labels)


def mae(logits: Tensor, labels: Any) -> Tensor:
    """Mean absolute error on p_i (Eq. 2), batch mean."""
    return MAE()(logits, labels)


def mse(logits: Tensor, labels: Any) -> Tensor:
    """Mean square error on p_i (Eq. 3), batch mean."""
    return MSE()(logits, labels)


def gce(logits: Tensor, labels: Any, q: float = GCE_Q) -> Tensor:
    """Generalised cross entropy (Eq. 4), batch mean."""
    return GCE(q)(logits, labels)


def cce_dn(logits: Tensor, labels: Any) -> Tensor:
    """CCE with derivative normalisation: ``g_i / sum_j ||g_j||_1``."""
    return CCE(dn=True)(logits, labels)


def mae_dn(logits: Tensor, labels: Any) -> Tensor:
    """MAE with derivative normalisation."""
    return MAE(dn=True)(logits, labels)


def mse_dn(logits: Tensor, labels: Any) -> Tensor:
    """MSE with derivative normalisation."""
    return MSE(dn=True)(logits, labels)


def gce_dn(logits: Tensor, labels: Any, q: float = GCE_Q) -> Tensor:
    """GCE with derivative normalisation."""
    return GCE(q, dn=True)(logits, labels)


def focal(logits: Tensor, labels: Any, gamma: float = EDFS["focal"].params["gamma"]) -> Tensor:
    """Focal loss, ``-(1 - p_i)^gamma log p_i``, batch mean (tinydm/losses/zoo.py)."""
    return Focal(gamma)(logits, labels)


def poly1(logits: Tensor, labels: Any,
          epsilon: float = EDFS["poly1"].params["epsilon"]) -> Tensor:
    """Poly-1, ``-log p_i + epsilon (1 - p_i)``, batch mean."""
    return Poly1(epsilon)(logits, labels)


def taylor(logits: Tensor, labels: Any, t: int = EDFS["taylor"].params["t"]) -> Tensor:
    """Taylor cross entropy of order ``t``, ``sum_{k=1}^t (1 - p_i)^k / k``, batch mean."""
    return Taylor(t)(logits, labels)


def rce(logits: Tensor, labels: Any, A: float = EDFS["rce"].params["A"]) -> Tensor:
    """Reverse cross entropy with ``log 0 = A``, ``-A (1 - p_i)``, batch mean."""
    return RCE(A)(logits, labels)


def phuber(logits: Tensor, labels: Any, tau: float = EDFS["phuber"].params["tau"]) -> Tensor:
    """Partially Huberised CE, ``-log p_i`` clipped to its tangent below ``p_i = 1/tau``, batch
    mean."""
    return PHuber(tau)(logits, labels)


def dm(logits: Tensor, labels: Any, lam: float, beta: float) -> Tensor:
    """Derivative manipulation with the EDF of Eq. 12 (emphasis mode ``lam/(lam+1)`` for beta > 0)."""
    return DM(lam, beta)(logits, labels)


def manipulate(logits: Tensor, labels: Any, weight_fn: Callable[[Any], Any]) -> Tensor:
    """Derivative manipulation with any weighting function, e.g. hard examples first:
    ``manipulate(z, y, lambda p: (1 - p) ** 2)``."""
    return Manipulate(weight_fn)(logits, labels)


def details(loss: Tensor) -> dict[str, Tensor]:
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
