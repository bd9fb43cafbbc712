"""CIFAR-10/100 under label noise with the CIFAR ResNets: the paper's Tables 1 and 9 and the
learning dynamics of its Figures 2 and 5.

::

    from tinydm.experiments import cifar
    config = cifar.Config(dataset="cifar10", depth=20, noise="symmetric", noise_rate=0.4,
                          loss="dm", loss_params={"lam": 1.0, "beta": 16.0}, data_dir="/root/data")
    results = cifar.run(config)                 # writes runs/cifar/<name>/results.json, figures
    cifar.run(config, resume=True)              # continues a killed run from its last checkpoint

``examples/cifar_resnet.py`` is the command line over this module; the tests run it for a few
iterations on synthetic images (:func:`synthetic_cifar`).

Protocol
--------
Defaults (:class:`Config`) are the CIFAR-10 setup: ResNet-20 (option A shortcuts), batches of
128, 30,000 iterations of SGD with momentum 0.9 (Caffe's form, as the released code), weight
decay 5e-4 (the released solver files; the paper's text says 1e-4), lr 0.1 divided by 10 at
50% and 73.3% of the iterations (the paper's 15k and 22k of 30k); 40% symmetric label noise;
augmentation pad 4 + random crop + flip and the per-channel mean subtracted
(tinydm.data.transforms); shuffled epochs. The paper's CIFAR-100 protocol of Table 1 is
``dataset="cifar100", depth=44, batch_size=256, sampler="balanced", augment="resize"``
(32 classes x 8 images per batch, classes by the noisy label; REFERENCE.md).

Data. Optionally a class-balanced subset (``subset_per_class`` images of each class, by clean
label), then a clean validation split (``val_fraction`` of the training data, stratified by
class, never corrupted: the paper searches hyperparameters on 80/20 splits), then label noise
on what is left: ``"symmetric"`` (any class, Tables 1, 2, 9), ``"asymmetric"`` (CIFAR-100
superclass swaps, Table 1), ``"pair"`` (CIFAR-10 class-dependent flips). The noisy labels are
the ones the network sees, the class-balanced sampler included.

Seeds. ``seed`` seeds the initialisation (``tinydm.manual_seed``, drawn on the host so every
device starts from the same weights), the batch order and the augmentation
(tinydm.data.sampling: generators made from ``(seed, stream, epoch or iteration)``); the data
draws (subset, split, noise, evaluation subset) come from ``data_seed`` (default ``seed``),
each from its own stream ``SeedSequence(data_seed, spawn_key=(k,))``.

Evaluation (every ``eval_every`` iterations and at the end), each a record in ``evals``:

* ``test_accuracy`` on the whole test set and ``test_class_histogram`` (how many test images
  are predicted as each class); ``val_accuracy`` on the clean validation split, if any;
* on the training set, against the labels it was given (Table 9's "Corrupted" column,
  ``train_accuracy_noisy_labels``) and against the clean ones ("Intact",
  ``train_accuracy_clean_labels``); ``noisy_memorised``: the share of the corrupted examples
  predicted as their wrong label, ``noisy_corrected``: as their true label;
* ``mean_p_clean`` / ``mean_p_noisy``: the mean ``p_i`` (probability of the given label) of
  the intact and of the corrupted training examples (Figure 2a).

Training-set metrics use the examples of ``eval_train_subset`` (a fixed random subset, to keep
evaluations cheap on a CPU) or all of them; ``results["data"]["eval_train_note"]`` says which.
Per logged step :func:`tinydm.train.fit` records the loss, batch accuracy and the effective
sample size of the batch's weights as a fraction, ``(sum w)^2 / (N sum w^2)``; the results add
the ESS itself (fraction x N).

Files in ``out_dir`` (default ``runs/cifar/<name>``): ``results.json`` (rewritten after every
evaluation, ``"status": "running"`` until the end), ``checkpoint.npz`` (after every evaluation:
model, optimiser, schedule, history and config) and the figures ``accuracy.png``, ``p_i.png``,
``ess.png``, ``test_predictions.png``. ``run(config, resume=True)`` continues from the
checkpoint and ends with exactly the weights and history of an uninterrupted run, because the
batches are pure functions of the iteration and everything else is in the checkpoint.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

import tinydm
from .. import backend, checkpoint, losses, nn, optim
from ..data import cifar as cifar_data
from ..data import noise, sampling, transforms
from ..tensor import Tensor, no_grad
from ..files import write_json
from ..train import History, accuracy, class_histogram, fit, loss_schedule, predict

RESULTS_FORMAT = "tinydm-cifar-run-v1"
DATASETS = ("cifar10", "cifar100", "synthetic")
NOISES = ("none", "symmetric", "asymmetric", "pair")
SAMPLERS = ("shuffle", "balanced")
SGD_STYLES = ("caffe", "pytorch")
#: Fractions of the iterations where the lr is divided by ``lr_gamma`` when ``milestones`` is
#: not given: the paper's 15k and 22k of 30k.
DEFAULT_MILESTONES = (0.5, 22 / 30)
#: Spawn keys of the data draws of a ``data_seed``.
DATA_STREAMS = {"subset": 0, "split": 1, "noise": 2, "eval_subset": 3, "synthetic": 4}
#: Config fields a resumed run may change: they do not change what is computed.
RESUMABLE = ("iterations", "device", "data_dir", "download", "out_dir")
CHECKPOINT = "checkpoint.npz"
RESULTS = "results.json"
FIGURES = ("accuracy", "p_i", "ess", "test_predictions")


@dataclass(frozen=True)
class Config:
    """Everything that determines a run (see the module docstring for the protocol).

    ``loss`` is any name of :func:`tinydm.losses.get` with its ``loss_params`` (for DM these
    include the remedies for emphasis collapse, docs/emphasis-collapse.md: ``warmup``,
    ``ess_floor``, ``per_class``; ``sampler="balanced"`` is the fourth);
    ``milestones`` are iterations (``None``: :data:`DEFAULT_MILESTONES` of ``iterations``);
    ``eval_train_subset`` is a number of training examples (``None``: all of them);
    ``std`` divides the images per channel after the mean (``None``: no division, as released).
    """

    dataset: str = "cifar10"
    data_dir: str | None = None
    download: bool = False
    synthetic_sizes: tuple = (512, 256)  # (train, test) images when dataset == "synthetic"
    synthetic_image_size: int = 32
    noise: str = "symmetric"
    noise_rate: float = 0.4
    noise_exact: bool = False
    subset_per_class: int | None = None
    val_fraction: float = 0.0
    depth: int = 20
    shortcut: str = "A"
    loss: str = "cce"
    loss_params: dict = field(default_factory=dict)
    iterations: int = 30_000
    batch_size: int = 128
    lr: float = 0.1
    milestones: tuple | None = None
    lr_gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    sgd: str = "caffe"
    augment: str = "pad"
    std: tuple | None = None
    sampler: str = "shuffle"
    images_per_class: int = 8
    eval_every: int = 1000
    eval_train_subset: int | None = None
    eval_batch_size: int = 500
    log_every: int = 100
    seed: int = 123
    data_seed: int | None = None
    device: str = "cpu"
    out_dir: str | None = None

    def __post_init__(self):
        def choice(name, options):
            if getattr(self, name) not in options:
                raise ValueError(f"cifar.Config: {name} must be one of {options}, got "
                                 f"{getattr(self, name)!r}")

        def positive_int(name, allow_none=False, minimum=1):
            value = getattr(self, name)
            if allow_none and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"cifar.Config: {name} must be an integer >= {minimum}, "
                                 f"got {value!r}")

        choice("dataset", DATASETS)
        choice("noise", NOISES)
        choice("sampler", SAMPLERS)
        choice("sgd", SGD_STYLES)
        choice("augment", transforms.AUGMENTATIONS)
        if self.noise == "asymmetric" and self.dataset != "cifar100":
            raise ValueError("cifar.Config: noise 'asymmetric' (superclass swaps) is CIFAR-100's")
        if self.noise == "pair" and self.dataset != "cifar10":
            raise ValueError("cifar.Config: noise 'pair' (class-dependent flips) is CIFAR-10's")
        if not 0.0 <= self.noise_rate <= 1.0:
            raise ValueError(f"cifar.Config: noise_rate must be in [0, 1], got {self.noise_rate}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"cifar.Config: val_fraction must be in [0, 1), got "
                             f"{self.val_fraction}")
        for name in ("iterations", "batch_size", "eval_every", "log_every", "eval_batch_size",
                     "images_per_class", "synthetic_image_size"):
            positive_int(name)
        positive_int("seed", minimum=0)
        positive_int("data_seed", allow_none=True, minimum=0)
        positive_int("subset_per_class", allow_none=True)
        positive_int("eval_train_subset", allow_none=True)
        if self.lr < 0 or self.momentum < 0 or self.weight_decay < 0 or self.lr_gamma <= 0:
            raise ValueError("cifar.Config: lr, momentum and weight_decay must be >= 0 and "
                             "lr_gamma > 0")
        if self.milestones is not None and any(m < 0 for m in self.milestones):
            raise ValueError(f"cifar.Config: milestones must be iterations >= 0, got "
                             f"{self.milestones}")
        loss_schedule(self.loss, **self.loss_params)  # a clear error now for a bad name or parameter
        backend.check_device(self.device)

    def resolved(self):
        """This config with the defaults that depend on others filled in: ``milestones`` from
        ``iterations``, ``data_seed`` from ``seed``, ``out_dir`` from :attr:`name`. The
        resolved config is what results and checkpoints record."""
        milestones = self.milestones
        if milestones is None:
            milestones = tuple(int(round(f * self.iterations)) for f in DEFAULT_MILESTONES)
        return replace(self, milestones=tuple(int(m) for m in milestones),
                       data_seed=self.seed if self.data_seed is None else self.data_seed,
                       out_dir=self.out_dir or str(Path("runs") / "cifar" / self.name),
                       loss_params={k: v if isinstance(v, bool) else float(v)  # per_class
                                    for k, v in self.loss_params.items()},
                       synthetic_sizes=tuple(self.synthetic_sizes),
                       std=None if self.std is None else tuple(self.std))

    @property
    def name(self):
        """A folder name: data set, depth, noise, method and seed."""
        params = "".join(f"_{k}{v:g}" for k, v in self.loss_params.items())
        noise_part = "clean" if self.noise == "none" or self.noise_rate == 0 else \
            f"{self.noise}{self.noise_rate:g}"
        return f"{self.dataset}_resnet{self.depth}_{noise_part}_{self.loss}{params}_seed{self.seed}"

    def as_dict(self):
        """JSON-ready (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
def synthetic_cifar(num_train=512, num_test=256, num_classes=10, image_size=32, seed=0):
    """A small learnable stand-in for CIFAR (:class:`tinydm.data.cifar.CifarData`): each class
    is a random 4x4 colour pattern blown up to ``image_size`` (a multiple of 4), plus pixel noise;
    uint8 images, balanced labels. For tests and smoke runs, no download needed."""
    if image_size % 4:
        raise ValueError(f"synthetic_cifar: image_size must be a multiple of 4, got {image_size}")
    rng = np.random.default_rng(seed)
    patterns = rng.uniform(40, 215, size=(num_classes, 3, 4, 4))
    block = np.ones((image_size // 4, image_size // 4))

    def images(n):
        labels = np.arange(n) % num_classes
        rng.shuffle(labels)
        x = np.kron(patterns[labels], block)
        x = x + rng.normal(0, 40, size=x.shape)
        return np.clip(np.rint(x), 0, 255).astype(np.uint8), labels.astype(np.int64)

    train_images, train_labels = images(num_train)
    test_images, test_labels = images(num_test)
    return cifar_data.CifarData(train_images, train_labels, test_images, test_labels,
                                tuple(f"class{k}" for k in range(num_classes)))


def _generator(seed, stream):
    """The NumPy generator of one data draw (:data:`DATA_STREAMS`) of a seed."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(DATA_STREAMS[stream],)))


def load_dataset(config):
    """The raw data set of a config: CIFAR-10/100 from ``data_dir`` or synthetic images."""
    if config.dataset == "synthetic":
        n_train, n_test = config.synthetic_sizes
        return synthetic_cifar(n_train, n_test, image_size=config.synthetic_image_size,
                               seed=_generator(config.resolved().data_seed, "synthetic"))
    loader = cifar_data.load_cifar10 if config.dataset == "cifar10" else cifar_data.load_cifar100
    return loader(config.data_dir, download=config.download)


@dataclass
class RunData:
    """The host arrays of a run: the training images with their given (``labels``) and clean
    labels and the ``corrupted`` mask, the clean validation split, the test set, and
    ``eval_index`` (the training examples the training-set metrics use)."""

    train_images: np.ndarray
    labels: np.ndarray
    clean_labels: np.ndarray
    corrupted: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple
    eval_index: np.ndarray

    @property
    def num_classes(self):
        return len(self.classes)

    def summary(self, config):
        n, m = len(self.labels), len(self.eval_index)
        note = (f"training-set metrics on all {n} training examples" if m == n else
                f"training-set metrics on a fixed random subset of {m} of the {n} training "
                f"examples ({int(self.corrupted[self.eval_index].sum())} of them corrupted)")
        return {"dataset": config.dataset, "num_classes": self.num_classes,
                "classes": list(self.classes),
                "train_size": n, "val_size": len(self.val_labels),
                "test_size": len(self.test_labels),
                "image_shape": list(self.train_images.shape[1:]),
                "noise": config.noise, "noise_rate_requested": config.noise_rate,
                "noise_rate_realised": float(self.corrupted.mean()) if n else 0.0,
                "train_label_counts": np.bincount(self.labels, minlength=self.num_classes).tolist(),
                "eval_train_size": m, "eval_train_note": note}


def _stratified_split(labels, fraction, rng):
    """Indices ``(kept, held_out)``: ``round(fraction * n_c)`` random examples of each class c
    held out, both in increasing order."""
    held = np.zeros(labels.size, dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        held[rng.choice(idx, size=int(round(fraction * idx.size)), replace=False)] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


def prepare_data(config, dataset=None):
    """Subset, validation split, label noise and evaluation subset of a config (on the host).

    ``dataset``: a :class:`tinydm.data.cifar.CifarData` to use instead of loading one.
    """
    config = config.resolved()
    ds = load_dataset(config) if dataset is None else dataset
    images, clean = ds.train_images, np.asarray(ds.train_labels, dtype=np.int64)
    coarse = getattr(ds, "train_coarse_labels", None)
    num_classes = len(ds.classes)
    keep = np.arange(clean.size)
    if config.subset_per_class is not None:
        counts = np.bincount(clean, minlength=num_classes)
        if counts.min() < config.subset_per_class:
            raise ValueError(f"cifar: subset_per_class={config.subset_per_class}, but a class has "
                             f"only {counts.min()} training images")
        keep = noise.imbalance(clean, {c: config.subset_per_class for c in range(num_classes)},
                               _generator(config.data_seed, "subset"))
    val_index = np.zeros(0, dtype=np.int64)
    if config.val_fraction > 0:
        kept, held = _stratified_split(clean[keep], config.val_fraction,
                                       _generator(config.data_seed, "split"))
        keep, val_index = keep[kept], keep[held]
    train_clean = clean[keep]
    g = _generator(config.data_seed, "noise")
    if config.noise == "none" or config.noise_rate == 0:
        noisy = noise.NoisyLabels(train_clean.copy(), np.zeros(train_clean.size, bool), 0.0)
    elif config.noise == "symmetric":
        noisy = noise.symmetric(train_clean, config.noise_rate, num_classes, g, config.noise_exact)
    elif config.noise == "asymmetric":
        noisy = noise.asymmetric_cifar100(train_clean, coarse[keep], config.noise_rate, g,
                                          config.noise_exact)
    else:
        noisy = noise.cifar10_class_dependent(train_clean, config.noise_rate, g, config.noise_exact)
    n = keep.size
    if n < config.batch_size:
        raise ValueError(f"cifar: {n} training examples, fewer than one batch of "
                         f"{config.batch_size}")
    m = n if config.eval_train_subset is None else min(config.eval_train_subset, n)
    eval_index = (np.arange(n) if m == n else
                  np.sort(_generator(config.data_seed, "eval_subset").choice(n, m, replace=False)))
    return RunData(images[keep], noisy.labels, train_clean, noisy.corrupted, images[val_index],
                   clean[val_index], ds.test_images, np.asarray(ds.test_labels, dtype=np.int64),
                   tuple(ds.classes), eval_index)


# ----------------------------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------------------------
def build_model(config, num_classes):
    """The CIFAR ResNet, initialised on the host from ``seed`` and moved to the device."""
    tinydm.manual_seed(config.seed)
    with backend.device("cpu"):
        model = nn.resnet_cifar(config.depth, num_classes, shortcut=config.shortcut)
    return model.to(config.device)


def build_optimizer(config, model):
    """SGD with momentum and weight decay on every parameter, and the multistep schedule."""
    opt = optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                    weight_decay=config.weight_decay, caffe_style=config.sgd == "caffe")
    return opt, optim.MultiStepLR(opt, config.milestones, gamma=config.lr_gamma)


def make_sampler(config, labels, device):
    """Batch indices per iteration (tinydm.data.sampling), from the given (noisy) labels."""
    if config.sampler == "balanced":
        return sampling.BalancedBatches(labels, config.batch_size, config.seed,
                                        config.images_per_class, device=device)
    return sampling.ShuffledBatches(len(labels), config.batch_size, config.seed, device=device)


class Evaluator:
    """The evaluation of the module docstring, on the device: ``evaluator(model, it) -> dict``."""

    def __init__(self, data, pipeline, config, prepared_train):
        dev = config.device
        self.pipeline, self.batch_size = pipeline, config.eval_batch_size
        self.num_classes = data.num_classes
        self.test = pipeline.prepare(backend.to_device(data.test_images, dev))
        self.test_labels = backend.to_device(data.test_labels, dev)
        self.val = (pipeline.prepare(backend.to_device(data.val_images, dev))
                    if len(data.val_labels) else None)
        self.val_labels = backend.to_device(data.val_labels, dev)
        sub = data.eval_index
        full = sub.size == data.labels.size
        self.train = prepared_train if full else prepared_train[backend.to_device(sub, dev)]
        self.given = backend.to_device(data.labels[sub], dev)
        self.clean = backend.to_device(data.clean_labels[sub], dev)
        self.corrupted = backend.to_device(data.corrupted[sub], dev)
        self.n_noisy = int(data.corrupted[sub].sum())
        self.n_clean = sub.size - self.n_noisy

    def logits(self, model, images):
        """Logits of prepared images, in evaluation mode, ``batch_size`` images at a time."""
        xp = backend.get_array_module(images)
        parts = [predict(model, Tensor(self.pipeline.test(images[s:s + self.batch_size])),
                         batch_size=self.batch_size)
                 for s in range(0, images.shape[0], self.batch_size)]
        return xp.concatenate(parts, axis=0)

    def __call__(self, model, it):
        started = time.perf_counter()
        test_logits = self.logits(model, self.test)
        metrics = {"test_accuracy": accuracy(test_logits, self.test_labels),
                   "test_class_histogram": class_histogram(test_logits, self.num_classes)}
        if self.val is not None:
            metrics["val_accuracy"] = accuracy(self.logits(model, self.val), self.val_labels)
        train_logits = self.logits(model, self.train)
        predicted = train_logits.argmax(axis=1)
        with no_grad():  # p_i of the given labels, as the loss nodes compute it (stably)
            p = losses.details(losses.cce(Tensor(train_logits), Tensor(self.given)))["p_i"].data
        noisy, clean = self.corrupted, ~self.corrupted

        def share(values, mask, count):
            return float((values * mask).sum()) / count if count else None

        metrics.update({
            "train_accuracy_noisy_labels": accuracy(train_logits, self.given),
            "train_accuracy_clean_labels": accuracy(train_logits, self.clean),
            "mean_p_clean": share(p, clean, self.n_clean),
            "mean_p_noisy": share(p, noisy, self.n_noisy),
            "noisy_memorised": share(predicted == self.given, noisy, self.n_noisy),
            "noisy_corrected": share(predicted == self.clean, noisy, self.n_noisy),
            "eval_seconds": time.perf_counter() - started,
        })
        return metrics


def _check_resumable(saved, config):
    differ = sorted(k for k in saved if k not in RESUMABLE and saved[k] != config.get(k))
    if differ:
        raise ValueError("cifar: --resume with different settings than the checkpoint's: "
                         + "; ".join(f"{k}: {saved[k]!r} -> {config.get(k)!r}" for k in differ))


def run(config, resume=False, overwrite=False, progress=True, figures=True, dataset=None,
        log=print):
    """Train one run of ``config`` and return its results (also written to ``out_dir``).

    ``resume``: continue from ``out_dir/checkpoint.npz`` if it exists (else start afresh);
    without it, an existing checkpoint is an error unless ``overwrite``. ``dataset``: a
    :class:`tinydm.data.cifar.CifarData` to use instead of loading ``config.dataset``.
    """
    config = config.resolved()
    out = Path(config.out_dir)
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists() and not (resume or overwrite):
        raise FileExistsError(f"cifar: {ckpt_path} exists; pass resume=True (--resume) to continue "
                              f"that run or overwrite=True (--overwrite) to start again")
    out.mkdir(parents=True, exist_ok=True)
    log = log or (lambda *_: None)

    with backend.device(config.device):
        data = prepare_data(config, dataset)
        info = data.summary(config)
        pipeline = transforms.Pipeline(config.augment, std=config.std)
        dev = config.device
        train_images = pipeline.prepare(backend.to_device(data.train_images, dev))
        labels = backend.to_device(data.labels, dev)
        sampler = make_sampler(config, data.labels, dev)
        evaluator = Evaluator(data, pipeline, config, train_images)
        model = build_model(config, data.num_classes)
        opt, schedule = build_optimizer(config, model)
        loss_fn = loss_schedule(config.loss, **config.loss_params)
        info["augmentation"] = pipeline.describe()
        info["parameters"] = model.num_parameters()

        history, start = History(), 0
        if resume and ckpt_path.exists():
            extra = checkpoint.load(str(ckpt_path), model, opt, schedule)
            _check_resumable(extra["config"], config.as_dict())
            history, start = History.from_dict(extra["history"]), extra["iteration"]
            if start > config.iterations:
                raise ValueError(f"cifar: the checkpoint is at iteration {start}, beyond "
                                 f"iterations={config.iterations}")
            log(f"resuming {out} at iteration {start}")
        log(f"{config.name}: {info['train_size']} training images ({info['noise']} noise, "
            f"realised rate {info['noise_rate_realised']:.3f}), {info['val_size']} validation, "
            f"{info['test_size']} test; ResNet-{config.depth} ({info['parameters']:,} parameters), "
            f"loss {loss_fn!r}, {config.sampler} batches of {config.batch_size}, device {dev}")
        log(f"augmentation: {info['augmentation']}; {info['eval_train_note']}")

        def batches(it):
            idx = sampler(it)
            g = sampling.iteration_rng(config.seed, "augment", it, dev)
            return Tensor(pipeline.train(train_images[idx], g)), Tensor(labels[idx])

        def on_eval(it, hist):
            checkpoint.save(str(ckpt_path), model, opt, schedule,
                            extra={"iteration": it, "history": hist.to_dict(),
                                   "config": config.as_dict()})
            write_json(out / RESULTS, results_dict(config, info, hist, "running"))

        history = fit(model, loss_fn, opt, batches, config.iterations, data.num_classes,
                      scheduler=schedule, evaluate=evaluator, eval_every=config.eval_every,
                      log_every=config.log_every, start_iteration=start, history=history,
                      on_eval=on_eval, progress=progress, desc=config.name)

    results = results_dict(config, info, history, "done")
    if figures:
        results["figures"] = [str(p) for p in write_figures(results, out, data.classes)]
    write_json(out / RESULTS, results)
    log(format_summary(results))
    return results


def results_dict(config, info, history, status):
    """The JSON record of a run (see the module docstring)."""
    evals = history.evals
    eval_time = sum(e.get("eval_seconds", 0.0) for e in evals)
    done = evals[-1]["iteration"] if evals else 0
    return {"format": RESULTS_FORMAT, "status": status, "config": config.as_dict(), "data": info,
            "summary": summarise(history, config.batch_size),
            "timing": {"wall_seconds": history.wall_time, "eval_seconds": eval_time,
                       "step_ms": 1000 * (history.wall_time - eval_time) / done if done else None,
                       "iterations_done": done},
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "device": config.device, "python": platform.python_version(),
                        "numpy": np.__version__, "tinydm": tinydm.__version__},
            "history": history.to_dict()}


def summarise(history, batch_size):
    """Best and final test accuracy (Tables 1 and 9 report both), the final training-set
    metrics, the validation choice and the final ESS (mean over the last evaluation interval)."""
    evals = history.evals
    if not evals:
        return {}
    final = evals[-1]
    best = max(evals, key=lambda e: e["test_accuracy"])
    summary = {"test_accuracy_best": best["test_accuracy"],
               "test_accuracy_best_iteration": best["iteration"],
               "test_accuracy_final": final["test_accuracy"]}
    for key in ("train_accuracy_noisy_labels", "train_accuracy_clean_labels", "mean_p_clean",
                "mean_p_noisy", "noisy_memorised", "noisy_corrected", "test_class_histogram"):
        summary[f"{key}_final"] = final[key]
    if "val_accuracy" in final:
        best_val = max(evals, key=lambda e: e["val_accuracy"])
        summary.update(val_accuracy_best=best_val["val_accuracy"],
                       val_accuracy_best_iteration=best_val["iteration"],
                       val_accuracy_final=final["val_accuracy"],
                       test_accuracy_at_best_val=best_val["test_accuracy"])
    previous = evals[-2]["iteration"] if len(evals) > 1 else 0
    recent = [s["ess_fraction"] for s in history.steps if s["iteration"] > previous]
    if recent:
        summary["ess_fraction_final"] = float(np.mean(recent))
        summary["ess_final"] = summary["ess_fraction_final"] * batch_size
    return summary


def format_summary(results):
    """One line in Table 9's columns: best and final test accuracy, training accuracy on the
    corrupted and on the intact labels (%)."""
    s = results["summary"]
    if not s:
        return "no evaluation yet"

    def pct(v):
        return "  -  " if v is None else f"{100 * v:5.1f}"

    line = (f"test best {pct(s['test_accuracy_best'])} (it {s['test_accuracy_best_iteration']}), "
            f"final {pct(s['test_accuracy_final'])}; train corrupted "
            f"{pct(s['train_accuracy_noisy_labels_final'])}, intact "
            f"{pct(s['train_accuracy_clean_labels_final'])}; mean p_i clean "
            f"{pct(s['mean_p_clean_final'])}, noisy {pct(s['mean_p_noisy_final'])}")
    if "val_accuracy_best" in s:
        line += (f"; val best {pct(s['val_accuracy_best'])} (test there "
                 f"{pct(s['test_accuracy_at_best_val'])})")
    return line


def _save_figures(runs, out_dir, last):
    """The runs (``{label: results}``) overlaid in ``accuracy``, ``p_i`` and ``ess``, plus the
    figures of ``last`` (``{name: figure}``), saved as PNG in ``out_dir``; returns the paths."""
    from .. import plot

    made = {"accuracy": plot.cifar_accuracy(runs), "p_i": plot.cifar_p_i(runs),
            "ess": plot.cifar_ess(runs), **last}
    paths = []
    for name, fig in made.items():
        paths += plot.save(fig, out_dir, name, formats=("png",))
    return paths


def write_figures(results, out_dir, classes=None):
    """The PNG figures of one run (:data:`FIGURES`) in ``out_dir``; returns their paths.
    Overlay several runs with :func:`write_report` or the :mod:`tinydm.plot` functions
    (``plot.cifar_accuracy({"CCE": r1, "DM": r2})``)."""
    from .. import plot

    return _save_figures({results["config"]["loss"].upper(): results}, out_dir,
                         {"test_predictions": plot.cifar_test_predictions(results, classes)})


def predicted_classes(histogram, at_least=0.01):
    """How many classes take at least ``at_least`` of the predictions, and the largest share:
    ``(10, 0.12)`` for a healthy CIFAR-10 network, ``(2, 0.89)`` for one locked onto two."""
    counts = np.asarray(histogram, dtype=float)
    shares = counts / counts.sum()
    return int((shares >= at_least).sum()), float(shares.max())


def markdown_table(runs):
    """Several runs (``{label: results}``) in Table 9's columns, in Markdown: best test accuracy
    (its iteration) and final; training accuracy against the given labels ("corrupted" in the
    paper: memorisation raises it) and the clean ones ("intact"); the mean ``p_i`` of the clean
    and of the noisy training examples (Figure 2a); the final evaluation's predicted classes
    (:func:`predicted_classes`); the ESS fraction over the last evaluation interval; the
    iterations done and the wall time. Accuracies and shares in %."""
    lines = ["| run | test best (it.) | test final | train, given labels | train, clean labels "
             "| mean p_i clean / noisy | classes predicted (largest share) | ESS | iterations "
             "| wall time |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, r in runs.items():
        s, t = r["summary"], r["timing"]
        if not s:
            lines.append(f"| {label} | no evaluation yet |" + " |" * 8)
            continue
        k, top = predicted_classes(s["test_class_histogram_final"])
        ess = s.get("ess_fraction_final")
        lines.append(
            f"| {label} | {100 * s['test_accuracy_best']:.1f} ({s['test_accuracy_best_iteration']})"
            f" | {100 * s['test_accuracy_final']:.1f}"
            f" | {100 * s['train_accuracy_noisy_labels_final']:.1f}"
            f" | {100 * s['train_accuracy_clean_labels_final']:.1f}"
            f" | {s['mean_p_clean_final']:.3f} / {s['mean_p_noisy_final']:.3f}"
            f" | {k} ({100 * top:.0f}%) | {'-' if ess is None else f'{ess:.2f}'}"
            f" | {t['iterations_done']}{'' if r['status'] == 'done' else ' (running)'}"
            f" | {t['wall_seconds'] / 60:.0f} min |")
    return "\n".join(lines)


def write_report(runs, out_dir, classes=None):
    """``table.md`` (:func:`markdown_table`) and the runs overlaid in ``accuracy.png``,
    ``p_i.png``, ``ess.png`` and ``collapse.png`` (predictions by class, ESS and the largest
    class share of the emphasis: :func:`tinydm.plot.collapse_cifar`) in ``out_dir``; returns
    the paths written."""
    from .. import plot

    if classes is None:  # runs record their class names (older results files do not)
        classes = next((r["data"]["classes"] for r in runs.values() if "classes" in r["data"]),
                       None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "table.md"
    table.write_text(markdown_table(runs) + "\n")
    return [table] + _save_figures(runs, out, {"collapse": plot.collapse_cifar(runs, classes)})


def load_results(path):
    """A run's ``results.json`` (a file or its folder)."""
    path = Path(path)
    with open(path / RESULTS if path.is_dir() else path) as f:
        return json.load(f)


__all__ = ["Config", "RunData", "Evaluator", "run", "prepare_data", "synthetic_cifar",
           "load_dataset", "build_model", "build_optimizer", "make_sampler", "results_dict",
           "summarise", "format_summary", "write_figures", "load_results", "predicted_classes",
           "markdown_table", "write_report", "DATASETS", "NOISES",
           "SAMPLERS", "FIGURES"]
