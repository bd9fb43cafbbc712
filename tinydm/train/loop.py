"""The one training loop the experiments share.

``fit`` runs ``iterations`` SGD-style updates. Everything that differs between experiments comes
in as a function:

* ``batches(it) -> (x, y)``: the mini-batch of iteration ``it``, as Tensors on the device. Making
  it a pure function of ``it`` (shuffle order and augmentation drawn from ``seed`` and ``it``) is
  what lets a killed run resume to the same result.
* ``loss``: any loss of tinydm.losses (by name: ``losses.get("dm", lam=1, beta=16)``), or a
  schedule of losses (tinydm/train/schedules.py: the beta warm-up).
* ``evaluate(model, it) -> dict``: metrics every ``eval_every`` iterations (test accuracy, ...).

Per logged step it records the loss and the batch accuracy and, for losses that weight examples
(all of tinydm's, via ``losses.details``), the emphasis diagnostics of
tinydm/train/diagnostics.py. Values are pulled to the host only at log steps, so a GPU runs
ahead in between.

Divergence: the loss of every iteration is checked. On the host that is one comparison of a
number already there; on a GPU a host read per step would stall the queue, so the first
non-finite iteration is kept in a device scalar and read at every log step, every evaluation
and at the end. The weights (and buffers) are checked at every evaluation and at the end. Either way
:class:`Diverged` is raised with the first iteration whose loss was non-finite (or the
evaluation where the weights were), before that state is evaluated or checkpointed.
"""

import math
import time

from .. import backend, losses
from ..tensor import Tensor, no_grad
from .diagnostics import CollapseWatch, emphasis_stats
from .schedules import Constant, LossSchedule


class Diverged(FloatingPointError):
    """The loss or the weights became non-finite: ``iteration`` (1-based, the update that made
    it so, or the evaluation where non-finite weights were found) and the ``history`` so far."""

    def __init__(self, message, iteration, history):
        super().__init__(message)
        self.iteration, self.history = iteration, history


class _DivergenceCheck:
    """Every iteration's loss, without a per-step host sync on a GPU (see the module docstring)."""

    def __init__(self, history):
        self.history, self.first = history, None

    def loss(self, value, it):
        if backend.device_of(value) == "cpu":
            if not math.isfinite(float(value)):
                self._fail(f"the loss became {float(value)}", it + 1)
            return
        xp = backend.get_array_module(value)
        if self.first is None:
            self.first = xp.zeros((), dtype=xp.int64)
        self.first = xp.where((self.first == 0) & ~xp.isfinite(value), it + 1, self.first)

    def check(self, model, it, weights=False):
        """Raise :class:`Diverged` if a loss so far was non-finite (one host read), and, with
        ``weights``, if a parameter or buffer (batch norm's running statistics) is."""
        if self.first is not None and int(self.first):
            self._fail("the loss became non-finite", int(self.first))
        if weights:
            for name, p in model.state_dict().items():
                xp = backend.get_array_module(p.data)
                if not bool(xp.isfinite(p.data).all()):
                    self._fail(f"the weights {name} became non-finite", it + 1)

    def _fail(self, what, iteration):
        raise Diverged(f"fit: {what} at iteration {iteration}", iteration, self.history)


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


def fit(model, loss, optimizer, batches, iterations, num_classes, scheduler=None,
        evaluate=None, eval_every=1000, log_every=100, start_iteration=0, history=None,
        on_eval=None, progress=True, desc="train", watch=None):
    """Train ``model`` for iterations ``start_iteration .. iterations - 1``; return a History.

    ``loss``: a loss function ``f(logits, y)`` or a
    :class:`~tinydm.train.schedules.LossSchedule` (the loss of each iteration, e.g. a beta
    warm-up). ``on_eval(it, history)`` runs after each evaluation (e.g. to write a checkpoint: the
    state then is that after ``it + 1`` updates). The schedule, if any, sets ``optimizer.lr``
    for each iteration from its ``lr_at``. ``watch``: a :class:`CollapseWatch` (default
    thresholds if None, for the losses that renormalise the batch, ``losses.renormalises``;
    ``False`` turns it off). Raises :class:`Diverged` when the loss or the weights become
    non-finite.
    """
    from tqdm.auto import tqdm  # only needed while training

    history = history or History()
    schedule = loss if isinstance(loss, LossSchedule) else Constant(loss)
    if watch is None:
        first = schedule.loss_at(start_iteration)
        name = getattr(first, "name", None) or getattr(first, "__name__", "")
        watch = CollapseWatch() if losses.renormalises(name) else False
    diverged = _DivergenceCheck(history)
    model.train()
    bar = tqdm(range(start_iteration, iterations), desc=desc, disable=not progress,
               initial=start_iteration, total=iterations, dynamic_ncols=True, leave=False)
    started = time.perf_counter()
    wall_before = history.wall_time
    try:
        for it in bar:
            if scheduler is not None:
                optimizer.lr = scheduler.lr_at(it)
            x, y = batches(it)
            optimizer.zero_grad()
            logits = model(x)
            value = schedule.loss_at(it)(logits, y)
            value.backward()
            optimizer.step()
            diverged.loss(value.data, it)

            if (it + 1) % log_every == 0 or it == 0:
                diverged.check(model, it)
                d = losses.details(value)
                ess, shares = emphasis_stats(d["normalised_weights"].data, y.data, num_classes)
                record = {"iteration": it + 1, "lr": optimizer.lr, "loss": float(value.data),
                          "batch_accuracy": accuracy(logits.data, y), "ess_fraction": float(ess),
                          "class_shares": [round(float(v), 5) for v in backend.to_numpy(shares)],
                          "mean_p_i": float(d["p_i"].data.mean())}
                history.steps.append(record)
                if watch:
                    watch.step(record, history)
                bar.set_postfix(loss=f"{record['loss']:.4f}",
                                acc=f"{record['batch_accuracy']:.3f}",
                                ess=f"{record['ess_fraction']:.2f}")
            if it + 1 == iterations or (evaluate is not None and (it + 1) % eval_every == 0):
                diverged.check(model, it, weights=True)  # never evaluate or checkpoint a NaN model
            if evaluate is not None and ((it + 1) % eval_every == 0 or it + 1 == iterations):
                metrics = {"iteration": it + 1, **evaluate(model, it + 1)}
                model.train()
                history.evals.append(metrics)
                if watch:
                    watch.evaluation(metrics, history)
                history.wall_time = wall_before + time.perf_counter() - started
                if on_eval is not None:
                    on_eval(it + 1, history)
    except Diverged:
        history.wall_time = wall_before + time.perf_counter() - started
        raise
    finally:
        bar.close()
    history.wall_time = wall_before + time.perf_counter() - started
    return history
