"""Table 5 of the paper: sentiment classification of IMDB reviews under label noise and class
imbalance, with a 100-8-2 MLP on PV-DBOW paragraph vectors.

::

    from tinydm.experiments import imdb
    features = imdb.load_features(data_dir="~/data")        # PV-DBOW, cached after the first call
    table = imdb.run_table(features, out_dir="runs/imdb")   # 5 rows x 9 methods x 3 seeds
    print(imdb.format_table(table.summary))

``examples/imdb_mlp.py`` is the command line over this module; the tests call it on synthetic
features (any ``(x_train, y_train, x_test, y_test)`` arrays will do, see :class:`Features`).

The table
---------
Rows (:data:`ROWS`): symmetric label noise r = 0, 0.2, 0.4 on the 25,000 training reviews
(binary: a label is flipped with probability r), and two imbalanced training sets that keep the
12,500 positives and 1,250 (P:N 10:1) or 250 (50:1) random negatives, with clean labels.
Columns (:data:`METHODS`): CCE, GCE (q = 0.7), MAE, MSE, their derivative-normalised versions and
DM, with the paper's DM parameters per row (Section 4.4): lam 0 and beta 0.9 / -0.52 / -0.33 for
r = 0 / 0.2 / 0.4, lam 0.3 and beta 6.5 for both imbalanced rows. The test set is always the
25,000 test reviews (balanced), so a network that predicts one class for every review scores
exactly 50% (the paper's "0.5" cells, :data:`PAPER`).

Protocol (REFERENCE.md, and the paper's Appendix D, whose solver agrees with it)
------------------------------------------------------------------------------
* Network ``MLP([100, 8, 2])``: Linear, ReLU, Linear; Caffe's xavier init
  ``U(-sqrt(3/fan_in), sqrt(3/fan_in))``, zero biases. Features are fed raw (no scaling).
* Caffe's SGD (``v = 0.9 v + lr (g + 0.002 w); w -= v``), weight decay on every parameter,
  lr policy "inv": ``lr = 0.01 (1 + 1e-5 it)^-0.75`` (Appendix D: gamma 0.00001, power 0.75),
  10,000 iterations of batches of 250 (the batch size is not stated; 250 is the cited Caffe
  setup's and the best inference).
* Batches: every epoch is a permutation of the training set drawn from (seed, epoch), cut into
  ``n // batch_size`` batches (all of the paper's training sets are multiples of 250), so
  ``batches(it)`` is a pure function of ``it``. The permutation is drawn on the host and sent
  to the device, and the network is initialised on the host and then moved, so the CPU and the
  GPU train on the same batches from the same weights: their runs differ only by rounding.
* Seeds: one integer per run (123, the paper's, plus 124 and 125 for the spread) seeds three
  independent streams: the noise / imbalance draw (``SeedSequence(seed, spawn_key=(0,))``),
  the batch order (``spawn_key=(1, epoch)``) and the initialisation (``tinydm.manual_seed``).
  Both the corrupted labels and the training change from one seed to the next.
* Evaluation every ``eval_every`` (250) iterations on the 25,000 test reviews: accuracy, the
  accuracy of each class, and how many reviews are predicted as each class
  (``test_class_histogram``: a 50% run predicts one class for all of them; the collapse watch
  of :func:`tinydm.train.fit` reads it); and on the training set against the labels it was
  given, split into the corrupted and the intact examples.
* The number of the table is the **final** test accuracy (after 10,000 iterations); the best
  over the evaluations is recorded beside it. The paper does not say which one Table 5 shows
  (for CIFAR-100, Table 1 shows the best, REFERENCE.md).

Remedies for emphasis collapse (docs/emphasis-collapse.md; all off by default, so the paper's
settings stay as published): DM's options ``warmup`` (beta rises from 0 over the first k
iterations), ``ess_floor`` (tempered weights) and ``per_class`` (renormalised within each given
class) go into DM's ``loss_params`` (other methods ignore them), and ``sampler="balanced"``
draws every batch half from each given (noisy) label, 125 + 125 of 250
(:class:`tinydm.data.sampling.BalancedBatches`, each batch drawn independently from (seed,
iteration) instead of epochs; in the imbalanced rows this oversamples the minority, each
negative review being seen about 10x or 50x as often as a positive one). A run with remedies
has a tag (:attr:`RunSettings.variant`, e.g. ``+warmup1000+balanced``) in its file name, so it
sits beside the plain run of the same seed; :func:`rescue_table` compares the two.

Result files
------------
One JSON per run, ``<out_dir>/<row>/<method><variant>_seed<seed>.json`` (:func:`run_one`),
written atomically once the run is complete: its settings (with a fingerprint of the features,
so new features retrain), the final and best test accuracy, the evaluation curve, the logged
training steps of :func:`tinydm.train.fit` (loss, ESS fraction, class shares of the emphasis),
the collapse watch's warnings, the size and realised noise of the training set, and the wall
time. A run whose file exists with the same settings is not trained again, so an interrupted
table resumes where it stopped (a run cut short is simply run again: it takes seconds).
:func:`write_report` writes the table (``table.csv``, ``table.md``), the curves of every run
(``curves.csv``) and the figures; :func:`write_rescue_report` the rescue table of the remedies
and the figures of docs/emphasis-collapse.md.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

import tinydm
from .. import backend, nn, optim
from ..data import noise, sampling
from ..tensor import Tensor
from ..files import write_json
from ..train import History, accuracy, class_histogram, fit, loss_schedule, predict

# v2: the evaluation key "test_predicted" became "test_class_histogram" (the collapse watch
# reads keys ending in "class_histogram"), settings gained "sampler", records "warnings"
RECORD_FORMAT = "tinydm-imdb-run-v2"
NUM_CLASSES = 2
FEATURE_DIM = 100
SEEDS = (123, 124, 125)
NOISE_STREAM, BATCH_STREAM = 0, 1  # spawn keys of a seed's independent random streams
ONE_CLASS = 0.99  # a run "predicts one class" when at least this share of the test set gets it
SAMPLERS = ("shuffle", "balanced")
#: DM's remedies for emphasis collapse (tinydm.losses.DM) and their "off" values.
REMEDIES = {"warmup": 0, "ess_floor": 0.0, "per_class": False}
FLAG_POINTS = 2.0  # cells further than this from the paper (in accuracy points) are flagged


@dataclass(frozen=True)
class Row:
    """A row of Table 5: the training set it uses and DM's parameters for it.

    ``noise`` is the symmetric label-noise rate; ``ratio`` (positives per negative) makes an
    imbalanced training set with clean labels, ``None`` keeps all 25,000 reviews.
    """

    key: str
    title: str
    noise: float
    ratio: float | None
    lam: float
    beta: float


ROWS = (
    Row("r0", "r = 0.0", 0.0, None, lam=0.0, beta=0.9),
    Row("r0.2", "r = 0.2", 0.2, None, lam=0.0, beta=-0.52),
    Row("r0.4", "r = 0.4", 0.4, None, lam=0.0, beta=-0.33),
    Row("pn10", "P:N 10:1", 0.0, 10, lam=0.3, beta=6.5),
    Row("pn50", "P:N 50:1", 0.0, 50, lam=0.3, beta=6.5),
)
ROW_KEYS = tuple(r.key for r in ROWS)
_ROW_BY_KEY = {r.key: r for r in ROWS}

METHODS = ("cce", "gce", "mae", "mse", "cce-dn", "gce-dn", "mae-dn", "mse-dn", "dm")
METHOD_TITLES = {m: m.upper() for m in METHODS}

# Table 5 as printed, in %, columns in the order of METHODS. The paper writes "0.5" for the
# networks that predict one class for every test review, i.e. 50%.
PAPER = {
    "r0":   (88.9, 88.9, 88.9, 88.9, 88.5, 87.7, 74.5, 88.2, 89.1),
    "r0.2": (87.7, 88.6, 88.6, 88.5, 87.2, 85.5, 72.8, 87.0, 88.7),
    "r0.4": (75.5, 83.6, 84.9, 83.7, 75.0, 75.2, 80.2, 75.3, 86.4),
    "pn10": (78.9, 77.0, 75.4, 77.6, 77.5, 59.1, 50.0, 78.5, 80.6),
    "pn50": (63.4, 50.0, 50.0, 58.6, 61.4, 50.0, 50.0, 64.4, 65.0),
}


def row(key):
    """The :class:`Row` of a key (``"r0"``, ``"r0.2"``, ``"r0.4"``, ``"pn10"``, ``"pn50"``)."""
    if key not in _ROW_BY_KEY:
        raise ValueError(f"imdb: unknown row {key!r}; choose from {', '.join(ROW_KEYS)}")
    return _ROW_BY_KEY[key]


def paper_value(row_key, method):
    """Table 5's number for a cell, in %."""
    return PAPER[row_key][METHODS.index(method)]


