"""Which training examples make up the batch of each iteration: shuffled epochs or
class-balanced batches, as pure functions of the iteration, on the device.

A resumed run must see exactly the batches an uninterrupted run would have seen, so nothing here
keeps a random state that advances: every random choice is drawn from a generator made afresh
from ``(seed, stream, index)`` (:func:`iteration_rng`), where ``index`` is the epoch or the
iteration and ``stream`` keeps the shuffling, the class-balanced draws and the augmentation of
one seed independent of each other. The index arrays are made on the device the data lives on
(``device``), so a GPU run never copies indices from the host.

    order = ShuffledBatches(n=50000, batch_size=128, seed=123)
    idx = order(it)                       # device int64 array of 128 example indices
    bal = BalancedBatches(noisy_labels, batch_size=256, seed=123)   # 32 classes x 8 images

:class:`HostEpochBatches` is the IMDB protocol's order: whole batches of host-drawn epochs.
"""

import numpy as np

from .. import backend

#: Independent random streams of one seed (the second entry of the generator's seed).
STREAMS = {"shuffle": 1, "balanced": 2, "augment": 3}


def iteration_rng(seed, stream, index, device=None):
    """A fresh generator on ``device`` seeded by ``(seed, STREAMS[stream], index)``: the same
    triple always gives the same draws, and different triples independent ones (NumPy's
    SeedSequence mixes the three integers; CuPy's default_rng accepts the same seed)."""
    if stream not in STREAMS:
        raise ValueError(f"iteration_rng: unknown stream {stream!r}; choose one of "
                         f"{sorted(STREAMS)}")
    if seed < 0 or index < 0:
        raise ValueError(f"iteration_rng: seed and index must be >= 0, got {seed}, {index}")
    return backend.rng([int(seed), STREAMS[stream], int(index)], device)


