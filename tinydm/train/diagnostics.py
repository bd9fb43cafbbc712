"""Per-batch diagnostics of example weighting and the emphasis-collapse watch.

With ``s_i = w_i / sum_j w_j`` the normalised weights of a batch of N
(see docs/emphasis-collapse.md),

* ESS fraction ``= (sum_i w_i)^2 / (N sum_i w_i^2) = 1 / (N sum_i s_i^2)``: 1 when all weights
  are equal, 1/N when one example takes all the emphasis;
* class shares ``c_k = sum_{i: y_i = k} s_i``: how the batch's unit of emphasis splits by label.

An evaluation "predicts one class" (:func:`one_class`) when at least :data:`ONE_CLASS` of the
examples get the same class: the mark of a run that emphasis collapse has locked onto a class.
"""

import warnings

import numpy as np

from .. import backend, edf

ONE_CLASS = 0.99  # a run "predicts one class" when at least this share of the test set gets it


def emphasis_stats(normalised_weights, labels, num_classes):
    """ESS fraction and per-class shares of a batch's normalised weights (device arrays in,
    device arrays out: ``(ess_fraction (0-d), class_shares (num_classes,))``)."""
    xp = backend.get_array_module(normalised_weights)
    s = normalised_weights
    ess = 1.0 / (s.shape[0] * (s * s).sum())
    shares = xp.bincount(labels, weights=s, minlength=num_classes)
    return ess, shares


def predicted_classes(histogram, at_least=0.01):
    """How many classes take at least ``at_least`` of the predictions, and the largest share:
    ``(10, 0.12)`` for a healthy CIFAR-10 network, ``(2, 0.89)`` for one locked onto two."""
    counts = np.asarray(histogram, dtype=float)
    shares = counts / counts.sum()
    return int((shares >= at_least).sum()), float(shares.max())


def one_class(histogram):
    """Whether a predicted-class histogram puts (almost) every example in one class."""
    total = sum(histogram)
    return bool(total) and max(histogram) >= ONE_CLASS * total


class EmphasisCollapseWarning(RuntimeWarning):
    """The warning of :class:`CollapseWatch` (its own category, so a caller that reports the
    watch elsewhere can silence it: ``warnings.simplefilter("ignore",
    EmphasisCollapseWarning)``)."""


class CollapseWatch:
    """Warns (once per kind) when a run shows the signs of emphasis collapse:

    * the batch ESS fraction stays below ``ess`` for ``patience`` logged steps in a row while
      the batch is not fitted (batch accuracy below ``fitted``): a few examples take almost all
      of the emphasis. (A network that fits its batches also has a low ESS under CCE, whose
      weight ``2(1 - p_i)`` vanishes on fitted examples: that is convergence, not collapse.);
    * ``share_patience`` evaluations in a row after iteration ``after`` have a
      ``*class_histogram`` with more than ``share`` of the predictions in its ``few`` largest
      classes, ``few = max(1, C // 5)`` (one class out of 2 to 9, two out of 10): the network has
      locked onto them. (A network just initialised, or passing through a brief one-class
      phase, often predicts one class; that is not collapse, hence ``after`` and the streak.)

    Each warning names the likely cause (DM's batch renormalisation feeding back on the class
    the network favours) and the remedies; it is also kept in ``history.warnings``. It means
    something only for losses that renormalise the batch (``losses.renormalises``: DM and the
    DN variants), which is where :func:`tinydm.train.fit` uses it by default: under CCE a low
    ESS is the network fitting the clean examples.
    """

    CAUSE = ("likely emphasis collapse: the weights are renormalised within each batch, so the "
             "examples of the class the network already favours get larger p_i, hence more weight, "
             "hence more of the gradient (docs/emphasis-collapse.md). Remedies: a beta warm-up "
             "(warmup=k), per-class renormalisation (per_class=True), an ESS floor (ess_floor=0.5), "
             "or class-balanced batches")

    def __init__(self, ess=0.25, patience=5, share=0.9, fitted=0.95, after=100, share_patience=2):
        self.ess, self.patience, self.share, self.fitted = ess, patience, share, fitted
        self.after, self.share_patience = after, share_patience
        self.low_streak, self.one_class_streak, self.warned = 0, 0, set()

    def _warn(self, kind, message, history):
        if kind in self.warned:
            return
        self.warned.add(kind)
        text = f"{message}; {self.CAUSE}"
        history.warnings.append(text)
        warnings.warn(text, EmphasisCollapseWarning, stacklevel=3)

    def step(self, record, history):
        low = record["ess_fraction"] < self.ess and record["batch_accuracy"] < self.fitted
        self.low_streak = self.low_streak + 1 if low else 0
        if self.low_streak >= self.patience:
            self._warn("ess", f"iteration {record['iteration']}: the batch ESS fraction has stayed "
                       f"below {self.ess} for {self.patience} logged steps "
                       f"(now {record['ess_fraction']:.3f})", history)

    def evaluation(self, metrics, history):
        if metrics["iteration"] < self.after:
            return
        locked = []
        for key, counts in metrics.items():
            if key.endswith("class_histogram") and sum(counts):
                few = max(1, len(counts) // 5)
                top = sorted(range(len(counts)), key=lambda c: -counts[c])[:few]
                held = sum(counts[c] for c in top) / sum(counts)
                if held > self.share:
                    locked.append((key, top, held, len(counts)))
        self.one_class_streak = self.one_class_streak + 1 if locked else 0
        if locked and self.one_class_streak >= self.share_patience:
            key, top, held, num_classes = locked[0]
            where = "one class" if len(top) == 1 else f"{len(top)} of its {num_classes} classes"
            self._warn("predictions", f"iteration {metrics['iteration']}: {key} has put more than "
                       f"{self.share:.0%} of the predictions in {where} for "
                       f"{self.one_class_streak} evaluations in a row (now {held:.0%} in class"
                       f"{'es' if len(top) > 1 else ''} {', '.join(map(str, sorted(top)))})",
                       history)


def collapse_model(name, p, num_classes, **params):
    """The feedback model of docs/emphasis-collapse.md: a network whose prediction does not
    depend on the input gives the favoured class A probability ``p`` and every other class
    ``q = (1 - p) / (C - 1)``, on a batch with equal counts of every label.

    Returns ``(share, push)`` (arrays like ``p``): ``share`` is the part of the batch's
    gradient (L1, the normalised weights summed) carried by the examples labelled A,
    ``w(p) / (w(p) + (C - 1) w(q))``; ``push`` is how much the batch's descent step moves the
    logit of A (its bias), per unit of total gradient: every example's step is ``s_i (e_i -
    p) / (2 (1 - p_i))``, so the A-labelled ones add ``share / 2`` and the others subtract
    ``(1 - share) p / (2 (1 - q))``. ``push > 0`` at ``p > 1/C``: the favoured class is
    pushed further (collapse feeds itself); ``push < 0``: the step restores balance.
    ``name``/``params``: a weighting function of :func:`tinydm.edf.weight`, or ``"uniform"``
    (every weight 1: DM with beta = 0, and what per-class renormalisation leaves of the
    class shares)."""
    p = np.asarray(p, dtype=np.float64)
    c = num_classes
    q = (1 - p) / (c - 1)
    if name == "uniform":
        w_a, w_o = np.ones_like(p), np.ones_like(q)
    else:
        w_a, w_o = edf.weight(name, p, **params), edf.weight(name, q, **params)
    share = w_a / (w_a + (c - 1) * w_o)
    push = share / 2 - (1 - share) * p / (2 * (1 - q))
    return share, push