# ----------------------------------------------------------------------------------------------
# Settings of one run
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSettings:
    """Everything that determines a run. Two runs with equal settings give the same result
    (on one device), which is what lets a finished run be skipped.

    ``loss_params`` are the loss's keyword arguments (``{"q": 0.7}`` for GCE, ``{"lam": ...,
    "beta": ...}`` for DM, plus any remedy of :data:`REMEDIES` that is on); ``sampler`` is
    ``"shuffle"`` (epochs) or ``"balanced"`` (half of each batch from each given label);
    ``features`` is the fingerprint of the feature arrays (:attr:`Features.fingerprint`).
    """

    row: str
    method: str
    seed: int
    loss_params: dict = field(default_factory=dict)
    iterations: int = 10_000
    batch_size: int = 250
    sampler: str = "shuffle"
    base_lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.002
    lr_gamma: float = 1e-5
    lr_power: float = 0.75
    hidden: int = 8
    eval_every: int = 250
    log_every: int = 100
    device: str = "cpu"
    features: str = ""

    def as_dict(self):
        return asdict(self)

    @property
    def variant(self):
        """The remedies in use as a tag, ``""`` for none: ``+warmup1000``, ``+ess0.99``,
        ``+perclass``, ``+balanced``, in this order."""
        p = self.loss_params
        tags = [f"warmup{p['warmup']}" if p.get("warmup") else "",
                f"ess{p['ess_floor']:g}" if p.get("ess_floor") else "",
                "perclass" if p.get("per_class") else "",
                self.sampler if self.sampler != "shuffle" else ""]
        return "".join("+" + t for t in tags if t)

    @property
    def name(self):
        return f"{self.row}/{self.method}{self.variant}_seed{self.seed}"


