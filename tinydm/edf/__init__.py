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
``focal``   2(1-p)^g ((1-p) - g p log p)    focal loss   gamma = 2                numerical only
``poly1``   2 (1 - p) (1 + eps p)           Poly-1       epsilon = 1              (eps-1)/(2 eps) or 0
``taylor``  2 (1 - p) (1 - (1 - p)^t)       Taylor CE    t = 2                    1 - (t+1)^(-1/t)
``rce``     -2 A p (1 - p)                  reverse CE   A = -4                   1/2
``phuber``  2 (1 - p) min(tau p, 1)         PHuber-CE    tau = 10                 min(1/2, 1/tau)
==========  ==============================  ===========  =======================  ============

The last five are the loss zoo (tinydm/losses/zoo.py): a loss of ``p`` alone has the weight
``w = -L'(p) p 2(1 - p)``.

Each weighting function is written **once**, as ``log w`` in terms of ``log p`` and
``log(1 - p)`` (:func:`log_weight`), with array-module-generic code (NumPy, CuPy, the stand-in):

* the loss nodes (``tinydm/losses/``) use these very functions and normalise a batch's weights
  in log space, so Eq. 12's ``exp(beta ...)`` cannot overflow for large ``beta`` and Eq. 6's
  products cannot underflow to 0/0 as ``p_i -> 1``;
* products of powers (Eq. 6, 11) become sums, and the exponential-family EDFs (Eq. 9, 10, 12)
  lose their ``exp``.

- :mod:`tinydm.edf.functions`: the weighting functions (any device), their closed forms and
  the registry;
- :mod:`tinydm.edf.analysis`: the area of Eq. 8, the emphasis mode and the emphasis variance, on
  host NumPy (teaching, tests and figures, not training).
"""

from .analysis import (area, density, emphasis_mode, emphasis_mode_closed_form,
                       emphasis_variance, log_area)
from .functions import EDF, EDFS, GCE_Q, NAMES, REQUIRED, log_weight, resolve, weight
