"""Which training examples make up the batch of each iteration: shuffled epochs or
class-balanced batches, as pure functions of the iteration, on the device.

A resumed run must see exactly the batches an uninterrupted run would have seen, so every random
choice is a pure function of ``(seed, stream, index)``, where ``index`` is the epoch or the
iteration and ``stream`` keeps the shuffling, the class-balanced draws and the augmentation of
one seed independent of each other. A :class:`RandomStream` is made once per stream and gives
the generator of any index (:meth:`RandomStream.at`); the draws are made on the device the data
lives on (``device``), so a GPU run never copies indices from the host.

    order = ShuffledBatches(n=50000, batch_size=128, seed=123)
    idx = order(it)                       # device int64 array of 128 example indices
    bal = BalancedBatches(noisy_labels, batch_size=256, seed=123)   # 32 classes x 8 images
    augment = RandomStream(123, "augment")
    g = augment.at(it)                    # g.integers(...), g.random(..., dtype=...)

:class:`HostEpochBatches` is the IMDB protocol's order: whole batches of host-drawn epochs.
"""

import numpy as np

from .. import backend

#: Independent random streams of one seed (the second entry of the generator's seed).
STREAMS = {"shuffle": 1, "balanced": 2, "augment": 3}
#: Devices whose streams are counter based (:class:`CounterGenerator`). Not the stand-in: it
#: draws what the CPU draws, so that its runs reproduce the CPU's bit for bit.
COUNTER_DEVICES = ("cuda",)

_MASK = 2 ** 64 - 1
_GOLDEN = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: SplitMix64's step between two states


def _splitmix(z, xp):
    """SplitMix64's output function (Steele, Lea & Flood, 2014) on a uint64 array (wrapping
    round at 2^64): a bijection of 64-bit words that turns consecutive inputs into
    independent-looking outputs."""
    z = xp.bitwise_xor(z, xp.right_shift(z, 30)) * 0xBF58476D1CE4E5B9
    z = xp.bitwise_xor(z, xp.right_shift(z, 27)) * 0x94D049BB133111EB
    return xp.bitwise_xor(z, xp.right_shift(z, 31))


def _host_splitmix(value):
    """:func:`_splitmix` of one Python int, on the host."""
    return int(_splitmix(np.array([value & _MASK], np.uint64), np)[0])


class CounterGenerator:
    """The draws of one index of a :class:`RandomStream` on a GPU: counter based, no generator
    state on the device at all.

    The ``c``-th call draws the SplitMix64 sequence started at ``start = splitmix(key +
    splitmix(index * 2^16 + c))``: element ``j`` is ``splitmix(start + (j + 1) * golden)``
    (mod 2^64). So every draw is a function of ``(key, index, c, j)``, a few elementwise
    kernels, the same bits on every device (``xp``: NumPy, CuPy or the stand-in). The subset
    of NumPy's Generator API that the samplers and augmentations use.
    """

    def __init__(self, key, index, xp):
        self._key, self._index, self._xp, self._calls = key, index, xp, 0

    def _bits(self, size):
        """``size`` uint64 words of this generator's next call."""
        xp = self._xp
        shape = () if size is None else (size,) if isinstance(size, int) else tuple(size)
        start = _host_splitmix(self._key + _host_splitmix((self._index << 16) + self._calls))
        self._calls += 1
        steps = xp.arange(1, int(np.prod(shape)) + 1, dtype=xp.uint64).reshape(shape)
        return _splitmix(steps * _GOLDEN + start, xp)

    def random(self, size=None, dtype=np.float64):
        """Uniform floats in [0, 1): the top 53 bits of a word for float64, 24 for float32 (so
        float32 tensors get float32 randoms without a float64 detour)."""
        xp = self._xp
        if np.dtype(dtype) == np.float32:
            return xp.right_shift(self._bits(size), 40).astype(xp.float32) * np.float32(2.0 ** -24)
        if np.dtype(dtype) != np.float64:
            raise ValueError(f"CounterGenerator.random: dtype must be float32 or float64, got "
                             f"{np.dtype(dtype)}")
        return xp.right_shift(self._bits(size), 11).astype(xp.float64) * 2.0 ** -53

    def integers(self, low, high=None, size=None):
        """Uniform int64 in [low, high) (in [0, low) without ``high``), from 53-bit uniforms:
        the bias is below 2^-53 per value times the range, nothing for crops and flips."""
        if high is None:
            low, high = 0, low
        if high <= low:
            raise ValueError(f"CounterGenerator.integers: need low < high, got {low}, {high}")
        xp = self._xp
        return xp.floor(self.random(size) * (high - low)).astype(xp.int64) + low


class RandomStream:
    """One seed's random ``stream`` on ``device``, made once; :meth:`at` gives the generator of
    any index, a pure function of ``(seed, stream, index)``.

    * CPU: NumPy's generator seeded by ``(seed, STREAMS[stream], index)`` through SeedSequence,
      the draws of earlier tinydm versions, so runs resume across versions; making one costs
      microseconds.
    * GPU (:data:`COUNTER_DEVICES`): a :class:`CounterGenerator` on a key hashed once from
      ``(seed, stream)``. Making a CuPy generator per iteration would set up cuRAND states each
      time, and a single advancing generator would lose the pure function a resume needs.
    """

    def __init__(self, seed, stream, device=None):
        if stream not in STREAMS:
            raise ValueError(f"RandomStream: unknown stream {stream!r}; choose one of "
                             f"{sorted(STREAMS)}")
        if seed < 0:
            raise ValueError(f"RandomStream: seed must be >= 0, got {seed}")
        self.seed, self.stream = int(seed), stream
        self.device = device or backend.get_device()
        self._xp = backend.module_for(self.device)
        self._key = int(np.random.SeedSequence([self.seed, STREAMS[stream]])
                        .generate_state(1, np.uint64)[0])

    def at(self, index):
        if index < 0:
            raise ValueError(f"RandomStream.at: index must be >= 0, got {index}")
        if self.device in COUNTER_DEVICES:
            return CounterGenerator(self._key, int(index), self._xp)
        return backend.rng([self.seed, STREAMS[self.stream], int(index)], self.device)


def iteration_rng(seed, stream, index, device=None):
    """The generator of ``(seed, stream, index)`` on ``device``: the same triple always gives
    the same draws, and different triples independent ones. A loop makes a
    :class:`RandomStream` once instead."""
    return RandomStream(seed, stream, device).at(index)


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
        self._stream = RandomStream(seed, "shuffle", self.device)
        self._cache = {}  # epoch -> permutation; two epochs are enough for consecutive iterations

    def permutation(self, epoch):
        """The visiting order of ``epoch`` (device int64 array), an argsort of uniform draws."""
        if epoch not in self._cache:
            xp = backend.module_for(self.device)
            g = self._stream.at(epoch)
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
        self._stream = RandomStream(seed, "balanced", self.device)
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
        g = self._stream.at(it)
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