class ShuffledBatches:
    """Batches of consecutive examples in reshuffled epochs.

    The examples are visited in the order of a permutation drawn from ``(seed, epoch)``; iteration
    ``it`` takes positions ``[it * B, (it + 1) * B)`` of the endless sequence ``perm_0, perm_1,
    ...``. A batch that runs past the end of an epoch continues with the next epoch's order (as
    Caffe's data layers do): every batch is full and every epoch visits every example once.
    """

    def __init__(self, n, batch_size, seed, device=None):
        if not 0 < batch_size <= n:
            raise ValueError(f"ShuffledBatches: batch_size must be in [1, n = {n}], got "
                             f"{batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.device = device or backend.get_device()
        self._cache = {}  # epoch -> permutation; two epochs are enough for consecutive iterations

    def permutation(self, epoch):
        """The visiting order of ``epoch`` (device int64 array), an argsort of uniform draws."""
        if epoch not in self._cache:
            xp = backend.module_for(self.device)
            g = iteration_rng(self.seed, "shuffle", epoch, self.device)
            if len(self._cache) >= 2:
                self._cache.pop(min(self._cache))
            self._cache[epoch] = xp.argsort(g.random(self.n))
        return self._cache[epoch]

    def epoch_of(self, it):
        return it * self.batch_size // self.n

    def __call__(self, it):
        epoch, offset = divmod(it * self.batch_size, self.n)
        end = offset + self.batch_size
        if end <= self.n:
            return self.permutation(epoch)[offset:end]
        xp = backend.module_for(self.device)
        return xp.concatenate([self.permutation(epoch)[offset:],
                               self.permutation(epoch + 1)[:end - self.n]])


class HostEpochBatches:
    """Batches in reshuffled epochs, each epoch cut into ``n // batch_size`` whole batches (the
    ``n % batch_size`` examples left at the end of an epoch's order wait for a later epoch).

    The permutation of epoch ``e`` is ``generator_of(e).permutation(n)``, drawn on the host and
    then sent to ``device``, so every device trains on the same batches (the IMDB experiment's
    order: ``generator_of`` is a stream of the run's seed). The current epoch's permutation is
    kept, so consecutive iterations draw it once.
    """

    def __init__(self, n, batch_size, generator_of, device=None):
        if not 0 < batch_size <= n:
            raise ValueError(f"HostEpochBatches: batch_size must be in [1, n = {n}], got "
                             f"{batch_size}")
        self.n, self.batch_size, self.generator_of = n, batch_size, generator_of
        self.per_epoch = n // batch_size
        self.device = device or backend.get_device()
        self._epoch, self._perm = None, None

    def __call__(self, it):
        epoch, k = divmod(it, self.per_epoch)
        if self._epoch != epoch:
            perm = self.generator_of(epoch).permutation(self.n)
            self._epoch, self._perm = epoch, backend.to_device(perm, self.device)
        return self._perm[k * self.batch_size:(k + 1) * self.batch_size]


class BalancedBatches:
    """Class-balanced batches: a few classes per batch, the same number of images of each.

    The released code's CIFAR-100 batches of 256 hold 32 classes x 8 images, the classes picked
    by the given (noisy) label (docs/released-code.md). Generalised to any batch size and number of classes:

    * ``C_b = min(K, max(1, batch_size // images_per_class))`` distinct classes are drawn
      uniformly among the ``K`` classes present in ``labels`` (32 for CIFAR-100 and 256; all 10
      for CIFAR-10 and 128);
    * the batch is split as evenly as possible among them: each gives ``batch_size // C_b``
      images and the first ``batch_size % C_b`` drawn classes one more (CIFAR-10, 128: eight
      classes give 13 images, two give 12);
    * a class's images are drawn uniformly without replacement within the batch; a class with
      fewer images than it must give repeats them.

    Each batch is drawn independently from ``(seed, it)``: unlike epochs, this does not promise
    to visit every image equally often, only in expectation for images of one class.
    """

    def __init__(self, labels, batch_size, seed, images_per_class=8, device=None):
        labels = np.asarray(backend.to_numpy(labels))
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"BalancedBatches: labels must be a non-empty 1-D integer array, got "
                             f"shape {labels.shape} and dtype {labels.dtype}")
        if batch_size < 1 or images_per_class < 1:
            raise ValueError(f"BalancedBatches: batch_size and images_per_class must be >= 1, got "
                             f"{batch_size}, {images_per_class}")
        self.batch_size, self.seed, self.images_per_class = batch_size, seed, images_per_class
        self.device = device or backend.get_device()
        self.classes = np.unique(labels)
        counts = np.array([np.count_nonzero(labels == c) for c in self.classes])
        self.classes_per_batch = min(len(self.classes), max(1, batch_size // images_per_class))
        per_class, extra = divmod(batch_size, self.classes_per_batch)
        self.slots = per_class + (extra > 0)  # images taken per drawn class before trimming

        # Row k of `table` lists the example indices of class `classes[k]`, padded with 0.
        table = np.zeros((len(self.classes), counts.max()), dtype=np.int64)
        for k, c in enumerate(self.classes):
            table[k, :counts[k]] = np.flatnonzero(labels == c)
        # Flat positions in the (classes_per_batch, slots) draw that make the batch: all slots
        # of the first `extra` classes, `per_class` of the others.
        rows, cols = np.indices((self.classes_per_batch, self.slots))
        keep = (cols < per_class) | (rows < extra)
        self._table = backend.to_device(table, self.device)
        self._counts = backend.to_device(counts.astype(np.int64), self.device)
        self._keep = backend.to_device(np.flatnonzero(keep.ravel()), self.device)

    def __call__(self, it):
        xp = backend.module_for(self.device)
        g = iteration_rng(self.seed, "balanced", it, self.device)
        drawn = xp.argsort(g.random(len(self.classes)))[:self.classes_per_batch]
        counts = self._counts[drawn].reshape(-1, 1)
        width = self._table.shape[1]
        # A random order of each drawn class's images: sort uniform keys, padding slots last.
        keys = g.random((self.classes_per_batch, width))
        keys = xp.where(xp.arange(width).reshape(1, -1) < counts, keys, 2.0)
        order = xp.argsort(keys, axis=1)
        # Slot j takes the j-th image of that order (wrapping round for a class too small).
        slot = xp.arange(self.slots).reshape(1, -1) % counts
        rows = xp.arange(self.classes_per_batch).reshape(-1, 1)
        picked = self._table[drawn.reshape(-1, 1), order[rows, slot]]
        return picked.reshape(-1)[self._keep]
