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
"""

import math
import time

from .. import backend, losses
from ..tensor import Tensor, no_grad
from .diagnostics import CollapseWatch, emphasis_stats
from .schedules import Constant, LossSchedule


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
    thresholds if None; ``False`` turns the warnings off).
    """
    from tqdm.auto import tqdm  # only needed while training

    history = history or History()
    watch = CollapseWatch() if watch is None else watch
    model.train()
    bar = tqdm(range(start_iteration, iterations), desc=desc, disable=not progress,
               initial=start_iteration, total=iterations, dynamic_ncols=True, leave=False)
    started = time.perf_counter()
    wall_before = history.wall_time
    schedule = loss if isinstance(loss, LossSchedule) else Constant(loss)
    for it in bar:
        if scheduler is not None:
            optimizer.lr = scheduler.lr_at(it)
        x, y = batches(it)
        optimizer.zero_grad()
        logits = model(x)
        value = schedule.loss_at(it)(logits, y)
        value.backward()
        optimizer.step()

        if (it + 1) % log_every == 0 or it == 0:
            d = losses.details(value)
            ess, shares = emphasis_stats(d["normalised_weights"].data, y.data, num_classes)
            record = {"iteration": it + 1, "lr": optimizer.lr, "loss": float(value.data),
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
