"""One IMDB run: the model, the batches, the evaluation, the record, and :func:`run_one`, the entry
point that skips a run already saved with the same settings."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from ... import backend, nn, optim
from ...data import sampling
from ...tensor import Tensor
from ...train import (Diverged, EmphasisCollapseWarning, History, accuracy, class_histogram, fit,
                      loss_schedule, one_class, predict)
from ..runner import (accuracy_summary, build_on_host, make_record, read_record, seed_stream,
                      write_record)
from .features import Features, training_set
from .protocol import FEATURE_DIM, NUM_CLASSES
from .settings import RunSettings

BATCH_STREAM = 1  # spawn key of a seed's batch order, (BATCH_STREAM, epoch) (runner.seed_stream)
EXPERIMENT = "imdb"


def build_model(settings, dim=FEATURE_DIM):
    """The 100-8-2 MLP with Caffe's xavier initialisation, drawn on the host from the run's
    seed (so every device starts from the same weights) and moved to the run's device."""
    return build_on_host(settings.seed, settings.device, lambda: nn.MLP(
        [dim, settings.hidden, NUM_CLASSES], init="caffe_xavier"))


def batch_indices(settings, labels, device):
    """``f(it)``: the positions in the training set (``labels``, the given labels, on the host)
    of the batch of iteration ``it``, as a device int64 array.

    ``"shuffle"``: :class:`tinydm.data.sampling.HostEpochBatches`, every epoch a permutation
    drawn from (seed, epoch), cut into ``n // batch`` batches. ``"balanced"``:
    :class:`tinydm.data.sampling.BalancedBatches` with ``batch // 2`` examples of each given
    label, drawn from (seed, iteration). Both are drawn on the host and sent to the device, so
    every device trains on the same batches.
    """
    batch = settings.batch_size
    if settings.sampler == "balanced":
        balanced = sampling.BalancedBatches(labels, batch, settings.seed, device="cpu",
                                            images_per_class=max(1, batch // NUM_CLASSES))
        return lambda it: backend.to_device(balanced(it), device)
    return sampling.HostEpochBatches(
        labels.size, batch, lambda epoch: seed_stream(settings.seed, BATCH_STREAM, epoch), device)


def _fraction(hits, mask, count):
    """The share of ``hits`` among the examples of ``mask`` (None when there are none)."""
    return float((hits & mask).sum()) / count if count else None


class Evaluator:
    """The evaluation of the protocol, on the device: ``evaluator(model, it) -> dict`` with the
    test accuracy, the accuracy of each class, the predicted-class histogram, and the training
    accuracy against the given labels, split into the intact and the corrupted examples."""

    def __init__(self, features, x, y, corrupted, device):
        _, _, self.x_test, self.y_test = features.on(device)
        self.x, self.y, self.device = x, y, device
        self.is_corrupted = backend.to_device(corrupted, device)
        self.n, self.n_corrupted = corrupted.size, int(corrupted.sum())
        self.test_counts = [int((features.y_test == k).sum()) for k in range(NUM_CLASSES)]
        self.test_is = [self.y_test == k for k in range(NUM_CLASSES)]

    def __call__(self, model, it):
        started = time.perf_counter()
        test_logits = predict(model, Tensor(self.x_test, device=self.device), batch_size=8192)
        train_logits = predict(model, Tensor(self.x, device=self.device), batch_size=8192)
        test_hits = test_logits.argmax(axis=1) == self.y_test
        train_hits = train_logits.argmax(axis=1) == self.y
        return {
            "test_accuracy": accuracy(test_logits, self.y_test),
            "test_class_accuracy": [_fraction(test_hits, self.test_is[k], self.test_counts[k])
                                    for k in range(NUM_CLASSES)],
            "test_class_histogram": class_histogram(test_logits, NUM_CLASSES),
            "train_accuracy": accuracy(train_logits, self.y),
            "train_accuracy_intact": _fraction(train_hits, ~self.is_corrupted,
                                               self.n - self.n_corrupted),
            "train_accuracy_corrupted": _fraction(train_hits, self.is_corrupted,
                                                  self.n_corrupted),
            "eval_seconds": time.perf_counter() - started,
        }


def train_run(settings, features, progress=False):
    """Train one run and return its record (tinydm/experiments/runner.py's format)."""
    device = settings.device
    if settings.features and settings.features != features.fingerprint:
        raise ValueError(f"imdb: run {settings.name} was set up for the features "
                         f"{settings.features}, not {features.fingerprint}")
    x_all = features.on(device)[0]
    indices, labels, corrupted = training_set(settings.row, features.y_train, settings.seed)
    n, batch = indices.size, settings.batch_size
    if n < batch:
        raise ValueError(f"imdb: the training set of row {settings.row} has {n} examples, fewer "
                         f"than one batch of {batch}")
    x = x_all[backend.to_device(indices, device)]
    y = backend.to_device(labels, device)
    evaluate = Evaluator(features, x, y, corrupted, device)

    model = build_model(settings, features.dim)
    opt = optim.SGD(model.parameters(), lr=settings.base_lr, momentum=settings.momentum,
                    weight_decay=settings.weight_decay, caffe_style=True)
    schedule = optim.InvLR(opt, gamma=settings.lr_gamma, power=settings.lr_power)
    loss = loss_schedule(settings.loss, **settings.loss_params)
    indices_of = batch_indices(settings, labels, device)

    def batches(it):
        chosen = indices_of(it)
        return Tensor(x[chosen], device=device), Tensor(y[chosen], device=device)

    history, diverged_by = History(), None
    try:
        with warnings.catch_warnings():
            # the table's notes give one line per run that the collapse watch flagged; the
            # record keeps the watch's full text (history.warnings)
            warnings.simplefilter("ignore", EmphasisCollapseWarning)
            fit(model, loss, opt, batches, settings.iterations, NUM_CLASSES, scheduler=schedule,
                evaluate=evaluate, eval_every=settings.eval_every,
                log_every=settings.log_every, history=history, progress=progress,
                desc=settings.name)
    except Diverged as e:
        # the loss became non-finite at update e.iteration (fit checks every one) and the
        # weights with it; the network is evaluated as it is (NaN logits: argmax picks class
        # 0 for every review), as the paper's 0.5 cells of the runs that diverge
        diverged_by = e.iteration
        history.evals.append({"iteration": diverged_by, **evaluate(model, diverged_by)})
    final = history.evals[-1]
    summary = {**accuracy_summary(history.evals),
               "test_class_histogram_final": final["test_class_histogram"],
               "one_class_final": one_class(final["test_class_histogram"]),
               "diverged_by": diverged_by}
    data = {"train_size": n,
            "train_label_counts": [int((labels == k).sum()) for k in range(NUM_CLASSES)],
            "train_corrupted": evaluate.n_corrupted,
            "noise_rate_realised": evaluate.n_corrupted / n}
    return make_record(EXPERIMENT, "diverged" if diverged_by else "done", settings, data,
                       summary, history,
                       diverged_by or settings.iterations)


def run_path(out_dir, settings):
    """Where the record of a run is written."""
    name = f"{settings.loss}{settings.variant}_seed{settings.seed}.json"
    return Path(out_dir) / settings.row / name


def load_record(out_dir, settings):
    """The saved record of a run if it exists with exactly these settings, else None."""
    try:
        record = read_record(run_path(out_dir, settings), EXPERIMENT)
    except (OSError, ValueError):
        return None
    return record if record["config"] == settings.as_dict() else None


def run_one(settings, features, out_dir, force=False, progress=False, overwrite=False):
    """Train one run and save its record, unless it is already saved with the same settings.
    ``force`` trains it again anyway. A record of other settings at its path is an error
    (nothing is replaced silently) unless ``overwrite``. (A job that writes many runs into one
    folder claims it first, runner.claim_output; see :func:`~.table.run_table`.)

    ``settings``: a :class:`RunSettings` or a plain dict of its fields (a sweep's cell);
    ``features``: a :class:`Features`. Returns ``(record, trained)``; ``trained`` is False for a
    run that was skipped.
    """
    if isinstance(settings, dict):
        settings = RunSettings.from_dict(settings)
    if not isinstance(features, Features):
        raise TypeError(f"imdb.run_one: features must be imdb.Features, got {type(features)}")
    if not settings.features:
        settings = settings.replace(features=features.fingerprint)
    if not force:
        record = load_record(out_dir, settings)
        if record is not None:
            return record, False
    path = run_path(out_dir, settings)
    if not overwrite and path.exists():
        try:
            other = read_record(path, EXPERIMENT)["config"]
        except ValueError:
            other = None  # not a record: replaced
        if other is not None and other != settings.as_dict():
            differ = sorted(k for k in other if other[k] != settings.as_dict().get(k))
            raise ValueError(f"{path} holds a run with other settings ({', '.join(differ)}); "
                             f"choose another output folder or overwrite it (--overwrite)")
    record = train_run(settings, features, progress=progress)
    write_record(path, record)
    return record, True