def make_settings(row_key, method, seed, lam=None, beta=None, warmup=0, ess_floor=0.0,
                  per_class=False, **protocol):
    """The settings of one cell and seed: the paper's loss parameters (GCE's q = 0.7; DM's
    lam and beta of the row unless ``lam``/``beta`` are given), DM's remedies ``warmup``,
    ``ess_floor``, ``per_class`` (:data:`REMEDIES`; only DM has them, other methods ignore
    them) and the protocol's defaults, which ``protocol`` (any other :class:`RunSettings`
    field, ``sampler`` included) overrides."""
    r = row(row_key)
    if method not in METHODS:
        raise ValueError(f"imdb: unknown method {method!r}; choose from {', '.join(METHODS)}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"imdb: warmup must be a number of iterations >= 0, got {warmup!r}")
    if method == "dm":
        params = {"lam": float(r.lam if lam is None else lam),
                  "beta": float(r.beta if beta is None else beta)}
        remedies = {"warmup": warmup, "ess_floor": float(ess_floor), "per_class": bool(per_class)}
        params.update({k: v for k, v in remedies.items() if v != REMEDIES[k]})
    elif method in ("gce", "gce-dn"):
        params = {"q": 0.7}
    else:
        params = {}
    settings = RunSettings(row_key, method, int(seed), params, **protocol)
    for name in ("iterations", "batch_size", "eval_every", "log_every", "hidden"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"imdb: {name} must be a positive integer, got {value!r}")
    if settings.sampler not in SAMPLERS:
        raise ValueError(f"imdb: sampler must be one of {SAMPLERS}, got {settings.sampler!r}")
    loss_schedule(method, **params)  # a clear error now for a remedy out of range (ess_floor > 1)
    backend.check_device(settings.device)
    return settings


def table_settings(rows=ROW_KEYS, methods=METHODS, seeds=SEEDS, lam=None, beta=None, **protocol):
    """The settings of every run of a table, row by row, then seed, then method."""
    return [make_settings(r, m, s, lam=lam, beta=beta, **protocol)
            for r in rows for s in seeds for m in methods]


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
class Features:
    """The experiment's four arrays: ``x_train`` (N, 100) float32, ``y_train`` (N,) labels in
    {0, 1} (1 = positive), ``x_test``, ``y_test``. Any arrays of these shapes work (the tests use
    synthetic ones); :func:`load_features` gives the paper's.

    They are copied to a device once (:meth:`on`), and :attr:`fingerprint` (a sha256 of the
    arrays) goes into every run's settings.
    """

    def __init__(self, x_train, y_train, x_test, y_test):
        arrays = {}
        for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
            x, y = np.asarray(x, dtype=np.float32), np.asarray(y)
            if x.ndim != 2 or y.shape != (x.shape[0],):
                raise ValueError(f"imdb.Features: x_{name} must be (N, D) and y_{name} (N,), got "
                                 f"{x.shape} and {y.shape}")
            if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 1):
                raise ValueError(f"imdb.Features: y_{name} must hold the labels 0 and 1")
            if not np.isfinite(x).all():
                raise ValueError(f"imdb.Features: x_{name} has non-finite values")
            arrays[name] = (np.ascontiguousarray(x), y.astype(np.int64))
        (self.x_train, self.y_train), (self.x_test, self.y_test) = arrays["train"], arrays["test"]
        if self.x_train.shape[1] != self.x_test.shape[1]:
            raise ValueError(f"imdb.Features: train and test features differ in width "
                             f"({self.x_train.shape[1]} vs {self.x_test.shape[1]})")
        digest = hashlib.sha256()
        for a in (self.x_train, self.y_train, self.x_test, self.y_test):
            digest.update(repr((a.dtype.str, a.shape)).encode())
            digest.update(a.tobytes())
        self.fingerprint = digest.hexdigest()[:16]
        self._on_device = {}

    @property
    def dim(self):
        return self.x_train.shape[1]

    def on(self, device):
        """``(x_train, y_train, x_test, y_test)`` as raw arrays on ``device`` (copied once)."""
        if device not in self._on_device:
            self._on_device[device] = tuple(
                backend.to_device(a, device) for a in
                (self.x_train, self.y_train, self.x_test, self.y_test))
        return self._on_device[device]


def load_features(data_dir=None, cache_dir=None, download=True, **pv_dbow_settings):
    """The paper's features: PV-DBOW vectors of the IMDB reviews
    (:func:`tinydm.data.imdb.imdb_features`: downloads the data set if needed, trains doc2vec
    once and caches the vectors in ``cache_dir``)."""
    from ..data import imdb_features  # gensim only needed when the cache is cold
    return Features(*imdb_features(data_dir, cache_dir, download=download, **pv_dbow_settings))


def _generator(seed, *stream):
    """An independent NumPy generator for one purpose (``stream``) of a run's ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=stream))


def training_set(row_key, y_train, seed):
    """The training examples and labels of a row, on the host.

    Returns ``(indices, labels, corrupted)``: which rows of ``x_train`` are used, the labels
    the network is given (noisy for the noise rows) and a bool mask of the corrupted ones.
    """
    r = row(row_key)
    y_train = np.asarray(y_train, dtype=np.int64)
    if r.ratio is None:
        flipped = noise.symmetric(y_train, r.noise, NUM_CLASSES, _generator(seed, NOISE_STREAM))
        return np.arange(y_train.size), flipped.labels, flipped.corrupted
    kept = noise.imdb_imbalance(y_train, r.ratio, _generator(seed, NOISE_STREAM))
    return kept, y_train[kept], np.zeros(kept.size, dtype=bool)


# ----------------------------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------------------------
def build_model(settings, dim=FEATURE_DIM):
    """The 100-8-2 MLP with Caffe's xavier initialisation, drawn on the host from the run's
    seed (so every device starts from the same weights) and moved to the run's device."""
    tinydm.manual_seed(settings.seed)
    with backend.device("cpu"):
        model = nn.MLP([dim, settings.hidden, NUM_CLASSES], init="caffe_xavier")
    return model.to(settings.device)


