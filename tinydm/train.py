"""The one training loop the examples share, and the per-batch diagnostics of example weighting.

``fit`` runs ``iterations`` SGD-style updates. Everything that differs between experiments comes
in as a function:

* ``batches(it) -> (x, y)``: the mini-batch of iteration ``it``, as Tensors on the device. Making
  it a pure function of ``it`` (shuffle order and augmentation drawn from ``seed`` and ``it``) is
  what lets a killed run resume to the same result.
* ``loss_fn(logits, y)``: any loss of tinydm.losses (by name: ``losses.get("dm", lam=1, beta=16)``).
* ``evaluate(model, it) -> dict``: metrics every ``eval_every`` iterations (test accuracy, ...).

Per logged step it records the loss and the batch accuracy and, for losses that weight examples
(all of tinydm's, via ``losses.details``), the emphasis diagnostics below. Values are pulled to
the host only at log steps, so a GPU runs ahead in between.

Emphasis diagnostics (see docs/emphasis-collapse.md): with ``s_i = w_i / sum_j w_j`` the
normalised weights of a batch of N,

* ESS fraction ``= (sum_i w_i)^2 / (N sum_i w_i^2) = 1 / (N sum_i s_i^2)``: 1 when all weights
  are equal, 1/N when one example takes all the emphasis;
* class shares ``c_k = sum_{i: y_i = k} s_i``: how the batch's unit of emphasis splits by label.
"""

import json
import math
import os
import time
import warnings

from . import backend, losses
from .tensor import Tensor, no_grad


def emphasis_stats(normalised_weights, labels, num_classes):
    """ESS fraction and per-class shares of a batch's normalised weights (device arrays in,
    device arrays out: ``(ess_fraction (0-d), class_shares (num_classes,))``)."""
    xp = backend.get_array_module(normalised_weights)
    s = normalised_weights
    ess = 1.0 / (s.shape[0] * (s * s).sum())
    shares = xp.bincount(labels, weights=s, minlength=num_classes)
    return ess, shares


def predict(model, x, batch_size=1000):
    """Logits of ``model`` on ``x`` (a Tensor), in evaluation mode, without a graph."""
    was_training = model.training
    model.eval()
    parts = []
    with no_grad():
        for start in range(0, x.shape[0], batch_size):
            parts.append(model(x[start:start + batch_size]).data)
    model.train(was_training)
    xp = backend.get_array_module(parts[0])
    return xp.concatenate(parts, axis=0)


def accuracy(logits, labels):
    """Fraction of rows whose argmax equals the label (a Python float)."""
    labels = labels.data if isinstance(labels, Tensor) else labels
    return float((logits.argmax(axis=1) == labels).mean())


def class_histogram(logits, num_classes):
    """How many examples are predicted as each class (a list of ints)."""
    xp = backend.get_array_module(logits)
    return [int(c) for c in backend.to_numpy(xp.bincount(logits.argmax(axis=1), minlength=num_classes))]


class History:
    """What a run recorded: ``steps`` (one dict per logged iteration), ``evals`` (one dict
    per evaluation), ``warnings`` (texts of CollapseWatch), JSON-serialisable, plus
    ``wall_time`` in seconds."""

    def __init__(self, steps=None, evals=None, wall_time=0.0, warnings=None):
        self.steps, self.evals, self.wall_time = steps or [], evals or [], wall_time
        self.warnings = warnings or []

    def to_dict(self):
        return {"steps": self.steps, "evals": self.evals, "wall_time": self.wall_time,
                "warnings": self.warnings}

    @classmethod
    def from_dict(cls, d):
        return cls(d["steps"], d["evals"], d["wall_time"], d.get("warnings"))

    def best(self, key):
        values = [e[key] for e in self.evals if key in e]
        return max(values) if values else None

    def final(self, key):
        values = [e[key] for e in self.evals if key in e]
        return values[-1] if values else None


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
    the network favours) and the remedies; it is also kept in ``history.warnings``.
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
        warnings.warn(text, RuntimeWarning, stacklevel=3)

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


def fit(model, loss_fn, optimizer, batches, iterations, num_classes, scheduler=None,
        evaluate=None, eval_every=1000, log_every=100, start_iteration=0, history=None,
        on_eval=None, progress=True, desc="train", watch=None):
    """Train ``model`` for iterations ``start_iteration .. iterations - 1``; return a History.

    ``on_eval(it, history)`` runs after each evaluation (e.g. to write a checkpoint: the state
    then is that after ``it + 1`` updates). The schedule, if any, sets ``optimizer.lr`` for each
    iteration from its ``lr_at``. ``watch``: a :class:`CollapseWatch` (default thresholds if
    None; ``False`` turns the warnings off).
    """
    from tqdm.auto import tqdm  # only needed while training

    history = history or History()
    watch = CollapseWatch() if watch is None else watch
    model.train()
    bar = tqdm(range(start_iteration, iterations), desc=desc, disable=not progress,
               initial=start_iteration, total=iterations, dynamic_ncols=True, leave=False)
    started = time.perf_counter()
    wall_before = history.wall_time
    set_iteration = getattr(loss_fn, "set_iteration", None)  # schedules inside the loss (warm-up)
    for it in bar:
        if scheduler is not None:
            optimizer.lr = scheduler.lr_at(it)
        if set_iteration is not None:
            set_iteration(it)
        x, y = batches(it)
        optimizer.zero_grad()
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        optimizer.step()

        if (it + 1) % log_every == 0 or it == 0:
            d = losses.details(loss)
            ess, shares = emphasis_stats(d["normalised_weights"].data, y.data, num_classes)
            record = {"iteration": it + 1, "lr": optimizer.lr, "loss": float(loss.data),
                      "batch_accuracy": accuracy(logits.data, y), "ess_fraction": float(ess),
                      "class_shares": [round(float(v), 5) for v in backend.to_numpy(shares)],
                      "mean_p_i": float(d["p_i"].data.mean())}
            if not math.isfinite(record["loss"]):
                raise FloatingPointError(f"fit: the loss became {record['loss']} at iteration {it + 1}")
            history.steps.append(record)
            if watch:
                watch.step(record, history)
            bar.set_postfix(loss=f"{record['loss']:.4f}", acc=f"{record['batch_accuracy']:.3f}",
                            ess=f"{record['ess_fraction']:.2f}")
        if evaluate is not None and ((it + 1) % eval_every == 0 or it + 1 == iterations):
            metrics = {"iteration": it + 1, **evaluate(model, it + 1)}
            model.train()
            history.evals.append(metrics)
            if watch:
                watch.evaluation(metrics, history)
            history.wall_time = wall_before + time.perf_counter() - started
            if on_eval is not None:
                on_eval(it + 1, history)
    bar.close()
    history.wall_time = wall_before + time.perf_counter() - started
    return history


def write_json(path, obj):
    """Write ``obj`` as JSON atomically (temporary file, then rename)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
