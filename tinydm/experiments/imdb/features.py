"""The data of the IMDB experiment: the feature arrays (:class:`Features`) and each row's training
set (label noise or imbalance, drawn from the run's seed)."""

from __future__ import annotations

import hashlib

import numpy as np

from ... import backend
from ...data import noise
from ..runner import seed_stream
from .protocol import NUM_CLASSES, row

NOISE_STREAM = 0  # spawn key of a seed's label-noise / imbalance draw (runner.seed_stream)


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
    from ...data import imdb_features  # gensim only needed when the cache is cold
    return Features(*imdb_features(data_dir, cache_dir, download=download, **pv_dbow_settings))


def training_set(row_key, y_train, seed):
    """The training examples and labels of a row, on the host.

    Returns ``(indices, labels, corrupted)``: which rows of ``x_train`` are used, the labels
    the network is given (noisy for the noise rows) and a bool mask of the corrupted ones.
    """
    r = row(row_key)
    y_train = np.asarray(y_train, dtype=np.int64)
    if r.ratio is None:
        flipped = noise.symmetric(y_train, r.noise, NUM_CLASSES, seed_stream(seed, NOISE_STREAM))
        return np.arange(y_train.size), flipped.labels, flipped.corrupted
    kept = noise.imdb_imbalance(y_train, r.ratio, seed_stream(seed, NOISE_STREAM))
    return kept, y_train[kept], np.zeros(kept.size, dtype=bool)
