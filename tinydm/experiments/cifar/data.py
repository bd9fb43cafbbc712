"""The data of a CIFAR run on the host: the data set (or synthetic images), a class-balanced
subset, a validation split (clean, except under CIFAR-10N's human noise, where it keeps its human
labels), the label noise and the training examples the training-set metrics use."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...data import cifar as cifar_data
from ...data import cifar_n, noise
from ..runner import seed_stream

#: Spawn keys of the data draws of a ``data_seed`` (runner.seed_stream).
DATA_STREAMS = {"subset": 0, "split": 1, "noise": 2, "eval_subset": 3, "synthetic": 4}


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
    return seed_stream(seed, DATA_STREAMS[stream])


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
    labels and the ``corrupted`` mask, the validation split (clean labels, or the human ones under
    CIFAR-10N noise), the test set, and
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

    def noise_pairs(self):
        """``[clean class, given label, count]`` of each swap the noise made: its confusion."""
        pairs, counts = np.unique(np.stack([self.clean_labels, self.labels])[:, self.corrupted],
                                  axis=1, return_counts=True)
        return [[int(i), int(j), int(c)] for (i, j), c in zip(pairs.T, counts)]

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
                "noise": config.noise,
                "noise_rate_requested": None if config.human_noise else config.noise_rate,
                "val_labels": config.noise if config.human_noise else "clean",
                "noise_rate_realised": float(self.corrupted.mean()) if n else 0.0,
                "train_label_counts": np.bincount(self.labels, minlength=self.num_classes).tolist(),
                "noise_pairs": self.noise_pairs(),
                "eval_train_size": m, "eval_train_note": note}


def _stratified_split(labels, fraction, rng):
    """Indices ``(kept, held_out)``: ``round(fraction * n_c)`` random examples of each class c
    held out, both in increasing order."""
    held = np.zeros(labels.size, dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        held[rng.choice(idx, size=int(round(fraction * idx.size)), replace=False)] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


def _subset(clean, num_classes, config):
    """Indices ``(subset, held_out)`` of ``subset_per_class`` images of each class, and of
    ``val_per_class`` more (none if unset) held out as a clean validation split: with
    ``subset_order="first"`` the first images of each class in the files' order and the next
    ones, else drawn at random (the subset from the ``"subset"`` stream, the held-out images
    from the ``"split"`` stream among the rest). Both in increasing order."""
    k, v = config.subset_per_class, config.val_per_class or 0
    counts = np.bincount(clean, minlength=num_classes)
    if counts.min() < k + v:
        raise ValueError(f"cifar: subset_per_class={k} and val_per_class={v} need {k + v} "
                         f"images of each class, but a class has only {counts.min()}")
    if config.subset_order == "first":
        per_class = [np.flatnonzero(clean == c) for c in range(num_classes)]
        return (np.sort(np.concatenate([idx[:k] for idx in per_class])),
                np.sort(np.concatenate([idx[k:k + v] for idx in per_class])))
    keep = noise.imbalance(clean, {c: k for c in range(num_classes)},
                           _generator(config.data_seed, "subset"))
    rest = np.setdiff1d(np.arange(clean.size), keep)
    held = noise.imbalance(clean[rest], {c: v for c in range(num_classes)},
                           _generator(config.data_seed, "split")) if v else rest[:0]
    return keep, rest[held]


def prepare_data(config, dataset=None, human_labels=None):
    """Subset, validation split, label noise and evaluation subset of a config (on the host).

    ``dataset``: a :class:`tinydm.data.cifar.CifarData` to use instead of loading one;
    ``human_labels``: CIFAR-10N's label sets (:func:`tinydm.data.cifar_n.load`, checked against
    the data set's clean labels here too) instead of reading them from ``config.data_dir``.
    """
    config = config.resolved()
    ds = load_dataset(config) if dataset is None else dataset
    images, clean = ds.train_images, np.asarray(ds.train_labels, dtype=np.int64)
    coarse = getattr(ds, "train_coarse_labels", None)
    num_classes = len(ds.classes)
    keep = np.arange(clean.size)
    val_index = np.zeros(0, dtype=np.int64)
    if config.subset_per_class is not None:
        keep, val_index = _subset(clean, num_classes, config)
    if config.val_fraction > 0:
        kept, held = _stratified_split(clean[keep], config.val_fraction,
                                       _generator(config.data_seed, "split"))
        keep, val_index = keep[kept], keep[held]
    train_clean = clean[keep]
    val_labels = clean[val_index]
    g = _generator(config.data_seed, "noise")
    if config.human_noise:
        # real noise has no clean validation split: the held-out images keep their human labels
        sets = cifar_n.load(config.data_dir) if human_labels is None else human_labels
        human = cifar_n.check_clean(sets, clean)[cifar_n.VARIANTS[config.noise.split(":")[1]]]
        wrong = human[keep] != train_clean
        noisy = noise.NoisyLabels(human[keep], wrong, float(wrong.mean()) if keep.size else 0.0)
        val_labels = human[val_index]
    elif config.noise == "none" or config.noise_rate == 0:
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
                   val_labels, ds.test_images, np.asarray(ds.test_labels, dtype=np.int64),
                   tuple(ds.classes), eval_index)