def batch_indices(settings, labels, device):
    """``f(it)``: the positions in the training set (``labels``, the given labels, on the host)
    of the batch of iteration ``it``, as a device int64 array.

    ``"shuffle"``: every epoch a permutation drawn from (seed, epoch), cut into ``n // batch``
    batches. ``"balanced"``: :class:`tinydm.data.sampling.BalancedBatches` with
    ``batch // 2`` examples of each given label, drawn from (seed, iteration). Both are drawn
    on the host and sent to the device, so every device trains on the same batches.
    """
    n, batch = labels.size, settings.batch_size
    if settings.sampler == "balanced":
        balanced = sampling.BalancedBatches(labels, batch, settings.seed, device="cpu",
                                            images_per_class=max(1, batch // NUM_CLASSES))
        return lambda it: backend.to_device(balanced(it), device)
    per_epoch = n // batch
    order = {}  # the permutation of the current epoch, drawn once per epoch

    def shuffled(it):
        epoch, k = divmod(it, per_epoch)
        if order.get("epoch") != epoch:
            perm = _generator(settings.seed, BATCH_STREAM, epoch).permutation(n)
            order.update(epoch=epoch, perm=backend.to_device(perm, device))
        return order["perm"][k * batch:(k + 1) * batch]

    return shuffled


def _fraction(hits, mask, count):
    """The share of ``hits`` among the examples of ``mask`` (None when there are none)."""
    return float((hits & mask).sum()) / count if count else None


def train_run(settings, features, progress=False):
    """Train one run and return its record (a JSON-serialisable dict, see the module doc)."""
    device = settings.device
    if settings.features and settings.features != features.fingerprint:
        raise ValueError(f"imdb: run {settings.name} was set up for the features "
                         f"{settings.features}, not {features.fingerprint}")
    x_all, _, x_test, y_test = features.on(device)
    indices, labels, corrupted = training_set(settings.row, features.y_train, settings.seed)
    n, batch = indices.size, settings.batch_size
    if n < batch:
        raise ValueError(f"imdb: the training set of row {settings.row} has {n} examples, fewer "
                         f"than one batch of {batch}")
    x = x_all[backend.to_device(indices, device)]
    y = backend.to_device(labels, device)
    is_corrupted = backend.to_device(corrupted, device)
    n_corrupted = int(corrupted.sum())
    y_host_test = features.y_test
    test_counts = [int((y_host_test == k).sum()) for k in range(NUM_CLASSES)]
    test_is = [y_test == k for k in range(NUM_CLASSES)]

    model = build_model(settings, features.dim)
    opt = optim.SGD(model.parameters(), lr=settings.base_lr, momentum=settings.momentum,
                    weight_decay=settings.weight_decay, caffe_style=True)
    schedule = optim.InvLR(opt, gamma=settings.lr_gamma, power=settings.lr_power)
    loss_fn = loss_schedule(settings.method, **settings.loss_params)
    indices_of = batch_indices(settings, labels, device)

    def batches(it):
        chosen = indices_of(it)
        return Tensor(x[chosen], device=device), Tensor(y[chosen], device=device)

    eval_time = [0.0]

    def evaluate(model, it):
        started = time.perf_counter()
        test_logits = predict(model, Tensor(x_test, device=device), batch_size=8192)
        train_logits = predict(model, Tensor(x, device=device), batch_size=8192)
        test_hits = test_logits.argmax(axis=1) == y_test
        train_hits = train_logits.argmax(axis=1) == y
        metrics = {
            "test_accuracy": accuracy(test_logits, y_test),
            "test_class_accuracy": [_fraction(test_hits, test_is[k], test_counts[k])
                                    for k in range(NUM_CLASSES)],
            "test_class_histogram": class_histogram(test_logits, NUM_CLASSES),
            "train_accuracy": accuracy(train_logits, y),
            "train_accuracy_intact": _fraction(train_hits, ~is_corrupted, n - n_corrupted),
            "train_accuracy_corrupted": _fraction(train_hits, is_corrupted, n_corrupted),
        }
        eval_time[0] += time.perf_counter() - started
        return metrics

    history, diverged_by = History(), None
    started = time.perf_counter()
    try:
        fit(model, loss_fn, opt, batches, settings.iterations, NUM_CLASSES, scheduler=schedule,
            evaluate=evaluate, eval_every=settings.eval_every, log_every=settings.log_every,
            history=history, progress=progress, desc=settings.name)
    except FloatingPointError:
        # fit checks the loss at its log steps (iteration 1, then every log_every): it became
        # non-finite after the last step it logged. The weights are NaN or inf from then on;
        # the network is evaluated as it is (NaN logits: argmax picks class 0 for every review).
        last = history.steps[-1]["iteration"] if history.steps else 0
        diverged_by = (last // settings.log_every + 1) * settings.log_every if last else 1
        history.evals.append({"iteration": diverged_by, **evaluate(model, diverged_by)})
    wall_time = time.perf_counter() - started
    final = history.evals[-1]
    best = max(history.evals, key=lambda e: e["test_accuracy"])
    trained_iterations = diverged_by or settings.iterations
    return {
        "format": RECORD_FORMAT,
        "settings": settings.as_dict(),
        "final_test_accuracy": final["test_accuracy"],
        "best_test_accuracy": best["test_accuracy"],
        "best_iteration": best["iteration"],
        "final_test_class_histogram": final["test_class_histogram"],
        "final_one_class": one_class(final["test_class_histogram"]),
        "diverged_by": diverged_by,
        "train_size": n,
        "train_label_counts": [int((labels == k).sum()) for k in range(NUM_CLASSES)],
        "train_corrupted": n_corrupted,
        "noise_rate": n_corrupted / n,
        "wall_time": wall_time,
        "eval_time": eval_time[0],
        "step_ms": 1000 * (wall_time - eval_time[0]) / trained_iterations,
        "machine": {"platform": platform.platform(), "processor": _cpu_name(),
                    "cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "tinydm": tinydm.__version__},
        "warnings": history.warnings,
        "evals": history.evals,
        "steps": history.steps,
    }


def one_class(histogram):
    """Whether a predicted-class histogram puts (almost) every example in one class."""
    total = sum(histogram)
    return bool(total) and max(histogram) >= ONE_CLASS * total


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_path(out_dir, settings):
    """Where the record of a run is written."""
    name = f"{settings.method}{settings.variant}_seed{settings.seed}.json"
    return Path(out_dir) / settings.row / name


def load_record(out_dir, settings):
    """The saved record of a run if it exists with exactly these settings, else None."""
    path = run_path(out_dir, settings)
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if record.get("format") != RECORD_FORMAT or record.get("settings") != settings.as_dict():
        return None
    return record


def run_one(settings, features, out_dir, force=False, progress=False):
    """Train one run and save its record, unless it is already saved with the same settings.

    Returns ``(record, trained)``; ``trained`` is False for a run that was skipped.
    """
    if not settings.features:
        settings = replace(settings, features=features.fingerprint)
    if not force:
        record = load_record(out_dir, settings)
        if record is not None:
            return record, False
    record = train_run(settings, features, progress=progress)
    path = run_path(out_dir, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    return record, True


# ----------------------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------------------
@dataclass
class Table:
    """What :func:`run_table` did: every run's record, the summary per cell (:func:`summarise`),
    how many runs were trained and skipped, and the wall time."""

    records: list
    summary: list
    trained: int
    skipped: int
    wall_time: float


_WORKER = {}


def _init_worker(features, out_dir, force):
    _WORKER.update(features=features, out_dir=out_dir, force=force)


def _run_in_worker(settings):
    return run_one(settings, _WORKER["features"], _WORKER["out_dir"], _WORKER["force"])


def _describe(index, total, settings, record, trained):
    r = row(settings.row)
    text = (f"[{index:>3}/{total}] {r.title:<9} {settings.method + settings.variant:<7} "
            f"seed {settings.seed}  "
            f"final {100 * record['final_test_accuracy']:5.1f}  "
            f"best {100 * record['best_test_accuracy']:5.1f}")
    if record["diverged_by"]:
        text += f"  (diverged: non-finite loss by iteration {record['diverged_by']})"
    elif record["final_one_class"]:
        text += "  (one class)"
    if trained:
        text += f"  {record['wall_time']:.1f} s, {record['step_ms']:.2f} ms/step"
    else:
        text += "  (done before)"
    return text


def run_table(features, rows=ROW_KEYS, methods=METHODS, seeds=SEEDS, out_dir="runs/imdb",
              lam=None, beta=None, jobs=1, force=False, log=print, progress=False, **protocol):
    """Run (or reuse) every run of the table and summarise it.

    ``lam``/``beta`` replace DM's parameters in every row; ``protocol`` overrides the other
    settings (``iterations``, ``batch_size``, ``device``, ...; see :class:`RunSettings`).
    ``jobs > 1`` trains that many runs at a time in worker processes (CPU devices only: the
    MLP is so small that one run uses one core, see docs/results.md). ``log`` receives one line
    per run; ``progress`` shows a bar per run (with ``jobs=1``).
    """
    started = time.perf_counter()
    all_settings = [replace(s, features=features.fingerprint)
                    for s in table_settings(rows, methods, seeds, lam, beta, **protocol)]
    total = len(all_settings)
    records = [None if force else load_record(out_dir, s) for s in all_settings]
    todo = [i for i, record in enumerate(records) if record is None]
    skipped = total - len(todo)
    if skipped and log:
        log(f"{skipped} of {total} runs are already in {out_dir} with the same settings; "
            f"skipping them")
    done = skipped

    def finished(i, record, trained):
        nonlocal done
        records[i] = record
        done += 1
        if log:
            log(_describe(done, total, all_settings[i], record, trained))

    device = all_settings[0].device if all_settings else "cpu"
    if jobs > 1 and device == "cuda":
        raise ValueError("imdb: jobs > 1 runs several CPU processes; use jobs=1 on cuda")
    if jobs > 1 and len(todo) > 1:
        import concurrent.futures as cf
        import multiprocessing as mp
        context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with cf.ProcessPoolExecutor(min(jobs, len(todo)), mp_context=context,
                                    initializer=_init_worker,
                                    initargs=(features, str(out_dir), force)) as pool:
            futures = {pool.submit(_run_in_worker, all_settings[i]): i for i in todo}
            try:
                for future in cf.as_completed(futures):
                    finished(futures[future], *future.result())
            except BaseException:  # a failed run or Ctrl-C: stop, keep what is saved
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    else:
        for i in todo:
            finished(i, *run_one(all_settings[i], features, out_dir, force, progress=progress))
    return Table(records, summarise(records), trained=len(todo), skipped=skipped,
                 wall_time=time.perf_counter() - started)


def _mean_std(values):
    """Mean and sample standard deviation (ddof = 1; 0 for a single value)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def settings_of(record):
    """The :class:`RunSettings` of a record."""
    return RunSettings(**record["settings"])


def summarise(records):
    """One dict per (row, method, variant) cell, in the order first met: the remedies in use
    (``variant``, "" for none), the seeds, the final and best
    test accuracy of each run and their mean, sample std (ddof = 1), min and max (in %), the
    paper's number, our mean minus it, whether that is more than :data:`FLAG_POINTS`, and how
    many runs end predicting one class for (almost) every test review and how many diverged
    (non-finite loss; such a network predicts class 0 for every review)."""
    cells = {}
    for record in records:
        s = settings_of(record)
        cells.setdefault((s.row, s.method, s.variant), []).append(record)
    summary = []
    for (row_key, method, variant), runs in cells.items():
        final = [100 * r["final_test_accuracy"] for r in runs]
        best = [100 * r["best_test_accuracy"] for r in runs]
        final_mean, final_std = _mean_std(final)
        best_mean, best_std = _mean_std(best)
        paper = paper_value(row_key, method)
        summary.append({
            "row": row_key, "method": method, "variant": variant, "n": len(runs),
            "seeds": [r["settings"]["seed"] for r in runs],
            "loss_params": runs[0]["settings"]["loss_params"],
            "final": final, "final_mean": final_mean, "final_std": final_std,
            "final_min": min(final), "final_max": max(final),
            "best": best, "best_mean": best_mean, "best_std": best_std,
            "paper": paper, "diff": final_mean - paper,
            "flagged": abs(final_mean - paper) > FLAG_POINTS,
            "one_class": sum(r["final_one_class"] for r in runs),
            "diverged": sum(bool(r.get("diverged_by")) for r in runs),
        })
    return summary


def _grid(summary):
    """``(rows, methods, {(row, method): cell})`` in the table's order. One table shows one
    variant of each method (a run_table call has one set of remedies; :func:`rescue_table`
    compares variants)."""
    by_cell = {}
    for c in summary:
        if (c["row"], c["method"]) in by_cell:
            raise ValueError(f"imdb: the summary has two variants of {c['row']} {c['method']} "
                             f"({by_cell[c['row'], c['method']]['variant'] or 'plain'} and "
                             f"{c['variant'] or 'plain'}); compare variants with rescue_table")
        by_cell[c["row"], c["method"]] = c
    rows = [r for r in ROW_KEYS if any(k[0] == r for k in by_cell)]
    methods = [m for m in METHODS if any(k[1] == m for k in by_cell)]
    return rows, methods, by_cell


def _title(by_cell, method):
    """A column's title: the method and the remedies its runs used (``DM+warmup1000``)."""
    variants = sorted({c["variant"] for (_, m), c in by_cell.items() if m == method})
    return METHOD_TITLES[method] + "/".join(variants)


def format_table(summary, key="final"):
    """The table for a terminal: per row, our ``mean±std`` over the seeds and, beneath, the
    paper's number. ``*`` flags a cell more than 2 points from the paper, ``!k`` says that k
    runs end predicting one class for every test review. ``key``: "final" or "best"."""
    rows, methods, by_cell = _grid(summary)
    ours = {}
    for (r, m), cell in by_cell.items():
        mark = ("*" if cell["flagged"] and key == "final" else "") + \
            (f"!{cell['one_class']}" if cell["one_class"] else "")
        ours[r, m] = f"{cell[key + '_mean']:.1f}±{cell[key + '_std']:.1f}{mark}"
    titles = {m: _title(by_cell, m) for m in methods}
    width = {m: 2 + max([len(titles[m])] + [len(t) for (_, k), t in ours.items() if k == m])
             for m in methods}
    lines = [f"{'':<9} {'':<5}" + "".join(f"{titles[m]:>{width[m]}}" for m in methods)]
    for r in rows:
        lines.append(f"{row(r).title:<9} {'ours':<5}" + "".join(
            f"{ours.get((r, m), '-'):>{width[m]}}" for m in methods))
        lines.append(f"{'':<9} {'paper':<5}" + "".join(
            f"{paper_value(r, m) if (r, m) in by_cell else '-':>{width[m]}}" for m in methods))
    n = sorted({c["n"] for c in summary})
    lines.append(f"{key} test accuracy (%), mean±std over {'/'.join(map(str, n))} seed(s); "
                 f"* = more than {FLAG_POINTS:g} points from the paper; "
                 f"!k = k runs end predicting one class for every test review (50%)")
    diverged = [f"{row(c['row']).title} {METHOD_TITLES[c['method']]} ({c['diverged']}/{c['n']})"
                for c in summary if c["diverged"]]
    if diverged:
        lines.append("diverged (non-finite loss, then one class): " + ", ".join(diverged))
    return "\n".join(lines)


def markdown_table(summary, key="final"):
    """The table in Markdown: ``ours mean ± std (paper)``; a cell more than 2 points from the
    paper in bold, and the number of runs that end predicting one class as ``[k/n one-class]``
    (``, j diverged`` when j of them had a non-finite loss)."""
    rows, methods, by_cell = _grid(summary)
    lines = ["| | " + " | ".join(_title(by_cell, m) for m in methods) + " |",
             "|---|" + "---:|" * len(methods)]
    for r in rows:
        cells = []
        for m in methods:
            cell = by_cell.get((r, m))
            if cell is None:
                cells.append("")
                continue
            text = f"{cell[key + '_mean']:.1f} ± {cell[key + '_std']:.1f}"
            if cell["flagged"] and key == "final":
                text = f"**{text}**"
            text += f" ({cell['paper']:.1f})"
            if cell["one_class"]:
                text += f" [{cell['one_class']}/{cell['n']} one-class"
                text += f", {cell['diverged']} diverged]" if cell["diverged"] else "]"
            cells.append(text)
        lines.append(f"| {row(r).title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Emphasis collapse: the remedies against the plain run (docs/emphasis-collapse.md)
# ----------------------------------------------------------------------------------------------
def load_records(out_dir):
    """Every complete run record under ``out_dir`` (any row, method and variant), in the order
    of their paths."""
    records = []
    for path in sorted(Path(out_dir).rglob("*.json")):
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("format") == RECORD_FORMAT:
            records.append(record)
    return records


def collapse_course(record):
    """How a run went through emphasis collapse: ``one_class_evals``, the share of its
    evaluations that predict one class for (almost) every test review; ``last_one_class``, the
    iteration of the last of them (None: never); ``final_one_class``."""
    flags = [one_class(e["test_class_histogram"]) for e in record["evals"]]
    last = [e["iteration"] for e, f in zip(record["evals"], flags) if f]
    return {"one_class_evals": sum(flags) / len(flags) if flags else 0.0,
            "last_one_class": last[-1] if last else None,
            "final_one_class": record["final_one_class"]}


def rescue_table(records, method="dm"):
    """Each remedy against the plain run of the same row and seeds: one dict per (row,
    variant) of ``method``, rows in table order, the plain variant (``""``) first, then the
    others in the order first met. Each has the seeds, the final test accuracies (%) and
    whether each run ends one-class (``ends_one_class``), their mean and sample std,
    ``final_healthy_mean`` (the mean without the one-class runs), ``one_class`` (how many
    end one-class), ``one_class_evals`` (mean share of one-class evaluations), the training
    time summed over the runs (``wall_time``, s) and, against the plain runs of the same
    seeds:

    * ``collapsed``: how many of these seeds end one-class without the remedy, ``rescued``:
      how many of those do not with it, ``new``: how many end one-class only with it;
    * ``cost``: the mean of (this run's final - the plain run's final), in points, over the
      seeds where neither ends one-class (``cost_n`` of them; ``cost_min``, ``cost_max``):
      what the remedy costs, or gains, where there was nothing to rescue.

    Seeds without a plain run are left out of the comparisons (``paired`` says how many
    remain)."""
    groups, protocols = {}, {}
    for record in records:
        s = settings_of(record)
        if s.method != method:
            continue
        groups.setdefault((s.row, s.variant), {})[s.seed] = record
        # what must agree within a row for the comparison to mean anything (evaluation and
        # logging frequencies, the device and the remedies may differ)
        protocol = {k: v for k, v in s.as_dict().items()
                    if k not in ("seed", "loss_params", "sampler", "eval_every", "log_every",
                                 "device")}
        protocol.update({k: v for k, v in s.loss_params.items() if k not in REMEDIES})
        if protocols.setdefault(s.row, protocol) != protocol:
            differ = sorted(k for k in protocol if protocols[s.row].get(k) != protocol[k])
            raise ValueError(f"imdb: the runs of row {s.row} differ in {', '.join(differ)}; "
                             f"rescue_table compares runs that differ only by the remedies")
    plain_of = {r: groups.get((r, ""), {}) for r in ROW_KEYS}
    table = []
    for r in ROW_KEYS:
        variants = [v for (row_key, v) in groups if row_key == r]
        for variant in sorted(variants, key=lambda v: (v != "", variants.index(v))):
            runs = groups[r, variant]
            seeds = sorted(runs)
            final = [100 * runs[s]["final_test_accuracy"] for s in seeds]
            mean, std = _mean_std(final)
            ends = {s: runs[s]["final_one_class"] for s in seeds}
            paired = [s for s in seeds if s in plain_of[r]]
            was = {s: plain_of[r][s]["final_one_class"] for s in paired}
            healthy = [s for s in paired if not was[s] and not ends[s]]
            cost = [100 * (runs[s]["final_test_accuracy"] - plain_of[r][s]["final_test_accuracy"])
                    for s in healthy]
            courses = [collapse_course(runs[s]) for s in seeds]
            table.append({
                "row": r, "title": row(r).title, "method": method, "variant": variant,
                "n": len(seeds), "seeds": seeds,
                "loss_params": runs[seeds[0]]["settings"]["loss_params"],
                "sampler": runs[seeds[0]]["settings"]["sampler"],
                "final": final, "ends_one_class": [ends[s] for s in seeds],
                "final_mean": mean, "final_std": std,
                "final_healthy_mean": (float(np.mean([f for f, s in zip(final, seeds)
                                                      if not ends[s]]))
                                       if not all(ends.values()) else None),
                "one_class": sum(ends.values()),
                "one_class_evals": float(np.mean([c["one_class_evals"] for c in courses])),
                "paired": len(paired), "collapsed": sum(was.values()),
                "rescued": sum(was[s] and not ends[s] for s in paired),
                "new": sum(ends[s] and not was[s] for s in paired),
                "cost": float(np.mean(cost)) if cost else None, "cost_n": len(cost),
                "cost_min": min(cost) if cost else None, "cost_max": max(cost) if cost else None,
                "wall_time": float(sum(runs[s]["wall_time"] for s in seeds)),
            })
    return table


def markdown_rescue_table(table):
    """The rescue table in Markdown, one line per row and remedy."""
    lines = ["| row | DM | seeds | end one-class | rescued | newly one-class | final acc. (%) "
             "| mean of the others | cost vs plain, same seeds (points) | one-class evals |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in table:
        healthy = "-" if c["final_healthy_mean"] is None else f"{c['final_healthy_mean']:.1f}"
        if c["variant"] == "":
            rescued = new = cost = "(plain)"
        else:
            rescued = f"{c['rescued']}/{c['collapsed']}"
            new = f"{c['new']}"
            cost = ("-" if c["cost"] is None else
                    f"{c['cost']:+.2f} [{c['cost_min']:+.1f}, {c['cost_max']:+.1f}] "
                    f"(n={c['cost_n']})")
        lines.append(f"| {row(c['row']).title} | {c['variant'] or 'plain'} | {c['n']} | "
                     f"{c['one_class']}/{c['n']} | {rescued} | {new} | "
                     f"{c['final_mean']:.1f} ± {c['final_std']:.1f} | {healthy} | {cost} | "
                     f"{100 * c['one_class_evals']:.0f}% |")
    return "\n".join(lines)


RESCUE_COLUMNS = ("row", "method", "variant", "loss_params", "sampler", "n", "seeds", "final",
                  "ends_one_class", "final_mean", "final_std", "final_healthy_mean", "one_class",
                  "one_class_evals", "paired", "collapsed", "rescued", "new", "cost", "cost_n",
                  "cost_min", "cost_max", "wall_time")


def write_rescue_report(records, report_dir, figure_dir=None, command=None, method="dm"):
    """Write ``rescue.md`` and ``rescue.csv`` (:func:`rescue_table` of ``records``) into
    ``report_dir`` and the figures ``collapse_imdb_seeds.png`` (the plain runs at r = 0.4),
    ``collapse_imdb_remedies.png`` (every variant at r = 0.4), ``collapse_rescue.png`` (final
    accuracy per seed, row and variant) and ``collapse_feedback.png`` (the analytic model of
    docs/emphasis-collapse.md) into ``figure_dir`` (default ``report_dir``). Returns the
    paths written."""
    from .. import plot

    report_dir = Path(report_dir)
    figure_dir = Path(figure_dir) if figure_dir is not None else report_dir
    report_dir.mkdir(parents=True, exist_ok=True)
    figure_dir.mkdir(parents=True, exist_ok=True)
    table = rescue_table(records, method)
    paths = {"rescue_md": report_dir / "rescue.md", "rescue_csv": report_dir / "rescue.csv"}
    with open(paths["rescue_csv"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(RESCUE_COLUMNS)
        for c in table:
            writer.writerow([_csv_value(c[k]) for k in RESCUE_COLUMNS])
    with open(paths["rescue_md"], "w") as f:
        f.write(f"# IMDB: remedies for emphasis collapse ({method.upper()}), against the plain "
                f"run of the same seeds\n\n")
        if command:
            f.write(f"Command: `{command}`\n\n")
        f.write(markdown_rescue_table(table) + "\n\n")
        f.write(f"*End one-class*: the final evaluation predicts one class for at least "
                f"{ONE_CLASS:.0%} of the test reviews (50% accuracy). *Rescued*: of the seeds "
                f"whose plain run ends one-class, how many do not with the remedy. *Cost*: mean "
                f"(remedy - plain) final accuracy over the seeds where neither ends one-class "
                f"[min, max]. *One-class evals*: mean share of the evaluations that are "
                f"one-class. Training time summed over the runs of each line is in "
                f"rescue.csv (wall_time, s).\n")
    figures = {"collapse_rescue": plot.collapse_rescue(table),
               "collapse_feedback": plot.collapse_feedback()}
    r04 = [r for r in records if r["settings"]["row"] == "r0.4"
           and r["settings"]["method"] == method]
    plain = [r for r in r04 if settings_of(r).variant == ""]
    if plain:
        figures["collapse_imdb_seeds"] = plot.collapse_seeds(plain)
    if r04:
        figures["collapse_imdb_remedies"] = plot.collapse_remedies(
            {v: [r for r in r04 if settings_of(r).variant == v]
             for v in dict.fromkeys(c["variant"] for c in table if c["row"] == "r0.4")})
    for name, fig in figures.items():
        paths[name] = plot.save(fig, figure_dir, name, formats=("png",), dpi=100)[0]
    return paths


TABLE_COLUMNS = ("row", "method", "loss_params", "n", "seeds", "final_mean", "final_std",
                 "final_min", "final_max", "best_mean", "best_std", "paper", "diff", "flagged",
                 "one_class", "diverged", "final", "best", "variant")
CURVE_COLUMNS = ("row", "method", "seed", "iteration", "test_accuracy", "test_predicted_neg",
                 "test_predicted_pos", "test_accuracy_neg", "test_accuracy_pos",
                 "train_accuracy", "train_accuracy_intact", "train_accuracy_corrupted")


def _csv_value(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (list, tuple)):
        return " ".join(_csv_value(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{k}={v:g}" for k, v in value.items())
    return "" if value is None else str(value)


def write_table_csv(summary, path):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(TABLE_COLUMNS)
        for cell in summary:
            writer.writerow([_csv_value(cell[c]) for c in TABLE_COLUMNS])


def write_curves_csv(records, path):
    """Every evaluation of every run, one line each (long format, for plotting elsewhere)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CURVE_COLUMNS)
        for record in records:
            s = record["settings"]
            for e in record["evals"]:
                writer.writerow([_csv_value(v) for v in (
                    s["row"], s["method"], s["seed"], e["iteration"], e["test_accuracy"],
                    *e["test_class_histogram"], *e["test_class_accuracy"], e["train_accuracy"],
                    e["train_accuracy_intact"], e["train_accuracy_corrupted"])])


def write_report(table, report_dir, figure_dir=None, command=None, notes=None):
    """Write ``table.csv``, ``table.md`` (final and best), ``curves.csv`` and the figures
    ``imdb_curves.png`` and ``imdb_vs_paper.png`` (into ``figure_dir``, default
    ``report_dir``). ``command`` and ``notes`` (text) go into ``table.md``. Returns the paths
    written."""
    from .. import plot

    report_dir = Path(report_dir)
    figure_dir = Path(figure_dir) if figure_dir is not None else report_dir
    report_dir.mkdir(parents=True, exist_ok=True)
    figure_dir.mkdir(parents=True, exist_ok=True)
    paths = {"table_csv": report_dir / "table.csv", "table_md": report_dir / "table.md",
             "curves_csv": report_dir / "curves.csv",
             "curves_png": figure_dir / "imdb_curves.png",
             "vs_paper_png": figure_dir / "imdb_vs_paper.png"}
    write_table_csv(table.summary, paths["table_csv"])
    write_curves_csv(table.records, paths["curves_csv"])
    machines = sorted({f"{r['machine']['processor']} ({r['machine']['cpus']} CPUs), "
                       f"device {r['settings']['device']}" for r in table.records})
    train_time = sum(r["wall_time"] for r in table.records)
    with open(paths["table_md"], "w") as f:
        f.write("# IMDB, Table 5: measured (mean ± std over seeds) and the paper's "
                "(in brackets)\n\n")
        if command:
            f.write(f"Command: `{command}`\n\n")
        f.write(f"Machine: {'; '.join(machines)}. Runs: {len(table.records)} "
                f"({table.trained} trained, {table.skipped} reused), wall time "
                f"{table.wall_time:.0f} s; "
                f"training and evaluation time summed over runs {train_time:.0f} s; per step "
                f"{per_step_ms(table.records):.3f} ms (median over runs).\n\n")
        if notes:
            f.write(notes.strip() + "\n\n")
        f.write("## Final test accuracy (%) after the last iteration\n\n")
        f.write(markdown_table(table.summary, "final") + "\n\n")
        f.write(f"Bold: more than {FLAG_POINTS:g} points from the paper. [k/n one-class]: k of "
                f"the n runs end predicting one class for at least {ONE_CLASS:.0%} of the test "
                f"reviews (50% accuracy on the balanced test set).\n\n")
        f.write("## Best test accuracy (%) over the evaluations\n\n")
        f.write(markdown_table(table.summary, "best") + "\n")
    rows = [(r, row(r).title) for r in ROW_KEYS if any(c["row"] == r for c in table.summary)]
    methods = [m for m in METHODS if any(c["method"] == m for c in table.summary)]
    plot.save(plot.imdb_curves(table.records, rows, methods), figure_dir, "imdb_curves",
              formats=("png",), dpi=100)
    plot.save(plot.imdb_vs_paper(table.summary, rows, methods), figure_dir, "imdb_vs_paper",
              formats=("png",), dpi=100)
    return paths


def per_step_ms(records):
    """Median training time per iteration over runs (ms, evaluations excluded)."""
    return float(np.median([r["step_ms"] for r in records])) if records else float("nan")
