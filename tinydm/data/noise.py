"""Synthetic label noise and class imbalance, as in the paper's experiments (pure NumPy).

Every function takes ``seed``: an int (or anything :func:`numpy.random.default_rng` accepts
except ``None``) or a :class:`numpy.random.Generator`; the same seed gives the same result.

**What the rate r means.** The paper corrupts each label "with probability r", so by default
every eligible example is corrupted independently with probability r (Bernoulli): the realised
fraction is close to r but not exactly r (its standard deviation is sqrt(r(1-r)/n)). Pass
``exact=True`` to corrupt exactly ``round(r * n)`` examples instead (per source class for the
class-dependent noises), chosen uniformly at random. Either way the result reports the realised
``rate`` and the exact ``corrupted`` mask, which always equals ``labels != clean labels``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

#: CIFAR-10 class-dependent noise: truck -> automobile, bird -> airplane, deer -> horse,
#: cat <-> dog (class indices of the official archive).
CIFAR10_FLIPS = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}


@dataclass(frozen=True)
class NoisyLabels:
    """Labels after corruption.

    Attributes:
        labels: the noisy labels, int64, same shape as the clean ones.
        corrupted: bool mask, True exactly where ``labels`` differs from the clean label.
        rate: realised fraction of corrupted labels over *all* examples (``corrupted.mean()``).
    """

    labels: np.ndarray
    corrupted: np.ndarray
    rate: float


@dataclass(frozen=True)
class SuperclassSwap(NoisyLabels):
    """Result of :func:`asymmetric_cifar100`.

    Attributes:
        pairs: int64 array (number of superclasses, 2); row s holds the two fine classes of
            superclass s whose labels were swapped with each other (superclasses in increasing
            order of their coarse label).
    """

    pairs: np.ndarray


def _rng(seed) -> np.random.Generator:
    if seed is None:
        raise ValueError("seed must be an int or a numpy.random.Generator, got None "
                         "(noise must be reproducible)")
    return np.random.default_rng(seed)


def _check_rate(r) -> float:
    if isinstance(r, bool) or not isinstance(r, numbers.Real) or not 0.0 <= float(r) <= 1.0:
        raise ValueError(f"r must be a number in [0, 1], got {r!r}")
    return float(r)


def _check_labels(labels, num_classes: int, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 1-D int64 array with values in [0, num_classes), or raise."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = np.flatnonzero((arr < 0) | (arr >= num_classes))
    if bad.size:
        i = bad[0]
        raise ValueError(f"{name}[{i}] = {arr[i]} is outside [0, {num_classes})")
    return arr


def _select(rng: np.random.Generator, n: int, r: float, exact: bool) -> np.ndarray:
    """Bool mask over n items: each True with probability r, or exactly round(r * n) True."""
    if not exact:
        return rng.random(n) < r
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=int(round(r * n)), replace=False)] = True
    return mask


def _result(clean: np.ndarray, noisy: np.ndarray) -> dict:
    corrupted = noisy != clean
    return dict(labels=noisy, corrupted=corrupted,
                rate=float(corrupted.mean()) if corrupted.size else 0.0)


def _flip_classes(clean: np.ndarray, mapping: dict, r: float, rng: np.random.Generator,
                  exact: bool) -> np.ndarray:
    """Relabel examples of each source class in ``mapping`` to its target, each w.p. r."""
    noisy = clean.copy()
    for source in sorted(mapping):
        idx = np.flatnonzero(clean == source)
        noisy[idx[_select(rng, idx.size, r, exact)]] = mapping[source]
    return noisy


def symmetric(labels, r: float, num_classes: int, seed, exact: bool = False) -> NoisyLabels:
    """Symmetric noise: with probability r a label is replaced by a uniform pick among the
    *other* ``num_classes - 1`` classes (never by itself).

    With ``num_classes=2`` this is the binary flip used for IMDB.
    """
    r = _check_rate(r)
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    clean = _check_labels(labels, num_classes)
    rng = _rng(seed)
    flip = _select(rng, clean.size, r, exact)
    shift = rng.integers(1, num_classes, size=clean.size)  # 1..K-1: any class but the original
    noisy = np.where(flip, (clean + shift) % num_classes, clean)
    return NoisyLabels(**_result(clean, noisy))


def asymmetric_cifar100(labels, coarse_labels, r: float, seed,
                        exact: bool = False) -> SuperclassSwap:
    """CIFAR-100 asymmetric noise: within each superclass, two of its fine classes are picked
    at random and a fraction r of each one's labels is changed into the other one.

    ``labels`` are the fine labels (0..99) and ``coarse_labels`` the superclass (0..19) of the
    same examples, as in the CIFAR-100 archive; the fine-to-coarse mapping is read from them,
    so every fine class must belong to a single superclass and every superclass present must
    have at least two fine classes present.
    """
    r = _check_rate(r)
    fine = _check_labels(labels, 100)
    coarse = _check_labels(coarse_labels, 20, name="coarse_labels")
    if coarse.shape != fine.shape:
        raise ValueError(f"coarse_labels must have the shape of labels {fine.shape}, "
                         f"got {coarse.shape}")
    rng = _rng(seed)
    mapping, pairs = {}, []
    for sup in np.unique(coarse):
        members = np.unique(fine[coarse == sup])
        shared = np.intersect1d(members, fine[coarse != sup])
        if shared.size:
            raise ValueError(f"fine class {shared[0]} appears under several superclasses in "
                             f"coarse_labels (one of them {sup}); labels and coarse_labels "
                             f"do not match")
        if members.size < 2:
            raise ValueError(f"superclass {sup} has fewer than two fine classes in labels "
                             f"({members.tolist()}); cannot pick a pair to swap")
        a, b = sorted(rng.choice(members, size=2, replace=False).tolist())
        mapping[a], mapping[b] = b, a
        pairs.append((a, b))
    noisy = _flip_classes(fine, mapping, r, rng, exact)
    return SuperclassSwap(**_result(fine, noisy), pairs=np.array(pairs, dtype=np.int64))


def cifar10_class_dependent(labels, r: float, seed, exact: bool = False) -> NoisyLabels:
    """CIFAR-10 class-dependent noise: with probability r, truck -> automobile,
    bird -> airplane, deer -> horse, cat -> dog and dog -> cat (:data:`CIFAR10_FLIPS`).

    The other classes are untouched, so the realised ``rate`` over all examples is about r/2 on
    balanced data.
    """
    r = _check_rate(r)
    clean = _check_labels(labels, 10)
    noisy = _flip_classes(clean, CIFAR10_FLIPS, r, _rng(seed), exact)
    return NoisyLabels(**_result(clean, noisy))


def imbalance(labels, keep_per_class: dict, seed) -> np.ndarray:
    """Indices of a class-imbalanced subset, in increasing order.

    ``keep_per_class`` maps a class to the number of its examples to keep, drawn uniformly
    without replacement; classes not in it are kept whole. Asking for more examples than a
    class has is an error.
    """
    arr = np.asarray(labels)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"labels must be a 1-D array of integers, got shape {arr.shape} "
                         f"and dtype {arr.dtype}")
    rng = _rng(seed)
    keep = np.ones(arr.size, dtype=bool)
    for cls in sorted(keep_per_class):
        count = keep_per_class[cls]
        idx = np.flatnonzero(arr == cls)
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) \
                or not 0 <= int(count) <= idx.size:
            raise ValueError(f"keep_per_class[{cls!r}] must be an integer in [0, {idx.size}] "
                             f"(the examples of class {cls!r}), got {count!r}")
        keep[idx] = False
        keep[rng.choice(idx, size=int(count), replace=False)] = True
    return np.flatnonzero(keep)


def imdb_imbalance(labels, ratio: float, seed) -> np.ndarray:
    """Indices keeping every positive (label 1) and ``round(positives / ratio)`` random
    negatives (label 0), in increasing order: ratio 10 gives the paper's 12,500 + 1,250 and
    ratio 50 its 12,500 + 250 on the IMDB training set.
    """
    clean = _check_labels(labels, 2)
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not ratio >= 1:
        raise ValueError(f"ratio must be a number >= 1 (positives per negative), got {ratio!r}")
    negatives = int(round(np.count_nonzero(clean == 1) / ratio))
    return imbalance(clean, {0: negatives}, seed)
